"""Simulated Modbus devices: a scale indicator that serves any register map, and a relay board
with coils, timed (lease) outputs and discrete inputs. Each is a pymodbus SimDevice whose action
computes its registers at the moment a request arrives."""

from __future__ import annotations

import asyncio
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

from drivers.registers import BIT_KINDS, FLOATS, RegisterMap, StateField, Value

from .scale_model import ScaleModel

log = logging.getLogger(__name__)

FC_READ_COILS, FC_READ_INPUTS, FC_WRITE_REGISTER, FC_WRITE_REGISTERS = 1, 2, 6, 16
FC_KINDS = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
HEARTBEAT_TICK_S = 0.1


class ScaleFault(StrEnum):
    SILENT = "silent"  # no answer at all, like a dead RS-485 device
    EXCEPTION = "exception"  # Modbus exception 4 (device failure) to every request
    GARBAGE = "garbage"  # answers with a broken checksum
    FROZEN = "frozen"  # keeps answering, heartbeat stops changing
    UNSTABLE = "unstable"  # the reading jumps by kilograms from poll to poll
    IMPLAUSIBLE = "implausible"  # a weight far beyond the scale's capacity
    OVERLOAD = "overload"  # the overload status bit
    NOT_OK = "not_ok"  # a "data OK" status bit drops while the weight register still answers
    LATE = "late"  # answers, but only after late_s: past the client's timeout on a slow device
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
        self.late_s = 0.3  # how long a LATE answer is held
        self.indicator_tare_kg = 0.0  # the tare the indicator holds, for maps that read net + tare
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
        kinds = self.registers.kinds()
        spans = {kind: self.registers.spans(kind) for kind in kinds if kind not in BIT_KINDS}
        # Bit blocks start at 0 and cover the highest bit the map names, in 16-bit words.
        bits = {
            {"coil": "coils", "discrete": "inputs"}[kind]: 16 * (max(a + n for a, n in self.registers.spans(kind)) // 16 + 1)
            for kind in kinds if kind in BIT_KINDS
        }
        return SimDevice(id=self.unit, simdata=_blocks(spans, bits), action=self._action)

    async def _action(self, fc: int, start: int, address: int, count: int, regs: list[int], values: Any) -> ExcCodes | None:
        self.requests += 1
        if self.fault is ScaleFault.SILENT:
            raise NoSuchIdException(f"simulated scale {self.unit} is silent")
        if self.fault is ScaleFault.EXCEPTION:
            return ExcCodes.DEVICE_FAILURE
        kind = FC_KINDS.get(fc)
        for (value_kind, value_address), words in self.register_values().items():
            if value_kind != kind:
                continue
            if kind in BIT_KINDS:  # a status word as a run of bits, packed 16 to a word from the block start
                number = (words[0] << 16 | words[1]) if len(words) == 2 else words[0]
                for offset in range(16 * len(words)):
                    index = value_address + offset - start
                    if 0 <= index < 16 * len(regs):
                        mask = 1 << (index % 16)
                        regs[index // 16] = regs[index // 16] | mask if number >> offset & 1 else regs[index // 16] & ~mask
                continue
            for offset, word in enumerate(words):
                index = value_address + offset - start
                if 0 <= index < len(regs):
                    regs[index] = word
        if self.fault is ScaleFault.LATE:
            # The registers are read now and sent late, as by a busy indicator CPU: the answer
            # holds the weight of when it was asked.
            await asyncio.sleep(self.late_s)
        return None

    def register_values(self) -> dict[tuple[str, int], list[int]]:
        """Every register the map names, encoded as the indicator would show the model now."""
        if self.fault is ScaleFault.STUCK and self._last_answer is not None:
            # A hung indicator whose Modbus interface still answers from its last buffer.
            self.samples.append((time.monotonic(), self.model.true_gross_kg()))
            return self._last_answer
        self._last_answer = self._encode()
        return self._last_answer

    def _encode(self) -> dict[tuple[str, int], list[int]]:
        gross, stable = self.model.sample()
        self.samples.append((time.monotonic(), self.model.true_gross_kg()))
        if self.fault is ScaleFault.UNSTABLE:
            gross += self._rng.choice((-1, 1)) * self._rng.uniform(4.0, 12.0)
            stable = False
        elif self.fault is ScaleFault.IMPLAUSIBLE:
            gross = self.capacity_kg * 5
        words: dict[tuple[str, int], tuple[Value, int | float]] = {}

        def merge(value: Value, number: int | float) -> None:
            # A decimal-point bit and a status bit may share a register: OR them together.
            key = (self.registers.kind(value), value.address)
            old = words.get(key, (value, 0))[1]
            words[key] = (value, int(old) | int(number) if not isinstance(number, float) else number)

        def counts(value: Value, kg: float) -> int | float:
            raw = kg / self.registers.scale
            return raw if value.type in FLOATS else round(raw * 10**self.decimals)

        shown = gross
        if self.registers.tare is not None:
            shown = gross - self.indicator_tare_kg
            merge(self.registers.tare, counts(self.registers.tare, self.indicator_tare_kg))
        words[(self.registers.kind(self.registers.weight), self.registers.weight.address)] = (
            self.registers.weight, counts(self.registers.weight, shown))
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
            for ok in word.ok_bits:  # "weight data OK": set unless the indicator has an error
                if self.fault is not ScaleFault.NOT_OK:
                    bits |= 1 << ok
            for state in word.fields:
                bits |= self._state_value(state, stable) << state.lo
            merge(word.value, bits)
        if self.registers.heartbeat:
            merge(self.registers.heartbeat.value, self.heartbeat())
        return {key: value.encode(number) for key, (value, number) in words.items()}

    def _state_value(self, state: StateField, stable: bool) -> int:
        """A value of a multi-bit status field that says what the indicator would say now."""
        overload = self.fault is ScaleFault.OVERLOAD and bool(state.overload)
        not_ok = self.fault is ScaleFault.NOT_OK and bool(state.ok)

        def fits(number: int, strict: bool) -> bool:
            if (number in state.overload) != overload or (bool(state.ok) and (number in state.ok) == not_ok):
                return False
            if number in state.error and not not_ok:
                return False
            # A fault state need not also say whether the weight is stable.
            if strict and state.stable and (number in state.stable) != stable:
                return False
            return not (strict and state.motion and (number in state.motion) == stable)

        numbers = range(min(1 << (state.hi - state.lo + 1), 1 << 12))
        return next((n for n in numbers if fits(n, True)), next((n for n in numbers if fits(n, False)), 0))

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
