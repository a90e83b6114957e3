"""The outbox table as the uploader and the station manager see it.

Rows are written with their fill (Store.apply_record); here they move to 'sent' or 'dead', and a
manager can put dead ones back. The last success and last error are kept in `meta`, so
`edge sync status` tells the truth after a restart too.

Delivered rows leave the table a hundred at a time (edge.store.delivered).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from sync.uploader import OutboxRow

from . import journal
from .database import Store, iso, set_meta
from .delivered import counts_by_status, prune

LAST_SUCCESS = "sync_last_success_at"
LAST_ERROR = "sync_last_error"
# Since when the city's replies have not been its envelope (a captive portal, a proxy page).
MALFORMED_SINCE = "sync_malformed_since"


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store

    # The uploader's side (sync.uploader.OutboxStore) ---------------------------------------------

    def next_pending(self, after_id: int, limit: int) -> list[OutboxRow]:
        rows = self.store.query(
            "SELECT id, kind, idempotency_key, payload, attempts FROM outbox"
            " WHERE status = 'pending' AND id > ? ORDER BY id LIMIT ?",
            [after_id, limit],
        )
        return [OutboxRow(r["id"], r["kind"], r["idempotency_key"], json.loads(r["payload"]), r["attempts"]) for r in rows]

    def mark_sent(self, row_id: int, now: datetime, reply: str) -> None:
        with self.store.transaction() as conn:
            _sent(conn, row_id, now, reply)
            prune(conn, now)

    def mark_duplicate(self, row_id: int, now: datetime, reason: str) -> None:
        """The city answered "already have it": delivered, and journalled as delivered-as-duplicate
        so a regulator can see which records were acknowledged only that way."""
        with self.store.transaction() as conn:
            _sent(conn, row_id, now, json.dumps({"duplicate": reason}, ensure_ascii=False))
            kind, fill_id = conn.execute("SELECT kind, fill_id FROM outbox WHERE id = ?", (row_id,)).fetchone()
            journal.append(conn, iso(now), "upload_duplicate", {"outbox_id": row_id, "kind": kind, "reply": reason}, fill_id=fill_id)
            prune(conn, now)

    def mark_dead(self, row_id: int, now: datetime, reason: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET status = 'dead', last_error = ?, attempts = attempts + 1, last_attempt_at = ? WHERE id = ?",
                (reason, iso(now), row_id),
            )
            row = conn.execute("SELECT kind, fill_id FROM outbox WHERE id = ?", (row_id,)).fetchone()
            set_meta(conn, LAST_ERROR, json.dumps({"at": iso(now), "error": reason}, ensure_ascii=False))
            conn.execute("DELETE FROM meta WHERE key = ?", (MALFORMED_SINCE,))
            # A record the city refused is a regulatory matter: it goes in the chained journal.
            journal.append(conn, iso(now), "upload_dead", {"outbox_id": row_id, "kind": row[0], "reason": reason}, fill_id=row[1])

    def note_failure(self, row_id: int, now: datetime, error: str, malformed_since: datetime | None = None) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, last_attempt_at = ? WHERE id = ?",
                (error, iso(now), row_id),
            )
            set_meta(conn, LAST_ERROR, json.dumps({"at": iso(now), "error": error}, ensure_ascii=False))
            if malformed_since is not None:
                set_meta(conn, MALFORMED_SINCE, iso(malformed_since))

    def pending_count(self) -> int:
        return int(self.store.query("SELECT count(*) AS n FROM outbox WHERE status = 'pending'")[0]["n"])

    # The station manager's side ------------------------------------------------------------------

    def requeue(self, now: datetime, row_id: int | None = None) -> int:
        """Put one dead row (or, with None, every dead row) back in line; returns how many."""
        with self.store.transaction() as conn:
            where, params = ("AND id = ?", (row_id,)) if row_id is not None else ("", ())
            ids = [r[0] for r in conn.execute(f"SELECT id FROM outbox WHERE status = 'dead' {where}", params)]
            conn.executemany("UPDATE outbox SET status = 'pending' WHERE id = ?", [(i,) for i in ids])
            if ids:
                journal.append(conn, iso(now), "upload_requeued", {"outbox_ids": ids})
        return len(ids)

    def status(self, now: datetime, dead_limit: int = 20) -> dict[str, Any]:
        counts = counts_by_status(self.store)
        oldest = self.store.query("SELECT min(created_at) AS t FROM outbox WHERE status = 'pending'")[0]["t"]
        dead = self.store.query(
            "SELECT id, kind, fill_id, attempts, last_attempt_at, last_error FROM outbox"
            " WHERE status = 'dead' ORDER BY id LIMIT ?",
            [dead_limit],
        )
        last_error = self.store.get_meta(LAST_ERROR)
        return {
            "pending": counts.get("pending", 0),
            "sent": counts.get("sent", 0),
            "dead": counts.get("dead", 0),
            "oldest_pending_age_s": None if oldest is None else round((now - datetime.fromisoformat(oldest)).total_seconds(), 1),
            "dead_letters": dead,
            "last_success_at": self.store.get_meta(LAST_SUCCESS),
            "last_error": None if last_error is None else json.loads(last_error),
            "malformed_since": self.store.get_meta(MALFORMED_SINCE),
        }


def _sent(conn: sqlite3.Connection, row_id: int, now: datetime, reply: str) -> None:
    conn.execute(
        "UPDATE outbox SET status = 'sent', sent_at = ?, reply = ?, attempts = attempts + 1,"
        " last_attempt_at = ? WHERE id = ?",
        (iso(now), reply[:500], iso(now), row_id),
    )
    set_meta(conn, LAST_SUCCESS, iso(now))
    conn.execute("DELETE FROM meta WHERE key = ?", (MALFORMED_SINCE,))

