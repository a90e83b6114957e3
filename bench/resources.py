"""Resident memory and CPU of the daemon (`edge run` in its own process) with two lanes, 100,000
cached cylinders and a 50,000-record upload backlog that the city (down) cannot take.

Idle: nothing scanned for --idle-s; the lanes still poll their scales (20/s each) and the
uploader backs off against the refused city. Filling: both lanes fill cylinders back to back.
CPU is the daemon's user+system time over wall time, as % of one core. Targets: < 80 MB RSS,
< 2 % of one core idle.

    .venv/bin/python bench/resources.py [--cylinders 100000] [--backlog 50000] [--idle-s 30]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.config import load_config  # noqa: E402
from edge.daemon.station import open_store  # noqa: E402
from edge.demo.run import BUNDLED_CONFIG, effective_config  # noqa: E402
from edge.demo.simulation import Simulation  # noqa: E402
from edge.lanes.lane import utc_now  # noqa: E402
from edge.store.outbox import Outbox  # noqa: E402
from simulators.dataset import generate  # noqa: E402
from simulators.modbus_server import free_port  # noqa: E402
from tests.city_support import finished_fills  # noqa: E402
from tests.systemd_support import NotifySocket  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def memory_mb(pid: int) -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def cpu_percent(pid: int, seconds: float) -> float:
    c0, t0 = cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_s(pid) - c0) / (time.monotonic() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cylinders", type=int, default=100_000)
    parser.add_argument("--backlog", type=int, default=50_000, help="outbox records (two per finished fill)")
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--fill-s", type=float, default=30.0)
    parser.add_argument("--poll-period", type=float, default=0.1,
                        help="scale poll period (0.1 s, the config default; the demo polls at 0.05)")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    config_path = effective_config(BUNDLED_CONFIG, state)
    config = load_config(config_path)
    sim = Simulation(config).start()
    # The daemon's own copy names no simulators, and its city is down: the backlog stays.
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    del raw["simulators"]
    raw["city"]["base_url"] = f"https://127.0.0.1:{free_port()}"
    raw["city"]["refresh"]["enabled"] = False
    for lane in raw["lanes"]:
        lane["scale"]["poll_period_s"] = args.poll_period
    daemon_config = state / "daemon.yaml"
    daemon_config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")

    store = open_store(config)
    sim.seed_cache(store, utc_now())
    extra = generate(args.cylinders - len(sim.dataset), config.station.owner_unit, config.station.region,
                     utc_now().astimezone(config.tz).date(), seed=99)
    for g in extra:  # distinct ids and codes from the seeded set
        for key in ("id", "product_no", "info_code", "rfid"):
            g.row[key] = "X" + g.row[key]
        g.row["qr_content"] += "X"
        g.row["traceable_code"] = None
    store.upsert_cylinders((g.row for g in extra), utc_now())
    ids = [sim.dataset[i % len(sim.dataset)].row["id"] for i in range(args.backlog // 2)]
    finished_fills(store, ids, start=utc_now() - timedelta(days=2))
    cached = store.query("SELECT count(*) AS n FROM cylinders")[0]["n"]
    backlog = Outbox(store).pending_count()
    store.close()
    print(f"state: {cached} cylinders cached, {backlog} records waiting for the city, 2 lanes polling every {args.poll_period} s")

    notify = NotifySocket()
    env = {**os.environ, "NOTIFY_SOCKET": notify.path}
    daemon = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(daemon_config)],
                              env=env, stderr=subprocess.DEVNULL)
    try:
        notify.wait_for("READY=1", timeout=60)
        time.sleep(5)  # past start-up and the uploader's first attempts
        idle = [cpu_percent(daemon.pid, args.idle_s / 3) for _ in range(3)]
        rss_idle, _ = memory_mb(daemon.pid)
        print(f"idle:    RSS {rss_idle:.1f} MB; CPU {sorted(idle)[1]:.2f} % of one core"
              f" (median of 3 windows of {args.idle_s / 3:.0f} s: {', '.join(f'{c:.2f}' for c in idle)})")

        rng = random.Random(7)
        fillable = [g for g in sim.dataset if g.scenario == "ok" and g.row["model"] == "YSP5"]
        fills = 0
        c0, t0 = cpu_s(daemon.pid), time.monotonic()
        while time.monotonic() - t0 < args.fill_s:
            for lane in ("A", "B"):
                station = sim.station_for(lane)
                if not station.valve_on():
                    cylinder = rng.choice(fillable)
                    sim.scanners[lane].scan(cylinder.row["qr_content"])
                    station.model.place(cylinder.row["tare_kg"])
                    fills += 1
            time.sleep(1.0)
        filling = 100 * (cpu_s(daemon.pid) - c0) / (time.monotonic() - t0)
        rss, peak = memory_mb(daemon.pid)
        print(f"filling: {fills} fills started in {args.fill_s:.0f} s on 2 lanes; CPU {filling:.1f} % of one core;"
              f" RSS {rss:.1f} MB, peak {peak:.1f} MB")
        print(f"targets: RSS < 80 MB ({'met' if peak < 80 else 'MISSED'}), idle CPU < 2 % ({'met' if sorted(idle)[1] < 2 else 'MISSED'})")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(20)
        notify.close()
        sim.stop()


if __name__ == "__main__":
    main()
