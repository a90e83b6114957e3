"""The company fleet through a real Mosquitto (TLS, passwords, ACL; its own process on a free port):

1. events/s from one station to the collector at QoS 1: a backlog of rejected-scan events in the
   station's fleet outbox, from uplink start until the collector has stored the last one;
2. the time from `edge fleet block` (the console's send_command) to refusal at three stations:
   per block and station, until the station's eligibility rules say BLOCKED_LOCALLY; median and
   p99, from the command's invocation (includes the console's TLS connect) and from its timestamp;
3. the daemon's (`edge run`, two simulated lanes) memory and idle CPU without and with the uplink.

    .venv/bin/python bench/fleet_rates.py [--events 5000] [--blocks 40] [--idle-s 20]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edge.config import load_config  # noqa: E402
from edge.demo.run import BUNDLED_CONFIG, effective_config  # noqa: E402
from edge.demo.simulation import Simulation  # noqa: E402
from fleet.collector import Collector  # noqa: E402
from fleet.config import CompanyConfig  # noqa: E402
from fleet.console import send_command  # noqa: E402
from fleet.database import EventDatabase  # noqa: E402
from interlock import codes  # noqa: E402
from interlock.reasons import Reason  # noqa: E402
from interlock.rules import Policy, evaluate  # noqa: E402
from resources import cpu_percent, memory_mb  # noqa: E402
from tests.fleet_support import COMPANY, HQ, Broker  # noqa: E402
from tests.systemd_support import NotifySocket  # noqa: E402
from tests.fleet_support import LightStation  # noqa: E402


def station_config(state: Path, broker: Broker, station: str, with_sim: bool = True) -> Path:
    directory = state / station
    directory.mkdir(parents=True, exist_ok=True)
    path = effective_config(BUNDLED_CONFIG, directory)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw.pop("city", None)
    raw["simulators"]["city"] = False
    raw["fleet"] = {"company": COMPANY, "station_id": station,
                    "broker": json.loads(broker.settings(station).model_dump_json())}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def company(state: Path, broker: Broker) -> CompanyConfig:
    return CompanyConfig(company=COMPANY, broker=broker.settings(HQ), sender="bench", database=f"sqlite:///{state / 'fleet.db'}")


def events_per_second(state: Path, broker: Broker, count: int) -> None:
    config = load_config(station_config(state, broker, "st1"))
    station = LightStation(config)
    now = datetime.now(timezone.utc)
    for i in range(count):
        station.store.journal(now, "scan", {"code": f"x{i}", "accepted": False, "reasons": ["INVALID_CODE"]}, lane="A")
    collector = Collector(company(state, broker), EventDatabase(f"sqlite:///{state / 'fleet.db'}"))
    collector.start()
    collector.connected.wait(10)
    time.sleep(0.5)
    t0 = time.monotonic()
    station.start()
    while collector.stored < count:
        time.sleep(0.01)
    elapsed = time.monotonic() - t0
    while station.service.outbox.counts()["pending"]:
        time.sleep(0.01)
    acked = time.monotonic() - t0
    print(f"events: {count} from one station to the collector (QoS 1, TLS) in {elapsed:.2f} s:"
          f" {count / elapsed:.0f} events/s stored; all PUBACKed and marked delivered after {acked:.2f} s")
    station.stop()
    station.close()
    collector.stop()
    collector.db.close()


def refused(station: LightStation, code: str) -> bool:
    parsed = codes.parse(code.encode(), codes.Source.OPTICAL, station.service.patterns)
    assert isinstance(parsed, codes.Identifier)
    policy = Policy(owner_unit=station.config.station.owner_unit, medium="G13", tz=station.config.tz)
    decision = evaluate(station.store.find_cylinder(parsed), policy, datetime.now(timezone.utc), 0.0, parsed)
    return Reason.BLOCKED_LOCALLY in decision.reasons


def block_latency(state: Path, broker: Broker, blocks: int) -> None:
    stations = [LightStation(load_config(station_config(state, broker, name))).start() for name in ("st1", "st2", "st3")]
    for s in stations:
        s.service.uplink.wait_connected(10)
    rows = [g.row for g in stations[0].dataset if g.scenario == "ok"][:blocks]
    from_call: list[float] = []
    from_ts: list[float] = []
    console = company(state, broker)
    for row in rows:
        result: dict[str, Any] = {}
        start = time.monotonic()
        sender = threading.Thread(target=lambda r=row: result.update(o=send_command(console, "block", identifier=r["id"], reason="bench")))
        sender.start()
        pending = set(range(len(stations)))
        seen: dict[int, tuple[float, float]] = {}
        while pending:
            for i in list(pending):
                if refused(stations[i], row["qr_content"]):
                    seen[i] = (time.monotonic() - start, time.time())
                    pending.discard(i)
            time.sleep(0.001)
        sender.join()
        sent = result["o"].command.ts.timestamp()
        for after_call, wall in seen.values():
            from_call.append(after_call)
            from_ts.append(wall - sent)
    for s in stations:
        s.stop()
        s.close()

    def summary(values: list[float]) -> str:
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
        return f"median {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"

    print(f"block -> refused at 3 stations ({blocks} blocks, {len(from_call)} refusals):")
    print(f"  from invoking the console: {summary(from_call)} (includes its TLS connect and {0.5:.1f} s wait for retained health)")
    print(f"  from the command's timestamp (published): {summary(from_ts)}")


def daemon_resources(state: Path, broker: Broker, idle_s: float) -> None:
    results: dict[str, tuple[float, float]] = {}
    for label, with_fleet in (("without uplink", False), ("with uplink", True)):
        directory = state / f"daemon-{int(with_fleet)}"
        path = station_config(directory, broker, "st1")
        config = load_config(path)
        sim = Simulation(config).start()
        sim.seed_store()
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        del raw["simulators"]
        if not with_fleet:
            del raw["fleet"]
        daemon_path = directory / "daemon.yaml"
        daemon_path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
        notify = NotifySocket()
        daemon = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(daemon_path)],
                                  env={**os.environ, "NOTIFY_SOCKET": notify.path}, stderr=subprocess.DEVNULL)
        try:
            notify.wait_for("READY=1", timeout=60)
            time.sleep(3)
            cpu = sorted(cpu_percent(daemon.pid, idle_s / 3) for _ in range(3))[1]
            rss, _ = memory_mb(daemon.pid)
            results[label] = (rss, cpu)
            print(f"daemon {label}: RSS {rss:.1f} MB, idle CPU {cpu:.2f} % of one core (median of 3 windows)")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(20)
            notify.close()
            sim.stop()
    (rss0, cpu0), (rss1, cpu1) = results["without uplink"], results["with uplink"]
    print(f"the uplink adds {rss1 - rss0:.1f} MB RSS and {cpu1 - cpu0:+.2f} % of one core idle")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--idle-s", type=float, default=20.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # each command's journal line would drown the figures
    state = Path(tempfile.mkdtemp(prefix="edge-fleet-bench-"))
    broker = Broker(state).start()
    try:
        events_per_second(state / "events", broker, args.events)
        block_latency(state / "blocks", broker, args.blocks)
        daemon_resources(state / "daemon", broker, args.idle_s)
    finally:
        broker.stop()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
