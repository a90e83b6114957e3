"""Event payloads from the station's own rows: a finished fill, a rejected scan, the journal's head.
Stamped in the station's time zone, with its offset."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from .protocol import envelope

OVERFILL_MARKS = frozenset({"OVERFILLED", "OVERFILL_LIMIT"})
_FILL_FIELDS = (
    "lane", "cylinder_id", "code", "medium", "operator", "checker", "status", "outcome", "cause",
    "tare_kg", "target_net_kg", "net_kg", "final_gross_kg", "authorised_at", "started_at", "finished_at",
)


def fill_event(fill: dict[str, Any], company: str, station: str, tz: tzinfo, ts: datetime) -> dict[str, Any]:
    """A finished fill (complete or aborted). Its key is the fill id, unique across the company."""
    moment = fill["started_at"] or fill["authorised_at"]
    day = datetime.fromisoformat(moment).astimezone(tz).date().isoformat() if moment else ts.astimezone(tz).date().isoformat()
    return envelope(
        "fill", company, station, ts.astimezone(tz),
        key=fill["id"],
        fill_id=fill["id"],
        day=day,
        valve_opened=fill["started_at"] is not None,
        tripped=bool(fill["tripped"]),
        overfilled=fill["outcome"] in OVERFILL_MARKS or fill["cause"] in OVERFILL_MARKS,
        **{name: fill.get(name) for name in _FILL_FIELDS},
    )


def scan_event(key: str, lane: str | None, data: dict[str, Any], company: str, station: str, tz: tzinfo, ts: datetime) -> dict[str, Any]:
    """A scan the lane refused, with the reasons the operator was shown."""
    return envelope(
        "scan", company, station, ts.astimezone(tz),
        key=key,
        lane=lane,
        day=ts.astimezone(tz).date().isoformat(),
        code=str(data.get("code", ""))[:200],
        cylinder_id=data.get("cylinder_id"),
        reasons=list(data.get("reasons", [])),
        details=[str(d)[:200] for d in data.get("details", [])],
    )


def chain_head_event(entry: int, digest: str, company: str, station: str, tz: tzinfo, ts: datetime) -> dict[str, Any]:
    """The journal's head as a verify proved it: kept by the company, it witnesses the station's
    history (`edge verify --witness`), which the station could otherwise rewrite from its start."""
    return envelope(
        "chain_head", company, station, ts,
        key=f"{station}:head:{entry}",
        entry=entry,
        hash=digest,
        day=ts.astimezone(tz).date().isoformat(),
    )
