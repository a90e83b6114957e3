"""The shift hand-over record (交接班记录): for a shift's hours, who was on which lane, the fills and
kg, the refused scans by reason, the trips and the resets, the alarms still open at its end, and
the upload backlog when it was printed. Shifts are the config's `reports.shifts`; a station
without them hands over by whole days."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..config.reports import ShiftConfig
from ..store import Store
from ..store.outbox import Outbox
from . import ledger
from .documents.summary import Section, Summary

LOOKBACK = timedelta(days=7)  # how far back a trip or hold still open at a shift's start is looked for
TRIPPED, HELD = "联锁跳闸", "报警保持"
CLEARED = ("lane_reset", "lane_ack")


@dataclass(frozen=True)
class Window:
    name: str  # the shift's name, or 全天 for a whole day
    start: datetime  # aware, local
    end: datetime

    @property
    def label(self) -> str:
        return f"{self.name} {self.start:%Y-%m-%d %H:%M} 至 {self.end:%Y-%m-%d %H:%M}"

    @property
    def slug(self) -> str:
        """For a file name: the day it started and the shift's name."""
        return f"{self.start:%Y-%m-%d}-{self.name}"


def window(shift: ShiftConfig, day: date, tz: ZoneInfo) -> Window:
    """The shift that starts on this local day."""
    start = datetime.combine(day, shift.start, tz)
    end = datetime.combine(day + timedelta(days=1) if shift.end <= shift.start else day, shift.end, tz)
    return Window(shift.name, start, end)


def whole_day(day: date, tz: ZoneInfo) -> Window:
    return Window("全天", datetime.combine(day, time(), tz), datetime.combine(day + timedelta(days=1), time(), tz))


def ended_between(shifts: Sequence[ShiftConfig], tz: ZoneInfo, since: datetime, now: datetime) -> list[Window]:
    """Every configured shift that ended in (since, now], oldest first."""
    found = []
    day = since.astimezone(tz).date() - timedelta(days=1)
    while day <= now.astimezone(tz).date():
        found += [w for w in (window(s, day, tz) for s in shifts) if since < w.end <= now]
        day += timedelta(days=1)
    return sorted(found, key=lambda w: w.end)


def last_ended(shifts: Sequence[ShiftConfig], tz: ZoneInfo, now: datetime) -> Window:
    return ended_between(shifts, tz, now - timedelta(days=2), now)[-1]


def shift_report(store: Store, tz: ZoneInfo, span: Window, now: datetime) -> dict[str, Any]:
    fills = ledger.fills_between(store, tz, span.start, span.end)
    started = [f for f in fills if f["started_at"] is not None]
    lanes: dict[str, dict[str, Any]] = {}
    for fill in started:
        lane = lanes.setdefault(fill["lane"], {"lane": fill["lane"], "operators": [], "checkers": [], "fills": 0, "complete": 0, "net_kg": 0.0})
        for key, names in (("operator", lane["operators"]), ("checker", lane["checkers"])):
            if fill[key] and fill[key] not in names:
                names.append(fill[key])
        lane["fills"] += 1
        if fill["status"] == "complete":
            lane["complete"] += 1
            lane["net_kg"] = round(lane["net_kg"] + (fill["net_kg"] or 0.0), 3)
    days = ledger.Filters(since=span.start.date(), until=span.end.date())
    scans = [s for s in ledger.rejected_scans(store, tz, days) if span.start <= datetime.fromisoformat(s["ts"]) < span.end]
    reasons: dict[str, int] = {}
    for scan in scans:
        for reason in scan["reasons"] or ["(none)"]:
            reasons[reason] = reasons.get(reason, 0) + 1
    trips = [{"at": _local(f["finished_at"], tz), "lane": f["lane"], "cause": f["cause"], "operator": f["operator"], "id": f["id"]}
             for f in fills if f["tripped"]]
    resets = [{"at": _local(e["ts"], tz), "lane": e["lane"], "kind": e["kind"], "by": e["data"].get("by"), "cause": e["data"].get("cause")}
              for e in ledger.journal_events(store, CLEARED, span.start, span.end)]
    backlog = Outbox(store).status(now)
    return {
        "shift": span.name, "start": span.start.isoformat(), "end": span.end.isoformat(),
        "fills": len(started), "complete": sum(lane["complete"] for lane in lanes.values()),
        "net_kg": round(sum(lane["net_kg"] for lane in lanes.values()), 3),
        "by_lane": sorted(lanes.values(), key=lambda lane: lane["lane"]),
        "rejected_scans": len(scans), "rejections": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "trips": trips, "resets": resets, "open_alarms": open_alarms(store, tz, span.end),
        "upload": {"pending": backlog["pending"], "dead": backlog["dead"], "oldest_pending_age_s": backlog["oldest_pending_age_s"],
                   "at": now.isoformat()},
    }


