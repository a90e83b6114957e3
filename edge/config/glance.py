"""A glance at a station config: the few keys a read-only report shows (the station's name and
time zone, the store, the lane ids, the backup's age limit), read without validating the whole file.

Validating a config takes pydantic and every model of this package, about a third of a second
before a command can start. `edge status` reads these keys here; `check-config` and `run` validate
everything. Where these keys cannot be read (no file, not YAML, a key missing or of the wrong
type, an unknown time zone) the file is loaded the full way, so the error is the validator's own,
with its line number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

DEFAULT_TIMEZONE = "Asia/Shanghai"
BACKUP_MAX_AGE_HOURS = 26.0  # a daily backup, with two hours' grace


@dataclass(frozen=True)
class Glance:
    owner_unit: str
    tz: ZoneInfo
    store_path: Path
    lanes: tuple[str, ...]
    backup_max_age_h: float | None = None  # None: no backup: section


class Unreadable(Exception):
    """These keys cannot be read from the file as it stands: load it the full way."""


def glance(path: str | Path) -> Glance:
    try:
        return read(Path(path))
    except Unreadable:
        from .loader import load_config

        config = load_config(path)  # raises ConfigError, naming the file and line
        return Glance(config.station.owner_unit, config.tz, config.store.path, tuple(lane.id for lane in config.lanes),
                      None if config.backup is None else config.backup.max_age_hours)


def read(path: Path) -> Glance:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise Unreadable(str(exc)) from exc
    station, store, lanes = _get(data, "station", dict), _get(data, "store", dict), _get(data, "lanes", list)
    owner_unit = _get(station, "owner_unit", str)
    zone = station.get("timezone", DEFAULT_TIMEZONE)
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise Unreadable(f"timezone {zone!r}") from exc
    ids = tuple(_get(_is(lane, dict), "id", str) for lane in lanes)
    if not owner_unit or not ids:
        raise Unreadable("no station name or no lanes")
    return Glance(owner_unit, tz, Path(_get(store, "path", str)), ids, _backup_max_age(data.get("backup")))


def _backup_max_age(backup: Any) -> float | None:
    if backup is None:
        return None
    value = _is(backup, dict).get("max_age_hours", BACKUP_MAX_AGE_HOURS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise Unreadable("backup.max_age_hours")
    return float(value)


def _get(mapping: Any, key: str, kind: type) -> Any:
    if not isinstance(mapping, dict):
        raise Unreadable("not a mapping")
    return _is(mapping.get(key), kind)


def _is(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise Unreadable(f"expected {kind.__name__}, got {type(value).__name__}")
    return value
