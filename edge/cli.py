"""`edge`: the daemon and the station manager's commands. Human tables by default, --json for programs."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from . import __version__, cli_city, cli_fleet, cli_lane, cli_manager, cli_webapp, instance, logs
from .config import Config, ConfigError, load_config
from .lane import utc_now
from .output import emit
from .station import StartupError, Station, open_store, valves_off
from .store import StoreUnavailable

log = logging.getLogger(__name__)

DEFAULT_CONFIG = os.environ.get("EDGE_CONFIG", "/etc/station-edge/station.yaml")
EXIT_INVALID = 2
EXIT_STORE = 4  # the store cannot be opened or written (full or read-only disk, bad path)


def _load(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(EXIT_INVALID) from None


# Commands ------------------------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    print(f"{args.file}: OK ({len(config.lanes)} lanes: {', '.join(l.id for l in config.lanes)})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    # Before any relay, scanner or record is touched: a second daemon must not drive the first
    # one's valve off mid-fill, recover its live fill or read half of its scans.
    lock = instance.InstanceLock(config)
    try:
        lock.acquire()
    except instance.AlreadyRunning as exc:
        print(f"edge run: refusing to start: {exc}; stop it first (systemctl stop station-edge)", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"edge run: cannot take the station lock: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        return _run(args, config)
    finally:
        lock.release()


def _run(args: argparse.Namespace, config: Config) -> int:
    logs.log_start(config, args.config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sim = None
    station = Station(config)
    try:
        if config.simulators is not None:
            from .simulation import Simulation  # only a config that names simulators loads them

            sim = Simulation(config).start()
            store = open_store(config)
            sim.seed_cache(store, utc_now())
            store.close()
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
    from .demo import run_demo

    keep = args.state_dir is not None
    state_dir = Path(args.state_dir) if keep else Path(tempfile.mkdtemp(prefix="edge-demo-"))
    try:
        summary = run_demo(state_dir.resolve(), args.json)
    finally:
        if not keep:
            shutil.rmtree(state_dir, ignore_errors=True)
    return 0 if summary["chain_ok"] else 1


def cmd_valves_off(args: argparse.Namespace) -> int:
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
    store = open_store(config)
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
    config = _load(args.config)
    store = open_store(config)
    try:
        now = utc_now()
        age = store.cache_age_s(now)
        data = {
            "station": config.station.owner_unit,
            "cylinders_cached": store.query("SELECT count(*) AS n FROM cylinders")[0]["n"],
            "cache_age_hours": None if age is None else round(age / 3600, 2),
            "fills": {r["status"]: r["n"] for r in store.query("SELECT status, count(*) AS n FROM fills GROUP BY status")},
            "outbox": {r["status"]: r["n"] for r in store.query("SELECT status, count(*) AS n FROM outbox GROUP BY status")},
            "lanes": {
                lane.id: _last_activity(store, lane.id) for lane in config.lanes
            },
            "inflight": {lane.id: _inflight(store, lane.id) for lane in config.lanes},
            "journal_entries": store.query("SELECT coalesce(max(seq), 0) AS n FROM journal")[0]["n"],
        }
    finally:
        store.close()
    human = "\n".join(
        [
            f"station          {data['station']}",
            f"cylinder cache   {data['cylinders_cached']} cylinders, {data['cache_age_hours']} h old",
            f"fills            {data['fills']}",
            f"upload outbox    {data['outbox']}",
            f"journal          {data['journal_entries']} entries",
        ]
        + [f"lane {lane:<11} last {info['kind'] or '-'} at {info['ts'] or '-'}" for lane, info in data["lanes"].items()]
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="Station edge controller for cylinder filling")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func, help_text: str, config: bool = True, json_flag: bool = True) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        if config:
            p.add_argument("--config", default=DEFAULT_CONFIG, help=f"station YAML (default {DEFAULT_CONFIG}, or $EDGE_CONFIG)")
        if json_flag:
            p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    command("run", cmd_run, "run the daemon until SIGTERM/SIGINT", json_flag=False)
    demo = command("demo", cmd_demo, "run a whole simulated station with scripted operators", config=False)
    demo.add_argument("--state-dir", help="keep the database and effective config (station.yaml) here")
    check = command("check-config", cmd_check_config, "validate a config file", config=False, json_flag=False)
    check.add_argument("file")
    command("status", cmd_status, "cache, fills, outbox and lane activity")
    command("verify", cmd_verify, "check the journal's hash chain, and every fill, outbox, staff and shift row against it")
    command("valves-off", cmd_valves_off, "drive every configured valve relay off and exit")

    def common(p: argparse.ArgumentParser) -> None:
        p.set_defaults(func=lambda args: args.handler(args, _load, emit))
        p.add_argument("--config", default=DEFAULT_CONFIG, help=f"station YAML (default {DEFAULT_CONFIG}, or $EDGE_CONFIG)")
        p.add_argument("--json", action="store_true", help="machine-readable output")

    cli_city.add_commands(sub, common)
    cli_manager.add_commands(sub, common)
    cli_fleet.add_commands(sub, common)
    cli_webapp.add_commands(sub, common)
    cli_lane.add_commands(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.verbose)
    if args.command == "demo" and not args.verbose:
        # The demo prints its own progress; daemon INFO lines would drown it.
        logging.getLogger().setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except StoreUnavailable as exc:
        print(f"edge {args.command}: {exc}", file=sys.stderr)
        return EXIT_STORE


if __name__ == "__main__":
    raise SystemExit(main())
