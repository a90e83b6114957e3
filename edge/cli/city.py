"""`edge sync ...` and `edge cache ...`: the outbox and the cylinder cache, for station managers."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..output import EXIT_FAILED, CommandError, Progress, summary_lines
from .common import open_existing, utc_now

if TYPE_CHECKING:
    from ..config import Config
    from ..config.city import CityConfig

Loader = Callable[[str], "Config"]
Emit = Callable[[Any, bool, str], None]


def _city(config: Config) -> CityConfig:
    if config.city is None:
        raise CommandError("this station's config has no city: section")
    return config.city


def _open(config: Config, readonly: bool = False) -> Any:
    return open_existing(config, readonly)


def cmd_sync_status(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..output import local_time
    from ..store.outbox import Outbox

    config = load(args.config)
    store = _open(config, readonly=True)
    try:
        data = Outbox(store).status(utc_now())
    finally:
        store.close()
    last_error = data["last_error"]
    age = data["oldest_pending_age_s"]
    lines = [
        f"backlog          {data['pending']} pending" + (f", oldest {age / 3600:.1f} h old" if age is not None else ""),
        f"delivered        {data['sent']}",
        f"dead letters     {data['dead']}",
        f"last success     {local_time(data['last_success_at'], config.tz) or 'never'}",
        f"last error       {local_time(last_error['at'], config.tz) + '  ' + last_error['error'] if last_error else 'none'}",
    ]
    if data["malformed_since"]:
        lines.append(f"condition        the city's replies are not its envelope (captive portal or proxy page?)"
                     f" since {data['malformed_since']}; retrying")
    lines += [f"  dead #{d['id']:<6} {d['kind']:<8} fill {d['fill_id']}: {d['last_error']}" for d in data["dead_letters"]]
    emit(data, args.json, "\n".join(lines))
    return 0


def cmd_sync_retry(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..store.outbox import Outbox

    if (args.id is None) == (not args.all_dead):
        raise CommandError("give one outbox ID or --all-dead")
    config = load(args.config)
    store = _open(config)
    try:
        if args.id is not None:
            rows = store.query("SELECT status FROM outbox WHERE id = ?", [args.id])
            if not rows:
                raise CommandError(f"no outbox row {args.id} (see edge sync status)")
            if rows[0]["status"] != "dead":
                raise CommandError(f"outbox row {args.id} is {rows[0]['status']}, not a dead letter")
        count = Outbox(store).requeue(utc_now(), args.id)
    finally:
        store.close()
    emit({"requeued": count}, args.json, f"requeued {count} dead letter(s)")
    return 0 if count or args.all_dead else 1


def cmd_sync_push(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    import signal
    import threading

    from sync.uploader import Uploader

    from ..daemon.city import build_client, retry_policy
    from ..store.outbox import Outbox

    config = load(args.config)
    city = _city(config)
    store, client = _open(config), build_client(city, config.tz)
    outbox = Outbox(store)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    timer = threading.Timer(args.timeout, stop.set)
    timer.start()
    bar = Progress(outbox.pending_count())
    uploader = Uploader(client, outbox, retry_policy(city, paced=False))
    try:
        result = uploader.drain(stop, progress=lambda r: bar(r.sent + r.dead, f"dead {r.dead}"))
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
        bar.close()
        remaining = outbox.pending_count()
        client.close()
        store.close()
    data = {"sent": result.sent, "dead": result.dead, "pending": remaining, "last_error": uploader.last_error}
    human = f"sent {result.sent}, dead {result.dead}, still pending {remaining}" + (
        f" (stopped: {uploader.last_error})" if result.stopped and uploader.last_error else "")
    emit(data, args.json, human)
    return 0 if remaining == 0 else 1


def cmd_cache_refresh(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from sync.client import SyncError
    from sync.refresh import Refresher

    from ..daemon.city import build_client
    from ..store import Store

    config = load(args.config)
    city = _city(config)
    # Creates the store when there is none: a refresh is how a new station gets its cache.
    store, client = Store(config.store.path), build_client(city, config.tz)
    bar = Progress(None, "cylinders ")

    def progress(done: int, total: int | None) -> None:
        bar.total = total
        bar(done)

    try:
        result = Refresher(client, store, config.tz, city.refresh.page_size).refresh(full=args.full, progress=progress)
    except SyncError as exc:
        raise CommandError(f"cache refresh failed: {exc} (pages already applied are kept; the cache age is unchanged)",
                           EXIT_FAILED) from None
    finally:
        bar.close()
        client.close()
        store.close()
    human = (f"{result.mode} refresh: {result.cylinders} cylinders in {result.pages} pages, {result.seconds} s;"
             f" {result.removed} no longer in the registry" + (f" ({result.attempts} passes)" if result.attempts > 1 else ""))
    emit(result.__dict__, args.json, human)
    return 0


def cmd_cache_show(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..manager.identify import find_cylinder
    from ..output import local_time, table
    from ..store.schema import CITY_FIELDS, STATION_FIELDS

    labels = {**CITY_FIELDS, **STATION_FIELDS, "updated_at": "缓存时间", "blocked_reason": "本站禁充", "removed_at": "平台已注销"}
    config = load(args.config)
    store = _open(config, readonly=True)
    try:
        try:
            cylinder, read_as = find_cylinder(store, config, args.code, args.rfid)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        age = store.cache_age_s(utc_now())
    finally:
        store.close()
    if cylinder is None:
        emit({"found": False, "identifier": read_as}, args.json, f"{read_as}: not in the cache")
        return 1
    human = table([{"label": labels.get(k, ""), "field": k, "value": local_time(v, config.tz)} for k, v in cylinder.items()],
                  ["label", "field", "value"], headers={"label": "", "field": "", "value": ""}).split("\n", 1)[1]
    human += f"\n(cache {'never refreshed' if age is None else f'{age / 3600:.1f} h old'})"
    emit({"found": True, "cylinder": cylinder, "cache_age_s": age}, args.json, human)
    return 0


def _readable(path: Path) -> None:
    """A file the import cannot open is named with the reason: run as the service user (README),
    a file in root's home is "Permission denied", not "no such file"."""
    import errno

    from ..store.access import me

    try:
        with path.open("rb"):
            pass
    except IsADirectoryError:
        raise CommandError(f"{path}: a directory, not a file") from None
    except OSError as exc:
        hint = (f"; {me()} may not read it: copy it where {me()} can (install -m 0644 {path} /tmp/)"
                if exc.errno == errno.EACCES else "")
        raise CommandError(f"{path}: {exc.strerror}{hint}") from None


