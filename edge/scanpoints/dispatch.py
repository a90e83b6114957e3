"""Dispatch at the gate: each cylinder leaving on a delivery vehicle, and its 配送 trace node."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from interlock.checks import FillSummary, PostCheck, dispatch_findings
from interlock.reasons import Reason
from interlock.rules import CheckRecord

from ..config import Config
from ..store import Store, journal
from ..store.database import iso
from .checks import latest_postcheck
from .common import Actor, Refused, last_fill, queue_upload, resolve, text_field

log = logging.getLogger(__name__)

PLATE_MAX = 12
# The trace node's actor is char(10) in the city spec: the delivery person's name goes there.
COURIER_MAX = 10


def trip(plate: str, courier: str) -> dict[str, str]:
    """A validated vehicle and delivery person, as the dispatcher entered them."""
    return {"plate": text_field(plate, "vehicle plate", PLATE_MAX).upper(), "courier": text_field(courier, "delivery person", COURIER_MAX)}


def dispatch(store: Store, config: Config, actor: Actor, vehicle: dict[str, str], code: str, now: datetime) -> dict[str, Any]:
    """Let one cylinder leave, or refuse it: its last fill completed, passed its post-fill check
    and is not flagged. An accepted cylinder's 配送 node is queued for the city."""
    row = resolve(store, config, code)
    fill = last_fill(store, row["id"])
    post = None
    if fill is not None:
        check = latest_postcheck(store, row["id"], fill["id"])
        if check is not None:
            record = CheckRecord(bool(check["passed"]), datetime.fromisoformat(check["at"]), check["checker_name"])
            post = PostCheck(record, Reason(check["flag"]) if check["flag"] else None)
    summary = None if fill is None else FillSummary(fill["status"], fill["outcome"])
    findings = dispatch_findings(summary, post, row.get("blocked_reason"), _dispatched(store, fill))
    if findings:
        raise Refused(findings)
    assert fill is not None
    dispatch_id = str(uuid.uuid4())
    entry = {"id": dispatch_id, "cylinder_id": row["id"], "fill_id": fill["id"], "plate": vehicle["plate"],
             "courier": vehicle["courier"], "dispatcher": actor.id, "at": iso(now)}
    node = {"cylinder_id": row["id"], "time": now.astimezone(config.tz).isoformat(timespec="seconds"),
            "node": "dispatch", "actor": vehicle["courier"], "plate": vehicle["plate"]}
    with store.transaction() as conn:
        # Asked again inside the write: two dispatchers scanning the same cylinder at once.
        again = _dispatched(store, fill)
        if again is not None:
            raise Refused.one(Reason.ALREADY_DISPATCHED, f"out at {again}")
        store.db["dispatches"].insert(entry)
        journal.append(conn, iso(now), "dispatch", {**entry, "by": actor.id}, fill_id=fill["id"], cylinder_id=row["id"])
        queue_upload(conn, "trace", f"dispatch:{dispatch_id}", node, now)
    log.info("dispatch %s on %s (%s) by %s", row["id"], vehicle["plate"], vehicle["courier"], actor.id)
    return entry


def _dispatched(store: Store, fill: dict[str, Any] | None) -> str | None:
    """When the fill already left the station (None: it has not)."""
    if fill is None:
        return None
    rows = store.query("SELECT at FROM dispatches WHERE fill_id = ? ORDER BY at LIMIT 1", [fill["id"]])
    return rows[0]["at"] if rows else None


def trip_cylinders(store: Store, vehicle: dict[str, str], since: str) -> list[dict[str, Any]]:
    return store.query(
        "SELECT cylinder_id, at FROM dispatches WHERE plate = ? AND courier = ? AND at >= ? ORDER BY at",
        [vehicle["plate"], vehicle["courier"], since],
    )


def per_vehicle(store: Store, since: str | None, until: str | None) -> list[dict[str, Any]]:
    """Dispatches per vehicle and delivery person in [since, until) (ISO UTC), for the daily report."""
    return store.query(
        "SELECT plate, courier, count(*) AS cylinders FROM dispatches WHERE at >= coalesce(?, '') AND at < coalesce(?, 'z')"
        " GROUP BY plate, courier ORDER BY plate, courier",
        [since, until],
    )
