"""The company's side: the event database and its reports (SQLite, and PostgreSQL where a server
can be started), and the `edge fleet` commands run as a company would run them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo
from typing import Any

import pytest

from edge.cli import main
from edge.output import table
from fleet import reports
from fleet.database import EventDatabase
from sync.fleet.protocol import envelope
from tests.fleet_support import (  # noqa: F401 (the broker fixture)
    COMPANY,
    Broker,
    LightStation,
    broker_fixture,
    check_payload,
    company_file,
    postgres_url,
    station_config,
    wait_until,
)

TS = datetime(2026, 5, 2, 3, 0, tzinfo=timezone.utc)


def fill(station: str, key: str, day: str, overfilled: bool = False, opened: bool = True, net_kg: float = 14.5,
         status: str = "complete", tripped: bool = False) -> dict[str, Any]:
    return envelope("fill", COMPANY, station, TS, key=key, fill_id=key, day=day, valve_opened=opened, tripped=tripped,
                    overfilled=overfilled, lane="A", cylinder_id=f"c-{key}", status=status, net_kg=net_kg if opened else None,
                    outcome="OVERFILLED" if overfilled else "ok")


def scan(station: str, key: str, cylinder: str | None, code: str = "x", reasons: tuple[str, ...] = ("BLOCKED_LOCALLY",)) -> dict[str, Any]:
    return envelope("scan", COMPANY, station, TS, key=key, lane="A", day="2026-05-02", code=code, cylinder_id=cylinder,
                    reasons=list(reasons), details=[""])


UNKNOWN = "https://qr.gas-registry.example.cn/c?id=ZZ-0000000000000000000000000017"


def exercise_reports(db: EventDatabase) -> None:
    events = [
        fill("st1", "f1", "2026-05-01"), fill("st1", "f2", "2026-05-01", overfilled=True, net_kg=15.25),
        fill("st1", "f3", "2026-05-02", status="aborted", tripped=True, net_kg=3.0),
        fill("st2", "f4", "2026-05-01"), fill("st2", "f5", "2026-05-01", opened=False, status="aborted"),  # never opened: not a fill
        scan("st1", "s1", "CYL-X"), scan("st2", "s2", "CYL-X"), scan("st2", "s3", "CYL-X"),
        scan("st1", "s4", "CYL-Y"), scan("st1", "s5", "CYL-Y"),
        # A code no station knows, tried at two stations: the suspicious case.
        scan("st3", "s6", None, code=UNKNOWN, reasons=("NOT_REGISTERED",)),
        scan("st1", "s7", None, code=UNKNOWN, reasons=("NOT_REGISTERED",)),
        scan("st3", "s8", None, code="junk", reasons=("INVALID_CODE",)),
    ]
    for event in events:
        check_payload(event)
        assert db.add_event(event, TS.isoformat())
    assert not db.add_event(fill("st1", "f2", "2026-05-01", overfilled=True), TS.isoformat())  # a redelivery
    assert db.add_event(fill("st2", "f2", "2026-05-01"), TS.isoformat())  # same key, other station: its own
    days = [{k: d[k] for k in ("station", "day", "fills", "kg", "overfills", "trips", "aborts", "refusals")}
            for d in reports.daily(db)]
    assert days == [
        {"station": "st1", "day": "2026-05-01", "fills": 2, "kg": 29.75, "overfills": 1, "trips": 0, "aborts": 0, "refusals": {}},
        {"station": "st2", "day": "2026-05-01", "fills": 2, "kg": 29.0, "overfills": 0, "trips": 0, "aborts": 1, "refusals": {}},
        {"station": "st1", "day": "2026-05-02", "fills": 1, "kg": 3.0, "overfills": 0, "trips": 1, "aborts": 1,
         "refusals": {"BLOCKED_LOCALLY": 3, "NOT_REGISTERED": 1}},
        {"station": "st2", "day": "2026-05-02", "fills": 0, "kg": 0.0, "overfills": 0, "trips": 0, "aborts": 0,
         "refusals": {"BLOCKED_LOCALLY": 2}},
        {"station": "st3", "day": "2026-05-02", "fills": 0, "kg": 0.0, "overfills": 0, "trips": 0, "aborts": 0,
         "refusals": {"NOT_REGISTERED": 1, "INVALID_CODE": 1}},
    ]
    assert [d["station"] for d in reports.daily(db, since_day="2026-05-02")] == ["st1", "st2", "st3"]
    several = reports.refused_at_several_stations(db)
    assert [(r["code"], r["cylinder_id"], r["stations"]) for r in several] == [
        (UNKNOWN, None, {"st1": 1, "st3": 1}),
        (None, "CYL-X", {"st1": 1, "st2": 2}),
    ]
    text = reports.render({"days": reports.daily(db), "backlogs": reports.backlogs(db), "refused_at_several_stations": several,
                           "quarantined": db.quarantine_count()}, table)
    assert "未办理使用登记 (NOT_REGISTERED) 1" in text and "本站已锁定该气瓶 (BLOCKED_LOCALLY) 3" in text
    assert "…" + UNKNOWN[-21:] in text and "(no station knows it)" in text


def test_reports_on_sqlite(tmp_path: Path) -> None:
    db = EventDatabase(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        exercise_reports(db)
    finally:
        db.close()


def test_a_database_url_that_is_neither(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sqlite:///PATH or postgresql://"):
        EventDatabase("mysql://x")


def edge(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def collected(path: Path) -> int:
    if not path.exists():
        return 0
    db = EventDatabase(f"sqlite:///{path}")
    try:
        return db.count("scan")
    finally:
        db.close()


def test_the_company_console(tmp_path: Path, broker: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    company = company_file(tmp_path, broker)
    collector = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "fleet", "collect", "--company", str(company)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert collector.stdout is not None
    # Its first run: the broker queues events for the collector's session from its first subscription on.
    for line in collector.stdout:
        if b"collector connected" in line:
            break
    stations = {name: LightStation(station_config(tmp_path, broker, name)).start() for name in ("st1", "st2")}
    try:
        for s in stations.values():
            assert s.service.uplink.wait_connected(10)
        row = [g.row for g in stations["st1"].dataset if g.scenario == "ok"][0]
        code, out = edge(capsys, "fleet", "block", row["rfid"] or row["info_code"], "--reason", "reported stolen",
                         "--company", str(company))
        assert code == 0, out
        assert "st1" in out and "st2" in out and out.count(f"applied  cylinder {row['id']} blocked") == 2
        # Both stations now refuse it; their rejected scans reach the collector.
        for s in stations.values():
            s.store.journal(datetime.now(timezone.utc), "scan", {"code": row["qr_content"], "accepted": False,
                            "reasons": ["BLOCKED_LOCALLY"], "details": ["fleet: reported stolen"], "cylinder_id": row["id"]}, lane="A")
            s.service.uplink.wake()
        code, out = edge(capsys, "fleet", "lock", "st2", "--lane", "B", "--reason", "x", "--company", str(company), "--json")
        reply = json.loads(out)
        assert code == 1 and reply["replies"]["st2"]["outcome"] == "refused"  # st2 has no lane B here
        code, out = edge(capsys, "fleet", "watch", "--once", "--company", str(company))
        assert code == 0 and "st1" in out and "st2" in out and "OFFLINE" not in out
        code, out = edge(capsys, "fleet", "status", "st1", "--company", str(company), "--json")
        status = json.loads(out)["replies"]["st1"]
        check_payload(status)
        assert status["status"]["fleet_blocks"] == 1
        db = tmp_path / "company" / "fleet.db"
        wait_until(lambda: collected(db) == 2, "both refusals collected")
    finally:
        for s in stations.values():
            s.stop()
            s.close()
        collector.send_signal(signal.SIGTERM)
        output = collector.communicate(timeout=10)[0].decode(errors="replace")
    code, out = edge(capsys, "fleet", "report", "--company", str(company), "--json")
    several = json.loads(out)["refused_at_several_stations"]
    assert [(r["cylinder_id"], r["stations"]) for r in several] == [(row["id"], {"st1": 1, "st2": 1})]
    assert collector.returncode == 0, output


def test_a_company_config_with_a_mistake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "company.yaml"
    path.write_text("company: acme\nsender: x\nbroker: {host: h, username: u, password: p, portt: 1}\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["fleet", "watch", "--company", str(path)])
    assert exit_.value.code == 2
    assert "broker.portt: Extra inputs are not permitted" in capsys.readouterr().err


def test_reports_on_postgresql(postgres_url: str) -> None:
    db = EventDatabase(postgres_url)
    try:
        exercise_reports(db)
    finally:
        db.close()


def test_the_watch_and_report_read_in_station_time_and_chinese(
    tmp_path: Path, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleet.collector import Collector
    from fleet.config import load_company_config

    company = company_file(tmp_path, broker)
    config = load_company_config(company)
    collector = Collector(config, EventDatabase(config.database, base=company.parent))
    collector.start()
    assert collector.connected.wait(10)
    online = LightStation(station_config(tmp_path, broker, "st1")).start()
    gone = LightStation(station_config(tmp_path, broker, "st2")).start()
    try:
        assert online.service.uplink.wait_connected(10) and gone.service.uplink.wait_connected(10)
        gone.stop()  # says goodbye: offline since now
        long_code = "https://qr.gas-registry.example.cn/c?id=ZZ-0000000000000000000000000042"
        online.store.journal(datetime.now(timezone.utc), "scan", {"code": long_code, "accepted": False,
                             "reasons": ["NOT_REGISTERED"], "details": [""], "cylinder_id": None}, lane="A")
        online.service.uplink.wake()
        wait_until(lambda: collector.stored == 1 and len(collector.db.stations()) == 2, "the scan and both healths collected")
        # A health report sent before the broker acknowledged the scan still counts it as owed.
        wait_until(lambda: any(row["station"] == "st1" and (row["health"].get("outbox") or {}).get("pending") == 0
                               for row in collector.db.stations()), "a health report after the scan was delivered")
        code, out = edge(capsys, "fleet", "watch", "--once", "--company", str(company))
        assert code == 0, out
        header = out.splitlines()[0]
        assert header.startswith("acme fleet  20") and "last update" in header and "quarantined 0" in header
        st1 = next(line for line in out.splitlines() if line.startswith("st1 "))
        assert "online  v" in st1 and "cache" in st1 and "backlog: 0 events, 0 uploads, 0 dead letters" in st1
        assert "+08:00" in st1  # the station's own zone (Asia/Shanghai), with the offset
        st2 = next(line for line in out.splitlines() if line.startswith("st2 "))
        assert "OFFLINE since 20" in st2 and "+08:00: stopped" in st2
        code, out = edge(capsys, "fleet", "report", "--company", str(company))
        assert "未办理使用登记 (NOT_REGISTERED) 1" in out
        assert "+08:00" in out and "quarantined messages: 0" in out
    finally:
        online.stop()
        online.close()
        gone.close()
        collector.stop()
        collector.db.close()


def test_the_live_view_shows_station_time_reasons_in_chinese_and_a_codes_tail() -> None:
    from fleet.console import FleetView

    view = FleetView(company=COMPANY)
    local = datetime(2026, 5, 2, 11, 0, 5, tzinfo=timezone.utc).astimezone(ZoneInfo("Asia/Shanghai"))
    view.update("acme/st1/health", envelope("health", COMPANY, "st1", local, online=True, version="0.2.0", tz="Asia/Shanghai",
                                            outbox={"pending": 4, "delivered": 9}, uploads={"pending": 2, "dead": 1},
                                            cache_age_s=420.0))
    view.update("acme/st1/event/scan", {**scan("st1", "s1", None, code=UNKNOWN, reasons=("NOT_REGISTERED",)),
                                        "ts": "2026-05-02T03:00:00.000+00:00"})
    text = view.render(now=datetime(2026, 5, 2, 3, 0, 10, tzinfo=timezone.utc), quarantined=3)
    assert "acme fleet" in text.splitlines()[0] and "quarantined 3" in text.splitlines()[0]
    assert "online  v0.2.0  cache 7 min old  backlog: 4 events, 2 uploads, 1 dead letters" in text
    event = text.splitlines()[-1]
    # In the station's zone (a UTC stamp from before this release too), the code's distinguishing end.
    assert "2026-05-02 11:00:00+08:00" in event and "…" + UNKNOWN[-21:] in event
    assert "未办理使用登记 (NOT_REGISTERED)" in event


def test_the_stations_outbox_view_in_its_own_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.config import load_config
    from edge.daemon.station import open_store
    from edge.store.fleet import FleetLedger, FleetOutbox
    from tests.conftest import write_config

    def override(raw: dict[str, Any]) -> None:
        raw["fleet"] = {"company": COMPANY, "station_id": "st1", "broker": {"host": "127.0.0.1", "username": "st1", "password": "x"}}

    path = write_config(tmp_path, override)
    store = open_store(load_config(path))
    FleetLedger(store).block(datetime(2026, 5, 2, 3, 0, tzinfo=timezone.utc), "CYL-1", "CYL-1", "reported stolen", "wu", "cmd-1")
    store.journal(datetime(2026, 5, 2, 3, 1, tzinfo=timezone.utc), "scan", {"code": "x", "accepted": False, "reasons": []}, lane="A")
    store.journal(datetime(2026, 5, 2, 3, 2, tzinfo=timezone.utc), "scan", {"code": "y", "accepted": False, "reasons": []}, lane="A")
    store.close()
    code, out = edge(capsys, "fleet", "outbox", "--config", str(path))
    assert code == 0 and "2026-05-02T11:00:00+08:00" in out, out
    assert "2 pending; the broker's last acknowledgement none yet" in out, out
    store = open_store(load_config(path))
    events = FleetOutbox(store, lambda: datetime(2026, 5, 2, 3, 5, tzinfo=timezone.utc))
    events.delivered([e.id for e in events.pending(0, 10)])  # the broker acknowledged both: their rows go
    assert store.query("SELECT count(*) AS n FROM fleet_outbox")[0]["n"] == 0
    # The uplink reads what comes after the last id it sent: an emptied table gives no id again.
    store.journal(datetime(2026, 5, 2, 3, 6, tzinfo=timezone.utc), "scan", {"code": "z", "accepted": False, "reasons": []}, lane="A")
    assert [e.id for e in events.pending(0, 10)] == [3]
    store.close()
    code, out = edge(capsys, "fleet", "outbox", "--config", str(path))
    assert "1 pending; the broker's last acknowledgement 2026-05-02T11:05:00+08:00" in out, out


def test_a_company_database_of_the_last_release_opens_and_keeps_everything(tmp_path: Path) -> None:
    """The previous release's tables (no since column, no quarantine): opened, upgraded, nothing lost."""
    import sqlite3

    path = tmp_path / "fleet.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (station TEXT NOT NULL, key TEXT NOT NULL, type TEXT NOT NULL, lane TEXT,"
                 " day TEXT NOT NULL, ts TEXT NOT NULL, cylinder_id TEXT, outcome TEXT, valve_opened INTEGER,"
                 " overfilled INTEGER, reasons TEXT, payload TEXT NOT NULL, received_at TEXT NOT NULL, PRIMARY KEY (station, key))")
    conn.execute("CREATE TABLE stations (station TEXT PRIMARY KEY, online INTEGER NOT NULL, payload TEXT NOT NULL,"
                 " updated_at TEXT NOT NULL)")
    old = fill("st1", "f1", "2026-05-01")
    conn.execute("INSERT INTO events VALUES ('st1', 'f1', 'fill', 'A', '2026-05-01', ?, 'c-f1', 'ok', 1, 0, NULL, ?, ?)",
                 (old["ts"], json.dumps(old), TS.isoformat()))
    conn.execute("INSERT INTO stations VALUES ('st1', 1, ?, ?)", (json.dumps({"online": True}), TS.isoformat()))
    conn.commit()
    conn.close()
    db = EventDatabase(f"sqlite:///{path}")
    try:
        assert db.keys() == [("st1", "f1")] and reports.daily(db)[0]["fills"] == 1
        assert [(s["station"], s["since"]) for s in db.stations()] == [("st1", None)]
        assert db.quarantine_count() == 0
        offline = envelope("health", COMPANY, "st1", TS, online=False, detail="connection lost")
        db.add_batch([("acme/st1/health", json.dumps(offline).encode())], "2026-05-02T03:05:00+00:00")
        db.add_batch([("acme/st1/health", json.dumps(offline).encode())], "2026-05-02T03:09:00+00:00")
        assert [(s["online"], s["since"]) for s in db.stations()] == [(False, "2026-05-02T03:05:00+00:00")]
    finally:
        db.close()