def open_alarms(store: Store, tz: ZoneInfo, end: datetime) -> list[dict[str, Any]]:
    """Lanes left tripped (locked until a reset) or held (until an acknowledgement) at `end`."""
    events: list[tuple[str, str, str, str | None]] = []  # (when, lane, what, cause)
    for fill in ledger.fills_between(store, tz, end - LOOKBACK, end):
        if fill["tripped"] and fill["finished_at"] and datetime.fromisoformat(fill["finished_at"]) < end:
            events.append((fill["finished_at"], fill["lane"], TRIPPED, fill["cause"]))
    for entry in ledger.journal_events(store, ("lane_held", *CLEARED), end - LOOKBACK, end):
        events.append((entry["ts"], entry["lane"], HELD if entry["kind"] == "lane_held" else "", entry["data"].get("cause")))
    open_: dict[str, dict[str, Any]] = {}
    for when, lane, what, cause in sorted(events, key=lambda e: datetime.fromisoformat(e[0])):
        if what:
            open_[lane] = {"lane": lane, "since": _local(when, tz), "what": what, "cause": cause}
        else:
            open_.pop(lane, None)
    return sorted(open_.values(), key=lambda a: a["lane"])


def _local(value: str | None, tz: ZoneInfo) -> str:
    return "" if not value else datetime.fromisoformat(value).astimezone(tz).strftime("%m-%d %H:%M")


def _cause(code: str | None) -> str:
    """A trip's reason, or a hold's outcome (an interrupted fill re-weighed as over- or underfilled)."""
    return ledger.RESULT_TEXT.get(code or "") or ledger.reason_text(code)


def summary(report: dict[str, Any]) -> Summary:
    """The report as the printed and the spreadsheet record show it."""
    lanes = report["by_lane"]
    reasons = report["rejections"]
    upload = report["upload"]
    span = f"班次：{report['shift']} {report['start'][:16].replace('T', ' ')} 至 {report['end'][:16].replace('T', ' ')}"
    return Summary(
        title="交接班记录",
        period=span,
        lines=[f"本班充装 {report['fills']} 瓶（完成 {report['complete']} 瓶），实际充装量合计 {report['net_kg']:.2f} kg；"
               f"拒绝充装的扫码 {report['rejected_scans']} 次；联锁跳闸 {len(report['trips'])} 次，复位/确认 {len(report['resets'])} 次；"
               f"交班时未处理报警 {len(report['open_alarms'])} 个。",
               f"上传积压（打印时 {upload['at'][:16].replace('T', ' ')}）：待上传 {upload['pending']} 条，"
               f"最早已等待 {(upload['oldest_pending_age_s'] or 0) / 3600:.1f} 小时；被拒收 {upload['dead']} 条。"],
        sections=[
            Section("在岗人员与充装（按工位）", ["工位", "充装人员", "复核人员", "充装(瓶)", "完成(瓶)", "实际充装量(kg)"],
                    [[r["lane"], "、".join(r["operators"]), "、".join(r["checkers"]), r["fills"], r["complete"], round(r["net_kg"], 2)]
                     for r in lanes],
                    ["合计", "", "", report["fills"], report["complete"], round(report["net_kg"], 2)]),
            Section("拒绝充装的扫码：按原因计次（一次扫码可有几个原因）", ["原因", "原因次数"],
                    [[ledger.reason_text(k), v] for k, v in reasons.items()],
                    [f"合计（{report['rejected_scans']} 次扫码）", sum(reasons.values())]),
            Section("未处理报警（交班时）", ["工位", "状态", "原因", "自"],
                    [[a["lane"], a["what"], _cause(a["cause"]), a["since"]] for a in report["open_alarms"]],
                    ["合计", f"{len(report['open_alarms'])} 个", "", ""]),
            Section("联锁跳闸", ["时间", "工位", "原因", "充装人员"],
                    [[t["at"], t["lane"], ledger.reason_text(t["cause"]), t["operator"]] for t in report["trips"]],
                    ["合计", f"{len(report['trips'])} 次", "", ""]),
            Section("复位与确认", ["时间", "工位", "操作", "操作人"],
                    [[r["at"], r["lane"], "复位" if r["kind"] == "lane_reset" else "确认报警", r["by"]] for r in report["resets"]],
                    ["合计", f"{len(report['resets'])} 次", "", ""]),
        ],
        signers=("交班人", "接班人", "负责人"),
        pairs=((1, 2), (3, 4)),
    )
