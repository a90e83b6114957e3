"""The monthly summary (充装月报): the month's fills, kg, over- and underfills, aborts and refused
scans per day and per lane, with the month's totals."""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..store import Store
from . import ledger
from .documents.summary import Section, Summary

COUNTS = ("fills", "complete", "overfilled", "underfilled", "aborted", "rejected_scans")


def month_days(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def monthly_report(store: Store, tz: ZoneInfo, year: int, month: int) -> dict[str, Any]:
    first, last = month_days(year, month)
    start, end = datetime.combine(first, time(), tz), datetime.combine(last + timedelta(days=1), time(), tz)
    days = {first + timedelta(days=n): _zero() for n in range((last - first).days + 1)}
    lanes: dict[str, dict[str, Any]] = {}
    for fill in ledger.fills_between(store, tz, start, end):
        if fill["started_at"] is None:
            continue
        day = datetime.fromisoformat(fill["authorised_at"]).astimezone(tz).date()
        for row in (days[day], lanes.setdefault(fill["lane"], _zero())):
            row["fills"] += 1
            if fill["status"] == "complete":
                row["complete"] += 1
                row["net_kg"] = round(row["net_kg"] + (fill["net_kg"] or 0.0), 3)
            row["overfilled"] += fill["outcome"] == "OVERFILLED"
            row["underfilled"] += fill["outcome"] == "UNDERFILLED"
            row["aborted"] += fill["outcome"] == "aborted"
    for scan in ledger.rejected_scans(store, tz, ledger.Filters(since=first, until=last)):
        days[datetime.fromisoformat(scan["ts"]).astimezone(tz).date()]["rejected_scans"] += 1
        if scan["lane"]:
            lanes.setdefault(scan["lane"], _zero())["rejected_scans"] += 1
    by_day = [{"date": day.isoformat(), **row} for day, row in days.items()]
    by_lane = [{"lane": lane, **row} for lane, row in sorted(lanes.items())]
    return {"month": f"{year:04d}-{month:02d}", "by_day": by_day, "by_lane": by_lane, "total": _total(by_day),
            "lanes_total": _total(by_lane)}


def _total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: sum(row[key] for row in rows) for key in COUNTS} | {"net_kg": round(sum(r["net_kg"] for r in rows), 3)}


def _zero() -> dict[str, Any]:
    return {**{key: 0 for key in COUNTS}, "net_kg": 0.0}


HEADER = ["充装(瓶)", "完成(瓶)", "实际充装量(kg)", "超装", "欠装", "中止", "拒绝扫码(次)"]


def _cells(row: dict[str, Any]) -> list[Any]:
    return [row["fills"], row["complete"], round(row["net_kg"], 2), row["overfilled"], row["underfilled"], row["aborted"],
            row["rejected_scans"]]


def summary(report: dict[str, Any]) -> Summary:
    total = report["total"]
    return Summary(
        title="充装月报",
        period=f"月份：{report['month']}",
        lines=[f"本月充装 {total['fills']} 瓶（完成 {total['complete']} 瓶），实际充装量合计 {total['net_kg']:.2f} kg；"
               f"超装 {total['overfilled']} 瓶，欠装 {total['underfilled']} 瓶，中止 {total['aborted']} 瓶；"
               f"拒绝充装的扫码 {total['rejected_scans']} 次。"],
        sections=[
            Section("按日", ["日期", *HEADER], [[row["date"], *_cells(row)] for row in report["by_day"]], ["合计", *_cells(total)]),
            Section("按工位", ["工位", *HEADER], [[row["lane"], *_cells(row)] for row in report["by_lane"]],
                    ["合计", *_cells(report["lanes_total"])]),
        ],
        signers=("制表人", "复核人", "负责人"),
    )
