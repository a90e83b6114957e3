"""The filling ledger (充装记录) as an .xlsx a regulator accepts on paper: landscape A4 fitted to
one page wide, the header row on every page, borders, columns as wide as their content, real date,
time and number cells with fixed decimals, a subtotal per day, the station's name, unit code and
date range in the title, and signature lines and page numbers in the footer."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from ...output import width
from ...textsafe import is_formula_like, printable
from ..ledger import LEDGER_COLUMNS, WEIGHTS, day_totals

# The filling unit is the station itself: it stands in the title, not in every row.
PRINTED = [(key, header) for key, header in LEDGER_COLUMNS if key != "filling_unit"]
FORMATS = {"date": "yyyy-mm-dd", "started": "hh:mm:ss", "finished": "hh:mm:ss", "volume_l": "0.0",
           **{key: "0.00" for key in WEIGHTS}}
MAX_WIDTH = 40  # a longer cell (a scanned URL) wraps within its column instead of widening the page
SIGNATURES = "充装人员：____________    复核人员：____________    负责人：____________"
A4_LANDSCAPE_PT = 841.9
MARGIN_IN = 0.4
LOOSE_FONT = 1.35
TITLE_ROWS = 2
HEADER_ROW = TITLE_ROWS + 1


def shown(key: str, value: Any) -> str:
    """A cell's text as the number format shows it, for fitting its column."""
    if value is None:
        return ""
    if isinstance(value, datetime):  # as read back from a workbook
        return value.strftime("%H:%M:%S" if FORMATS.get(key) == "hh:mm:ss" else "%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, float) and key in FORMATS:
        return f"{value:.{FORMATS[key].count('0') - 1}f}"
    return str(value)


def column_widths(rows: list[dict[str, Any]]) -> list[float]:
    """Excel width units (the width of '0' in the default font); CJK characters count two."""
    widths = []
    for key, header in PRINTED:
        # Headers wrap onto two lines: a column is as wide as its data, or half its header.
        longest = max([(width(header) + 1) // 2 + 1] + [width(shown(key, row[key])) for row in rows])
        widths.append(min(MAX_WIDTH, longest) * 1.1 + 1.5)
    return widths


def page_scale(widths: list[float]) -> int:
    """The print scale (%) that puts every column on a landscape A4 page."""
    # Excel width units -> pixels -> points. LibreOffice measures a unit with its substitute for
    # Calibri, up to a third wider: the scale leaves room for that, so every program prints one page wide.
    columns_pt = sum((w * 7 + 5) * 0.75 for w in widths) * LOOSE_FONT
    printable_pt = A4_LANDSCAPE_PT - 2 * MARGIN_IN * 72
    return max(10, min(100, int(printable_pt / columns_pt * 100)))


def write_ledger(rows: list[dict[str, Any]], path: Path, station: str, unit_code: str, span: str,
                 warning: str | None = None) -> None:
    """warning: set when the records differ from the journal (--allow-unverified); it heads the title."""
    # Imported here: only the export needs it, and the daemon should not carry it in memory.
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, Side
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    sheet.title = "充装记录"
    last_column = get_column_letter(len(PRINTED))
    thin = Side(style="thin")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    centre = Alignment(horizontal="center", vertical="center", wrap_text=True)

    sheet.append([f"{printable(warning) + ' ' if warning else ''}{station} 气瓶充装记录"])
    sheet.append([f"充装单位：{station}    统一社会信用代码：{unit_code}    日期：{span}    共 {len(rows)} 条"])
    for row_number, size in ((1, 16), (2, 11)):
        sheet.merge_cells(f"A{row_number}:{last_column}{row_number}")
        sheet.cell(row_number, 1).font = Font(bold=row_number == 1, size=size)
        sheet.cell(row_number, 1).alignment = Alignment(horizontal="center")
    sheet.append([header for _, header in PRINTED])
    for cell in sheet[HEADER_ROW]:
        cell.font, cell.border, cell.alignment = Font(bold=True), border, centre
    sheet.row_dimensions[HEADER_ROW].height = 30  # two lines

    totals = day_totals(rows)
    for index, row in enumerate(rows):
        sheet.append([printable(row[key]) if isinstance(row[key], str) else row[key] for key, _ in PRINTED])
        for (key, _), cell in zip(PRINTED, sheet[sheet.max_row]):
            if is_formula_like(row[key]):  # scanned text that looks like a formula stays text
                cell.data_type = "s"
            cell.border = border
            cell.alignment = Alignment(vertical="center", wrap_text=width(shown(key, row[key])) > MAX_WIDTH)
            if key in FORMATS:
                cell.number_format = FORMATS[key]
        last_of_day = index + 1 == len(rows) or rows[index + 1]["date"] != row["date"]
        if last_of_day:
            count, net = totals[row["date"]]
            _total_row(sheet, f"{shown('date', row['date'])} 小计：充装 {count} 瓶，实际充装量合计", net, border)
    if len(totals) > 1:
        _total_row(sheet, f"总计：充装 {sum(c for c, _ in totals.values())} 瓶，实际充装量合计",
                   round(sum(n for _, n in totals.values()), 3), border)

    widths = column_widths(rows)
    for index, columns in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = columns
    sheet.freeze_panes = sheet.cell(HEADER_ROW + 1, 1)
    sheet.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    setup = sheet.page_setup
    setup.orientation, setup.paperSize = "landscape", sheet.PAPERSIZE_A4
    # One page wide by an explicit scale rather than fit-to-page: Excel, WPS and LibreOffice read
    # a scale alike, while "fit to 1 page wide, any height" is read by some as one page in all.
    setup.scale = page_scale(widths)
    sheet.print_options.horizontalCentered = True
    sheet.page_margins.left = sheet.page_margins.right = MARGIN_IN
    sheet.page_margins.top, sheet.page_margins.bottom, sheet.page_margins.footer = 0.5, 0.9, 0.3
    sheet.oddFooter.left.text = SIGNATURES
    sheet.oddFooter.right.text = "第 &P 页 / 共 &N 页"
    book.save(path)


def _total_row(sheet: Any, label: str, net: float, border: Any) -> None:
    from openpyxl.styles import Font

    keys = [key for key, _ in PRINTED]
    values: list[Any] = [None] * len(PRINTED)
    values[keys.index("date")] = label
    values[keys.index("net_kg")] = net
    sheet.append(values)
    row = sheet.max_row
    sheet.merge_cells(start_row=row, start_column=keys.index("date") + 1, end_row=row, end_column=keys.index("net_kg"))
    for cell in sheet[row]:
        cell.font, cell.border = Font(bold=True), border
    sheet.cell(row, keys.index("net_kg") + 1).number_format = FORMATS["net_kg"]
