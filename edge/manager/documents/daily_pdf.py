"""The daily report (`edge report daily --pdf`) on one A4 page for an ordinary day (up to 12
lanes): the day's fills by lane and by operator, refused scans counted by reason, aborts by cause,
over- and underfills, dispatches and the upload backlog, each table with its 合计 row, the
station's filling licence in the heading and the signature lines with dates once at the end.
A busier day runs on, every page numbered 第 N 页 / 共 M 页. `--xlsx` prints the same tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..ledger import reason_text
from .pdf import FontMissing, Letterhead
from .summary import Section, Summary, write_summary_pdf

__all__ = ["FontMissing", "LISTED", "daily_summary", "write_daily_pdf"]

LISTED = 10  # over/underfills listed by name on the page; more are counted (the .xlsx lists all)


def write_daily_pdf(report: dict[str, Any], path: Path, letterhead: Letterhead) -> None:
    write_summary_pdf(daily_summary(report, LISTED), path, letterhead, report.get("unverified"))


def daily_summary(report: dict[str, Any], listed: int | None = None) -> Summary:
    """The report's tables, each with its 合计; `listed` caps the over- and underfills named."""
    reasons, aborts, upload = report["rejections"], report["aborts"], report["upload"]
    complete = sum(r["complete"] for r in report["by_lane"])

    def tally(header: str, key: str) -> Section:
        rows = report[f"by_{key}"]
        return Section(f"按{header}", [header, "充装(瓶)", "完成(瓶)", "实际充装量(kg)"],
                       [[r[key], r["fills"], r["complete"], round(r["net_kg"], 2)] for r in rows],
                       ["合计", sum(r["fills"] for r in rows), sum(r["complete"] for r in rows), round(sum(r["net_kg"] for r in rows), 2)])

    def misfills(key: str, label: str) -> Section:
        rows = report[key]
        shown = rows if listed is None else rows[:listed]
        return Section(f"{label} {len(rows)} 瓶" + (f"（列出前 {listed} 瓶）" if len(shown) < len(rows) else ""),
                       ["工位", "气瓶档案ID", "规定(kg)", "实际(kg)", "充装人员"],
                       [[r["lane"], r["cylinder_id"], r["target_net_kg"], r["net_kg"], r["operator"]] for r in shown],
                       ["合计", f"{len(rows)} 瓶", "", round(sum(r["net_kg"] or 0 for r in rows), 2), ""])

    dispatches = report.get("dispatches", [])
    head = report.get("chain_head")
    return Summary(
        title="充装日报",
        period=f"日期：{report['date']}",
        lines=[f"当日充装 {report['fills']} 瓶（完成 {complete} 瓶），合格完成的实际充装量合计 {report['net_kg']:.2f} kg；"
               f"已授权未开始 {report['authorised_not_started']} 次；拒绝充装的扫码 {report['rejected_scans']} 次。",
               f"上传：待上传 {upload['pending']} 条，最早已等待 {(upload['oldest_pending_age_s'] or 0) / 3600:.1f} 小时；"
               f"被拒收 {upload['dead']} 条。"]
              # The journal's head when printed: a signed copy witnesses the history so far.
              + ([f"日志链头：第 {head['entry']} 条 sha256 {head['hash']}"] if head else []),
        sections=[
            tally("工位", "lane"), tally("充装人员", "operator"),
            Section("拒绝充装的扫码：按原因计次（一次扫码可有几个原因）", ["原因", "原因次数"],
                    [[reason_text(k), v] for k, v in reasons.items()], [f"合计（{report['rejected_scans']} 次扫码）", sum(reasons.values())]),
            Section("中止（按原因）", ["原因", "瓶数"], [[reason_text(k), v] for k, v in aborts.items()], ["合计", sum(aborts.values())]),
            misfills("overfills", "超装"), misfills("underfills", "欠装"),
            Section("发货（按车辆）", ["车牌", "送气工", "气瓶(只)"], [[r["plate"], r["courier"], r["cylinders"]] for r in dispatches],
                    ["合计", f"{len(dispatches)} 车次", sum(r["cylinders"] for r in dispatches)]),
        ],
        pairs=((0, 1), (2, 3), (4, 5)),
    )
