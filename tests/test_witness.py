"""An outside witness for the chain: the head printed on the daily report. A station that rewrites
its history, recomputing every hash from the genesis entry, passes its own verify but not a
witnessed head."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml

from edge.demo.run import BUNDLED_CONFIG, effective_config
from edge.store import audit, journal, packing
from tests.history_support import START, build, cylinders, open_history_store

EDGE = [sys.executable, "-m", "edge.cli"]


def _station(tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "station.db"
    store = open_history_store(db, durable=False)
    try:
        store.upsert_cylinders(cylinders(30), datetime.now(UTC))
        for _ in build(store, 60, ack_every=30):
            pass
    finally:
        store.close()
    raw = yaml.safe_load(effective_config(BUNDLED_CONFIG, tmp_path).read_text(encoding="utf-8"))
    raw["store"]["path"] = str(db)
    config = tmp_path / "station.yaml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return db, config


def _rechain(db: Path) -> None:
    """What a station rewriting its past would do: change a fill (its row and its journal entries),
    then recompute every entry's hash from the genesis and the head, so the chain holds again."""
    with sqlite3.connect(db) as conn:
        fill_id = conn.execute("SELECT id FROM fills WHERE outcome = 'ok' ORDER BY rowid LIMIT 1").fetchone()[0]
        conn.execute("UPDATE fills SET net_kg = 9.9 WHERE id = ?", (fill_id,))
        seq, data = conn.execute("SELECT seq, data FROM journal WHERE fill_id = ? AND kind = 'fill_complete'", (fill_id,)).fetchone()
        conn.execute("UPDATE journal SET data = ? WHERE seq = ?", (packing.pack(journal.canonical({**journal.load(data), "net_kg": 9.9})), seq))
        prev = journal.GENESIS
        rows = conn.execute("SELECT seq, ts, lane, kind, fill_id, cylinder_id, data FROM journal ORDER BY seq").fetchall()
        for row in rows:
            digest = journal.row_hash(prev, {**dict(zip(("seq", "ts", "lane", "kind", "fill_id", "cylinder_id"), row)), "data": packing.unpack(row[6])})
            conn.execute("UPDATE journal SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, row[0]))
            prev = digest
        conn.execute("UPDATE chain_head SET seq = ?, hash = ?", (rows[-1][0], prev))


def test_a_rechained_history_is_caught_against_the_head_a_report_printed(tmp_path: Path) -> None:
    db, config = _station(tmp_path)
    day = START.date().isoformat()
    report = subprocess.run([*EDGE, "report", "daily", day, "--json", "--config", str(config)], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    witness = tmp_path / "report.json"
    witness.write_text(report.stdout, encoding="utf-8")
    head = json.loads(report.stdout)["chain_head"]
    text = subprocess.run([*EDGE, "report", "daily", day, "--config", str(config)], capture_output=True, text=True).stdout
    # (each verify journals its checkpoint: the second report's head is the newer one)
    assert re.search(r"\nchain head: entry \d+ sha256 [0-9a-f]{64}\n", text), text

    ok = subprocess.run([*EDGE, "verify", "--witness", str(witness), "--config", str(config)], capture_output=True, text=True)
    assert ok.returncode == 0 and "witnessed heads: 1 of 1 held" in ok.stdout, ok.stdout + ok.stderr

    _rechain(db)
    # The rewritten history holds together on its own: a full replay finds nothing.
    alone = subprocess.run([*EDGE, "verify", "--full", "--config", str(config)], capture_output=True, text=True)
    assert alone.returncode == 0, alone.stdout
    for extra in ([], ["--full"]):
        caught = subprocess.run([*EDGE, "verify", *extra, "--witness", str(witness), "--config", str(config)],
                                capture_output=True, text=True)
        assert caught.returncode == 1, caught.stdout
        assert f"DIFFERS: entry {head['entry']} has hash" in caught.stdout and "rewritten" in caught.stdout, caught.stdout
    # The printed line works as a witness too, as an inspector would type it from the paper.
    typed = tmp_path / "typed.txt"
    typed.write_text(f"entry {head['entry']} sha256 {head['hash']}\n", encoding="utf-8")
    caught = subprocess.run([*EDGE, "verify", "--witness", str(typed), "--config", str(config)], capture_output=True, text=True)
    assert caught.returncode == 1 and f"DIFFERS: entry {head['entry']} has hash" in caught.stdout, caught.stdout


def test_witness_heads_are_read_as_printed() -> None:
    digest = "ab" * 32
    assert audit.parse_heads(f"chain head: entry 487 sha256 {digest}\n12 {digest.upper()}\n") == [
        audit.Head(487, digest), audit.Head(12, digest)]
    assert audit.parse_heads(json.dumps({"date": "2025-01-01", "chain_head": {"entry": 5, "hash": digest}})) == [audit.Head(5, digest)]


def test_a_witness_file_that_holds_no_head_is_refused(tmp_path: Path) -> None:
    _, config = _station(tmp_path)
    junk = tmp_path / "junk.txt"
    junk.write_text("nothing here\n", encoding="utf-8")
    result = subprocess.run([*EDGE, "verify", "--witness", str(junk), "--config", str(config)], capture_output=True, text=True)
    assert result.returncode == 2 and "no chain head" in result.stderr, result.stderr


def test_each_verified_head_goes_to_the_fleet(tmp_path: Path) -> None:
    from tests.fleet_support import check_payload

    db, _ = _station(tmp_path)
    store = open_history_store(db)  # with the fleet's journal sink, as the daemon and commands open it
    try:
        result = store.audit()
        assert result.ok and result.checkpoint is not None
        rows = store.query("SELECT key, payload FROM fleet_outbox WHERE kind = 'chain_head'")
    finally:
        store.close()
    assert len(rows) == 1
    event = json.loads(rows[0]["payload"])
    check_payload(event)
    assert (event["entry"], event["hash"]) == (result.checkpoint["upto"], result.checkpoint["head"])
