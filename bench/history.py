"""Years of records: what the manager's commands cost as the history grows.

Builds one store through the daemon's own write calls (tests/history_support.py: the scan, the
fill's milestones, the in-flight learned, the outbox rows and fleet events, the city's and broker's
acknowledgements) and, at each size, measures each command in its own process (wall time and peak
RSS): `edge verify --full` (which journals a checkpoint), one more day of fills, then `edge verify`
(incremental), `edge report daily`, `edge export` of the last month, `edge status`, `edge records
--limit 50`, `edge sync status`. Prints bytes per fill on disk and the ratio of each figure to the
first size's.

Usage: python bench/history.py [--fills 10000 100000 1000000] [--keep DIR]
       python bench/history.py --store h10000.db --store h100000.db   (measure stores built before)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.demo.run import BUNDLED_CONFIG, effective_config  # noqa: E402
from tests.history_support import FILL_EVERY, START, build, cylinders, open_history_store  # noqa: E402

DAY = int(timedelta(days=1) / FILL_EVERY)  # a busy station's fills in a day


def fills_in(store_path: Path) -> int:
    store = open_history_store(store_path, durable=False)
    try:
        return int(store.query("SELECT count(*) AS n FROM fills")[0]["n"])
    finally:
        store.close()


def grow(store_path: Path, fills: int, first: int) -> float:
    store = open_history_store(store_path, durable=False)
    started = time.monotonic()
    try:
        if first == 0:
            store.upsert_cylinders(cylinders(), datetime.now(UTC))
        for _ in build(store, fills, first=first, ack_every=500):
            pass
        store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    return time.monotonic() - started


# Runs `edge` and writes its peak resident set (VmHWM, of this process's own memory: ru_maxrss
# would include the benchmark's, which a child inherits across exec on Linux) to the file named first.
_PEAK = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def peak():
    with open('/proc/self/status') as status:
        kb = next(line.split()[1] for line in status if line.startswith('VmHWM:'))
    with open(out, 'w') as f:
        f.write(kb)
atexit.register(peak)
sys.argv[0] = 'edge'
runpy.run_module('edge.cli', run_name='__main__', alter_sys=True)
"""


def run(argv: list[str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MB, CPU seconds) of one command in its own process. On a shared
    machine the CPU time is the steadier figure; the wall time is what the manager waits."""
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak:
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-c", _PEAK, peak.name, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.monotonic() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            assert child.stderr is not None
            print(f"    edge {' '.join(argv[:2])} exited {child.returncode}: {child.stderr.read().decode()[-300:]}")
        kb = float(peak.read() or "nan")
    return elapsed, kb / 1024, usage.ru_utime + usage.ru_stime


def measure(store_path: Path, work: Path) -> dict[str, tuple[float, float, float]]:
    """Each command's (seconds, MB) on a copy of the store (the copy gets the checkpoint and a day)."""
    copy = work / "measured.db"
    shutil.copy(store_path, copy)
    raw = yaml.safe_load(effective_config(BUNDLED_CONFIG, work).read_text(encoding="utf-8"))
    raw["store"]["path"] = str(copy)
    config = work / "station.yaml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    n = fills_in(copy)
    figures: dict[str, tuple[float, float, float]] = {}
    figures["verify --full"] = run(["verify", "--full", "--config", str(config)])
    grow(copy, DAY, n)  # the day since the last verify
    last = (START + (n + DAY - 1) * FILL_EVERY).astimezone(raw_tz(raw)).date()
    month_start = last.replace(day=1)
    commands = {
        "verify (incremental)": ["verify"],
        "report daily": ["report", "daily", last.isoformat()],
        "export a month": ["export", "--since", month_start.isoformat(), "--until", last.isoformat(), "-o", str(work / "m.csv")],
        "status": ["status"],
        "records --limit 50": ["records", "--limit", "50"],
        "sync status": ["sync", "status"],
    }
    for name, args in commands.items():
        figures[name] = run([*args, "--config", str(config)])
    copy.unlink()
    return figures


def raw_tz(raw: dict) -> object:
    from zoneinfo import ZoneInfo

    return ZoneInfo(raw["station"].get("timezone", "Asia/Shanghai"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fills", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--store", type=Path, action="append", help="measure this store (built before) instead of building")
    parser.add_argument("--keep", type=Path, help="keep the store built at each size in this directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edge-history-"))
    results: list[tuple[int, float, dict[str, tuple[float, float, float]]]] = []
    try:
        stores: list[Path] = list(args.store or [])
        if not stores:
            grown, done = work / "grown.db", 0
            for size in sorted(args.fills):
                took = grow(grown, size - done, done)
                print(f"built {size} fills ({size - done} in {took:.0f} s, {(size - done) / took:.0f} fills/s)", flush=True)
                done = size
                kept = (args.keep or work) / f"h{size}.db"
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(grown, kept)
                stores.append(kept)
        for store in stores:
            n = fills_in(store)
            figures = measure(store, work)
            results.append((n, store.stat().st_size / n, figures))
            report(results)
            where_the_bytes_go(store, n)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(results: list[tuple[int, float, dict[str, tuple[float, float, float]]]]) -> None:
    n, per_fill, figures = results[-1]
    base_n, _, base = results[0]
    print(f"\n{n} fills: {per_fill:.0f} bytes per fill on disk")
    for name, (seconds, mb, cpu) in figures.items():
        ratio = "" if n == base_n else (f"   x{seconds / base[name][0]:.2f} wall, x{cpu / base[name][2]:.2f} CPU,"
                                        f" x{mb / base[name][1]:.2f} RSS of {base_n} fills")
        print(f"  {name:<22} {seconds:7.2f} s wall {cpu:7.2f} s CPU {mb:7.1f} MB{ratio}")
    sys.stdout.flush()


def where_the_bytes_go(store_path: Path, fills: int) -> None:
    """Bytes per fill by table and index (SQLite's dbstat), and the journal's by entry kind."""
    conn = sqlite3.connect(store_path)
    try:
        try:
            sizes = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 10").fetchall()
        except sqlite3.OperationalError:  # an SQLite built without the dbstat table
            return
        print("  bytes per fill by table or index: " + ", ".join(f"{name} {size / fills:.0f}" for name, size in sizes))
        kinds = conn.execute("SELECT kind, count(*), sum(length(data)) FROM journal GROUP BY kind ORDER BY 3 DESC LIMIT 8").fetchall()
        print("  journal data per fill by kind: " + ", ".join(f"{kind} {size / fills:.0f} ({count / fills:.1f}/fill)"
                                                          for kind, count, size in kinds))
        columns = ("data", "hash", "ts", "fill_id", "kind", "cylinder_id", "prev_hash")
        sums = conn.execute(f"SELECT {', '.join(f'coalesce(sum(length({c})), 0)' for c in columns)} FROM journal").fetchone()
        print("  journal bytes per fill by column: " + ", ".join(f"{c} {n / fills:.0f}" for c, n in zip(columns, sums)))
    finally:
        conn.close()


if __name__ == "__main__":
    main()
