"""What every scan point shares: who is acting, how a refusal is said, resolving a scanned code."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from interlock import codes
from interlock.reasons import TEXT, Reason
from interlock.rules import Finding

from ..store import Store, journal
from ..store.database import iso

if TYPE_CHECKING:
    from ..config import Config

ROLES = ("operator", "checker", "manager", "dispatcher")
# Free text the staff type (a vehicle plate, a person's name, a stamp code): printable, one line.
_LINE = re.compile(r"[^\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Actor:
    """A logged-in member of staff."""

    id: str
    name: str
    role: str


class Refused(Exception):
    """A scan point said no: the findings say why, in both languages."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("; ".join(describe(f) for f in findings))

    @classmethod
    def one(cls, reason: Reason, detail: str = "") -> Refused:
        return cls([Finding(reason, detail)])


def describe(finding: Finding) -> str:
    zh, en = TEXT[finding.reason]
    return f"{zh} / {en}" + (f" ({finding.detail})" if finding.detail else "")


def text_field(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if not value or len(value) > limit or not _LINE.fullmatch(value):
        raise ValueError(f"{what}: 1 to {limit} characters on one line")
    return value


def resolve(store: Store, config: Config, scanned: str, source: codes.Source = codes.Source.OPTICAL) -> dict[str, Any]:
    """The cached cylinder row a scanned (or typed) code names, or Refused."""
    patterns = [codes.UrlPattern(re.compile(p.regex), p.kind) for p in config.codes.url_patterns]
    identifier = codes.parse(scanned.encode("utf-8", "replace"), source, patterns)
    if isinstance(identifier, codes.Invalid):
        raise Refused.one(Reason.INVALID_CODE, identifier.detail)
    row = store.cylinder_record(identifier)
    if row is None:
        raise Refused.one(Reason.UNKNOWN_CYLINDER, "no cached record for this code")
    return row


def last_fill(store: Store, cylinder_id: str) -> dict[str, Any] | None:
    """The cylinder's newest fill whose valve opened (one that never started filled nothing)."""
    rows = store.query(
        "SELECT * FROM fills WHERE cylinder_id = ? AND started_at IS NOT NULL ORDER BY started_at DESC LIMIT 1",
        [cylinder_id],
    )
    return rows[0] if rows else None


def summary(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    """What a checker sees of a cylinder: its record, without photos, and its last fill."""
    fill = last_fill(store, row["id"])
    return {
        "id": row["id"],
        "product_no": row.get("product_no"),
        "model": row.get("model"),
        "medium": row.get("medium"),
        "owner_unit": row.get("owner_unit"),
        "status": row.get("status"),
        "next_inspection": row.get("next_inspection"),
        "blocked": row.get("blocked_reason"),
        "last_fill": None if fill is None else {
            k: fill[k] for k in ("id", "lane", "status", "outcome", "net_kg", "target_net_kg", "started_at", "operator")
        },
    }


def queue_upload(conn: sqlite3.Connection, kind: str, key: str, payload: dict[str, Any], now: datetime) -> None:
    """Queue a record for the city in the caller's transaction. No fill_id on the row: a fill's own
    rows hold (fill_id, kind), and a cylinder is checked, dispatched or bound more than once."""
    text = journal.canonical(payload)
    cursor = conn.execute(
        "INSERT INTO outbox (kind, fill_id, idempotency_key, payload, created_at, queued_seq) VALUES (?, NULL, ?, ?, ?, ?)",
        (kind, key, text, iso(now), journal.next_seq(conn)),
    )
    assert cursor.lastrowid is not None
    # What goes upstream is journalled by its digest, so `edge verify` can tell an edited payload.
    journal.append(conn, iso(now), "outbox_queued", {"rows": [journal.queued(cursor.lastrowid, kind, key, text)]})
