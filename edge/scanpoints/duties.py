"""Who did what, read from the records, for the person rule (interlock.duties): who operates each
lane now, who operated a fill, who pre-checked the cylinder a fill relies on."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from interlock.duties import Act, Duty, conflicts

from ..store import Store, journal
from .common import Actor, Refused

if TYPE_CHECKING:
    from ..config import Config


def lane_operator(store: Store, lane: str) -> str | None:
    """The staff id on shift as the lane's operator (None: no shift set)."""
    rows = store.query("SELECT operator FROM shifts WHERE lane = ?", [lane])
    return rows[0]["operator"] if rows else None


def fill_operators(store: Store, fill: dict[str, Any]) -> frozenset[str]:
    """The staff ids that could have operated `fill`: the operator of the lane's shift when it was
    authorised (from the journal), and every id registered under the name the fill records, so a
    person renamed since, or a fill older than the shift journal, still finds its operator."""
    persons: set[str] = set()
    if fill.get("authorised_at"):
        # Shift changes are few: found through the kind index, not by walking the lane's entries.
        shift = store.query(
            "SELECT data FROM journal WHERE kind IN ('shift_changed', 'shift_configured') AND fill_id IS NULL"
            " AND +lane = ? AND +ts <= ?"
            " ORDER BY seq DESC LIMIT 1",
            [fill["lane"], fill["authorised_at"]],
        )
        if shift:
            persons.add(journal.load(shift[0]["data"])["operator"])
    if fill.get("operator"):
        persons.update(r["id"] for r in store.query("SELECT id FROM staff WHERE name = ?", [fill["operator"]]))
    return frozenset(persons)


def refuse_precheck_by_operator(store: Store, config: Config, actor: Actor, medium: str | None) -> None:
    """A pre-fill check may not be recorded by the operator on shift at a lane that fills this
    cylinder's gas: they could then fill what they checked."""
    recorded = [
        Act.by(Duty.OPERATE, lane_operator(store, lane.id)) for lane in config.lanes if lane.medium == medium
    ]
    findings = conflicts(Act.by(Duty.PRECHECK, actor.id), recorded)
    if findings:
        raise Refused(findings[:1])


def refuse_postcheck_by_operator(store: Store, actor: Actor, fill: dict[str, Any]) -> None:
    """A post-fill check may not be recorded by the person who operated the fill."""
    at = datetime.fromisoformat(fill["authorised_at"]) if fill.get("authorised_at") else None
    findings = conflicts(Act.by(Duty.POSTCHECK, actor.id), [Act(Duty.OPERATE, fill_operators(store, fill), at)])
    if findings:
        raise Refused(findings)
