"""Config models for the devices a lane wires up: Modbus buses, scales, relays, stack lights,
push-buttons and code readers. The `driver` key picks the adapter; there is no fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import Coil, DeviceId, Kg, PositiveSeconds, Strict
from .registers import RegisterMapConfig

# Buses ---------------------------------------------------------------------------------------


class TcpBusConfig(Strict):
    """Modbus TCP: a networked indicator, or an RS-485 gateway in front of several devices."""

    transport: Literal["tcp"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)


class RtuBusConfig(Strict):
    """Modbus RTU on an RS-485 port. Every device on it shares one owner: requests go one at a time."""

    transport: Literal["rtu"]
    port: str  # prefer /dev/serial/by-id/... : ttyUSB numbers change between boots
    baudrate: int = Field(default=9600, ge=1200, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


BusConfig = Annotated[TcpBusConfig | RtuBusConfig, Field(discriminator="transport")]


class ModbusDevice(Strict):
    bus: str
    device_id: DeviceId = 1
    timeout_s: PositiveSeconds = 0.3
    # After a failed request the device is left alone for backoff_s, doubling to backoff_max_s,
    # so a dead device costs its bus neighbours one timeout per back-off period, not one per poll.
    backoff_s: PositiveSeconds = 0.5
    backoff_max_s: PositiveSeconds = 2.0


# Scales --------------------------------------------------------------------------------------


class ModbusScaleConfig(ModbusDevice):
    driver: Literal["modbus"]
    # A shipped map by name (config/scales/NAME.yaml) or a path, or the map written inline.
    register_map: str | None = None
    registers: RegisterMapConfig | None = None
    poll_period_s: PositiveSeconds = 0.1
    capacity_kg: Kg = 150.0
    # For maps without a stable or motion bit: stable once readings stay within the band this long.
    stable_band_kg: Annotated[float, Field(gt=0)] = 0.02
    stable_window_s: PositiveSeconds = 0.5

    @model_validator(mode="after")
    def _one_map(self) -> ModbusScaleConfig:
        if self.registers is None:
            raise ValueError("register_map: NAME (a file under config/scales/) or registers: {...}")
        return self


# Relays --------------------------------------------------------------------------------------


class LeaseConfig(Strict):
    """A self-expiring output: writing N to the register closes the relay for N x unit_s, after
    which the board opens it by itself unless the daemon writes again. A dead daemon, a hung
    machine or a cut cable then closes the valve within duration_s."""

    timer_register: int = Field(ge=0, le=65535)  # PDU address of this output's timer register
    unit_s: PositiveSeconds = 0.1
    duration_s: PositiveSeconds = 2.0
    refresh_s: PositiveSeconds = 0.5

    @model_validator(mode="after")
    def _refresh_before_expiry(self) -> LeaseConfig:
        if self.refresh_s * 2 > self.duration_s:
            raise ValueError("refresh_s at most half of duration_s, so one lost refresh does not close the valve")
        if self.duration_s / self.unit_s > 65535:
            raise ValueError("duration_s / unit_s within one 16-bit register")
        return self


class ModbusCoilRelayConfig(ModbusDevice):
    driver: Literal["modbus_coil"]
    coil: Coil
    lease: LeaseConfig | None = None


GpioBackend = Literal["rpi_gpio", "gpiod"]


class GpioDevice(Strict):
    # rpi_gpio: RPi.GPIO (or rpi-lgpio on a Pi 5), BCM numbering. gpiod: libgpiod v2, the chip found
    # by its label (Pi 5 "pinctrl-rp1", Pi 4 "pinctrl-bcm2711"), lines by offset.
    backend: GpioBackend
    chip: str = "pinctrl-rp1"


class GpioRelayConfig(GpioDevice):
    driver: Literal["gpio"]
    line: int = Field(ge=0, le=511)
    active_high: bool = True
    active_low_acknowledged: bool = False

    @model_validator(mode="after")
    def _active_high_valve(self) -> GpioRelayConfig:
        # An active-low relay board energises the valve whenever the pin is low or floating: during
        # boot, after a crash, with the Pi powered off but the relay supply on.
        if not self.active_high and not self.active_low_acknowledged:
            raise ValueError(
                "active_high: true for a valve relay (active-low opens the valve when the pin floats);"
                " set active_low_acknowledged: true only with a hardware interlock in series"
            )
        return self


RelayConfig = Annotated[ModbusCoilRelayConfig | GpioRelayConfig, Field(discriminator="driver")]


# Stack lights and buttons ---------------------------------------------------------------------


class Lights(Strict):
    green: int | None = None
    amber: int | None = None
    red: int | None = None
    buzzer: int | None = None

    def outputs(self) -> dict[str, int]:
        named = {"green": self.green, "amber": self.amber, "red": self.red, "buzzer": self.buzzer}
        return {name: out for name, out in named.items() if out is not None}


class ModbusSignalsConfig(Lights, ModbusDevice):
    driver: Literal["modbus_coil"]


class GpioSignalsConfig(Lights, GpioDevice):
    driver: Literal["gpio"]


class LogSignalsConfig(Strict):
    """No stack light: the operator reads verdicts on the console."""

    driver: Literal["log"] = "log"


SignalsConfig = Annotated[
    ModbusSignalsConfig | GpioSignalsConfig | LogSignalsConfig, Field(discriminator="driver")
]


class ButtonTiming(Strict):
    debounce_s: PositiveSeconds = 0.05
    # Holding abort this long resets a locked lane (on the record, as the lane's shift operator).
    reset_hold_s: PositiveSeconds = 3.0

    @model_validator(mode="after")
    def _hold_longer_than_bounce(self) -> ButtonTiming:
        if self.reset_hold_s <= self.debounce_s:
            raise ValueError("reset_hold_s longer than debounce_s, or every abort press would be a reset")
        return self


class GpioButtonsConfig(ButtonTiming, GpioDevice):
    driver: Literal["gpio"]
    confirm: int | None = Field(default=None, ge=0, le=511)
    abort: int | None = Field(default=None, ge=0, le=511)
    reset: int | None = Field(default=None, ge=0, le=511)  # a key switch or reset button
    pressed_low: bool = True  # a button to ground with the pull-up on


class ModbusButtonsConfig(ButtonTiming, ModbusDevice):
    """Buttons wired to a relay board's or an I/O module's discrete inputs."""

    driver: Literal["modbus_input"]
    confirm: int | None = Field(default=None, ge=0, le=65535)
    abort: int | None = Field(default=None, ge=0, le=65535)
    reset: int | None = Field(default=None, ge=0, le=65535)


ButtonsConfig = Annotated[GpioButtonsConfig | ModbusButtonsConfig, Field(discriminator="driver")]


# Code readers --------------------------------------------------------------------------------


class SerialScannerConfig(Strict):
    """A scanner in USB-CDC (virtual COM) or RS-232 mode, or an ASCII-line RFID reader."""

    driver: Literal["serial"]
    port: str
    baudrate: int = 9600
    source: Literal["optical", "rfid"] = "optical"
    prefix: str = ""  # stripped when present (e.g. "\x02" for STX-framed RFID readers)
    suffix: str = ""
    terminator: str = "\r"
    # AIM symbology identifiers to accept ("]Q" QR, "]d" Data Matrix); the scanner must be set to
    # send them. Anything else (a 1D barcode, "]C0" etc.) is rejected. Empty: no identifier sent.
    aim: list[str] = Field(default_factory=list)
    max_length: int = Field(default=1000, ge=16, le=4096)
    timeout_s: PositiveSeconds = 0.2


class RfidSerialConfig(Strict):
    """A UHF RFID reader speaking a binary framed protocol on a serial port."""

    driver: Literal["rfid_uhf"]
    port: str
    baudrate: int = 57600
    protocol: Literal["chafon"] = "chafon"
    timeout_s: PositiveSeconds = 0.2
    repeat_s: Kg = 2.0  # the same tag read again within this window is one scan


class HidScannerConfig(Strict):
    """A USB keyboard-wedge scanner read through evdev, grabbed so its keys never reach a console."""

    driver: Literal["hid"]
    device: str  # /dev/input/by-id/...-event-kbd, or the device's name as evdev reports it
    grab: bool = True
    max_length: int = Field(default=1000, ge=16, le=4096)


class RegionConfig(Strict):
    """A rectangle of the camera's frame, as fractions of its width and height (0 = left or top
    edge, 1 = right or bottom edge): the platter, so that a code outside it does not count."""

    left: Annotated[float, Field(ge=0, le=1)]
    top: Annotated[float, Field(ge=0, le=1)]
    right: Annotated[float, Field(ge=0, le=1)]
    bottom: Annotated[float, Field(ge=0, le=1)]

    @model_validator(mode="after")
    def _a_rectangle(self) -> RegionConfig:
        # A sliver could never hold a whole code: a typo, not a platter.
        if self.right - self.left < 0.05 or self.bottom - self.top < 0.05:
            raise ValueError("left < right and top < bottom, each side at least 0.05 of the frame")
        return self

    def box(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.right, self.bottom)


class CameraScannerConfig(Strict):
    """A camera: a V4L2 device (/dev/video0 or an index), a video file, or a folder of images."""

    driver: Literal["camera"]
    source: str
    decoders: list[Literal["zxing", "pyzbar", "zxing_unwarped", "zxing_refinder", "zxing_preprocessed", "pyzbar_preprocessed"]] = Field(
        default_factory=lambda: ["zxing", "pyzbar", "zxing_unwarped", "zxing_refinder", "zxing_preprocessed"], min_length=1
    )
    repeat_s: Kg = 3.0  # the same code seen again within this window is one scan
    fps: Annotated[float, Field(gt=0, le=60)] = 10.0
    # Only codes touching this region count; without it, a frame with two codes is refused.
    roi: RegionConfig | None = None


ScannerConfig = Annotated[
    SerialScannerConfig | RfidSerialConfig | HidScannerConfig | CameraScannerConfig,
    Field(discriminator="driver"),
]


def register_map_path(name: str, config_dir: Path, bundled: Path) -> Path:
    """A map named in the station config: a path, or NAME under scales/ beside it, or bundled."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml"):
        return candidate if candidate.is_absolute() else config_dir / candidate
    local = config_dir / "scales" / f"{name}.yaml"
    return local if local.exists() else bundled / f"{name}.yaml"
