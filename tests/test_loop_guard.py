"""A control loop that stops coming round with the valve on: the loop guard closes the valve
within its bound, not after the systemd watchdog.

The hang is real, not a stand-in driver: the test takes the bus's one lock and keeps it, as a
request that never returns would, so the lane's next scale read blocks forever and so does every
write the lane could make on that bus. On Modbus TCP the guard's own second connection closes
the valve; on RTU (one owner per bus) only the relay's lease can, and the guard locks the lane.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from interlock.fill import Reset
from interlock.reasons import Reason

from .conftest import SimStation

RUNS = 3
SLACK_S = 0.5  # scheduling on a shared, noisy machine; the figures themselves are printed


def slow_fills(raw: dict[str, Any]) -> None:
    raw["simulators"]["flow_kg_per_s"] = 0.5  # a real filling head's rate: the fill is still on


def hang_and_measure(station: SimStation, lane_id: str) -> float:
    lane = station.station.lanes[lane_id]
    bus = lane.scale.device.bus  # type: ignore[attr-defined]
    assert station.modbus(lane_id).valve_on()
    # Not while the scale is backing off after a failed read (a busy machine's RTU timing): a read
    # skipped by its back-off would not reach the hung bus.
    station.wait_for(lambda: lane.scale_ok, "a scale read that succeeded")
    bus._lock.acquire()  # the lane's next request (its scale read) never returns
    hung = time.monotonic()
    try:
        off_at = station.wait_valve(lane_id, False, timeout=10)
        # (On RTU a lease refreshed a moment before the hang may run out before the guard's bound.)
        station.wait_for(lambda: lane.guard_cause is Reason.LOOP_STALLED, "the guard's trip", timeout=3)
    finally:
        bus._lock.release()
    return off_at - hung


def assert_locked(station: SimStation, lane_id: str, fill_id: str) -> None:
    station.wait_for(lambda: station.station.lanes[lane_id].state.phase == "locked", "the lane locked")
    row = station.fill_row(fill_id)
    assert (row["status"], row["cause"], row["tripped"]) == ("aborted", Reason.LOOP_STALLED, 1)


def test_hung_scale_read_valve_off_within_the_guard_bound_over_tcp(make_station: Callable[..., SimStation]) -> None:
    station = make_station(slow_fills)
    assert station.station.guard is not None
    lane = station.station.lanes["A"]
    bound = station.station.guard.bound_s(lane)
    took: list[float] = []
    for run in range(RUNS):
        verdict = station.start_fill("A", station.cylinder(skip=run))
        time.sleep(0.3)
        took.append(hang_and_measure(station, "A"))
        # Once the loop comes round again it locks the lane and records the fill as aborted.
        assert_locked(station, "A", verdict["fill_id"])
        assert not station.modbus("A").valve_on()
        refused = station.scan("A", station.cylinder(skip=run + 5).row["qr_content"])
        assert refused["reasons"] == [Reason.LANE_LOCKED]
        station.modbus("A").model.remove()
        station.wait_for(lambda: lane.state.scale_fault is None and lane.state.last_gross_kg == 0.0, "the empty scale")
        assert lane.request(Reset("op-zhang", "guard test", "test"))["ok"]
        assert lane.guard_cause is None
    median = statistics.median(took)
    print(f"\nloop guard over Modbus TCP: valve off {', '.join(f'{t * 1000:.0f}' for t in took)} ms after the hang"
          f" (median {median * 1000:.0f} ms, bound {bound * 1000:.0f} ms, systemd watchdog would take seconds)")
    assert max(took) <= bound + SLACK_S


def test_hung_rtu_bus_the_lease_closes_the_valve_and_the_guard_locks_the_lane(
    make_station: Callable[..., SimStation],
) -> None:
    station = make_station(slow_fills)
    lane = station.station.lanes["B"]
    lease = lane.config.relay.lease  # type: ignore[union-attr]
    assert lease is not None
    verdict = station.start_fill("B", station.cylinder())
    time.sleep(0.3)
    took = hang_and_measure(station, "B")
    print(f"\nRTU bus hung: the relay's lease closed the valve {took * 1000:.0f} ms after the hang (lease {lease.duration_s} s)")
    assert took <= lease.duration_s + SLACK_S
    assert_locked(station, "B", verdict["fill_id"])
    assert not station.modbus("B").valve_on()
