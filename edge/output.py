"""How commands print: human tables by default, one JSON document with --json; errors as one line
(or one JSON document) with a meaningful exit code; progress only on a terminal.

Every command prints its tables through `table()`, so CJK alignment and local times are handled
in one place. Kept free of heavy imports: every command loads it.
"""

from __future__ import annotations

import json
import re
import sys
import time
import unicodedata
from collections.abc import Iterable
from datetime import datetime, tzinfo
from typing import Any, TextIO

EXIT_FAILED = 1
EXIT_INVALID = 2
# An ISO timestamp with an offset, as the store keeps them (UTC); shown to people in local time.
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")


class CommandError(Exception):
    """A command cannot do what was asked: one line for the person, and the exit code."""

    def __init__(self, message: str, code: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.code = code


def emit(data: Any, as_json: bool, human: str) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=None, default=str) if as_json else human)


def emit_error(message: str, code: int, as_json: bool) -> None:
    """Errors go to stderr; with --json as a JSON document, so a program reads them as it reads results."""
    if as_json:
        print(json.dumps({"ok": False, "error": message, "exit_code": code}, ensure_ascii=False), file=sys.stderr)
    else:
        print(message, file=sys.stderr)


def local_time(value: Any, tz: tzinfo | None, timespec: str = "seconds") -> Any:
    """A stored UTC timestamp as the station's local time with its offset; anything else unchanged."""
    if tz is None or not isinstance(value, str) or not _STAMP.match(value):
        return value
    return datetime.fromisoformat(value).astimezone(tz).isoformat(timespec=timespec)


def clock_text(value: Any, tz: tzinfo | None, with_date: bool = True) -> str:
    """A stored UTC timestamp on a page a person reads: the local date and time to the minute (or
    the time alone, to the second) with the offset, as "2026-11-20 09:00 +08:00"; "-" for none."""
    if not isinstance(value, str) or not _STAMP.match(value):
        return "-" if value is None else str(value)
    moment = datetime.fromisoformat(value).astimezone(tz)
    offset = moment.strftime("%z")
    return f"{moment.strftime('%Y-%m-%d %H:%M' if with_date else '%H:%M:%S')} {offset[:3]}:{offset[3:]}"


def number(value: Any, places: int = 3) -> Any:
    """A weight or a duration without binary floating-point tails (15.450000000000001 -> 15.45)."""
    return round(value, places) if isinstance(value, float) else value


def table(rows: Iterable[dict[str, Any]], columns: list[str], tz: tzinfo | None = None,
          headers: dict[str, str] | None = None) -> str:
    """Columns aligned for a terminal (Chinese characters take two columns), times in local time."""
    rows = list(rows)
    if not rows:
        return "(none)"
    titles = [(headers or {}).get(c, c) for c in columns]
    cells = [[cell(row.get(c), tz) for c in columns] for row in rows]
    widths = [max(width(t), *(width(r[i]) for r in cells)) for i, t in enumerate(titles)]
    lines = ["  ".join(_pad(t, w) for t, w in zip(titles, widths)).rstrip()]
    lines += ["  ".join(_pad(v, w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def cell(value: Any, tz: tzinfo | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(number(local_time(value, tz)))


def width(text: str) -> int:
    """Columns on a terminal: wide (CJK) characters take two, combining marks none."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, columns: int) -> str:
    return text + " " * (columns - width(text))


class Progress:
    """One line on stderr, redrawn in place at most a few times a second, and only on a terminal:
    into a pipe or a log file a progress bar is just kilobytes of redraws."""

    def __init__(self, total: int | None, label: str = "", stream: TextIO | None = None, every_s: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.total, self.label, self.every_s = total, label, every_s
        self.enabled = self.stream.isatty()
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._done = 0
        self._note = ""

    def __call__(self, done: int, note: str = "") -> None:
        self._done, self._note = done, note
        now = time.monotonic()
        if self.enabled and (now - self._drawn_at >= self.every_s or (self.total and done >= self.total)):
            self._draw(now)

    def _draw(self, now: float) -> None:
        self._drawn_at = now
        rate = self._done / max(now - self.started, 1e-6)
        if self.total:
            filled = min(30, 30 * self._done // max(self.total, 1))
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {self._done}/{self.total}"
        else:
            bar = f"{self._done}"
        self.stream.write(f"\r{self.label}{bar} {rate:7.1f}/s {self._note}\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


class Problems:
    """(where, what) pairs grouped by what went wrong: one entry per kind of problem with its count
    and the first few places, so one bad header in a 100,000-row file is one line, not 100,000,
    and memory stays bounded however many rows are bad."""

    def __init__(self, first: int = 3, kinds: int = 20) -> None:
        self.first, self.kinds = first, kinds
        self._groups: dict[str, dict[str, Any]] = {}

    def add(self, where: str, what: str) -> None:
        group = self._groups.get(what)
        if group is None:
            if len(self._groups) >= self.kinds:
                what = "other problems"
            group = self._groups.setdefault(what, {"problem": what, "count": 0, "first": []})
        group["count"] += 1
        if len(group["first"]) < self.first:
            group["first"].append(where)

    def groups(self) -> list[dict[str, Any]]:
        return list(self._groups.values())


def summary_lines(groups: list[dict[str, Any]], source: str, unit: str = "line") -> list[str]:
    """`file:3: problem` for a problem seen once; `file: problem: 100000 lines (3, 4, 5 and 99997 more)`."""
    lines = []
    for g in groups:
        if g["count"] == 1:
            lines.append(f"{source}:{g['first'][0]}: {g['problem']}")
            continue
        more = g["count"] - len(g["first"])
        where = ", ".join(g["first"]) + (f" and {more} more" if more else "")
        lines.append(f"{source}: {g['problem']}: {g['count']} {unit}s ({where})")
    return lines
