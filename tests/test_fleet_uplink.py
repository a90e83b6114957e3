"""The fleet uplink against a real Mosquitto (shipped config: TLS, passwords, ACL): events delivered
at least once and stored once through broker restarts and station outages, retained state, the
last will, and the payloads checked against the shipped JSON schema."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest

from edge.daemon.fleet import FleetService
from fleet.collector import Collector
from fleet.database import EventDatabase
from tests.fleet_support import (  # noqa: F401 (the broker fixture)
    COMPANY,
    Broker,
    LightStation,
    broker_fixture,
    check_payload,
    company_config,
    retained,
    station_config,
    wait_until,
)

@pytest.fixture
def collector(tmp_path: Path, broker: Broker) -> Iterator[Collector]:
    config = company_config(tmp_path, broker)
    c = Collector(config, EventDatabase(config.database))
    c.start()
    assert c.connected.wait(10)
    yield c
    c.stop()
    c.db.close()


def test_events_reach_the_collector_once(tmp_path: Path, broker: Broker, collector: Collector) -> None:
    station = LightStation(station_config(tmp_path, broker, "st1")).start()
    try:
        for _ in range(20):
            station.reject_scan()
        wait_until(lambda: collector.db.count("scan") == 20, "20 scans collected")
        wait_until(lambda: station.service.outbox.counts()["pending"] == 0, "every event marked delivered")
        events = [json.loads(r[0]) for r in collector.db.query("SELECT payload FROM events")]
        for event in events:
            check_payload(event)
    finally:
        station.stop()
        station.close()


def test_three_stations_through_a_broker_restart_and_an_outage(tmp_path: Path, broker: Broker, collector: Collector) -> None:
    """Stations write events all along; the broker restarts, st3 is away for a while (and comes
    back as a new process on the same database). The collector ends with every event exactly once."""
    import threading

    stations = {name: LightStation(station_config(tmp_path, broker, name)).start() for name in ("st1", "st2", "st3")}
    stop = threading.Event()

    def produce(station: LightStation) -> None:
        while not stop.wait(0.02):
            station.reject_scan()

    producers = [threading.Thread(target=produce, args=(s,)) for s in stations.values()]
    try:
        for thread in producers:
            thread.start()
        time.sleep(0.5)
        stations["st3"].stop()  # st3 loses its uplink; its lanes go on writing events
        time.sleep(0.5)
        broker.restart(down_s=0.7)
        time.sleep(0.8)
        stations["st3"].service = FleetService(stations["st3"].config, {}, lambda: datetime.now(timezone.utc))
        stations["st3"].start()
        time.sleep(0.5)
        stop.set()
        for thread in producers:
            thread.join()
        for station in stations.values():
            wait_until(lambda s=station: s.service.outbox.counts()["pending"] == 0, "every event delivered", timeout=20)
        # The stations keep no event the broker acknowledged: each scan is known by its code.
        assert all(s.store.query("SELECT count(*) AS n FROM fleet_outbox")[0]["n"] == 0 for s in stations.values())
        expected = sorted((name, f"junk-{n}") for name, s in stations.items() for n in range(1, s.rejected + 1))
        wait_until(lambda: len(collector.db.keys()) >= len(expected), "every event collected", timeout=20)
        time.sleep(0.3)  # any late redelivery would show now
        collected = sorted((station, json.loads(payload)["code"])
                           for station, payload in collector.db.query("SELECT station, payload FROM events"))
        assert collected == expected  # each once
        assert all(s.rejected > 40 for s in stations.values())
    finally:
        stop.set()
        for station in stations.values():
            station.stop()
            station.close()


def test_a_single_collector_away_over_a_broker_restart_misses_nothing(tmp_path: Path, broker: Broker) -> None:
    """The default collector's subscription is its session's: the broker restores it from its
    persistence after a restart, so what stations publish while the collector is still away waits
    for it. (A shared subscription is not restored by Mosquitto 2.0: the README says so.)"""
    config = company_config(tmp_path, broker)
    first = Collector(config, EventDatabase(config.database))
    first.start()
    assert first.connected.wait(10)
    first.stop()
    broker.restart(down_s=0.3)
    station = LightStation(station_config(tmp_path, broker, "st1")).start()
    back = Collector(config, first.db)
    try:
        for _ in range(10):
            station.reject_scan()
        wait_until(lambda: station.service.outbox.counts()["pending"] == 0, "every event delivered to the broker")
        back.start()
        assert back.connected.wait(10)
        wait_until(lambda: back.db.count("scan") == 10, "the 10 scans published while the collector was away")
    finally:
        back.stop()
        station.stop()
        station.close()
        back.db.close()


def test_retained_health_and_the_last_will(tmp_path: Path, broker: Broker) -> None:
    station = LightStation(station_config(tmp_path, broker, "st2")).start()
    try:
        topic = f"{COMPANY}/st2/health"
        wait_until(lambda: retained(broker, topic, 0.3).get(topic, {}).get("online") is True, "retained online health")
        health = retained(broker, topic)[topic]
        check_payload(health)
        assert health["outbox"] == {"pending": 0}
        # The station dies without a goodbye: the broker publishes its last will, retained.
        client = station.service.uplink._client
        client.loop_stop()
        client.socket().close()
        wait_until(lambda: retained(broker, topic, 0.3).get(topic, {}).get("online") is False, "the last will")
        will = retained(broker, topic)[topic]
        check_payload(will)
        assert will["detail"] == "connection lost"
    finally:
        station.service._stop.set()
        station.service.store.close()
        station.service.marks.close()
        station.close()
