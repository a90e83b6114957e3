"""The station manager's commands: `edge records`, `edge report daily`, `edge export`, `edge staff`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..output import CommandError, number, table
from ..textsafe import safe_row
from . import archive as cli_archive, webapp as cli_webapp
from .common import day_arg, open_existing, open_to_verify, utc_now

if TYPE_CHECKING:
    from ..config import Config
    from ..manager import ledger

EXIT_UNVERIFIED = 3
# What --outcome accepts, in the one case every command prints.
OUTCOMES = ("ok", "overfilled", "underfilled", "aborted")
FILL_COLUMNS = ["authorised_at", "lane", "cylinder_id", "status", "outcome", "cause", "net_kg", "operator", "checker", "id"]
SCAN_COLUMNS = ["ts", "lane", "cylinder_id", "code", "reasons", "seq"]

Loader = Callable[[str], "Config"]
Emit = Callable[[Any, bool, str], None]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of 1 or more")
    return value


def _open(config: Config, readonly: bool = False) -> Any:
    return open_existing(config, readonly)


def _filters(args: argparse.Namespace, config: Config, store: Any) -> ledger.Filters:
    """The filters as given, refused (exit 2) when they could only ever select nothing by mistake."""
    from ..manager import ledger
    from ..manager.identify import cylinder_id

    if args.date and (args.since or args.until):
        raise CommandError("--date is one day; give it alone, or --since/--until for a range")
    since, until = args.since or args.date, args.until or args.date
    if since and until and since > until:
        raise CommandError(f"--since {since} is after --until {until}")
    lanes = [lane.id for lane in config.lanes]
    if args.lane is not None and args.lane not in lanes:
        raise CommandError(f"no lane {args.lane!r} in the config (lanes: {', '.join(lanes)})")
    return ledger.Filters(
        since=since, until=until, lane=args.lane,
        cylinder=None if args.cylinder is None else cylinder_id(store, config, args.cylinder),
        operator=getattr(args, "operator", None), outcome=getattr(args, "outcome", None), limit=getattr(args, "limit", None),
    )


def presented(row: dict[str, Any]) -> dict[str, Any]:
    """A record as every command prints it: weights without floating-point tails, one case for
    outcomes (the store keeps what the fill machine said)."""
    out = {k: number(v) for k, v in row.items()}
    if isinstance(out.get("outcome"), str):
        out["outcome"] = out["outcome"].lower()
    return out


def cmd_records(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..manager import ledger

    config = load(args.config)
    if args.rejected and (args.operator or args.outcome):
        raise CommandError("--operator and --outcome select fills; rejected scans have neither")
    store = _open(config, readonly=True) if not args.archive else cli_archive.open_archive(args.archive)
    try:
        filters = _filters(args, config, store if not args.archive else cli_archive.Resolver(config))
        if args.rejected:
            rows, columns = ledger.rejected_scans(store, config.tz, filters), SCAN_COLUMNS
        else:
            rows, columns = ledger.fills(store, config.tz, filters), FILL_COLUMNS
    finally:
        store.close()
    rows = [safe_row(presented(r)) for r in rows]  # scanned text reaches no terminal raw
    if args.csv:
        sys.stdout.write(ledger.rows_as_csv(rows, list(rows[0]) if rows else columns, config.tz))
        return 0
    emit(rows, args.json, table(rows, columns, config.tz))
    return 0


def _verified(store: Any, args: argparse.Namespace, what: str, filters: ledger.Filters, tz: Any) -> str | None:
    """None when the records it reads are what the journal implies. Otherwise the problem, which
    refuses the output unless --allow-unverified asked for it, and then marks it."""
    from ..manager import ledger

    problem = store.audit_problem(ledger.fill_rowids(store, tz, filters))
    if problem is None:
        return None
    if not args.allow_unverified:
        raise CommandError(
            f"{what} refused: the records do not match the journal ({problem}); see `edge verify`."
            f" --allow-unverified produces it anyway, marked UNVERIFIED", EXIT_UNVERIFIED
        )
    print(f"WARNING: UNVERIFIED {what}: {problem}", file=sys.stderr)
    return problem


def cmd_report_daily(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..manager import ledger

    config = load(args.config)
    now = utc_now()
    day = args.day or now.astimezone(config.tz).date()
    store = open_to_verify(config)
    try:
        problem = _verified(store, args, "daily report", ledger.Filters(since=day, until=day), config.tz)
        report = ledger.daily_report(store, config.tz, day, now)
        # Printed and signed, the head witnesses the history so far: `edge verify --witness` holds
        # the chain to it later, so a history rewritten even from its first entry is found.
        report["chain_head"] = store.chain_head()
    finally:
        store.close()
    report["unverified"] = problem
    if args.xlsx:
        from ..manager.documents.daily_pdf import daily_summary
        from .reports import write_documents

        written = write_documents(daily_summary(report), config, None, args.xlsx, problem)
        if not args.pdf:
            said = f"{written[0]}: daily report {report['date']}" + ("" if problem is None else f"; UNVERIFIED: {problem}")
            emit({"file": written[0], "date": report["date"], "unverified": problem}, args.json, said)
            return 0
    if args.pdf:
        from ..manager.documents.daily_pdf import FontMissing, write_daily_pdf
        from ..manager.documents.pdf import Letterhead

        pdf = Path(args.pdf)
        if not pdf.parent.is_dir():
            raise CommandError(f"{pdf}: directory {pdf.parent} does not exist")
        try:
            write_daily_pdf(report, pdf, Letterhead.of(config.station))
        except FontMissing as exc:
            raise CommandError(str(exc), 1) from None
        said = f"{pdf}: daily report {report['date']}" + ("" if problem is None else f"; UNVERIFIED: {problem}")
        emit({"file": str(pdf), "date": report["date"], "unverified": problem}, args.json, said)
        return 0
    text = _report_text(report)
    emit(report, args.json, text if problem is None else f"UNVERIFIED: {problem}\n{text}")
    return 0


def _report_text(r: dict[str, Any]) -> str:
    from ..manager import ledger

    upload = r["upload"]
    lines = [
        f"daily report {r['date']}: {r['fills']} fills, {r['net_kg']} kg net filled"
        + (f" ({r['authorised_not_started']} authorised but never started)" if r["authorised_not_started"] else ""),
        "", "by lane", table(r["by_lane"], ["lane", "fills", "complete", "net_kg"]),
        "", "by operator", table(r["by_operator"], ["operator", "fills", "complete", "net_kg"]),
        "", f"rejected scans: {r['rejected_scans']}; their reasons (a scan can have several, each counted)",
        table([{"reason": k, "text": ledger.reason_text(k), "times": v} for k, v in r["rejections"].items()], ["reason", "text", "times"]),
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
    head = r["chain_head"]
    lines += ["", f"chain head: entry {head['entry']} sha256 {head['hash']}"]
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..manager import ledger

    config = load(args.config)
    out = Path(args.output)
    kind = args.format or out.suffix.lower().lstrip(".")
    if kind not in ("csv", "xlsx"):
        raise CommandError(f"{out}: say --format csv or xlsx (or name the file .csv or .xlsx)")
    if not out.parent.is_dir():
        raise CommandError(f"{out}: directory {out.parent} does not exist")
    store = open_to_verify(config)
    try:
        filters = _filters(args, config, store)
        problem = _verified(store, args, "ledger export", filters, config.tz)
        if kind == "csv" and problem is None:
            # Streamed: a busy month's ledger is written without holding it in memory.
            return _export_csv(store, config, filters, out, args, emit)
        rows = ledger.ledger_rows(store, config.tz, filters, config.station.owner_unit, _no_flow_kg(config))
    finally:
        store.close()
    days = [row["date"] for row in rows if row["date"] is not None]
    first, last = filters.since or (min(days) if days else None), filters.until or (max(days) if days else None)
    span = f"{first or '最早'} 至 {last or '最新'}" if first or last else "全部记录"
    title = f"{config.station.owner_unit} 气瓶充装记录 {span}"
    if problem is not None:
        title = f"未经核验 UNVERIFIED ({problem}) {title}"
    if kind == "csv":
        ledger.write_csv(rows, out, None if problem is None else title)
    else:
        from ..manager.documents.workbook import write_ledger

        write_ledger(rows, out, config.station.owner_unit, config.station.unit_code, span,
                     None if problem is None else f"未经核验 UNVERIFIED ({problem})", args.paper)
    said = f"{out}: {len(rows)} filling records ({span})" + ("" if problem is None else f"; UNVERIFIED: {problem}")
    emit({"file": str(out), "rows": len(rows), "unverified": problem}, args.json, said)
    return 0


def _no_flow_kg(config: Config) -> dict[str, float]:
    """Each lane's smallest rise that counts as gas: an aborted fill above it holds what it shows."""
    return {lane.id: lane.fill.no_flow_kg for lane in config.lanes}


