"""Backup file names and the rotation: which backups a target keeps. Pure.

A name carries the station and the moment (UTC) of its copy: station-<unit>-20260314T020000Z.db.gz.
The rotation only ever considers names of this station's pattern, so other files in a shared
directory (another station's backups, a person's notes) are never deleted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

SUFFIX = ".db.gz"
STAMP = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"^station-(?P<station>[A-Za-z0-9_-]{1,60})-(?P<stamp>\d{8}T\d{6}Z)\.db\.gz$")


def station_slug(unit_code: str) -> str:
    """The station's part of a name: its unit code with anything but letters, digits, - and _ dropped."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "", unit_code)[:60]
    return slug or "station"


def backup_name(station: str, moment: datetime) -> str:
    return f"station-{station}-{moment.astimezone(UTC).strftime(STAMP)}{SUFFIX}"


def parse(name: str, station: str | None = None) -> datetime | None:
    """The moment of a backup named `name` (of `station`, when given); None for any other file."""
    found = _NAME.match(name)
    if found is None or (station is not None and found.group("station") != station):
        return None
    try:
        return datetime.strptime(found.group("stamp"), STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def keep(moments: Iterable[datetime], daily: int, monthly: int) -> set[datetime]:
    """The backups a rotation keeps: the newest of each of the `daily` most recent days that have a
    backup, the newest of each of the `monthly` most recent months, and always the newest."""
    ordered = sorted(set(moments), reverse=True)
    kept: set[datetime] = set(ordered[:1])
    days: set[tuple[int, int, int]] = set()
    months: set[tuple[int, int]] = set()
    for moment in ordered:
        day, month = (moment.year, moment.month, moment.day), (moment.year, moment.month)
        if day not in days and len(days) < daily:
            days.add(day)
            kept.add(moment)
        if month not in months and len(months) < monthly:
            months.add(month)
            kept.add(moment)
    return kept


def to_delete(names: Iterable[str], station: str, daily: int, monthly: int) -> list[str]:
    """The names of this station's backups that the rotation drops, oldest first."""
    ours = {name: moment for name in names if (moment := parse(name, station)) is not None}
    kept = keep(ours.values(), daily, monthly)
    return sorted((name for name, moment in ours.items() if moment not in kept), key=ours.__getitem__)
