"""End to end against the simulators: scans over a pty, scale and valve over Modbus TCP, SQLite."""

import json
import time

import pytest

from edge.daemon.station import open_store
from edge.store import journal
from interlock.fill import Abort, Reset
from interlock.reasons import Reason

from .conftest import SimStation


def test_accepted_scan_fills_to_target_and_records_durably(station: SimStation) -> None:
    cylinder = station.cylinder()
    verdict = station.start_fill("A", cylinder, residual=0.2)
    end = station.wait("A", "fill_end")
    assert end["status"] == "complete" and end["outcome"] == "ok"
    assert not station.modbus("A").valve_on()
    target = cylinder.row["fill_mass_kg"]
    assert abs(end["net_kg"] - target) <= 0.5  # the configured tolerance
    row = station.fill_row(verdict["fill_id"])
    assert row["status"] == "complete" and row["cylinder_id"] == cylinder.row["id"]
    assert row["residual_kg"] == pytest.approx(0.2, abs=0.05)
    assert row["operator"] == "张伟" and row["checker"] == "王芳"
    store = station.station.store
    assert store is not None
    outbox = store.query("SELECT * FROM outbox WHERE fill_id = ? ORDER BY id", [verdict["fill_id"]])
    assert [r["kind"] for r in outbox] == ["filling", "trace"]
    assert all(json.loads(r["payload"])["cylinder_id"] == cylinder.row["id"] for r in outbox)
    entries = store.query("SELECT kind, data FROM journal WHERE fill_id = ? ORDER BY seq", [verdict["fill_id"]])
    assert [e["kind"] for e in entries] == ["fill_authorised", "scan", "fill_prechecked", "fill_filling", "fill_settling",
                                            "fill_complete"]
    # The fill's last record names the outbox rows it queued (in the same transaction: by id, key
    # and payload digest) and what the fill taught the lane's in-flight estimate.
    final = journal.load(entries[-1]["data"])
    assert [(q["id"], q["kind"], q["key"]) for q in final["queued"]] == [(r["id"], r["kind"], r["idempotency_key"]) for r in outbox]
    assert all(r["queued_seq"] == store.query("SELECT max(seq) AS n FROM journal WHERE fill_id = ?", [verdict["fill_id"]])[0]["n"]
               for r in outbox)
    assert final["inflight"]["*"]["fills"] >= 1
    assert store.verify().ok and store.verify_records().ok


def test_both_lanes_fill_side_by_side(station: SimStation) -> None:
    a, b = station.cylinder(skip=0), station.cylinder(skip=1)
    station.start_fill("A", a)
    station.start_fill("B", b)
    for lane in "AB":
        end = station.wait(lane, "fill_end")
        assert end["status"] == "complete", end


@pytest.mark.parametrize(
    "scenario", [r for r in Reason if r.name in {"NOT_SELF_OWNED", "SCRAPPED", "SUSPENDED", "INSPECTION_OVERDUE",
                                                  "SERVICE_LIFE_EXCEEDED", "MEDIUM_MISMATCH", "NOT_REGISTERED", "BLOCKED_LOCALLY"}]
)
def test_ineligible_cylinders_never_open_the_valve(station: SimStation, scenario: Reason) -> None:
    verdict = station.scan("A", station.cylinder(scenario).row["qr_content"])
    assert not verdict["accepted"] and verdict["reasons"][0] == scenario
    assert station.modbus("A").last_write(0, True) is None


@pytest.mark.parametrize("garbage", [b"\x00\x01\x02", b"A" * 5000, b"\xff\xfe\xfd", b"'; DROP TABLE fills; --", b"999240000001"])
def test_garbage_and_unknown_codes_are_rejected(station: SimStation, garbage: bytes) -> None:
    verdict = station.scan("B", garbage)
    assert not verdict["accepted"]
    assert verdict["reasons"][0] in (Reason.INVALID_CODE, Reason.UNKNOWN_CYLINDER)
    assert station.modbus("B").last_write(0, True) is None


def test_scan_during_fill_changes_nothing(station: SimStation) -> None:
    first = station.cylinder(skip=0)
    verdict = station.start_fill("A", first)
    busy = station.scan("A", station.cylinder(skip=1).row["qr_content"])
    assert not busy["accepted"] and busy["reasons"] == [Reason.LANE_BUSY]
    end = station.wait("A", "fill_end")
    assert end["fill_id"] == verdict["fill_id"] and end["status"] == "complete"
    store = station.station.store
    assert store is not None
    assert store.query("SELECT count(*) AS n FROM fills")[0]["n"] == 1


