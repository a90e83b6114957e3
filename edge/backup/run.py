"""`edge backup`: copy, check, compress, deliver to every target, rotate, record the outcome.

A target that fails (an unplugged disk, an unreachable server) does not stop the others: the copy
goes wherever it can, the outcome names each failure, and the command fails so the timer's unit
fails too. The live store is only read; nothing of it is lost whatever happens here.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import backup_state as state
from . import names, snapshot
from .snapshot import BackupError
from .targets import open_targets

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    name: str
    at: str
    raw_bytes: int = 0
    compressed_bytes: int = 0
    entries: int = 0
    fills: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # copy, check, compress, deliver
    delivered: list[str] = field(default_factory=list)  # target labels
    failed: dict[str, str] = field(default_factory=dict)  # target label -> error
    deleted: dict[str, list[str]] = field(default_factory=dict)  # target label -> names the rotation removed
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed

    def error_text(self) -> str:
        return self.error or "; ".join(self.failed.values())

    def as_data(self) -> dict[str, Any]:
        return {"ok": self.ok, "name": self.name, "at": self.at, "raw_bytes": self.raw_bytes,
                "compressed_bytes": self.compressed_bytes, "entries": self.entries, "fills": self.fills,
                "seconds": self.seconds, "delivered": self.delivered, "failed": self.failed, "deleted": self.deleted,
                "error": self.error}


def station_of(config: Config) -> str:
    return names.station_slug(config.station.unit_code)


def backup(config: Config, now: datetime | None = None) -> Outcome:
    """One backup to every configured target; its outcome is also written beside the store."""
    if config.backup is None:
        raise BackupError("this station's config has no backup: section")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    outcome = Outcome(names.backup_name(station_of(config), moment), moment.isoformat(timespec="seconds"))
    store_path = config.store.path
    try:
        with _exclusive(store_path):
            _make(config, outcome)
    except BackupError as exc:
        outcome.error = str(exc)
    except OSError as exc:  # a full staging disk, a permission: said plainly, recorded like any failure
        outcome.error = f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}"
    _record(store_path, outcome)
    return outcome


def _make(config: Config, outcome: Outcome) -> None:
    assert config.backup is not None
    staging = config.backup.staging_dir or config.store.path.parent
    for leftover in staging.glob(".backup-*"):  # a run killed mid-way (power cut): only one runs at a time
        shutil.rmtree(leftover, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=staging) as work:
        copy, packed = Path(work) / "copy.db", Path(work) / outcome.name
        began = time.perf_counter()
        snapshot.copy_live(config.store.path, copy)
        outcome.seconds["copy"] = round(time.perf_counter() - began, 3)
        began = time.perf_counter()
        try:
            checked = snapshot.check(copy)
        except BackupError as exc:
            raise BackupError(f"the copy of {config.store.path} was not saved: {exc} (run edge verify --full)") from None
        outcome.seconds["check"] = round(time.perf_counter() - began, 3)
        outcome.entries, outcome.fills = checked.entries, checked.fills
        for leftover in Path(work).glob("copy.db-*"):  # the check's WAL files, empty once it closed
            leftover.unlink()
        outcome.raw_bytes = copy.stat().st_size
        began = time.perf_counter()
        snapshot.compress(copy, packed)
        outcome.seconds["compress"] = round(time.perf_counter() - began, 3)
        outcome.compressed_bytes = packed.stat().st_size
        began = time.perf_counter()
        _deliver(config, outcome, packed)
        outcome.seconds["deliver"] = round(time.perf_counter() - began, 3)


def _deliver(config: Config, outcome: Outcome, packed: Path) -> None:
    assert config.backup is not None
    targets, failed = open_targets(config)
    outcome.failed.update(failed)
    for target in targets:
        try:
            target.put(packed, outcome.name)
            outcome.delivered.append(target.label)
            # Rotation only after this backup is whole on the target: a failed copy deletes nothing.
            doomed = names.to_delete(target.names(), station_of(config), config.backup.keep_daily, config.backup.keep_monthly)
            for name in doomed:
                target.delete(name)
            if doomed:
                outcome.deleted[target.label] = doomed
                log.info("%s: rotation removed %s", target.label, ", ".join(doomed))
        except BackupError as exc:
            outcome.failed[target.label] = str(exc)
        except OSError as exc:
            outcome.failed[target.label] = f"{target.label}: {exc.strerror or exc}"
        finally:
            target.close()
    for error in outcome.failed.values():
        log.error("backup %s not delivered: %s", outcome.name, error)


def _record(store_path: Path, outcome: Outcome) -> None:
    previous = state.read(store_path) or {}
    data = {"last_ok_at": None, **previous, "last_attempt_at": outcome.at, "name": outcome.name, "error": None,
            "delivered": outcome.delivered, "failed": outcome.failed}
    if outcome.ok:
        data.update(last_ok_at=outcome.at, last_ok_name=outcome.name, raw_bytes=outcome.raw_bytes,
                    compressed_bytes=outcome.compressed_bytes)
    else:
        data["error"] = outcome.error_text()
    try:
        state.write(store_path, data)
    except OSError as exc:
        log.error("the backup's outcome could not be recorded beside the store: %s", exc)


class _exclusive:
    """One backup of a store at a time (the timer's and one started by hand)."""

    def __init__(self, store_path: Path) -> None:
        self.path = store_path.with_name(store_path.name + ".backup.lock")

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise BackupError("another backup of this store is running") from None

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
