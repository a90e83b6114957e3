"""Shape a finished fill into the city's filling record (spec section 2.2), in our field names.

The outbox stores this canonical form; a city profile maps it to that city's JSON names when the
uploader sends it, so a profile change never rewrites queued records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any


@dataclass(frozen=True)
class Station:
    unit_name: str
    unit_code: str
    region: str
    tz: tzinfo


def outbox_entries(fill: dict[str, Any], station: Station) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, idempotency key, payload) for each record a finished fill owes the city, in the
    order they must arrive: the filling record, then the filling node of the cylinder's trace."""
    return [
        ("filling", fill["id"], filling_record(fill, station)),
        ("trace", f"{fill['id']}:trace", trace_node(fill, station)),
    ]


def trace_node(fill: dict[str, Any], station: Station) -> dict[str, Any]:
    """The 充装 node of the cylinder's trace (spec 2.4); its actor is char(10), so the operator."""
    started = datetime.fromisoformat(fill["started_at"]).astimezone(station.tz)
    return {
        "cylinder_id": fill["cylinder_id"],
        "time": started.isoformat(timespec="seconds"),
        "node": "filling",
        "actor": fill["operator"],
    }


def filling_record(fill: dict[str, Any], station: Station) -> dict[str, Any]:
    """The city's five filling fields plus the station detail a profile may choose to send."""
    started = datetime.fromisoformat(fill["started_at"]).astimezone(station.tz)
    return {
        "cylinder_id": fill["cylinder_id"],
        "medium": fill["medium"],
        "operator": fill["operator"],
        "filling_date": started.date().isoformat(),
        "filling_unit": station.unit_name,
        "unit_code": station.unit_code,
        "region": station.region,
        "idempotency_key": fill["id"],
        "started_at": fill["started_at"],
        "finished_at": fill["finished_at"],
        "net_kg": fill["net_kg"],
        "outcome": fill["outcome"],
        "cause": fill["cause"],
        "checker": fill["checker"],
    }
