"""A store an earlier release wrote opens, migrates and verifies under this one, with every
record, total and pending upload intact (tests/fixtures/build_release_store.py wrote each fixture
with that release's code: schema 8's, schema 9's with a verify's checkpoint over its rows, and
schema 10's with compact hashes and delivered fleet events kept without their bodies)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from edge.store.fleet import FleetOutbox
from edge.store.outbox import Outbox
from edge.store.schema import MIGRATIONS
from tests.history_support import START, build, cylinders, open_history_store
from tests.journal_support import editable

FIXTURES = Path(__file__).parent / "fixtures"
RELEASES = {8: FIXTURES / "release-store.db", 9: FIXTURES / "release-store-v9.db", 10: FIXTURES / "release-store-v10.db"}


def _snapshot(db: Path) -> dict[str, object]:
    with sqlite3.connect(db) as conn:
        return {
            "fills": conn.execute("SELECT * FROM fills ORDER BY id").fetchall(),
            "totals": conn.execute("SELECT count(*), round(sum(net_kg), 3) FROM fills WHERE status = 'complete'").fetchone(),
            "pending": conn.execute("SELECT id, kind, idempotency_key, payload FROM outbox WHERE status = 'pending' ORDER BY id").fetchall(),
            "outbox": conn.execute("SELECT id, kind, fill_id, idempotency_key, payload, status FROM outbox ORDER BY id").fetchall(),
            "staff": conn.execute("SELECT id, name, active FROM staff ORDER BY id").fetchall(),
            "journal": conn.execute("SELECT seq, hash FROM journal ORDER BY seq").fetchall(),
        }


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_an_earlier_release_store_upgrades_and_verifies(tmp_path: Path, release: int) -> None:
    db = tmp_path / "station.db"
    shutil.copy(RELEASES[release], db)
    with sqlite3.connect(db) as conn:
        old_version = conn.execute("PRAGMA user_version").fetchone()[0]
    assert old_version == release < len(MIGRATIONS)
    before = _snapshot(db)
    assert before["pending"] and before["totals"][0] == 30  # type: ignore[index]

    store = open_history_store(db)  # as the daemon opens it: migrates
    try:
        assert store.query("PRAGMA user_version")[0]["user_version"] == len(MIGRATIONS)
        full = store.audit(full=True)
        assert full.ok and full.checkpoint is not None, full.problem()
        incremental = store.audit()
        assert incremental.ok and incremental.since > 0, incremental.problem()
        assert [r.id for r in Outbox(store).next_pending(0, 100)] == [r[0] for r in before["pending"]]  # type: ignore[union-attr]
    finally:
        store.close()
    after = _snapshot(db)
    for key in ("fills", "totals", "pending", "outbox", "staff"):
        assert after[key] == before[key], key
    # The old chain is kept as it was; the checkpoints follow it.
    assert after["journal"][: len(before["journal"])] == before["journal"]  # type: ignore[index]


def _upgraded_v9(tmp_path: Path, release: int = 9) -> Path:
    """A release's store (schema 9's unless said), upgraded, with 10 fills written since in the
    compact form, owed to the city (as the release's last 6 are); their fleet events delivered."""
    db = tmp_path / "station.db"
    shutil.copy(RELEASES[release], db)
    store = open_history_store(db)
    try:
        for _ in build(store, 10, first=30, pool=cylinders(20), acknowledge=False):
            pass
        events = FleetOutbox(store, lambda: START)
        events.delivered([e.id for e in events.pending(0, 100)])
    finally:
        store.close()
    return db


def test_old_and_compact_rows_verify_together(tmp_path: Path) -> None:
    db = _upgraded_v9(tmp_path)
    with sqlite3.connect(db) as conn:
        old = conn.execute("SELECT count(*) FROM journal WHERE prev_hash IS NOT NULL AND typeof(hash) = 'text'").fetchone()[0]
        new = conn.execute("SELECT count(*) FROM journal WHERE prev_hash IS NULL").fetchone()[0]
        # Since schema 11 a row keeps the first 4 bytes of its hash, every 32nd row the whole of it.
        stored = dict(conn.execute("SELECT length(hash), count(*) FROM journal WHERE prev_hash IS NULL GROUP BY 1").fetchall())
        whole = conn.execute("SELECT count(*) FROM journal WHERE prev_hash IS NULL AND (seq % 32 = 0) <> (length(hash) = 32)").fetchone()[0]
        fleet = conn.execute("SELECT count(*) FROM fleet_outbox").fetchone()[0]
        pending = conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending' AND length(payload) > 50").fetchone()[0]
    assert old > 200 and new > 60  # the release's rows as they were, and this one's compact rows
    assert set(stored) == {4, 32} and stored[4] > 10 * stored[32] and whole == 0
    assert fleet == 0  # the events the broker acknowledged are deleted
    assert pending == 12 + 20  # the release's pending uploads and the new ones, with their payloads
    store = open_history_store(db)
    try:
        full = store.audit(full=True)
        assert full.ok, full.problem()
        assert [r.kind for r in Outbox(store).next_pending(0, 100)].count("filling") == 16
    finally:
        store.close()


def test_a_schema_10_store_migrates_and_packed_entries_follow_its_own(tmp_path: Path) -> None:
    db = tmp_path / "station.db"
    shutil.copy(RELEASES[10], db)
    with sqlite3.connect(db) as conn:
        last_old = conn.execute("SELECT max(seq) FROM journal").fetchone()[0]
        fleet = dict(conn.execute("SELECT delivered_at IS NULL, count(*) FROM fleet_outbox GROUP BY 1").fetchall())
        acknowledged = conn.execute("SELECT max(delivered_at) FROM fleet_outbox").fetchone()[0]
        owed = [r[0] for r in conn.execute("SELECT id FROM fleet_outbox WHERE delivered_at IS NULL ORDER BY id")]
        top = conn.execute("SELECT max(id) FROM fleet_outbox").fetchone()[0]
    assert fleet[0] > 20 and fleet[1] > 0  # delivered events kept without their bodies, and some still owed
    store = open_history_store(db)  # migrates
    try:
        assert store.query("SELECT count(*) AS n FROM fleet_outbox")[0]["n"] == fleet[1]  # the delivered ones went
        events = FleetOutbox(store, lambda: START)
        assert events.counts() == {"pending": fleet[1]} and events.last_delivered_at() == acknowledged
        for _ in build(store, 10, first=30, pool=cylinders(20), acknowledge=False):
            pass
        ids = [e.id for e in events.pending(0, 100)]
        assert ids[:len(owed)] == owed and min(ids[len(owed):]) > top  # no id of a deleted event is given again
        events.delivered(ids)
        assert events.counts() == {"pending": 0} and events.last_delivered_at() == START.isoformat(timespec="milliseconds")
        full = store.audit(full=True)
        assert full.ok, full.problem()
        incremental = store.audit()
        assert incremental.ok and incremental.since > last_old, incremental.problem()
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        forms = dict(conn.execute("SELECT typeof(data), count(*) FROM journal GROUP BY 1").fetchall())
        first_packed = conn.execute("SELECT min(seq) FROM journal WHERE typeof(data) = 'blob'").fetchone()[0]
        newest_text = conn.execute("SELECT max(seq) FROM journal WHERE typeof(data) = 'text'").fetchone()[0]
    assert forms["text"] == last_old and forms["blob"] > 60  # the release's entries as they were; this one's packed
    assert newest_text == last_old < first_packed


@pytest.mark.parametrize("edit, found", [
    # A row the release wrote and its checkpoint digested: the digest catches it (the full replay names it).
    ("UPDATE journal SET data = edit(data, 'op', 'xp')"
     " WHERE seq = (SELECT min(seq) FROM journal WHERE kind = 'fill_authorised' AND seq > 5)", "was altered"),
    # A compact entry written since: its 32-byte hash no longer matches.
    ("UPDATE journal SET data = edit(data, 'net_kg', 'net_kh')"
     " WHERE seq = (SELECT max(seq) FROM journal WHERE kind = 'fill_complete')", "was altered"),
    # A payload named by its digest: the payload the city is sent was edited.
    ("UPDATE outbox SET payload = replace(payload, 'op', 'xp') WHERE id = (SELECT max(id) FROM outbox)", "payload"),
    # The copy of the predecessor's hash that a release's row keeps, removed; one added to a compact row.
    ("UPDATE journal SET prev_hash = NULL WHERE seq = 10", "does not link"),
    ("UPDATE journal SET prev_hash = (SELECT hash FROM journal WHERE seq = 10) WHERE seq = 301", "does not link"),
    # A compact row whose stored hash was swapped for another's.
    ("UPDATE journal SET hash = (SELECT hash FROM journal WHERE seq = 300) WHERE seq = 301", "was altered"),
])
def test_edits_to_old_and_compact_rows_are_caught(tmp_path: Path, edit: str, found: str) -> None:
    db = _upgraded_v9(tmp_path)
    store = open_history_store(db)
    try:
        assert store.audit().ok  # a checkpoint over the compact rows too
    finally:
        store.close()
    with editable(sqlite3.connect(db)) as conn:
        assert conn.execute(edit).rowcount == 1
    store = open_history_store(db)
    try:
        incremental, full = store.audit(checkpoint=False), store.audit(full=True, checkpoint=False)
    finally:
        store.close()
    assert not incremental.ok and found in str(incremental.problem()), incremental.problem()
    assert not full.ok, "the full replay misses it"
