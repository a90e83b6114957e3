"""A summary document (the shift hand-over record, the monthly summary) as the regulator files it:
the same tables, each with its 合计 row, as an A4 PDF and as an .xlsx that prints the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...textsafe import is_formula_like, printable
from .pdf import SIGNERS, Letterhead, Styles, build, heading, register_font, section, side_by_side, signatures, table
from .workbook import LOOSE_FONT

UNVERIFIED = "未经核验 UNVERIFIED"
A4_PORTRAIT_PT, A4_HEIGHT_PT = 595.3, 841.9
MIN_SCALE = 64  # 11 pt cells at 7 pt
LINE_PT = 15.0
CJK_ROW_PT = 17.0
TOP_IN, BOTTOM_IN = 0.5, 0.8


@dataclass(frozen=True)
class Section:
    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    total: Sequence[Any] | None = None


@dataclass(frozen=True)
class Summary:
    title: str  # 交接班记录, 充装月报
    period: str  # 班次：早班 2026-11-20 08:00 至 20:00
    lines: Sequence[str]  # sentences under the heading
    sections: Sequence[Section]
    signers: Sequence[str] = SIGNERS
    pairs: Sequence[tuple[int, int]] = field(default_factory=tuple)  # sections printed side by side in the PDF


def write_summary_pdf(summary: Summary, path: Path, letterhead: Letterhead, warning: str | None = None) -> None:
    register_font()
    styles = Styles()
    story: list[Any] = heading(styles, letterhead, summary.title, summary.period, warning)
    story += [styles.para(line) for line in summary.lines]
    beside = {left: right for left, right in summary.pairs}
    placed: set[int] = set()
    for index, part in enumerate(summary.sections):
        if index in placed:
            continue
        if index in beside:
            other = summary.sections[beside[index]]
            placed.add(beside[index])
            story += side_by_side((part.title, table(part.header, part.rows, part.total)),
                                  (other.title, table(other.header, other.rows, other.total)), styles=styles)
        else:
            story.append(section(styles, part.title, table(part.header, part.rows, part.total)))
    story.append(signatures(styles, summary.signers))
    build(path, story, f"{summary.title} {summary.period}", letterhead)


def write_summary_xlsx(summary: Summary, path: Path, letterhead: Letterhead, warning: str | None = None) -> None:
    """One sheet, the sections one under another, fitted to one A4 page wide; the signature lines
    with dates once after the last table; 第 N 页 / 共 M 页 in the footer."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    from ...output import width

    book = Workbook()
    sheet = book.active
    sheet.title = summary.title[:31]
    columns = max(len(part.header) for part in summary.sections)
    last = get_column_letter(columns)
    thin = Side(style="thin")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    grey = PatternFill("solid", fgColor="E8E8E8")
    widths = [8.0] * columns

    merged: list[tuple[int, str, int]] = []  # (row, text, font size): made tall enough for their lines below

    def line(words: str, size: int = 11, bold: bool = False, centre: bool = False) -> None:
        sheet.append([printable(words)])
        row = sheet.max_row
        merged.append((row, printable(words), size))
        sheet.merge_cells(f"A{row}:{last}{row}")
        sheet.cell(row, 1).font = Font(size=size, bold=bold)
        sheet.cell(row, 1).alignment = Alignment(horizontal="center" if centre else "left", wrap_text=True)

    line(f"{(UNVERIFIED + '（' + printable(warning) + '） ') if warning else ''}{letterhead.station} {summary.title}", 16, True, True)
    line(f"统一社会信用代码：{letterhead.unit_code}    气瓶充装许可证编号：{letterhead.licence or '（未配置）'}    {summary.period}", centre=True)
    for words in summary.lines:
        line(words)
    for part in summary.sections:
        sheet.append([])
        line(part.title, 12, True)
        for kind, values in [("header", part.header), *(("row", r) for r in part.rows), *([("total", part.total)] if part.total else [])]:
            sheet.append([printable(v) if isinstance(v, str) else v for v in values])
            for index, cell in enumerate(sheet[sheet.max_row][: len(values)]):
                if isinstance(cell.value, str) and is_formula_like(cell.value):
                    cell.data_type = "s"
                cell.border = border
                cell.font = Font(bold=kind != "row")
                if kind == "header":
                    cell.fill = grey
                    cell.alignment = Alignment(horizontal="center", wrap_text=True)
                elif isinstance(cell.value, float):
                    cell.number_format = "0.00"
                widths[index] = max(widths[index], min(30, width("" if cell.value is None else str(cell.value)) * 1.1 + 2))
    sheet.append([])
    for who in summary.signers:
        line(f"{who}（签字）：________________    日期：______年____月____日")
        sheet.row_dimensions[sheet.max_row].height = 24
    for index, columns_wide in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = columns_wide
    for row, words, size in merged:
        # A merged cell does not grow with its text in LibreOffice: as many lines as it needs.
        lines = -(-width(words) * size / 11 * LOOSE_FONT // sum(widths))
        sheet.row_dimensions[row].height = max(sheet.row_dimensions[row].height or 0, LINE_PT * size / 11 * max(1, lines))
    setup = sheet.page_setup
    setup.orientation, setup.paperSize = "portrait", sheet.PAPERSIZE_A4
    # An explicit scale, as the ledger's (every program reads it alike): one page wide, and one
    # page in all where that leaves the text large enough to read; a longer record runs on.
    columns_pt = sum((w * 7 + 5) * 0.75 for w in widths) * LOOSE_FONT
    # A row left to its default height is taller in LibreOffice with Chinese text in it (17 pt).
    rows_pt = sum(sheet.row_dimensions[r].height or CJK_ROW_PT for r in range(1, sheet.max_row + 1))
    wide = int((A4_PORTRAIT_PT - 2 * 0.5 * 72) / columns_pt * 100)
    tall = int((A4_HEIGHT_PT - (TOP_IN + BOTTOM_IN) * 72) / rows_pt * 100)
    if min(wide, tall) >= MIN_SCALE:
        # Fits on one page at a readable size: each program fits it exactly (1 x 1 is read alike).
        setup.fitToWidth, setup.fitToHeight = 1, 1
        sheet.sheet_properties.pageSetUpPr.fitToPage = True
    else:
        setup.scale = max(10, min(100, wide))
    sheet.print_options.horizontalCentered = True
    sheet.page_margins.left = sheet.page_margins.right = 0.5
    sheet.page_margins.top, sheet.page_margins.bottom, sheet.page_margins.footer = TOP_IN, BOTTOM_IN, 0.3
    sheet.oddFooter.left.text = f"{letterhead.station} {summary.title}"
    sheet.oddFooter.right.text = "第 &P 页 / 共 &N 页"
    book.save(path)
