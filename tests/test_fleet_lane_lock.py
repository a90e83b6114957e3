"""A remote lock on a simulated station (real Modbus, real ptys, real broker): the valve closes
mid-fill through the lane's fault path, the lane refuses scans and an operator's reset while
locked, and an unlock alone never makes it fill again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from fleet.console import Connection, send_command
from interlock.fill import Reset
from interlock.reasons import Reason
from tests.conftest import SimStation
from tests.fleet_support import (  # noqa: F401 (the broker fixture)
    COMPANY,
    Broker,
    broker_fixture,
    check_payload,
    company_config,
    retained,
    wait_until,
)


def with_fleet(broker: Broker, station_id: str) -> Callable[[dict[str, Any]], None]:
    def override(raw: dict[str, Any]) -> None:
        raw.pop("city", None)
        raw["simulators"]["city"] = False
        raw["fleet"] = {
            "company": COMPANY,
            "station_id": station_id,
            "broker": json.loads(broker.settings(station_id).model_dump_json()),
            "health_interval_s": 1.0,
        }

    return override


def _received(subscriber: Connection, into: list[dict[str, Any]]) -> list[dict[str, Any]]:
    while not subscriber.messages.empty():
        into.append(subscriber.messages.get()[1])
    return into


def test_a_lane_lock_closes_the_valve_mid_fill(tmp_path: Path, broker: Broker, make_station: Callable[..., SimStation]) -> None:
    station = make_station(with_fleet(broker, "st1"))
    fleet = station.station.fleet
    assert fleet is not None and fleet.uplink.wait_connected(10)
    company = company_config(tmp_path, broker)
    # The company listens for the station's fill events from before the fill.
    with Connection(company, [f"{COMPANY}/st1/event/fill"], "events") as subscriber:
        verdict = station.start_fill("A", station.cylinder())
        outcome = send_command(company, "lock", station="st1", lane="A", reason="regulator: leak reported", wait_s=5)
        assert outcome.replies["st1"]["outcome"] == "applied", outcome.replies
        # The valve goes off through the fault path: the simulator's coil is off, the fill aborted.
        station.wait_valve("A", False, timeout=2.0)
        wait_until(lambda: station.fill_row(verdict["fill_id"])["status"] == "aborted", "the fill recorded as aborted")
        row = station.fill_row(verdict["fill_id"])
        assert row["cause"] == Reason.REMOTE_LOCK and row["tripped"] == 1
        lane = station.station.lanes["A"]
        assert lane.state.phase == "locked" and lane.remote_lock == "regulator: leak reported (dispatcher-li)"
        # Lane B fills on; lane A refuses scans, and the operator's reset, while locked.
        assert station.station.lanes["B"].remote_lock is None
        nxt = station.cylinder(skip=1)
        assert station.scan("A", nxt.row["qr_content"])["reasons"] == [Reason.LANE_LOCKED]
        lane.submit(Reset())
        station.modbus("A").model.remove()
        wait_until(lambda: lane.loop_seen > 0 and lane._inbox.empty(), "the reset handled")
        assert lane.state.phase == "locked"
        # The aborted fill reached the company with its cause (once the broker has it, the station's
        # outbox row keeps its key, not its body).
        events: list[dict[str, Any]] = []
        wait_until(lambda: _received(subscriber, events), "the fill's event at the company")
        assert [(e["fill_id"], e["cause"], e["valve_opened"]) for e in events] == [(verdict["fill_id"], "REMOTE_LOCK", True)]
        for event in events:
            check_payload(event)
    # A new subscriber sees the lane locked at once (retained), and why.
    topic = f"{COMPANY}/st1/lane/A"
    wait_until(lambda: retained(broker, topic, 0.3).get(topic, {}).get("phase") == "locked", "retained locked state")
    state = retained(broker, topic)[topic]
    check_payload(state)
    assert state["remote_lock"] == "regulator: leak reported (dispatcher-li)" and state["cause"] == "REMOTE_LOCK"

    # Unlock lifts the company's lock; the lane still waits for an operator's reset at the lane.
    outcome = send_command(company, "unlock", station="st1", lane="A", wait_s=5)
    assert outcome.replies["st1"]["outcome"] == "applied"
    wait_until(lambda: lane.remote_lock is None, "the lock lifted")
    assert lane.state.phase == "locked" and station.modbus("A").valve_on() is False
    lane.submit(Reset())
    wait_until(lambda: lane.state.phase == "idle", "the operator's reset")
    station.start_fill("A", nxt)
    assert station.wait("A", "fill_end")["status"] == "complete"


def test_a_station_lock_survives_a_restart(tmp_path: Path, broker: Broker, make_station: Callable[..., SimStation]) -> None:
    station = make_station(with_fleet(broker, "st2"))
    assert station.station.fleet is not None and station.station.fleet.uplink.wait_connected(10)
    outcome = send_command(company_config(tmp_path, broker), "lock", station="st2", reason="licence suspended", wait_s=5)
    assert outcome.replies["st2"]["detail"] == "every lane locked, valve off"
    lanes = station.station.lanes
    wait_until(lambda: all(l.remote_lock for l in lanes.values()), "every lane locked")
    station.station.stop()
    station.station.start()
    lanes = station.station.lanes
    for lane_id, lane in lanes.items():
        lane.listeners.append(station.events[lane_id].put)
    wait_until(lambda: all(l.remote_lock == "licence suspended (dispatcher-li)" for l in lanes.values()), "locks restored")
    assert station.scan("A", station.cylinder().row["qr_content"])["reasons"] == [Reason.LANE_LOCKED]
