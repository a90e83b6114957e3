"""A station's account cannot borrow another client's identity (real Mosquitto, the shipped config).

A client id names a broker session: whoever connects under it gets the QoS 1 messages queued for
it, and with a clean start ends it. On the stations' listener the broker replaces the client id
with the account's username, so a station that asks for another station's id, or a collector's,
gets its own; the company's programs have a listener of their own that station accounts cannot
log in to."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from fleet.collector import Collector
from fleet.console import send_command
from fleet.database import EventDatabase
from interlock.reasons import Reason
from sync.fleet import mqtt
from sync.fleet.settings import BrokerConfig
from tests.fleet_support import (  # noqa: F401 (the broker fixture)
    COMPANY,
    Broker,
    LightStation,
    broker_fixture,
    company_config,
    station_config,
    wait_until,
)
from tests.test_fleet_commands import reasons


class Impostor:
    """A client logged in with one account, asking for someone else's client id."""

    def __init__(self, settings: BrokerConfig, client_id: str, persistent: bool) -> None:
        self.client = mqtt.make_client(settings, client_id, persistent=persistent)
        self.results: list[Any] = []
        self.assigned: list[str | None] = []
        self.received: list[str] = []

        def on_connect(client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
            self.results.append(reason_code)
            self.assigned.append(getattr(properties, "AssignedClientIdentifier", None))

        self.client.on_connect = on_connect
        self.client.on_message = lambda c, u, m: self.received.append(m.topic)
        self.client.reconnect_delay_set(min_delay=60, max_delay=60)  # one attempt: we count them
        mqtt.connect_async(self.client, settings, persistent=persistent)
        wait_until(lambda: bool(self.results), "a CONNACK", timeout=5)

    @property
    def accepted(self) -> bool:
        return not mqtt.failed(self.results[0])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connected_as(broker: Broker, user: str) -> set[str]:
    """The client ids under which the broker logged connections of an account."""
    lines = broker.log.read_text(errors="replace").splitlines()
    return {line.split(" as ", 1)[1].split(" (", 1)[0] for line in lines if "New client connected" in line and f"u'{user}'" in line}


def test_a_station_cannot_take_another_stations_session(tmp_path: Path, broker: Broker) -> None:
    st2 = LightStation(station_config(tmp_path, broker, "st2"))
    st2.start()
    assert st2.service.uplink.wait_connected(10)
    row = [g.row for g in st2.dataset if g.scenario == "ok"][0]
    st2.stop()  # away: its session, with its command subscription, stays at the broker
    outcome = send_command(company_config(tmp_path, broker), "block", identifier=row["id"], reason="reported stolen", wait_s=0.5)
    assert outcome.online == []  # queued for st2's session, nobody answered yet

    # st1's account asks for st2's id: keeping the session (to read st2's queued commands), and
    # then with a clean start (which would end st2's session and the commands in it).
    for persistent in (True, False):
        impostor = Impostor(broker.settings("st1"), "st2", persistent=persistent)
        try:
            assert impostor.accepted  # as st1, its own identity
            time.sleep(1.0)
            assert impostor.received == [], "st2's queued command reached st1's account"
        finally:
            impostor.close()
    assert connected_as(broker, "st1") == {"st1"}  # the broker's own log: st1's account was st1

    # st2 comes back and gets its command, untouched: the block is applied there.
    st2.store.close()
    st2 = LightStation(st2.config)
    st2.start()
    try:
        wait_until(lambda: Reason.BLOCKED_LOCALLY in reasons(st2, row["qr_content"]), "st2 applying its queued block")
    finally:
        st2.stop()
        st2.close()


def test_a_station_cannot_take_the_collectors_session(tmp_path: Path, broker: Broker) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    company = company_config(tmp_path, broker, database=url)
    collector = Collector(company, EventDatabase(url))
    collector.start()
    assert collector.connected.wait(10)
    collector_id = f"{COMPANY}-{company.collector_id}"
    st3 = LightStation(station_config(tmp_path, broker, "st3")).start()
    try:
        assert st3.service.uplink.wait_connected(10)
        # The stations' accounts do not exist on the company's listener at all.
        refused = Impostor(broker.settings("st1", port=broker.company_port), collector_id, persistent=False)
        assert not refused.accepted
        refused.close()
        # On their own listener, asking for the collector's id, again and again, while st3 sends 30
        # events: the broker gives st1's account st1's id, and the collector loses nothing.
        drops = 0
        for i in range(30):
            st3.reject_scan()
            impostor = Impostor(broker.settings("st1"), collector_id, persistent=i % 2 == 0)
            assert impostor.accepted
            impostor.close()
            drops += not collector.connected.is_set()
        wait_until(lambda: collector.stored == 30, "all 30 events collected", timeout=15)
        assert drops == 0
        assert collector.db.count("scan") == 30
    finally:
        st3.stop()
        st3.close()
        collector.stop()
        collector.db.close()


def test_the_broker_names_a_station_by_its_account(broker: Broker) -> None:
    """Whatever id a station sends, the broker knows it by its username."""
    impostor = Impostor(broker.settings("st3"), f"made-up-{uuid.uuid4().hex[:8]}", persistent=False)
    try:
        assert impostor.accepted
        wait_until(lambda: bool(connected_as(broker, "st3")), "the broker's log line")
        assert connected_as(broker, "st3") == {"st3"}
    finally:
        impostor.close()
