"""Drain the outbox to the city, oldest first, one record at a time, until it is empty.

All state is in the station's database: a row is pending until the city acknowledged it (sent) or
refused it for good (dead, with the city's message). A restart simply carries on with the oldest
pending row; a row whose answer was lost is sent again under the same idempotency key, which the
city deduplicates. A city that ignores our key answers the repeat with a "we already have it" code
(the profile's duplicate_codes): that row is delivered, marked sent as a duplicate, never dead.
Strict order means a cylinder's records arrive in the order they happened.

Replies that are not the city's envelope (a captive portal's HTML page, a proxy's error page, cut-off
JSON) are transient until they have lasted `malformed_window_s`: only then is the record at the head
of the line dead-lettered, so an afternoon behind a captive portal loses nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from .client import AuthError, CityClient, Duplicate, Malformed, Rejected, Retryable, SyncError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class OutboxRow:
    id: int
    kind: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int


class OutboxStore(Protocol):
    def next_pending(self, after_id: int, limit: int) -> list[OutboxRow]: ...
    def mark_sent(self, row_id: int, now: datetime, reply: str) -> None: ...
    def mark_duplicate(self, row_id: int, now: datetime, reason: str) -> None: ...
    def mark_dead(self, row_id: int, now: datetime, reason: str) -> None: ...
    def note_failure(self, row_id: int, now: datetime, error: str, malformed_since: datetime | None = None) -> None: ...
    def pending_count(self) -> int: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off between attempts at one record: exponential with jitter, capped; Retry-After wins
    when the city asks for longer. Replies that are not the envelope are retried like the rest
    until they have gone on this long without a proper answer in between; then the record is dead."""

    initial_s: float = 1.0
    max_s: float = 300.0
    jitter_s: float = 1.0
    malformed_window_s: float = 6 * 3600.0
    # Records per second at most (None: as fast as the city answers). Every record costs the
    # daemon TLS and JSON work under the interpreter lock that the lanes share; pacing a backlog
    # keeps their scan-to-decision times.
    max_rate_per_s: float | None = None


@dataclass
class DrainResult:
    sent: int = 0  # duplicates included: the city has them
    duplicates: int = 0
    dead: int = 0
    stopped: bool = False


