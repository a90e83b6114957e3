"""Decision and cut-off latency on a simulated station with 100,000 cylinders in the cache.

Prints, over real Modbus TCP and a real pty:
  * scan -> decision: from the scanner read returning the code to the decision (lane clock),
    and from the last byte written into the pty to the verdict committed in the journal;
  * cut-off, per lane (A over Modbus TCP, B over Modbus RTU on a baud-paced pty): from the moment
    the lane decided to cut off (on a sample, or at the predicted crossing between samples) to the
    valve-coil OFF write arriving at the relay board; and each fill's true net error (the
    simulator's true mass, without scale noise, minus the target).

With --backlog N, N finished fills (2N outbox records) wait for the city when the station
starts: the scan figures are taken twice, while the uploader drains that backlog to the city
simulator over HTTPS and again once it is empty, and their ratio printed.

Usage: python bench/latency.py [--cylinders 100000] [--scans 2000] [--fills 20] [--backlog 0]
"""

from __future__ import annotations

import argparse
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.config import load_config  # noqa: E402
from edge.daemon.station import Station, open_store  # noqa: E402
from edge.demo.run import BUNDLED_CONFIG, effective_config  # noqa: E402
from edge.demo.simulation import Simulation  # noqa: E402
from edge.lanes.lane import LaneEvent, utc_now  # noqa: E402
from edge.store.outbox import Outbox  # noqa: E402
from interlock.fill import Abort  # noqa: E402
from simulators.dataset import generate  # noqa: E402
from tests.city_support import finished_fills  # noqa: E402


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
    parser.add_argument("--backlog", type=int, default=0, help="finished fills waiting for the city at start")
    parser.add_argument("--upload-rate", type=float, default=None, help="city.upload.max_rate_per_s (default: the config's)")
    parser.add_argument("--city-in-process", action="store_true",
                        help="serve the city from this process (default: its own process, as a real city is remote)")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    config_path = effective_config(BUNDLED_CONFIG, state)
    if args.upload_rate is not None:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        raw["city"]["upload"]["max_rate_per_s"] = args.upload_rate
        config_path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    city = None if args.city_in_process else city_process(config_path)
    config = load_config(config_path)
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
    print(f"cache: {cached} cylinders loaded in {time.monotonic() - started:.1f} s")
    if args.backlog:
        ids = [sim.dataset[i % len(sim.dataset)].row["id"] for i in range(args.backlog)]
        finished_fills(store, ids, start=utc_now() - timedelta(days=2))
        print(f"outbox: {Outbox(store).pending_count()} records waiting for the city")
    store.close()

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

        def decisions(label: str) -> tuple[list[float], list[float]]:
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
            print(f"\nscan -> decision ({args.scans} scans, 1 in 10 accepted, {cached} cylinders cached{label})")
            report("scanner read -> decision (lane)", lane.decision_latencies_s)
            report("last byte into pty -> verdict durable", to_verdict)
            return list(lane.decision_latencies_s), to_verdict

        assert station.store is not None
        outbox = Outbox(station.store)
        if args.backlog:
            before = outbox.pending_count()
            busy = decisions(", uploader draining the backlog")
            still = outbox.pending_count()
            print(f"  (outbox {before} -> {still} pending during these scans)")
            if still == 0:
                print("  the backlog drained before the scans ended: raise --backlog for a fair comparison")
            while outbox.pending_count():
                time.sleep(0.5)
        idle = decisions(", outbox empty" if args.backlog else "")
        if args.backlog:
            for name, i in (("scanner read -> decision", 0), ("pty byte -> verdict durable", 1)):
                ratio = statistics.median(busy[i]) / statistics.median(idle[i])
                print(f"  {name}: median while draining / idle = {ratio:.2f}")

        # The lane's clock is the wall clock, the simulator's the monotonic one: one offset joins them.
        wall_minus_mono = time.time() - time.monotonic()
        lags: dict[str, list[float]] = {"A": [], "B": []}
        errors: dict[str, list[float]] = {"A": [], "B": []}
        lost: dict[str, list[str]] = {"A": [], "B": []}  # fills that did not complete, and why
        for round_ in range(args.fills):
            filling = []
            for lane_id in ("A", "B"):
                cylinder = fillable[(round_ * 2 + (lane_id == "B")) % len(fillable)]
                sim.scanners[lane_id].scan(cylinder.row["qr_content"])
                verdict = wait(lane_id, "verdict")
                if not verdict["accepted"]:  # a lane held after a trip: the machine was too busy
                    lost[lane_id].append(f"scan refused: {verdict['reasons']}")
                    continue
                sim.station_for(lane_id).model.place(cylinder.row["tare_kg"])
                filling.append(lane_id)
            for lane_id in filling:
                end = wait(lane_id, "fill_end")
                modbus = sim.station_for(lane_id)
                if end["status"] != "complete":
                    lost[lane_id].append(f"{end['status']}: {end.get('cause')}")
                    modbus.model.remove()
                    continue
                off_at = modbus.last_write(modbus.coil, False)
                assert off_at is not None
                fill = fill_row(station, end["fill_id"])
                # From the moment the lane decided to cut off (sample-crossing or predicted) to the
                # valve-coil OFF write arriving at the relay board.
                decided = datetime.fromisoformat(fill["cutoff_at"]).timestamp() - wall_minus_mono
                lags[lane_id].append(off_at - decided)
                # The true mass in the cylinder (the simulator's, without scale noise) against the target.
                errors[lane_id].append(modbus.model.true_gross_kg() - fill["tare_kg"] - fill["target_net_kg"])
                modbus.model.remove()
            time.sleep(0.3)
        for lane_config in config.lanes:
            poll = lane_config.scale.poll_period_s
            bus = config.buses[lane_config.scale.bus]
            how = "Modbus TCP" if bus.transport == "tcp" else f"Modbus RTU at {bus.baudrate} baud on a paced pty"
            print(f"\ncut-off, lane {lane_config.id} over {how} ({len(lags[lane_config.id])} fills, poll period {poll * 1000:.0f} ms)")
            if lost[lane_config.id]:
                print(f"  {len(lost[lane_config.id])} fills did not complete (a loaded machine): {'; '.join(lost[lane_config.id][:3])}")
            if not lags[lane_config.id]:
                continue
            report("lane decided cut-off -> coil OFF written", lags[lane_config.id])
            print("  target: p99 < 5 ms + bus time")
            grams = [e * 1000 for e in errors[lane_config.id]]
            print(f"  true net error (g): median {statistics.median(grams):+.0f}, mean |error| "
                  f"{statistics.mean(abs(g) for g in grams):.0f}, worst {max(grams, key=abs):+.0f}")
    finally:
        station.stop()
        sim.stop()
        if city is not None:
            city.terminate()
            city.wait()


def city_process(config_path: Path) -> subprocess.Popen[str]:
    """Serve the simulated config's city from a child process, and stop this process serving it."""
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    raw["simulators"]["city"] = False
    config_path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    city, station = raw["city"], raw["station"]
    child = subprocess.Popen(
        [sys.executable, "-m", "simulators.city", "--port", city["base_url"].rsplit(":", 1)[1], "--ca-out", city["ca_bundle"],
         "--owner-unit", station["owner_unit"], "--region", station["region"], "--user", f"{city['username']}:{city['password']}",
         "--cylinders", str(raw["simulators"]["dataset_size"])],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parent.parent,
    )
    assert child.stdout is not None
    print(child.stdout.readline().strip())  # "city simulator at ..." once it listens
    return child


def fill_row(station: Station, fill_id: str) -> dict:
    assert station.store is not None
    return station.store.query("SELECT tare_kg, target_net_kg, cutoff_at FROM fills WHERE id = ?", [fill_id])[0]


if __name__ == "__main__":
    main()
