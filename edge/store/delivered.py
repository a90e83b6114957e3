"""Delivered rows leave the city outbox.

The outbox is a queue, not the record: the fills rows are, and the journal names every row it
queued by its payload's digest (with the row's id). Once PRUNE_ROWS rows are delivered they leave
the table together, with one journal entry listing them (id, kind, fill or key, when the city took
each, its reply), so a delivered record costs the store nothing more and the chain still says what
went upstream and when. Rows queued before schema 11 (no queued_seq) stay: the checkpoints of that
time digest them.

Light on purpose: `edge status` counts uploads with it, without loading the HTTP client.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime

from . import journal
from .database import Store, iso, set_meta
from .replay import DELIVERED

DELIVERED_ROWS = "outbox_delivered_rows"  # meta: how many have, in all
# Delivered rows that leave together: one entry per this many (about 50 fills), and never more
# than this many delivered rows kept waiting.
PRUNE_ROWS = 100


def prune(conn: sqlite3.Connection, now: datetime, least: int = PRUNE_ROWS) -> int:
    """Delivered rows leave the outbox, with one entry naming them, once there are `least` of them
    (in the caller's transaction); returns how many left. The newest row always stays, so a new
    row never gets the id of one that left (SQLite gives max(id) + 1)."""
    waiting = conn.execute("SELECT count(*) FROM outbox WHERE status = 'sent' AND queued_seq IS NOT NULL").fetchone()[0]
    if waiting < least:
        return 0
    rows = conn.execute(
        "SELECT id, kind, coalesce(fill_id, idempotency_key), sent_at, reply FROM outbox"
        " WHERE status = 'sent' AND queued_seq IS NOT NULL AND id < (SELECT max(id) FROM outbox) ORDER BY id"
    ).fetchall()
    if not rows:
        return 0
    conn.executemany("DELETE FROM outbox WHERE id = ?", [(r[0],) for r in rows])
    journal.append(conn, iso(now), DELIVERED, {"rows": [list(r) for r in rows]})
    before = conn.execute("SELECT value FROM meta WHERE key = ?", (DELIVERED_ROWS,)).fetchone()
    set_meta(conn, DELIVERED_ROWS, str((int(before[0]) if before else 0) + len(rows)))
    return len(rows)


def counts_by_status(store: Store) -> dict[str, int]:
    """Upload rows per status; "sent" counts those that left the outbox delivered too."""
    counts = store.count_by_status("outbox", "sent")
    delivered = int(store.get_meta(DELIVERED_ROWS) or 0)
    if delivered:
        counts["sent"] = counts.get("sent", 0) + delivered
    return counts


def delivered_fills(store: Store, fill_ids: set[str], kind: str = "filling") -> set[str]:
    """Which of these fills' `kind` records left the outbox delivered, from the entries that say so
    (oldest first, until every one is found: a month's fills are found in the entries of about that
    month and after)."""
    found: set[str] = set()
    if not fill_ids:
        return found
    with closing(store.stream("SELECT data FROM journal WHERE kind = ? AND fill_id IS NULL ORDER BY seq", [DELIVERED])) as rows:
        for row in rows:
            found.update(key for _, what, key, *_ in journal.load(row["data"])["rows"] if what == kind and key in fill_ids)
            if len(found) == len(fill_ids):
                break
    return found
