"""Backup and restore of a store with a past: how long `edge backup` takes and how big its file is.

Builds a store of --fills fills through the daemon's own write calls (tests/history_support.py,
as bench/history.py does), then, --runs times: backs it up (the online copy, the full-replay check,
gzip, delivery to a local directory and, when Debian's sshd is installed, to an SFTP server on a
loopback port) and restores the backup into a clean directory (unpack, check, journal the
restore). Prints each phase's median seconds and the sizes: the store, the raw copy and the
gzipped file, per fill too.

Usage: python bench/backup.py [--fills 100000] [--runs 3] [--store BUILT.db] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.backup.restore import restore  # noqa: E402
from edge.backup.run import backup  # noqa: E402
from tests.backup_support import backup_config  # noqa: E402
from tests.history_support import build, cylinders, open_history_store  # noqa: E402
from tests.ssh_support import SSHD, start_sshd  # noqa: E402


def grow(store_path: Path, fills: int) -> float:
    started = time.monotonic()
    store = open_history_store(store_path, durable=False)
    try:
        store.upsert_cylinders(cylinders(), datetime.now(UTC))
        for done in build(store, fills, ack_every=500):
            if done % 20_000 < 500:
                print(f"  built {done} fills", flush=True)
        store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fills", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", type=Path, help="measure this store (built before) instead of building one")
    parser.add_argument("--keep", type=Path, help="keep the built store here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edge-backup-bench-"))
    sshd = None
    try:
        store = work / "var" / "station.db"
        store.parent.mkdir()
        if args.store:
            shutil.copy(args.store, store)
        else:
            print(f"building a store of {args.fills} fills through the daemon's write calls ...", flush=True)
            print(f"  built in {grow(store, args.fills):.0f} s")
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(store, args.keep / f"history-{args.fills}.db")
        usb = work / "usb"
        usb.mkdir()
        section: dict[str, object] = {"local_dir": str(usb), "keep_daily": 1, "keep_monthly": 0}
        if Path(SSHD).exists():
            sshd = start_sshd(work / "ssh")
            section["sftp"] = sshd.target()
        _, config = backup_config(work, store, section)
        phases: dict[str, list[float]] = {}
        outcome = None
        for run in range(args.runs):
            began = time.perf_counter()
            outcome = backup(config, now=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=run))
            total = time.perf_counter() - began
            if not outcome.ok:
                raise SystemExit(f"backup failed: {outcome.error_text()}")
            for phase, seconds in {**outcome.seconds, "backup total": total}.items():
                phases.setdefault(phase, []).append(seconds)
            fresh = work / f"fresh{run}"
            _, fresh_config = backup_config(fresh, fresh / "state" / "station.db", section)
            began = time.perf_counter()
            restore(fresh_config, str(usb / outcome.name))
            phases.setdefault("restore total", []).append(time.perf_counter() - began)
            shutil.rmtree(fresh)
        assert outcome is not None
        fills = outcome.fills
        print(f"\nstore of {fills} fills, journal {outcome.entries} entries; targets: {', '.join(outcome.delivered)}")
        print(f"  {'phase':<16} {'median s':>9}   runs")
        for phase, values in phases.items():
            print(f"  {phase:<16} {statistics.median(values):>9.2f}   {' '.join(f'{v:.2f}' for v in values)}")
        size = store.stat().st_size
        print(f"\n  store on disk    {size / 1e6:>9.1f} MB  ({size / fills:.0f} bytes/fill)")
        print(f"  backup, raw      {outcome.raw_bytes / 1e6:>9.1f} MB  ({outcome.raw_bytes / fills:.0f} bytes/fill)")
        print(f"  backup, gzipped  {outcome.compressed_bytes / 1e6:>9.1f} MB  ({outcome.compressed_bytes / fills:.0f} bytes/fill,"
              f" {outcome.raw_bytes / outcome.compressed_bytes:.1f}x smaller)")
    finally:
        if sshd is not None:
            sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