class Uploader:
    def __init__(
        self,
        client: CityClient,
        store: OutboxStore,
        policy: RetryPolicy = RetryPolicy(),
        clock: Clock = lambda: datetime.now(UTC),
        batch: int = 200,
    ) -> None:
        self.client, self.store, self.policy, self.clock, self.batch = client, store, policy, clock, batch
        self._backoff = wait_exponential_jitter(multiplier=policy.initial_s, max=policy.max_s, jitter=policy.jitter_s)
        self.last_error: str | None = None
        # Since when every reply has been something other than the city's envelope (None: the
        # last reply was a proper one). Kept across records: a captive portal answers them all.
        self.malformed_since: datetime | None = None

    def run(self, stop: threading.Event, idle_s: float = 2.0, wake: threading.Event | None = None) -> None:
        """The daemon's loop: drain, then wait for new rows (or a wake-up) and drain again."""
        wake = wake or threading.Event()
        failures = 0
        while not stop.is_set():
            try:
                self.drain(stop)
            except Exception as exc:  # a bug, or a store that cannot take writes: never the end of uploads
                failures += 1
                delay = self.failure_backoff_s(failures, idle_s)
                # Backing off matters most when the store cannot mark a delivered row sent (a full
                # disk): each round re-sends that row, so rounds must not come every idle_s.
                level = logging.WARNING if failures in (1, 10) or failures % 100 == 0 else logging.DEBUG
                log.log(level, "uploader failed (%s: %s), %d times in a row; next try in %.1f s",
                        type(exc).__name__, exc, failures, delay, exc_info=log.isEnabledFor(logging.DEBUG))
                stop.wait(delay)
                continue
            if failures:
                log.info("uploader working again after %d failed rounds", failures)
                failures = 0
            wake.wait(idle_s)
            wake.clear()

    def failure_backoff_s(self, failures: int, idle_s: float) -> float:
        """Wait after the n-th failed round in a row: doubling from the idle time, capped by the policy."""
        return min(max(idle_s, self.policy.initial_s) * 2 ** min(failures - 1, 30), self.policy.max_s)

    def drain(self, stop: threading.Event, progress: Callable[[DrainResult], None] | None = None) -> DrainResult:
        """Send every pending row, oldest first; returns when the outbox is empty or `stop` is set."""
        result = DrainResult()
        after = 0
        while True:
            rows = self.store.next_pending(after, self.batch)
            if not rows:
                return result
            for row in rows:
                began = time.monotonic()
                if stop.is_set() or not self._deliver(row, stop, result):
                    result.stopped = True
                    return result
                after = row.id
                if progress:
                    progress(result)
                if self.policy.max_rate_per_s:
                    stop.wait(max(0.0, 1 / self.policy.max_rate_per_s - (time.monotonic() - began)))

    def _deliver(self, row: OutboxRow, stop: threading.Event, result: DrainResult) -> bool:
        """One row to a final state (sent or dead); False if `stop` interrupted the retries."""

        row_since: datetime | None = None  # this row's first reply of an unbroken malformed run

        def attempt() -> Any:
            nonlocal row_since
            try:
                reply = self.client.submit(row.kind, row.payload, row.idempotency_key)
            except Malformed as exc:
                now = self.clock()
                self.malformed_since = self.malformed_since or now
                row_since = row_since or now
                if now - row_since >= timedelta(seconds=self.policy.malformed_window_s):
                    hours = (now - row_since).total_seconds() / 3600
                    raise Rejected(f"{exc} (no proper reply for {hours:.1f} h)") from exc
                raise
            except (Duplicate, Rejected, AuthError):
                self.malformed_since = row_since = None  # the city itself answered
                raise
            self.malformed_since = None
            return reply

        retrying = Retrying(
            retry=retry_if_exception_type((Retryable, AuthError, Malformed)),
            wait=self._wait,
            stop=lambda _: stop.is_set(),
            sleep=stop.wait,
            before_sleep=lambda state: self._failed(row, state),
            reraise=True,
        )
        try:
            reply = retrying(attempt)
        except Duplicate as exc:
            self.store.mark_duplicate(row.id, self.clock(), str(exc))
            log.info("outbox %d (%s %s): the city already has it (%s)", row.id, row.kind, row.idempotency_key, exc)
            self.last_error = None
            result.sent += 1
            result.duplicates += 1
            return True
        except Rejected as exc:
            self.store.mark_dead(row.id, self.clock(), str(exc))
            log.warning("outbox %d (%s %s) dead: %s", row.id, row.kind, row.idempotency_key, exc)
            result.dead += 1
            return True
        except SyncError:
            return False  # stopped while waiting to retry; the row stays pending
        self.store.mark_sent(row.id, self.clock(), json.dumps(reply, ensure_ascii=False, default=str))
        self.last_error = None
        result.sent += 1
        return True

    def _wait(self, state: RetryCallState) -> float:
        backoff = float(self._backoff(state))
        error = state.outcome.exception() if state.outcome else None
        asked = getattr(error, "retry_after_s", None)
        return max(backoff, asked) if asked is not None else backoff

    def _failed(self, row: OutboxRow, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.last_error = f"{type(error).__name__}: {error}"
        malformed = self.malformed_since if isinstance(error, Malformed) else None
        self.store.note_failure(row.id, self.clock(), self.last_error, malformed)
        level = logging.WARNING if state.attempt_number in (1, 10, 100) else logging.DEBUG
        log.log(level, "outbox %d: attempt %d failed (%s); retrying", row.id, state.attempt_number, self.last_error)
