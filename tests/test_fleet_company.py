"""The company's side: the event database and its reports (SQLite, and PostgreSQL where a server
can be started), and the `edge fleet` commands run as a company would run them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from edge.cli import main
from fleet.database import EventDatabase
from sync.fleet.protocol import envelope
from tests.fleet_support import (  # noqa: F401 (the broker fixture)
    COMPANY,
    HQ,
    Broker,
    LightStation,
    broker_fixture,
    check_payload,
    postgres_url,
    station_config,
    wait_until,
)

TS = datetime(2026, 5, 2, 3, 0, tzinfo=timezone.utc)


def fill(station: str, key: str, day: str, overfilled: bool = False, opened: bool = True) -> dict[str, Any]:
    return envelope("fill", COMPANY, station, TS, key=key, fill_id=key, day=day, valve_opened=opened, tripped=False,
                    overfilled=overfilled, lane="A", cylinder_id=f"c-{key}", status="complete",
                    outcome="OVERFILLED" if overfilled else "ok")


def scan(station: str, key: str, cylinder: str | None) -> dict[str, Any]:
    return envelope("scan", COMPANY, station, TS, key=key, lane="A", day="2026-05-02", code="x", cylinder_id=cylinder,
                    reasons=["BLOCKED_LOCALLY"], details=[""])


def exercise_reports(db: EventDatabase) -> None:
    events = [
        fill("st1", "f1", "2026-05-01"), fill("st1", "f2", "2026-05-01", overfilled=True), fill("st1", "f3", "2026-05-02"),
        fill("st2", "f4", "2026-05-01"), fill("st2", "f5", "2026-05-01", opened=False),  # never opened: not a fill
        scan("st1", "s1", "CYL-X"), scan("st2", "s2", "CYL-X"), scan("st2", "s3", "CYL-X"),
        scan("st1", "s4", "CYL-Y"), scan("st1", "s5", "CYL-Y"), scan("st3", "s6", None),
    ]
    for event in events:
        check_payload(event)
        assert db.add_event(event, TS.isoformat())
    assert not db.add_event(fill("st1", "f2", "2026-05-01", overfilled=True), TS.isoformat())  # a redelivery
    assert db.add_event(fill("st2", "f2", "2026-05-01"), TS.isoformat())  # same key, other station: its own
    assert db.fills_per_day() == [
        {"station": "st1", "day": "2026-05-01", "fills": 2, "overfills": 1},
        {"station": "st2", "day": "2026-05-01", "fills": 2, "overfills": 0},
        {"station": "st1", "day": "2026-05-02", "fills": 1, "overfills": 0},
    ]
    several = db.refused_at_several_stations()
    assert [(r["cylinder_id"], r["stations"]) for r in several] == [("CYL-X", {"st1": 1, "st2": 2})]


def test_reports_on_sqlite(tmp_path: Path) -> None:
    db = EventDatabase(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        exercise_reports(db)
    finally:
        db.close()


def test_a_database_url_that_is_neither(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sqlite:///PATH or postgresql://"):
        EventDatabase("mysql://x")


def company_file(tmp_path: Path, broker: Broker) -> Path:
    settings = json.loads(broker.settings(HQ).model_dump_json())
    path = tmp_path / "company.yaml"
    path.write_text(yaml.safe_dump({"company": COMPANY, "broker": settings, "sender": "safety-officer-wu",
                                    "database": "sqlite:///company/fleet.db"}), encoding="utf-8")
    return path


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
