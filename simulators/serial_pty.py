"""Serial scanners and RFID readers on a pty: the daemon opens the slave end like a real port."""

from __future__ import annotations

import os
import random
import select
import threading
import tty
from pathlib import Path

from drivers.rfid import CMD_INVENTORY, STATUS_NO_TAG, FrameParser, frame


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


class PtyUhfReader:
    """A Chafon-protocol UHF reader on a pty: answers Inventory with the tags in its field.
    Modes: "ok"; "garbage" (noise and a broken-CRC frame before each answer); "partial" (half an
    answer, never finished); "mute" (no answer)."""

    def __init__(self, link: str | Path | None = None) -> None:
        self._pty = PtyScanner(link)
        self.tags: list[bytes] = []
        self.mode = "ok"
        self.inventories = 0
        self._parser = FrameParser(requests=True)
        self._stop = threading.Event()
        self._rng = random.Random(7)
        self._thread = threading.Thread(target=self._run, name="uhf-sim", daemon=True)
        self._thread.start()

    @property
    def port(self) -> str:
        return self._pty.port

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._pty.master], [], [], 0.05)
                data = os.read(self._pty.master, 256) if ready else b""
            except OSError:
                return
            for request in self._parser.feed(data):
                if request.command == CMD_INVENTORY:
                    self.inventories += 1
                    self._answer()

    def _answer(self) -> None:
        if self.mode == "mute":
            return
        if self.tags:
            payload = bytes([len(self.tags)]) + b"".join(bytes([len(t)]) + t for t in self.tags)
            answer = frame(0x00, CMD_INVENTORY, bytes([0x01]) + payload)
        else:
            answer = frame(0x00, CMD_INVENTORY, bytes([STATUS_NO_TAG]))
        if self.mode == "garbage":
            noise = bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(1, 12)))
            broken = answer[:-1] + bytes([answer[-1] ^ 0xFF])
            answer = noise + broken + answer
        elif self.mode == "partial":
            answer = answer[: len(answer) // 2]
        self._pty.write(answer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self._pty.close()
