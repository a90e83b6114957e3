"""How the company's tools show what the stations said: each station's times in its own zone with
the offset, reasons in Chinese with their code, and a scanned code by the end that tells it apart
(codes of one registry share their first characters: a QR URL's host and path)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from interlock.reasons import TEXT, Reason

CODE_WIDTH = 22


@cache
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def station_time(ts: Any, zone: str | tzinfo | None = None, with_date: bool = True) -> str:
    """An ISO timestamp in the station's zone (its health names it, or the offset of one of its own
    stamps), with the offset; without a zone a stamp keeps the offset it came with."""
    if not isinstance(ts, str) or not ts:
        return "-"
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:
        return ts[:32]
    tz = _zone(zone) if isinstance(zone, str) else zone
    if tz is not None and moment.tzinfo is not None:
        moment = moment.astimezone(tz)
    text = moment.isoformat(sep=" ", timespec="seconds")
    return text if with_date else text[11:]


def offset_of(ts: Any) -> tzinfo | None:
    """The zone offset a station stamped a payload with."""
    try:
        return datetime.fromisoformat(ts).tzinfo if isinstance(ts, str) else None
    except ValueError:
        return None


def reason_text(code: Any) -> str:
    """'超期未检 (INSPECTION_OVERDUE)': what the operator saw, and the code to search for."""
    try:
        return f"{TEXT[Reason(code)][0]} ({code})"
    except (ValueError, KeyError):
        return str(code)


def code_tail(code: Any, width: int = CODE_WIDTH) -> str:
    """The distinguishing end of a scanned code, marked as cut when it is."""
    text = "" if code is None else str(code)
    return text if len(text) <= width else "…" + text[-(width - 1):]


def age(seconds: Any) -> str:
    """A duration for a person: 42 s, 7 min, 3.5 h, 2.0 d."""
    if not isinstance(seconds, (int, float)):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
