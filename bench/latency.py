"""Decision and cut-off latency on a simulated station with 100,000 cylinders in the cache.

Prints, over real Modbus TCP and a real pty:
  * scan -> decision: from the scanner read returning the code to the decision (lane clock),
    and from the last byte written into the pty to the verdict committed in the journal;
  * cut-off, per lane (A over Modbus TCP, B over Modbus RTU on a baud-paced pty): from the scale
    serving the first sample at or above the cut-off weight to the valve-coil OFF write arriving
    at the relay board, and from the interpolated moment the true weight crossed cut-off to that
    write (this one includes waiting for the next poll).

Usage: python bench/latency.py [--cylinders 100000] [--scans 2000] [--fills 20]
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.config import load_config  # noqa: E402
from edge.demo import BUNDLED_CONFIG, effective_config  # noqa: E402
from edge.lane import LaneEvent, utc_now  # noqa: E402
from edge.simulation import Simulation  # noqa: E402
from edge.station import Station, open_store  # noqa: E402
from interlock.fill import Abort  # noqa: E402
from simulators.dataset import generate  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def report(name: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(f"  {name:<46} n={len(ms):<5} median {statistics.median(ms):7.2f} ms   p99 {pct(ms, 99):7.2f} ms   max {max(ms):7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cylinders", type=int, default=100_000)
    parser.add_argument("--scans", type=int, default=2000)
    parser.add_argument("--fills", type=int, default=20, help="fills per lane for the cut-off figures")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    config = load_config(effective_config(BUNDLED_CONFIG, state))
    sim = Simulation(config).start()
    store = open_store(config)
    started = time.monotonic()
    sim.seed_cache(store, utc_now())  # the demo's 400, with every scenario
    extra = generate(args.cylinders - len(sim.dataset), config.station.owner_unit, config.station.region,
                     utc_now().astimezone(config.tz).date(), seed=99)
    for g in extra:  # distinct ids and codes from the seeded set
        for key in ("id", "product_no", "info_code", "qr_content", "traceable_code", "rfid"):
            g.row[key] = "X" + g.row[key] if key != "qr_content" else g.row[key] + "X"
        g.row["traceable_code"] = None
    store.upsert_cylinders((g.row for g in extra), utc_now())
    cached = store.query("SELECT count(*) AS n FROM cylinders")[0]["n"]
    store.close()
    print(f"cache: {cached} cylinders loaded in {time.monotonic() - started:.1f} s")

    station = Station(config)
    station.start()
    events: dict[str, queue.Queue[LaneEvent]] = {lane: queue.Queue() for lane in station.lanes}
    for lane_id, lane in station.lanes.items():
        lane.listeners.append(events[lane_id].put)

    def wait(lane: str, kind: str) -> dict:
        while True:
            event = events[lane].get(timeout=20)
            if event.kind == kind:
                return event.data

    try:
        rejected = [g for g in sim.dataset if g.scenario not in ("ok", "INSPECTION_DUE_SOON")]
        fillable = [g for g in sim.dataset if g.scenario == "ok" and g.row["model"] == "YSP5"]
        codes = [rejected[i % len(rejected)].row["qr_content"] for i in range(args.scans)]
        lane = station.lanes["A"]
        lane.decision_latencies_s.clear()
        to_verdict: list[float] = []
        for index, code in enumerate(codes):
            accept = index % 10 == 9
            if accept:
                code = fillable[index % len(fillable)].row["qr_content"]
            t0 = time.monotonic()
            sim.scanners["A"].scan(code)
            verdict = wait("A", "verdict")
            to_verdict.append(time.monotonic() - t0)
            if accept:
                assert verdict["accepted"], verdict
                lane.submit(Abort())
                wait("A", "fill_end")
        print(f"\nscan -> decision ({args.scans} scans, 1 in 10 accepted, {cached} cylinders cached)")
        report("scanner read -> decision (lane)", lane.decision_latencies_s)
        report("last byte into pty -> verdict durable", to_verdict)

        lags: dict[str, list[float]] = {"A": [], "B": []}
        crossing_lags: dict[str, list[float]] = {"A": [], "B": []}
        for round_ in range(args.fills):
            for lane_id in ("A", "B"):
                cylinder = fillable[(round_ * 2 + (lane_id == "B")) % len(fillable)]
                sim.scanners[lane_id].scan(cylinder.row["qr_content"])
                assert wait(lane_id, "verdict")["accepted"]
                sim.station_for(lane_id).model.place(cylinder.row["tare_kg"])
            for lane_id in ("A", "B"):
                end = wait(lane_id, "fill_end")
                assert end["status"] == "complete", end
                modbus = sim.station_for(lane_id)
                cut = station.lanes[lane_id].config.fill.preact_kg
                off_at = modbus.last_write(modbus.coil, False)
                assert off_at is not None
                threshold = cylinder_threshold(station, end["fill_id"], cut)
                samples = [s for s in modbus.samples if s[0] <= off_at]
                # The last upward crossing before the OFF write: earlier ones belong to earlier fills.
                first_above = next(
                    i for i in range(len(samples) - 1, 0, -1) if samples[i][1] >= threshold > samples[i - 1][1]
                )
                (t_prev, w_prev), (t_hit, w_hit) = samples[first_above - 1], samples[first_above]
                crossing = t_prev + (threshold - w_prev) / (w_hit - w_prev) * (t_hit - t_prev)
                lags[lane_id].append(off_at - t_hit)
                crossing_lags[lane_id].append(off_at - crossing)
                modbus.model.remove()
            time.sleep(0.3)
        for lane_config in config.lanes:
            poll = lane_config.scale.poll_period_s
            bus = config.buses[lane_config.scale.bus]
            how = "Modbus TCP" if bus.transport == "tcp" else f"Modbus RTU at {bus.baudrate} baud on a paced pty"
            print(f"\ncut-off, lane {lane_config.id} over {how} ({len(lags[lane_config.id])} fills, poll period {poll * 1000:.0f} ms)")
            report("sample >= cut-off served -> coil OFF written", lags[lane_config.id])
            report("true weight crossed cut-off -> coil OFF written", crossing_lags[lane_config.id])
            print(f"  target: p99 < poll period + 5 ms + bus time = {poll * 1000 + 5:.0f} ms + bus time")
    finally:
        station.stop()
        sim.stop()


def cylinder_threshold(station: Station, fill_id: str, preact_kg: float) -> float:
    assert station.store is not None
    row = station.store.query("SELECT tare_kg, target_net_kg FROM fills WHERE id = ?", [fill_id])[0]
    return row["tare_kg"] + row["target_net_kg"] - preact_kg


if __name__ == "__main__":
    main()
