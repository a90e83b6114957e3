"""The regulator's documents as they come out on paper, from a 500-fill month and a busy day on
12 lanes: rendered by LibreOffice (the workbooks) and read back with poppler (pages, word boxes,
text), every page kept as a PNG in var/test-output/documents/."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import load_workbook

from edge.manager.documents.workbook import FULL_SHEET, short_id

from .documents_support import month_station
from .render_support import BOX_OF_7PT, keep_pngs, needs_renderers, pages, render, squeezed
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
    heights = [w.height for p in form for w in p.words]
    assert min(heights) >= BOX_OF_7PT, f"text {min(heights):.2f} pt high on {paper}"
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
        assert min(heights) > BOX_OF_7PT * 1.2, "A3 prints larger"
