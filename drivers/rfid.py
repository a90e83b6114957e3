"""UHF RFID readers speaking the Chafon CF-RU5xxx / UHFReader18 binary protocol on a serial port.

Every frame is  Len | Adr | Cmd | [Status] | Data... | CRC-16 (LSB first)  where Len counts the
bytes after itself and the CRC is CRC-16/MCRF4XX (polynomial 0x8408 reflected, preset 0xFFFF) over
Len..Data. The host asks with Inventory (0x01); the answer's status 0x01 carries Num tags, each as
an EPC length byte and the EPC. Readers in active mode send 0xEE frames carrying one EPC unasked.
A frame whose CRC fails is dropped one byte at a time until the stream lines up again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import serial

from .base import Scan
from .serial_scanner import SerialDevice

log = logging.getLogger(__name__)

BROADCAST = 0xFF
CMD_INVENTORY = 0x01
CMD_ACTIVE = 0xEE
STATUS_TAGS = (0x01, 0x02, 0x03, 0x04)  # inventory ended, timed out, more data, buffer full
STATUS_NO_TAG = 0xFB
MIN_LEN = 5  # Adr, Cmd, Status, CRC x2


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def frame(address: int, command: int, payload: bytes = b"") -> bytes:
    body = bytes([len(payload) + 4, address, command]) + payload
    return body + crc16(body).to_bytes(2, "little")


@dataclass(frozen=True)
class Frame:
    address: int
    command: int
    status: int
    data: bytes

    def epcs(self) -> list[bytes]:
        """The EPCs an inventory answer or an active-mode frame carries; [] for anything else."""
        if self.command == CMD_ACTIVE and self.status == 0x00:
            return [self.data] if self.data else []
        if self.command != CMD_INVENTORY or self.status not in STATUS_TAGS or not self.data:
            return []
        found, count, at = [], self.data[0], 1
        for _ in range(count):
            if at >= len(self.data):
                break
            length = self.data[at]
            epc = self.data[at + 1 : at + 1 + length]
            if len(epc) != length or not length:
                break  # a count that the bytes do not bear out: keep what was whole
            found.append(epc)
            at += 1 + length
        return found


class FrameParser:
    """Turns a byte stream into frames; counts what it had to throw away. Host requests carry no
    status byte (requests=True, for the simulated reader); answers do."""

    def __init__(self, requests: bool = False) -> None:
        self.requests = requests
        self._min_len = MIN_LEN - 1 if requests else MIN_LEN
        self._buffer = bytearray()
        self.crc_errors = 0
        self.discarded = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while self._buffer:
            length = self._buffer[0]
            if length < self._min_len:
                self._drop()
                continue
            if len(self._buffer) < length + 1:
                # A partial frame, or a noise byte that looks like a long length: if a whole
                # frame already starts further on, the byte was noise.
                later = self._next_whole_frame()
                if later is None:
                    break
                self.discarded += later
                del self._buffer[:later]
                continue
            raw = bytes(self._buffer[: length + 1])
            if crc16(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
                self.crc_errors += 1
                self._drop()
                continue
            del self._buffer[: length + 1]
            if self.requests:
                frames.append(Frame(raw[1], raw[2], 0, raw[3:-2]))
            else:
                frames.append(Frame(raw[1], raw[2], raw[3], raw[4:-2]))
        return frames

    def _next_whole_frame(self) -> int | None:
        for start in range(1, len(self._buffer) - self._min_len):
            length = self._buffer[start]
            end = start + length + 1
            if length >= self._min_len and end <= len(self._buffer):
                raw = bytes(self._buffer[start:end])
                if crc16(raw[:-2]) == int.from_bytes(raw[-2:], "little"):
                    return start
        return None

    def _drop(self) -> None:
        del self._buffer[0]
        self.discarded += 1

    def clear(self) -> None:
        self._buffer.clear()


class UhfReader(SerialDevice):
    """Polls the reader with Inventory and reports each tag once per repeat window."""

    kind = "RFID reader"

    def __init__(self, port: str, baudrate: int = 57600, timeout_s: float = 0.2, repeat_s: float = 2.0,
                 address: int = BROADCAST) -> None:
        super().__init__(port, baudrate, timeout_s)
        self.repeat_s, self.address = repeat_s, address
        self.parser = FrameParser()
        self._seen: dict[bytes, float] = {}
        self._pending: list[bytes] = []

    def read(self) -> Scan | None:
        if not self._pending:
            self._inventory()
        if self._pending:
            return Scan(self._pending.pop(0).hex().upper().encode(), time.monotonic(), "rfid")
        return None

    def _inventory(self) -> None:
        if not self._ensure_open():
            return
        assert self._serial is not None
        try:
            self._serial.write(frame(self.address, CMD_INVENTORY))
            frames = self._answer()
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)
            return
        now = time.monotonic()
        for epc in (epc for f in frames for epc in f.epcs()):
            if now - self._seen.get(epc, -1e9) >= self.repeat_s:
                self._pending.append(epc)
            self._seen[epc] = now  # a tag that stays in the field stays one scan
        if not frames:
            time.sleep(self.timeout_s / 4)

    def _answer(self) -> list[Frame]:
        assert self._serial is not None
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            chunk = self._serial.read(max(1, self._serial.in_waiting))
            frames = self.parser.feed(chunk) if chunk else []
            if frames:
                return frames
        self.parser.clear()  # a partial frame that never completed is noise
        return []
