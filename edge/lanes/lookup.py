"""A live lookup on a cache miss: ask the city for one scanned cylinder, within a short deadline.

A cylinder registered, re-tagged or re-inspected this morning is not in the cache until the next
refresh. When the cache alone would refuse it, the lane asks here; a small pool of workers (each
with its own HTTPS session and a client timeout of the deadline) asks the city and writes the
answer into the cache, and the lane waits for it at most the deadline, while idle. A lookup the
lane gave up on still completes and updates the cache for the next scan; a request still queued
when its deadline has passed is dropped. Nothing here is on the lane's fill path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from interlock.codes import Identifier, Kind

from ..config.city import CityConfig
from ..store import Store

if TYPE_CHECKING:  # the HTTP client (requests) loads with the first lookup, not with the lane
    from sync.client import CityClient

log = logging.getLogger(__name__)

WORKERS = 2  # two lookups in flight at once: one stalled answer does not hold up the next lane
# Which of the profile's query keys can find a scanned identifier, in the order tried.
QUERY_KEYS: dict[Kind, tuple[str, ...]] = {
    Kind.QR_URL: ("qr_content",),
    Kind.INFO_CODE: ("info_code",),
    Kind.PRODUCT: ("product_no", "info_code"),
}


class Source:
    """What a decision was made on, as journalled with the scan."""

    CACHE = "cache"  # no lookup was needed (or possible)
    CITY = "city"  # the city answered within the deadline; decided on its record
    CITY_UNKNOWN = "city:unknown"  # the city answered: it does not know the code either
    TIMEOUT = "cache:city-timeout"  # no answer within the deadline
    OFFLINE = "cache:city-unreachable"  # the city refused or failed: decided from the cache
    NOT_IDLE = "cache:lane-busy"  # the lane was not idle, so it did not wait


@dataclass(frozen=True)
class Answer:
    source: str
    cylinder_id: str | None = None
    detail: str = ""


class LiveLookup:
    def __init__(self, city: CityConfig, store_path: str | Path, tz: tzinfo,
                 build_client: Callable[[CityConfig, tzinfo], CityClient],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        # build_client is the daemon's (edge.daemon.city), passed in: the daemon imports the lanes,
        # so the lanes do not import the daemon.
        settings = city.lookup
        self.deadline_s, self.max_record_age_s, self.clock = settings.deadline_s, settings.max_record_age_s, clock
        timeouts = city.model_copy(update={"connect_timeout_s": settings.deadline_s, "read_timeout_s": settings.deadline_s})
        self._new_client = lambda: build_client(timeouts, tz)
        self.keys = set(city.profile.query.keys)
        self._clients: list[CityClient] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self.store = Store(store_path, durable=False)
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="lookup")
        self._unknown: dict[tuple[str, str], float] = {}  # (key, value) the city did not know -> when
        self.latencies_s: list[float] = []  # answered lookups, for the bench

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for client in self._clients:
                client.close()
        self.store.close()

    def ask(self, identifier: Identifier, cylinder_id: str | None) -> Future[Answer] | None:
        """Start asking the city about a scanned code (by the cached cylinder's id when there is
        one); None when the profile cannot look this code up or the city recently did not know it."""
        keys = self.keys
        candidates = [("id", cylinder_id)] if cylinder_id and "id" in keys else []
        candidates += [(key, identifier.value) for key in QUERY_KEYS.get(identifier.kind, ()) if key in keys]
        now = time.monotonic()
        with self._lock:
            candidates = [c for c in candidates if now - self._unknown.get(c, -1e18) > self.max_record_age_s]
        if not candidates:
            return None
        return self._pool.submit(self._look_up, candidates, now + self.deadline_s)

    def _client(self) -> CityClient:
        client: CityClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client()
            with self._lock:
                self._clients.append(client)
        return client

    def _look_up(self, candidates: list[tuple[str, str]], deadline: float) -> Answer:
        from sync.client import SyncError

        if time.monotonic() > deadline:
            return Answer(Source.TIMEOUT, detail="dropped: its lane stopped waiting before a worker was free")
        began = time.monotonic()
        client = self._client()
        try:
            for key, value in candidates:
                record = client.find_cylinder(key, value)
                if record and record.get("id"):
                    self.latencies_s.append(time.monotonic() - began)
                    return self._store(record, key)
                with self._lock:
                    self._unknown[(key, value)] = time.monotonic()
        except SyncError as exc:
            log.info("live lookup failed: %s", exc)
            return Answer(Source.OFFLINE, detail=str(exc))
        self.latencies_s.append(time.monotonic() - began)
        return Answer(Source.CITY_UNKNOWN)

    def _store(self, record: dict[str, object], key: str) -> Answer:
        now: datetime = self.clock()
        cylinder_id = str(record["id"])
        if record.get("removed"):
            self.store.mark_removed([cylinder_id], now, "live lookup")
        else:
            self.store.upsert_cylinders([{k: v for k, v in record.items() if k != "removed"}], now, from_city=True)
        log.info("live lookup by %s: cylinder %s from the city", key, cylinder_id)
        return Answer(Source.CITY, cylinder_id)
