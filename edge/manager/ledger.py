"""The station manager's view of the records: filtered queries, the daily report and the filling
ledger (充装记录) export. Dates are the station's local dates; the store keeps UTC."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from interlock.reasons import TEXT, Reason

from ..scanpoints import dispatch
from ..store import Store, journal
from ..store.delivered import delivered_fills
from ..store.outbox import Outbox
from ..textsafe import sheet_text

OUTCOMES = ("ok", "OVERFILLED", "UNDERFILLED", "aborted")
# The ledger's columns: (key in a ledger row, Chinese header as the regulator's forms name it).
LEDGER_COLUMNS = [
    ("seq", "序号"),
    ("date", "充装日期"),
    ("started", "开始时间"),
    ("finished", "结束时间"),
    ("lane", "充装工位"),
    ("cylinder_id", "气瓶档案ID"),
    ("code", "扫码内容"),
    ("model", "型号"),
    ("volume_l", "容积(L)"),
    ("next_inspection", "下次检验日期"),
    ("medium", "充装介质"),
    ("tare_kg", "皮重(kg)"),
    ("target_net_kg", "规定充装量(kg)"),
    ("start_gross_kg", "充装前称重(kg)"),
    ("final_gross_kg", "充装后复检称重(kg)"),
    ("net_kg", "实际充装量(kg)"),
    ("pre_check", "充装前检查"),
    ("result", "充装后检查"),
    ("cause", "中止原因"),
    ("operator", "充装人员"),
    ("checker", "复核人员"),
    ("filling_unit", "充装单位名称"),
    ("uploaded", "上传状态"),
    ("id", "记录编号"),
]
WEIGHTS = ("tare_kg", "target_net_kg", "start_gross_kg", "final_gross_kg", "net_kg")
UNCHECKED = "未检"  # no checker's recorded pre-fill check
RESULT_TEXT = {"ok": "合格", "OVERFILLED": "超装", "UNDERFILLED": "欠装", "aborted": "中止"}
# "local": gas went in but no record was queued (the re-weigh after a crash found none, or the
# station has no city link).
UPLOAD_TEXT = {"sent": "已上传", "pending": "待上传", "dead": "被拒收", "local": "不上传", None: "不上传(未开始充装)"}


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
    # Stored timestamps are UTC with an offset; compare instants, not strings, to be safe. The
    # string range a day wider on each side (wider than any offset) lets the index find the rows.
    if start:
        clauses.append(f"{time_column} >= ? AND julianday({time_column}) >= julianday(?)")
        params += [_shifted(start, -1), start]
    if end:
        clauses.append(f"{time_column} < ? AND julianday({time_column}) < julianday(?)")
        params += [_shifted(end, 1), end]
    if f.lane:
        clauses.append("lane = ?")
        params.append(f.lane)
    if f.cylinder:
        clauses.append(f"{cylinder_column} = ?")
        params.append(f.cylinder)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def fill_rowids(store: Store, tz: ZoneInfo, f: Filters) -> tuple[int, int] | None:
    """The first and last rowid of the fills in range: which checkpointed rows a report reads."""
    where, params = _where(tz, f, "authorised_at", "cylinder_id")
    row = store.query(f"SELECT min(rowid) AS lo, max(rowid) AS hi FROM fills{where}", params)[0]
    return None if row["lo"] is None else (row["lo"], row["hi"])


def _shifted(bound: str, days: int) -> str:
    return (datetime.fromisoformat(bound) + timedelta(days=days)).isoformat()


def fills(store: Store, tz: ZoneInfo, f: Filters) -> list[dict[str, Any]]:
    return store.query(*_fills_sql(tz, f))


def _fills_sql(tz: ZoneInfo, f: Filters, oldest_first: bool = False) -> tuple[str, list[Any]]:
    where, params = _where(tz, f, "authorised_at", "cylinder_id")
    extra: list[str] = []
    if f.operator:
        extra.append("(operator = ? OR operator IN (SELECT name FROM staff WHERE id = ?))")
        params += [f.operator, f.operator]
    if f.outcome:
        extra.append("lower(outcome) = lower(?)")
        params.append(f.outcome)
    if extra:
        where = (where + " AND " if where else " WHERE ") + " AND ".join(extra)
    order = "authorised_at, id DESC" if oldest_first else "authorised_at DESC, id"
    sql = f"SELECT * FROM fills{where} ORDER BY {order}"
    if f.limit:
        sql += f" LIMIT {int(f.limit)}"
    return sql, params


def rejected_scans(store: Store, tz: ZoneInfo, f: Filters) -> list[dict[str, Any]]:
    where, params = _where(tz, f, "ts", "cylinder_id")
    # A refused scan names no fill (an accepted one names the fill it authorised): only those are
    # read, and whether each was refused is read from the entry here (its data is packed: SQL
    # cannot look inside), so the limit counts refused scans only.
    where = (where + " AND " if where else " WHERE ") + "kind = 'scan' AND fill_id IS NULL"
    # The scans' own index (by time): the planner would otherwise walk every scan by kind.
    sql = f"SELECT seq, ts, lane, cylinder_id, data FROM journal INDEXED BY journal_scans{where} ORDER BY seq DESC"
    rows: list[dict[str, Any]] = []
    with closing(store.stream(sql, params)) as scans:
        for row in scans:
            data = journal.load(row.pop("data"))
            if data.get("accepted") != 0:  # false (or 0), as the scan was journalled
                continue
            row["code"] = data.get("code")
            row["reasons"] = data.get("reasons") or []
            row["details"] = data.get("details") or []
            row["raw_hex"] = data.get("raw_hex")
            rows.append(row)
            if f.limit and len(rows) >= f.limit:
                break
    return rows


HELD = "lane_held"


def journal_events(store: Store, kinds: Iterable[str], start: datetime | None, end: datetime) -> list[dict[str, Any]]:
    """Journal entries of these kinds in [start, end), oldest first, their data decoded: a lane's
    holds, acknowledgements and resets, for the shift hand-over."""
    kinds = list(kinds)
    # Through the kind index (entries that name no fill); a hold names its fill: through its own.
    unheld = [k for k in kinds if k != HELD]
    found = [f"SELECT seq FROM journal WHERE kind IN ({', '.join('?' * len(unheld))}) AND fill_id IS NULL"] if unheld else []
    if HELD in kinds:
        found.append(f"SELECT seq FROM journal WHERE kind = '{HELD}'")
    clauses = [f"seq IN ({' UNION ALL '.join(found)})", "julianday(ts) < julianday(?)"]
    params: list[Any] = [*unheld, end.isoformat()]
    if start is not None:
        clauses.append("julianday(ts) >= julianday(?)")
        params.append(start.isoformat())
    rows = store.query(f"SELECT seq, ts, kind, lane, data FROM journal WHERE {' AND '.join(clauses)} ORDER BY seq", params)
    for row in rows:
        row["data"] = journal.load(row["data"])
    return rows


def fills_between(store: Store, tz: ZoneInfo, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The fills authorised in [start, end) (aware instants), oldest first."""
    f = Filters(since=start.astimezone(tz).date(), until=end.astimezone(tz).date())
    return [row for row in store.stream(*_fills_sql(tz, f, oldest_first=True))
            if start <= datetime.fromisoformat(row["authorised_at"]) < end]


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
    refused = rejected_scans(store, tz, f)
    for scan in refused:  # a scan refused for several reasons counts once under each
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
        "rejected_scans": len(refused),
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


