"""What the city outbox says was delivered: the rows still in it (sent) and those that left it
delivered, named in the journal's `outbox_delivered` entries (edge.store.delivered)."""

from __future__ import annotations

from edge.store import Store, journal
from edge.store.delivered import DELIVERED


def delivered(store: Store) -> dict[tuple[str, str], str | None]:
    """(kind, fill id or scan point key) -> the city's reply, for every record delivered."""
    found = {(r["kind"], r["fill_id"] or r["idempotency_key"]): r["reply"]
             for r in store.query("SELECT kind, fill_id, idempotency_key, reply FROM outbox WHERE status = 'sent'")}
    for entry in store.query("SELECT data FROM journal WHERE kind = ? AND fill_id IS NULL", [DELIVERED]):
        found.update({(kind, key): reply for _, kind, key, _, reply in journal.load(entry["data"])["rows"]})
    return found


def queued_fills(store: Store) -> set[str]:
    """The fills with a record queued for the city: in the outbox, or delivered and gone from it."""
    waiting = {r["fill_id"] for r in store.query("SELECT DISTINCT fill_id FROM outbox WHERE fill_id IS NOT NULL")}
    return waiting | {key for kind, key in delivered(store) if kind == "filling"}
