"""The city's cylinder registry as real platforms keep it, not as our refresher would like it.

Switchable behaviours of the simulated registry:

* a page size cap below what the profile documents (the city serves fewer rows than asked,
  and a short page is then not the end of the listing);
* rows added and removed between the pages of a pull (the listing is by offset in change order,
  so a row leaving a page already read shifts an unread row back onto it);
* cylinders leaving the registry: vanishing from every answer, a status word, or a deleted flag,
  each with a "removed since" query when the profile names one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .city_auth import plant

if TYPE_CHECKING:
    from .city import CitySim

log = logging.getLogger(__name__)

REMOVAL_STYLES = ("vanish", "status", "flag")
DEFAULT_STATUS_WORD = "注销"  # deregistered
DEFAULT_DELETED_FIELD = "isDeleted"


@dataclass
class Churn:
    """Registry changes made just after the city serves page `after_page` (1 = the first page,
    whatever the profile's numbering) of a listing: between that page and the next."""

    after_page: int
    add: list[dict[str, Any]] = field(default_factory=list)  # our field names
    remove: list[str] = field(default_factory=list)  # cylinder ids


@dataclass
class RegistryBehaviour:
    page_cap: int | None = None  # the most rows the city serves in one page, whatever it documents
    removal_style: str = "vanish"
    churn: list[Churn] = field(default_factory=list)
    removed: dict[str, datetime] = field(default_factory=dict)  # id -> when it left (city wall time)


def page_size(sim: CitySim, asked: int) -> int:
    size = min(asked, sim.profile.query.max_page_size)
    cap = sim.registry_behaviour.page_cap
    return max(1, min(size, cap) if cap else size)


def during_pull(sim: CitySim, after_page: int, add: list[dict[str, Any]] | None = None,
                remove: list[str] | None = None) -> None:
    """Change the registry once, right after a listing's page `after_page` is next served."""
    with sim.lock:
        sim.registry_behaviour.churn.append(Churn(after_page, add or [], remove or []))


def listing_page_served(sim: CitySim, page: int) -> None:
    """Called after a listing page (1-based) is served: apply the first change armed for that
    point (several armed for the same page apply in successive pulls)."""
    behaviour = sim.registry_behaviour
    with sim.lock:
        due = [c for c in behaviour.churn if c.after_page == page][:1]
        behaviour.churn = [c for c in behaviour.churn if all(c is not d for d in due)]
    for churn in due:
        for row in churn.add:
            sim.put_cylinder(row)
        for cylinder_id in churn.remove:
            remove(sim, cylinder_id)


def remove(sim: CitySim, cylinder_id: str, when: datetime | None = None) -> None:
    """The cylinder leaves the registry, the way this city's switch says it shows that."""
    behaviour, profile = sim.registry_behaviour, sim.profile
    changed = sim.wall_time(when)
    with sim.lock:
        record = sim.registry.get(cylinder_id)
        if record is None:
            raise KeyError(f"no cylinder {cylinder_id} in the simulated registry")
        behaviour.removed[cylinder_id] = changed
        if behaviour.removal_style == "vanish":
            sim.drop(cylinder_id)
        elif behaviour.removal_style == "status":
            words = profile.query.removal.status_words
            record[profile.fields["cylinder"]["status"]] = words[0] if words else DEFAULT_STATUS_WORD
            sim.touch(cylinder_id, changed)
        else:
            record[profile.query.removal.deleted_field or DEFAULT_DELETED_FIELD] = "1"
            sim.touch(cylinder_id, changed)
    log.info("city sim: cylinder %s removed (%s)", cylinder_id, behaviour.removal_style)


def removed_since(sim: CitySim, body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(envelope code, data) for the "removed since" query, or None for a bad time."""
    spec = sim.profile.query.removal.removed_since
    query = sim.profile.query
    assert spec is not None
    try:
        since = datetime.strptime(str(body.get(spec.since, "1970-01-01 00:00:00")), sim.profile.formats.datetime)
        page = int(body.get(query.page, query.first_page))
        size = page_size(sim, int(body.get(query.page_size, 20)))
    except (TypeError, ValueError):
        return None
    with sim.lock:
        ids = sorted((when, cid) for cid, when in sim.registry_behaviour.removed.items() if when >= since)
    start = (page - query.first_page) * size
    rows = [{spec.id: cid} for _, cid in ids[start:start + size]]
    data: dict[str, Any] = {}
    plant(data, spec.records, rows)
    plant(data, spec.total, len(ids))
    return sim.profile.envelope.success, data
