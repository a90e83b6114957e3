"""The station's own commands: run, demo, check-config, status, verify and valves-off."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..output import EXIT_INVALID, CommandError, emit, local_time
from ..store import StoreUnavailable
from .common import DEFAULT_CONFIG, EXIT_STORE, load, open_to_verify, read_witness, readable_config, utc_now

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

# build_parser's command(name, func, help): adds a subcommand and returns its parser.
Command = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def add_commands(command: Command) -> None:
    command("run", cmd_run, "run the daemon until SIGTERM/SIGINT")
    demo = command("demo", cmd_demo, "run a whole simulated station with scripted operators")
    demo.add_argument("--state-dir", help="keep the database and effective config (station.yaml) here")
    demo.add_argument("--serve", action="store_true",
                      help="keep the simulated station running, with its status page and a simulation console for training")
    demo.add_argument("--console-port", type=int, default=8091, help="the simulation console's port on localhost (default 8091)")
    demo.add_argument("--status-port", type=int,
                      help="with --serve: the status page's port (default: a free one, printed at start)")
    check = command("check-config", cmd_check_config, "validate a config file and what it refers to")
    check.add_argument("file", nargs="?", help="the YAML to check (default: --config)")
    check.add_argument("--strict", action="store_true", help="also load each configured driver (GPIO backend, scanner libraries)")
    command("status", cmd_status, "cache, fills, outbox and lane activity")
    verify = command("verify", cmd_verify, "check the journal's hash chain, and every fill, outbox, staff and shift row against it")
    verify.add_argument("--full", action="store_true",
                        help="replay the whole journal from its first entry instead of from the last checkpoint")
    verify.add_argument("--witness", metavar="FILE",
                        help="chain heads witnessed outside the station (a daily report's JSON or printed head lines):"
                             " each must be in the local chain")
    verify.add_argument("--archive", metavar="FILE", help="verify a monthly archive file (edge archive) instead of the live store")
    command("valves-off", cmd_valves_off, "drive every configured valve relay off and exit")


def cmd_check_config(args: argparse.Namespace) -> int:
    from ..config.files import warnings
    from ..config.preflight import preflight
    from ..store.access import daemon_write_problem

    path = args.file or args.config
    config = load(path)
    problems = preflight(config, strict=args.strict)
    store_problem = daemon_write_problem(Path(config.store.path))  # a store root made, say
    if store_problem is not None:
        problems.append(f"store.path {store_problem}")
    warned = warnings(config)
    lanes = ", ".join(lane.id for lane in config.lanes)
    data = {"ok": not problems, "file": path, "lanes": [lane.id for lane in config.lanes], "problems": problems,
            "warnings": warned, "strict": args.strict}
    human = (f"{path}: OK ({len(config.lanes)} lanes: {lanes})" + ("" if args.strict else "; drivers not loaded (--strict loads them)")
             if not problems else "\n".join([f"{path}: {len(problems)} problem(s) the daemon would refuse:"] + [f"  {p}" for p in problems]))
    if not args.json:
        for warning in warned:
            print(f"warning: {warning}", file=sys.stderr)
    if problems and not args.json:
        print(human, file=sys.stderr)
        return EXIT_INVALID
    emit(data, args.json, human)
    return 0 if not problems else EXIT_INVALID


def cmd_run(args: argparse.Namespace) -> int:
    from ..daemon import instance

    config = load(args.config)
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

    from ..config.preflight import missing_ports

    logs.set_timezone(config.tz)
    logs.log_start(config, args.config)
    for problem in missing_ports(config):
        # Named as check-config --strict names it, not left to a driver's "no such file".
        log.error("%s: check the cable and the port in the config (edge check-config --strict)", problem)
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

    # --config is the station's own config unless given: the demo then runs the bundled one.
    source = Path(args.config).resolve() if args.config != DEFAULT_CONFIG else None
    if source is not None and not args.serve:
        raise CommandError("edge demo: --config is for a training station (edge demo --serve --config X); the scripted"
                           " demo runs the bundled simulated station", EXIT_INVALID)
    if args.status_port is not None and not (args.serve and 0 <= args.status_port <= 65535):
        raise CommandError("edge demo: --status-port is a port number (0-65535) for --serve", EXIT_INVALID)
    keep = args.state_dir is not None
    state_dir = Path(args.state_dir) if keep else Path(tempfile.mkdtemp(prefix="edge-demo-"))
    if args.serve:
        from ..demo.training.serve import TrainingConfigError, serve

        try:
            return serve(state_dir.resolve(), args.console_port, source=source, status_port=args.status_port)
        except TrainingConfigError as exc:
            raise CommandError(f"edge demo --serve: refusing --config: {exc}", EXIT_INVALID) from None
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

    config = load(args.config)
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
    if args.archive:
        from .archive import cmd_verify_archive

        return cmd_verify_archive(args, emit)
    config = load(args.config)
    witness = read_witness(args.witness)
    store = open_to_verify(config)
    try:
        audit = store.audit(full=args.full, witness=witness)
        # integrity_check reads every page: only the full replay pays for it.
        integrity = store.query("PRAGMA integrity_check")[0]["integrity_check"] if args.full else None
    finally:
        store.close()
    report, records = audit.chain, audit.records
    first = None if records is None else records.first
    data = {"ok": audit.ok and integrity in ("ok", None), "full": audit.full, "entries": report.entries,
            "from_checkpoint": audit.since or None, "head": {"entry": report.head_seq, "hash": report.head_hash} if report.ok else None,
            "witnessed_heads": audit.witnessed, "witness_differs": audit.unwitnessed,
            "archive_base": audit.base or None, "witnessed_heads_archived": audit.archived_heads,
            "older_rows_rechecked": audit.rechecked_rows, "older_rows": audit.older_rows, "changed_since_verified": audit.changed,
            "first_bad_entry": report.first_bad_seq, "problem": report.problem, "integrity_check": integrity,
            "records_checked": None if records is None else records.checked,
            "first_difference": None if first is None else
            {"table": first.table, "key": first.key, "field": first.field, "stored": first.stored, "journal": first.journalled},
            "differences": None if records is None else [str(m) for m in records.mismatches],
            "checkpoint_unrecorded": audit.unrecorded}
    since = f" since the checkpoint at entry {audit.since}" if audit.since else " from the first entry"
    if audit.base and audit.since == audit.base:
        since = f" from the archive's head at entry {audit.base} (the entries before it are in the archive files)"
    lines = [
        f"journal OK: {report.entries} entries{since}, hash chain intact to entry {report.head_seq} ({report.head_hash[:16]})"
        + ("" if integrity is None else f"; integrity_check {integrity}")
        if report.ok
        else f"journal BROKEN at entry {report.first_bad_seq}: {report.problem}"
        + ("" if integrity is None else f"; integrity_check {integrity}")
    ]
    if audit.older_rows:
        lines.append(f"older rows: {audit.rechecked_rows} of {audit.older_rows} re-checked against their digests"
                     + ("" if not audit.changed else f"; CHANGED: {audit.changed[0]}"))
    if audit.witnessed:
        lines.append(f"witnessed heads: {audit.witnessed - len(audit.unwitnessed)} of {audit.witnessed} held by the local chain"
                     + "".join(f"\n  DIFFERS: {problem}" for problem in audit.unwitnessed))
    if audit.unrecorded:
        lines.append(f"checkpoint not recorded: {audit.unrecorded}")
    if audit.archived_heads:
        lines.append(f"witnessed heads before the archive's head: {audit.archived_heads}, checked by `edge verify --archive FILE --witness`")
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
    from ..store.delivered import counts_by_status as outbox_counts

    readable_config(args.config)
    try:
        config = glance(args.config)
    except ConfigError as exc:
        raise CommandError(str(exc), EXIT_INVALID) from None
    store = Store(config.store_path, readonly=True)
    try:
        age = store.cache_age_s(utc_now())
        data = {
            "station": config.owner_unit,
            "cylinders_cached": store.query("SELECT count(*) AS n FROM cylinders")[0]["n"],
            "cache_age_hours": None if age is None else round(age / 3600, 2),
            "fills": store.count_by_status("fills", "complete"),
            "outbox": outbox_counts(store),
            "lanes": {lane: _last_activity(store, lane) for lane in config.lanes},
            "inflight": {lane: _inflight(store, lane) for lane in config.lanes},
            "journal_entries": store.query("SELECT coalesce(max(seq), 0) AS n FROM journal")[0]["n"],
            "backup": _backup(config),
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
        + ([] if data["backup"] is None else [_backup_line(data["backup"], config.tz)])
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


def _backup(config: Any) -> dict[str, Any] | None:
    from ..store.backup_state import assess, read

    return None if config.backup_max_age_h is None else assess(read(config.store_path), config.backup_max_age_h, utc_now())


def _backup_line(backup: dict[str, Any], tz: Any) -> str:
    last = local_time(backup["last_ok_at"], tz) or "never"
    if backup["ok"]:
        return f"backup           OK, last {last} ({backup['age_hours']} h old)"
    return f"backup           PROBLEM: {backup['problem']} (last good: {last})"


def _inflight(store: Any, lane: str) -> dict[str, dict[str, Any]]:
    """What the lane has learned of its in-flight mass, per cylinder model ("*": the lane's own)."""
    return {
        model: {"inflight_s": round(learned.inflight_s or 0.0, 4), "fills": learned.fills}
        for model, learned in sorted(store.inflight(lane).items())
    }


def _last_activity(store: Any, lane: str) -> dict[str, Any]:
    # The lane's newest entry: the (lane) index, whose entries are in journal order, answers at once.
    rows = store.query("SELECT ts, kind FROM journal WHERE lane = ? ORDER BY seq DESC LIMIT 1", [lane])
    return {"ts": rows[0]["ts"], "kind": rows[0]["kind"]} if rows else {"ts": None, "kind": None}
