"""Translate between our canonical records and one city's JSON, as its profile says.

Our records keep ISO dates (yyyy-mm-dd, yyyy-mm, ISO date-times with offset) and our value words;
the profile gives the city's key names, date formats and vocabularies. Length limits are checked
here, before anything is sent: a value the city would cut or refuse is an error with a clear
reason, never silently shortened.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from .profile import Profile

DATE_FIELDS = frozenset({"filling_date", "inspection_date", "last_inspection", "registration_date"})
MONTH_FIELDS = frozenset({"next_inspection", "manufacture_month"})
DATETIME_FIELDS = frozenset({"time", "started_at", "finished_at", "updated_at"})
# Fields whose words the profile may translate (profile.values, keyed by the field's name).
VOCABULARY_FIELDS = frozenset({"medium", "status", "node", "tag_kind", "inspection_type"})


class FieldTooLong(ValueError):
    """A value longer than the city accepts: the record needs fixing, not truncating."""


def to_city(profile: Profile, kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """The city's JSON body for one of our records (without the idempotency field)."""
    limits = profile.limits.get(kind, {})
    body: dict[str, Any] = {}
    for ours, theirs in profile.fields[kind].items():
        value = record.get(ours)
        if value is None:
            continue
        value = _outbound(profile, ours, value)
        limit = limits.get(ours)
        if limit is not None and isinstance(value, str) and len(value) > limit:
            raise FieldTooLong(
                f"{kind}.{ours} ({theirs}) is {len(value)} characters, {profile.name} accepts at most {limit}: {value[:40]!r}"
            )
        body[theirs] = value
    return body


def from_city(profile: Profile, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """Our record from the city's JSON: keys renamed, dates to ISO, city words to ours."""
    record: dict[str, Any] = {}
    for ours, theirs in profile.fields[kind].items():
        if theirs in body and body[theirs] not in (None, ""):
            record[ours] = _inbound(profile, ours, body[theirs])
    return record


def format_datetime(profile: Profile, moment: datetime) -> str:
    return moment.strftime(profile.formats.datetime)


def _outbound(profile: Profile, field: str, value: Any) -> Any:
    if field in VOCABULARY_FIELDS:
        return profile.values.get(field, {}).get(value, value)  # type: ignore[call-overload]
    if field in DATE_FIELDS:
        return date.fromisoformat(value).strftime(profile.formats.date)
    if field in MONTH_FIELDS:
        return date.fromisoformat(f"{value}-01").strftime(profile.formats.month)
    if field in DATETIME_FIELDS:
        return datetime.fromisoformat(value).strftime(profile.formats.datetime)
    return value


def _inbound(profile: Profile, field: str, value: Any) -> Any:
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
            return datetime.strptime(str(value), profile.formats.datetime).isoformat()
    except ValueError as exc:
        raise ValueError(f"{field}: {value!r} does not match the profile's format ({exc})") from exc
    return value
