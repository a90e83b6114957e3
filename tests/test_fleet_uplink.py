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
from tests.fleet_support import COMPANY, HQ, Broker, needs_mosquitto, wait_until

SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def check_payload(payload: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(payload)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    needs_mosquitto()
    b = Broker(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()


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
