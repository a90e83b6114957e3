import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from edge.manager.cache_import import import_file
from edge.store import Store
from edge.store.schema import MIGRATIONS
from interlock.codes import Identifier, Kind

from .conftest import write_config

EDGE = [sys.executable, "-m", "edge.cli"]
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "s.db")
    for i in range(5):
        s.journal(NOW, "scan", {"i": i, "code": "中文"}, lane="A")
    return s


def test_pragmas(store: Store) -> None:
    assert store.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
    assert store.query("PRAGMA synchronous")[0]["synchronous"] == 2  # FULL
    assert store.query("PRAGMA user_version")[0]["user_version"] == len(MIGRATIONS)


def test_intact_chain(store: Store) -> None:
    report = store.verify()
    assert report.ok and report.entries == 5


def tamper(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "sql, bad, words",
    [
        ("UPDATE journal SET data = '{\"i\":99}' WHERE seq = 3", 3, "altered"),
        ("DELETE FROM journal WHERE seq = 2", 2, "missing"),
        ("DELETE FROM journal WHERE seq = 5", 5, "removed"),
        ("UPDATE journal SET ts = '2020-01-01' WHERE seq = 4", 4, "altered"),
    ],
)
def test_tampering_is_caught(store: Store, tmp_path: Path, sql: str, bad: int, words: str) -> None:
    store.close()
    tamper(tmp_path / "s.db", sql)
    report = Store(tmp_path / "s.db").verify()
    assert not report.ok and report.first_bad_seq == bad and words in (report.problem or "")


def test_edge_verify_names_the_first_bad_entry(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    db = tmp_path / "station.db"
    s = Store(db)
    for i in range(3):
        s.journal(NOW, "scan", {"i": i})
    s.close()
    ok = subprocess.run([*EDGE, "verify", "--config", str(config)], capture_output=True, text=True)
    assert ok.returncode == 0 and "3 entries" in ok.stdout
    tamper(db, "UPDATE journal SET data = '{}' WHERE seq = 2")
    bad = subprocess.run([*EDGE, "verify", "--config", str(config)], capture_output=True, text=True)
    assert bad.returncode == 1 and "entry 2" in bad.stdout


CSV = """ID,使用单位名称,设备区域,设备品种,产品编号,充装介质,制造年月,容积,下次检验日期,使用状态,信息化编码,二维码,使用登记证编号,皮重,充装量
C1,重庆渝能燃气有限公司,500112,2320,YSP15-001,G13,2024-03,35.5,2028-03,在用,CQ001,https://x.example/?code=CQ001,R1,15.1,14.5
C2,重庆渝能燃气有限公司,500112,2320,YSP15-002,G13,2024-13,35.5,2028-03,在用,CQ002,,R2,15.1,14.5
C3,重庆渝能燃气有限公司,500112,2320,YSP15-003,G13,2024-03,lots,2028-03,在用,CQ003,,R3,15.1,14.5
,重庆渝能燃气有限公司,500112,2320,YSP15-004,G13,2024-03,35.5,2028-03,在用,CQ004,,R4,15.1,14.5
C5,重庆渝能燃气有限公司,500112,2320,YSP15-005,G13,2024-03,35.5,2028-03,在用,CQ005,,R5,15.1,14.5
"""


def test_csv_import_reports_bad_rows_by_line_and_loads_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "ledger.csv"
    path.write_text(CSV, encoding="utf-8")
    s = Store(tmp_path / "c.db")
    report = import_file(s, path, NOW)
    assert report.loaded == 2
    groups = report.problems.groups()
    assert report.skipped == 3 and [g["first"] for g in groups] == [["3"], ["4"], ["5"]]
    assert "manufacture_month" in groups[0]["problem"] and "volume_l" in groups[1]["problem"] and "id" in groups[2]["problem"]
    cylinder = s.find_cylinder(Identifier(Kind.INFO_CODE, "CQ001"))
    assert cylinder is not None and cylinder.tare_kg == 15.1 and cylinder.volume_l == 35.5
    assert s.find_cylinder(Identifier(Kind.PRODUCT, "YSP15-005")) is not None
    assert s.find_cylinder(Identifier(Kind.QR_URL, "https://x.example/?code=CQ001")) is not None
    assert s.cache_age_s(NOW) == 0


def test_json_import_via_cli(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    path = tmp_path / "c.json"
    path.write_text(
        '[\n  {"id": "J1", "owner_unit": "X", "medium": "G13", "status": "在用"},\n'
        '  {"id": "J2", "owner_unit": "X", "medium": "G13", "status": "在用", "colour": "red"},\n'
        '  {"id": "J3", "owner_unit": "X", "medium": "G13", "status": "在用", "volume_l": 35.5}\n]\n',
        encoding="utf-8",
    )
    result = subprocess.run([*EDGE, "cache", "import", str(path), "--config", str(config)], capture_output=True, text=True)
    assert result.returncode == 1  # loaded, but not everything: a manager should look
    assert "loaded 2 cylinders, skipped 1" in result.stdout
    assert f"{path}:3: unknown field 'colour'" in result.stderr


def test_identifier_moves_with_the_record(tmp_path: Path) -> None:
    s = Store(tmp_path / "m.db")
    base = {"owner_unit": "X", "medium": "G13", "status": "在用"}
    s.upsert_cylinders([{"id": "A", "rfid": "e2001", **base}], NOW)
    s.upsert_cylinders([{"id": "A", "rfid": "e2002", **base}], NOW)
    assert s.find_cylinder(Identifier(Kind.RFID, "E2001")) is None
    found = s.find_cylinder(Identifier(Kind.RFID, "E2002"))
    assert found is not None and found.id == "A"


def test_counts_by_status_are_those_of_a_group_by(tmp_path: Path) -> None:
    """The status counts `edge status`, `sync status` and the fleet's health show, read without a
    walk of every row, equal a GROUP BY over the rows: sent and waiting, dead, open fills."""
    from tests.history_support import build, cylinders, open_history_store

    store = open_history_store(tmp_path / "h.db", durable=False)
    try:
        store.upsert_cylinders(cylinders(30), NOW)
        for _ in build(store, 50, ack_every=25):
            pass
        for _ in build(store, 7, first=50, acknowledge=False):  # still waiting for the city
            pass
        with store.transaction() as conn:
            conn.execute("UPDATE outbox SET status = 'dead' WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' LIMIT 2)")
            conn.execute("UPDATE fills SET status = 'filling' WHERE rowid = (SELECT max(rowid) FROM fills)")
        for table, bulk in (("fills", "complete"), ("outbox", "sent")):
            grouped = {r["status"]: r["n"] for r in store.query(f"SELECT status, count(*) AS n FROM {table} GROUP BY status")}
            assert store.count_by_status(table, bulk) == grouped
            assert len(grouped) > 1, grouped
        assert store.count_by_status("outbox", "sent")["dead"] == 2
    finally:
        store.close()
    empty = Store(tmp_path / "empty.db")
    try:
        assert empty.count_by_status("fills", "complete") == {} and empty.count_by_status("outbox", "sent") == {}
    finally:
        empty.close()