def cmd_cache_import(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    import sys

    from ..manager.cache_import import import_file
    from ..store.opening import open_store

    config = load(args.config)
    path = Path(args.file)
    _readable(path)
    store = open_store(config)  # an import may be how a new station first fills its cache
    bar = Progress(None, "rows ")
    try:
        report = import_file(store, path, utc_now(), progress=bar)
    except ValueError as exc:
        raise CommandError(f"{args.file}: {exc}") from None
    finally:
        bar.close()
        store.close()
    problems = report.problems.groups()
    for line in summary_lines(problems, str(path)):
        print(line, file=sys.stderr)
    emit({"loaded": report.loaded, "skipped": report.skipped, "problems": problems}, args.json,
         f"loaded {report.loaded} cylinders, skipped {report.skipped} malformed rows")
    return 0 if not report.skipped else 1


def cmd_cache_template(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    """The import's header row as a CSV (with a BOM, so Excel and WPS read the Chinese labels):
    fill in one cylinder a row and import it with `edge cache import`."""
    import csv
    import io
    import sys

    from ..manager.cache_import import COLUMN_FORMATS, REQUIRED, template_columns
    from ..store.schema import CITY_FIELDS, STATION_FIELDS

    labels = {**CITY_FIELDS, **STATION_FIELDS}
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerow(template_columns(args.english))
    header = "\ufeff" + text.getvalue()
    required = ", ".join(f"{name} ({labels[name]})" for name in REQUIRED)
    formats = "; ".join(f"{name} ({labels[name]}): {how}" for name, how in COLUMN_FORMATS.items())
    said = f"required: {required}; the other columns may stay empty or be left out. {formats}"
    if args.output is None:
        sys.stdout.write(header)
        print(said, file=sys.stderr)
        return 0
    out = Path(args.output)
    if out.exists():
        raise CommandError(f"{out}: exists; the template never overwrites a file")
    if not out.parent.is_dir():
        raise CommandError(f"{out}: directory {out.parent} does not exist")
    out.write_text(header, encoding="utf-8", newline="")
    emit({"file": str(out), "columns": template_columns(args.english), "required": list(REQUIRED), "formats": COLUMN_FORMATS},
         args.json, f"{out}: the import's columns. {said}")
    return 0


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `sync` and `cache` with their subcommands; `common` adds --config and --json."""
    groups = {
        "sync": ("the upload outbox to the city system", [
            ("status", cmd_sync_status, "backlog, oldest pending, dead letters, last success and error"),
            ("retry", cmd_sync_retry, "put a dead letter (or all) back in line"),
            ("push", cmd_sync_push, "drain the outbox now, with a progress bar"),
        ]),
        "cache": ("the cylinder cache", [
            ("refresh", cmd_cache_refresh, "pull changed cylinders from the city (or all, with --full)"),
            ("show", cmd_cache_show, "the cached record behind a scanned code"),
            ("import", cmd_cache_import, "load cylinders from the station ledger (.xlsx), CSV or JSON in the city-spec layout"),
            ("template", cmd_cache_template, "a CSV with the import's columns, to fill in and import"),
        ]),
    }
    parsers: dict[str, argparse.ArgumentParser] = {}
    for group, (help_text, commands) in groups.items():
        group_sub = sub.add_parser(group, help=help_text).add_subparsers(dest=f"{group}_command", required=True)
        for name, func, command_help in commands:
            parser = group_sub.add_parser(name, help=command_help)
            parser.set_defaults(handler=func)
            common(parser)
            parsers[f"{group} {name}"] = parser
    parsers["sync retry"].add_argument("id", nargs="?", type=int, help="outbox row id (see edge sync status)")
    parsers["sync retry"].add_argument("--all-dead", action="store_true")
    parsers["sync push"].add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    parsers["cache refresh"].add_argument("--full", action="store_true", help="pull every cylinder, not only changes")
    parsers["cache show"].add_argument("code", help="what the scanner reads: URL, info code, traceable no., product no.")
    parsers["cache show"].add_argument("--rfid", action="store_true", help="the code is an RFID UID/EPC")
    parsers["cache import"].add_argument("file")
    parsers["cache template"].add_argument("-o", "--output", metavar="FILE.csv", help="write it here (default: standard output)")
    parsers["cache template"].add_argument("--english", action="store_true", help="English column names instead of the Chinese labels")
