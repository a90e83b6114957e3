"""The daemon verifies its journal once a day by itself, and the day's chain head reaches the
company, where it witnesses the station's history against a later rewrite."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.request
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pytest

from edge.cli import main
from edge.config import load_config
from edge.daemon import dailyverify
from edge.daemon.dailyverify import DailyVerify, is_due, last_due
from edge.lanes.lane import utc_now
from tests.conftest import SimStation, write_config
from tests.fleet_support import COMPANY, Broker, LightStation, broker_fixture, company_file, wait_until  # noqa: F401 (the broker fixture)
from tests.history_support import fill
from tests.journal_support import editable
from tests.test_witness import _rechain

SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = time(0, 15)
EDGE = [sys.executable, "-m", "edge.cli"]


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def test_the_verify_falls_due_at_the_local_time_each_day() -> None:
    # Before 00:15 local the due moment is yesterday's; from 00:15 on, today's.
    assert last_due(local("2026-12-04 00:14"), AT, SHANGHAI) == local("2026-12-03 00:15")
    assert last_due(local("2026-12-04 00:15"), AT, SHANGHAI) == local("2026-12-04 00:15")
    # The clock in UTC: 16:20 UTC on the 3rd is 00:20 on the 4th in Shanghai.
    assert last_due(datetime(2026, 12, 3, 16, 20, tzinfo=timezone.utc), AT, SHANGHAI) == local("2026-12-04 00:15")
    # A store never verified is due at once; one verified since the due moment is not.
    assert is_due(None, local("2026-12-04 10:00"), AT, SHANGHAI)
    assert not is_due(local("2026-12-04 00:16"), local("2026-12-04 10:00"), AT, SHANGHAI)
    # A manager's verify at 23:00 counts for that day only; after midnight's due moment it is due again.
    assert not is_due(local("2026-12-03 23:00"), local("2026-12-04 00:14"), AT, SHANGHAI)
    assert is_due(local("2026-12-03 23:00"), local("2026-12-04 00:15"), AT, SHANGHAI)
    # A daemon that was off for a week catches up when it starts.
    assert is_due(local("2026-11-27 00:15"), local("2026-12-04 09:00"), AT, SHANGHAI)


def test_verify_at_is_a_time_of_day(tmp_path: Path) -> None:
    from edge.config import ConfigError

    for bad in ("24:00", "7:5", "noon", "00:60"):
        with pytest.raises(ConfigError, match="verify_at"):
            load_config(write_config(tmp_path, lambda raw, bad=bad: raw["store"].update(verify_at=bad)))
    assert load_config(write_config(tmp_path, lambda raw: raw["store"].update(verify_at="03:30"))).store.verify_at == "03:30"


def _station_config(tmp_path: Path, broker: Broker, station: str) -> Path:
    directory = tmp_path / station
    directory.mkdir()

    def override(raw: dict[str, Any]) -> None:
        raw["fleet"] = {"company": COMPANY, "station_id": station,
                        "broker": json.loads(broker.settings(station).model_dump_json()), "health_interval_s": 1.0}

    return write_config(directory, override)


def _heads(capsys: pytest.CaptureFixture[str], company: Path, station: str) -> list[dict[str, Any]]:
    code = main(["fleet", "heads", station, "--json", "--company", str(company)])
    out = capsys.readouterr().out
    return json.loads(out) if code == 0 else []


def test_the_days_head_reaches_the_company_and_witnesses_a_rewrite(
        tmp_path: Path, broker: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    company = company_file(tmp_path, broker)
    collector = subprocess.Popen([*EDGE, "fleet", "collect", "--company", str(company)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert collector.stdout is not None
    for line in collector.stdout:
        if b"collector connected" in line:
            break
    config_path = _station_config(tmp_path, broker, "st1")
    station = LightStation(load_config(config_path)).start()
    try:
        assert station.service.uplink.wait_connected(10)
        cylinders = [g.row for g in station.dataset if g.scenario == "ok"]
        now = datetime.now(timezone.utc)
        for n in range(12):
            fill(station.store, n, now - timedelta(minutes=30 - n), cylinders[n % len(cylinders)])

        daily = DailyVerify(station.config, station.store, utc_now)
        assert daily.due()
        result = daily.run_once()
        assert result["ok"] is True and result["checkpoint"], result
        assert not daily.due(), "verified since the due moment: not due again today"
        assert daily.status()["last_checkpoint_at"] is not None
        station.service.uplink.wake()
        wait_until(lambda: any(h["entry"] == result["entry"] for h in _heads(capsys, company, "st1")),
                   "the day's head at the company", timeout=15)
    finally:
        station.stop()
        station.close()
        collector.terminate()
        collector.wait(10)

    witness = tmp_path / "heads.json"
    assert main(["fleet", "heads", "st1", "--json", "--company", str(company)]) == 0
    witness.write_text(capsys.readouterr().out, encoding="utf-8")
    held = subprocess.run([*EDGE, "verify", "--witness", str(witness), "--config", str(config_path)],
                          capture_output=True, text=True)
    assert held.returncode == 0 and "witnessed heads: 1 of 1 held" in held.stdout, held.stdout + held.stderr

    # The station rewrites its past, every hash from the genesis on: alone it verifies, but not
    # against the head the company holds.
    store_path = load_config(config_path).store.path
    _rechain(store_path)
    caught = subprocess.run([*EDGE, "verify", "--witness", str(witness), "--config", str(config_path)],
                            capture_output=True, text=True)
    assert caught.returncode == 1 and f"DIFFERS: entry {result['entry']} has hash" in caught.stdout, caught.stdout

    # Another station's heads are not this one's; a station never heard of has none.
    assert main(["fleet", "heads", "st9", "--company", str(company)]) == 1
    assert "no chain head from station 'st9'" in capsys.readouterr().err


def _tamper(store_path: Path) -> None:
    with editable(sqlite3.connect(store_path)) as conn:
        seq = conn.execute("SELECT max(seq) FROM journal WHERE kind = 'fill_complete'").fetchone()[0]
        assert conn.execute("UPDATE journal SET data = edit(data, '\"outcome\"', '\"outcome \"') WHERE seq = ?", (seq,)).rowcount == 1


def _get(s: SimStation, path: str) -> str:
    assert s.station.status is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{s.station.status.port}{path}", timeout=5) as response:
        return response.read().decode()


def test_the_running_daemon_verifies_and_shows_a_failure(
        make_station: Callable[..., SimStation], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dailyverify, "FIRST_LOOK_S", 0.2)
    monkeypatch.setattr(dailyverify, "POLL_S", 0.2)
    s = make_station()
    assert s.station.dailyverify is not None and s.station.store is not None
    s.wait_for(lambda: json.loads(_get(s, "/api/status"))["journal"]["last_run"] is not None,
               "the daemon's own verify", timeout=60)
    journal = json.loads(_get(s, "/api/status"))["journal"]
    assert journal["last_run"]["ok"] is True and journal["last_checkpoint_at"] is not None, journal
    assert s.station.store.query("SELECT count(*) AS n FROM journal WHERE kind = 'verified'")[0]["n"] == 1
    assert "edge_journal_verify_ok 1.0" in _get(s, "/metrics")

    # A fill, then someone edits its journal entry behind the daemon's back. The next run fails,
    # says so on the page and in metrics, and journals no checkpoint over the edit.
    cylinder = s.cylinder()
    verdict = s.start_fill("A", cylinder)
    s.wait("A", "fill_end", timeout=60)
    _tamper(s.config.store.path)
    result = s.station.dailyverify.run_once()
    assert result["ok"] is False and "altered" in result["problem"], result
    journal = json.loads(_get(s, "/api/status"))["journal"]
    assert journal["last_run"]["ok"] is False, journal
    assert "edge_journal_verify_ok 0.0" in _get(s, "/metrics")
    assert s.station.store.query("SELECT count(*) AS n FROM journal WHERE kind = 'verified'")[0]["n"] == 1
    assert verdict["accepted"]


def test_a_failed_run_waits_for_the_next_day(tmp_path: Path) -> None:
    """A store never verified is due; its run fails on an edited entry; it is not started again every
    minute, only at the next day's due moment."""
    from edge.store.opening import open_store
    from tests.test_witness import _station

    db, config_path = _station(tmp_path)
    _tamper(db)
    config = load_config(config_path)
    now = [datetime.now(timezone.utc)]
    store = open_store(config, existing=True)
    try:
        daily = DailyVerify(config, store, lambda: now[0])
        assert daily.due()
        result = daily.run_once()
        assert result["ok"] is False and "altered" in result["problem"], result
        assert not daily.due()
        now[0] += timedelta(days=1)
        assert daily.due()
    finally:
        store.close()
