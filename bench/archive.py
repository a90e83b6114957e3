"""`edge archive` on a realistic store: how long it takes, how big the monthly files are, what the
live store weighs before and after, and how long a lane's write waits meanwhile.

Builds a store through the daemon's own write calls (tests/history_support.py) with `--fills`
fills spread over three months, then archives the first two while a writer commits a journal
entry every 50 ms, as a lane does (its slowest commit is the figure a lane would feel). Prints
the archive's time, each file's size and fills, the store's size before, after the archive (free
pages kept for new records), and after `--vacuum` (the rewrite, timed), and the incremental and
full verify times after the archive.

Usage: python bench/archive.py [--fills 30000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.store import archive  # noqa: E402
from tests.history_support import FILL_EVERY, build, cylinders, open_history_store  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
MONTHS = (datetime(2025, 1, 1, tzinfo=TZ), datetime(2025, 2, 1, tzinfo=TZ), datetime(2025, 3, 1, tzinfo=TZ))


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def build_store(path: Path, fills: int) -> float:
    store = open_history_store(path, durable=False)
    started = time.monotonic()
    try:
        store.upsert_cylinders(cylinders(), datetime.now(UTC))
        per_month = fills // len(MONTHS)
        for n, month in enumerate(MONTHS):
            first = n * per_month
            for _ in build(store, per_month, first=first, start=month.astimezone(UTC) - first * FILL_EVERY, ack_every=500):
                pass
        store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    return time.monotonic() - started


class Lane(threading.Thread):
    """A lane's commits while the archive runs: one journal entry every 50 ms, each one timed."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.stop, self.waits = path, threading.Event(), []

    def run(self) -> None:
        store = open_history_store(self.path)
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                store.journal(datetime.now(UTC), "bench_tick", {}, lane="A")
                self.waits.append(time.monotonic() - started)
                time.sleep(0.05)
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fills", type=int, default=30_000, help="fills over three months (default 30000)")
    parser.add_argument("--keep", type=Path, help="build in this directory and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-archive-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "station.db"
    try:
        built = build_store(db, args.fills)
        before = size(db)
        print(f"store: {args.fills} fills over 3 months, built in {built:.0f} s: {mb(before)} ({before / args.fills:.0f} B a fill)")
        store = open_history_store(db)
        lane = Lane(db)
        lane.start()
        started = time.monotonic()
        try:
            done = archive.make(store, date(2025, 3, 1), TZ, work / "archive", "bench", datetime.now(UTC))
        finally:
            lane.stop.set()
            lane.join()
        took = time.monotonic() - started
        for item in done["archived"]:
            print(f"  {Path(item['file']).name}: {item['fills']} fills, {mb(Path(item['file']).stat().st_size)}"
                  f" ({Path(item['file']).stat().st_size / item['fills']:.0f} B a fill)")
        archived = sum(i["fills"] for i in done["archived"])
        print(f"archive of {archived} fills: {took:.1f} s; verified from the archive's head: {done['verified']}")
        print(f"deleted: {done['deleted']}")
        print(f"a lane's commit meanwhile ({len(lane.waits)} commits): median {statistics.median(lane.waits) * 1000:.1f} ms,"
              f" slowest {max(lane.waits) * 1000:.0f} ms")
        store.query("PRAGMA wal_checkpoint(TRUNCATE)")
        after = size(db)
        free = store.query("PRAGMA freelist_count")[0]["freelist_count"] * store.query("PRAGMA page_size")[0]["page_size"]
        for label, full in (("incremental", False), ("full", True)):
            started = time.monotonic()
            assert store.audit(full=full).ok
            print(f"verify ({label}) after the archive: {time.monotonic() - started:.2f} s")
        store.close()
        print(f"live store after the archive: {mb(after)} on disk, of which {mb(free)} free pages (reused by new records)")
        started = time.monotonic()
        archive.vacuum(db)
        print(f"after --vacuum ({time.monotonic() - started:.1f} s, the store held meanwhile): {mb(size(db))}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
