"""Keep the cylinder cache fresh: a full pull, or only what changed since the last good pull.

Pages are applied as they arrive, each in one transaction, so a pull cut short by an outage
leaves a consistent cache (every page whole) and the cache's age unchanged: the age and the
incremental cursor move only when a pull completes, and the rules refuse or warn on a stale cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from .client import CityClient

log = logging.getLogger(__name__)

CURSOR = "city_changed_since"  # the city's local time from which the next incremental pull starts
LAST_FULL = "city_last_full_pull"
# Pull a little before the cursor: the city's timestamps have one-second resolution and its clock
# is not ours; re-reading a few records is harmless, missing one is not.
OVERLAP = timedelta(minutes=5)


class CacheStore(Protocol):
    def upsert_cylinders(self, rows: Iterable[dict[str, Any]], now: datetime, batch: int = ...) -> int: ...
    def mark_cache_refreshed(self, moment: datetime) -> None: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class RefreshResult:
    mode: str  # "full" or "incremental"
    pages: int
    cylinders: int
    seconds: float


class Refresher:
    def __init__(
        self,
        client: CityClient,
        store: CacheStore,
        tz: tzinfo,
        page_size: int = 500,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client, self.store, self.tz, self.page_size, self.clock = client, store, tz, page_size, clock

    def refresh(self, full: bool = False, progress: Callable[[int, int | None], None] | None = None) -> RefreshResult:
        """Pull into the cache; raises the client's SyncError if the city fails part way."""
        cursor = self.store.get_meta(CURSOR)
        since = None if full or cursor is None else datetime.fromisoformat(cursor)
        mode = "incremental" if since is not None else "full"
        started, began = self.clock(), time.monotonic()
        page_no, count = self.client.profile.query.first_page, 0
        first_server_time: str | None = None
        pages = 0
        # Pages are by offset, in the city's change order: a record changed during the pull moves
        # to the end and is read there, but can shift one unchanged record back onto a page
        # already read. That record was unchanged, so the cache already holds it, unless this is
        # the first full pull; the next full pull (full_every_h) reads it.
        while True:
            page = self.client.query_page(page_no, self.page_size, since)
            pages += 1
            if first_server_time is None:
                first_server_time = page.server_time
            usable = [r for r in page.records if r.get("id")]
            if len(usable) < len(page.records):
                log.warning("city sent %d cylinder records without an ID; skipped", len(page.records) - len(usable))
            if usable:
                count += self.store.upsert_cylinders(usable, self.clock(), batch=len(usable))
            if progress:
                progress(count, page.total)
            if len(page.records) < min(self.page_size, self.client.profile.query.max_page_size):
                break
            page_no += 1
        self.store.set_meta(CURSOR, (self._as_of(first_server_time, started) - OVERLAP).isoformat())
        if mode == "full":
            self.store.set_meta(LAST_FULL, started.isoformat())
        self.store.mark_cache_refreshed(started)
        result = RefreshResult(mode, pages, count, round(time.monotonic() - began, 3))
        log.info("cache refresh (%s): %d cylinders in %d pages, %.1f s", mode, count, pages, result.seconds)
        return result

    def _as_of(self, server_time: str | None, started: datetime) -> datetime:
        """The registry time this pull saw: the city's own clock when it says, else ours at the start."""
        if server_time:
            try:
                return datetime.strptime(server_time, self.client.profile.formats.datetime)
            except ValueError:
                log.warning("city serverTime %r does not match the profile's format; using our clock", server_time)
        return started.astimezone(self.tz).replace(tzinfo=None)
