"""Stations with a past for the documents' tests, written through the store's own calls: a month
of 500 fills (the ledger's pages, the monthly summary) and a busy day on 12 lanes (the daily report
and the shift hand-over). Outcomes, aborts with their trips, rejected scans with one or several
reasons, a lane reset and a lane still held are all in, so every table has rows to total."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.config import load_config
from edge.daemon.station import open_store
from edge.store import Store
from interlock.fill import Record

from .conftest import write_config

LANES = tuple("ABCDEFGHIJKL")
MONTH_START = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # 2026-11-01 00:00 in Shanghai
BUSY_DAY = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # 08:00 on 2026-11-20 in Shanghai
OPERATORS = ("张伟", "李娜", "王磊", "刘洋", "陈静", "杨帆", "赵敏", "黄勇", "周杰", "吴霞", "徐丽", "孙强")
CHECKERS = ("王芳", "马超", "朱琳", "胡军")
POOL = 300  # cylinders in the station's cache
REASONS = ("INSPECTION_OVERDUE", "SERVICE_LIFE_EXCEEDED", "NOT_SELF_OWNED", "MEDIUM_MISMATCH")


def fill(store: Store, fill_id: str, lane: str, at: datetime, operator: str, checker: str,
         outcome: str, rng: random.Random) -> None:
    """A fill's milestones as a lane commits them: authorised, started, then final."""
    tare, target = round(14.8 + rng.random(), 2), 14.5
    context = {"operator": operator, "checker": checker, "medium": "G13"}
    store.apply_record(lane, Record(fill_id, "authorised", {
        "cylinder_id": f"CYL{rng.randrange(POOL):06d}", "code": f"https://qp.example.cn/t?c={fill_id}",
        "authorised_at": at, "tare_kg": tare, "target_net_kg": target}), at, context)
    store.apply_record(lane, Record(fill_id, "filling", {"started_at": at + timedelta(seconds=6),
                                                          "start_gross_kg": round(tare + 0.1, 2)}), at, {})
    fields: dict[str, Any] = {"finished_at": at + timedelta(seconds=70)}
    if outcome == "aborted":
        fields |= {"outcome": "aborted", "cause": "SCALE_LOST", "tripped": True, "final_gross_kg": round(tare + 6.0, 2)}
        status = "aborted"
    else:
        net = {"ok": target + 0.02, "OVERFILLED": target + 0.6, "UNDERFILLED": target - 0.7}[outcome]
        fields |= {"outcome": outcome, "net_kg": round(net, 2), "final_gross_kg": round(tare + net, 2)}
        status = "complete"
    store.apply_record(lane, Record(fill_id, status, fields), at + timedelta(seconds=70), {})
    if outcome == "aborted":  # a trip locks the lane until its operator resets it, as a lane journals it
        store.journal(at + timedelta(minutes=3), "lane_reset", {"by": operator, "why": "reset input", "source": "reset_input",
                                                                "cause": "SCALE_LOST", "refused": None, "detail": None}, lane=lane)


def cylinders(store: Store) -> None:
    store.upsert_cylinders([{"id": f"CYL{n:06d}", "owner_unit": "重庆渝能燃气有限公司", "medium": "G13", "status": "在用",
                             "model": "YSP35.5-II" if n % 3 else "YSP12-II", "volume_l": 35.5 if n % 3 else 12.0,
                             "next_inspection": f"2028-{1 + n % 12:02d}"} for n in range(POOL)], MONTH_START)


def rejected_scan(store: Store, lane: str, at: datetime, reasons: list[str]) -> None:
    store.journal(at, "scan", {"code": "CYLX", "raw_hex": None, "accepted": False, "reasons": reasons,
                               "details": [], "fill_id": None, "cylinder_id": "CYLX", "source": "scanner"}, lane=lane)


def _outcome(rng: random.Random) -> str:
    roll = rng.random()
    return "OVERFILLED" if roll < 0.03 else "UNDERFILLED" if roll < 0.06 else "aborted" if roll < 0.08 else "ok"


def month_station(tmp_path: Path, fills: int = 500) -> Path:
    """November 2026: `fills` fills spread over its 30 days on four lanes, daytime only."""
    config = write_config(tmp_path)
    store = open_store(load_config(config))
    rng = random.Random(500)
    try:
        cylinders(store)
        with store.transaction():
            for n in range(fills):
                day, slot = divmod(n, -(-fills // 30))
                at = MONTH_START + timedelta(days=day, hours=8, minutes=20 * slot)
                lane = LANES[n % 4]
                fill(store, f"{n:04d}-{rng.getrandbits(64):016x}-4a1b-9c2d-{n:012d}", lane, at,
                     OPERATORS[n % 4], CHECKERS[n % 4], _outcome(rng), rng)
                if n % 9 == 0:
                    rejected_scan(store, lane, at + timedelta(seconds=2), list(REASONS[: 1 + n % 3]))
    finally:
        store.close()
    return config


def busy_day_station(tmp_path: Path, per_lane: int = 40, lanes: int = len(LANES)) -> Path:
    """2026-11-20 on 12 lanes (or `lanes`), 08:00 to 20:00 (two shifts), `per_lane` fills each: an
    ordinary busy day. Lane A tripped and was reset; lane B is still held at the end of the day."""
    config = write_config(tmp_path)
    store = open_store(load_config(config))
    rng = random.Random(12)
    ids = LANES if lanes <= len(LANES) else tuple(f"L{n:02d}" for n in range(1, lanes + 1))
    try:
        cylinders(store)
        with store.transaction():
            for n in range(per_lane * lanes):
                lane_no, k = n % lanes, n // lanes
                at = BUSY_DAY + timedelta(minutes=k * 12 * 60 // per_lane, seconds=lane_no * 7)
                operator = OPERATORS[lane_no % len(OPERATORS)] + ("" if lane_no < len(OPERATORS) else str(lane_no // len(OPERATORS)))
                fill(store, f"{n:04d}c0de-{rng.getrandbits(32):08x}-4a1b-9c2d-{n:012d}", ids[lane_no], at,
                     operator, CHECKERS[lane_no % 4], _outcome(rng), rng)
                if n % 11 == 0:
                    rejected_scan(store, ids[lane_no], at + timedelta(seconds=3), list(REASONS[: 1 + n % 2]))
        # Lane B's alarm hold at 19:00 is still waiting for its acknowledgement when the day ends.
        store.journal(BUSY_DAY + timedelta(hours=11), "lane_held", {"cause": "UNDERFILLED"}, lane=ids[1])
    finally:
        store.close()
    return config
