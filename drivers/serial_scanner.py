"""Serial / USB-CDC code readers on pyserial: terminator, prefix/suffix, AIM symbology check,
length limit, reconnect. Also ASCII-line RFID readers (125 kHz / 13.56 MHz UID readers that print
the tag's hex UID, often framed STX ... ETX)."""

from __future__ import annotations

import logging
import time

import serial

from .base import Scan

log = logging.getLogger(__name__)


class SerialDevice:
    """A serial port that is reopened after it disappears: a USB unplug and a closed pty look alike."""

    kind = "serial device"

    def __init__(self, port: str, baudrate: int, timeout_s: float, reconnect_s: float = 1.0) -> None:
        self.port, self.baudrate, self.timeout_s, self.reconnect_s = port, baudrate, timeout_s, reconnect_s
        self._serial: serial.Serial | None = None
        self.disconnects = 0

    def open(self) -> None:
        try:
            self._serial = serial.Serial(self.port, self.baudrate, timeout=self.timeout_s)
        except serial.SerialException as exc:
            raise OSError(str(exc)) from exc

    def _ensure_open(self) -> bool:
        if self._serial is None:
            try:
                self.open()
            except OSError as exc:
                log.warning("%s %s unavailable: %s", self.kind, self.port, exc)
                time.sleep(self.reconnect_s)
                return False
        return True

    def _lost(self, exc: Exception) -> None:
        log.warning("%s %s disconnected: %s", self.kind, self.port, exc)
        self.disconnects += 1
        self.close()

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            finally:
                self._serial = None


class SerialScanner(SerialDevice):
    kind = "scanner"

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        terminator: bytes = b"\r",
        max_length: int = 1000,
        timeout_s: float = 0.2,
        reconnect_s: float = 1.0,
        prefix: bytes = b"",
        suffix: bytes = b"",
        aim: tuple[str, ...] = (),
        source: str = "optical",
    ) -> None:
        super().__init__(port, baudrate, timeout_s, reconnect_s)
        self.terminator, self.prefix, self.suffix = terminator, prefix, suffix
        self.aim = tuple(a.encode("ascii") for a in aim)
        self.source = source
        self.max_length = max_length
        self._buffer = bytearray()
        self._discarding = False
        self._unread = bytearray()  # bytes read from the port but not yet split into chunks

    def read(self) -> Scan | None:
        if not self._ensure_open():
            return None
        assert self._serial is not None
        try:
            chunk = self._read_chunk()
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)
            self._buffer.clear()
            self._unread.clear()
            return None
        return self._accept(chunk, time.monotonic())

    def _read_chunk(self) -> bytes:
        """What pyserial's read_until(terminator, max_length + 1) returns, without its byte-at-a-time
        reads: everything waiting is read at once and split here. A flood of input (a stuck
        trigger, a hostile device) then costs a few system calls per line, not one per byte."""
        limit = self.max_length + 1
        assert self._serial is not None
        if self.terminator not in self._unread and len(self._unread) < limit:
            self._unread += self._serial.read(max(1, min(self._serial.in_waiting, 65536)))
        end = self._unread.find(self.terminator)
        size = limit if end < 0 else min(end + len(self.terminator), limit)
        if end < 0 and len(self._unread) < limit:
            size = len(self._unread)  # a partial line: the timeout ended the read, as read_until does
        chunk = bytes(self._unread[:size])
        del self._unread[:size]
        return chunk

    def _accept(self, chunk: bytes, now: float) -> Scan | None:
        if not chunk:
            return None
        complete = chunk.endswith(self.terminator)
        body = chunk[: -len(self.terminator)] if complete else chunk
        if self._discarding:
            # The tail of an overlong burst: swallow it up to its terminator.
            self._discarding = not complete
            return None
        self._buffer += body
        if len(self._buffer) > self.max_length:
            self._buffer.clear()
            self._discarding = not complete
            return Scan(b"", now, self.source, problem=f"longer than the reader's maximum of {self.max_length} bytes")
        if not complete:
            return None
        data = bytes(self._buffer)
        self._buffer.clear()
        return self.unwrap(data, now)

    def unwrap(self, data: bytes, now: float) -> Scan:
        """One line without its terminator, as the lane reads it: prefix and suffix off, AIM checked."""
        if self.prefix and data.startswith(self.prefix):
            data = data[len(self.prefix) :]
        if self.suffix and data.endswith(self.suffix):
            data = data[: -len(self.suffix)]
        if self.aim:
            # "]Q1": "]", the symbology letter, a modifier digit. Only the listed symbologies pass.
            symbology = data[:3]
            if not data.startswith(b"]") or not any(symbology.startswith(a) for a in self.aim):
                shown = symbology.decode("ascii", "backslashreplace") if data.startswith(b"]") else "none"
                return Scan(data, now, self.source, problem=f"symbology {shown} not accepted (a 1D barcode?)")
            data = data[3:]
        return Scan(data, now, self.source)
