"""A null-modem cable in Python: two ptys whose masters are bridged, so one program opens one end
as its serial port and a simulated device opens the other, as over a real RS-485 adapter.

Bytes are paced at the configured baud rate (11 bits a character for 8N1 with start and stop
bits, as RS-485 carries them), so poll rates measured over the pair are the rates a real bus
allows. A cut line drops everything in both directions, like a broken cable.
"""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

from .serial_pty import PtyScanner


class NullModem:
    def __init__(self, host_link: str | Path | None = None, device_link: str | Path | None = None,
                 baudrate: int | None = 9600, bits_per_char: int = 11) -> None:
        self.host = PtyScanner(host_link)  # the daemon opens host.port
        self.device = PtyScanner(device_link)  # the simulator opens device.port
        self.char_s = bits_per_char / baudrate if baudrate else 0.0
        self.cut = False
        self.bytes_carried = 0
        self._stop = threading.Event()
        self._line_free = {self.host.master: 0.0, self.device.master: 0.0}
        self._thread = threading.Thread(target=self._run, name="null-modem", daemon=True)

    def start(self) -> NullModem:
        self._thread.start()
        return self

    def _run(self) -> None:
        peers = {self.host.master: self.device.master, self.device.master: self.host.master}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(peers), [], [], 0.05)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if self.cut or not data:
                    continue
                self._pace(peers[fd], len(data))
                try:
                    os.write(peers[fd], data)
                except OSError:
                    continue
                self.bytes_carried += len(data)

    def _pace(self, towards: int, count: int) -> None:
        """Deliver a chunk when its last character would have left the wire."""
        if not self.char_s:
            return
        now = time.monotonic()
        done = max(now, self._line_free[towards]) + count * self.char_s
        self._line_free[towards] = done
        if done > now:
            time.sleep(done - now)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1)
        self.host.close()
        self.device.close()
