"""Live lookup on a cache miss, on a simulated station with the city in its own process over HTTPS.

Each scanned code is one the cache does not know (its QR/info-code identifiers are taken out of
the cache, as after a re-tag at the city) and the city does: the lane asks the city, updates the
cache and decides. Prints, per scan:
  * scanner read -> decision (lane), which includes the lookup;
  * the lookup's own round trip (worker: query sent -> record in the cache);
and, for comparison, the same lane's decisions on cached codes in the same run.

Usage: python bench/lookup.py [--scans 300]
"""

from __future__ import annotations

import argparse
import queue
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.config import load_config  # noqa: E402
from edge.daemon.station import Station, open_store  # noqa: E402
from edge.demo.run import BUNDLED_CONFIG, effective_config  # noqa: E402
from edge.demo.simulation import Simulation  # noqa: E402
from edge.lanes.lane import LaneEvent, utc_now  # noqa: E402
from edge.lanes.lookup import Source  # noqa: E402
from interlock.fill import Abort  # noqa: E402
from latency import city_process, report  # noqa: E402
from sync.refresh import LAST_FULL  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scans", type=int, default=300, help="cache-miss scans (at most the dataset's 400)")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="edge-bench-lookup-"))
    config_path = effective_config(BUNDLED_CONFIG, state)
    city = city_process(config_path)
    config = load_config(config_path)
    sim = Simulation(config).start()
    store = open_store(config)
    sim.seed_cache(store, utc_now())
    chosen = [g for g in sim.dataset if g.scenario in ("ok", "INSPECTION_DUE_SOON")][: args.scans]
    chosen += [g for g in sim.dataset if g not in chosen][: max(0, args.scans - len(chosen))]
    store.close()

    station = Station(config)
    station.start()
    events: queue.Queue[LaneEvent] = queue.Queue()
    lane = station.lanes["A"]
    lane.listeners.append(events.put)

    def scan(code: str) -> dict:
        sim.scanners["A"].scan(code)
        while True:
            event = events.get(timeout=20)
            if event.kind == "verdict":
                verdict = event.data
                break
        if verdict["accepted"]:
            lane.submit(Abort())
            while events.get(timeout=20).kind != "fill_end":
                pass
        return verdict

    try:
        assert station.lookup is not None and station.store is not None
        while station.store.get_meta(LAST_FULL) is None:  # the daemon's first (full) pull
            time.sleep(0.1)
        with station.store.transaction() as conn:
            conn.executemany("DELETE FROM identifiers WHERE cylinder_id = ? AND kind IN ('info_code', 'qr_url')",
                             [(g.row["id"],) for g in chosen])
        sources: dict[str, int] = {}
        lane.decision_latencies_s.clear()
        for g in chosen:
            verdict = scan(g.row["qr_content"])
            sources[verdict["source"]] = sources.get(verdict["source"], 0) + 1
        missed = list(lane.decision_latencies_s)
        print(f"\ncache-miss scans answered by the city ({len(chosen)} scans; sources {sources})")
        report("scanner read -> decision (lane, with lookup)", missed)
        report("lookup round trip (worker)", station.lookup.latencies_s)
        print(f"  deadline {config.city.lookup.deadline_s if config.city else '?'} s;"
              f" decided on the city's record: {sources.get(Source.CITY, 0)} of {len(chosen)}")
        lane.decision_latencies_s.clear()
        for g in chosen:  # the same codes, now in the cache
            scan(g.row["qr_content"])
        report("scanner read -> decision (lane, now cached)", list(lane.decision_latencies_s))
    finally:
        station.stop()
        sim.stop()
        city.terminate()
        city.wait()


if __name__ == "__main__":
    main()