def ledger_rows(
    store: Store, tz: ZoneInfo, f: Filters, filling_unit: str, no_flow_kg: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """The ledger, oldest first: local dates and times as date/time values, weights as numbers,
    the cylinder's model, volume and next inspection from the cache, the medium by its name.
    `no_flow_kg` is each lane's smallest rise that counts as gas (fill.no_flow_kg): an aborted
    fill whose last weight rose more than that carries the net mass it holds."""
    return list(iter_ledger_rows(store, tz, f, filling_unit, no_flow_kg))


def iter_ledger_rows(
    store: Store, tz: ZoneInfo, f: Filters, filling_unit: str, no_flow_kg: Mapping[str, float] | None = None,
) -> Iterator[dict[str, Any]]:
    """ledger_rows() a row at a time (a CSV of a busy month is written without holding it)."""
    from .documents import medium_name

    # Only the rows of the fills in range: the cost of a month's ledger is the month's.
    where, params = _where(tz, f, "authorised_at", "cylinder_id")
    uploads = {
        r["fill_id"]: r["status"]
        for r in store.query(f"SELECT fill_id, status FROM outbox WHERE kind = 'filling' AND fill_id IN (SELECT id FROM fills{where})",
                             params)
    }
    # A started fill without a row: its record left the outbox once delivered (edge.store.delivered),
    # or none was queued (the re-weigh after a crash found no gas went in: not reported).
    started = [r for r in store.query(f"SELECT id, authorised_at, detail FROM fills{where}{' AND' if where else ' WHERE'}"
                                      " started_at IS NOT NULL", params) if r["id"] not in uploads]
    sent = [r for r in started if not json.loads(r["detail"] or "{}").get("no_gas")]
    since = min((r["authorised_at"] for r in sent), key=datetime.fromisoformat, default=None)
    delivered = delivered_fills(store, {r["id"] for r in sent}, since)
    uploads.update({r["id"]: "sent" if r["id"] in delivered else "local" for r in started})
    # The checker's recorded pre-fill check a fill relied on (the staff app), where there was one.
    prechecks = {
        r["id"]: r for r in store.query(
            "SELECT id, passed, checker_name FROM checks WHERE kind = 'prefill' AND id IN"
            f" (SELECT precheck_id FROM fills{where}{' AND' if where else ' WHERE'} precheck_id IS NOT NULL)", params)
    }
    cylinders = {
        r["id"]: r for r in store.query(
            f"SELECT id, model, volume_l, next_inspection FROM cylinders WHERE id IN (SELECT DISTINCT cylinder_id FROM fills{where})",
            params)
    }

    def local(value: str | None) -> datetime | None:
        return None if not value else datetime.fromisoformat(value).astimezone(tz).replace(tzinfo=None)

    # Oldest first, as a ledger reads (the limit, when given, keeps the newest).
    rows = reversed(fills(store, tz, f)) if f.limit else store.stream(*_fills_sql(tz, f, oldest_first=True))
    for seq, fill in enumerate(rows, start=1):
        started, finished = local(fill["started_at"]), local(fill["finished_at"])
        day = started or local(fill["authorised_at"])
        cylinder = cylinders.get(fill["cylinder_id"], {})
        yield {
            "seq": seq,
            "date": None if day is None else day.date(),
            "started": None if started is None else started.time(),
            "finished": None if finished is None else finished.time(),
            **{k: fill[k] for k in ("lane", "cylinder_id", "code", "operator", "checker", "id")},
            "model": cylinder.get("model"),
            "volume_l": cylinder.get("volume_l"),
            "next_inspection": cylinder.get("next_inspection"),
            "medium": medium_name(fill["medium"]),
            # Weights as the scale shows them, without binary floating-point tails.
            **{k: None if fill[k] is None else round(fill[k], 3) for k in WEIGHTS},
            "net_kg": _net(fill, no_flow_kg or {}),
            "pre_check": _pre_check(prechecks.get(fill["precheck_id"] or "")),
            "result": RESULT_TEXT.get(fill["outcome"] or "", fill["outcome"] or "进行中"),
            "cause": reason_text(fill["cause"]),
            "filling_unit": filling_unit,
            "uploaded": UPLOAD_TEXT.get(uploads.get(fill["id"]), "?"),
        }


def _pre_check(check: dict[str, Any] | None) -> str:
    """The pre-fill check column: the checker's recorded check with their name where the fill
    names one; otherwise 未检. Passing the lane's eligibility rules is not a checker's check, and
    the ledger does not say one happened."""
    if check is None:
        return UNCHECKED
    return f"{'合格' if check['passed'] else '不合格'}（{check['checker_name']}）"


def _net(fill: dict[str, Any], no_flow_kg: Mapping[str, float]) -> float | None:
    """The net mass the cylinder holds: a completed fill's, or an aborted one's whose last weight
    shows that gas went in (a blank would say it holds nothing)."""
    if fill["net_kg"] is not None:
        return round(fill["net_kg"], 3)
    final, start, tare = fill["final_gross_kg"], fill["start_gross_kg"], fill["tare_kg"]
    if fill["status"] != "aborted" or fill["started_at"] is None or None in (final, start, tare):
        return None
    threshold = no_flow_kg.get(fill["lane"], max(no_flow_kg.values(), default=0.0))
    return round(final - tare, 3) if final - start > threshold else None


def day_totals(rows: list[dict[str, Any]]) -> dict[date | None, tuple[int, float]]:
    """Per local day: (fills that completed, net kg filled)."""
    totals: dict[date | None, tuple[int, float]] = {}
    for row in rows:
        count, net = totals.get(row["date"], (0, 0.0))
        if row["net_kg"] is not None and row["result"] != "中止":
            count, net = count + 1, round(net + row["net_kg"], 3)
        totals[row["date"]] = (count, net)
    return totals


def write_csv(rows: Iterable[dict[str, Any]], path: Path, warning: str | None = None) -> None:
    # utf-8 with a BOM: Excel and WPS then read the Chinese headers as Chinese, not mojibake.
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        if warning is not None:  # an unverified ledger says so in its first line, not only on a terminal
            writer.writerow([sheet_text(warning)])
        writer.writerow([header for _, header in LEDGER_COLUMNS])
        for row in rows:
            writer.writerow([_csv_cell(row[key]) for key, _ in LEDGER_COLUMNS])


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    return sheet_text(value)


def rows_as_csv(rows: list[dict[str, Any]], columns: list[str], tz: ZoneInfo | None = None) -> str:
    """Plain cells a spreadsheet reads: lists joined with "; ", times local with their offset;
    scanned text escaped and kept from becoming a formula."""
    from ..output import local_time

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: sheet_text("; ".join(str(x) for x in v if x) if isinstance(v, list) else local_time(v, tz))
                         for k, v in row.items()})
    return out.getvalue()
