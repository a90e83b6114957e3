"""Modbus TCP adapters on pymodbus: scale (register map from config), coil relay, stack light."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from .base import DeviceError, Reading

log = logging.getLogger(__name__)

_TYPES = {
    "int16": ModbusTcpClient.DATATYPE.INT16,
    "uint16": ModbusTcpClient.DATATYPE.UINT16,
    "int32": ModbusTcpClient.DATATYPE.INT32,
    "uint32": ModbusTcpClient.DATATYPE.UINT32,
    "float32": ModbusTcpClient.DATATYPE.FLOAT32,
}


class ModbusLink:
    """One connection to one Modbus endpoint. pymodbus clients are not thread-safe: every
    request goes through this lock, so a link shared by several devices is serialised."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.host, self.port = host, port
        self._client = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0.05)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ModbusLink({self.host}:{self.port})"

    def read_holding(self, address: int, count: int, device_id: int) -> list[int]:
        with self._lock:
            response = self._call(self._client.read_holding_registers, address, count=count, device_id=device_id)
        return list(response.registers)

    def write_coil(self, address: int, value: bool, device_id: int) -> None:
        with self._lock:
            self._call(self._client.write_coil, address, value, device_id=device_id)

    def _call(self, method, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            if not self._client.connected and not self._client.connect():
                raise DeviceError(f"{self}: cannot connect")
            response = method(*args, **kwargs)
        except ModbusException as exc:
            raise DeviceError(f"{self}: {exc}") from exc
        except OSError as exc:
            self._client.close()
            raise DeviceError(f"{self}: {exc}") from exc
        if response.isError():
            raise DeviceError(f"{self}: exception response {response}")
        return response

    def close(self) -> None:
        with self._lock:
            self._client.close()


@dataclass(frozen=True)
class RegisterMap:
    weight_address: int
    weight_type: str
    word_order: str
    scale: float
    status_address: int | None = None
    stable_bit: int = 0

    @property
    def span(self) -> tuple[int, int]:
        """First address and count of one read that covers the weight and the status word."""
        width = 1 if self.weight_type in ("int16", "uint16") else 2
        first = self.weight_address
        last = self.weight_address + width - 1
        if self.status_address is not None:
            first, last = min(first, self.status_address), max(last, self.status_address)
        return first, last - first + 1

    def decode(self, registers: list[int], first: int) -> Reading:
        width = 1 if self.weight_type in ("int16", "uint16") else 2
        offset = self.weight_address - first
        raw = ModbusTcpClient.convert_from_registers(
            registers[offset : offset + width], _TYPES[self.weight_type], word_order=self.word_order  # type: ignore[arg-type]
        )
        stable = True
        if self.status_address is not None:
            stable = bool(registers[self.status_address - first] >> self.stable_bit & 1)
        return Reading(gross_kg=float(raw) * self.scale, stable=stable)  # type: ignore[arg-type]


class ModbusScale:
    def __init__(self, link: ModbusLink, device_id: int, registers: RegisterMap) -> None:
        self.link, self.device_id, self.registers = link, device_id, registers
        self._span = registers.span
        if self._span[1] > 16:
            raise ValueError("weight and status registers must lie within 16 registers of each other")

    def read(self) -> Reading:
        first, count = self._span
        return self.registers.decode(self.link.read_holding(first, count, self.device_id), first)


class ModbusCoilRelay:
    def __init__(self, link: ModbusLink, device_id: int, coil: int) -> None:
        self.link, self.device_id, self.coil = link, device_id, coil

    def __repr__(self) -> str:
        return f"ModbusCoilRelay({self.link.host}:{self.link.port} unit {self.device_id} coil {self.coil})"

    def on(self) -> None:
        self.link.write_coil(self.coil, True, self.device_id)

    def off(self) -> None:
        self.link.write_coil(self.coil, False, self.device_id)


class ModbusSignals:
    """A stack light and buzzer on relay-board coils; a light not configured is skipped."""

    def __init__(self, link: ModbusLink, device_id: int, coils: dict[str, int | None]) -> None:
        self.link, self.device_id = link, device_id
        self.coils = {name: coil for name, coil in coils.items() if coil is not None}

    def show(self, light: str, buzzer: bool) -> None:
        for name, coil in self.coils.items():
            wanted = buzzer if name == "buzzer" else name == light
            self.link.write_coil(coil, wanted, self.device_id)


class LogSignals:
    """For lanes without a stack light: the operator sees the verdict on the console."""

    def __init__(self, lane: str) -> None:
        self.lane = lane

    def show(self, light: str, buzzer: bool) -> None:
        log.debug("lane %s signal %s%s", self.lane, light, " +buzzer" if buzzer else "")
