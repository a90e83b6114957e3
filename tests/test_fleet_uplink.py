"""The fleet uplink against a real Mosquitto (shipped config: TLS, passwords, ACL): events delivered
at least once and stored once through broker restarts and station outages, retained state, the
last will, and the payloads checked against the shipped JSON schema."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest

from edge.config import Config, load_config
from edge.fleet import FleetService
from edge.station import open_store
from edge.store import Store
from fleet.collector import Collector
from fleet.config import CompanyConfig
from fleet.database import EventDatabase
from simulators.dataset import generate
from sync.fleet.protocol import SCHEMA_FILE
from tests.conftest import write_config
from tests.fleet_support import COMPANY, HQ, Broker, broker, wait_until  # noqa: F401 (the broker fixture)

SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def check_payload(payload: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(payload)



class LightStation:
    """A station's store and fleet service without lanes: events are written the way a lane writes
    them (journal entries in the store), commands are carried out on its store."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = open_store(config)
        now = datetime.now(timezone.utc)
        self.dataset = generate(60, config.station.owner_unit, config.station.region, now.date(), seed=7)
        self.store.upsert_cylinders((g.row for g in self.dataset), now)
        self.store.mark_cache_refreshed(now)
        self.service = FleetService(config, {}, lambda: datetime.now(timezone.utc))
        self.rejected = 0

    def start(self) -> LightStation:
        self.service.start()
        return self

    def stop(self) -> None:
        self.service.stop()

    def close(self) -> None:
        self.store.close()

    def reject_scan(self, lane: str = "A") -> None:
        self.rejected += 1
        data = {"code": f"junk-{self.rejected}", "accepted": False, "reasons": ["INVALID_CODE"], "details": ["not a code"],
                "fill_id": None, "cylinder_id": None}
        self.store.journal(datetime.now(timezone.utc), "scan", data, lane=lane)
        self.service.uplink.wake()


def station_config(tmp_path: Path, broker: Broker, station: str, **fleet: Any) -> Config:
    directory = tmp_path / station
    directory.mkdir()

    def override(raw: dict[str, Any]) -> None:
        raw["fleet"] = {
            "company": COMPANY,
            "station_id": station,
            "broker": json.loads(broker.settings(station).model_dump_json()),
            "health_interval_s": 1.0,
            **fleet,
        }

    return load_config(write_config(directory, override))


def company_config(tmp_path: Path, broker: Broker, **changes: Any) -> CompanyConfig:
    return CompanyConfig(company=COMPANY, broker=broker.settings(HQ), sender="dispatcher-li",
                         database=f"sqlite:///{tmp_path / 'fleet.db'}", **changes)


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
        events = [json.loads(r[0]) for r in collector.db._rows("SELECT payload FROM events")]
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
        expected = {
            (name, row["key"]) for name, s in stations.items() for row in s.store.query("SELECT key FROM fleet_outbox")
        }
        wait_until(lambda: len(collector.db.keys()) >= len(expected), "every event collected", timeout=20)
        time.sleep(0.3)  # any late redelivery would show now
        assert sorted(collector.db.keys()) == sorted(expected)  # each once (the key is the primary key)
        assert {name: s.rejected for name, s in stations.items()} == {
            name: len(collector.db.keys(name)) for name in stations
        }
        assert all(s.rejected > 40 for s in stations.values())
    finally:
        stop.set()
        for station in stations.values():
            station.stop()
            station.close()


def _retained(broker: Broker, topic: str, seconds: float = 1.0) -> dict[str, dict[str, Any]]:
    """What a new subscriber sees on a topic filter at once: the retained messages."""
    from fleet.console import Connection, _drain

    seen: dict[str, dict[str, Any]] = {}
    with Connection(company_config(Path("."), broker), [topic], "probe") as conn:
        _drain(conn.messages, seconds, lambda t, p: seen.__setitem__(t, p))
    return seen


def test_retained_health_and_the_last_will(tmp_path: Path, broker: Broker) -> None:
    station = LightStation(station_config(tmp_path, broker, "st2")).start()
    try:
        topic = f"{COMPANY}/st2/health"
        wait_until(lambda: _retained(broker, topic, 0.3).get(topic, {}).get("online") is True, "retained online health")
        health = _retained(broker, topic)[topic]
        check_payload(health)
        assert health["outbox"] == {"pending": 0, "delivered": 0}
        # The station dies without a goodbye: the broker publishes its last will, retained.
        client = station.service.uplink._client
        client.loop_stop()
        client.socket().close()
        wait_until(lambda: _retained(broker, topic, 0.3).get(topic, {}).get("online") is False, "the last will")
        will = _retained(broker, topic)[topic]
        check_payload(will)
        assert will["detail"] == "connection lost"
    finally:
        station.service._stop.set()
        station.service.store.close()
        station.service.marks.close()
        station.close()
