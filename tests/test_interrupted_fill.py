"""A daemon killed exactly as its cut-off OFF write reaches the relay board: the coil stays latched
and gas keeps flowing at the simulator's accelerated rate until the restart drives it off. The
restart must weigh what is on the scale before the lane serves again: an overfill is recorded
OVERFILLED with the re-weighed mass, shown red + buzzer and holds the lane until acknowledged, and
the upstream record carries that mass. A daemon killed as its ON write arrives (the valve never
opened) leaves a fill that is not reported as a filling."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from edge.daemon import control
from edge.daemon.station import open_store
from edge.store import journal
from interlock.reasons import Reason
from interlock.recovery import Limits, OpenFill, reweigh

from .test_crash_restart import simulated_hardware, start_daemon
from .test_crash_restart import wait_for as wait_quickly


def wait_for(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    # Polls gently: the simulators share this process (and its GIL) with the polling.
    wait_quickly(predicate, timeout=20.0, what=what, interval=0.1)


KILLS = 20
BEFORE_VALVE_EVERY = 5  # every fifth kill lands on the ON write instead
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)
LIMITS = Limits(tolerance_kg=0.5, tare_tolerance_kg=0.4, no_flow_kg=0.2, capacity_kg=150.0)


def open_fill(status: str = "filling", start: float | None = 15.3, started: bool = True) -> OpenFill:
    return OpenFill("f1", "A", status, 15.2, 14.5, start, started)


class TestReweigh:
    def test_overfilled_is_flagged_held_and_reported(self) -> None:
        outcome = reweigh(open_fill(), 31.0, LIMITS, NOW)
        assert outcome.fields["outcome"] == Reason.OVERFILLED and outcome.fields["net_kg"] == pytest.approx(15.8)
        assert outcome.fields["final_gross_kg"] == 31.0 and outcome.fields["cause"] == Reason.INTERRUPTED
        assert outcome.hold and outcome.report

    def test_underfilled_is_flagged_not_held(self) -> None:
        outcome = reweigh(open_fill(), 25.0, LIMITS, NOW)
        assert outcome.fields["outcome"] == Reason.UNDERFILLED and not outcome.hold and outcome.report

    def test_within_tolerance_stays_an_aborted_fill(self) -> None:
        outcome = reweigh(open_fill("settling"), 29.8, LIMITS, NOW)
        assert outcome.fields["outcome"] == "aborted" and outcome.fields["net_kg"] == pytest.approx(14.6)
        assert not outcome.hold and outcome.report

    def test_no_gas_went_in_is_not_reported(self) -> None:
        outcome = reweigh(open_fill(), 15.4, LIMITS, NOW)
        assert outcome.fields["detail"] == {"reweighed": True, "no_gas": True}
        assert outcome.fields["outcome"] == "aborted", "a cylinder that got no gas is not underfilled by us"
        assert not outcome.report and not outcome.hold

    def test_never_started_is_never_reported(self) -> None:
        assert not reweigh(open_fill("prechecked", started=False), 15.3, LIMITS, NOW).report

    @pytest.mark.parametrize("gross, why", [(0.0, "no cylinder"), (14.5, "no cylinder"), (500.0, "no cylinder"), (None, "no stable")])
    def test_no_cylinder_of_this_tare_cannot_be_reweighed(self, gross: float | None, why: str) -> None:
        outcome = reweigh(open_fill(), gross, LIMITS, NOW)
        assert outcome.fields["detail"]["reweighed"] is False and why in outcome.fields["detail"]["why"]
        assert "net_kg" not in outcome.fields and not outcome.hold
        assert outcome.report, "gas may have gone in: reported as an aborted fill, as before"

    def test_without_a_precheck_the_tare_is_the_floor(self) -> None:
        outcome = reweigh(open_fill("authorised", start=None, started=False), 15.0, LIMITS, NOW)
        assert outcome.fields["detail"]["reweighed"] is True and not outcome.report


def test_a_hold_outlives_a_restart_until_acknowledged_or_reset() -> None:
    from edge.store import Store

    store = Store(":memory:")
    try:
        assert store.held_lanes() == {}
        store.journal(NOW, "lane_held", {"fill_id": "f1", "cause": "OVERFILLED"}, lane="A", fill_id="f1")
        store.journal(NOW, "lane_reset_refused", {"by": "op"}, lane="A")
        assert store.held_lanes() == {"A": {"fill_id": "f1", "cause": "OVERFILLED"}}
        store.journal(NOW, "lane_ack", {"by": "op"}, lane="A")
        store.journal(NOW, "lane_held", {"fill_id": "f2", "cause": "OVERFILLED"}, lane="B", fill_id="f2")
        store.journal(NOW, "lane_reset", {"by": "op"}, lane="B")
        assert store.held_lanes() == {}
    finally:
        store.close()


@pytest.mark.parametrize("gross, reported", [(31.0, True), (15.35, False)])
def test_a_settled_fill_keeps_its_cut_off_and_a_gasless_one_stays_local(gross: float, reported: bool) -> None:
    from edge.store import Store
    from interlock.fill import Record

    store = Store(":memory:", outbox_entries=lambda fill: [("filling", fill["id"], {"net_kg": fill["net_kg"]})])
    try:
        milestones = [
            Record("f1", "authorised", {"cylinder_id": "c1", "tare_kg": 15.2, "target_net_kg": 14.5, "authorised_at": NOW}),
            Record("f1", "prechecked", {"start_gross_kg": 15.3}),
            Record("f1", "filling", {"started_at": NOW}),
            Record("f1", "settling", {"cutoff_at": NOW, "cutoff_gross_kg": 29.3}),
        ]
        for record in milestones:
            store.apply_record("A", record, NOW, {})
        outcome = reweigh(open_fill("settling"), gross, LIMITS, NOW)
        assert outcome.report is reported
        store.apply_record("A", Record("f1", "aborted", outcome.fields, report=outcome.report), NOW, {})
        row = store.query("SELECT * FROM fills")[0]
        assert row["cutoff_gross_kg"] == 29.3 and row["final_gross_kg"] == gross and row["status"] == "aborted"
        outbox = store.query("SELECT payload FROM outbox")
        assert [json.loads(r["payload"])["net_kg"] for r in outbox] == ([row["net_kg"]] if reported else [])
        entry = journal.load(store.query("SELECT data FROM journal WHERE kind = 'fill_aborted'")[0]["data"])
        assert entry.get("reported", True) is reported, "the journal says a fill was kept from the city"
    finally:
        store.close()


def _store_rows(config, sql: str, params: list | None = None) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    store = open_store(config)
    try:
        return store.query(sql, params or [])
    finally:
        store.close()


@pytest.mark.slow
def test_kill_at_cut_off_loop(tmp_path: Path) -> None:
    sim, config_path, config, _ = simulated_hardware(tmp_path)
    # No city and no status page: the outbox payload is what the city would get, and each of the
    # twenty restarts is quicker without them.
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    del raw["city"]
    raw["status_page"] = {"enabled": False}
    config_path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    lane = sim.station_for("A")
    fill_config = config.lanes[0].fill
    cylinders = [g for g in sim.dataset if g.scenario == "ok" and g.row["model"] == "YSP15"]
    assert len(cylinders) >= KILLS
    socket_path = config.store.control_path
    daemon = start_daemon(config_path)
    starts = 1
    overfilled = not_reported = 0
    began = time.monotonic()

    def started(n: int) -> bool:
        return _store_rows(config, "SELECT count(*) AS n FROM journal WHERE kind = 'daemon_start'")[0]["n"] >= n

    try:
        wait_for(lambda: started(starts), what="daemon start")
        for kill in range(KILLS):
            before_valve = kill % BEFORE_VALVE_EVERY == BEFORE_VALVE_EVERY - 1
            pid = daemon.pid

            def at_the_write(coil: int, value: bool, pid: int = pid, on: bool = before_valve) -> bool:
                if coil != lane.coil or value != on:
                    return True
                lane.board.before_write = None
                os.kill(pid, signal.SIGKILL)
                return False  # the daemon dies with its write undelivered

            cylinder = cylinders[kill]
            tare, target = cylinder.row["tare_kg"], fill_config.targets_kg["YSP15"]
            lane.board.before_write = at_the_write
            sim.scanners["A"].scan(cylinder.row["qr_content"])
            # Most of the way there already: a fill of about 2 kg reaches cut-off in half a second.
            lane.model.place(tare + target - 2.0)
            assert daemon.wait(15) == -signal.SIGKILL
            assert lane.valve_on() is not before_valve
            starts += 1
            daemon = start_daemon(config_path)
            wait_for(lambda: started(starts), what="restart")
            assert not lane.valve_on()
            fill = _store_rows(config, "SELECT * FROM fills ORDER BY authorised_at DESC LIMIT 1")[0]
            assert fill["cylinder_id"] == cylinder.row["id"] and fill["status"] == "aborted"
            assert fill["cause"] == Reason.INTERRUPTED
            detail = json.loads(fill["detail"])
            assert detail["reweighed"], detail
            true_gross = lane.model.true_gross_kg()
            assert fill["final_gross_kg"] == pytest.approx(true_gross, abs=0.05)
            assert fill["net_kg"] == pytest.approx(true_gross - tare, abs=0.05)
            outbox = _store_rows(config, "SELECT kind, payload FROM outbox WHERE fill_id = ?", [fill["id"]])
            if before_valve:
                assert detail["no_gas"] and outbox == [], "a fill whose valve never opened is no filling"
                not_reported += 1
            else:
                assert fill["net_kg"] > target + fill_config.overfill_margin_kg, "gas flowed until the restart"
                assert fill["outcome"] == Reason.OVERFILLED
                payload = json.loads(next(r["payload"] for r in outbox if r["kind"] == "filling"))
                assert payload["net_kg"] == fill["net_kg"] and payload["outcome"] == Reason.OVERFILLED
                # Red light and buzzer on, the lane held: a scan is refused until acknowledged.
                assert lane.board.coil(3) and lane.board.coil(4) and not lane.board.coil(1)
                if kill == 0:
                    sim.scanners["A"].scan(cylinders[-1].row["qr_content"])
                    wait_for(lambda: _store_rows(config, "SELECT count(*) AS n FROM journal WHERE kind = 'scan'")[0]["n"] >= 2,
                             what="the refused scan")
                    scan = _store_rows(config, "SELECT data FROM journal WHERE kind = 'scan' ORDER BY seq DESC LIMIT 1")[0]
                    assert journal.load(scan["data"])["reasons"] == [Reason.LANE_LOCKED]
                reply = control.call(socket_path, {"cmd": "ack", "lane": "A", "by": "op-zhang", "why": "decanting"})
                assert reply["ok"], reply
                assert not lane.board.coil(3) and not lane.board.coil(4)
                overfilled += 1
            lane.model.remove()
        took = time.monotonic() - began
        acks = _store_rows(config, "SELECT data FROM journal WHERE kind = 'lane_ack'")
        assert len(acks) == overfilled and all(journal.load(a["data"])["by"] == "op-zhang" for a in acks)
        print(f"\n{KILLS} kills at the valve write in {took:.1f} s: {overfilled} overfilled, re-weighed, held and"
              f" acknowledged; {not_reported} killed before the valve opened, not reported")
    finally:
        lane.board.before_write = None
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(15)
        sim.stop()
