"""`edge backup` and `edge restore`: the store off the box, and back (edge.backup does the work)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..output import EXIT_FAILED, CommandError, local_time

if TYPE_CHECKING:
    from ..config import Config

Loader = Callable[[str], "Config"]
Emit = Callable[[Any, bool, str], None]


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def cmd_backup(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..backup.snapshot import BackupError

    config = load(args.config)
    if config.backup is None:
        raise CommandError("this station's config has no backup: section (see the README, Backup and restore)")
    try:
        if args.list:
            return _list(args, config, emit)
        from ..backup.run import backup

        outcome = backup(config)
    except BackupError as exc:
        raise CommandError(str(exc), EXIT_FAILED) from None
    data = outcome.as_data()
    if outcome.error:
        lines = [f"backup FAILED: {outcome.error}", "the store itself is untouched"]
    else:
        lines = [f"backup {outcome.name}: {outcome.fills} fills, journal up to entry {outcome.entries}, verified;"
                 f" {_mb(outcome.raw_bytes)} -> {_mb(outcome.compressed_bytes)} gzipped"]
        lines += [f"  delivered to {label}" + (f" (rotation removed {len(outcome.deleted[label])})" if label in outcome.deleted else "")
                  for label in outcome.delivered]
        lines += [f"  NOT delivered: {error}" for error in outcome.failed.values()]
    emit(data, args.json, "\n".join(lines))
    return 0 if outcome.ok else EXIT_FAILED


def _list(args: argparse.Namespace, config: Config, emit: Emit) -> int:
    from ..backup.restore import listing

    found, failed = listing(config)
    lines = [f"{row['name']}  {local_time(row['at'], config.tz)}  {row['target']}" for row in found] or ["no backups found"]
    lines += [f"not reached: {error}" for error in failed.values()]
    emit({"backups": found, "unreached": failed}, args.json, "\n".join(lines))
    return EXIT_FAILED if failed else 0


def cmd_restore(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..backup.restore import restore
    from ..backup.snapshot import BackupError

    config = load(args.config)
    try:
        done = restore(config, args.backup, force=args.force)
    except BackupError as exc:
        raise CommandError(f"restore refused: {exc}", EXIT_FAILED) from None
    lines = [f"restored {done.backup} (from {done.source}) into {done.store}: {done.fills} fills, journal verified up to"
             f" entry {done.entries}"]
    if done.moved_aside:
        lines.append(f"the store that was there is kept as {done.moved_aside}")
    lines.append(f"{done.pending_uploads} upload(s) pending in the backup will be sent again under their keys; the city"
                 " answers those it already holds as duplicates")
    lines.append("start the daemon (systemctl start station-edge), then run edge verify")
    emit(done.as_data(), args.json, "\n".join(lines))
    return 0


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("backup", help="copy the live store, verify the copy, compress it to the backup targets, rotate")
    p.set_defaults(handler=cmd_backup)
    common(p)
    p.add_argument("--list", action="store_true", help="list this station's backups on the targets instead")
    p = sub.add_parser("restore", help="put a backup in the store's place (the daemon stopped)")
    p.set_defaults(handler=cmd_restore)
    common(p)
    p.add_argument("backup", help="a backup file, or a backup's name on a configured target (edge backup --list)")
    p.add_argument("--force", action="store_true", help="replace a store that is there (it is moved aside, not deleted)")
