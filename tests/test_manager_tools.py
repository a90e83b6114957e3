"""The station manager's commands, run as a manager runs them, over records written through the
store's real API: filters, the daily report, the ledger export, the .xlsx import, staff."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from edge.config import load_config
from edge.daemon.station import open_store
from edge.store import Store
from interlock.fill import Record

from .conftest import write_config

EDGE = [sys.executable, "-m", "edge.cli"]
# 2026-11-20 in Shanghai runs from 2026-11-19T16:00Z to 2026-11-20T16:00Z.
DAY = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


def edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGE, *args], capture_output=True, text=True, timeout=60)


def fill(store: Store, n: int, lane: str, at: datetime, operator: str, outcome: str, net: float | None = 14.5,
         cause: str | None = None, started: bool = True) -> None:
    fill_id = f"fill-{n:03d}"
    context = {"operator": operator, "checker": "王芳", "medium": "G13"}
    store.apply_record(lane, Record(fill_id, "authorised", {"cylinder_id": f"CYL{n:03d}", "code": f"C{n}",
                                                             "authorised_at": at, "tare_kg": 15.3,
                                                             "target_net_kg": 14.5}), at, context)
    status = "aborted" if outcome == "aborted" else "complete"
    fields: dict[str, Any] = {"finished_at": at + timedelta(seconds=50), "outcome": outcome, "cause": cause, "net_kg": net}
    if started:
        fields |= {"started_at": at + timedelta(seconds=5), "start_gross_kg": 15.45000000001}
    store.apply_record(lane, Record(fill_id, status, fields), at, {})


def test_the_ledger_names_the_checkers_recorded_pre_fill_check(tmp_path: Path) -> None:
    """A fill that relied on a pre-fill check from the staff app (fills.precheck_id) shows that
    check and its checker in 充装前检查; a fill without one says nobody checked it (未检): passing the
    lane's eligibility rules is not a checker's check."""
    from edge.store import staff

    config_path = write_config(tmp_path)
    store = open_store(load_config(config_path))
    try:
        staff.add(store, "C01", "王芳", 10, DAY)
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO checks (id, kind, cylinder_id, checker, checker_name, passed, items, failed, at)"
                " VALUES ('chk-1', 'prefill', 'CYL001', 'C01', '王芳', 1, '[]', '[]', ?)", (DAY.isoformat(),))
        context = {"operator": "张伟", "checker": "王芳", "medium": "G13", "precheck_id": "chk-1"}
        store.apply_record("A", Record("fill-001", "authorised", {"cylinder_id": "CYL001", "code": "C1", "authorised_at": DAY,
                                                                   "tare_kg": 15.3, "target_net_kg": 14.5}), DAY, context)
        fill(store, 2, "A", DAY + timedelta(hours=1), "张伟", "ok", 14.5)
    finally:
        store.close()
    out = tmp_path / "ledger.csv"
    result = edge("export", "--config", str(config_path), "-o", str(out))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert [(r["记录编号"], r["充装前检查"]) for r in rows] == [("fill-001", "合格（王芳）"), ("fill-002", "未检")]


def test_an_aborted_fill_that_took_gas_carries_its_net_mass_in_the_ledger(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    store = open_store(load_config(config_path))
    try:
        for n, final in ((1, 22.0), (2, 15.5), (3, None)):  # gas went in; a rise within no_flow_kg; no reading
            at = DAY + timedelta(hours=n)
            store.apply_record("A", Record(f"fill-{n:03d}", "authorised", {"cylinder_id": f"CYL{n:03d}", "code": f"C{n}",
                                                                            "authorised_at": at, "tare_kg": 15.3,
                                                                            "target_net_kg": 14.5}), at, {"medium": "G13"})
            store.apply_record("A", Record(f"fill-{n:03d}", "filling", {"started_at": at, "start_gross_kg": 15.45}), at, {})
            fields: dict[str, Any] = {"finished_at": at, "outcome": "aborted", "cause": "OPERATOR_ABORT"}
            if final is not None:
                fields["final_gross_kg"] = final
            store.apply_record("A", Record(f"fill-{n:03d}", "aborted", fields), at, {})
    finally:
        store.close()
    out = tmp_path / "ledger.csv"
    assert edge("export", "--config", str(config_path), "-o", str(out)).returncode == 0
    rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert [(r["实际充装量(kg)"], r["充装后检查"], r["充装前检查"]) for r in rows] == [
        ("6.7", "中止", "未检"), ("", "中止", "未检"), ("", "中止", "未检")]


def rejected(store: Store, at: datetime, lane: str, reasons: list[str], cylinder: str | None) -> None:
    data = {"code": "x", "accepted": False, "reasons": reasons, "details": [""] * len(reasons), "fill_id": None,
            "cylinder_id": cylinder}
    store.journal(at, "scan", data, lane=lane, cylinder_id=cylinder)


@pytest.fixture
def station(tmp_path: Path) -> Path:
    config_path = write_config(tmp_path)
    store = open_store(load_config(config_path))
    try:
        fill(store, 1, "A", DAY, "张伟", "ok", 14.5)
        fill(store, 2, "A", DAY + timedelta(hours=1), "张伟", "OVERFILLED", 16.2)
        fill(store, 3, "B", DAY + timedelta(hours=2), "李娜", "UNDERFILLED", 12.0)
        fill(store, 4, "B", DAY + timedelta(hours=3), "李娜", "aborted", None, cause="SCALE_LOST")
        fill(store, 5, "B", DAY + timedelta(hours=4), "李娜", "aborted", None, cause="AUTH_EXPIRED", started=False)
        fill(store, 6, "A", DAY + timedelta(days=1), "张伟", "ok", 14.4)  # the next day
        fill(store, 7, "A", DAY - timedelta(hours=10), "张伟", "ok", 14.6)  # 2026-11-19 local
        rejected(store, DAY, "A", ["SCRAPPED"], "CYL900")
        rejected(store, DAY + timedelta(minutes=1), "B", ["INSPECTION_OVERDUE", "NOT_REGISTERED"], "CYL901")
        rejected(store, DAY + timedelta(minutes=2), "A", ["INVALID_CODE"], None)
        rejected(store, DAY + timedelta(days=1), "A", ["SCRAPPED"], "CYL900")
    finally:
        store.close()
    return config_path


def records(config: Path, *filters: str) -> list[dict[str, Any]]:
    result = edge("records", "--config", str(config), "--json", *filters)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_records_filters(station: Path) -> None:
    ids = lambda rows: sorted(r["id"] for r in rows)  # noqa: E731
    assert len(records(station)) == 7
    assert ids(records(station, "--date", "2026-11-20")) == ["fill-001", "fill-002", "fill-003", "fill-004", "fill-005"]
    assert ids(records(station, "--since", "2026-11-20")) == [f"fill-00{n}" for n in range(1, 7)]
    assert ids(records(station, "--until", "2026-11-19")) == ["fill-007"]
    assert ids(records(station, "--date", "2026-11-20", "--lane", "B")) == ["fill-003", "fill-004", "fill-005"]
    assert ids(records(station, "--cylinder", "CYL002")) == ["fill-002"]
    assert ids(records(station, "--operator", "李娜")) == ["fill-003", "fill-004", "fill-005"]
    assert ids(records(station, "--outcome", "OVERFILLED")) == ["fill-002"]
    scans = records(station, "--rejected", "--date", "2026-11-20")
    assert [s["reasons"] for s in scans] == [["INVALID_CODE"], ["INSPECTION_OVERDUE", "NOT_REGISTERED"], ["SCRAPPED"]]
    assert [s["cylinder_id"] for s in records(station, "--rejected", "--cylinder", "CYL900")] == ["CYL900", "CYL900"]
    refused = edge("records", "--config", str(station), "--rejected", "--operator", "李娜")
    assert refused.returncode == 2 and "rejected scans have neither" in refused.stderr
    bad = edge("records", "--config", str(station), "--since", "20.11.2026")
    assert bad.returncode == 2 and "expected a date as yyyy-mm-dd" in bad.stderr


def test_records_csv(station: Path) -> None:
    result = edge("records", "--config", str(station), "--csv", "--lane", "A", "--date", "2026-11-20")
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert [r["id"] for r in rows] == ["fill-002", "fill-001"] and rows[0]["outcome"] == "overfilled"
    # Numbers without floating-point tails, times in the station's local time with the offset.
    assert rows[1]["start_gross_kg"] == "15.45" and rows[1]["started_at"] == "2026-11-20T09:00:05+08:00"
    scans = edge("records", "--config", str(station), "--csv", "--rejected", "--cylinder", "CYL901").stdout
    cells = list(csv.DictReader(scans.splitlines()))[0]
    assert cells["reasons"] == "INSPECTION_OVERDUE; NOT_REGISTERED" and "[" not in scans
    assert records(station, "--outcome", "Overfilled")[0]["outcome"] == "overfilled"


def test_daily_report(station: Path) -> None:
    result = edge("report", "daily", "2026-11-20", "--config", str(station), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["fills"] == 4 and report["authorised_not_started"] == 1
    assert report["net_kg"] == pytest.approx(14.5 + 16.2 + 12.0)
    assert {r["lane"]: (r["fills"], r["complete"]) for r in report["by_lane"]} == {"A": (2, 2), "B": (2, 1)}
    assert {r["operator"]: r["net_kg"] for r in report["by_operator"]} == {"张伟": 30.7, "李娜": 12.0}
    assert report["rejections"] == {"SCRAPPED": 1, "INSPECTION_OVERDUE": 1, "NOT_REGISTERED": 1, "INVALID_CODE": 1}
    assert [o["cylinder_id"] for o in report["overfills"]] == ["CYL002"]
    assert [u["cylinder_id"] for u in report["underfills"]] == ["CYL003"]
    assert report["aborts"] == {"SCALE_LOST": 1, "AUTH_EXPIRED": 1}
    # Started fills queued their records; none has been delivered.
    assert report["upload"]["pending"] == 2 * 6 and report["upload"]["dead"] == 0
    human = edge("report", "daily", "2026-11-20", "--config", str(station)).stdout
    assert "daily report 2026-11-20: 4 fills, 42.7 kg net filled" in human and "超期未检" in human


def test_export_csv_and_xlsx_with_chinese_headers(station: Path, tmp_path: Path) -> None:
    out_csv, out_xlsx = tmp_path / "ledger.csv", tmp_path / "ledger.xlsx"
    assert edge("export", "--config", str(station), "--date", "2026-11-20", "-o", str(out_csv)).returncode == 0
    raw = out_csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "a BOM, so Excel and WPS read the headers as UTF-8"
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert [r["记录编号"] for r in rows] == ["fill-001", "fill-002", "fill-003", "fill-004", "fill-005"]
    assert rows[1]["充装后检查"] == "超装" and rows[1]["充装前检查"] == "未检" and rows[3]["中止原因"] == "秤通讯中断" and rows[0]["充装前称重(kg)"] == "15.45"
    assert rows[0]["充装日期"] == "2026-11-20" and rows[0]["开始时间"] == "09:00:05"  # Shanghai time
    assert rows[0]["上传状态"] == "待上传" and rows[4]["上传状态"].startswith("不上传")

    result = edge("export", "--config", str(station), "--since", "2026-11-19", "-o", str(out_xlsx))
    assert result.returncode == 0 and "7 filling records" in result.stdout
    printed, sheet = load_workbook(out_xlsx).worksheets
    # The printed form merges what is read together; the second sheet keeps every field in its own cell.
    form = list(printed.iter_rows(values_only=True))
    assert printed.title == "充装记录" and form[2][:4] == ("序号", "充装日期", "充装开始–结束时间", "工位")
    values = list(sheet.iter_rows(values_only=True))
    first_printed, first_full = dict(zip(form[2], form[3])), dict(zip(values[2], values[3]))
    assert first_printed["充装开始–结束时间"] == f"{first_full['开始时间']:%H:%M}–{first_full['结束时间']:%H:%M}"
    assert first_printed["充装/复核人员"] == f"{first_full['充装人员']}/{first_full['复核人员']}"
    assert first_printed["记录编号"] == first_full["记录编号"] and "小计：充装 1 瓶" in str(form[4][1])
    assert sheet.title == "全部字段" and "气瓶充装记录" in values[0][0] and "2026-11-19 至 2026-11-21" in values[1][0]
    assert values[2][:5] == ("序号", "充装日期", "开始时间", "结束时间", "充装工位")
    # 7 fills over three local days: a subtotal after each day and a grand total.
    assert len(values) == 3 + 7 + 3 + 1 and values[3][-1] == "fill-007"
    header = list(values[2])
    first = dict(zip(header, values[3]))
    assert isinstance(first["充装日期"], datetime) and first["充装介质"] == "液化石油气" and first["实际充装量(kg)"] == 14.6
    assert sheet.cell(4, header.index("实际充装量(kg)") + 1).number_format == "0.00"
    assert "小计：充装 1 瓶" in str(values[4][1]) and values[4][header.index("实际充装量(kg)")] == 14.6
    assert edge("export", "--config", str(station), "-o", str(tmp_path / "x.pdf")).returncode == 2


def test_cache_import_reads_a_station_ledger_xlsx(station: Path, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["重庆渝能燃气有限公司 气瓶档案台账"])  # a title row above the header, as ledgers have
    sheet.append(["ID", "使用单位名称", "充装介质", "使用状态", "产品编号", "制造年月", "下次检验日期", "皮重", "设备区域", "二维码"])
    sheet.append(["XL001", "重庆渝能燃气有限公司", "G13", "在用", 230001, datetime(2020, 5, 1), datetime(2027, 3, 1), 15.2, 500112,
                  "https://qp.example.cn/trace?code=XL001"])
    sheet.append([None] * 10)
    sheet.append(["XL002", "重庆渝能燃气有限公司", "G13", "在用", "230002", "2020-13", "2027-03", "heavy", 500112, None])
    sheet.append(["XL003", "重庆渝能燃气有限公司", "G13", "报废", "230003", "2019-01", "2026-01", 14.9, "500112", None])
    path = tmp_path / "ledger.xlsx"
    book.save(path)
    result = edge("cache", "import", str(path), "--config", str(station), "--json")
    assert result.returncode == 1  # one bad row
    assert json.loads(result.stdout)["loaded"] == 2
    assert f"{path}:5: tare_kg: got 'heavy', expected a number" in result.stderr
    shown = json.loads(edge("cache", "show", "https://qp.example.cn/trace?code=XL001", "--config", str(station), "--json").stdout)
    cylinder = shown["cylinder"]
    assert (cylinder["product_no"], cylinder["manufacture_month"], cylinder["next_inspection"], cylinder["region"]) == (
        "230001", "2020-05", "2027-03", "500112")
    garbage = tmp_path / "not.xlsx"
    garbage.write_bytes(b"PK\x03\x04 not really a workbook")
    result = edge("cache", "import", str(garbage), "--config", str(station))
    assert result.returncode == 2 and "not a readable .xlsx workbook" in result.stderr


def test_staff_commands_validate(station: Path) -> None:
    config = str(station)
    assert edge("staff", "add", "op-chen", "陈静", "--config", config).returncode == 0
    too_long = edge("staff", "add", "op-x", "一个名字特别特别长的人", "--config", config)
    assert too_long.returncode == 2 and "11 characters; the city accepts at most 10" in too_long.stderr
    same = edge("staff", "assign", "A", "--operator", "op-chen", "--checker", "op-chen", "--config", config)
    assert same.returncode == 2 and "other than the operator" in same.stderr
    unknown = edge("staff", "assign", "A", "--operator", "op-nobody", "--checker", "chk-wang", "--config", config)
    assert unknown.returncode == 2 and "'op-nobody' is not registered" in unknown.stderr
    assert edge("staff", "assign", "A", "--operator", "op-chen", "--checker", "chk-wang", "--config", config).returncode == 0
    on_shift = edge("staff", "remove", "op-chen", "--config", config)
    assert on_shift.returncode == 2 and "on shift at lane A" in on_shift.stderr
    listing = json.loads(edge("staff", "list", "--config", config, "--json").stdout)
    assert {s["lane"]: (s["operator_name"], s["checker_name"]) for s in listing["shifts"]} == {
        "A": ("陈静", "王芳"), "B": ("李娜", "王芳")}
    store = open_store(load_config(station))
    try:
        kinds = [r["kind"] for r in store.query("SELECT kind FROM journal WHERE kind LIKE 'sta%' OR kind LIKE 'shift%' ORDER BY seq")]
    finally:
        store.close()
    # The config's staff and shifts are journalled once, when first registered; then the commands.
    assert kinds == ["staff_configured"] * 3 + ["shift_configured"] * 2 + ["staff_registered", "shift_changed"]


def test_a_fill_records_the_shift_on_duty_when_authorised(make_station: Any) -> None:
    s = make_station()
    config = str(s.config.store.path.parent / "station.yaml")
    first = s.start_fill("A", s.cylinder())
    assert edge("staff", "add", "op-chen", "陈静", "--config", config).returncode == 0
    assert edge("staff", "assign", "A", "--operator", "op-chen", "--checker", "op-zhang", "--config", config).returncode == 0
    s.wait("A", "fill_end", timeout=30)
    s.modbus("A").model.place(0.0)
    second = s.start_fill("A", s.cylinder(skip=1))
    assert (s.fill_row(first["fill_id"])["operator"], s.fill_row(first["fill_id"])["checker"]) == ("张伟", "王芳")
    assert (s.fill_row(second["fill_id"])["operator"], s.fill_row(second["fill_id"])["checker"]) == ("陈静", "张伟")


def test_cache_import_refuses_masses_physics_rules_out(tmp_path: Path) -> None:
    """Tare, fill mass and volume typed into a ledger are checked before they become the records
    the lane fills by: not a number, not above zero, or more gas than the cylinder holds."""
    config_path = write_config(tmp_path)
    path = tmp_path / "ledger.csv"
    head = "ID,使用单位名称,充装介质,使用状态,容积,皮重,充装量\n"
    rows = ["C1,站,G13,在用,35.5,15.1,14.5", "C2,站,G13,在用,35.5,nan,14.5", "C3,站,G13,在用,35.5,-15.1,14.5",
            "C4,站,G13,在用,35.5,15.1,inf", "C5,站,G13,在用,35.5,15.1,145", "C6,站,G13,在用,0,15.1,14.5"]
    path.write_text(head + "\n".join(rows) + "\n", encoding="utf-8")
    result = edge("cache", "import", str(path), "--config", str(config_path))
    assert result.returncode == 1 and "loaded 1 cylinders, skipped 5" in result.stdout, result.stdout + result.stderr
    assert "tare_kg: got 'nan', expected a number above zero" in result.stderr
    assert "fill_mass_kg: 145.0 kg does not fit in 35.5 L" in result.stderr


def test_cache_import_never_re_points_another_cylinders_identifier(tmp_path: Path) -> None:
    """Promise 14: an identifier belongs to one cylinder. A ledger row reusing a cached cylinder's
    stamp number or RFID tag, or an earlier row's, is skipped and named; its cylinder keeps it."""
    from edge.scanpoints.common import resolve

    config_path = write_config(tmp_path)
    head = "ID,使用单位名称,充装介质,使用状态,产品编号,RFID\n"
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(head + "C1,站,G13,在用,YSP-001,E2000001\nC2,站,G13,在用,YSP-002,\n", encoding="utf-8")
    second.write_text(head + "C3,站,G13,在用,YSP-001,\nC4,站,G13,在用,YSP-004,E2000001\nC5,站,G13,在用,YSP-005,\n"
                      "C6,站,G13,在用,YSP-005,\nC2,站,G13,在用,YSP-002,E2000002\n", encoding="utf-8")
    assert edge("cache", "import", str(first), "--config", str(config_path)).returncode == 0
    result = edge("cache", "import", str(second), "--config", str(config_path))
    assert result.returncode == 1 and "loaded 2 cylinders, skipped 3" in result.stdout, result.stdout + result.stderr
    assert f"{second}:2: its product identifier belongs to cylinder C1" in result.stderr
    assert f"{second}:3: its rfid identifier belongs to cylinder C1" in result.stderr
    assert f"{second}:5: its product identifier belongs to cylinder C5" in result.stderr
    config = load_config(config_path)
    store = open_store(config)
    try:
        assert [resolve(store, config, code)["id"] for code in ("YSP-001", "YSP-005", "YSP-002")] == ["C1", "C5", "C2"]
        assert store.query("SELECT cylinder_id FROM identifiers WHERE value = 'E2000001'") == [{"cylinder_id": "C1"}]
    finally:
        store.close()
