"""What the lane needs from each kind of device: one typing.Protocol per kind."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

log = logging.getLogger(__name__)


class Fault(StrEnum):
    """Why a device failed, so the lane can record a cause an operator can act on."""

    NO_ANSWER = "no_answer"  # timeout, CRC garbage, connection refused, device backing off
    EXCEPTION = "exception"  # the device answered with a Modbus exception
    FROZEN = "frozen"  # the heartbeat register stopped changing
    OVERLOAD = "overload"
    ERROR = "error"  # the device reports an internal error, or sent a value that cannot be


class DeviceError(Exception):
    """A device did not answer, answered wrongly, or could not be reached."""

    def __init__(self, message: str, fault: Fault = Fault.NO_ANSWER) -> None:
        super().__init__(message)
        self.fault = fault


@dataclass(frozen=True)
class Scan:
    data: bytes
    received_at: float  # time.monotonic() when the code was complete
    source: str = "optical"  # "optical" or "rfid": how the lane parses it
    problem: str | None = None  # set when the reader already knows the input is unusable
    # A camera that saw several distinct codes at once (data then names them all): the lane
    # refuses, since the frame does not say which cylinder is on the scale.
    codes_in_view: int = 1


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

    def keepalive(self) -> None:
        """Called every poll while the relay should stay on: re-arms a lease where there is one."""

    def off(self) -> None:
        """Drive the output off; idempotent. Raises DeviceError when the write fails."""


class SignalOutput(Protocol):
    def show(self, light: str, buzzer: bool) -> None: ...


class Buttons(Protocol):
    def pressed(self) -> set[str]:
        """The names of the buttons held down now ("confirm", "abort")."""


class LogSignals:
    """For lanes without a stack light: the operator sees the verdict on the console."""

    def __init__(self, lane: str) -> None:
        self.lane = lane

    def show(self, light: str, buzzer: bool) -> None:
        log.debug("lane %s signal %s%s", self.lane, light, " +buzzer" if buzzer else "")
