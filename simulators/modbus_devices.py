"""Simulated Modbus devices: a scale indicator that serves any register map, and a relay board
with coils, timed (lease) outputs and discrete inputs. Each is a pymodbus SimDevice whose action
computes its registers at the moment a request arrives."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from enum import StrEnum
from typing import Any, Callable

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.registers import RegisterMap, Value

from .scale_model import ScaleModel

log = logging.getLogger(__name__)

FC_READ_COILS, FC_READ_INPUTS, FC_WRITE_REGISTER, FC_WRITE_REGISTERS = 1, 2, 6, 16
HEARTBEAT_TICK_S = 0.1


class ScaleFault(StrEnum):
    SILENT = "silent"  # no answer at all, like a dead RS-485 device
    EXCEPTION = "exception"  # Modbus exception 4 (device failure) to every request
    GARBAGE = "garbage"  # answers with a broken checksum
    FROZEN = "frozen"  # keeps answering, heartbeat stops changing
    UNSTABLE = "unstable"  # the reading jumps by kilograms from poll to poll
    IMPLAUSIBLE = "implausible"  # a weight far beyond the scale's capacity
    OVERLOAD = "overload"  # the overload status bit
    STUCK = "stuck"  # keeps answering, with every register (weight, status, heartbeat) as it last was


def _blocks(spans: dict[str, list[tuple[int, int]]], bits: dict[str, int]) -> tuple[list[SimData], ...]:
    """SimDevice blocks (coils, discrete inputs, holding, input) covering the given spans."""
    def registers(kind: str) -> list[SimData]:
        return [SimData(address, count=count, datatype=DataType.REGISTERS) for address, count in spans.get(kind, [])] or [
            SimData(0, datatype=DataType.REGISTERS)
        ]

    def bit_block(kind: str) -> list[SimData]:
        return [SimData(0, count=max(1, bits.get(kind, 16) // 16), datatype=DataType.BITS)]

    return bit_block("coils"), bit_block("inputs"), registers("holding"), registers("input")


class SimScale:
    def __init__(self, model: ScaleModel, registers: RegisterMap, unit: int, decimals: int = 2, seed: int = 0,
                 capacity_kg: float = 150.0) -> None:
        self.model, self.registers, self.unit = model, registers, unit
        # Integer counts carry decimals only where the map says how many; otherwise `scale` fixes them.
        self.decimals = decimals if registers.decimals is not None else 0
        self.capacity_kg = capacity_kg
        self.fault: ScaleFault | None = None
        self.requests = 0
        self.samples: deque[tuple[float, float]] = deque(maxlen=10_000)  # (monotonic time, true gross kg)
        self._rng = random.Random(seed)
        self._started = time.monotonic()
        self._frozen_heartbeat: int | None = None
        self._last_answer: dict[int, list[int]] | None = None

    @property
    def garbage(self) -> bool:
        return self.fault is ScaleFault.GARBAGE

    def sim_device(self) -> SimDevice:
        spans = {self.registers.function: self.registers.spans()}
        return SimDevice(id=self.unit, simdata=_blocks(spans, {}), action=self._action)

    async def _action(self, fc: int, start: int, address: int, count: int, regs: list[int], values: Any) -> ExcCodes | None:
        self.requests += 1
        if self.fault is ScaleFault.SILENT:
            raise NoSuchIdException(f"simulated scale {self.unit} is silent")
        if self.fault is ScaleFault.EXCEPTION:
            return ExcCodes.DEVICE_FAILURE
        for value_address, words in self.register_values().items():
            for offset, word in enumerate(words):
                index = value_address + offset - start
                if 0 <= index < len(regs):
                    regs[index] = word
        return None

    def register_values(self) -> dict[int, list[int]]:
        """Every register the map names, encoded as the indicator would show the model now."""
        if self.fault is ScaleFault.STUCK and self._last_answer is not None:
            # A hung indicator whose Modbus interface still answers from its last buffer.
            self.samples.append((time.monotonic(), self.model.true_gross_kg()))
            return self._last_answer
        self._last_answer = self._encode()
        return self._last_answer

    def _encode(self) -> dict[int, list[int]]:
        gross, stable = self.model.sample()
        self.samples.append((time.monotonic(), self.model.true_gross_kg()))
        if self.fault is ScaleFault.UNSTABLE:
            gross += self._rng.choice((-1, 1)) * self._rng.uniform(4.0, 12.0)
            stable = False
        elif self.fault is ScaleFault.IMPLAUSIBLE:
            gross = self.capacity_kg * 5
        words: dict[int, tuple[Value, int | float]] = {}

        def merge(value: Value, number: int | float) -> None:
            # A decimal-point bit and a status bit may share a register: OR them together.
            old = words.get(value.address, (value, 0))[1]
            words[value.address] = (value, int(old) | int(number) if not isinstance(number, float) else number)

        raw: int | float = gross / self.registers.scale
        if self.registers.weight.type != "float32":
            raw = round(raw * 10**self.decimals)
        words[self.registers.weight.address] = (self.registers.weight, raw)
        if self.registers.decimals:
            marks = self.registers.decimals.bits
            places = next((1 << b for b, p in marks.items() if p == self.decimals), 0) if marks else self.decimals
            merge(self.registers.decimals.value, places)
        for word in self.registers.status:
            bits = 0
            if word.stable_bit is not None and stable:
                bits |= 1 << word.stable_bit
            if word.motion_bit is not None and not stable:
                bits |= 1 << word.motion_bit
            if self.fault is ScaleFault.OVERLOAD and word.overload_bits:
                bits |= 1 << word.overload_bits[0]
            merge(word.value, bits)
        if self.registers.heartbeat:
            merge(self.registers.heartbeat.value, self.heartbeat())
        return {address: value.encode(number) for address, (value, number) in words.items()}

    def heartbeat(self) -> int:
        ticks = int((time.monotonic() - self._started) / HEARTBEAT_TICK_S) & 0xFFFF
        if self.fault is ScaleFault.FROZEN:
            if self._frozen_heartbeat is None:
                self._frozen_heartbeat = ticks
            return self._frozen_heartbeat
        self._frozen_heartbeat = None
        return ticks


class SimRelayBoard:
    """Coils 0-15; optional timer registers (one per coil from lease_base, in lease_unit_s ticks)
    that switch a coil on until the count runs out; discrete inputs 0-15 for push-buttons."""

    def __init__(self, unit: int, lease_base: int | None = None, lease_unit_s: float = 0.1, coils: int = 16) -> None:
        self.unit, self.lease_base, self.lease_unit_s = unit, lease_base, lease_unit_s
        self.coils = [False] * coils
        self.inputs = [False] * 16
        self.expires: dict[int, float] = {}
        self.writes: list[tuple[float, int, bool]] = []  # (monotonic time, coil, value)
        self.listeners: list[Callable[[int, bool], None]] = []
        # Called with (coil, value) as a coil write arrives, before it is applied; returning False
        # drops the write unanswered (a test kills the daemon at exactly that moment).
        self.before_write: Callable[[int, bool], bool] | None = None
        self.fault: ScaleFault | None = None  # only SILENT is meaningful for a relay board
        self._lock = threading.Lock()

    garbage = False

    def sim_device(self) -> SimDevice:
        spans = {"holding": [(self.lease_base, len(self.coils))]} if self.lease_base is not None else {}
        return SimDevice(id=self.unit, simdata=_blocks(spans, {"coils": len(self.coils)}), action=self._action)

    async def _action(self, fc: int, start: int, address: int, count: int, regs: list[int], values: Any) -> ExcCodes | None:
        if self.fault is ScaleFault.SILENT:
            raise NoSuchIdException(f"simulated relay board {self.unit} is silent")
        self.expire()
        if fc in (FC_WRITE_REGISTER, FC_WRITE_REGISTERS):
            if values is None:  # pymodbus reads the block before it writes it
                return None
            written = values if isinstance(values, list) else [values]
            for offset, ticks in enumerate(written):
                self._arm(address + offset - (self.lease_base or 0), int(ticks))
            return None
        if fc == FC_READ_INPUTS:
            self._pack(self.inputs, regs)
            return None
        if values is not None:  # FC05 / FC15: the write is applied after this returns
            written = values if isinstance(values, list) else [values]
            if not self._admit(address, written):
                raise NoSuchIdException(f"simulated relay board {self.unit}: write dropped")
            for offset, value in enumerate(written):
                with self._lock:
                    self.expires.pop(address + offset, None)
                self.set(address + offset, bool(value))
        if fc == FC_READ_COILS or values is not None:
            self._pack(self.coils, regs)
        return None

    def _admit(self, address: int, written: list[Any]) -> bool:
        hook = self.before_write
        return hook is None or all(hook(address + offset, bool(value)) for offset, value in enumerate(written))

    @staticmethod
    def _pack(bits: list[bool], regs: list[int]) -> None:
        for index, bit in enumerate(bits):
            mask = 1 << (index % 16)
            regs[index // 16] = regs[index // 16] | mask if bit else regs[index // 16] & ~mask

    def _arm(self, coil: int, ticks: int) -> None:
        if not 0 <= coil < len(self.coils):
            return
        with self._lock:
            if ticks > 0:
                self.expires[coil] = time.monotonic() + ticks * self.lease_unit_s
            else:
                self.expires.pop(coil, None)
        self.set(coil, ticks > 0)

    def expire(self) -> None:
        """Open every leased output whose time ran out (the board's own timer)."""
        now = time.monotonic()
        with self._lock:
            due = [coil for coil, at in self.expires.items() if at <= now]
            for coil in due:
                del self.expires[coil]
        for coil in due:
            log.info("relay board %d: lease on coil %d ran out", self.unit, coil)
            self.set(coil, False)

    def set(self, coil: int, value: bool) -> None:
        if not 0 <= coil < len(self.coils):
            return
        with self._lock:
            changed = self.coils[coil] != value
            self.coils[coil] = value
            self.writes.append((time.monotonic(), coil, value))
        if changed:
            for listener in self.listeners:
                listener(coil, value)

    def coil(self, coil: int) -> bool:
        self.expire()
        with self._lock:
            return self.coils[coil]

    def last_write(self, coil: int, value: bool) -> float | None:
        with self._lock:
            times = [t for t, c, v in self.writes if c == coil and v == value]
        return times[-1] if times else None
