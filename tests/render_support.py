"""Documents as they come out on paper: LibreOffice headless renders a workbook to PDF, poppler
counts the pages, reads their text and word boxes, and draws them to PNG for a person to look at.
The renders stay in var/test-output/documents/ (git-ignored)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "test-output" / "documents"
WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
needs_renderers = pytest.mark.skipif(
    not (shutil.which("soffice") and shutil.which("pdftoppm") and shutil.which("pdftotext") and WQY.exists()),
    reason="LibreOffice, poppler-utils and fonts-wqy-microhei (scripts/system-deps.sh installs them)")
# A word's box in poppler is its font's ascent plus descent, which differ from font to font
# (1.08 times the size in DejaVu Sans, 1.30 in WenQuanYi): the printed size of a word is measured
# against the same word printed by the same LibreOffice at a known size (calibration()).
CALIBRATION_WORDS = ("2026-11-01", "14.52", "15.38/14.50", "YSP35.5-II", "CYL000120", "液化石油气", "张伟/王芳", "未检", "合格")
CALIBRATION_PT = 11.0  # a spreadsheet's default font size, which the ledger's cells keep


@dataclass(frozen=True)
class Word:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True)
class Page:
    width: float
    height: float
    words: list[Word]

    @property
    def lines(self) -> list[str]:
        """The page's words line by line, top to bottom, left to right (poppler's own order
        follows the PDF's drawing order, which runs down one table before the next beside it)."""
        rows: list[list[Word]] = []
        for word in sorted(self.words, key=lambda w: (w.y1, w.x0)):
            if rows and abs(rows[-1][0].y1 - word.y1) < 2:
                rows[-1].append(word)
            else:
                rows.append([word])
        return [" ".join(w.text for w in sorted(row, key=lambda w: w.x0)) for row in rows]

    @property
    def text(self) -> str:
        """The page's lines run together."""
        return "\n".join(self.lines)


def render(document: Path, profile: Path) -> Path:
    """The .xlsx as LibreOffice prints it: a PDF beside it."""
    subprocess.run(["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(document.parent), str(document)], capture_output=True, check=True, timeout=300)
    return document.with_suffix(".pdf")


def pages(pdf: Path) -> list[Page]:
    xhtml = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    ns = {"x": "http://www.w3.org/1999/xhtml"}
    root = ElementTree.fromstring(xhtml)
    return [
        Page(float(page.get("width", 0)), float(page.get("height", 0)), [
            Word(word.text or "", *(float(word.get(k, 0)) for k in ("xMin", "yMin", "xMax", "yMax")))
            for word in page.findall("x:word", ns)])
        for page in root.iter("{http://www.w3.org/1999/xhtml}page")
    ]


def keep_pngs(pdf: Path, name: str) -> list[Path]:
    """Every page as a PNG in var/test-output/documents/ (the previous run's of this name go)."""
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob(f"{name}-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(OUT / name)], check=True, timeout=300)
    return sorted(OUT.glob(f"{name}-*.png"))


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def calibration(tmp_path: Path) -> dict[str, float]:
    """Each calibration word's box height when LibreOffice prints it at 11 pt (100 %): a printed
    word's size is then 11 pt x its box height / this one."""
    from openpyxl import Workbook

    book = Workbook()
    for word in CALIBRATION_WORDS:
        book.active.append([word])
    book.active.column_dimensions["A"].width = 30
    xlsx = tmp_path / "calibration.xlsx"
    book.save(xlsx)
    heights: dict[str, float] = {}
    for word in pages(render(xlsx, tmp_path / "lo-calibration"))[0].words:
        heights.setdefault(word.text, word.height)
    assert set(heights) >= set(CALIBRATION_WORDS), heights
    return heights
