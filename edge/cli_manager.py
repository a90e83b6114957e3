"""The station manager's commands: `edge records`, `edge report daily`, `edge export`, `edge staff`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from . import cli_webapp, ledger, staff
from .config import Config
from .config.model import city_name_limit
from .lane import utc_now
from .output import table
from .station import open_store
from .textsafe import safe_row

EXIT_INVALID = 2
EXIT_UNVERIFIED = 3
FILL_COLUMNS = ["authorised_at", "lane", "cylinder_id", "status", "outcome", "cause", "net_kg", "operator", "checker", "id"]
SCAN_COLUMNS = ["ts", "lane", "cylinder_id", "code", "reasons", "seq"]

Loader = Callable[[str], Config]
Emit = Callable[[Any, bool, str], None]


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a date as yyyy-mm-dd") from None


def _filters(args: argparse.Namespace) -> ledger.Filters:
    return ledger.Filters(
        since=args.since or args.date, until=args.until or args.date, lane=args.lane, cylinder=args.cylinder,
        operator=getattr(args, "operator", None), outcome=getattr(args, "outcome", None), limit=getattr(args, "limit", None),
    )


def cmd_records(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    config = load(args.config)
    if args.rejected and (args.operator or args.outcome):
        print("--operator and --outcome select fills; rejected scans have neither", file=sys.stderr)
        return EXIT_INVALID
    store = open_store(config)
    try:
        if args.rejected:
            rows, columns = ledger.rejected_scans(store, config.tz, _filters(args)), SCAN_COLUMNS
        else:
            rows, columns = ledger.fills(store, config.tz, _filters(args)), FILL_COLUMNS
    finally:
        store.close()
    rows = [safe_row(row) for row in rows]  # scanned text reaches no terminal raw
    if args.csv:
        sys.stdout.write(ledger.rows_as_csv(rows, list(rows[0]) if rows else columns))
        return 0
    emit(rows, args.json, table(rows, columns))
    return 0


class Unverified(Exception):
    pass


def _verified(store: Any, args: argparse.Namespace, what: str) -> str | None:
    """None when the records are what the journal implies. Otherwise the problem, which refuses
    the output unless --allow-unverified asked for it, and then marks it."""
    problem = store.audit_problem()
    if problem is None:
        return None
    if not args.allow_unverified:
        raise Unverified(
            f"{what} refused: the records do not match the journal ({problem}); see `edge verify`."
            f" --allow-unverified produces it anyway, marked UNVERIFIED"
        )
    print(f"WARNING: UNVERIFIED {what}: {problem}", file=sys.stderr)
    return problem


def cmd_report_daily(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    config = load(args.config)
    now = utc_now()
    day = args.day or now.astimezone(config.tz).date()
    store = open_store(config)
    try:
        problem = _verified(store, args, "daily report")
        report = ledger.daily_report(store, config.tz, day, now)
    except Unverified as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNVERIFIED
    finally:
        store.close()
    report["unverified"] = problem
    text = _report_text(report)
    emit(report, args.json, text if problem is None else f"UNVERIFIED: {problem}\n{text}")
    return 0


def _report_text(r: dict[str, Any]) -> str:
    upload = r["upload"]
    lines = [
        f"daily report {r['date']}: {r['fills']} fills, {r['net_kg']} kg net filled"
        + (f" ({r['authorised_not_started']} authorised but never started)" if r["authorised_not_started"] else ""),
        "", "by lane", table(r["by_lane"], ["lane", "fills", "complete", "net_kg"]),
        "", "by operator", table(r["by_operator"], ["operator", "fills", "complete", "net_kg"]),
        "", "rejected scans by reason",
        table([{"reason": k, "text": ledger.reason_text(k), "scans": v} for k, v in r["rejections"].items()], ["reason", "text", "scans"]),
        "", f"overfills {len(r['overfills'])}, underfills {len(r['underfills'])}",
    ]
    for label in ("overfills", "underfills"):
        if r[label]:
            lines.append(table(r[label], ["lane", "cylinder_id", "target_net_kg", "net_kg", "operator", "id"]))
    lines += ["", "aborts by cause", table([{"cause": k, "text": ledger.reason_text(k), "fills": v} for k, v in r["aborts"].items()],
                                            ["cause", "text", "fills"])]
    lines += ["", f"upload backlog {upload['pending']} pending (oldest {upload['oldest_pending_age_s'] or 0:.0f} s),"
                  f" {upload['dead']} dead letters"]
    lines += [f"  dead #{d['id']} {d['kind']} fill {d['fill_id']}: {d['last_error']}" for d in upload["dead_letters"]]
    lines += ["", "dispatches by vehicle", table(r["dispatches"], ["plate", "courier", "cylinders"])]
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    config = load(args.config)
    out = Path(args.output)
    kind = args.format or out.suffix.lower().lstrip(".")
    if kind not in ("csv", "xlsx"):
        print(f"{out}: say --format csv or xlsx (or name the file .csv or .xlsx)", file=sys.stderr)
        return EXIT_INVALID
    store = open_store(config)
    try:
        problem = _verified(store, args, "ledger export")
        rows = ledger.ledger_rows(store, config.tz, _filters(args), config.station.owner_unit)
    except Unverified as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNVERIFIED
    finally:
        store.close()
    first, last = args.since or args.date, args.until or args.date
    span = f"{first or '最早'} 至 {last or '最新'}" if first or last else "全部记录"
    title = f"{config.station.owner_unit} 气瓶充装记录 {span}"
    if problem is not None:
        title = f"未经核验 UNVERIFIED ({problem}) {title}"
    if kind == "csv":
        ledger.write_csv(rows, out, None if problem is None else title)
    else:
        ledger.write_xlsx(rows, out, title)
    said = f"{out}: {len(rows)} filling records ({span})" + ("" if problem is None else f"; UNVERIFIED: {problem}")
    emit({"file": str(out), "rows": len(rows), "unverified": problem}, args.json, said)
    return 0


def cmd_staff_list(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    config = load(args.config)
    store = open_store(config)
    try:
        staff.register_config(store, config, utc_now())
        data = staff.listing(store)
    finally:
        store.close()
    human = table(data["staff"], ["id", "name", "source", "active"]) + "\n\nshifts\n" + table(
        data["shifts"], ["lane", "operator", "operator_name", "checker", "checker_name", "since"])
    emit(data, args.json, human)
    return 0


def _staff_change(args: argparse.Namespace, load: Loader, emit: Emit, change: Callable[[Any, Config, datetime], str]) -> int:
    config = load(args.config)
    store = open_store(config)
    try:
        now = utc_now()
        staff.register_config(store, config, now)
        said = change(store, config, now)
    except staff.StaffError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    finally:
        store.close()
    emit({"ok": True, "done": said}, args.json, said)
    return 0


def cmd_staff_add(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    def change(store: Any, config: Config, now: datetime) -> str:
        staff.add(store, args.id, args.name, city_name_limit(config), now)
        return f"registered {args.id} ({args.name.strip()})"

    return _staff_change(args, load, emit, change)


def cmd_staff_remove(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    def change(store: Any, config: Config, now: datetime) -> str:
        staff.remove(store, args.id, now)
        return f"removed {args.id}"

    return _staff_change(args, load, emit, change)


def cmd_staff_assign(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    def change(store: Any, config: Config, now: datetime) -> str:
        staff.assign(store, config, args.lane, args.operator, args.checker, now)
        return f"lane {args.lane}: operator {args.operator}, checker {args.checker} from the next authorised fill"

    return _staff_change(args, load, emit, change)


def cmd_inflight_reset(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    """Forget a lane's learned in-flight mass (a filling head was changed, say)."""
    config = load(args.config)
    if args.lane not in {lane.id for lane in config.lanes}:
        print(f"no lane {args.lane!r} in {args.config}", file=sys.stderr)
        return EXIT_INVALID
    store = open_store(config)
    try:
        removed = store.reset_inflight(args.lane, utc_now(), by=args.by)
    finally:
        store.close()
    said = f"lane {args.lane}: {removed} learned in-flight estimate(s) forgotten; the next fill starts from preact_kg"
    emit({"ok": True, "done": said, "removed": removed}, args.json, said)
    return 0


