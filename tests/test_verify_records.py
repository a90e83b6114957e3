"""`edge verify` replays the journal: a single edit to a fills row, an outbox payload or a staff or
shift row is named by fill (or row) and field; an untouched store, and one a daemon was killed
in several times, pass."""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edge.config import load_config
from edge.lanes.lane import utc_now
from edge.store import Store, staff

from .conftest import start_sim_station
from .test_crash_restart import EDGE, journal_count, simulated_hardware, start_daemon, wait_for


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store written by a running station: a completed fill (with its outbox rows), a rejected
    scan, a staff member added and put on shift."""
    tmp = tmp_path_factory.mktemp("recorded")
    s = start_sim_station(tmp)
    try:
        for lane in s.station.lanes.values():
            lane.listeners.clear()
        import queue

        s.events = {lane: queue.Queue() for lane in s.station.lanes}
        for lane_id, lane in s.station.lanes.items():
            lane.listeners.append(s.events[lane_id].put)
        verdict = s.start_fill("A", s.cylinder())
        s.wait("A", "fill_end", timeout=30)
        s.scan("B", "not a code")
        assert s.station.store is not None
        now = utc_now()
        staff.add(s.station.store, "op-chen", "陈静", 10, now)
        staff.assign(s.station.store, s.config, "B", "op-chen", "chk-wang", now)
    finally:
        s.station.stop()
        s.sim.stop()
    return {"db": Path(s.config.store.path), "config": tmp / "station.yaml", "fill": verdict["fill_id"]}


def _copy(recorded: dict[str, Any], tmp_path: Path) -> Path:
    db = tmp_path / "station.db"
    shutil.copy(recorded["db"], db)
    return db


def _check(db: Path) -> Any:
    store = Store(db)
    try:
        return store.verify_records()
    finally:
        store.close()


def test_untouched_store_passes(recorded: dict[str, Any]) -> None:
    result = subprocess.run([*EDGE, "verify", "--config", str(recorded["config"]), "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] and data["records_checked"]["fills"] == 1 and data["records_checked"]["outbox"] == 2
    assert data["records_checked"]["staff"] == 4 and data["records_checked"]["shifts"] == 2


FILL_CHANGES = {
    "net_kg": 20.0, "final_gross_kg": 99.0, "start_gross_kg": 1.0, "cutoff_gross_kg": 2.0, "tare_kg": 1.5,
    "target_net_kg": 1.0, "residual_kg": 3.0, "cylinder_id": "CYL-OTHER", "code": "OTHER", "operator": "某人",
    "checker": "某人", "medium": "G1", "status": "aborted", "outcome": "OVERFILLED", "cause": "SCALE_LOST",
    "tripped": 1, "authorised_at": "2020-01-01T00:00:00.000+00:00", "started_at": "2020-01-01T00:00:00.000+00:00",
    "cutoff_at": None, "finished_at": "2020-01-01T00:00:00.000+00:00", "lane": "B",
}


@pytest.mark.parametrize(("column", "value"), sorted(FILL_CHANGES.items()))
def test_any_change_to_a_fill_is_named(recorded: dict[str, Any], tmp_path: Path, column: str, value: Any) -> None:
    db = _copy(recorded, tmp_path)
    with sqlite3.connect(db) as conn:
        assert conn.execute(f"UPDATE fills SET {column} = ? WHERE id = ?", (value, recorded["fill"])).rowcount == 1
    first = _check(db).first
    assert first is not None and (first.table, first.key, first.field) == ("fills", recorded["fill"], column), first


def _edit_payload(payload: str) -> str:
    """One value changed: a mass where the payload carries one, else a name."""
    data = json.loads(payload)
    numbers = [k for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if numbers:
        data[numbers[0]] = 20.0 if data[numbers[0]] != 20.0 else 21.0
    else:
        data["actor"] = "王五"
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("kind", ["filling", "trace"])
@pytest.mark.parametrize("column", ["payload", "idempotency_key"])
def test_any_change_to_an_outbox_row_is_named(recorded: dict[str, Any], tmp_path: Path, kind: str, column: str) -> None:
    db = _copy(recorded, tmp_path)
    with sqlite3.connect(db) as conn:
        row_id, payload = conn.execute("SELECT id, payload FROM outbox WHERE kind = ?", (kind,)).fetchone()
        new = _edit_payload(payload) if column == "payload" else "forged-key"
        conn.execute(f"UPDATE outbox SET {column} = ? WHERE id = ?", (new, row_id))
    first = _check(db).first
    assert first is not None and first.table == "outbox" and first.field == column, first
    assert first.key.startswith(f"{row_id} (fill {recorded['fill']}, {kind})")


@pytest.mark.parametrize(
    ("table", "key_column", "key", "column", "value"),
    [
        ("staff", "id", "op-zhang", "name", "王五"),
        ("staff", "id", "op-chen", "name", "王五"),
        ("staff", "id", "op-chen", "active", 0),
        ("staff", "id", "chk-wang", "source", "command"),
        ("shifts", "lane", "A", "operator", "op-chen"),
        ("shifts", "lane", "B", "checker", "op-zhang"),
    ],
)
def test_any_change_to_staff_or_a_shift_is_named(
    recorded: dict[str, Any], tmp_path: Path, table: str, key_column: str, key: str, column: str, value: Any
) -> None:
    db = _copy(recorded, tmp_path)
    with sqlite3.connect(db) as conn:
        assert conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key_column} = ?", (value, key)).rowcount == 1
    first = _check(db).first
    assert first is not None and (first.table, first.key, first.field) == (table, key, column), first


def test_removed_and_forged_rows_are_named(recorded: dict[str, Any], tmp_path: Path) -> None:
    db = _copy(recorded, tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("DELETE FROM outbox WHERE kind = 'trace'")
        conn.execute("INSERT INTO staff (id, name, source, active, updated_at) VALUES ('ghost', '鬼', 'command', 1, 'x')")
    differences = {(m.table, m.field) for m in _check(db).mismatches}
    assert ("outbox", "(row)") in differences and ("staff", "(row)") in differences
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("DELETE FROM fills WHERE id = ?", (recorded["fill"],))
    first = _check(db).first
    assert first is not None and (first.table, first.key, first.stored) == ("fills", recorded["fill"], "missing")


def test_cli_names_the_fill_and_field_and_the_ledger_refuses(recorded: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "station.yaml"
    db = _copy(recorded, tmp_path)
    config.write_text(recorded["config"].read_text(encoding="utf-8").replace(str(recorded["db"]), str(db)), encoding="utf-8")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE fills SET net_kg = 20.0 WHERE id = ?", (recorded["fill"],))
    verify = subprocess.run([*EDGE, "verify", "--config", str(config)], capture_output=True, text=True)
    assert verify.returncode == 1
    assert f"fill {recorded['fill']}: net_kg is 20.0" in verify.stdout, verify.stdout

    out = tmp_path / "ledger.xlsx"
    refused = subprocess.run([*EDGE, "export", "--config", str(config), "-o", str(out)], capture_output=True, text=True)
    assert refused.returncode == 3 and "net_kg" in refused.stderr and not out.exists(), refused.stderr
    report = subprocess.run([*EDGE, "report", "daily", "--config", str(config)], capture_output=True, text=True)
    assert report.returncode == 3 and recorded["fill"] in report.stderr

    forced = subprocess.run([*EDGE, "export", "--config", str(config), "-o", str(out), "--allow-unverified"],
                            capture_output=True, text=True)
    assert forced.returncode == 0 and "UNVERIFIED" in forced.stderr and "UNVERIFIED" in forced.stdout
    from openpyxl import load_workbook

    assert "UNVERIFIED" in load_workbook(out).active["A1"].value

    # The printed daily report is gated like the rest, and says UNVERIFIED on its page when forced.
    pdf = tmp_path / "daily.pdf"
    day = ["report", "daily", "--config", str(config), "--pdf", str(pdf)]
    refused_pdf = subprocess.run([*EDGE, *day], capture_output=True, text=True)
    assert refused_pdf.returncode == 3 and recorded["fill"] in refused_pdf.stderr and not pdf.exists(), refused_pdf.stderr
    forced_pdf = subprocess.run([*EDGE, *day, "--allow-unverified"], capture_output=True, text=True)
    assert forced_pdf.returncode == 0 and "UNVERIFIED" in forced_pdf.stdout, forced_pdf.stderr
    page = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "UNVERIFIED" in page, page


@pytest.mark.slow
def test_verify_passes_after_a_kill_loop(tmp_path: Path) -> None:
    """SIGKILL a real daemon at random moments of a fill, several times; every start recovers,
    and the records still replay exactly from the journal."""
    sim, config_path, config, _ = simulated_hardware(tmp_path)
    cylinders = [g for g in sim.dataset if g.scenario == "ok" and g.row["model"] == "YSP50"]
    rng = random.Random(11)
    daemon = None
    try:
        for round_no in range(1, 5):
            daemon = start_daemon(config_path)
            wait_for(lambda: journal_count(config, "daemon_start") == round_no, what=f"start {round_no}")
            cylinder = cylinders[round_no]
            sim.station_for("A").model.place(cylinder.row["tare_kg"])
            sim.scanners["A"].scan(cylinder.row["qr_content"])
            wait_for(lambda: journal_count(config, "fill_authorised") == round_no, what="the fill authorised")
            # Anywhere from just after the write-ahead record to well into the fill.
            subprocess.run(["sleep", f"{rng.uniform(0.0, 1.5):.3f}"])
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(10)
        daemon = start_daemon(config_path)
        wait_for(lambda: journal_count(config, "daemon_start") == 5, what="the last start")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0
        verify = subprocess.run([*EDGE, "verify", "--config", str(config_path), "--json"], capture_output=True, text=True)
        data = json.loads(verify.stdout)
        assert verify.returncode == 0 and data["ok"], data
        assert data["records_checked"]["fills"] == 4
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        sim.stop()


def test_scan_point_uploads_without_a_fill_are_held_to_the_journal(tmp_path: Path) -> None:
    """Checks, dispatches and bindings queue city records with no fill, several of one kind per
    cylinder: each is found by its key, and an edit to any one of them is named."""
    from edge.scanpoints.common import queue_upload

    db = tmp_path / "station.db"
    store = Store(db)
    try:
        now = utc_now()
        with store.transaction() as conn:
            queue_upload(conn, "trace", "dispatch:1", {"cylinderId": "CYL-1", "node": "配送"}, now)
            queue_upload(conn, "trace", "dispatch:2", {"cylinderId": "CYL-1", "node": "配送"}, now)
        assert store.verify_records().ok and store.verify().ok
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE outbox SET payload = ? WHERE idempotency_key = 'dispatch:2'", ('{"cylinderId": "CYL-2"}',))
    first = _check(db).first
    assert first is not None and (first.table, first.key, first.field) == ("outbox", "2 (fill None, trace)", "payload"), first
