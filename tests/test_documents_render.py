"""The regulator's documents as they come out on paper, from a 500-fill month and a busy day on
12 lanes: rendered by LibreOffice (the workbooks) and read back with poppler (pages, word boxes,
text), every page kept as a PNG in var/test-output/documents/."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook

from edge.manager.documents.workbook import FULL_SHEET, short_id

from .documents_support import busy_day_station, month_station
from .render_support import CALIBRATION_PT, Page, calibration, keep_pngs, needs_renderers, pages, render, squeezed
from .test_manager_tools import edge

A4_LANDSCAPE = (841.9, 595.3)
A3_LANDSCAPE = (1190.6, 841.9)

pytestmark = [needs_renderers, pytest.mark.slow]


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return month_station(tmp_path_factory.mktemp("month"))


def _size(page: object, size: tuple[float, float]) -> bool:
    return abs(page.width - size[0]) < 2 and abs(page.height - size[1]) < 2  # type: ignore[attr-defined]


def _ledger_csv(config: Path, out: Path) -> list[dict[str, str]]:
    result = edge("export", "--config", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    return list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))


@pytest.mark.parametrize("paper", ["a4", "a3"])
def test_the_month_ledger_is_legible_one_page_wide_with_the_header_on_every_page(
        month: Path, tmp_path: Path, paper: str) -> None:
    records = _ledger_csv(month, tmp_path / "ledger.csv")
    assert len(records) == 500
    xlsx = tmp_path / f"ledger-{paper}.xlsx"
    result = edge("export", "--config", str(month), "-o", str(xlsx), *(["--paper", paper] if paper != "a4" else []))
    assert result.returncode == 0, result.stderr

    # Every field of every record on the second sheet, as in the CSV.
    full = list(load_workbook(xlsx).worksheets[1].iter_rows(min_row=3, values_only=True))
    assert load_workbook(xlsx).sheetnames[1] == FULL_SHEET
    assert load_workbook(xlsx).worksheets[1].sheet_state == "hidden", "only the form prints"
    header, rows = list(full[0]), [r for r in full[1:] if isinstance(r[0], int)]
    assert header == list(records[0]) and [r[header.index("记录编号")] for r in rows] == [r["记录编号"] for r in records]
    assert [r[header.index("扫码内容")] for r in rows] == [r["扫码内容"] for r in records]

    pdf = render(xlsx, tmp_path / "lo-profile")
    rendered = pages(pdf)
    keep_pngs(pdf, f"ledger-{paper}")
    # The form first, then the second sheet (every field, on A3), which LibreOffice prints too.
    form = [p for p in rendered if "扫码内容" not in p.text]
    assert len(form) >= 8 and rendered[: len(form)] == form
    assert all(_size(p, A4_LANDSCAPE if paper == "a4" else A3_LANDSCAPE) for p in form)
    assert all(_size(p, A3_LANDSCAPE) for p in rendered[len(form):])
    # The printed size: each data word measured against the same word printed at 11 pt.
    known = calibration(tmp_path)
    sizes = [CALIBRATION_PT * w.height / known[w.text] for p in form for w in p.words if w.text in known]
    assert len(sizes) > 500 and min(sizes) >= 7.0, f"text {min(sizes):.2f} pt on {paper}"
    # No word on the form smaller than the smallest calibration word at 7 pt.
    assert min(w.height for p in form for w in p.words) >= min(known.values()) * 7.0 / CALIBRATION_PT
    everything = ""
    for number, page in enumerate(form, start=1):
        text = squeezed(page.text)
        # One page wide, the header repeated: the first and the last column heading on every page.
        # (Page 1's subtitle names 记录编号 once more.)
        assert text.count("序号") == 1 and text.count("记录编号") == 1 + (number == 1) and "工位" in text, f"page {number}"
        assert f"第{number}页/共" in text and text.count("负责人：") == 1
        everything += text
    # Every record on the form by its short id; the subtotals and the total equal the records.
    for record in records:
        assert short_id(record["记录编号"]) in everything
    done = [r for r in records if r["实际充装量(kg)"] and r["充装后检查"] != "中止"]
    assert f"总计：充装{len(done)}瓶" in everything
    total = round(sum(float(r["实际充装量(kg)"]) for r in done), 2)
    assert f"{total:.2f}" in everything
    if paper == "a3":
        assert min(sizes) > 9.0, "A3 prints larger"


@pytest.fixture(scope="module")
def busy_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busy_day_station(tmp_path_factory.mktemp("busy"))


def _day_figures(config: Path, tmp_path: Path, day: str) -> dict[str, object]:
    """What the day's records add up to, read through the ledger and the records commands."""
    result = edge("export", "--config", str(config), "--date", day, "-o", str(tmp_path / "day.csv"))
    assert result.returncode == 0, result.stderr
    records = list(csv.DictReader((tmp_path / "day.csv").read_text(encoding="utf-8-sig").splitlines()))
    complete = [r for r in records if r["充装后检查"] in ("合格", "超装", "欠装")]
    scans = json.loads(edge("records", "--rejected", "--date", day, "--config", str(config), "--json").stdout)
    return {
        "fills": len(records), "complete": len(complete),
        "net": round(sum(float(r["实际充装量(kg)"]) for r in complete), 2),
        "aborted": sum(r["充装后检查"] == "中止" for r in records),
        "overfilled": sum(r["充装后检查"] == "超装" for r in records),
        "scans": len(scans), "reasons": sum(len(s["reasons"]) for s in scans),
    }


