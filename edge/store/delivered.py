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
from datetime import datetime, timedelta

from . import journal
from .database import Store, iso, set_meta
from .replay import DELIVERED

DELIVERED_ROWS = "outbox_delivered_rows"  # meta: how many have, in all
# Delivered rows that leave together: one entry per this many (about 50 fills), and never more
# than this many delivered rows kept waiting.
PRUNE_ROWS = 100
# Entries are numbered in commit order, and stamped by the clock of the thread that wrote them:
# lanes' stamps may interleave by a moment, never by this much.
CLOCK_SLACK = timedelta(hours=1)


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


def delivered_fills(store: Store, fill_ids: set[str], since: str | None, kind: str = "filling") -> set[str]:
    """Which of these fills (authorised at `since` or later) had their `kind` record leave the
    outbox delivered, from the entries that say so: from about `since` on, until every one is
    found, so a month's ledger reads the entries of about that month, whatever the years before."""
    found: set[str] = set()
    if not fill_ids:
        return found
    first = 0 if since is None else first_entry_since(store, datetime.fromisoformat(since) - CLOCK_SLACK)
    with closing(store.stream("SELECT data FROM journal WHERE kind = ? AND fill_id IS NULL AND seq >= ? ORDER BY seq",
                              [DELIVERED, first])) as rows:
        for row in rows:
            found.update(key for _, what, key, *_ in journal.load(row["data"])["rows"] if what == kind and key in fill_ids)
            if len(found) == len(fill_ids):
                break
    return found


def first_entry_since(store: Store, moment: datetime) -> int:
    """About the first entry stamped at `moment` or later (the journal has no index by time, its
    numbers rise with it): a binary search over entry numbers, a few dozen lookups."""
    # One aggregate a query: SQLite reads min() or max() of the key from the b-tree's edge only then.
    lo = store.query("SELECT coalesce(min(seq), 0) AS n FROM journal")[0]["n"]
    hi = store.query("SELECT coalesce(max(seq), 0) AS n FROM journal")[0]["n"]
    while lo < hi:
        mid = (lo + hi) // 2
        row = store.query("SELECT ts FROM journal WHERE seq >= ? ORDER BY seq LIMIT 1", [mid])[0]
        if datetime.fromisoformat(row["ts"]) < moment:
            lo = mid + 1
        else:
            hi = mid
    return lo
