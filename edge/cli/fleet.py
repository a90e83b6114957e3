"""`edge fleet ...`: the company's console (commands with their acknowledgements, the live view,
the collector and its reports) and a station's own view of its fleet outbox.

The company commands read a company config (`--company`, default $EDGE_COMPANY_CONFIG or
/etc/station-edge/company.yaml), not a station's.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..output import emit, local_time, table

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

DEFAULT_COMPANY_CONFIG = os.environ.get("EDGE_COMPANY_CONFIG", "/etc/station-edge/company.yaml")
EXIT_INVALID = 2
Loader = Callable[[str], "Config"]
Emit = Callable[[Any, bool, str], None]


def _company(args: argparse.Namespace) -> Any:
    from fleet.config import CompanyConfigError, load_company_config

    try:
        return load_company_config(args.company)
    except CompanyConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(EXIT_INVALID) from None


def cmd_command(args: argparse.Namespace) -> int:
    from fleet.console import ConsoleError, format_outcome, send_command

    config = _company(args)
    fields: dict[str, Any] = {"reason": getattr(args, "reason", None) or ""}
    if args.action in ("block", "unblock"):
        fields.update(identifier=args.identifier, station=args.station)
    elif args.action in ("lock", "unlock"):
        fields.update(station=args.station, lane=args.lane)
    else:
        fields.update(station=args.station)
    try:
        outcome = send_command(config, args.action, wait_s=args.wait, **fields)
    except (ConsoleError, OSError) as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    ok = bool(outcome.replies) and not outcome.missing and all(r["outcome"] == "applied" for r in outcome.replies.values())
    data = {"command": outcome.command.id, "online": outcome.online, "replies": outcome.replies, "missing": outcome.missing, "ok": ok}
    emit(data, args.json, format_outcome(outcome))
    return 0 if ok else 1


def cmd_watch(args: argparse.Namespace) -> int:
    from fleet.console import ConsoleError, watch

    config = _company(args)
    db = None
    try:
        # The collector's database adds since when an offline station is offline and the
        # quarantine count; the live view works without it.
        if _database_exists(config, args):
            db = _database(config, args)
    except Exception as exc:  # any driver's error: the view goes on without the database
        log.warning("fleet watch without the collector's database (%s)", exc)
    try:
        watch(config, sys.stdout, once=args.once, database=db)
    except ConsoleError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        if db is not None:
            db.close()
    return 0


def _database(config: Any, args: argparse.Namespace) -> Any:
    from fleet.database import EventDatabase

    return EventDatabase(config.database, base=Path(args.company).resolve().parent)


def _segment(text: str) -> str:
    from sync.fleet.settings import SEGMENT

    if not re.match(SEGMENT, text):
        raise argparse.ArgumentTypeError("1 to 32 letters, digits, _ or -, not starting with _ or -")
    return text


def _day(text: str) -> str:
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", text):
        raise argparse.ArgumentTypeError("a day as YYYY-MM-DD")
    return text


def _database_exists(config: Any, args: argparse.Namespace) -> bool:
    """A SQLite file the collector has made (the live view never creates one); a server, always."""
    if not config.database.startswith("sqlite:///"):
        return True
    path = Path(config.database[len("sqlite:///"):])
    return (path if path.is_absolute() else Path(args.company).resolve().parent / path).exists()


def cmd_collect(args: argparse.Namespace) -> int:
    from fleet.collector import Collector

    config = _company(args)
    if args.id is not None:
        config = config.model_copy(update={"collector_id": args.id})
    if args.share:
        config = config.model_copy(update={"share": True})
    collector = Collector(config, _database(config, args))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    collector.start()
    if args.leave:
        if not collector.connected.wait(config.broker.connect_timeout_s):
            print(f"fleet: no connection to {config.broker.host}:{config.broker.port}", file=sys.stderr)
            collector.stop()
            collector.db.close()
            return 1
        quiet = collector.leave()
        collector.db.close()
        print(f"collector {config.collector_id} left the group: {collector.stored} events stored on the way out"
              + ("" if quiet else "; still busy at the time limit: run --leave again"))
        return 0 if quiet else 1
    log.info("collector %s collecting %s events into %s", config.collector_id, config.company, config.database)
    stop.wait()
    collector.stop()
    collector.db.close()
    log.info("stopped: %d events stored, %d repeats dropped, %d quarantined", collector.stored, collector.duplicates,
             collector.quarantined)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from fleet import reports

    config = _company(args)
    db = _database(config, args)
    try:
        report = {
            "days": reports.daily(db, args.since),
            "backlogs": reports.backlogs(db),
            "refused_at_several_stations": reports.refused_at_several_stations(db),
            "quarantined": db.quarantine_count(),
        }
    finally:
        db.close()
    emit(report, args.json, reports.render(report, table))
    return 0


def cmd_heads(args: argparse.Namespace) -> int:
    """One station's witnessed chain heads, as the JSON `edge verify --witness FILE` reads."""
    from fleet import reports

    config = _company(args)
    if not _database_exists(config, args):
        print(f"fleet: no company database at {config.database} (no collector has run)", file=sys.stderr)
        return 1
    db = _database(config, args)
    try:
        found = reports.heads(db, args.station, args.since)
    finally:
        db.close()
    if not found:
        print(f"fleet: no chain head from station {args.station!r} in the company database"
              f"{' since ' + args.since if args.since else ''}", file=sys.stderr)
        return 1
    emit(found, args.json, table(found, ["day", "ts", "entry", "hash"]))
    return 0


