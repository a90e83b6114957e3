"""`edge archive`: closed months out of the live store into monthly archive files; and the
`--archive FILE` of `edge verify` and `edge records`, which read such a file."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..output import EXIT_INVALID, CommandError
from .common import day_arg, open_existing, read_witness, utc_now

if TYPE_CHECKING:
    from ..config import Config
    from ..store.archive import Archive

Loader = Callable[[str], "Config"]
Emit = Callable[[Any, bool, str], None]


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    archive = sub.add_parser("archive", help="move whole months before a date out of the live store into archive files")
    archive.set_defaults(handler=cmd_archive)
    common(archive)
    when = archive.add_mutually_exclusive_group(required=True)
    when.add_argument("--before", type=day_arg, metavar="DATE",
                      help="archive the months before DATE's month (yyyy-mm-dd; the current month is never archived)")
    when.add_argument("--retention", action="store_true",
                      help="archive what store.retention_months no longer keeps (nothing when it is not set)")
    archive.add_argument("--dir", type=Path, help="where the archive files go (default store.archive_dir)")
    archive.add_argument("--vacuum", action="store_true",
                         help="then rewrite the store to return the freed space to the disk (the daemon must be stopped)")


def cmd_archive(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..store import archive

    config = load(args.config)
    now = utc_now()
    if args.retention:
        months = config.store.retention_months
        if months is None:
            emit({"archived": [], "retention_months": None}, args.json,
                 "store.retention_months is not set: the live store keeps every record; nothing archived")
            return 0
        today = now.astimezone(config.tz).date().replace(day=1)
        index = today.year * 12 + today.month - 1 - months
        before = date(index // 12, index % 12 + 1, 1)
    else:
        before = args.before
    if args.vacuum:
        _refuse_running(config)
    directory = args.dir or config.store.archive_path
    store = open_existing(config)
    try:
        size = _size(config.store.path)
        try:
            done = archive.make(store, before, config.tz, directory, config.station.unit_code, now)
        except archive.ArchiveRefused as exc:
            raise CommandError(f"edge archive: refused: {exc}", 1) from None
        returned = archive.reclaim(store)
    finally:
        store.close()
    if args.vacuum:
        archive.vacuum(config.store.path)
    done.update(store_bytes_before=size, store_bytes_after=_size(config.store.path), pages_returned=returned,
                vacuumed=args.vacuum, before=before.isoformat())
    emit(done, args.json, _text(done))
    return 0 if done.get("verified", True) else 1


def _refuse_running(config: Config) -> None:
    from ..daemon import instance

    running = instance.held_by(instance.store_lock_path(config))
    if running is not None:
        raise CommandError(f"edge archive --vacuum rewrites the whole store, holding it for the time: stop the daemon first"
                           f" ({running})", EXIT_INVALID)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _text(done: dict[str, Any]) -> str:
    if not done["archived"]:
        return f"nothing to archive before {done['before']} (the live store begins at entry {done['base']['entry']})"
    lines = [f"{Path(a['file']).name}: entries {a['first_entry']}-{a['last_entry']}, {a['fills']} fills, head {a['head'][:16]}"
             for a in done["archived"]]
    lines.append(f"the live chain now begins at entry {done['base']['entry']} ({done['base']['hash'][:16]}), the archive's head")
    deleted = done["deleted"]
    lines.append(f"deleted from the live store: {deleted['journal']} entries, {deleted['fills']} fills, {deleted['outbox']}"
                 " outbox rows")
    mb = lambda n: f"{n / 1e6:.1f} MB"  # noqa: E731
    lines.append(f"store {mb(done['store_bytes_before'])} before, {mb(done['store_bytes_after'])} after"
                 + ("" if done["vacuumed"] or done["pages_returned"] else
                    "; the freed pages are reused by new records (--vacuum, with the daemon stopped, returns them to the disk)"))
    lines.append("verify: OK from the archive's head" if done["verified"] else f"verify: FAILED: {done['problem']}")
    return "\n".join(lines)


def open_archive(path: str) -> Archive:
    from ..store import archive

    try:
        return archive.Archive(Path(path))
    except OSError as exc:
        raise CommandError(f"--archive {path}: {exc.strerror or exc}") from None
    except archive.ArchiveInvalid as exc:
        raise CommandError(str(exc)) from None


def cmd_verify_archive(args: argparse.Namespace, emit: Emit) -> int:
    """`edge verify --archive FILE`: the file on its own, and against the live store when the
    config names one (an inspector away from the station needs neither)."""
    from ..store import StoreError, StoreUnavailable
    from ..store import archive as archives
    from .common import load

    witness = read_witness(args.witness)
    opened = open_archive(args.archive)
    try:
        try:
            live = open_existing(load(args.config))
        except (CommandError, StoreError, StoreUnavailable):
            live = None  # an inspector's copy of the archive, away from the station
        try:
            report = archives.verify(opened, live, witness)
        finally:
            if live is not None:
                live.close()
    finally:
        opened.close()
    m = report.manifest
    data = {"ok": report.ok, "archive": args.archive, "month": m["month"], "station": m["station"],
            "first_entry": m["anchor"]["entry"] + 1, "last_entry": m["head"]["entry"], "head": m["head"],
            "anchor": m["anchor"], "counts": m["counts"], "problem": report.problem(), "problems": report.problems,
            "live_store": report.live, "witnessed_heads": report.witnessed}
    chain = report.chain
    lines = [f"archive {m['station']} {m['month']}: entries {m['anchor']['entry'] + 1}-{m['head']['entry']}, from"
             f" {m['anchor']['hash'][:16]} (entry {m['anchor']['entry']}) to {m['head']['hash'][:16]}"]
    lines.append(f"journal OK: {chain.entries} entries, hash chain intact" if chain.ok
                 else f"journal BROKEN at entry {chain.first_bad_seq}: {chain.problem}")
    if report.records is not None:
        lines.append(f"records OK: {m['counts']['fills']} fills, {m['counts']['outbox']} outbox rows as the entries imply"
                     if report.ok else f"records DIFFER: {report.problem()}")
    lines += [f"  {p}" for p in report.problems[1:]]
    if witness is not None:
        lines.append(f"witnessed heads within its entries: {report.witnessed} compared")
    if report.live is not None:
        lines.append(f"live store: {report.live}")
    emit(data, args.json, "\n".join(lines))
    return 0 if report.ok else 1


class Resolver:
    """For `edge records --archive FILE --cylinder CODE`: the live store's cylinder cache turns a
    scanned code into its record ID; away from the station (no live store) the text is the ID."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def _live(self, call: Callable[[Any], Any], empty: Any) -> Any:
        from ..store import StoreError, StoreUnavailable

        try:
            live = open_existing(self.config)
        except (StoreError, StoreUnavailable):
            return empty
        try:
            return call(live)
        finally:
            live.close()

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return self._live(lambda live: live.query(sql, params), [])  # type: ignore[no-any-return]

    def cylinder_record(self, identifier: Any) -> dict[str, Any] | None:
        return self._live(lambda live: live.cylinder_record(identifier), None)  # type: ignore[no-any-return]
