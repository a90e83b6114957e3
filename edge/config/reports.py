"""The documents the station writes by itself (`edge reports due`, run by its systemd timer):
where they go, which printer gets them, and the shifts whose hand-over records are due."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Strict

# A CUPS queue name as lpadmin accepts it: printable, no space, slash or '#', and not an option.
PRINTER_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,126}")


class ShiftConfig(Strict):
    """A shift by its local start and end ("08:00"-"20:00"); an end before the start is the next day."""

    name: str = Field(min_length=1, max_length=20)
    start: time
    end: time

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # It names the shift's files (shift-2026-11-20-早班.pdf): nothing a path or a shell reads otherwise.
        if not value.isprintable() or value != value.strip() or set(value) & set("/\\.*?\"'`$"):
            raise ValueError("a shift name of printable characters without / \\ . * ? quotes, $ or edge spaces (早班)")
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock_time(cls, value: object) -> object:
        # Unquoted, YAML reads 08:00 as the number 480 (base 60): a time is only ever a quoted "HH:MM".
        if isinstance(value, time):
            return value
        if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError('a local time as a quoted "HH:MM" ("08:00")')
        return value

    @model_validator(mode="after")
    def _some_length(self) -> ShiftConfig:
        if self.start == self.end:
            raise ValueError("a shift whose end differs from its start")
        return self


class ReportsConfig(Strict):
    folder: Path = Path("/var/lib/station-edge/reports")
    # A CUPS queue (`lpstat -p` lists them); unset, nothing is printed.
    printer: str | None = None
    paper: Literal["a4", "a3"] = "a4"  # the ledger's printed sheet
    shifts: list[ShiftConfig] = Field(default_factory=list, max_length=6)

    @field_validator("printer")
    @classmethod
    def _queue_name(cls, value: str | None) -> str | None:
        if value is not None and not PRINTER_PATTERN.fullmatch(value):
            raise ValueError("a CUPS printer name (letters, digits, _ . @ -; as `lpstat -p` lists it)")
        return value

    @model_validator(mode="after")
    def _distinct_shifts(self) -> ReportsConfig:
        names = [shift.name for shift in self.shifts]
        if len(set(names)) != len(names):
            raise ValueError("shifts with distinct names")
        ends = [shift.end for shift in self.shifts]
        if len(set(ends)) != len(ends):
            raise ValueError("shifts that end at distinct times")
        return self
