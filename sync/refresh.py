"""Keep the cylinder cache equal to the city's registry: a full pull, or only what changed since
the last good pull.

Pages are applied as they arrive, each in one transaction, so a pull cut short by an outage
leaves a consistent cache (every page whole) and the cache's age unchanged: the age and the
incremental cursor move only when a pull completes, and the rules refuse or warn on a stale cache.

The end of a listing is the total the city reports, or an empty page; a short page is not the end
(a city may serve fewer rows than asked, whatever its documentation says). The listing is by
offset, so a row that leaves or joins it mid-pull shifts the rows behind it across a page boundary
and one can be skipped. A pull is therefore checked: every page reports the same total, the rows
read are that many distinct cylinders, none was read twice, and the number of registry changes
since just before the pull is the same before and after it. A pull that fails the check is
repeated; only a complete full pull sweeps the cache, marking every cylinder it did not list as
removed from the registry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from .client import CityClient, Malformed, SyncError
from .mapping import format_datetime, parse_datetime
from .profile import dig

log = logging.getLogger(__name__)

CURSOR = "city_changed_since"  # the UTC instant from which the next incremental pull starts
LAST_FULL = "city_last_full_pull"
# Pull a little before the cursor: the city's timestamps have one-second resolution and its clock
# is not ours; re-reading a few records is harmless, missing one is not.
OVERLAP = timedelta(minutes=5)
ATTEMPTS = 3  # passes at a pull before it is reported incomplete


class CacheStore(Protocol):
    def upsert_cylinders(self, rows: Iterable[dict[str, Any]], now: datetime, batch: int = ...,
                         from_city: bool = ...) -> int: ...
    def mark_removed(self, cylinder_ids: Iterable[str], now: datetime, how: str) -> int: ...
    def sweep_cylinders(self, seen: set[str], now: datetime) -> int: ...
    def mark_cache_refreshed(self, moment: datetime) -> None: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...


class RefreshIncomplete(SyncError):
    """The registry kept moving under every pass: what was read is applied, nothing is swept."""


@dataclass(frozen=True)
class RefreshResult:
    mode: str  # "full" or "incremental"
    pages: int
    cylinders: int
    seconds: float
    removed: int = 0  # cylinders newly marked as no longer in the registry
    attempts: int = 1


@dataclass
class _Pass:
    """What one pass over a listing saw."""

    pages: int = 0
    rows: int = 0
    removed: int = 0
    seen: set[str] = field(default_factory=set)
    totals: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


class Refresher:
    def __init__(
        self,
        client: CityClient,
        store: CacheStore,
        tz: tzinfo,
        page_size: int = 500,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        attempts: int = ATTEMPTS,
    ) -> None:
        self.client, self.store, self.tz, self.page_size, self.clock = client, store, tz, page_size, clock
        self.attempts = attempts

    def refresh(self, full: bool = False, progress: Callable[[int, int | None], None] | None = None) -> RefreshResult:
        """Pull into the cache; raises the client's SyncError if the city fails part way, and
        RefreshIncomplete if the registry moved under every pass."""
        since = None if full else self._cursor()
        mode = "incremental" if since is not None else "full"
        began = time.monotonic()
        pages = 0
        for attempt in range(1, self.attempts + 1):
            started = self.clock()
            before, server_time = self._changes_since(started - OVERLAP)
            listing = self._pass(since, started, progress)
            after, _ = self._changes_since(started - OVERLAP)
            pages += listing.pages
            if before != after:
                listing.problems.append(f"{after - before} registry changes during the pull")
            if not listing.problems:
                break
            log.warning("cache refresh (%s) pass %d: rows moved (%s); pulling again", mode, attempt, "; ".join(listing.problems))
        else:
            raise RefreshIncomplete(
                f"the registry kept changing during {self.attempts} passes ({'; '.join(listing.problems)});"
                " what was read is applied, nothing was swept")
        removed = listing.removed
        if mode == "full":
            removed += self.store.sweep_cylinders(listing.seen, started)
        else:
            assert since is not None
            removed += self._removed_since(since, started)
        self.store.set_meta(CURSOR, (self._as_of(server_time, started) - OVERLAP).isoformat())
        if mode == "full":
            self.store.set_meta(LAST_FULL, started.isoformat())
        self.store.mark_cache_refreshed(started)
        result = RefreshResult(mode, pages, listing.rows, round(time.monotonic() - began, 3), removed, attempt)
        log.info("cache refresh (%s): %d cylinders in %d pages, %d removed, %.1f s", mode, listing.rows, pages,
                 removed, result.seconds)
        return result

    def _pass(self, since: datetime | None, now: datetime, progress: Callable[[int, int | None], None] | None) -> _Pass:
        spec = self.client.profile.query
        listing = _Pass()
        page_no = spec.first_page
        while True:
            page = self.client.query_page(page_no, self.page_size, since)
            listing.pages += 1
            if page.total is not None:
                listing.totals.add(page.total)
            new = self._apply(page.records, listing, now)
            listing.rows += len(page.records)
            if progress:
                progress(listing.rows, page.total)
            if not page.records or (page.total is not None and listing.rows >= page.total):
                break
            if not new:
                # A page of rows all read before: the city ignores the page number, or the listing
                # slid back by a whole page. Either way this pass cannot be trusted.
                listing.problems.append(f"page {page_no} brought no new cylinder")
                break
            page_no += 1
        if len(listing.totals) > 1:
            listing.problems.append(f"the total changed during the pull ({sorted(listing.totals)})")
        elif listing.totals and len(listing.seen) != next(iter(listing.totals)):
            listing.problems.append(f"{len(listing.seen)} distinct cylinders read, the city reports {next(iter(listing.totals))}")
        return listing

    def _apply(self, records: list[dict[str, Any]], listing: _Pass, now: datetime) -> int:
        """Upsert listed cylinders and mark those the city marks removed; returns how many were new
        to this pass."""
        usable = [r for r in records if r.get("id")]
        if len(usable) < len(records):
            log.warning("city sent %d cylinder records without an ID; skipped", len(records) - len(usable))
        ids = [r["id"] for r in usable]
        twice = [i for i in ids if i in listing.seen]
        if twice:
            listing.problems.append(f"{len(twice)} cylinders listed twice (e.g. {twice[0]})")
        listing.seen.update(ids)
        live = [r for r in usable if not r.get("removed")]
        gone = [r["id"] for r in usable if r.get("removed")]
        if live:
            self.store.upsert_cylinders(live, now, batch=len(live), from_city=True)
        if gone:
            listing.removed += self.store.mark_removed(gone, now, "listed as removed")
        return len(ids) - len(twice)

    def _changes_since(self, moment: datetime) -> tuple[int | None, str | None]:
        """How many registry rows changed since `moment` (the total of a one-row page), and the
        city's clock if it says."""
        page = self.client.query_page(self.client.profile.query.first_page, 1, moment)
        return page.total, page.server_time

    def _removed_since(self, since: datetime, now: datetime) -> int:
        """Cylinders the profile's "removed since" query names, marked removed."""
        spec = self.client.profile.query.removal.removed_since
        if spec is None:
            return 0
        query = self.client.profile.query
        page_no, read, removed = query.first_page, 0, 0
        while True:
            body = {spec.since: format_datetime(self.client.profile, since, self.client.tz),
                    query.page: page_no, query.page_size: min(self.page_size, query.max_page_size)}
            data = self.client.call(spec.path, body)
            rows = dig(data, spec.records)
            if not isinstance(rows, list):
                raise Malformed(f"removed-since reply without a {spec.records!r} list")
            ids = [str(r.get(spec.id)) if isinstance(r, dict) else str(r) for r in rows]
            removed += self.store.mark_removed([i for i in ids if i and i != "None"], now, "removed since")
            read += len(rows)
            total = dig(data, spec.total)
            if not rows or (isinstance(total, int) and read >= total):
                return removed
            page_no += 1

    def _cursor(self) -> datetime | None:
        value = self.store.get_meta(CURSOR)
        if value is None:
            return None
        cursor = datetime.fromisoformat(value)
        # Cursors written before instants were kept in UTC are the city's wall time.
        return cursor if cursor.tzinfo is not None else cursor.replace(tzinfo=self.client.tz)

    def _as_of(self, server_time: str | None, started: datetime) -> datetime:
        """The registry time this pull saw: the city's own clock when it says, else ours at the start."""
        if server_time:
            try:
                return parse_datetime(self.client.profile, server_time, self.client.tz)
            except ValueError:
                log.warning("city serverTime %r does not match the profile's format; using our clock", server_time)
        return started
