"""Build device adapters from config. An unknown driver is a start-up error, never a fallback."""

from __future__ import annotations

import codecs

from drivers.base import Relay, SignalOutput
from drivers.modbus import LogSignals, ModbusCoilRelay, ModbusLink, ModbusScale, ModbusSignals, RegisterMap
from drivers.serial_scanner import SerialScanner

from .config import Config, LaneConfig


class Links:
    """One ModbusLink per endpoint, shared by every device behind it (one owner per bus)."""

    def __init__(self) -> None:
        self._links: dict[tuple[str, int], ModbusLink] = {}

    def get(self, host: str, port: int, timeout_s: float) -> ModbusLink:
        key = (host, port)
        if key not in self._links:
            self._links[key] = ModbusLink(host, port, timeout_s)
        return self._links[key]

    def close(self) -> None:
        for link in self._links.values():
            link.close()


def build_relay(lane: LaneConfig, links: Links) -> Relay:
    relay = lane.relay
    return ModbusCoilRelay(links.get(relay.host, relay.port, relay.timeout_s), relay.device_id, relay.coil)


def build_scale(lane: LaneConfig, links: Links) -> ModbusScale:
    scale = lane.scale
    registers = RegisterMap(
        weight_address=scale.weight.address,
        weight_type=scale.weight.type,
        word_order=scale.weight.word_order,
        scale=scale.weight.scale,
        status_address=scale.status.address if scale.status else None,
        stable_bit=scale.status.stable_bit if scale.status else 0,
    )
    return ModbusScale(links.get(scale.host, scale.port, scale.timeout_s), scale.device_id, registers)


def build_signals(lane: LaneConfig, links: Links) -> SignalOutput:
    signals = lane.signals
    if signals.driver == "log":
        return LogSignals(lane.id)
    assert signals.host is not None
    coils = {"green": signals.green, "amber": signals.amber, "red": signals.red, "buzzer": signals.buzzer}
    return ModbusSignals(links.get(signals.host, signals.port, signals.timeout_s), signals.device_id, coils)


def build_readers(lane: LaneConfig) -> list[SerialScanner]:
    return [
        SerialScanner(
            port=scanner.port,
            baudrate=scanner.baudrate,
            # YAML gives "\r" as a real CR; a config written as '\\r' means the same.
            terminator=codecs.decode(scanner.terminator, "unicode_escape").encode("latin-1"),
            max_length=scanner.max_length,
            timeout_s=scanner.timeout_s,
        )
        for scanner in lane.scanners
    ]


def all_relays(config: Config, links: Links) -> dict[str, Relay]:
    return {lane.id: build_relay(lane, links) for lane in config.lanes}
