"""Collectors scale out on the broker: two `edge fleet collect` processes share the stations'
events through an MQTT 5 shared subscription into one PostgreSQL (real Mosquitto, real
PostgreSQL). One is killed mid-stream (SIGKILL: no goodbye, batches in flight) and restarted;
every event is stored, none twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from fleet.database import EventDatabase
from sync.fleet.protocol import encode
from tests.fleet_support import (  # noqa: F401 (the broker and postgres fixtures)
    COMPANY,
    HQ,
    Broker,
    broker_fixture,
    fresh_database,
    needs_mosquitto,
    postgres_url,
    wait_until,
)
from tests.test_fleet_collector import StationClient, good_fill, good_scan


class CollectorProcess:
    """`edge fleet collect --id NAME` in its own process, its output kept."""

    def __init__(self, company: Path, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "fleet", "collect", "--company", str(company), "--id", name, "--share"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_until(lambda: any("collector connected" in line for line in self.lines), f"collector {name} connected",
                   timeout=20)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)
        self._reader.join(timeout=5)
        return "".join(self.lines)


def stored_by(output: str) -> int:
    """The events a collector says it stored, from its last line."""
    line = [line for line in output.splitlines() if "stopped:" in line][-1]
    return int(line.split("stopped: ")[1].split(" events stored")[0])


@pytest.mark.slow
def test_two_collectors_one_killed_and_restarted_lose_nothing_and_store_nothing_twice(
    tmp_path: Path, broker: Broker, postgres_url: str
) -> None:
    url = fresh_database(postgres_url)
    company = tmp_path / "company.yaml"
    company.write_text(yaml.safe_dump({"company": COMPANY, "sender": "dispatcher-li", "database": url,
                                       "broker": json.loads(broker.settings(HQ).model_dump_json())}), encoding="utf-8")
    first, second = CollectorProcess(company, "c1"), CollectorProcess(company, "c2")
    stations = {name: StationClient(broker, name) for name in ("st1", "st2", "st3")}
    per_station = 300
    db = EventDatabase(url)
    try:
        def publish(start: int, stop: int) -> None:
            for i in range(start, stop):
                for name, client in stations.items():
                    event = good_fill(f"f{i}", station=name) if i % 2 else good_scan(f"s{i}", station=name)
                    client.publish(f"{COMPANY}/{name}/event/{event['type']}", encode(event))

        publish(0, 100)
        wait_until(lambda: db.count() >= 150, "the first events stored", timeout=20)
        first.kill()  # mid-stream: whatever it had received and not acknowledged is redelivered
        publish(100, 200)
        restarted = CollectorProcess(company, "c1")
        publish(200, per_station)
        total = per_station * len(stations)
        wait_until(lambda: db.count() == total, f"all {total} events stored", timeout=60)
        outputs = {"c1": restarted.stop(), "c2": second.stop()}
        keys = db.keys()
        assert len(keys) == len(set(keys)) == total  # every event once: the unique key saw to it
        assert sorted(keys) == sorted((name, f"{'f' if i % 2 else 's'}{i}") for name in stations for i in range(per_station))
        # Both collectors did their share (the broker spread the events over them).
        assert stored_by(outputs["c1"]) > 0 and stored_by(outputs["c2"]) > 0, outputs
        assert db.quarantine_count() == 0
    finally:
        for client in stations.values():
            client.close()
        for process in (first, second):
            if process.proc.poll() is None:
                process.stop()
        db.close()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of its own: the other test's collectors' sessions would take their shares here too."""
    needs_mosquitto()
    (tmp_path / "mosquitto").mkdir()
    b = Broker(tmp_path / "mosquitto").start()
    yield b
    b.stop()


@pytest.mark.slow
def test_a_retired_collector_leaves_its_share_to_the_others(tmp_path: Path, own_broker: Broker) -> None:
    """A collector that is stopped keeps receiving its share in its session (nothing is lost while
    it restarts); one retired with --leave stores what its session held and takes no more."""
    broker = own_broker
    company = tmp_path / "company.yaml"
    company.write_text(yaml.safe_dump({"company": COMPANY, "sender": "dispatcher-li", "database": f"sqlite:///{tmp_path / 'fleet.db'}",
                                       "broker": json.loads(broker.settings(HQ).model_dump_json())}), encoding="utf-8")
    stays, retired = CollectorProcess(company, "stays"), CollectorProcess(company, "retired")
    station = StationClient(broker, "st1")
    db = EventDatabase(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        retired.stop()  # stopped, not retired: its session still takes its share
        for i in range(40):
            station.publish(f"{COMPANY}/st1/event/scan", encode(good_scan(f"a{i}")))
        wait_until(lambda: db.count() >= 10, "the remaining collector storing")
        assert db.count() < 40  # part of them wait in the stopped collector's session
        leaving = subprocess.run([sys.executable, "-m", "edge.cli", "fleet", "collect", "--company", str(company), "--id", "retired", "--share",
                                  "--leave"], capture_output=True, text=True, timeout=60)
        assert leaving.returncode == 0, leaving.stdout + leaving.stderr
        assert "left the group" in leaving.stdout
        wait_until(lambda: db.count() == 40, "all 40 stored once the retired collector left")
        for i in range(40):
            station.publish(f"{COMPANY}/st1/event/scan", encode(good_scan(f"b{i}")))
        wait_until(lambda: db.count() == 80, "every later event taken by the collector that stays")
    finally:
        station.close()
        stays.stop()
        db.close()
