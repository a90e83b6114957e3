"""`edge restore`: put a chosen backup in the store's place, on a fresh machine or over a dead card.

The backup is fetched (a file, or a name found on the configured targets), unpacked beside the
store, checked with the full replay, and only then renamed into place. A store already there is
not overwritten without --force, and even then it is moved aside, not deleted; while a daemon
holds the store's lock nothing is done at all, and the lock is held here so none starts meanwhile.

The restored journal gets one entry, "store_restored", naming the backup and the head it ended at:
the daemon then continues the chain from there. What the station recorded after the backup is not
in it; the records of those fills that reached the city are at the city. The outbox rows that were
pending in the backup are sent again under their idempotency keys, and the city's answer (accepted,
or already held under that key) settles each: none is sent twice as a new record.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..daemon.instance import held_by, store_lock_path
from ..store.durable import fsync_dir
from . import names, snapshot
from .snapshot import BackupError
from .targets import Target, open_targets

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

STORE_FILES = ("", "-wal", "-shm")  # the database and SQLite's files beside it


@dataclass(frozen=True)
class Restored:
    backup: str
    source: str
    store: str
    entries: int
    fills: int
    moved_aside: str | None
    pending_uploads: int

    def as_data(self) -> dict[str, Any]:
        return self.__dict__.copy()


def listing(config: Config) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """This station's backups on each reachable target (newest first), and the targets not reached."""
    if config.backup is None:
        raise BackupError("this station's config has no backup: section")
    station = names.station_slug(config.station.unit_code)
    targets, failed = open_targets(config)
    found = []
    for target in targets:
        try:
            for name in target.names():
                moment = names.parse(name, station)
                if moment is not None:
                    found.append({"name": name, "at": moment.isoformat(), "target": target.label})
        finally:
            target.close()
    return sorted(found, key=lambda row: (row["at"], row["target"]), reverse=True), dict(failed)


def restore(config: Config, chosen: str, force: bool = False) -> Restored:
    store_path = config.store.path
    _check_choice(chosen)
    holder = held_by(store_lock_path(config))
    if holder is not None:
        raise BackupError(f"a station-edge daemon ({holder}) holds {store_path}: stop it first (systemctl stop station-edge)")
    store_path.parent.mkdir(parents=True, exist_ok=True)
    lock = _hold_store_lock(config)
    try:
        present = [Path(f"{store_path}{suffix}") for suffix in STORE_FILES if Path(f"{store_path}{suffix}").exists()]
        if present and not force:
            raise BackupError(f"{store_path} already holds a store: restoring would replace it; give --force to move it"
                              " aside and restore anyway")
        with tempfile.TemporaryDirectory(prefix=".restore-", dir=store_path.parent) as work:
            packed, source = _fetch(config, chosen, Path(work))
            unpacked = Path(work) / "restored.db"
            snapshot.decompress(packed, unpacked)
            try:
                checked = snapshot.check(unpacked)
            except BackupError as exc:
                raise BackupError(f"{packed.name} refused: {exc}") from None
            pending = _mark_restored(config, unpacked, packed.name, checked)
            aside = _move_aside(store_path, present) if present else None
            for suffix in STORE_FILES[1:]:
                with suppress(FileNotFoundError):
                    Path(f"{unpacked}{suffix}").unlink()
            _own_like_directory(unpacked, store_path.parent)
            os.replace(unpacked, store_path)
            fsync_dir(store_path.parent)
    finally:
        os.close(lock)
    log.info("restored %s from %s into %s (journal entry %d)", packed.name, source, store_path, checked.entries)
    return Restored(packed.name, source, str(store_path), checked.entries, checked.fills, aside, pending)


def _fetch(config: Config, chosen: str, work: Path) -> tuple[Path, str]:
    """The backup as a local file: `chosen` itself when it is a file, else the name looked up on
    the configured targets (the first that has it)."""
    path = Path(chosen)
    if path.is_file():
        return path, str(path)
    if config.backup is None:
        raise BackupError(f"{chosen}: no such file here, and the config has no backup: section to look for it in")
    targets, failed = open_targets(config)
    try:
        for target in targets:
            if chosen in target.names():
                dest = work / chosen
                _get(target, chosen, dest)
                return dest, f"{target.label}"
    finally:
        for target in targets:
            target.close()
    unreached = "".join(f"; {label} not reached: {error}" for label, error in failed)
    raise BackupError(f"{chosen}: not on any configured target{unreached}")


def _check_choice(chosen: str) -> None:
    """A file here, or a backup's bare name (never a path on a target: names are matched, not joined)."""
    path = Path(chosen)
    if not path.is_file() and (names.parse(path.name) is None or path.name != chosen):
        raise BackupError(f"{chosen}: no such file, and not a backup's name (edge backup --list shows them)")


def _get(target: Target, name: str, dest: Path) -> None:
    try:
        target.get(name, dest)
    except OSError as exc:
        raise BackupError(f"{target.label}: fetching {name} failed: {exc.strerror or exc}") from None


def _mark_restored(config: Config, path: Path, backup: str, checked: snapshot.Checked) -> int:
    """Journal the restore in the restored store (the chain goes on from the backup's head); returns
    the upload rows still pending, which the daemon sends again under their keys."""
    from ..store.opening import open_store
    from ..store.outbox import Outbox

    store = open_store(config.model_copy(update={"store": config.store.model_copy(update={"path": path})}))
    try:
        store.journal(datetime.now(UTC), "store_restored", {"backup": backup, "head": {"entry": checked.entries, "hash": checked.head}})
        return Outbox(store).pending_count()
    finally:
        store.close()


def _move_aside(store_path: Path, present: list[Path]) -> str:
    stamp = datetime.now(UTC).strftime(names.STAMP)
    for path in present:
        path.rename(path.with_name(path.name.replace(store_path.name, f"{store_path.name}.replaced-{stamp}", 1)))
    aside = f"{store_path}.replaced-{stamp}"
    log.warning("the store that was at %s is kept as %s", store_path, aside)
    return aside


def _hold_store_lock(config: Config) -> int:
    """The daemon's store lock, held while restoring: a daemon started meanwhile is refused."""
    path = store_lock_path(config)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BackupError(f"a station-edge daemon holds {config.store.path}: stop it first") from None
    return fd


def _own_like_directory(path: Path, directory: Path) -> None:
    """Run as root, the restored store gets its directory's owner (the service user's state
    directory): a store owned by root is one the daemon cannot write."""
    if os.geteuid() != 0:
        return
    info = directory.stat()
    os.chown(path, info.st_uid, info.st_gid)
