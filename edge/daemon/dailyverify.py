"""The daemon verifies its own journal once a day, so the day's chain head goes upstream by itself.

A verify that succeeds journals a checkpoint, and a checkpoint's head is written to the fleet
outbox with it (edge.store.fleet.journal_sink): the company then holds each day's head, which the
station cannot rewrite (`edge verify --witness`). Without this the head left the station only when
a manager happened to run `edge verify` or a report.

The verify runs in a child process at a low priority: it reads the store through a connection of
its own (the lanes' writes do not wait on it, WAL lets both proceed) and its hashing does not take
the lanes' interpreter lock. It is due when no checkpoint was journalled since the last
`store.verify_at` (station local time), so a daemon that was off at that moment catches up when
it starts, and a manager's own verify that day counts.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from ..lanes.lane import Clock
from ..store import Store
from ..store.audit import CHECKPOINT
from ..store.database import iso

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

POLL_S = 60.0
# The first look comes a while after start-up: a daemon restarting in the middle of the day's work
# serves its lanes first.
FIRST_LOOK_S = 120.0
TIMEOUT_S = 3600.0  # a verify of years on a slow card takes minutes; one that hangs for an hour is killed


def last_due(now: datetime, at: time, tz: tzinfo) -> datetime:
    """The latest moment at or before `now` when the day's verify fell due (`at`, local time)."""
    local = now.astimezone(tz)
    due = datetime.combine(local.date(), at, tzinfo=tz)
    if due > local:
        due = datetime.combine(local.date() - timedelta(days=1), at, tzinfo=tz)
    return due


def is_due(last_checkpoint: datetime | None, now: datetime, at: time, tz: tzinfo) -> bool:
    return last_checkpoint is None or last_checkpoint < last_due(now, at, tz)


def last_checkpoint_at(store: Store) -> datetime | None:
    rows = store.query("SELECT ts FROM journal WHERE kind = ? AND fill_id IS NULL ORDER BY seq DESC LIMIT 1", [CHECKPOINT])
    return datetime.fromisoformat(rows[0]["ts"]) if rows else None


def _verify_in_child(config: Config, answer: Any) -> None:
    """In the child process: one incremental verify of the live store, journalling its checkpoint."""
    from ..store.opening import open_store

    try:
        os.nice(10)
    except OSError:  # not allowed to lower our priority: verify at the same one
        pass
    try:
        store = open_store(config, existing=True)
        try:
            audit = store.audit()
        finally:
            store.close()
        answer.send({"ok": audit.ok, "problem": audit.problem(), "entry": audit.chain.head_seq,
                     "checkpoint": audit.checkpoint is not None})
    except Exception as exc:  # the parent reports it; a traceback in a child's stderr helps nobody
        answer.send({"ok": None, "problem": f"{type(exc).__name__}: {exc}", "entry": None, "checkpoint": False})
    finally:
        answer.close()


@dataclass
class DailyVerify:
    config: Config
    store: Store  # the daemon's own, read for the last checkpoint's time only
    clock: Clock
    # Read when built (not when this module was): a test shortens them for a station it starts.
    poll_s: float = field(default_factory=lambda: POLL_S)
    first_look_s: float = field(default_factory=lambda: FIRST_LOOK_S)
    timeout_s: float = TIMEOUT_S

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="daily-verify", daemon=True)
        self._lock = threading.Lock()
        self._last: dict[str, Any] | None = None
        self._child: multiprocessing.process.BaseProcess | None = None
        self._attempted_at: datetime | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        child = self._child
        if child is not None and child.is_alive():
            child.terminate()  # its read transaction ends with it; a checkpoint is all or nothing
        self._thread.join(timeout=10)

    def _run(self) -> None:
        self._stop.wait(self.first_look_s)
        while not self._stop.is_set():
            try:
                if self.due():
                    self.run_once()
            except Exception:  # the schedule must outlive a bug in one round
                log.exception("daily journal verify failed to run")
            self._stop.wait(self.poll_s)

    def due(self) -> bool:
        """Due when neither a checkpoint nor a run of ours came since the day's due moment: a run
        that failed, or proved the journal without a checkpoint (an archive still deleting its rows),
        waits for the next day's moment instead of starting again every minute."""
        at = time.fromisoformat(self.config.store.verify_at)
        known = [t for t in (last_checkpoint_at(self.store), self._attempted_at) if t is not None]
        return is_due(max(known) if known else None, self.clock(), at, self.config.tz)

    def run_once(self) -> dict[str, Any]:
        """Verify in a child process and keep what it found, for the status page and metrics."""
        started = self._attempted_at = self.clock()
        receive, send = multiprocessing.get_context("spawn").Pipe(duplex=False)
        child = multiprocessing.get_context("spawn").Process(
            target=_verify_in_child, args=(self.config, send), name="edge-daily-verify", daemon=True)
        self._child = child
        child.start()
        send.close()
        result: dict[str, Any]
        if receive.poll(self.timeout_s):
            try:
                result = receive.recv()
            except EOFError:
                result = {"ok": None, "problem": f"the verify process ended without an answer (exit {child.exitcode})"}
        else:
            child.terminate()
            result = {"ok": None, "problem": f"the verify took longer than {self.timeout_s:.0f} s and was stopped"}
        child.join(timeout=10)
        receive.close()
        self._child = None
        if self._stop.is_set():  # the daemon is stopping and ended the run: nothing was found
            return result
        result = {**result, "at": iso(started), "seconds": round((self.clock() - started).total_seconds(), 1)}
        if result["ok"]:
            log.info("journal verified up to entry %s in %.1f s; its head goes to the company's fleet where one is configured",
                     result["entry"], result["seconds"])
        elif result["ok"] is False:
            log.error("journal verify FAILED: %s (run `edge verify --full` and keep the store as it is)", result["problem"])
        else:
            log.error("journal verify could not run: %s", result["problem"])
        with self._lock:
            self._last = result
        return result

    def status(self) -> dict[str, Any]:
        """The last run this daemon made (None before its first), and when the last checkpoint was."""
        with self._lock:
            last = None if self._last is None else dict(self._last)
        checkpoint = last_checkpoint_at(self.store)
        return {"last_run": last, "last_checkpoint_at": None if checkpoint is None else iso(checkpoint)}
