"""A store the previous release wrote opens, migrates and verifies under this one, with every
record, total and pending upload intact (tests/fixtures/build_release_store.py wrote the fixture
with that release's code)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from edge.store.outbox import Outbox
from edge.store.schema import MIGRATIONS
from tests.history_support import open_history_store

FIXTURE = Path(__file__).parent / "fixtures" / "release-store.db"


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


def test_the_previous_release_store_upgrades_and_verifies(tmp_path: Path) -> None:
    db = tmp_path / "station.db"
    shutil.copy(FIXTURE, db)
    with sqlite3.connect(db) as conn:
        old_version = conn.execute("PRAGMA user_version").fetchone()[0]
    assert old_version < len(MIGRATIONS)
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