class TestTrips:
    """Each trip: the simulator's valve coil goes off and the fill is recorded as aborted with its cause."""

    def assert_aborted(self, station: SimStation, fill_id: str, cause: Reason) -> None:
        end = station.wait("A", "fill_end")
        assert end["status"] == "aborted" and end["cause"] == cause
        station.wait_valve("A", False, timeout=2.0)
        assert station.modbus("A").valve_on() is False
        row = station.fill_row(fill_id)
        assert row["status"] == "aborted" and row["cause"] == cause

    def test_scale_stops_answering(self, station: SimStation, caplog: pytest.LogCaptureFixture) -> None:
        verdict = station.start_fill("A", station.cylinder())
        station.modbus("A").silent = True
        self.assert_aborted(station, verdict["fill_id"], Reason.SCALE_LOST)
        lane = station.station.lanes["A"]
        assert lane.state.phase == "locked"
        # Locked until an operator resets it, even once the scale answers again.
        station.modbus("A").silent = False
        assert station.scan("A", station.cylinder(skip=1).row["qr_content"])["reasons"] == [Reason.LANE_LOCKED]
        station.wait_for(lambda: lane.scale_ok, "the scale answering again")
        lane.submit(Reset())
        station.modbus("A").model.remove()
        station.start_fill("A", station.cylinder(skip=1))
        assert station.wait("A", "fill_end")["status"] == "complete"
        # A reset that says neither how nor why is logged without blanks ("via  ()", "was None").
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lane reset by")]
        assert said == ["lane reset by op-zhang: was 秤通讯中断 / scale not answering"], said

    def test_operator_abort(self, station: SimStation) -> None:
        verdict = station.start_fill("A", station.cylinder())
        station.station.lanes["A"].submit(Abort())
        self.assert_aborted(station, verdict["fill_id"], Reason.OPERATOR_ABORT)

    def test_maximum_fill_time(self, make_station) -> None:  # type: ignore[no-untyped-def]
        def slow(raw: dict) -> None:
            raw["simulators"]["flow_kg_per_s"] = 0.5
            for lane in raw["lanes"]:
                lane["fill"] = {**lane["fill"], "max_fill_s": 1.0}

        station = make_station(slow)
        verdict = station.start_fill("A", station.cylinder())
        self.assert_aborted(station, verdict["fill_id"], Reason.MAX_FILL_TIME)

    def test_weight_above_overfill_limit(self, make_station) -> None:  # type: ignore[no-untyped-def]
        def tolerant_steps(raw: dict) -> None:
            for lane in raw["lanes"]:
                lane["fill"] = {**lane["fill"], "max_step_kg": 100.0}

        station = make_station(tolerant_steps)
        cylinder = station.cylinder()
        verdict = station.start_fill("A", cylinder)
        # Something heavy lands on the scale mid-fill: far past the overfill limit in one sample.
        station.modbus("A").model.place(cylinder.row["tare_kg"] + cylinder.row["fill_mass_kg"] + 3.0)
        self.assert_aborted(station, verdict["fill_id"], Reason.OVERFILL_LIMIT)

    def test_weight_rising_after_cut_off(self, make_station) -> None:  # type: ignore[no-untyped-def]
        def leaky_valve(raw: dict) -> None:
            raw["simulators"]["valve_delay_s"] = 1.0  # 4 kg still arrives after the coil drops

        station = make_station(leaky_valve)
        verdict = station.start_fill("A", station.cylinder())
        self.assert_aborted(station, verdict["fill_id"], Reason.WEIGHT_RISING_VALVE_OFF)

    def test_authorisation_expiry(self, make_station) -> None:  # type: ignore[no-untyped-def]
        def short_auth(raw: dict) -> None:
            for lane in raw["lanes"]:
                lane["fill"] = {**lane["fill"], "auth_timeout_s": 0.5}

        station = make_station(short_auth)
        verdict = station.scan("A", station.cylinder().row["qr_content"])
        assert verdict["accepted"]
        end = station.wait("A", "fill_end")  # nobody put the cylinder on the scale
        assert end["status"] == "aborted" and end["cause"] == Reason.AUTH_EXPIRED
        assert station.modbus("A").last_write(0, True) is None
        assert station.modbus("A").valve_on() is False
        # One accepted scan, at most one fill: the expired authorisation cannot be used later.
        station.modbus("A").model.place(station.cylinder().row["tare_kg"])
        with pytest.raises(AssertionError):
            station.wait_valve("A", True, timeout=0.5)


def test_stop_drives_valves_off_and_closes_the_store(station: SimStation) -> None:
    verdict = station.start_fill("A", station.cylinder())
    station.station.stop()
    assert station.modbus("A").valve_on() is False
    assert station.station.store is None
    store = open_store(station.config)
    try:
        row = store.query("SELECT status, cause, tripped FROM fills WHERE id = ?", [verdict["fill_id"]])[0]
        assert row == {"status": "aborted", "cause": "INTERRUPTED", "tripped": 0}
        assert [r["kind"] for r in store.query("SELECT kind FROM outbox ORDER BY id")] == ["filling", "trace"]
        assert store.verify().ok
    finally:
        store.close()


def test_valve_never_opens_when_the_fill_record_cannot_be_committed(station: SimStation) -> None:
    store = station.station.store
    assert store is not None
    with store.transaction() as conn:
        conn.execute(
            "CREATE TRIGGER disk_full BEFORE UPDATE OF status ON fills WHEN NEW.status = 'filling'"
            " BEGIN SELECT RAISE(ABORT, 'simulated disk full'); END"
        )
    cylinder = station.cylinder()
    verdict = station.scan("A", cylinder.row["qr_content"])
    assert verdict["accepted"]
    station.modbus("A").model.place(cylinder.row["tare_kg"])
    deadline = time.monotonic() + 5
    while station.fill_row(verdict["fill_id"])["status"] != "aborted":
        assert time.monotonic() < deadline, "fill was not recorded as aborted"
        time.sleep(0.02)
    assert station.modbus("A").last_write(0, True) is None  # write ahead: no record, no valve
    assert station.station.lanes["A"].state.phase == "locked"
    assert station.fill_row(verdict["fill_id"])["cause"] == Reason.LANE_FAULT
