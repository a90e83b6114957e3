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
# A word's box in poppler is the font's ascent plus descent: 1.08 times the size in DejaVu Sans
# (LibreOffice's stand-in for Calibri here), 1.30 in WenQuanYi. A box at least this high is text
# of at least 7 pt in either.
BOX_OF_7PT = 7 * 1.08


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
