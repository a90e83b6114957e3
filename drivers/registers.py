"""Scale indicator register maps: where the weight, status, decimal point and heartbeat live, and
how to turn raw 16-bit registers into kilograms. Pure: no I/O, so the simulator encodes with the
same definitions the driver decodes with, and both are tested against values from the manuals."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Literal, Mapping

Kind = Literal["holding", "input", "coil", "discrete"]
BIT_KINDS = ("coil", "discrete")
ValueType = Literal["int16", "uint16", "int32", "uint32", "float32", "float64"]
Order = Literal["big", "little"]

_FORMATS: dict[str, str] = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}
FLOATS = ("float32", "float64")
# One read request may cover at most 125 registers (Modbus spec); merging spans across a small
# gap costs fewer bytes on a 9600-baud bus than a second request-response round trip.
MAX_READ = 125
MERGE_GAP = 8
MAX_BIT_READ = 2000  # the spec's limit for one coil or discrete-input read


@dataclass(frozen=True)
class Value:
    """One number held in one or two consecutive registers."""

    address: int
    type: ValueType = "uint16"
    word_order: Order = "big"  # which register holds the high word
    byte_order: Order = "big"  # byte order inside each register (Modbus itself is big-endian)
    # Where it is read from when not the map's `function`: a status word may sit in input
    # registers beside a holding-register weight, or be a run of coils or discrete inputs (bit
    # `address + i` is bit i of the number; a uint16 is 16 of them).
    kind: Kind | None = None

    @property
    def width(self) -> int:
        """Registers it spans: one, two, or four for a float64."""
        return struct.calcsize(_FORMATS[self.type]) // 2

    def decode(self, registers: list[int]) -> int | float:
        words = list(registers)
        if self.word_order == "little":
            words.reverse()
        raw = b"".join(w.to_bytes(2, "big") if self.byte_order == "big" else w.to_bytes(2, "little") for w in words)
        return struct.unpack(">" + _FORMATS[self.type], raw)[0]  # type: ignore[no-any-return]

    def encode(self, value: int | float) -> list[int]:
        raw = struct.pack(">" + _FORMATS[self.type], value)
        words = [
            int.from_bytes(raw[i : i + 2], "big" if self.byte_order == "big" else "little") for i in range(0, len(raw), 2)
        ]
        if self.word_order == "little":
            words.reverse()
        return words


@dataclass(frozen=True)
class StateField:
    """A number held in bits lo..hi of a status word (a mode or an enumeration), and which of its
    values mean stable, in motion, overload, an error; `ok`, when given, lists the only values in
    which the weight may be trusted."""

    lo: int
    hi: int
    stable: tuple[int, ...] = ()
    motion: tuple[int, ...] = ()
    overload: tuple[int, ...] = ()
    error: tuple[int, ...] = ()
    ok: tuple[int, ...] = ()

    def of(self, bits: int) -> int:
        return bits >> self.lo & ((1 << (self.hi - self.lo + 1)) - 1)


@dataclass(frozen=True)
class StatusWord:
    """A status register and the meaning of its bits; a bit not named here is ignored."""

    value: Value
    stable_bit: int | None = None  # set while the weight is stable
    motion_bit: int | None = None  # set while the weight is moving (some indicators invert it)
    overload_bits: tuple[int, ...] = ()
    error_bits: tuple[int, ...] = ()
    ok_bits: tuple[int, ...] = ()  # must all be set; one clear (weight data not OK) is an error
    fields: tuple[StateField, ...] = ()


@dataclass(frozen=True)
class DecimalPoint:
    """Where the indicator says how many decimals its integer weight has: either a register whose
    value is the number of decimals, or bits of a status word each meaning a number of decimals."""

    value: Value
    bits: Mapping[int, int] | None = None  # bit -> decimals


@dataclass(frozen=True)
class Heartbeat:
    """A register the indicator keeps changing; a value that stops changing means a hung CPU."""

    value: Value
    max_age_s: float = 1.0


@dataclass(frozen=True)
class Decoded:
    gross_kg: float
    stable: bool | None  # None when the map has no stable or motion bit
    overload: bool
    error: bool
    heartbeat: int | float | None


Registers = Mapping[int | tuple[str, int], int]  # address (the map's function) or (kind, address) -> word or bit


@dataclass(frozen=True)
class RegisterMap:
    weight: Value
    function: Literal["holding", "input"] = "holding"
    scale: float = 1.0  # multiplies the raw weight: the fixed decimal point, or lb -> kg
    decimals: DecimalPoint | None = None
    status: tuple[StatusWord, ...] = ()
    heartbeat: Heartbeat | None = None
    # Indicators that show net beside their own tare: the weight register holds the net, and the
    # gross is net + tare, both from the same read (keep them adjacent so one request covers both).
    tare: Value | None = None
    name: str = field(default="", compare=False)

    def values(self) -> list[Value]:
        found = [self.weight, *(s.value for s in self.status)]
        if self.tare:
            found.append(self.tare)
        if self.decimals:
            found.append(self.decimals.value)
        if self.heartbeat:
            found.append(self.heartbeat.value)
        return found

    def kind(self, value: Value) -> str:
        return value.kind or self.function

    def kinds(self) -> list[str]:
        """The register or bit kinds the map reads, the map's own function first."""
        return list(dict.fromkeys([self.function, *(self.kind(v) for v in self.values())]))

    def spans(self, kind: str | None = None) -> list[tuple[int, int]]:
        """The (address, count) reads of one kind (default: the map's function) that cover its
        values, as few as the per-request limits allow. Bit kinds count bits, registers words."""
        kind = kind or self.function
        bits = kind in BIT_KINDS
        limit, gap = (MAX_BIT_READ, 16 * MERGE_GAP) if bits else (MAX_READ, MERGE_GAP)
        spans: list[list[int]] = []
        for value in sorted((v for v in self.values() if self.kind(v) == kind), key=lambda v: v.address):
            last = value.address + value.width * (16 if bits else 1) - 1
            if spans and value.address - spans[-1][1] <= gap + 1 and last - spans[-1][0] < limit:
                spans[-1][1] = max(spans[-1][1], last)
            else:
                spans.append([value.address, last])
        return [(first, last - first + 1) for first, last in spans]

    def decode(self, registers: Registers) -> Decoded:
        def at(kind: str, address: int) -> int:
            if kind == self.function and address in registers:
                return registers[address]
            return registers[(kind, address)]

        def read(value: Value) -> int | float:
            kind = self.kind(value)
            if kind in BIT_KINDS:
                return sum(bool(at(kind, value.address + i)) << i for i in range(16 * value.width))
            return value.decode([at(kind, value.address + i) for i in range(value.width)])

        raw = read(self.weight)
        if self.tare is not None:
            raw += read(self.tare)
        if isinstance(raw, float) and not math.isfinite(raw):
            raise ValueError(f"weight register holds {raw}")
        gross = raw * self.scale / 10 ** self._decimals(read)
        stable: bool | None = None
        overload = error = False
        for word in self.status:
            bits = int(read(word.value))
            if word.stable_bit is not None:
                stable = (stable is not False) and bool(bits >> word.stable_bit & 1)
            if word.motion_bit is not None:
                stable = (stable is not False) and not bits >> word.motion_bit & 1
            overload = overload or any(bits >> b & 1 for b in word.overload_bits)
            error = error or any(bits >> b & 1 for b in word.error_bits) or not all(bits >> b & 1 for b in word.ok_bits)
            for state in word.fields:
                number = state.of(bits)
                if state.stable:
                    stable = (stable is not False) and number in state.stable
                if state.motion:
                    stable = (stable is not False) and number not in state.motion
                overload = overload or number in state.overload
                error = error or number in state.error or bool(state.ok and number not in state.ok)
        heartbeat = read(self.heartbeat.value) if self.heartbeat else None
        return Decoded(float(gross), stable, overload, error, heartbeat)

    def _decimals(self, read) -> int:  # type: ignore[no-untyped-def]
        if self.decimals is None:
            return 0
        raw = int(read(self.decimals.value))
        if self.decimals.bits is None:
            if not 0 <= raw <= 6:
                raise ValueError(f"decimal-point register holds {raw}")
            return raw
        for bit, places in self.decimals.bits.items():
            if raw >> bit & 1:
                return places
        raise ValueError(f"no decimal-point bit set in {raw:#x}")
