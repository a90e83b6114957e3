"""One bad event never stops the collector: messages of every broken kind, interleaved with good
ones, published through the real Mosquitto on a station's own topics (as a buggy or hostile station
can), into SQLite and into a real PostgreSQL. Every good event is stored exactly once, every bad
one is in the quarantine table byte for byte with its reason, and collection goes on across a
restart."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from fleet.collector import Collector
from fleet.database import EventDatabase
from sync.fleet import mqtt
from sync.fleet.protocol import encode, envelope
from sync.fleet.validation import PayloadError, load
from tests.fleet_support import (  # noqa: F401 (the broker and postgres fixtures)
    COMPANY,
    Broker,
    broker_fixture,
    check_payload,
    company_config,
    fresh_database,
    postgres_url,
    wait_until,
)

TS = datetime(2026, 5, 2, 3, 0, tzinfo=timezone.utc)


def good_fill(key: str, station: str = "st1") -> dict[str, Any]:
    event = envelope("fill", COMPANY, station, TS, key=key, fill_id=key, day="2026-05-02", valve_opened=True,
                     tripped=False, overfilled=False, lane="A", cylinder_id=f"c-{key}", status="complete", outcome="ok",
                     net_kg=14.8)
    check_payload(event)
    return event


def good_scan(key: str, station: str = "st1") -> dict[str, Any]:
    event = envelope("scan", COMPANY, station, TS, key=key, lane="A", day="2026-05-02", code="junk", cylinder_id=None,
                     reasons=["INVALID_CODE"], details=["not a code"])
    check_payload(event)
    return event


def without(event: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != field}


FILL, SCAN = f"{COMPANY}/st1/event/fill", f"{COMPANY}/st1/event/scan"


def broken(postgres: bool) -> list[tuple[str, bytes, str]]:
    """(topic, raw payload, the start of the reason) for every kind of message that cannot be stored."""
    kinds = [
        (FILL, encode(without(good_fill("b1"), "day")), "missing field 'day'"),
        (FILL, encode({**good_fill("b2"), "net_kg": "heavy"}), "net_kg: must be number or null, not string"),
        (FILL, encode({**good_fill("b3"), "force": True}), "unknown field 'force'"),
        (FILL, encode({**good_fill("b4"), "valve_opened": "yes"}), "valve_opened: must be boolean"),
        (SCAN, encode({**good_scan("b5"), "reasons": "INVALID_CODE"}), "reasons: must be array"),
        (SCAN, encode({**good_scan("b6"), "code": "x" * 201}), "code: longer than 200"),
        (FILL, encode({**good_fill("b7"), "ts": "yesterday"}), "ts: 'yesterday' does not match"),
        (FILL, encode({**good_fill("b8"), "v": 2}), "schema version 2 not understood"),
        (FILL, encode(good_scan("b9")), "a 'scan' payload on a fill topic"),
        (FILL, encode(good_fill("b10", station="st2")), "says 'acme'/'st2', came on acme/st1"),
        (FILL, encode({**good_fill("b11"), "company": "other"}), "says 'other'/'st1', came on acme/st1"),
        (f"{COMPANY}/st1/event/witness", encode({**good_fill("b12"), "type": "witness"}), "unknown type 'witness'"),
        (FILL, b'{"v": 1, "type": "fill"', "not JSON"),
        (FILL, b"\xff\xfe{}", "not UTF-8"),
        (FILL, b"", "not JSON"),
        (FILL, b"[1, 2]", "a JSON array, not an object"),
        (FILL, b"null", "a JSON null, not an object"),
        (FILL, encode(good_fill("b13"))[:-1] + b',"net_kg":1}', "not JSON: a field appears twice"),
        (FILL, encode(good_fill("b14")).replace(b'"net_kg":14.8', b'"net_kg":1e400'), "not JSON: 1e400 is out of range"),
        (FILL, encode(good_fill("b15")).replace(b'"net_kg":14.8', b'"net_kg":NaN'), "not JSON: NaN is not JSON"),
        (FILL, encode(good_fill("b16")).replace(b'"net_kg":14.8', b'"net_kg":' + b"9" * 5000), "not JSON"),
        (FILL, b"[" * 100_000 + b"]" * 100_000, "200000 bytes, more than the 65536 allowed"),
        (FILL, b'{"v":1,"x":' + b"[" * 30_000 + b"]" * 30_000 + b"}", "nested deeper than 6 levels"),
    ]
    oversize = encode({**good_scan("b17"), "details": ["d" * 200] * 400})
    kinds.append((SCAN, oversize, f"{len(oversize)} bytes, more than the 65536 allowed"))
    if postgres:
        # Valid JSON and valid to the schema, yet PostgreSQL's text cannot hold a NUL: the database
        # refuses this one row, and only this one.
        kinds.append((FILL, encode({**good_fill("b18"), "cylinder_id": "c\u0000x"}), "the database refused it"))
    return kinds


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fleet.db'}"
    else:
        yield fresh_database(request.getfixturevalue("postgres_url"))


class StationClient:
    """A station's account publishing raw bytes on its own topics, as a buggy station would."""

    def __init__(self, broker: Broker, user: str) -> None:
        settings = broker.settings(user)
        self.client = mqtt.make_client(settings, user, persistent=False)
        mqtt.connect_async(self.client, settings, persistent=False)
        wait_until(self.client.is_connected, f"{user} connected")

    def publish(self, topic: str, raw: bytes) -> None:
        info = self.client.publish(topic, raw, qos=1)
        info.wait_for_publish(5)
        assert info.rc == 0

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_collector(tmp_path: Path, broker: Broker, url: str) -> Collector:
    collector = Collector(company_config(tmp_path, broker, database=url), EventDatabase(url))
    collector.start()
    assert collector.connected.wait(10)
    return collector