def test_the_daily_report_of_a_12_lane_day_is_one_page_with_its_totals(busy_day: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "daily.pdf"
    result = edge("report", "daily", "2026-11-20", "--config", str(busy_day), "--pdf", str(pdf))
    assert result.returncode == 0, result.stderr
    keep_pngs(pdf, "daily-report-12-lanes")
    [page] = pages(pdf)
    text = squeezed(page.text)
    figures = _day_figures(busy_day, tmp_path, "2026-11-20")
    assert figures["fills"] == 480 and figures["scans"] > 0 and figures["reasons"] > figures["scans"]
    # A 合计 row under each table, equal to the records: by lane and by operator alike.
    assert text.count(f"合计{figures['fills']}{figures['complete']}{figures['net']:.2f}") == 2
    assert f"合计（{figures['scans']}次扫码）{figures['reasons']}" in text and "按原因计次" in text
    assert f"秤通讯中断{figures['aborted']}" in text and f"合计{figures['aborted']}" in text
    assert f"合计{figures['overfilled']}瓶" in text and "发货（按车辆）" in text
    assert "气瓶充装许可证编号：TS4250001-2027" in text and "第1页/共1页" in text
    for signer in ("充装人员（签字）", "复核人员（签字）", "负责人（签字）"):
        assert text.count(signer) == 1
    assert text.count("日期：______年____月____日") == 3

    # The same tables as an .xlsx, printed by LibreOffice: the same totals, the signatures once at the end.
    xlsx = tmp_path / "daily.xlsx"
    assert edge("report", "daily", "2026-11-20", "--config", str(busy_day), "--xlsx", str(xlsx)).returncode == 0
    sheet_pages = pages(render(xlsx, tmp_path / "lo-profile"))
    keep_pngs(xlsx.with_suffix(".pdf"), "daily-report-12-lanes-sheet")
    sheet = [squeezed(p.text) for p in sheet_pages]
    for number, page_text in enumerate(sheet, start=1):
        assert f"第{number}页/共{len(sheet)}页" in page_text
    whole = "".join(sheet)
    assert whole.count(f"合计{figures['fills']}{figures['complete']}{figures['net']:.2f}") == 2
    assert f"合计（{figures['scans']}次扫码）{figures['reasons']}" in whole and "气瓶充装许可证编号：TS4250001-2027" in whole
    assert whole.count("负责人（签字）") == 1 and "负责人（签字）" in sheet[-1]


def test_a_very_busy_day_runs_on_numbered_pages_with_the_signatures_once(tmp_path: Path) -> None:
    config = busy_day_station(tmp_path, per_lane=6, lanes=40)
    pdf = tmp_path / "daily.pdf"
    assert edge("report", "daily", "2026-11-20", "--config", str(config), "--pdf", str(pdf)).returncode == 0
    keep_pngs(pdf, "daily-report-40-lanes")
    rendered = pages(pdf)
    assert len(rendered) >= 2
    texts = [squeezed(p.text) for p in rendered]
    for number, text in enumerate(texts, start=1):
        assert f"第{number}页/共{len(rendered)}页" in text
    assert "".join(texts).count("负责人（签字）") == 1 and "负责人（签字）" in texts[-1]
    # No section heading left at a page's foot without its table.
    for page in rendered[:-1]:
        last = max(page.words[:-8], key=lambda w: w.y1)  # above the footer line
        assert not squeezed(last.text).startswith(("按", "超装", "欠装", "中止", "发货", "拒绝")), last.text


def _render_both(config: Path, tmp_path: Path, name: str, *command: str) -> tuple[list[Page], list[Page]]:
    """The report as its PDF and as its .xlsx printed by LibreOffice; both kept as PNGs."""
    pdf, xlsx = tmp_path / f"{name}.pdf", tmp_path / f"{name}-sheet.xlsx"
    result = edge(*command, "--config", str(config), "--pdf", str(pdf), "--xlsx", str(xlsx))
    assert result.returncode == 0, result.stderr
    sheet_pdf = render(xlsx, tmp_path / "lo-profile")
    keep_pngs(pdf, name)
    keep_pngs(sheet_pdf, f"{name}-sheet")
    return pages(pdf), pages(sheet_pdf)


def test_the_shift_hand_over_record_as_pdf_and_sheet(tmp_path: Path) -> None:
    config = busy_day_station(tmp_path, per_lane=40)
    config.write_text(config.read_text(encoding="utf-8") + "reports:\n  shifts:\n"
                      "    - {name: 早班, start: '08:00', end: '20:00'}\n    - {name: 夜班, start: '20:00', end: '08:00'}\n",
                      encoding="utf-8")
    figures = _day_figures(config, tmp_path, "2026-11-20")  # the whole day falls in the day shift
    trips = figures["aborted"]
    for document in _render_both(config, tmp_path, "shift-report", "report", "shift", "2026-11-20", "--shift", "早班"):
        assert len(document) == 1, "one A4 page"
        [page] = document
        text = squeezed(page.text)
        assert "交接班记录" in text and "班次：早班2026-11-2008:00至2026-11-2020:00" in text
        assert "气瓶充装许可证编号：TS4250001-2027" in text
        # Who was on which lane, the fills and kg with their 合计 equal to the records.
        assert "A张伟王芳" in text and "L孙强胡军" in text
        assert f"合计{figures['fills']}{figures['complete']}{figures['net']:.2f}" in text
        assert f"合计（{figures['scans']}次扫码）{figures['reasons']}" in text
        # Every trip was reset; the hold on lane B at 19:00 is still open at the hand-over.
        assert f"联锁跳闸{trips}次，复位/确认{trips}次" in text and text.count(f"合计{trips}次") == 2
        assert "B报警保持欠装11-2019:00" in text and "合计1个" in text
        assert "上传积压" in text and "待上传" in text
        for signer in ("交班人（签字）", "接班人（签字）", "负责人（签字）"):
            assert text.count(signer) == 1
        assert "第1页/共1页" in text


def test_the_monthly_summary_as_pdf_and_sheet(month: Path, tmp_path: Path) -> None:
    records = _ledger_csv(month, tmp_path / "ledger.csv")
    done = [r for r in records if r["充装后检查"] in ("合格", "超装", "欠装")]
    net = round(sum(float(r["实际充装量(kg)"]) for r in done), 2)
    counts = [sum(r["充装后检查"] == word for r in records) for word in ("超装", "欠装", "中止")]
    scans = json.loads(edge("records", "--rejected", "--since", "2026-11-01", "--until", "2026-11-30",
                            "--config", str(month), "--json").stdout)
    total = f"合计{len(records)}{len(done)}{net:.2f}{''.join(map(str, counts))}{len(scans)}"
    for document in _render_both(month, tmp_path, "monthly-report", "report", "monthly", "2026-11"):
        text = squeezed("".join(p.text for p in document))
        assert len(document) == 1 and all(_size(p, (595.3, 841.9)) for p in document), "one A4 page, portrait"
        assert "充装月报" in text and "月份：2026-11" in text and "气瓶充装许可证编号：TS4250001-2027" in text
        # One row per day of the month and per lane, each table closed by the month's totals.
        assert "2026-11-01" in text and "2026-11-30" in text and text.count(total) == 2, total
        assert text.count("负责人（签字）") == 1 and "第1页/共1页" in text
