"""`edge report shift` (交接班记录) and `edge report monthly` (充装月报): as text, --json, a PDF
(--pdf) and an .xlsx (--xlsx); refused like `report daily` when the records they read differ
from the journal."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..output import CommandError, table
from .common import day_arg, open_to_verify, utc_now
from .manager import Emit, Loader, _allow_unverified, _verified

if TYPE_CHECKING:
    from ..config import Config
    from ..manager.documents.summary import Summary


def _month(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a month as yyyy-mm")
    return int(match.group(1)), int(match.group(2))


def _clock(text: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a local time as HH:MM") from None


def write_documents(summary: Summary, config: Config, pdf: str | None, xlsx: str | None, problem: str | None) -> list[str]:
    """The summary as a PDF and/or an .xlsx, each refused before anything is written when its
    directory does not exist."""
    from ..manager.documents.pdf import FontMissing, Letterhead
    from ..manager.documents.summary import write_summary_pdf, write_summary_xlsx

    targets = [Path(p) for p in (pdf, xlsx) if p]
    for path in targets:
        if not path.parent.is_dir():
            raise CommandError(f"{path}: directory {path.parent} does not exist")
    letterhead = Letterhead.of(config.station)
    if pdf:
        try:
            write_summary_pdf(summary, Path(pdf), letterhead, problem)
        except FontMissing as exc:
            raise CommandError(str(exc), 1) from None
    if xlsx:
        write_summary_xlsx(summary, Path(xlsx), letterhead, problem)
    return [str(path) for path in targets]


def _emit(args: argparse.Namespace, emit: Emit, report: dict[str, Any], summary: Summary, files: list[str],
          problem: str | None) -> None:
    if files:
        said = f"{', '.join(files)}: {summary.title} {summary.period}" + ("" if problem is None else f"; UNVERIFIED: {problem}")
        emit({"files": files, "unverified": problem}, args.json, said)
        return
    parts = [f"{summary.title} {summary.period}", *summary.lines]
    for section in summary.sections:
        rows = [dict(zip(section.header, row)) for row in [*section.rows, *([section.total] if section.total else [])]]
        parts += ["", section.title, table(rows, list(section.header))]
    text = "\n".join(parts)
    emit(report | {"unverified": problem}, args.json, text if problem is None else f"UNVERIFIED: {problem}\n{text}")


def shift_window(config: Config, day: date | None, name: str | None, start: time | None, end: time | None,
                 now: datetime) -> Any:
    """The shift asked for: --shift NAME on DAY (default the last that has ended), --from/--to on DAY,
    or without shifts configured the whole DAY (default today)."""
    from ..manager import shift

    tz = config.tz
    shifts = config.reports.shifts
    if (start is None) != (end is None):
        raise CommandError("--from and --to go together")
    if start is not None and end is not None:
        if name is not None:
            raise CommandError("--shift or --from/--to, not both")
        if start == end:
            raise CommandError("--from and --to are the same time")
        from ..config.reports import ShiftConfig

        return shift.window(ShiftConfig(name="自定", start=start, end=end),
                            day or now.astimezone(tz).date(), tz)
    if name is not None:
        chosen = [s for s in shifts if s.name == name]
        if not chosen:
            known = ", ".join(s.name for s in shifts) or "none configured (reports.shifts)"
            raise CommandError(f"no shift {name!r} (shifts: {known})")
        return shift.window(chosen[0], day or now.astimezone(tz).date(), tz)
    if not shifts:
        return shift.whole_day(day or now.astimezone(tz).date(), tz)
    if day is not None:
        raise CommandError(f"which shift of {day}? --shift {' or --shift '.join(s.name for s in shifts)}")
    return shift.last_ended(shifts, tz, now)


def cmd_report_shift(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..manager import ledger, shift

    config = load(args.config)
    now = utc_now()
    span = shift_window(config, args.day, args.shift, args.start, args.end, now)
    days = ledger.Filters(since=span.start.date(), until=span.end.date())
    return _verified_report(args, emit, config, "shift report", days,
                            lambda store: shift.shift_report(store, config.tz, span, now), shift.summary)


def _verified_report(args: argparse.Namespace, emit: Emit, config: Config, what: str, days: Any,
                     build: Callable[[Any], dict[str, Any]], summarise: Callable[[dict[str, Any]], Summary]) -> int:
    """Verify the days a report reads (refused unless --allow-unverified), build it, print it and
    write its documents. Read-only for a manager in the group, as `report daily` is."""
    store = open_to_verify(config)
    try:
        problem = _verified(store, args, what, days, config.tz)
        report = build(store)
    finally:
        store.close()
    summary = summarise(report)
    _emit(args, emit, report, summary, write_documents(summary, config, args.pdf, args.xlsx, problem), problem)
    return 0


def cmd_report_monthly(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..manager import ledger, monthly

    config = load(args.config)
    today = utc_now().astimezone(config.tz).date()
    year, month = args.month or ((today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12))
    first, last = monthly.month_days(year, month)
    return _verified_report(args, emit, config, "monthly report", ledger.Filters(since=first, until=last),
                            lambda store: monthly.monthly_report(store, config.tz, year, month), monthly.summary)


def _outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pdf", metavar="FILE", help="write it as an A4 PDF for signing")
    parser.add_argument("--xlsx", metavar="FILE", help="write it as an .xlsx that prints on A4")
    _allow_unverified(parser)


def add_commands(report: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Under `edge report` (its subcommands, made by the manager's commands)."""
    shift = report.add_parser("shift", help="交接班记录: who was on which lane, fills and kg, refusals, trips, resets, open alarms, uploads")
    shift.set_defaults(handler=cmd_report_shift)
    common(shift)
    shift.add_argument("day", nargs="?", type=day_arg, help="local date the shift starts (yyyy-mm-dd)")
    shift.add_argument("--shift", help="a shift named in reports.shifts (default: the last that has ended)")
    shift.add_argument("--from", dest="start", type=_clock, help="local start HH:MM, with --to (a shift not configured)")
    shift.add_argument("--to", dest="end", type=_clock, help="local end HH:MM (before --from: the next day)")
    _outputs(shift)

    monthly = report.add_parser("monthly", help="充装月报: per day and per lane, with the month's totals")
    monthly.set_defaults(handler=cmd_report_monthly)
    common(monthly)
    monthly.add_argument("month", nargs="?", type=_month, help="yyyy-mm (default: last month)")
    _outputs(monthly)