def stop_collector(collector: Collector) -> None:
    collector.stop()
    collector.db.close()


def test_bad_events_are_quarantined_and_collection_goes_on(tmp_path: Path, broker: Broker, database_url: str) -> None:
    postgres = database_url.startswith("postgresql")
    bad = broken(postgres)
    collector = start_collector(tmp_path, broker, database_url)
    station = StationClient(broker, "st1")
    good: list[str] = []
    try:
        for i, (topic, raw, _) in enumerate(bad):
            for event in (good_fill(f"f{i}"), good_scan(f"s{i}")):
                station.publish(f"{COMPANY}/st1/event/{event['type']}", encode(event))
                good.append(event["key"])
            station.publish(topic, raw)
        # A good event delivered twice (at least once delivery): stored once.
        station.publish(FILL, encode(good_fill("f0")))
        wait_until(lambda: collector.stored == len(good) and collector.quarantined == len(bad),
                   f"{len(good)} stored and {len(bad)} quarantined", timeout=20)
        # Restarted, the collector goes on from where it was: the bad messages do not come back.
        stop_collector(collector)
        collector = start_collector(tmp_path, broker, database_url)
        for event in (good_fill("after-restart"), good_scan("after-restart-scan"), good_fill("f1")):
            station.publish(f"{COMPANY}/st1/event/{event['type']}", encode(event))
        good += ["after-restart", "after-restart-scan"]
        wait_until(lambda: collector.stored + collector.duplicates == 3, "the events after the restart", timeout=10)
        assert (collector.stored, collector.quarantined) == (2, 0)
    finally:
        station.close()
        stop_collector(collector)

    db = EventDatabase(database_url)
    try:
        assert sorted(k for _, k in db.keys()) == sorted(good)  # each good event exactly once
        rows = db.quarantined_messages()
        assert len(rows) == len(bad) == db.quarantine_count()
        by_payload = {bytes(r["payload"]): r for r in rows}
        for topic, raw, reason in bad:
            row = by_payload[raw]  # the raw bytes, exactly as they came
            assert row["topic"] == topic and row["reason"].startswith(reason), (row["reason"], reason)
            assert datetime.fromisoformat(row["received_at"]).tzinfo is not None
    finally:
        db.close()


def test_bad_health_is_quarantined_and_good_health_kept(tmp_path: Path, broker: Broker) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    collector = start_collector(tmp_path, broker, url)
    station = StationClient(broker, "st2")
    try:
        health = envelope("health", COMPANY, "st2", TS, online=True, version="0.1.0")
        station.publish(f"{COMPANY}/st2/health", encode({**health, "online": "yes"}))
        station.publish(f"{COMPANY}/st2/health", encode(health))
        wait_until(lambda: collector.quarantined == 1, "the bad health quarantined")
        wait_until(lambda: bool(collector.db.stations()), "the good health kept")
        assert [s["station"] for s in collector.db.stations()] == ["st2"]
    finally:
        # Clear the retained health so other tests on this broker do not see a station st2 here.
        station.client.publish(f"{COMPANY}/st2/health", b"", qos=1, retain=True).wait_for_publish(5)
        station.close()
        stop_collector(collector)


def test_a_message_is_quarantined_once_however_often_it_comes(tmp_path: Path) -> None:
    db = EventDatabase(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        stamp = datetime.now(timezone.utc).isoformat()
        first = db.add_batch([(FILL, b"junk"), (FILL, encode(good_fill("k1")))], stamp)
        again = db.add_batch([(FILL, b"junk"), (FILL, encode(good_fill("k1")))], stamp)
        assert first == {"stored": 1, "duplicates": 0, "quarantined": 1}
        assert again == {"stored": 0, "duplicates": 1, "quarantined": 0}
        assert db.quarantine_count() == 1
    finally:
        db.close()


def test_depth_is_checked_before_parsing() -> None:
    """A document nested far beyond Python's recursion limit is refused by counting, not by a
    RecursionError from the parser (which the old code let escape as a traceback)."""
    with pytest.raises(PayloadError, match="nested deeper than 6 levels"):
        load(b"[" * 100_000 + b"]" * 100_000, max_bytes=10**6)
    with pytest.raises(PayloadError, match="nested deeper than 6 levels"):
        load(b'{"a":' + b"[" * 6 + b"]" * 6 + b"}", max_bytes=1000)
    assert load(b'{"a":' + b"[" * 5 + b"]" * 5 + b"}", max_bytes=1000) == {"a": [[[[[]]]]]}
    # Brackets and escaped quotes inside a string are text, not structure.
    assert load(b'{"a":"[[[[[[[[[[\\"[[["}', max_bytes=100) == {"a": '[[[[[[[[[["[[['}
