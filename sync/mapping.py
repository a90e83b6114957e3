"""Translate between our canonical records and one city's JSON, as its profile says.

Our records keep ISO dates (yyyy-mm-dd, yyyy-mm, ISO date-times with offset) and our value words;
the profile gives the city's key names, date formats and vocabularies. Length limits are checked
here, before anything is sent: a value the city would cut or refuse is an error with a clear
reason, never silently shortened.

Time zones: the store keeps instants in UTC; a city writes local wall times without an offset.
Every outgoing date-time is converted to the city's zone (the profile's `formats.timezone`, else
the station's) before it is formatted, and every incoming one is read in that zone and returned
in UTC. Calendar dates (a filling date) are already the station's local dates and pass as they are.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from .profile import Profile

# The station config's default zone; used when neither the profile nor the caller names one.
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")

DATE_FIELDS = frozenset({"filling_date", "inspection_date", "last_inspection", "registration_date"})
MONTH_FIELDS = frozenset({"next_inspection", "manufacture_month"})
DATETIME_FIELDS = frozenset({"time", "started_at", "finished_at", "updated_at"})
# Fields whose words the profile may translate (profile.values, keyed by the field's name).
VOCABULARY_FIELDS = frozenset({"medium", "status", "node", "tag_kind", "inspection_type"})


class FieldTooLong(ValueError):
    """A value longer than the city accepts: the record needs fixing, not truncating."""


def city_zone(profile: Profile, station_tz: tzinfo | None = None) -> tzinfo:
    """The zone the city's wall times are in: the one the profile names, else the station's."""
    if profile.formats.timezone:
        return ZoneInfo(profile.formats.timezone)
    return station_tz or DEFAULT_ZONE


def to_city(profile: Profile, kind: str, record: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    """The city's JSON body for one of our records (without the idempotency field); date-times
    are written as wall times in `tz`, the city's zone (see `city_zone`)."""
    limits = profile.limits.get(kind, {})
    body: dict[str, Any] = {}
    for ours, theirs in profile.fields[kind].items():
        value = record.get(ours)
        if value is None:
            continue
        value = _outbound(profile, ours, value, tz)
        limit = limits.get(ours)
        if limit is not None and isinstance(value, str) and len(value) > limit:
            raise FieldTooLong(
                f"{kind}.{ours} ({theirs}) is {len(value)} characters, {profile.name} accepts at most {limit}: {value[:40]!r}"
            )
        body[theirs] = value
    return body


def from_city(profile: Profile, kind: str, body: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    """Our record from the city's JSON: keys renamed, dates to ISO, date-times read as wall
    times in `tz` and returned in UTC, city words to ours."""
    record: dict[str, Any] = {}
    for ours, theirs in profile.fields[kind].items():
        if theirs in body and body[theirs] not in (None, ""):
            record[ours] = _inbound(profile, ours, body[theirs], tz)
    return record


def format_datetime(profile: Profile, moment: datetime, tz: tzinfo) -> str:
    """An instant as the city's wall time in `tz`. A naive datetime is refused: which zone it
    meant is exactly the question this function exists to answer."""
    if moment.tzinfo is None:
        raise ValueError(f"a timezone-aware instant (got naive {moment.isoformat()})")
    return moment.astimezone(tz).strftime(profile.formats.datetime)


def parse_datetime(profile: Profile, text: str, tz: tzinfo) -> datetime:
    """A city wall time in `tz` (in the profile's format) as an aware UTC instant."""
    return datetime.strptime(text, profile.formats.datetime).replace(tzinfo=tz).astimezone(UTC)


def _instant(value: str | datetime) -> datetime:
    # Our stored instants carry an offset; one without is UTC, as the store writes them.
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _outbound(profile: Profile, field: str, value: Any, tz: tzinfo) -> Any:
    if field in VOCABULARY_FIELDS:
        return profile.values.get(field, {}).get(value, value)  # type: ignore[call-overload]
    if field in DATE_FIELDS:
        return date.fromisoformat(value).strftime(profile.formats.date)
    if field in MONTH_FIELDS:
        return date.fromisoformat(f"{value}-01").strftime(profile.formats.month)
    if field in DATETIME_FIELDS:
        return format_datetime(profile, _instant(value), tz)
    return value


def _inbound(profile: Profile, field: str, value: Any, tz: tzinfo) -> Any:
    if field in VOCABULARY_FIELDS:
        reverse = {theirs: ours for ours, theirs in profile.values.get(field, {}).items()}  # type: ignore[call-overload]
        # A word we have no mapping for is kept as the city wrote it: the rules treat any status
        # other than "in use" as not fillable, which is the safe reading.
        return reverse.get(value, value)
    try:
        if field in DATE_FIELDS:
            return datetime.strptime(str(value), profile.formats.date).date().isoformat()
        if field in MONTH_FIELDS:
            return datetime.strptime(str(value), profile.formats.month).strftime("%Y-%m")
        if field in DATETIME_FIELDS:
            return parse_datetime(profile, str(value), tz).isoformat()
    except ValueError as exc:
        raise ValueError(f"{field}: {value!r} does not match the profile's format ({exc})") from exc
    return value


def cylinder_removed(profile: Profile, body: dict[str, Any]) -> bool:
    """Whether a city cylinder record says it left the registry (a status word or a deleted flag
    the profile names); read from the city's own JSON, before any value mapping."""
    removal = profile.query.removal
    status_key = profile.fields["cylinder"].get("status")
    if status_key and removal.status_words and body.get(status_key) in removal.status_words:
        return True
    if removal.deleted_field:
        flag = body.get(removal.deleted_field)
        return flag is not None and str(flag).strip().lower() in {v.lower() for v in removal.deleted_values}
    return False


def cylinder_from_city(profile: Profile, body: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    """Our cylinder record from the city's JSON, with `removed: True` when the city marks it gone."""
    record = from_city(profile, "cylinder", body, tz)
    if cylinder_removed(profile, body):
        record["removed"] = True
    return record
