"""The filling ledger (充装记录) as an .xlsx a regulator accepts on paper.

The first sheet is the printed form: landscape A4 (or A3) one page wide at a scale that keeps the
text at least 7 pt, so it merges what a reader takes in together (start-end time, tare and target,
weights before and after, operator and checker, result and cause) into one cell each, shortens the
record id, wraps the headers, and leaves out what the regulator's form does without (the scanned
code, the upload state; the filling unit stands in the title). The header row repeats on every
page, each day ends in a subtotal, and the footer carries signature lines and 第 N 页 / 共 M 页.
The second sheet (全部字段) holds every field of every record in its own real cell, as the CSV does.
It is hidden (unhide it to read it): LibreOffice prints every visible sheet and counts 共 M 页 over
all of them, so a visible second sheet made the form say 共 22 页 on its 11 pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from ...output import width
from ...textsafe import is_formula_like, printable
from ..ledger import LEDGER_COLUMNS, WEIGHTS, day_totals

Row = dict[str, Any]
FORMATS = {"date": "yyyy-mm-dd", "started": "hh:mm:ss", "finished": "hh:mm:ss", "volume_l": "0.0",
           **{key: "0.00" for key in WEIGHTS}}
MAX_WIDTH = 40  # a longer cell (a scanned URL) wraps within its column instead of widening the page
SIGNATURES = "充装人员：____________    复核人员：____________    负责人：____________"
# Landscape page widths in points, and the paper sizes as a spreadsheet numbers them.
PAPER = {"a4": (841.9, 9), "a3": (1190.6, 8)}
MARGIN_IN = 0.4
LOOSE_FONT = 1.35
TITLE_ROWS = 2
HEADER_ROW = TITLE_ROWS + 1
SHORT_ID = 8  # a record id's first characters: unique within a station's ledger, found in full on sheet 2
FULL_SHEET = "全部字段"
LINE_PT = 15.0  # a row's height per line of 11 pt text


def short_id(record_id: str | None) -> str:
    """A record id as the printed form shows it: a UUID's first 8 characters (a prefix `edge
    records` and the second sheet find it by); an id already short stays whole."""
    if not record_id:
        return ""
    return record_id if len(record_id) <= 12 else record_id[:SHORT_ID]


def _pair(first: Any, second: Any, decimals: int | None = None) -> str:
    def one(value: Any) -> str:
        if value is None:
            return "—"
        return f"{value:.{decimals}f}" if decimals is not None and isinstance(value, (int, float)) else str(value)
    return f"{one(first)}/{one(second)}"


def _times(row: Row) -> str:
    start, end = row["started"], row["finished"]
    if start is None and end is None:
        return ""
    # To the minute on paper; the seconds are on the second sheet and in the CSV.
    return f"{'' if start is None else start.strftime('%H:%M')}–{'' if end is None else end.strftime('%H:%M')}"


def _result(row: Row) -> str:
    return f"{row['result']}：{row['cause']}" if row["cause"] else row["result"]


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    value: Callable[[Row], Any]
    format: str | None = None
    wrap_over: int = MAX_WIDTH  # a longer text wraps onto more lines within the column


def _field(key: str) -> Callable[[Row], Any]:
    return lambda row: row[key]


PRINTED = [
    Column("seq", "序号", _field("seq")),
    Column("date", "充装日期", _field("date"), FORMATS["date"]),
    Column("times", "充装开始–结束时间", _times),
    Column("lane", "工位", _field("lane")),
    Column("cylinder_id", "气瓶档案ID", _field("cylinder_id"), wrap_over=12),
    Column("model", "规格型号", _field("model"), wrap_over=10),
    Column("next_inspection", "下次检验日期", _field("next_inspection")),
    Column("medium", "充装介质", _field("medium"), wrap_over=10),
    Column("tare_target", "皮重/规定充装量(kg)", lambda row: _pair(row["tare_kg"], row["target_net_kg"], 2)),
    Column("gross", "充装前/后称重(kg)", lambda row: _pair(row["start_gross_kg"], row["final_gross_kg"], 2)),
    Column("net_kg", "实际充装量(kg)", _field("net_kg"), FORMATS["net_kg"]),
    Column("pre_check", "充装前检查", _field("pre_check"), wrap_over=8),
    Column("result", "充装后检查", _result, wrap_over=8),
    Column("staff", "充装/复核人员", lambda row: _pair(row["operator"], row["checker"]), wrap_over=10),
    Column("id", "记录编号", lambda row: short_id(row["id"])),
]
FULL = [Column(key, header, _field(key), FORMATS.get(key)) for key, header in LEDGER_COLUMNS]


def shown(column: Column, value: Any) -> str:
    """A cell's text as the number format shows it, for fitting its column."""
    if value is None:
        return ""
    if isinstance(value, datetime):  # as read back from a workbook
        return value.strftime("%H:%M:%S" if column.format == "hh:mm:ss" else "%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, float) and column.format:
        return f"{value:.{column.format.count('0') - 1}f}"
    return str(value)


def column_widths(columns: list[Column], rows: list[Row]) -> list[float]:
    """Excel width units (the width of '0' in the default font); CJK characters count two."""
    widths = []
    for column in columns:
        # Headers wrap onto two lines: a column is as wide as its data, or half its header.
        longest = max([(width(column.header) + 1) // 2 + 1] + [width(shown(column, column.value(row))) for row in rows])
        widths.append(min(column.wrap_over, longest) * 1.1 + 1.5)
    return widths


def page_scale(widths: list[float], paper: str = "a4") -> int:
    """The print scale (%) that puts every column on a landscape page of the paper."""
    # Excel width units -> pixels -> points. LibreOffice measures a unit with its substitute for
    # Calibri, up to a third wider: the scale leaves room for that, so every program prints one page wide.
    columns_pt = sum((w * 7 + 5) * 0.75 for w in widths) * LOOSE_FONT
    printable_pt = PAPER[paper][0] - 2 * MARGIN_IN * 72
    return max(10, min(100, int(printable_pt / columns_pt * 100)))


def write_ledger(rows: list[Row], path: Path, station: str, unit_code: str, span: str,
                 warning: str | None = None, paper: str = "a4") -> None:
    """warning: set when the records differ from the journal (--allow-unverified); it heads the title."""
    # Imported here: only the export needs it, and the daemon should not carry it in memory.
    from openpyxl import Workbook

    book = Workbook()
    title = f"{printable(warning) + ' ' if warning else ''}{station} 气瓶充装记录"
    subtitle = f"充装单位：{station}    统一社会信用代码：{unit_code}    日期：{span}    共 {len(rows)} 条"
    printed = book.active
    printed.title = "充装记录"
    _sheet(printed, PRINTED, rows, title, subtitle + f"    记录编号取前 {SHORT_ID} 位，全部字段见隐藏表「{FULL_SHEET}」", paper)
    full = book.create_sheet(FULL_SHEET)
    _sheet(full, FULL, rows, title, subtitle, "a3")
    full.sheet_state = "hidden"
    book.save(path)


def _sheet(sheet: Any, columns: list[Column], rows: list[Row], title: str, subtitle: str, paper: str) -> None:
    from openpyxl.styles import Alignment, Border, Font, Side
    from openpyxl.utils import get_column_letter

    last_column = get_column_letter(len(columns))
    thin = Side(style="thin")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    centre = Alignment(horizontal="center", vertical="center", wrap_text=True)

    sheet.append([title])
    sheet.append([subtitle])
    for row_number, size in ((1, 16), (2, 11)):
        sheet.merge_cells(f"A{row_number}:{last_column}{row_number}")
        sheet.cell(row_number, 1).font = Font(bold=row_number == 1, size=size)
        sheet.cell(row_number, 1).alignment = Alignment(horizontal="center")
    sheet.append([column.header for column in columns])
    for cell in sheet[HEADER_ROW]:
        cell.font, cell.border, cell.alignment = Font(bold=True), border, centre
    sheet.row_dimensions[HEADER_ROW].height = 30  # two lines

    totals = day_totals(rows)
    for index, row in enumerate(rows):
        values = [column.value(row) for column in columns]
        sheet.append([printable(v) if isinstance(v, str) else v for v in values])
        lines = 1
        for column, value, cell in zip(columns, values, sheet[sheet.max_row]):
            if is_formula_like(value):  # scanned or typed text that looks like a formula stays text
                cell.data_type = "s"
            cell.border = border
            wide = width(shown(column, value))
            cell.alignment = Alignment(vertical="center", wrap_text=wide > column.wrap_over)
            lines = max(lines, -(-wide // column.wrap_over))
            if column.format:
                cell.number_format = column.format
        if lines > 1:  # set, not left to the program: LibreOffice keeps a loaded row one line high
            sheet.row_dimensions[sheet.max_row].height = LINE_PT * lines
        last_of_day = index + 1 == len(rows) or rows[index + 1]["date"] != row["date"]
        if last_of_day:
            count, net = totals[row["date"]]
            _total_row(sheet, columns, f"{shown(FULL[1], row['date'])} 小计：充装 {count} 瓶，实际充装量合计", net, border)
    if len(totals) > 1:
        _total_row(sheet, columns, f"总计：充装 {sum(c for c, _ in totals.values())} 瓶，实际充装量合计",
                   round(sum(n for _, n in totals.values()), 3), border)

    widths = column_widths(columns, rows)
    for index, columns_wide in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = columns_wide
    sheet.freeze_panes = sheet.cell(HEADER_ROW + 1, 1)
    sheet.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    setup = sheet.page_setup
    setup.orientation, setup.paperSize = "landscape", PAPER[paper][1]
    # One page wide by an explicit scale rather than fit-to-page: Excel, WPS and LibreOffice read
    # a scale alike, while "fit to 1 page wide, any height" is read by some as one page in all.
    setup.scale = page_scale(widths, paper)
    sheet.print_options.horizontalCentered = True
    sheet.page_margins.left = sheet.page_margins.right = MARGIN_IN
    sheet.page_margins.top, sheet.page_margins.bottom, sheet.page_margins.footer = 0.5, 0.9, 0.3
    sheet.oddFooter.left.text = SIGNATURES
    sheet.oddFooter.right.text = "第 &P 页 / 共 &N 页"


def _total_row(sheet: Any, columns: list[Column], label: str, net: float, border: Any) -> None:
    from openpyxl.styles import Font

    keys = [column.key for column in columns]
    values: list[Any] = [None] * len(columns)
    values[keys.index("date")] = label
    values[keys.index("net_kg")] = net
    sheet.append(values)
    row = sheet.max_row
    sheet.merge_cells(start_row=row, start_column=keys.index("date") + 1, end_row=row, end_column=keys.index("net_kg"))
    for cell in sheet[row]:
        cell.font, cell.border = Font(bold=True), border
    sheet.cell(row, keys.index("net_kg") + 1).number_format = FORMATS["net_kg"]
