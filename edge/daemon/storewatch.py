"""The daemon's eye on its store: it probes a store that stopped taking writes, so lanes serve
again as soon as it does (no restart), and warns while free space is below the configured floor."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from ..lanes.lane import Clock
from ..store import Store, StoreUnavailable
from ..store.database import iso

log = logging.getLogger(__name__)

PROBE_S = 0.5  # while the store is down: how soon lanes serve again once space returns
SPACE_CHECK_S = 10.0


@dataclass
class StoreWatch:
    store: Store
    clock: Clock
    min_free_bytes: int
    probe_s: float = PROBE_S
    space_check_s: float = SPACE_CHECK_S
    free_bytes: int | None = None
    low_space: bool = False

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-watch", daemon=True)

    def start(self) -> None:
        self.check_space()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        since_space_check = 0.0
        while not self._stop.wait(self.probe_s):
            try:
                if self.store.outage is not None:
                    self.probe()
                since_space_check += self.probe_s
                if since_space_check >= self.space_check_s:
                    since_space_check = 0.0
                    self.check_space()
            except Exception:  # the watch must outlive a bug in one round
                log.exception("store watch failed")

    def probe(self) -> bool:
        """One write that lanes would make: it commits only when the store takes writes again."""
        outage = self.store.outage
        if outage is None:
            return True
        try:
            self.store.journal(self.clock(), "store_available", {"unavailable_since": iso(outage.since), "error": outage.error})
        except StoreUnavailable:
            return False
        return True

    def check_space(self) -> None:
        try:
            free = self.store.free_bytes()
        except OSError as exc:
            log.warning("free space on the store's filesystem unknown: %s", exc)
            return
        self.free_bytes = free
        low = free is not None and free < self.min_free_bytes
        if low and not self.low_space:
            log.warning("store %s: only %.0f MB free (floor store.min_free_mb %.0f MB); filling stops when the disk is full",
                        self.store.path, free / 1e6, self.min_free_bytes / 1e6)
        elif self.low_space and not low:
            log.info("store %s: free space back above the floor (%.0f MB)", self.store.path, (free or 0) / 1e6)
        self.low_space = low

    def status(self) -> dict[str, Any]:
        outage = self.store.outage
        return {
            "writable": outage is None,
            "unavailable_since": None if outage is None else iso(outage.since),
            "error": None if outage is None else outage.error,
            "free_bytes": self.free_bytes,
            "low_space": self.low_space,
        }