def _range(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", type=_date, help="one local day (yyyy-mm-dd)")
    parser.add_argument("--since", type=_date, help="from this local day (yyyy-mm-dd)")
    parser.add_argument("--until", type=_date, help="up to and including this local day")
    parser.add_argument("--lane")
    parser.add_argument("--cylinder", help="cylinder record ID")


def _allow_unverified(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-unverified", action="store_true",
                        help="produce it even when records differ from the journal (marked UNVERIFIED)")


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    records = sub.add_parser("records", help="filling records (or rejected scans), newest first, filtered")
    records.set_defaults(handler=cmd_records)
    common(records)
    _range(records)
    records.add_argument("--operator", help="operator name or staff id")
    records.add_argument("--outcome", choices=ledger.OUTCOMES)
    records.add_argument("--rejected", action="store_true", help="rejected scans instead of fills")
    records.add_argument("--limit", type=int, default=None)
    records.add_argument("--csv", action="store_true", help="CSV on stdout")

    report = sub.add_parser("report", help="reports for the station manager").add_subparsers(dest="report_command", required=True)
    daily = report.add_parser("daily", help="one day: fills per lane and operator, rejections, over/underfills, aborts, uploads")
    daily.set_defaults(handler=cmd_report_daily)
    common(daily)
    daily.add_argument("day", nargs="?", type=_date, help="local date yyyy-mm-dd (default today)")
    _allow_unverified(daily)

    export = sub.add_parser("export", help="the filling ledger (充装记录) as .csv or .xlsx with Chinese headers")
    export.set_defaults(handler=cmd_export)
    common(export)
    _range(export)
    export.add_argument("-o", "--output", required=True, help="FILE.csv or FILE.xlsx")
    export.add_argument("--format", choices=("csv", "xlsx"))
    _allow_unverified(export)

    reset = sub.add_parser("inflight-reset", help="forget a lane's learned in-flight mass (back to its preact_kg)")
    reset.set_defaults(handler=cmd_inflight_reset)
    common(reset)
    reset.add_argument("lane")
    reset.add_argument("--by", help="who asked (staff id), for the journal")

    group = sub.add_parser("staff", help="operators and checkers, and who is on shift at each lane")
    staff_sub = group.add_subparsers(dest="staff_command", required=True)
    for name, func, help_text in (
        ("list", cmd_staff_list, "registered staff and each lane's shift"),
        ("add", cmd_staff_add, "register (or rename) an operator or checker"),
        ("remove", cmd_staff_remove, "retire someone who is not on shift"),
        ("assign", cmd_staff_assign, "set a lane's operator and checker"),
        ("passwd", cli_webapp.cmd_staff_passwd, "set a PIN or password (and role) for the staff web app"),
    ):
        parser = staff_sub.add_parser(name, help=help_text)
        parser.set_defaults(handler=func)
        common(parser)
        if name in ("add", "remove"):
            parser.add_argument("id")
        if name == "add":
            parser.add_argument("name", help="as it goes to the city (at most 10 characters)")
        if name == "passwd":
            cli_webapp.add_staff_passwd(parser)
        if name == "assign":
            parser.add_argument("lane")
            parser.add_argument("--operator", required=True)
            parser.add_argument("--checker", required=True)
