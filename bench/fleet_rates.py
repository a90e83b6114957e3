"""The company fleet through a real Mosquitto (the shipped config: TLS, passwords, ACL, client ids
tied to accounts; its own process on free ports):

1. events/s into PostgreSQL (a throwaway cluster, fsync on) with one `edge fleet collect` process,
   then with two sharing the events through a shared subscription, and the ratio: four stations'
   backlogs of rejected-scan events in their fleet outboxes, from uplink start until the database
   holds the last one;
2. the time from `edge fleet block` (the console's send_command) to refusal at every one of
   --stations stations on the one broker: per block and station, until the station's eligibility
   rules say BLOCKED_LOCALLY; median and p99, from the command's invocation (includes the
   console's TLS connect) and from its timestamp;
3. the daemon's (`edge run`, two simulated lanes) memory and idle CPU without and with the uplink.

    .venv/bin/python bench/fleet_rates.py [--events 8000] [--stations 10] [--blocks 30] [--idle-s 20]
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
from fleet.config import CompanyConfig  # noqa: E402
from fleet.console import send_command  # noqa: E402
from fleet.database import EventDatabase  # noqa: E402
from interlock import codes  # noqa: E402
from interlock.reasons import Reason  # noqa: E402
from interlock.rules import Policy, evaluate  # noqa: E402
from resources import cpu_percent, memory_mb  # noqa: E402
from tests.fleet_support import COMPANY, HQ, Broker, LightStation, fresh_database, postgres_server  # noqa: E402
from tests.systemd_support import NotifySocket  # noqa: E402

STATION_NAMES = tuple(f"st{i}" for i in range(1, 101))


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


def company(state: Path, broker: Broker, database: str | None = None) -> CompanyConfig:
    return CompanyConfig(company=COMPANY, broker=broker.settings(HQ), sender="bench",
                         database=database or f"sqlite:///{state / 'fleet.db'}")


def events_into_postgresql(state: Path, broker: Broker, server: str, count: int) -> None:
    """Four stations' backlogs drained into PostgreSQL by one collector process, then by two."""
    rates: dict[int, float] = {}
    for collectors in (1, 2):
        directory = state / f"collectors-{collectors}"
        directory.mkdir(parents=True)
        url = fresh_database(server)
        config_file = directory / "company.yaml"
        config_file.write_text(yaml.safe_dump(json.loads(company(directory, broker, url).model_dump_json())), encoding="utf-8")
        processes = [subprocess.Popen([sys.executable, "-m", "edge.cli", "fleet", "collect", "--company", str(config_file),
                                       # the same ids in both rounds: a session left behind would keep its share
                                       "--id", f"bench-{i}", "--share"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for i in range(collectors)]
        db = EventDatabase(url)
        stations = []
        try:
            time.sleep(2.0)  # the collectors connect and subscribe
            now = datetime.now(timezone.utc)
            for name in STATION_NAMES[:4]:
                station = LightStation(load_config(station_config(directory, broker, name)))
                for i in range(count // 4):
                    station.store.journal(now, "scan", {"code": f"x{i}", "accepted": False, "reasons": ["INVALID_CODE"]}, lane="A")
                stations.append(station)
            total = count // 4 * 4
            t0 = time.monotonic()
            for station in stations:
                station.start()
            while db.count() < total:
                time.sleep(0.05)
            rates[collectors] = total / (time.monotonic() - t0)
            print(f"events into PostgreSQL, {collectors} collector{'s' if collectors > 1 else ''}: {total} events from 4 stations"
                  f" in {total / rates[collectors]:.2f} s: {rates[collectors]:.0f} events/s")
        finally:
            for station in stations:
                station.stop()
                station.close()
            for process in processes:
                process.send_signal(signal.SIGTERM)
                process.wait(20)
            db.close()
    print(f"two collectors / one: {rates[2] / rates[1]:.2f}x")


def refused(station: LightStation, code: str) -> bool:
    parsed = codes.parse(code.encode(), codes.Source.OPTICAL, station.service.patterns)
    assert isinstance(parsed, codes.Identifier)
    policy = Policy(owner_unit=station.config.station.owner_unit, medium="G13", tz=station.config.tz)
    decision = evaluate(station.store.find_cylinder(parsed), policy, datetime.now(timezone.utc), 0.0, parsed)
    return Reason.BLOCKED_LOCALLY in decision.reasons


def block_latency(state: Path, broker: Broker, blocks: int, count: int) -> None:
    stations = [LightStation(load_config(station_config(state, broker, name))).start() for name in STATION_NAMES[:count]]
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

    print(f"block -> refused at all {count} stations on one broker ({blocks} blocks, {len(from_call)} refusals):")
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
    parser.add_argument("--events", type=int, default=8000)
    parser.add_argument("--stations", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--idle-s", type=float, default=20.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # each command's journal line would drown the figures
    state = Path(tempfile.mkdtemp(prefix="edge-fleet-bench-"))
    broker = Broker(state, stations=STATION_NAMES[:max(args.stations, 4)]).start()
    try:
        with postgres_server(fsync=True) as server:
            events_into_postgresql(state / "events", broker, server, args.events)
        block_latency(state / "blocks", broker, args.blocks, args.stations)
        daemon_resources(state / "daemon", broker, args.idle_s)
    finally:
        broker.stop()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
