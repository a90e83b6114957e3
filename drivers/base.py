"""What the lane needs from each kind of device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class DeviceError(Exception):
    """A device did not answer, answered wrongly, or could not be reached."""


@dataclass(frozen=True)
class Scan:
    data: bytes
    received_at: float  # time.monotonic() when the terminator arrived
    overlong: bool = False


@dataclass(frozen=True)
class Reading:
    gross_kg: float
    stable: bool


class CodeReader(Protocol):
    def open(self) -> None:
        """Open the device; raises OSError when it is not there (read() retries later)."""

    def read(self) -> Scan | None:
        """Wait up to the reader's timeout for one complete code; None when none arrived."""

    def close(self) -> None: ...


class Scale(Protocol):
    def read(self) -> Reading:
        """One reading; raises DeviceError when the scale cannot be read."""


class Relay(Protocol):
    def on(self) -> None: ...

    def off(self) -> None:
        """Drive the output off; idempotent. Raises DeviceError when the write fails."""


class SignalOutput(Protocol):
    def show(self, light: str, buzzer: bool) -> None: ...
