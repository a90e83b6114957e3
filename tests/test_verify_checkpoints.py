"""Checkpointed `edge verify`: the next run starts from the last checkpoint, yet an edit to any row
or entry the checkpoint covers is still caught, and --full replays everything."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from edge.store import audit, journal
from tests.history_support import build, cylinders, open_history_store
from tests.journal_support import editable


def _history(path: Path, fills: int, first: int = 0) -> None:
    store = open_history_store(path, durable=False)
    try:
        if first == 0:
            from datetime import UTC, datetime

            store.upsert_cylinders(cylinders(40), datetime.now(UTC))
        for _ in build(store, fills, first=first, ack_every=50):
            pass
    finally:
        store.close()


def _audit(path: Path, **kwargs: object) -> audit.Audit:
    store = open_history_store(path)
    try:
        return store.audit(**kwargs)  # type: ignore[arg-type]
    finally:
        store.close()


@pytest.fixture
def checkpointed(tmp_path: Path) -> Path:
    """120 fills verified in full (a checkpoint journalled), then 30 more fills."""
    db = tmp_path / "station.db"
    _history(db, 120)
    first = _audit(db, full=True)
    assert first.ok and first.checkpoint is not None, first.problem()
    _history(db, 30, first=120)
    return db


def test_incremental_verify_starts_at_the_checkpoint_and_rechecks_older_rows(checkpointed: Path) -> None:
    with sqlite3.connect(checkpointed) as conn:
        upto = journal.load(conn.execute("SELECT data FROM journal WHERE kind = 'verified'").fetchone()[0])["upto"]
        total = conn.execute("SELECT max(seq) FROM journal").fetchone()[0]
    result = _audit(checkpointed)
    assert result.ok, result.problem()
    assert result.since == upto and result.chain.entries == total - upto
    assert result.records is not None and result.records.checked["fills"] == 150
    assert result.rechecked_rows == result.older_rows > upto  # the whole (small) history, by digest
    again = _audit(checkpointed)  # from the checkpoint the last run journalled
    assert again.ok and again.since == total and again.chain.entries == 1


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("UPDATE outbox SET payload = replace(payload, '\"net_kg\":', '\"net_kg\":1') WHERE id = ?", ": payload is"),
        ("UPDATE outbox SET idempotency_key = 'other' WHERE id = ?", ": idempotency_key is"),
        ("DELETE FROM outbox WHERE id = ?", ": (row) is 'missing'"),
        ("UPDATE outbox SET queued_seq = queued_seq - 1 WHERE id = ?", ": queued_seq is"),
    ],
)
def test_an_upload_still_waiting_from_before_the_checkpoint_is_held_to_its_entry(tmp_path: Path, sql: str, said: str) -> None:
    """Rows still in the outbox (the city was away) are held to the entry that queued them,
    however old it is: edited, re-pointed or removed without an entry saying it was delivered."""
    db = tmp_path / "station.db"
    store = open_history_store(db, durable=False)
    try:
        from datetime import UTC, datetime

        store.upsert_cylinders(cylinders(40), datetime.now(UTC))
        for _ in build(store, 20, acknowledge=False):
            pass
        assert store.audit(full=True).ok
        for _ in build(store, 10, first=20, acknowledge=False):
            pass
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        upto = journal.load(conn.execute("SELECT data FROM journal WHERE kind = 'verified'").fetchone()[0])["upto"]
        row_id = conn.execute("SELECT min(id) FROM outbox WHERE queued_seq <= ?", (upto,)).fetchone()[0]
        assert conn.execute(sql, (row_id,)).rowcount == 1
    result = _audit(db)
    assert not result.ok and result.checkpoint is None
    problem = result.problem()
    assert problem is not None and problem.startswith(f"outbox row {row_id}") and said in problem, problem


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ("UPDATE fills SET net_kg = 20.0 WHERE rowid = 3", "fills rows"),
        ("UPDATE journal SET data = edit(data, '\"accepted\":false', '\"accepted\":true') WHERE seq ="
         " (SELECT min(seq) FROM journal WHERE kind = 'scan' AND unpack(data) LIKE '%\"accepted\":false%')", "journal entries"),
        ("DELETE FROM fills WHERE rowid = 7", "fills rows"),
    ],
)
def test_an_edit_older_than_the_checkpoint_is_caught_by_the_incremental_verify(checkpointed: Path, sql: str, what: str) -> None:
    with editable(sqlite3.connect(checkpointed)) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        assert conn.execute(sql).rowcount == 1
    result = _audit(checkpointed)
    assert not result.ok and result.checkpoint is None
    assert result.changed and result.changed[0].startswith(what), result.changed
    # Found by digest, then named by the full replay: the entry, or the row and its field.
    problem = result.problem()
    assert problem is not None
    if what == "journal entries":
        assert problem.startswith("journal broken at entry") and "was altered" in problem, problem
    else:
        assert result.records is not None and result.records.first is not None, problem
    assert not _audit(checkpointed, full=True).ok


def test_an_edit_is_caught_within_one_round_of_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a history bigger than one run's budget, each run re-checks the next pieces: an edit to
    any old row is caught by the run whose turn reaches it, within one round of the history."""
    monkeypatch.setattr(audit, "CHUNK", 100)
    db = tmp_path / "station.db"
    _history(db, 120)
    assert _audit(db, full=True).ok  # a checkpoint cut in pieces of 100 rows
    _history(db, 10, first=120)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE fills SET operator = 'op99' WHERE rowid = 60")
    budget = 300
    first = _audit(db, budget=budget)
    rounds = first.older_rows // budget + 2
    caught = first if first.changed else None
    for _ in range(rounds):
        if caught is not None:
            break
        result = _audit(db, budget=budget)
        assert result.rechecked_rows <= budget
        caught = result if result.changed else None
    assert caught is not None and caught.changed[0].startswith("fills rows"), "not caught within a round"


def test_a_new_row_after_the_checkpoint_is_held_to_the_journal(checkpointed: Path) -> None:
    with sqlite3.connect(checkpointed) as conn:
        fill_id = conn.execute("SELECT id FROM fills ORDER BY rowid DESC LIMIT 1").fetchone()[0]
        conn.execute("UPDATE fills SET net_kg = 20.0 WHERE id = ?", (fill_id,))
    result = _audit(checkpointed)
    assert result.records is not None
    first = result.records.first
    assert first is not None and (first.table, first.key, first.field) == ("fills", fill_id, "net_kg")


def test_a_forged_checkpoint_breaks_the_chain(checkpointed: Path) -> None:
    with sqlite3.connect(checkpointed) as conn:
        seq, data = conn.execute("SELECT seq, data FROM journal WHERE kind = 'verified'").fetchone()
        forged = journal.load(data)
        forged["pieces"] = []
        conn.execute("UPDATE journal SET data = ? WHERE seq = ?", (json.dumps(forged), seq))
    result = _audit(checkpointed)
    assert not result.chain.ok and result.chain.first_bad_seq == seq


def test_a_report_rechecks_the_old_rows_it_reads(checkpointed: Path) -> None:
    """A report's verify re-checks the pieces holding its fills, not the round of the whole history."""
    with sqlite3.connect(checkpointed) as conn:
        conn.execute("UPDATE fills SET net_kg = 20.0 WHERE rowid = 3")
    store = open_history_store(checkpointed)
    try:
        assert store.audit_problem(fills=(125, 150)) is None  # a range after the checkpoint: new rows only
        problem = store.audit_problem(fills=(1, 10))
        assert problem is not None and "net_kg is 20.0" in problem, problem
    finally:
        store.close()
