"""`edge sync ...` and `edge cache ...`: the outbox and the cylinder cache, for station managers."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interlock import codes
from interlock.codes import Source
from sync.client import SyncError
from sync.refresh import Refresher
from sync.uploader import Uploader

from .cache_import import import_file
from .city import build_client, retry_policy
from .config import Config
from .config.city import CityConfig
from .lane import utc_now
from .station import open_store
from .store import Store
from .store.outbox import Outbox
from .store.schema import CITY_FIELDS, STATION_FIELDS

EXIT_INVALID = 2
LABELS = {**CITY_FIELDS, **STATION_FIELDS, "updated_at": "缓存时间", "blocked_reason": "本站禁充", "removed_at": "平台已注销"}

Loader = Callable[[str], Config]
Emit = Callable[[Any, bool, str], None]


def _city(config: Config) -> CityConfig:
    if config.city is None:
        print("this station's config has no city: section", file=sys.stderr)
        raise SystemExit(EXIT_INVALID)
    return config.city


class ProgressBar:
    """One line on stderr, redrawn in place: [#####.....] done/total, rate."""

    def __init__(self, total: int, width: int = 30) -> None:
        self.total, self.width, self.started = max(total, 1), width, time.monotonic()

    def __call__(self, done: int, note: str = "") -> None:
        filled = min(self.width, self.width * done // self.total)
        rate = done / max(time.monotonic() - self.started, 1e-6)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {rate:7.1f}/s {note}")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def cmd_sync_status(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    config = load(args.config)
    store = open_store(config)
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
        f"last success     {data['last_success_at'] or 'never'}",
        f"last error       {last_error['at'] + '  ' + last_error['error'] if last_error else 'none'}",
    ]
    if data["malformed_since"]:
        lines.append(f"condition        the city's replies are not its envelope (captive portal or proxy page?)"
                     f" since {data['malformed_since']}; retrying")
    lines += [f"  dead #{d['id']:<6} {d['kind']:<8} fill {d['fill_id']}: {d['last_error']}" for d in data["dead_letters"]]
    emit(data, args.json, "\n".join(lines))
    return 0


def cmd_sync_retry(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    if (args.id is None) == (not args.all_dead):
        print("give one outbox ID or --all-dead", file=sys.stderr)
        return EXIT_INVALID
    config = load(args.config)
    store = open_store(config)
    try:
        count = Outbox(store).requeue(utc_now(), args.id)
    finally:
        store.close()
    emit({"requeued": count}, args.json, f"requeued {count} dead letter(s)")
    return 0 if count or args.all_dead else 1


def cmd_sync_push(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    config = load(args.config)
    city = _city(config)
    store, client = open_store(config), build_client(city, config.tz)
    outbox = Outbox(store)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    timer = threading.Timer(args.timeout, stop.set)
    timer.start()
    bar = ProgressBar(outbox.pending_count())
    uploader = Uploader(client, outbox, retry_policy(city, paced=False))
    try:
        result = uploader.drain(stop, progress=None if args.json else lambda r: bar(r.sent + r.dead, f"dead {r.dead}"))
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
        if not args.json:
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
    config = load(args.config)
    city = _city(config)
    store, client = Store(config.store.path), build_client(city, config.tz)
    bar = ProgressBar(1)

    def progress(done: int, total: int | None) -> None:
        bar.total = max(total or done, 1)
        bar(done)

    try:
        result = Refresher(client, store, config.tz, city.refresh.page_size).refresh(
            full=args.full, progress=None if args.json else progress)
    except SyncError as exc:
        print(f"\ncache refresh failed: {exc} (pages already applied are kept; the cache age is unchanged)", file=sys.stderr)
        return 1
    finally:
        client.close()
        store.close()
    if not args.json:
        bar.close()
    human = (f"{result.mode} refresh: {result.cylinders} cylinders in {result.pages} pages, {result.seconds} s;"
             f" {result.removed} no longer in the registry" + (f" ({result.attempts} passes)" if result.attempts > 1 else ""))
    emit(result.__dict__, args.json, human)
    return 0


def cmd_cache_show(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    config = load(args.config)
    patterns = [codes.UrlPattern(re.compile(p.regex), p.kind) for p in config.codes.url_patterns]
    parsed = codes.parse(args.code.encode("utf-8"), Source.RFID if args.rfid else Source.OPTICAL, patterns)
    if isinstance(parsed, codes.Invalid):
        print(f"{args.code!r} is not a code the station can read: {parsed.detail}", file=sys.stderr)
        return EXIT_INVALID
    store = open_store(config)
    try:
        cylinder = store.cylinder_record(parsed)
        age = store.cache_age_s(utc_now())
    finally:
        store.close()
    if cylinder is None:
        emit({"found": False, "identifier": parsed.value}, args.json, f"{parsed.kind.value} {parsed.value}: not in the cache")
        return 1
    human = "\n".join(f"{LABELS.get(k, ''):<14} {k:<24} {'' if v is None else v}" for k, v in cylinder.items())
    human += f"\n(cache {'never refreshed' if age is None else f'{age / 3600:.1f} h old'})"
    emit({"found": True, "cylinder": cylinder, "cache_age_s": age}, args.json, human)
    return 0


def cmd_cache_import(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    config = load(args.config)
    store = open_store(config)
    try:
        report = import_file(store, Path(args.file), utc_now())
    except (OSError, ValueError) as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        store.close()
    for error in report.errors:
        print(error, file=sys.stderr)
    emit({"loaded": report.loaded, "skipped": len(report.errors), "errors": report.errors}, args.json,
         f"loaded {report.loaded} cylinders, skipped {len(report.errors)} malformed rows")
    return 0 if not report.errors else 1


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
