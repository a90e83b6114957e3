"""Build device adapters from config. An unknown or unloadable driver is a start-up error, never
a fallback to another backend."""

from __future__ import annotations

import codecs

from drivers.base import Buttons, CodeReader, LogSignals, Relay, SignalOutput
from drivers.gpio import GpioBackend, GpioButtons, GpioRelay, GpioSignals, open_backend
from drivers.modbus import BusDevice, Lease, ModbusBus, ModbusButtons, ModbusCoilRelay, ModbusScale, ModbusSignals, MotionDetector
from drivers.serial_scanner import SerialScanner

from ..config import Config, LaneConfig
from ..config.devices import (
    GpioDevice,
    GpioRelayConfig,
    GpioSignalsConfig,
    HidScannerConfig,
    CameraScannerConfig,
    LogSignalsConfig,
    ModbusButtonsConfig,
    ModbusDevice,
    ModbusScaleConfig,
    ModbusSignalsConfig,
    RfidSerialConfig,
    ScannerConfig,
    SerialScannerConfig,
)


def _unescape(text: str) -> bytes:
    # YAML gives "\r" as a real CR; a config written as '\\r' means the same.
    return codecs.decode(text, "unicode_escape").encode("latin-1")


class Hardware:
    """Owns the shared parts: one ModbusBus per configured bus (one owner per bus), one GPIO
    backend per chip. Devices borrow them; close() releases them once."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._buses: dict[str, ModbusBus] = {}
        self._gpio: dict[tuple[str, str], GpioBackend] = {}

    def bus(self, name: str) -> ModbusBus:
        if name not in self._buses:
            spec = self.config.buses[name]
            if spec.transport == "tcp":
                self._buses[name] = ModbusBus.tcp(name, spec.host, spec.port)
            else:
                self._buses[name] = ModbusBus.rtu(name, spec.port, spec.baudrate, spec.parity, spec.stopbits, spec.bytesize)
        return self._buses[name]

    def buses(self) -> dict[str, ModbusBus]:
        """The buses opened so far, by name."""
        return dict(self._buses)

    def device(self, spec: ModbusDevice) -> BusDevice:
        return BusDevice(self.bus(spec.bus), spec.device_id, spec.timeout_s, spec.backoff_s, spec.backoff_max_s)

    def gpio(self, spec: GpioDevice) -> GpioBackend:
        key = (spec.backend, spec.chip)
        if key not in self._gpio:
            self._gpio[key] = open_backend(spec.backend, spec.chip)
        return self._gpio[key]

    def close(self) -> None:
        for bus in self._buses.values():
            bus.close()
        for backend in self._gpio.values():
            backend.close()


def build_relay(lane: LaneConfig, hw: Hardware) -> Relay:
    relay = lane.relay
    if isinstance(relay, GpioRelayConfig):
        return GpioRelay(hw.gpio(relay), relay.line, relay.active_high)
    lease = relay.lease
    return ModbusCoilRelay(
        hw.device(relay), relay.coil,
        Lease(lease.timer_register, lease.unit_s, lease.duration_s, lease.refresh_s) if lease else None,
    )


def build_scale(lane: LaneConfig, hw: Hardware) -> ModbusScale:
    return scale_from(lane.scale, hw)


def scale_from(scale: ModbusScaleConfig, hw: Hardware) -> ModbusScale:
    assert scale.registers is not None
    return ModbusScale(hw.device(scale), scale.registers.build(), MotionDetector(scale.stable_band_kg, scale.stable_window_s))


def build_signals(lane: LaneConfig, hw: Hardware) -> SignalOutput:
    signals = lane.signals
    if isinstance(signals, LogSignalsConfig):
        return LogSignals(lane.id)
    if isinstance(signals, GpioSignalsConfig):
        return GpioSignals(hw.gpio(signals), signals.outputs())
    assert isinstance(signals, ModbusSignalsConfig)
    return ModbusSignals(hw.device(signals), signals.outputs())


def build_buttons(lane: LaneConfig, hw: Hardware) -> Buttons | None:
    buttons = lane.buttons
    if buttons is None:
        return None
    lines = (("confirm", buttons.confirm), ("abort", buttons.abort), ("reset", buttons.reset))
    named = {name: line for name, line in lines if line is not None}
    if isinstance(buttons, ModbusButtonsConfig):
        return ModbusButtons(hw.device(buttons), named)
    return GpioButtons(hw.gpio(buttons), named, buttons.pressed_low)


def build_reader(scanner: ScannerConfig) -> CodeReader:
    if isinstance(scanner, SerialScannerConfig):
        return SerialScanner(
            port=scanner.port,
            baudrate=scanner.baudrate,
            terminator=_unescape(scanner.terminator),
            prefix=_unescape(scanner.prefix),
            suffix=_unescape(scanner.suffix),
            aim=tuple(scanner.aim),
            max_length=scanner.max_length,
            timeout_s=scanner.timeout_s,
            source=scanner.source,
        )
    if isinstance(scanner, RfidSerialConfig):
        from drivers.rfid import UhfReader

        return UhfReader(scanner.port, scanner.baudrate, scanner.timeout_s, scanner.repeat_s)
    if isinstance(scanner, HidScannerConfig):
        from drivers.hid_scanner import HidScanner

        return HidScanner(scanner.device, grab=scanner.grab, max_length=scanner.max_length)
    assert isinstance(scanner, CameraScannerConfig)
    from drivers.camera import CameraReader

    return CameraReader(scanner.source, tuple(scanner.decoders), scanner.repeat_s, scanner.fps,
                        region=scanner.roi.box() if scanner.roi else None)


def build_readers(lane: LaneConfig) -> list[CodeReader]:
    return [build_reader(scanner) for scanner in lane.scanners]


def all_relays(config: Config, hw: Hardware) -> dict[str, Relay]:
    return {lane.id: build_relay(lane, hw) for lane in config.lanes}
