"""The station manager's view of the records: filtered queries, the daily report and the filling
ledger (充装记录) export. Dates are the station's local dates; the store keeps UTC."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from interlock.reasons import TEXT, Reason

from .scanpoints import dispatch
from .store import Store
from .store.outbox import Outbox
from .textsafe import is_formula_like, printable, sheet_text

OUTCOMES = ("ok", "OVERFILLED", "UNDERFILLED", "aborted")
# The ledger's columns: (key in a ledger row, Chinese header as the regulator's forms name it).
LEDGER_COLUMNS = [
    ("date", "充装日期"),
    ("started", "开始时间"),
    ("finished", "结束时间"),
    ("lane", "充装工位"),
    ("cylinder_id", "气瓶档案ID"),
    ("code", "扫码内容"),
    ("medium", "充装介质"),
    ("operator", "充装人员"),
    ("checker", "检查人员"),
    ("tare_kg", "皮重(kg)"),
    ("target_net_kg", "规定充装量(kg)"),
    ("start_gross_kg", "充装前称重(kg)"),
    ("final_gross_kg", "充装后复检称重(kg)"),
    ("net_kg", "实际充装量(kg)"),
    ("result", "充装结果"),
    ("cause", "中止原因"),
    ("filling_unit", "充装单位名称"),
    ("uploaded", "上传状态"),
    ("id", "记录编号"),
]
RESULT_TEXT = {"ok": "合格", "OVERFILLED": "超装", "UNDERFILLED": "欠装", "aborted": "中止"}
UPLOAD_TEXT = {"sent": "已上传", "pending": "待上传", "dead": "被拒收", None: "不上传(未开始充装)"}


@dataclass(frozen=True)
class Filters:
    since: date | None = None
    until: date | None = None  # inclusive
    lane: str | None = None
    cylinder: str | None = None
    operator: str | None = None  # a name, or a staff id
    outcome: str | None = None
    limit: int | None = None


def day_bounds(tz: ZoneInfo, since: date | None, until: date | None) -> tuple[str | None, str | None]:
    """UTC ISO bounds [start, end) for local dates, comparable with the stored timestamps."""
    start = None if since is None else datetime.combine(since, time(), tz).astimezone(ZoneInfo("UTC")).isoformat()
    end = None if until is None else datetime.combine(until + timedelta(days=1), time(), tz).astimezone(ZoneInfo("UTC")).isoformat()
    return start, end


def _where(tz: ZoneInfo, f: Filters, time_column: str, cylinder_column: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    start, end = day_bounds(tz, f.since, f.until)
    # Stored timestamps are UTC with an offset; compare instants, not strings, to be safe.
    if start:
        clauses.append(f"julianday({time_column}) >= julianday(?)")
        params.append(start)
    if end:
        clauses.append(f"julianday({time_column}) < julianday(?)")
        params.append(end)
    if f.lane:
        clauses.append("lane = ?")
        params.append(f.lane)
    if f.cylinder:
        clauses.append(f"{cylinder_column} = ?")
        params.append(f.cylinder)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def fills(store: Store, tz: ZoneInfo, f: Filters) -> list[dict[str, Any]]:
    where, params = _where(tz, f, "authorised_at", "cylinder_id")
    extra: list[str] = []
    if f.operator:
        extra.append("(operator = ? OR operator IN (SELECT name FROM staff WHERE id = ?))")
        params += [f.operator, f.operator]
    if f.outcome:
        extra.append("outcome = ?")
        params.append(f.outcome)
    if extra:
        where = (where + " AND " if where else " WHERE ") + " AND ".join(extra)
    sql = f"SELECT * FROM fills{where} ORDER BY authorised_at DESC, id"
    if f.limit:
        sql += f" LIMIT {int(f.limit)}"
    return store.query(sql, params)


def rejected_scans(store: Store, tz: ZoneInfo, f: Filters) -> list[dict[str, Any]]:
    where, params = _where(tz, f, "ts", "cylinder_id")
    where = (where + " AND " if where else " WHERE ") + "kind = 'scan' AND json_extract(data, '$.accepted') = 0"
    # The entry is decoded here, not with json_extract: SQLite's text functions stop at a NUL, and
    # a code scanned as "AB\x00CD" must not be shown as "AB".
    sql = f"SELECT seq, ts, lane, cylinder_id, data FROM journal{where} ORDER BY seq DESC"
    if f.limit:
        sql += f" LIMIT {int(f.limit)}"
    rows = store.query(sql, params)
    for row in rows:
        data = json.loads(row.pop("data"))
        row["code"] = data.get("code")
        row["reasons"] = data.get("reasons") or []
        row["details"] = data.get("details") or []
        row["raw_hex"] = data.get("raw_hex")
    return rows


def daily_report(store: Store, tz: ZoneInfo, day: date, now: datetime) -> dict[str, Any]:
    f = Filters(since=day, until=day)
    day_fills = fills(store, tz, f)
    started = [r for r in day_fills if r["started_at"] is not None]

    def tally(key: str) -> list[dict[str, Any]]:
        groups: dict[str, dict[str, Any]] = {}
        for row in started:
            g = groups.setdefault(row[key] or "-", {key: row[key] or "-", "fills": 0, "complete": 0, "net_kg": 0.0})
            g["fills"] += 1
            if row["status"] == "complete":
                g["complete"] += 1
                g["net_kg"] = round(g["net_kg"] + (row["net_kg"] or 0.0), 3)
        return sorted(groups.values(), key=lambda g: g[key])

    rejections: dict[str, int] = {}
    for scan in rejected_scans(store, tz, f):
        for reason in scan["reasons"] or ["(none)"]:
            rejections[reason] = rejections.get(reason, 0) + 1
    aborts: dict[str, int] = {}
    for row in day_fills:
        if row["outcome"] == "aborted":
            aborts[row["cause"] or "-"] = aborts.get(row["cause"] or "-", 0) + 1
    backlog = Outbox(store).status(now)
    return {
        "date": day.isoformat(),
        "fills": len(started),
        "net_kg": round(sum(r["net_kg"] or 0.0 for r in started if r["status"] == "complete"), 3),
        "authorised_not_started": len(day_fills) - len(started),
        "by_lane": tally("lane"),
        "by_operator": tally("operator"),
        "rejections": dict(sorted(rejections.items(), key=lambda kv: -kv[1])),
        "overfills": [_brief(r) for r in started if r["outcome"] == "OVERFILLED"],
        "underfills": [_brief(r) for r in started if r["outcome"] == "UNDERFILLED"],
        "aborts": dict(sorted(aborts.items(), key=lambda kv: -kv[1])),
        "upload": {k: backlog[k] for k in ("pending", "dead", "oldest_pending_age_s")} | {"dead_letters": backlog["dead_letters"]},
        "dispatches": dispatch.per_vehicle(store, *day_bounds(tz, day, day)),
    }


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "lane", "cylinder_id", "target_net_kg", "net_kg", "operator")}


def reason_text(code: str | None) -> str:
    if not code:
        return ""
    try:
        return TEXT[Reason(code)][0]
    except (ValueError, KeyError):
        return code


# The filling ledger --------------------------------------------------------------------------------


def ledger_rows(store: Store, tz: ZoneInfo, f: Filters, filling_unit: str) -> list[dict[str, Any]]:
    uploads = {
        r["fill_id"]: r["status"]
        for r in store.query("SELECT fill_id, status FROM outbox WHERE kind = 'filling'")
    }

    def local(value: str | None, fmt: str) -> str:
        return "" if not value else datetime.fromisoformat(value).astimezone(tz).strftime(fmt)

    rows = []
    for fill in reversed(fills(store, tz, f)):  # oldest first, as a ledger reads
        rows.append({
            "date": local(fill["started_at"] or fill["authorised_at"], "%Y-%m-%d"),
            "started": local(fill["started_at"], "%H:%M:%S"),
            "finished": local(fill["finished_at"], "%H:%M:%S"),
            **{k: fill[k] for k in ("lane", "cylinder_id", "code", "medium", "operator", "checker", "id")},
            # Weights as the scale shows them, without binary floating-point tails.
            **{k: None if fill[k] is None else round(fill[k], 3)
               for k in ("tare_kg", "target_net_kg", "start_gross_kg", "final_gross_kg", "net_kg")},
            "result": RESULT_TEXT.get(fill["outcome"] or "", fill["outcome"] or "进行中"),
            "cause": reason_text(fill["cause"]),
            "filling_unit": filling_unit,
            "uploaded": UPLOAD_TEXT.get(uploads.get(fill["id"]), "?"),
        })
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path, warning: str | None = None) -> None:
    # utf-8 with a BOM: Excel and WPS then read the Chinese headers as Chinese, not mojibake.
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        if warning is not None:  # an unverified ledger says so in its first line, not only on a terminal
            writer.writerow([sheet_text(warning)])
        writer.writerow([header for _, header in LEDGER_COLUMNS])
        for row in rows:
            writer.writerow(["" if row[key] is None else sheet_text(row[key]) for key, _ in LEDGER_COLUMNS])


def write_xlsx(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    # Imported here: only the export needs it, and the daemon should not carry it in memory.
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet("充装记录")
    sheet.freeze_panes = "A3"
    for index, (key, header) in enumerate(LEDGER_COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = 38 if key == "id" else max(10, len(header) * 2 + 2)
    sheet.append([title])
    headers = []
    for _, header in LEDGER_COLUMNS:
        cell = WriteOnlyCell(sheet, value=header)
        cell.font = Font(bold=True)
        headers.append(cell)
    sheet.append(headers)
    for row in rows:
        sheet.append([_xlsx_cell(sheet, row[key], WriteOnlyCell) for key, _ in LEDGER_COLUMNS])
    book.save(path)


def _xlsx_cell(sheet: Any, value: Any, make: Any) -> Any:
    """A ledger value as a cell: text that looks like a formula stays text (data type 's'), and
    control characters (illegal in the file's XML) are escaped."""
    if not isinstance(value, str):
        return value
    cell = make(sheet, value=printable(value))
    if is_formula_like(value):
        cell.data_type = "s"
    return cell


def rows_as_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: sheet_text(json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v) for k, v in row.items()})
    return out.getvalue()