def _export_csv(store: Any, config: Config, filters: ledger.Filters, out: Path, args: argparse.Namespace, emit: Emit) -> int:
    from ..manager import ledger

    seen = {"rows": 0, "first": None, "last": None}

    def counted(rows: Any) -> Any:
        for row in rows:
            seen["rows"] += 1
            if row["date"] is not None:
                seen["first"] = min(seen["first"] or row["date"], row["date"])
                seen["last"] = max(seen["last"] or row["date"], row["date"])
            yield row

    ledger.write_csv(counted(ledger.iter_ledger_rows(store, config.tz, filters, config.station.owner_unit, _no_flow_kg(config))), out)
    first, last = filters.since or seen["first"], filters.until or seen["last"]
    span = f"{first or '最早'} 至 {last or '最新'}" if first or last else "全部记录"
    emit({"file": str(out), "rows": seen["rows"], "unverified": None}, args.json, f"{out}: {seen['rows']} filling records ({span})")
    return 0


def cmd_staff_list(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..store import staff

    config = load(args.config)
    store = _open(config)
    try:
        staff.register_config(store, config, utc_now())
        data = staff.listing(store)
    finally:
        store.close()
    human = table(data["staff"], ["id", "name", "source", "active"]) + "\n\nshifts\n" + table(
        data["shifts"], ["lane", "operator", "operator_name", "checker", "checker_name", "since"], config.tz)
    emit(data, args.json, human)
    return 0


def _staff_change(args: argparse.Namespace, load: Loader, emit: Emit, change: Callable[[Any, Config, datetime], str]) -> int:
    from ..store import staff

    config = load(args.config)
    store = _open(config)
    try:
        now = utc_now()
        staff.register_config(store, config, now)
        said = change(store, config, now)
    except staff.StaffError as exc:
        raise CommandError(str(exc)) from None
    finally:
        store.close()
    emit({"ok": True, "done": said}, args.json, said)
    return 0


def cmd_staff_add(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..config.model import city_name_limit
    from ..store import staff

    def change(store: Any, config: Config, now: datetime) -> str:
        staff.add(store, args.id, args.name, city_name_limit(config), now)
        return f"registered {args.id} ({args.name.strip()})"

    return _staff_change(args, load, emit, change)


def cmd_staff_remove(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..store import staff

    def change(store: Any, config: Config, now: datetime) -> str:
        staff.remove(store, args.id, now)
        listed = any(person.id == args.id for person in config.operators)
        return f"removed {args.id}" + (" (still listed in the config; the removal stands until `edge staff add`)" if listed else "")

    return _staff_change(args, load, emit, change)


def cmd_staff_assign(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..store import staff

    def change(store: Any, config: Config, now: datetime) -> str:
        staff.assign(store, config, args.lane, args.operator, args.checker, now)
        return f"lane {args.lane}: operator {args.operator}, checker {args.checker} from the next authorised fill"

    return _staff_change(args, load, emit, change)


def cmd_inflight_reset(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    """Forget a lane's learned in-flight mass (a filling head was changed, say)."""

    config = load(args.config)
    if args.lane not in {lane.id for lane in config.lanes}:
        raise CommandError(f"no lane {args.lane!r} in {args.config}")
    store = _open(config)
    try:
        removed = store.reset_inflight(args.lane, utc_now(), by=args.by)
    finally:
        store.close()
    said = f"lane {args.lane}: {removed} learned in-flight estimate(s) forgotten; the next fill starts from preact_kg"
    emit({"ok": True, "done": said, "removed": removed}, args.json, said)
    return 0


def _range(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", type=day_arg, help="one local day (yyyy-mm-dd)")
    parser.add_argument("--since", type=day_arg, help="from this local day (yyyy-mm-dd)")
    parser.add_argument("--until", type=day_arg, help="up to and including this local day")
    parser.add_argument("--lane")
    parser.add_argument("--cylinder", help="cylinder record ID, or any code its tag carries (URL, info code, numbers, RFID)")


def _allow_unverified(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-unverified", action="store_true",
                        help="produce it even when records differ from the journal (marked UNVERIFIED)")


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> Any:
    """Returns `edge report`'s subcommands, for the other reports (cli/reports.py)."""
    records = sub.add_parser("records", help="filling records (or rejected scans), newest first, filtered")
    records.set_defaults(handler=cmd_records)
    common(records)
    _range(records)
    records.add_argument("--operator", help="operator name or staff id")
    records.add_argument("--outcome", type=str.lower, choices=OUTCOMES)
    records.add_argument("--rejected", action="store_true", help="rejected scans instead of fills")
    records.add_argument("--limit", type=_positive, default=None)
    records.add_argument("--csv", action="store_true", help="CSV on stdout")
    records.add_argument("--archive", metavar="FILE", help="read a monthly archive file (edge archive) instead of the live store")

    report = sub.add_parser("report", help="reports for the station manager").add_subparsers(dest="report_command", required=True)
    daily = report.add_parser("daily", help="one day: fills per lane and operator, rejections, over/underfills, aborts, uploads")
    daily.set_defaults(handler=cmd_report_daily)
    common(daily)
    daily.add_argument("day", nargs="?", type=day_arg, help="local date yyyy-mm-dd (default today)")
    daily.add_argument("--pdf", metavar="FILE", help="write the report as a one-page A4 PDF for signing")
    daily.add_argument("--xlsx", metavar="FILE", help="write the same tables as an .xlsx that prints on A4")
    _allow_unverified(daily)

    export = sub.add_parser("export", help="the filling ledger (充装记录) as .csv or .xlsx with Chinese headers")
    export.set_defaults(handler=cmd_export)
    common(export)
    _range(export)
    export.add_argument("-o", "--output", required=True, help="FILE.csv or FILE.xlsx")
    export.add_argument("--format", choices=("csv", "xlsx"))
    export.add_argument("--paper", choices=("a4", "a3"), default="a4", help="the .xlsx's printed page, landscape (default a4)")
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
    return report
