"""Flow faults against the simulator over both transports (lane A: Modbus TCP, lane B: RTU over a
pty): an empty supply and a frozen indicator without a heartbeat trip NO_FLOW and close the valve
within the NO_FLOW time; a leak after cut-off trips LEAK. Each proves the coil went off."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from interlock.reasons import Reason
from simulators.modbus_devices import ScaleFault

from .conftest import SimStation

# Scheduling slack on a shared, noisy machine.
SLACK_S = 0.7


def no_heartbeat(raw: dict[str, Any]) -> None:
    for lane in raw["lanes"]:
        lane["scale"]["register_map"] = "cas-ci600d"  # no heartbeat, no stable bit


def filling(station: SimStation, lane: str, skip: int = 0, flow_kg_per_s: float = 1.0) -> str:
    station.modbus(lane).model.params.flow_kg_per_s = flow_kg_per_s  # slow enough to fault in
    verdict = station.start_fill(lane, station.cylinder(skip=skip))
    time.sleep(0.3)
    assert station.modbus(lane).valve_on()
    return str(verdict["fill_id"])


def assert_tripped(station: SimStation, lane: str, fill_id: str, cause: Reason) -> dict[str, Any]:
    end = station.wait(lane, "fill_end")
    assert end["fill_id"] == fill_id and end["cause"] == cause, end
    row = station.fill_row(fill_id)
    assert row["status"] == "aborted" and row["cause"] == cause and row["tripped"] == 1
    assert station.station.lanes[lane].state.phase == "locked"
    assert not station.modbus(lane).valve_on()
    return end


@pytest.mark.parametrize("lane", ["A", "B"], ids=["tcp", "rtu"])
def test_empty_supply_trips_no_flow(make_station: Callable[..., SimStation], lane: str) -> None:
    station = make_station(no_heartbeat)
    fill = station.station.lanes[lane].config.fill
    fill_id = filling(station, lane)
    model = station.modbus(lane).model
    model.params.jitter_kg = 0.02  # a live load cell at rest: never the same reading for long
    model.supply_empty = True
    emptied = time.monotonic()
    off_at = station.wait_valve(lane, False, timeout=fill.no_flow_s + 3)
    end = assert_tripped(station, lane, fill_id, Reason.NO_FLOW)
    assert "seconds" in end["detail"], end["detail"]  # the no-rise timer, not the identical readings
    took = off_at - emptied
    print(f"empty supply on lane {lane}: valve off {took:.2f} s after (no_flow_s {fill.no_flow_s})")
    assert took <= fill.no_flow_s + SLACK_S


@pytest.mark.parametrize("lane", ["A", "B"], ids=["tcp", "rtu"])
def test_frozen_reading_without_heartbeat_closes_the_valve_within_the_no_flow_time(
    make_station: Callable[..., SimStation], lane: str
) -> None:
    station = make_station(no_heartbeat)
    fill = station.station.lanes[lane].config.fill
    fill_id = filling(station, lane, skip=1)
    sim = station.modbus(lane)
    sim.scale.fault = ScaleFault.STUCK
    frozen = time.monotonic()
    off_at = station.wait_valve(lane, False, timeout=fill.no_flow_s + 3)
    end = assert_tripped(station, lane, fill_id, Reason.NO_FLOW)
    assert end["detail"]["frozen"] is True
    took = off_at - frozen
    print(f"frozen reading on lane {lane}: valve off {took:.2f} s after (no_flow_s {fill.no_flow_s})")
    assert took <= fill.no_flow_s
    assert sim.model.true_gross_kg() < station.cylinder(skip=1).row["tare_kg"] + 0.1 + 1.0 * (took + 0.5)


@pytest.mark.parametrize("lane", ["A", "B"], ids=["tcp", "rtu"])
def test_leak_after_cut_off_trips_leak(make_station: Callable[..., SimStation], lane: str) -> None:
    station = make_station(no_heartbeat)
    sim = station.modbus(lane)
    fill_id = filling(station, lane, skip=2, flow_kg_per_s=4.0)
    sim.model.leak_kg_per_s = 0.5  # leaks only while the valve is shut: from the cut-off
    cut_off = station.wait_valve(lane, False, timeout=30)
    end = assert_tripped(station, lane, fill_id, Reason.LEAK)
    assert end["detail"]["fall_kg"] > station.station.lanes[lane].config.fill.leak_kg
    row = station.fill_row(fill_id)
    assert row["cutoff_gross_kg"] is not None, "the leak came after the cut-off"
    # The relay went off at the cut-off and was never switched on again.
    assert sim.board.last_write(sim.coil, True) < cut_off
    assert not sim.valve_on()
    print(f"leak on lane {lane}: {end['detail']}")
