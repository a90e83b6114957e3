"""`edge`: the daemon and the station manager's commands. Human tables by default, --json for programs.

--config and --json work before or after the subcommand. Errors are one line (one JSON document
with --json) and an exit code: 0 done, 1 failed or found a problem, 2 the command was wrong
(bad option, bad filter, bad config), 130 interrupted, 141 the reader of our output went away.
Heavy modules (drivers, sync, the web server) load only in the commands that use them, so
`edge status` starts quickly.

Here: the parser, main() and the station's own commands (run, demo, check-config, status, verify,
valves-off). The other command groups each have a module: city.py (sync, cache), manager.py
(records, report, export, staff, inflight-reset), fleet.py, webapp.py and lane.py. Tables, emit and
exit codes are edge.output, which the manager's documents use too.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NoReturn

from .. import __version__
from ..output import EXIT_FAILED, EXIT_INVALID, CommandError, emit, emit_error, local_time
from ..store import StoreUnavailable
from . import city as cli_city, fleet as cli_fleet, lane as cli_lane, manager as cli_manager, webapp as cli_webapp

if TYPE_CHECKING:
    from ..config import Config
    from ..store import Store

log = logging.getLogger(__name__)

DEFAULT_CONFIG = os.environ.get("EDGE_CONFIG", "/etc/station-edge/station.yaml")
EXIT_STORE = 4  # the store cannot be opened or written (full or read-only disk, bad path)
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE


def _load(path: str) -> Config:
    from ..config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise CommandError(str(exc), EXIT_INVALID) from None


def open_existing(config: Config) -> Store:
    """The manager's commands read and change the daemon's store; they never create or migrate one."""
    from ..store.opening import open_store

    return open_store(config, existing=True)


def utc_now() -> datetime:
    from ..lanes.lane import utc_now as now

    return now()


# Commands ------------------------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    from ..config.preflight import preflight

    path = args.file or args.config
    config = _load(path)
    problems = preflight(config, strict=args.strict)
    lanes = ", ".join(lane.id for lane in config.lanes)
    data = {"ok": not problems, "file": path, "lanes": [lane.id for lane in config.lanes], "problems": problems,
            "strict": args.strict}
    human = (f"{path}: OK ({len(config.lanes)} lanes: {lanes})" + ("" if args.strict else "; drivers not loaded (--strict loads them)")
             if not problems else "\n".join([f"{path}: {len(problems)} problem(s) the daemon would refuse:"] + [f"  {p}" for p in problems]))
    if problems and not args.json:
        print(human, file=sys.stderr)
        return EXIT_INVALID
    emit(data, args.json, human)
    return 0 if not problems else EXIT_INVALID


def cmd_run(args: argparse.Namespace) -> int:
    from ..daemon import instance

    config = _load(args.config)
    # Before any relay, scanner or record is touched: a second daemon must not drive the first
    # one's valve off mid-fill, recover its live fill or read half of its scans.
    lock = instance.InstanceLock(config)
    try:
        lock.acquire()
    except instance.AlreadyRunning as exc:
        raise CommandError(f"edge run: refusing to start: {exc}; stop it first (systemctl stop station-edge)", EXIT_INVALID) from None
    except OSError as exc:
        raise CommandError(f"edge run: cannot take the station lock: {exc}", EXIT_INVALID) from None
    try:
        return _run(args, config)
    finally:
        lock.release()


def _run(args: argparse.Namespace, config: Config) -> int:
    import signal
    import threading

    from .. import logs
    from ..daemon.station import StartupError, Station

    logs.set_timezone(config.tz)
    logs.log_start(config, args.config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sim = None
    station = Station(config)
    try:
        if config.simulators is not None:
            from ..demo.simulation import Simulation  # only a config that names simulators loads them

            sim = Simulation(config).start()
            sim.seed_store()
        station.start()
    except (StartupError, StoreUnavailable) as exc:
        log.critical("%s", exc)
        if isinstance(exc, StoreUnavailable):  # valves are off; whatever started stops again
            station.stop()
        if sim:
            sim.stop()
        return EXIT_STORE if isinstance(exc, StoreUnavailable) else 1
    try:
        stop.wait()
    finally:
        log.info("stopping")
        station.stop()
        if sim:
            sim.stop()
    return EXIT_STORE if station.stopped_unrecorded else 0


def cmd_demo(args: argparse.Namespace) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from ..demo.run import run_demo

    keep = args.state_dir is not None
    state_dir = Path(args.state_dir) if keep else Path(tempfile.mkdtemp(prefix="edge-demo-"))
    if args.serve:
        from ..demo.training.serve import serve

        try:
            return serve(state_dir.resolve(), args.console_port)
        finally:
            if not keep:
                shutil.rmtree(state_dir, ignore_errors=True)
    try:
        summary = run_demo(state_dir.resolve(), args.json)
    finally:
        if not keep:
            shutil.rmtree(state_dir, ignore_errors=True)
    return 0 if summary["chain_ok"] else 1


def cmd_valves_off(args: argparse.Namespace) -> int:
    from ..daemon import instance
    from ..daemon.station import valves_off

    config = _load(args.config)
    # An emergency action: never refused, even under a running daemon; but it says so.
    running = instance.held_by(instance.store_lock_path(config))
    results = valves_off(config)
    ok = all(err is None for err in results.values())
    lines = [f"lane {lane}: {'off' if err is None else 'FAILED: ' + err}" for lane, err in results.items()]
    if running is not None:
        lines.append(
            f"note: a station-edge daemon is running on this store ({running}). Its valves were driven off"
            " under it: a fill in progress stops taking gas and its lane trips or times out; the daemon"
            " opens a valve again on the next accepted scan. Stop the daemon to keep them off."
        )
    data = {"ok": ok, "lanes": results, "daemon_running": None if running is None else {"pid": running.pid, "since": running.since}}
    emit(data, args.json, "\n".join(lines))
    return 0 if ok else 1


def cmd_verify(args: argparse.Namespace) -> int:
    config = _load(args.config)
    store = open_existing(config)
    try:
        report = store.verify()
        integrity = store.query("PRAGMA integrity_check")[0]["integrity_check"]
        # Rows are replayed only from a journal that holds: a broken chain implies nothing.
        records = store.verify_records() if report.ok else None
    finally:
        store.close()
    first = None if records is None else records.first
    data = {"ok": report.ok and integrity == "ok" and records is not None and records.ok, "entries": report.entries,
            "first_bad_entry": report.first_bad_seq, "problem": report.problem, "integrity_check": integrity,
            "records_checked": None if records is None else records.checked,
            "first_difference": None if first is None else
            {"table": first.table, "key": first.key, "field": first.field, "stored": first.stored, "journal": first.journalled},
            "differences": None if records is None else [str(m) for m in records.mismatches]}
    lines = [
        f"journal OK: {report.entries} entries, hash chain intact; integrity_check {integrity}"
        if report.ok
        else f"journal BROKEN at entry {report.first_bad_seq}: {report.problem}; integrity_check {integrity}"
    ]
    if records is not None and records.ok:
        lines.append("records OK: " + ", ".join(f"{n} {table}" for table, n in records.checked.items()) + " as the journal implies")
    elif records is not None:
        lines.append(f"records DIFFER from the journal: {first}")
        lines += [f"  {m}" for m in records.mismatches[1:]]
    emit(data, args.json, "\n".join(lines))
    return 0 if data["ok"] else 1


def cmd_status(args: argparse.Namespace) -> int:
    # A glance, not a validation: the report needs four keys, and validating the whole config
    # would take longer than everything else `status` does (check-config and run validate it).
    from ..config.errors import ConfigError
    from ..config.glance import glance
    from ..store import Store

    try:
        config = glance(args.config)
    except ConfigError as exc:
        raise CommandError(str(exc), EXIT_INVALID) from None
    store = Store(config.store_path, existing=True)
    try:
        age = store.cache_age_s(datetime.now(timezone.utc))
        data = {
            "station": config.owner_unit,
            "cylinders_cached": store.query("SELECT count(*) AS n FROM cylinders")[0]["n"],
            "cache_age_hours": None if age is None else round(age / 3600, 2),
            "fills": {r["status"]: r["n"] for r in store.query("SELECT status, count(*) AS n FROM fills GROUP BY status")},
            "outbox": {r["status"]: r["n"] for r in store.query("SELECT status, count(*) AS n FROM outbox GROUP BY status")},
            "lanes": {lane: _last_activity(store, lane) for lane in config.lanes},
            "inflight": {lane: _inflight(store, lane) for lane in config.lanes},
            "journal_entries": store.query("SELECT coalesce(max(seq), 0) AS n FROM journal")[0]["n"],
        }
    finally:
        store.close()
    counts = lambda d: ", ".join(f"{n} {k}" for k, n in sorted(d.items())) or "none"  # noqa: E731
    human = "\n".join(
        [
            f"station          {data['station']}",
            f"cylinder cache   {data['cylinders_cached']} cylinders, "
            + ("never refreshed" if age is None else f"{data['cache_age_hours']} h old"),
            f"fills            {counts(data['fills'])}",
            f"upload outbox    {counts(data['outbox'])}",
            f"journal          {data['journal_entries']} entries",
        ]
        + [f"lane {lane:<11} last {info['kind'] or '-'} at {local_time(info['ts'], config.tz) or '-'}"
           for lane, info in data["lanes"].items()]
        + [
            f"lane {lane:<11} in-flight {model}: {info['inflight_s']:.3f} s of flow from {info['fills']} fills"
            for lane, models in data["inflight"].items()
            for model, info in models.items()
        ]
    )
    emit(data, args.json, human)
    return 0


def _inflight(store: Any, lane: str) -> dict[str, dict[str, Any]]:
    """What the lane has learned of its in-flight mass, per cylinder model ("*": the lane's own)."""
    return {
        model: {"inflight_s": round(learned.inflight_s or 0.0, 4), "fills": learned.fills}
        for model, learned in sorted(store.inflight(lane).items())
    }


def _last_activity(store: Any, lane: str) -> dict[str, Any]:
    rows = store.query("SELECT ts, kind, data FROM journal WHERE lane = ? ORDER BY seq DESC LIMIT 1", [lane])
    return {"ts": rows[0]["ts"], "kind": rows[0]["kind"]} if rows else {"ts": None, "kind": None}


# The parser ----------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as JSON when --json was asked for."""

    json_errors = False  # set by main() from the command line

    def error(self, message: str) -> NoReturn:
        if self.json_errors:
            raise CommandError(f"{self.prog}: {message}", EXIT_INVALID)
        super().error(message)


def _add_shared(parser: argparse.ArgumentParser, after_command: bool) -> None:
    """--config and --json, before the subcommand (with the defaults) and after it (SUPPRESS, so an
    option absent after the subcommand does not overwrite one given before it)."""
    default = argparse.SUPPRESS if after_command else None
    parser.add_argument("--config", default=default or DEFAULT_CONFIG,
                        help=f"station YAML (default {DEFAULT_CONFIG}, or $EDGE_CONFIG)")
    parser.add_argument("--json", action="store_true", default=default or False, help="machine-readable output (errors too)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="edge", description="Station edge controller for cylinder filling")
    _add_shared(parser, after_command=False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        _add_shared(p, after_command=True)
        return p

    command("run", cmd_run, "run the daemon until SIGTERM/SIGINT")
    demo = command("demo", cmd_demo, "run a whole simulated station with scripted operators")
    demo.add_argument("--state-dir", help="keep the database and effective config (station.yaml) here")
    demo.add_argument("--serve", action="store_true",
                      help="keep the simulated station running, with its status page and a simulation console for training")
    demo.add_argument("--console-port", type=int, default=8091, help="the simulation console's port on localhost (default 8091)")
    check = command("check-config", cmd_check_config, "validate a config file and what it refers to")
    check.add_argument("file", nargs="?", help="the YAML to check (default: --config)")
    check.add_argument("--strict", action="store_true", help="also load each configured driver (GPIO backend, scanner libraries)")
    command("status", cmd_status, "cache, fills, outbox and lane activity")
    command("verify", cmd_verify, "check the journal's hash chain, and every fill, outbox, staff and shift row against it")
    command("valves-off", cmd_valves_off, "drive every configured valve relay off and exit")

    def common(p: argparse.ArgumentParser) -> None:
        p.set_defaults(func=lambda args: args.handler(args, _load, emit))
        _add_shared(p, after_command=True)

    cli_city.add_commands(sub, common)
    cli_manager.add_commands(sub, common)
    cli_fleet.add_commands(sub, common)
    cli_webapp.add_commands(sub, common)
    cli_lane.add_commands(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    as_json = "--json" in argv
    verbose = "-v" in argv or "--verbose" in argv
    try:
        Parser.json_errors = as_json
        args = build_parser().parse_args(argv)
        from .. import logs

        logs.setup(args.verbose)
        if args.command == "demo" and not args.verbose:
            # The demo prints its own progress; daemon INFO lines would drown it.
            logging.getLogger().setLevel(logging.WARNING)
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except CommandError as exc:
        emit_error(str(exc), exc.code, as_json)
        return exc.code
    except StoreUnavailable as exc:  # a full or read-only disk, a path that is no database
        emit_error(f"edge {args.command}: {exc}", EXIT_STORE, as_json)
        return EXIT_STORE
    except BrokenPipeError:
        # `edge records | head -1`: the reader has what it wanted. Point stdout at /dev/null so the
        # interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        emit_error("interrupted", EXIT_INTERRUPTED, as_json)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a full disk, a missing directory, a store that is not one: one line, not a traceback
        if verbose:
            log.exception("unexpected error")
        emit_error(_describe(exc), EXIT_FAILED, as_json)
        return EXIT_FAILED


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror}"
    name = type(exc).__name__
    return f"{exc}" if name.endswith("StoreError") else f"{name}: {exc}"