def cmd_outbox(args: argparse.Namespace, load: Loader, emit_: Emit) -> int:
    """A station's own view: events still owed to the company, and its company locks and blocks."""
    from ..daemon.station import open_store
    from ..lanes.lane import utc_now
    from ..store.fleet import FleetLedger, FleetOutbox

    config = load(args.config)
    if config.fleet is None:
        print("this station's config has no fleet: section", file=sys.stderr)
        return EXIT_INVALID
    store = open_store(config)
    try:
        events = FleetOutbox(store, utc_now)
        counts = {**events.counts(), "last_delivered_at": events.last_delivered_at()}
        locks = FleetLedger(store).locks()
        blocks = store.query("SELECT identifier, cylinder_id, reason, sender, at FROM fleet_blocks ORDER BY at")
    finally:
        store.close()
    from fleet.views import code_tail

    shown = [{**b, "identifier": code_tail(b["identifier"])} for b in blocks]
    human = "\n".join([
        f"fleet outbox     {counts['pending']} pending; the broker's last acknowledgement"
        f" {local_time(counts['last_delivered_at'], config.tz) or 'none yet'}",
        f"company locks    {', '.join(f'{k}: {v}' for k, v in locks.items()) or 'none'}",
        "company blocks",
        table(shown, ["identifier", "cylinder_id", "reason", "sender", "at"], tz=config.tz),
    ])
    emit_({"outbox": counts, "locks": locks, "blocks": blocks}, args.json, human)
    return 0


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    fleet = sub.add_parser("fleet", help="the company fleet: commands to every station, live view, event collector")
    commands = fleet.add_subparsers(dest="fleet_command", required=True)

    def company(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help_text)
        p.set_defaults(func=func, action=name)
        p.add_argument("--company", default=DEFAULT_COMPANY_CONFIG,
                       help=f"company YAML (default {DEFAULT_COMPANY_CONFIG}, or $EDGE_COMPANY_CONFIG)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = company(name, cmd_command, help_text)
        p.add_argument("--wait", type=float, default=5.0, help="seconds to wait for acknowledgements")
        return p

    for name, help_text in (("block", "refuse a cylinder at every station (any identifier it carries)"),
                            ("unblock", "lift a block the company made (never a station's own)")):
        p = command(name, help_text)
        p.add_argument("identifier", help="cylinder id, info code, QR URL, traceable no., product no. or RFID")
        p.add_argument("--station", default="*", help="one station id (default every station)")
        if name == "block":
            p.add_argument("--reason", required=True)
    for name, help_text in (("lock", "lock a lane or a whole station: valves off, scans refused"),
                            ("unlock", "lift the company's lock (an operator still resets the lane)")):
        p = command(name, help_text)
        p.add_argument("station", help="station id, or * for every station")
        p.add_argument("--lane", help="one lane (default every lane)")
        if name == "lock":
            p.add_argument("--reason", required=True)
    p = command("status", "ask stations for a status report")
    p.add_argument("station", nargs="?", default="*")
    p = company("watch", cmd_watch, "live view of every station and lane")
    p.add_argument("--once", action="store_true", help="print the present state once and exit")
    p = company("collect", cmd_collect, "store every station's events in the company database (until SIGTERM)")
    p.add_argument("--id", type=_segment, help="this collector's id (its broker session), when several run at once"
                   " (default: collector_id in the company config)")
    p.add_argument("--share", action="store_true", help="one of several collectors: the broker spreads the events over"
                   " every collector started with --share (or share: true in the company config)")
    p.add_argument("--leave", action="store_true", help="retire this collector for good: drop its subscription (its share"
                   " of the events), store what its broker session still holds, and exit")
    p = company("report", cmd_report, "per station per day: fills, kg, overfills, refusals, trips, aborts; backlogs;"
                " codes refused at several stations; the quarantine")
    p.add_argument("--since", type=_day, help="only days from this one on (YYYY-MM-DD, each station's own day)")
    p = company("heads", cmd_heads, "the chain heads a station sent, oldest first: with --json, the witness file"
                " for `edge verify --witness` on that station")
    p.add_argument("station", type=_segment, help="the station's id")
    p.add_argument("--since", type=_day, help="only heads from this day on (YYYY-MM-DD)")
    outbox = commands.add_parser("outbox", help="this station's events owed to the company, its company locks and blocks")
    outbox.set_defaults(handler=cmd_outbox)
    common(outbox)
