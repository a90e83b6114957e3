"""A station's history written through the daemon's own store calls, in the order a lane makes
them: the scan, the fill's milestones with the shift on duty, the in-flight learned, the outbox
rows and fleet events of a finished fill, and the city's and broker's acknowledgements.

Used by bench/history.py to build stores of years, and by the tests that need a store with a past.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.store import Store
from edge.store.fleet import FleetOutbox, journal_sink
from edge.store.outbox import Outbox
from interlock.fill import Record
from interlock.inflight import Learned
from tests.city_support import OWNER, REGION, STATION, TZ, registry
from sync.records import outbox_entries

START = datetime(2025, 1, 1, 0, 0, tzinfo=UTC)
LANES = tuple("ABCDEFGHIJKL")  # 12 lanes, 300 fills a day each: about 1.3 million a year
FILL_EVERY = timedelta(seconds=86_400 / (12 * 300))
REJECT_EVERY = 10  # one rejected scan for every ten fills


def open_history_store(path: Path, fleet: bool = True, durable: bool = True) -> Store:
    """The store as the daemon opens it (city outbox entries, and fleet events when it has a fleet).
    durable=False skips the fsync of each commit: the rows are the same, a big history builds faster."""
    sink = journal_sink("company", "station-1", TZ) if fleet else None
    return Store(path, outbox_entries=lambda fill: outbox_entries(fill, STATION), journal_sink=sink, durable=durable)


def cylinders(count: int = 400) -> list[dict[str, Any]]:
    return registry(count)


def fill(store: Store, n: int, at: datetime, cylinder: dict[str, Any], outcome: str = "ok") -> str:
    """One fill as a lane commits it, start to finish; returns its id."""
    lane = LANES[n % len(LANES)]
    fill_id = f"{lane}-{at:%Y%m%d%H%M%S}-{n:07d}"
    tare, target = cylinder["tare_kg"] or 15.0, cylinder["fill_mass_kg"] or 14.5
    code = cylinder["qr_content"]
    store.journal(at, "scan", {"code": code, "raw_hex": None, "accepted": True, "reasons": [], "details": [],
                               "fill_id": fill_id, "cylinder_id": cylinder["id"], "source": "scanner"},
                  lane=lane, fill_id=fill_id, cylinder_id=cylinder["id"])
    context = {"operator": f"op{n % 24:02d}", "checker": f"ck{n % 24:02d}", "medium": "G13"}
    milestones = [
        ("authorised", {"cylinder_id": cylinder["id"], "code": code, "tare_kg": tare, "target_net_kg": target,
                        "authorised_at": at}),
        ("prechecked", {"start_gross_kg": round(tare + 0.12, 2), "residual_kg": 0.12}),
        ("filling", {"started_at": at + timedelta(seconds=8)}),
        ("settling", {"cutoff_at": at + timedelta(seconds=60), "cutoff_gross_kg": round(tare + target - 0.2, 3),
                      "cutoff_by": "sample", "preact_kg": 0.2, "flow_kg_per_s": 0.25}),
        ("complete", {"finished_at": at + timedelta(seconds=64), "final_gross_kg": round(tare + target + 0.01, 2),
                      "net_kg": round(target + 0.01, 3), "outcome": outcome}),
    ]
    learned = Learned((0.8, 0.82, 0.79), 3 + n)
    for i, (status, fields) in enumerate(milestones):
        moment = at + timedelta(seconds=i * 16)
        store.apply_record(lane, Record(fill_id, status, fields), moment, context if status == "authorised" else {},
                           {"*": learned, cylinder["model"] or "YSP15": learned} if status == "complete" else None)
    return fill_id


def rejected_scan(store: Store, n: int, at: datetime, cylinder: dict[str, Any]) -> None:
    lane = LANES[n % len(LANES)]
    store.journal(at, "scan", {"code": cylinder["qr_content"], "raw_hex": None, "accepted": False,
                               "reasons": ["INSPECTION_OVERDUE"], "details": ["2024-01-01"], "fill_id": None,
                               "cylinder_id": cylinder["id"], "source": "scanner"},
                  lane=lane, cylinder_id=cylinder["id"])


def build(store: Store, fills: int, first: int = 0, start: datetime = START, fleet: bool = True,
          pool: list[dict[str, Any]] | None = None, ack_every: int = 200, acknowledge: bool = True) -> Iterator[int]:
    """Write `fills` fills (and a rejected scan every REJECT_EVERY) from fill number `first`; the
    city's and broker's acknowledgements follow every `ack_every` fills, as the uploader's rounds
    do (acknowledge=False: the rows stay pending). Each round's fills commit together (the calls nest in one transaction: the same rows, fewer
    commits). Yields the count written after each round, so a caller can report its progress."""
    pool = pool or cylinders()
    rng = random.Random(first)
    outbox = Outbox(store)
    events = FleetOutbox(store, lambda: at)
    at = start
    for round_start in range(first, first + fills, ack_every):
        with store.transaction():
            for n in range(round_start, min(round_start + ack_every, first + fills)):
                at = start + n * FILL_EVERY
                cylinder = pool[n % len(pool)]
                outcome = "ok" if rng.random() > 0.02 else "OVERFILLED"
                fill(store, n, at, cylinder, outcome)
                if n % REJECT_EVERY == 0:
                    rejected_scan(store, n, at + timedelta(seconds=2), pool[(n * 7) % len(pool)])
        if acknowledge:
            _acknowledge(store, outbox, events if fleet else None, at)
        yield n + 1 - first


def _acknowledge(store: Store, outbox: Outbox, events: FleetOutbox | None, at: datetime) -> None:
    """What the uploader and the fleet uplink do with the rows waiting: sent, delivered."""
    while rows := outbox.next_pending(0, 500):
        for row in rows:
            outbox.mark_sent(row.id, at, '{"code":0,"msg":"ok"}')
    if events is not None:
        while pending := events.pending(0, 500):
            events.delivered([e.id for e in pending])


__all__ = ["OWNER", "REGION", "START", "build", "open_history_store"]
