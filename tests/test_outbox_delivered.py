"""Delivered records leave the city outbox a hundred at a time, with one journal entry naming them:
the store stops growing by a delivered record's payload, and still says what went upstream and when.
What is left (rows still waiting, and the entries) is held to the journal: a row put back, removed
or edited is caught."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.manager import ledger
from edge.store import Store, journal
from edge.store.delivered import DELIVERED, PRUNE_ROWS
from edge.store.outbox import Outbox
from tests.city_support import TZ
from tests.history_support import START, build, cylinders, open_history_store

FILLS = 60  # two rows each (filling record and trace node): 120 rows


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_history_store(tmp_path / "station.db", fleet=False, durable=False)
    opened.upsert_cylinders(cylinders(40), datetime.now(UTC))
    for _ in build(opened, FILLS, fleet=False, acknowledge=False):
        pass
    yield opened
    opened.close()


def _deliver_all(store: Store, at: datetime) -> None:
    outbox = Outbox(store)
    for row in outbox.next_pending(0, 1000):
        outbox.mark_sent(row.id, at, '{"code":0,"msg":"ok"}')


def test_delivered_rows_leave_together_with_one_entry_and_are_still_counted(store: Store) -> None:
    at = START + timedelta(days=1)
    queued = store.query("SELECT id, kind, fill_id FROM outbox ORDER BY id")
    ids = [r["id"] for r in queued]
    assert len(ids) == 2 * FILLS
    _deliver_all(store, at)
    # The hundredth delivery took the hundred with it; the twenty after it wait for the next round.
    left = [r["id"] for r in store.query("SELECT id FROM outbox ORDER BY id")]
    assert left == ids[PRUNE_ROWS:]
    [entry] = store.query("SELECT data FROM journal WHERE kind = ?", [DELIVERED])
    rows = journal.load(entry["data"])["rows"]
    assert [r[0] for r in rows] == ids[:PRUNE_ROWS]
    # Each: id, kind, the fill (or a scan point's key), when the city took it, and its reply.
    assert rows[:2] == [[q["id"], q["kind"], q["fill_id"], at.isoformat(timespec="milliseconds"), '{"code":0,"msg":"ok"}']
                        for q in queued[:2]]
    status = Outbox(store).status(at)
    assert (status["sent"], status["pending"], status["dead"]) == (2 * FILLS, 0, 0)
    assert store.audit(full=True).ok and store.audit().ok


def test_the_ledger_says_delivered_for_records_that_left_the_outbox(store: Store) -> None:
    _deliver_all(store, START + timedelta(days=1))
    rows = ledger.ledger_rows(store, TZ, ledger.Filters(), "unit")
    assert len(rows) == FILLS and {r["uploaded"] for r in rows} == {"已上传"}


def test_the_newest_row_stays_so_an_id_is_never_given_twice(store: Store) -> None:
    at = START + timedelta(days=1)
    outbox = Outbox(store)
    for row in outbox.next_pending(0, 1000)[:PRUNE_ROWS + 1]:
        outbox.mark_sent(row.id, at, "{}")
    newest = store.query("SELECT max(id) AS n FROM outbox")[0]["n"]
    # Every row but the newest delivered: they leave, the newest stays.
    store.query("UPDATE outbox SET status = 'sent' WHERE id < ?", [newest])
    with store.transaction() as conn:
        from edge.store.delivered import prune

        assert prune(conn, at, least=1) > 0
    assert [r["id"] for r in store.query("SELECT id FROM outbox")] == [newest]
    assert store.audit().ok


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        # A delivered row put back (or one made up) is in the outbox, yet no entry has it waiting.
        ("INSERT INTO outbox SELECT * FROM delivered_copy WHERE id = 1", "outbox row 1 (fill"),
        # A waiting row removed without an entry saying it was delivered.
        ("DELETE FROM outbox WHERE id = (SELECT max(id) FROM outbox)", "(row) is 'missing'"),
        # A waiting row's payload edited.
        ("UPDATE outbox SET payload = replace(payload, '\"node\":', '\"node\":1') WHERE id = (SELECT max(id) FROM outbox)",
         ": payload is"),
    ],
)
def test_what_is_left_is_held_to_the_journal(tmp_path: Path, store: Store, sql: str, said: str) -> None:
    store.query("CREATE TABLE delivered_copy AS SELECT * FROM outbox")
    _deliver_all(store, START + timedelta(days=1))
    assert store.audit().ok  # a checkpoint: what follows is caught by the incremental verify too
    with sqlite3.connect(store.path) as conn:
        assert conn.execute(sql).rowcount == 1
    for full in (False, True):
        result = store.audit(full=full)
        assert not result.ok and result.checkpoint is None
        problem = result.problem()
        assert problem is not None and said in problem, problem


def test_a_daemon_restart_keeps_counting_what_was_delivered(tmp_path: Path, store: Store) -> None:
    _deliver_all(store, START + timedelta(days=1))
    path = store.path
    store.close()
    reopened = Store(path, readonly=True)
    try:
        from edge.store.delivered import counts_by_status

        assert counts_by_status(reopened) == {"sent": 2 * FILLS}
    finally:
        reopened.close()


def test_a_schema_10_store_keeps_its_rows_and_the_new_ones_leave(tmp_path: Path) -> None:
    """Upgraded in place: the rows the last release queued stay (delivered or not: its checkpoint
    digests them), the ones queued since leave once delivered, and both verify together."""
    db = tmp_path / "station.db"
    shutil.copy(Path(__file__).parent / "fixtures" / "release-store-v10.db", db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 10
        old = conn.execute("SELECT id, status FROM outbox ORDER BY id").fetchall()
    assert {status for _, status in old} == {"sent", "pending"}
    upgraded = open_history_store(db, durable=False)
    try:
        for _ in build(upgraded, FILLS, first=30, pool=cylinders(20), acknowledge=False):
            pass
        _deliver_all(upgraded, START + timedelta(days=1))
        kept = upgraded.query("SELECT id, status, queued_seq FROM outbox ORDER BY id")
        # Every old row stays (now all sent); of the new ones, those past the hundredth delivery wait.
        assert [(r["id"], r["status"]) for r in kept[: len(old)]] == [(i, "sent") for i, _ in old]
        assert all(r["queued_seq"] is None for r in kept[: len(old)])
        assert len(kept) == len(old) + 2 * FILLS - PRUNE_ROWS
        status = Outbox(upgraded).status(START)
        assert status["sent"] == len(old) + 2 * FILLS and status["pending"] == 0
        for full in (True, False):
            result = upgraded.audit(full=full)
            assert result.ok, result.problem()
    finally:
        upgraded.close()


def test_a_ledger_finds_its_deliveries_from_about_its_own_dates(store: Store) -> None:
    """Entries are numbered as they are written, their stamps rising with them up to the moments
    lanes interleave by (here a fill's milestones are written together, a minute ahead): the search
    lands at about the first entry of a moment, so a month's ledger does not read the deliveries of
    the years before, and no entry stamped clearly after the moment lies before where it lands."""
    from edge.store.delivered import first_entry_since

    stamps = [(r["seq"], datetime.fromisoformat(r["ts"])) for r in store.query("SELECT seq, ts FROM journal ORDER BY seq")]
    for _, moment in stamps[:: len(stamps) // 7]:
        found = first_entry_since(store, moment)
        assert all(s >= found for s, at in stamps if at >= moment + timedelta(minutes=2))
        assert all(at < moment + timedelta(minutes=2) for s, at in stamps if s < found)
    assert first_entry_since(store, stamps[-1][1] + timedelta(days=1)) == stamps[-1][0]
