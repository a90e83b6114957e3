"""Register maps in config: a shipped indicator's file under config/scales/, or one written inline.

Addresses are written either as PDU addresses (the number on the wire, counted from 0: an integer
such as 7, or hex such as "0x1000") or in the one-based "4xxxx" register notation that most
indicator manuals use, as a string: "40008", "400008" or "4x0008" all mean holding register PDU
address 7, and "3xxxx" means an input register. An integer is always a PDU address.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Literal

from pydantic import Field, field_validator, model_validator

from drivers.registers import FLOATS, DecimalPoint, Heartbeat, RegisterMap, StateField, StatusWord, Value

from .base import Strict

_NOTATION = re.compile(r"^(?P<kind>[34])(?:x0*(?P<x>\d{1,5})|(?P<five>\d{4})|(?P<six>\d{5}))$")
_KINDS = {"4": "holding", "3": "input"}


def parse_address(address: int | str) -> tuple[int, str | None]:
    """(PDU address, register kind the notation implies or None)."""
    if isinstance(address, int):
        if not 0 <= address <= 65535:
            raise ValueError("a PDU address 0..65535")
        return address, None
    text = address.strip().lower()
    if text.startswith("0x"):
        return parse_address(int(text, 16))
    match = _NOTATION.match(text)
    if not match:
        raise ValueError('a PDU address (7, "0x1000") or a register number ("40008", "400008", "4x0008")')
    number = int(match["x"] or match["five"] or match["six"])
    if number < 1:
        raise ValueError("a register number from 1 (40001 is PDU address 0)")
    return number - 1, _KINDS[match["kind"]]


class ValueConfig(Strict):
    address: int | str
    type: Literal["int16", "uint16", "int32", "uint32", "float32", "float64"] = "uint16"
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"

    @field_validator("address")
    @classmethod
    def _parses(cls, value: int | str) -> int | str:
        parse_address(value)
        return value

    def build(self) -> Value:
        return Value(parse_address(self.address)[0], self.type, self.word_order, self.byte_order)


class FieldConfig(Strict):
    """A multi-bit number in a status word: `bits: [lo, hi]` and what its values mean."""

    bits: tuple[int, int]
    stable: list[int] = Field(default_factory=list)
    motion: list[int] = Field(default_factory=list)
    overload: list[int] = Field(default_factory=list)
    error: list[int] = Field(default_factory=list)
    ok: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values_fit(self) -> FieldConfig:
        lo, hi = self.bits
        if lo > hi:
            raise ValueError(f"bits [{lo}, {hi}] to be [lowest, highest]")
        top = (1 << (hi - lo + 1)) - 1
        for key in ("stable", "motion", "overload", "error", "ok"):
            for number in getattr(self, key):
                if not 0 <= number <= top:
                    raise ValueError(f"{key} value {number} to fit bits {lo}..{hi} (0..{top})")
        return self

    def build(self) -> StateField:
        return StateField(*self.bits, tuple(self.stable), tuple(self.motion), tuple(self.overload), tuple(self.error),
                          tuple(self.ok))


class StatusConfig(ValueConfig):
    # Where the status is read when not from the map's `function`: input or holding registers,
    # or a run of coils or discrete inputs starting at `address` (16 of them for a uint16).
    function: Literal["holding", "input", "coil", "discrete"] | None = None
    stable_bit: int | None = None
    motion_bit: int | None = None
    overload_bits: list[int] = Field(default_factory=list)
    error_bits: list[int] = Field(default_factory=list)
    ok_bits: list[int] = Field(default_factory=list)  # "weight data OK" bits: one clear stops a fill
    fields: list[FieldConfig] = Field(default_factory=list)  # multi-bit numbers: modes, enumerations

    @model_validator(mode="after")
    def _bits_inside_the_register(self) -> StatusConfig:
        if self.type in FLOATS:
            raise ValueError(f"a status word of an integer type, not {self.type}")
        width = 16 * self.build().width
        named = [("stable_bit", self.stable_bit), ("motion_bit", self.motion_bit)]
        named += [(key, bit) for key in ("overload_bits", "error_bits", "ok_bits") for bit in getattr(self, key)]
        named += [(f"fields.{i}.bits", bit) for i, f in enumerate(self.fields) for bit in f.bits]
        for key, bit in named:
            if bit is not None and not 0 <= bit < width:
                raise ValueError(f"{key} {bit} to be a bit of the {width}-bit {self.type} register (0..{width - 1})")
        return self

    def status(self) -> StatusWord:
        value = self.build()
        return StatusWord(
            replace(value, kind=self.function) if self.function else value, self.stable_bit, self.motion_bit, tuple(self.overload_bits), tuple(self.error_bits),
            tuple(self.ok_bits), tuple(f.build() for f in self.fields),
        )


class DecimalsConfig(ValueConfig):
    # Absent: the register's value is the number of decimals. Present: bit -> number of decimals.
    bits: dict[int, int] | None = None


class HeartbeatConfig(ValueConfig):
    max_age_s: float = Field(default=1.0, gt=0)


class RegisterMapConfig(Strict):
    name: str = ""
    source: str = ""  # the manual the addresses come from
    function: Literal["holding", "input"] = "holding"
    weight: ValueConfig
    # With tare: `weight` is the indicator's net weight and gross = net + tare, read together.
    tare: ValueConfig | None = None
    scale: float = Field(default=1.0, gt=0)
    decimals: DecimalsConfig | None = None
    status: list[StatusConfig] = Field(default_factory=list)
    heartbeat: HeartbeatConfig | None = None

    @model_validator(mode="after")
    def _one_register_kind(self) -> RegisterMapConfig:
        values: list[tuple[str, ValueConfig | None]] = [
            ("weight", self.weight),
            ("tare", self.tare),
            ("decimals", self.decimals),
            ("heartbeat", self.heartbeat),
            *((f"status.{i}", s) for i, s in enumerate(self.status)),
        ]
        for key, value in values:
            if value is None:
                continue
            kind = parse_address(value.address)[1]
            expected = getattr(value, "function", None) or self.function
            if kind is not None and kind != expected:
                raise ValueError(f"{key}.address {value.address!r} to name a {expected} register, as `function` says")
        return self

    def build(self) -> RegisterMap:
        return RegisterMap(
            weight=self.weight.build(),
            function=self.function,
            scale=self.scale,
            decimals=DecimalPoint(self.decimals.build(), self.decimals.bits) if self.decimals else None,
            status=tuple(s.status() for s in self.status),
            heartbeat=Heartbeat(self.heartbeat.build(), self.heartbeat.max_age_s) if self.heartbeat else None,
            tare=self.tare.build() if self.tare else None,
            name=self.name,
        )
