"""The filling ledger and the daily report as they come out on paper: rendered with LibreOffice
(the .xlsx) and poppler (PDF -> text and PNG), pages counted, every cell's text found in full.

The rendered pages stay in var/test-output/ledger/ for a person to look at (see the README).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from edge.config import load_config
from edge.daemon.station import open_store
from edge.manager.documents.workbook import PRINTED, shown
from edge.output import width

from .conftest import write_config
from .test_manager_tools import edge, fill

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "test-output" / "ledger"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
needs_renderers = pytest.mark.skipif(
    not (shutil.which("soffice") and shutil.which("pdftoppm") and shutil.which("pdftotext") and WQY.exists()),
    reason="LibreOffice, poppler-utils and fonts-wqy-microhei (scripts/system-deps.sh installs them)")
START = datetime(2026, 11, 19, 23, 30, tzinfo=UTC)  # 07:30 on 2026-11-20 in Shanghai


@pytest.fixture
def busy_station(tmp_path: Path) -> Path:
    """Two days of a busy lane: enough rows for several landscape pages."""
    config = write_config(tmp_path)
    store = open_store(load_config(config))
    cylinders = [{"id": f"CYL{n:03d}", "owner_unit": "重庆渝能燃气有限公司", "medium": "G13", "status": "在用",
                  "model": "YSP35.5-II", "volume_l": 35.5, "next_inspection": "2028-03"} for n in range(130)]
    store.upsert_cylinders(cylinders, START)
    try:
        for n in range(130):
            at = START + timedelta(minutes=5 * n) + (timedelta(days=1) if n >= 80 else timedelta())
            outcome = "OVERFILLED" if n % 17 == 5 else "aborted" if n % 23 == 7 else "ok"
            fill(store, n, "A" if n % 2 else "B", at, "张伟" if n % 2 else "李娜", outcome, None if outcome == "aborted" else 14.5 + n / 100,
                 cause="SCALE_LOST" if outcome == "aborted" else None)
    finally:
        store.close()
    return config


def _pdf_pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]


def _page_texts(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return text.split("\f")[:-1] if text.endswith("\f") else text.split("\f")


def _text_points(text: str, bold: bool, size: float = 11.0) -> float:
    """The width of a cell's text in points, measured with the fonts LibreOffice falls back to here
    (DejaVu Sans for Latin, which is wider than Calibri; WenQuanYi Micro Hei for Chinese)."""
    from PIL import ImageFont

    latin = ImageFont.truetype(str(DEJAVU / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")), 100)
    cjk = ImageFont.truetype(str(WQY), 100)
    return sum((cjk if width(ch) == 2 else latin).getlength(ch) for ch in text) * size / 100


@needs_renderers
def test_ledger_prints_one_page_wide_with_every_cell_whole(busy_station: Path, tmp_path: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    xlsx = OUT / "ledger.xlsx"
    result = edge("export", "--config", str(busy_station), "--since", "2026-11-20", "-o", str(xlsx))
    assert result.returncode == 0, result.stderr

    # Columns as wide as their content: every cell's text fits its column in the rendering fonts.
    sheet = load_workbook(xlsx).worksheets[0]
    header_row = 3
    for index, column in enumerate(PRINTED, start=1):
        letter = sheet.cell(header_row, index).column_letter
        column_pt = (sheet.column_dimensions[letter].width * 7 + 5) * 0.75 - 4  # Excel width units -> points, less padding
        for row in sheet.iter_rows(min_row=header_row + 1):
            if isinstance(row[0].value, int) and not row[index - 1].alignment.wrap_text:  # data rows, one line
                text = shown(column, row[index - 1].value)
                assert _text_points(text, False) <= column_pt, f"{column.header}: {text!r} is wider than its column"
        if column.format:
            assert sheet.cell(header_row + 1, index).number_format == column.format

    profile = tmp_path / "lo-profile"
    subprocess.run(["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(OUT), str(xlsx)], capture_output=True, check=True, timeout=180)
    pdf = OUT / "ledger.pdf"
    pages = _pdf_pages(pdf)
    texts = _page_texts(pdf)
    assert len(texts) == pages >= 2
    # Only the form prints, every page landscape A4; the hidden second sheet (every field) does not,
    # so the footer's page total is the form's own.
    sizes = [tuple(map(float, m)) for m in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+)", subprocess.run(
        ["pdfinfo", "-f", "1", "-l", str(pages), str(pdf)], capture_output=True, text=True, check=True).stdout)]
    assert all(abs(w - 841.9) < 2 and h < w for w, h in sizes), sizes
    ledger_pages = texts
    for number, page in enumerate(ledger_pages, start=1):
        # One page wide: the first and the last column on every page, under the repeated header row.
        assert "序号" in page and "记录编号" in page, f"page {number} lacks a column"
        assert f"第{number}页/共{pages}页" in re.sub(r"\s+", "", page) and "负责人" in page and "复核人员：" in page
    everything = re.sub(r"\s+", "", "".join(ledger_pages))
    assert "重庆渝能燃气有限公司气瓶充装记录" in everything and "2026-11-20至2026-11-21" in everything
    for row in sheet.iter_rows(min_row=header_row + 1, values_only=True):
        if isinstance(row[0], int):
            for column, value in zip(PRINTED, row):
                text = re.sub(r"\s+", "", shown(column, value))
                assert text in everything or column.wrap_over < width(text), f"{column.key} {text!r} is not on the page whole"
    # The headers wrap onto two lines: each is there, read top line then bottom line.
    for column in PRINTED:
        header = column.header
        assert any(header[:i] in everything and header[i:] in everything for i in range(1, len(header) + 1)), header
    assert "2026-11-20小计：充装" in everything and "总计：充装" in everything

    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(OUT / "ledger-page")], check=True, timeout=120)
    assert len(list(OUT.glob("ledger-page-*.png"))) == pages


@needs_renderers
def test_daily_report_pdf_is_one_page_with_chinese_text(busy_station: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    pdf = OUT / "daily-report.pdf"
    result = edge("report", "daily", "2026-11-20", "--config", str(busy_station), "--pdf", str(pdf))
    assert result.returncode == 0, result.stderr
    assert _pdf_pages(pdf) == 1
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "WenQuanYi" in fonts and " yes " in fonts  # the CJK font, embedded
    text = re.sub(r"\s+", "", _page_texts(pdf)[0])
    assert "重庆渝能燃气有限公司充装日报" in text and "2026-11-20" in text
    assert "张伟" in text and "李娜" in text and "秤通讯中断" in text and "负责人" in text
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(OUT / "daily-report")], check=True, timeout=60)
    assert len(list(OUT.glob("daily-report-*.png"))) == 1


def test_media_names_come_from_the_shipped_table() -> None:
    from edge.manager.documents import medium_name

    assert medium_name("G13") == "液化石油气" and medium_name("G5") == "压缩天然气" and medium_name("G99") == "G99"