def _moment(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a local time as yyyy-mm-ddTHH:MM") from None


def cmd_reports_due(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    """Write the documents that are due and not yet in the reports folder; print them if a printer
    is configured. Exit 1 when one could not be written or printed (the unit then shows failed)."""
    from ..manager import kept

    config = load(args.config)
    now = utc_now() if args.now is None else (args.now if args.now.tzinfo else args.now.replace(tzinfo=config.tz))
    folder = config.reports.folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"reports.folder {folder}: {exc.strerror}", 1) from None
    store = open_to_verify(config)
    try:
        written, problems = _write_due(store, config, folder, now, args.allow_unverified)
    finally:
        store.close()
    if config.reports.printer:
        problems += kept.print_pending(folder, config.reports.printer, now)
    said = "\n".join([*(f"wrote {name}" for name in written), *(f"PROBLEM: {p}" for p in problems)]) or "nothing due"
    emit({"folder": str(folder), "written": written, "problems": problems}, args.json, said)
    return 1 if problems else 0


def _write_due(store: Any, config: Config, folder: Path, now: datetime, allow_unverified: bool) -> tuple[list[str], list[str]]:
    from ..manager import kept, ledger, monthly, shift
    from ..manager.documents.daily_pdf import write_daily_pdf
    from ..manager.documents.pdf import Letterhead
    from ..manager.documents.summary import write_summary_pdf, write_summary_xlsx
    from ..manager.documents.workbook import write_ledger
    from .manager import _no_flow_kg

    tz, letterhead = config.tz, Letterhead.of(config.station)
    today = now.astimezone(tz).date()
    written: list[str] = []
    problems: list[str] = []

    def checked(what: str, filters: ledger.Filters) -> tuple[bool, str | None]:
        """(go ahead, the problem to mark it with): refused, like the commands, unless allowed."""
        problem = store.audit_problem(ledger.fill_rowids(store, tz, filters))
        if problem is not None and not allow_unverified:
            problems.append(f"{what} not written: the records do not match the journal ({problem}); see `edge verify`")
            return False, problem
        return True, problem

    for day in kept.days_due(folder, today):
        filters = ledger.Filters(since=day, until=day)
        if day != today - timedelta(days=1) and ledger.fill_rowids(store, tz, filters) is None:
            continue  # a quiet day of the week before: nothing to catch up
        go, problem = checked(f"daily report {day}", filters)
        if not go:
            continue
        rows = ledger.ledger_rows(store, tz, filters, config.station.owner_unit, _no_flow_kg(config))
        warning = None if problem is None else f"未经核验 UNVERIFIED ({problem})"
        kept.whole(folder / f"ledger-{day}.xlsx", lambda path: write_ledger(
            rows, path, config.station.owner_unit, config.station.unit_code, f"{day} 至 {day}", warning, config.reports.paper))
        report = ledger.daily_report(store, tz, day, now) | {"chain_head": store.chain_head(), "unverified": problem}
        # The daily report last: its presence is what marks the day done.
        kept.whole(folder / f"daily-{day}.pdf", lambda path: write_daily_pdf(report, path, letterhead))
        written += [f"ledger-{day}.xlsx", f"daily-{day}.pdf"]

    for span in shift.ended_between(config.reports.shifts, tz, now - timedelta(days=kept.CATCH_UP_DAYS + 1), now):
        if (folder / f"shift-{span.slug}.pdf").exists():
            continue
        if now - span.end > timedelta(days=1) and not ledger.fills_between(store, tz, span.start, span.end):
            continue  # an older shift without fills (the station was off): nothing to catch up
        go, problem = checked(f"shift report {span.slug}", ledger.Filters(since=span.start.date(), until=span.end.date()))
        if go:
            summary = shift.summary(shift.shift_report(store, tz, span, now))
            kept.whole(folder / f"shift-{span.slug}.xlsx", lambda path: write_summary_xlsx(summary, path, letterhead, problem))
            kept.whole(folder / f"shift-{span.slug}.pdf", lambda path: write_summary_pdf(summary, path, letterhead, problem))
            written += [f"shift-{span.slug}.xlsx", f"shift-{span.slug}.pdf"]

    last_month = today.replace(day=1) - timedelta(days=1)
    name = f"monthly-{last_month:%Y-%m}"
    if not (folder / f"{name}.pdf").exists():
        first, last = monthly.month_days(last_month.year, last_month.month)
        go, problem = checked(f"monthly report {last_month:%Y-%m}", ledger.Filters(since=first, until=last))
        if go:
            summary = monthly.summary(monthly.monthly_report(store, tz, last_month.year, last_month.month))
            kept.whole(folder / f"{name}.xlsx", lambda path: write_summary_xlsx(summary, path, letterhead, problem))
            kept.whole(folder / f"{name}.pdf", lambda path: write_summary_pdf(summary, path, letterhead, problem))
            written += [f"{name}.xlsx", f"{name}.pdf"]
    return written, problems


def add_top_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """`edge reports due`, which the systemd timer runs."""
    group = sub.add_parser("reports", help="documents kept by themselves in reports.folder (the systemd timer runs `due`)")
    reports_sub = group.add_subparsers(dest="reports_command", required=True)
    due = reports_sub.add_parser("due", help="write the day's report and ledger, ended shifts' and last month's records, if missing; print them")
    due.set_defaults(handler=cmd_reports_due)
    common(due)
    due.add_argument("--now", type=_moment, help="as if it were this local moment (yyyy-mm-ddTHH:MM): catch up a past day")
    _allow_unverified(due)
