"""A serial scanner or RFID reader on a pty: the daemon opens the slave end like a real port."""

from __future__ import annotations

import os
import tty
from pathlib import Path


class PtyScanner:
    """Writes codes into the master side; `link` is a stable path (a symlink to the slave)."""

    def __init__(self, link: str | Path | None = None, terminator: bytes = b"\r") -> None:
        self.terminator = terminator
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.slave_name = os.ttyname(slave)
        # Keep the slave open ourselves so the pty survives the daemon closing and reopening it.
        self._slave = slave
        self.link = Path(link) if link else None
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            if self.link.is_symlink() or self.link.exists():
                self.link.unlink()
            self.link.symlink_to(self.slave_name)

    @property
    def port(self) -> str:
        return str(self.link) if self.link else self.slave_name

    def scan(self, code: str | bytes) -> None:
        data = code.encode() if isinstance(code, str) else code
        self.write(data + self.terminator)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.master, view)
            view = view[written:]

    def close(self) -> None:
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
