"""City sync throughput against the local city simulator over HTTPS (keep-alive, one session).

Prints:
  * drain rate: outbox records delivered per second (filling records and trace nodes, each
    acknowledged and marked sent in the station database, synchronous=FULL), median of --runs;
    once through the Chongqing profile (bearer token) and once through the signed-gateway
    profile (every request signed, SHA-256 over the sorted parameters, checked by the simulator);
  * refresh rate: cylinders per second for a full pull of a --cylinders registry into the cache,
    page by page, one transaction per page; and the time of an incremental pull of 100 changes.

Usage: python bench/sync_rates.py [--records 4000] [--runs 3] [--cylinders 100000] [--page-size 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.store.outbox import Outbox  # noqa: E402
from simulators.city import CitySim, tls_context  # noqa: E402
from simulators.dataset import generate  # noqa: E402
from sync.profile import load_profile  # noqa: E402
from sync.refresh import Refresher  # noqa: E402
from sync.uploader import Uploader  # noqa: E402
from tests.city_support import OWNER, REGION, TZ, client_for, finished_fills, open_station_store  # noqa: E402


def drain_rate(sim: CitySim, ca: Path, records: int, workdir: Path) -> float:
    store = open_station_store(workdir / f"drain-{time.monotonic_ns()}.db")
    cylinders = list(sim.registry)
    finished_fills(store, [cylinders[i % len(cylinders)] for i in range(records // 2)])
    uploader = Uploader(client_for(sim, ca, timeout_s=5.0), Outbox(store))
    began = time.monotonic()
    result = uploader.drain(threading.Event())
    elapsed = time.monotonic() - began
    assert result.sent == records and result.dead == 0, result
    uploader.client.close()
    store.close()
    return records / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cylinders", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=500)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="edge-sync-bench-"))
    context, ca = tls_context(workdir / "ca.pem")
    profile = load_profile("chongqing")

    rows = [g.row for g in generate(args.cylinders, OWNER, REGION, date.today())]
    signed = CitySim(load_profile("signed-gateway"), rows[:2000], tls=context).start()
    began = time.monotonic()
    sim = CitySim(profile, [], tls=context)
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    for row in rows:
        sim.put_cylinder(row, when=yesterday)
    sim.start()
    print(f"city simulator: {len(rows)} cylinders registered in {time.monotonic() - began:.1f} s, {sim.base_url}")
    try:
        # Bearer and signed runs alternate, so both meet the same load on a shared machine.
        rates, signed_rates = [], []
        for _ in range(args.runs):
            rates.append(drain_rate(sim, ca, args.records, workdir))
            signed_rates.append(drain_rate(signed, ca, args.records, workdir))
        print(f"\ndrain ({args.records} records per run, {args.runs} runs, HTTPS keep-alive, one record per call)")
        print(f"  records/s: median {statistics.median(rates):.0f}  (runs: {', '.join(f'{r:.0f}' for r in rates)})")
        print(f"  signed-gateway profile, every request signed: median {statistics.median(signed_rates):.0f}"
              f"  (runs: {', '.join(f'{r:.0f}' for r in signed_rates)});"
              f" ratio signed/bearer {statistics.median(signed_rates) / statistics.median(rates):.2f}")

        store = open_station_store(workdir / "refresh.db")
        client = client_for(sim, ca, timeout_s=30.0)
        full = Refresher(client, store, TZ, page_size=args.page_size).refresh(full=True)
        print(f"\nrefresh, full pull of {full.cylinders} cylinders in {full.pages} pages of {args.page_size}")
        print(f"  {full.seconds:.1f} s, {full.cylinders / full.seconds:.0f} cylinders/s")
        for row in rows[:100]:
            sim.put_cylinder({**row, "status": "停用"})
        incremental = Refresher(client, store, TZ, page_size=args.page_size).refresh()
        print(f"refresh, incremental pull: {incremental.cylinders} changed cylinders in {incremental.seconds * 1000:.0f} ms")
        client.close()
        store.close()
    finally:
        sim.stop()
        signed.stop()


if __name__ == "__main__":
    main()
