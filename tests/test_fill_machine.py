"""The fill state machine: every phase x event pair, every trip path, and the relay invariant."""

import itertools
import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from interlock.fill import (
    BUSY,
    Abort,
    Confirm,
    Decided,
    LaneState,
    Phase,
    Plan,
    Record,
    RelayOff,
    RelayOn,
    Reset,
    ScaleLost,
    Signal,
    Tick,
    Verdict,
    Weight,
    step,
)
from interlock.reasons import Reason
from interlock.rules import Decision, Finding

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)
PLAN = Plan(
    fill_id="f1",
    cylinder_id="c1",
    code="123240000001",
    tare_kg=15.0,
    target_net_kg=14.5,
    tolerance_kg=0.5,
    preact_kg=0.3,
    overfill_margin_kg=1.0,
    tare_tolerance_kg=0.3,
    capacity_kg=100.0,
    max_fill_s=60.0,
    auth_timeout_s=30.0,
    settle_min_s=0.2,
    settle_timeout_s=5.0,
    max_inflight_kg=0.8,
    max_step_kg=20.0,
    leak_check_s=0.0,
)
ALLOW = Decided("123240000001", Decision(True), PLAN)
DENY = Decided("x", Decision(False, (Finding(Reason.SCRAPPED),)))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(events, state: LaneState | None = None, plan: Plan = PLAN):
    """Feed (seconds, event) pairs; return the final state and all effects."""
    state = state or LaneState(Phase.IDLE, since=T0)
    effects: list = []
    for seconds, event in events:
        if isinstance(event, Decided) and event.plan is not None:
            event = replace(event, plan=plan)
        state, produced = step(state, event, at(seconds))
        effects += produced
    return state, effects


def to_filling(plan: Plan = PLAN):
    return run([(0, ALLOW), (1, Weight(15.2, True))], plan=plan)


def relay_writes(effects) -> list[str]:
    return [type(e).__name__ for e in effects if isinstance(e, (RelayOn, RelayOff))]


def records(effects) -> list[Record]:
    return [e for e in effects if isinstance(e, Record)]


def test_happy_path() -> None:
    state, effects = run(
        [
            (0, ALLOW),
            (1, Weight(0.0, True)),  # nothing on the scale yet
            (2, Weight(15.1, False)),  # being put down
            (3, Weight(15.2, True)),  # pre-check passes: 0.2 kg residual
            (5, Weight(22.0, False)),
            (8, Weight(29.3, False)),  # at target minus pre-act: cut off
            (8.1, Weight(29.5, False)),
            (8.5, Weight(29.6, True)),
        ]
    )
    assert state.phase is Phase.COMPLETE
    assert relay_writes(effects) == ["RelayOn", "RelayOff"]
    statuses = [r.status for r in records(effects)]
    assert statuses == ["authorised", "prechecked", "filling", "settling", "complete"]
    final = records(effects)[-1].fields
    assert final["outcome"] == "ok" and final["net_kg"] == pytest.approx(14.6)
    assert records(effects)[1].fields["residual_kg"] == pytest.approx(0.2)


def test_write_ahead_record_precedes_relay_on() -> None:
    _, effects = to_filling()
    on = next(i for i, e in enumerate(effects) if isinstance(e, RelayOn))
    assert isinstance(effects[on - 1], Record) and effects[on - 1].status == "filling"


def test_rejected_scan_never_authorises() -> None:
    state, effects = run([(0, DENY)])
    assert state.phase is Phase.IDLE
    assert relay_writes(effects) == []
    verdict = next(e for e in effects if isinstance(e, Verdict))
    assert not verdict.accepted and verdict.findings[0].reason is Reason.SCRAPPED


def test_allowed_decision_without_plan_is_refused() -> None:
    state, effects = run([(0, Decided("x", Decision(True), None))])
    assert state.phase is Phase.IDLE and relay_writes(effects) == []


def test_operator_confirm_when_not_auto_start() -> None:
    manual = replace(PLAN, auto_start=False)
    state, effects = run([(0, ALLOW), (1, Weight(15.0, True))], plan=manual)
    assert state.phase is Phase.READY and relay_writes(effects) == []
    state, effects = step(state, Confirm(), at(2))
    assert state.phase is Phase.FILLING and relay_writes(effects) == ["RelayOn"]


class TestPrecheck:
    def test_tare_mismatch(self) -> None:
        state, effects = run([(0, ALLOW), (1, Weight(13.0, True))])
        assert state.phase is Phase.ABORTED and state.cause is Reason.TARE_MISMATCH
        assert "RelayOn" not in relay_writes(effects)

    def test_already_full(self) -> None:
        state, effects = run([(0, ALLOW), (1, Weight(29.4, True))])
        assert state.phase is Phase.ABORTED and state.cause is Reason.ALREADY_FULL
        assert "RelayOn" not in relay_writes(effects)

    def test_waits_for_stable(self) -> None:
        state, effects = run([(0, ALLOW), (1, Weight(15.0, False))])
        assert state.phase is Phase.AUTHORISED and relay_writes(effects) == []


class TestTrips:
    """Every trip path ends with the relay off and the fill recorded as aborted with its cause."""

    def assert_tripped(self, state: LaneState, effects, cause: Reason, phase: Phase = Phase.LOCKED) -> None:
        assert state.phase is phase and state.cause is cause
        assert relay_writes(effects)[-1] == "RelayOff"
        final = records(effects)[-1]
        assert final.status == "aborted" and final.fields["cause"] is cause

    def test_scale_lost_while_filling(self) -> None:
        state, effects = to_filling()
        state, more = step(state, ScaleLost("timeout"), at(2))
        self.assert_tripped(state, effects + more, Reason.SCALE_LOST)

    def test_max_fill_time(self) -> None:
        state, effects = to_filling()
        state, more = step(state, Tick(), at(30))
        assert state.phase is Phase.FILLING and more == []
        state, more = step(state, Tick(), at(62))
        self.assert_tripped(state, effects + more, Reason.MAX_FILL_TIME)

    def test_overfill_limit(self) -> None:
        # A reading that jumps past target and the overfill limit in one sample (a stuck valve).
        state, effects = to_filling()
        state, more = step(state, Weight(29.0, False), at(2))
        state, more2 = step(state, Weight(30.6, False), at(3))
        self.assert_tripped(state, effects + more + more2, Reason.OVERFILL_LIMIT)

    def test_overfill_limit_while_settling(self) -> None:
        state, effects = to_filling(replace(PLAN, max_inflight_kg=3.0))
        state, more = step(state, Weight(29.3, False), at(2))
        state, more2 = step(state, Weight(30.6, False), at(3))
        self.assert_tripped(state, effects + more + more2, Reason.OVERFILL_LIMIT)

    def test_weight_rising_with_relay_off(self) -> None:
        state, effects = to_filling()
        state, more = step(state, Weight(29.3, False), at(2))
        assert state.phase is Phase.SETTLING
        state, more2 = step(state, Weight(30.2, False), at(3))
        self.assert_tripped(state, effects + more + more2, Reason.WEIGHT_RISING_VALVE_OFF)

    @pytest.mark.parametrize("gross", [-5.0, 150.0])
    def test_implausible_weight(self, gross: float) -> None:
        state, effects = to_filling()
        state, more = step(state, Weight(gross, False), at(2))
        self.assert_tripped(state, effects + more, Reason.IMPLAUSIBLE_WEIGHT)

    def test_jump_is_implausible(self) -> None:
        state, effects = to_filling(replace(PLAN, max_step_kg=5.0))
        state, more = step(state, Weight(21.0, False), at(2))
        self.assert_tripped(state, effects + more, Reason.IMPLAUSIBLE_WEIGHT)

    def test_cylinder_removed(self) -> None:
        state, effects = to_filling()
        state, more = step(state, Weight(14.0, False), at(2))
        self.assert_tripped(state, effects + more, Reason.CYLINDER_REMOVED)

    def test_operator_abort(self) -> None:
        state, effects = to_filling()
        state, more = step(state, Abort(), at(2))
        self.assert_tripped(state, effects + more, Reason.OPERATOR_ABORT, Phase.ABORTED)

    def test_authorisation_expiry(self) -> None:
        state, effects = run([(0, ALLOW), (31, Tick())])
        assert state.phase is Phase.ABORTED and state.cause is Reason.AUTH_EXPIRED
        assert relay_writes(effects) == ["RelayOff"]

    def test_settle_timeout(self) -> None:
        state, effects = to_filling()
        state, _ = step(state, Weight(29.3, False), at(2))
        state, more = step(state, Tick(), at(8))
        assert state.phase is Phase.ABORTED and state.cause is Reason.SETTLE_TIMEOUT

    def test_locked_lane_refuses_scans_until_reset(self) -> None:
        state, _ = to_filling()
        state, _ = step(state, ScaleLost("timeout"), at(2))
        state, effects = step(state, ALLOW, at(3))
        assert state.phase is Phase.LOCKED
        assert effects[0].findings[0].reason is Reason.LANE_LOCKED
        state, _ = step(state, Weight(20.0, True), at(3.5))  # the scale answers again
        state, effects = step(state, Reset(), at(4))
        assert state.phase is Phase.IDLE and relay_writes(effects) == ["RelayOff"]


class TestPostcheck:
    def test_overfill_flagged_and_loud(self) -> None:
        state, effects = to_filling(replace(PLAN, max_inflight_kg=2.0))
        state, more = step(state, Weight(29.3, False), at(2))
        state, more2 = step(state, Weight(30.2, True), at(3))
        final = records(more2)[-1]
        assert state.phase is Phase.COMPLETE and final.fields["outcome"] == Reason.OVERFILLED
        assert Signal("red", True) in more2

    def test_underfill_flagged(self) -> None:
        # A pre-act set too large cuts off early. (A weight that falls after cut-off is a leak.)
        state, _ = to_filling(replace(PLAN, preact_kg=0.8))
        state, _ = step(state, Weight(28.7, False), at(2))
        state, effects = step(state, Weight(28.8, False), at(2.5))
        state, effects = step(state, Weight(28.8, True), at(3))
        assert records(effects)[-1].fields["outcome"] == Reason.UNDERFILLED

    def test_waits_for_minimum_settle_time(self) -> None:
        state, _ = to_filling()
        state, _ = step(state, Weight(29.3, False), at(2))
        state, effects = step(state, Weight(29.4, True), at(2.1))
        assert state.phase is Phase.SETTLING and effects == []


def test_scan_during_fill_changes_nothing() -> None:
    other = replace(PLAN, fill_id="f2", cylinder_id="c2")
    for phase_events in ([(0, ALLOW)], [(0, ALLOW), (1, Weight(15.2, True))]):
        before, _ = run(phase_events)
        after, effects = step(before, Decided("other", Decision(True), other), at(2))
        assert after == before
        assert effects == [Verdict("other", False, (Finding(Reason.LANE_BUSY),))]


# Exhaustive: every phase x every event kind, checking the relay invariant on each transition.

EVENTS = [
    ALLOW,
    DENY,
    Weight(0.0, True),
    Weight(15.2, True),
    Weight(22.0, False),
    Weight(29.3, False),
    Weight(29.6, True),
    Weight(31.0, True),
    Weight(-10.0, False),
    ScaleLost("timeout"),
    Tick(),
    Confirm(),
    Abort(),
    Reset(),
]


def representative_states() -> dict[Phase, LaneState]:
    manual = replace(PLAN, auto_start=False)
    states = {
        Phase.IDLE: LaneState(Phase.IDLE, since=T0),
        Phase.AUTHORISED: run([(0, ALLOW)])[0],
        Phase.READY: run([(0, ALLOW), (0.5, Weight(15.2, True))], plan=manual)[0],
        Phase.FILLING: to_filling()[0],
        Phase.SETTLING: run([(0, ALLOW), (0.5, Weight(15.2, True)), (0.7, Weight(29.3, False))])[0],
        Phase.COMPLETE: run(
            [(0, ALLOW), (0.5, Weight(15.2, True)), (0.7, Weight(29.3, False)), (1, Weight(29.5, True))]
        )[0],
        Phase.ABORTED: run([(0, ALLOW), (0.5, Abort())])[0],
        Phase.LOCKED: run([(0, ALLOW), (0.5, Weight(15.2, True)), (0.7, ScaleLost("x"))])[0],
    }
    assert {phase: s.phase for phase, s in states.items()} == {p: p for p in Phase}
    return states


@pytest.mark.parametrize(
    "phase, event", list(itertools.product(list(Phase), EVENTS)), ids=lambda v: getattr(v, "value", type(v).__name__)
)
def test_every_phase_event_pair_keeps_the_relay_invariant(phase: Phase, event) -> None:
    before = representative_states()[phase]
    after, effects = step(before, event, at(1.5))
    writes = relay_writes(effects)
    if after.relay_on and not before.relay_on:
        assert writes == ["RelayOn"]
        assert any(isinstance(e, Record) and e.status == "filling" for e in effects[: effects.index(RelayOn())])
    if before.relay_on and not after.relay_on:
        assert writes and writes[-1] == "RelayOff"
    if not after.relay_on:
        assert "RelayOn" not in writes
    if before.phase in BUSY and isinstance(event, Decided):
        assert after == before  # one accepted scan, at most one fill; scans never change a fill
    if after.phase in (Phase.ABORTED, Phase.LOCKED) and before.phase in BUSY:
        assert records(effects)[-1].status == "aborted"


def test_random_walks_keep_the_relay_invariant() -> None:
    rng = random.Random(7)
    for _ in range(300):
        state = LaneState(Phase.IDLE, since=T0)
        relay = False
        fills_started = accepted = 0
        seconds = 0.0
        for _ in range(40):
            seconds += rng.choice([0.05, 0.5, 5, 40])
            event = rng.choice(EVENTS + [Weight(rng.uniform(-1, 40), rng.random() < 0.5)])
            state, effects = step(state, event, at(seconds))
            for effect in effects:
                if isinstance(effect, RelayOn):
                    relay = True
                    fills_started += 1
                elif isinstance(effect, RelayOff):
                    relay = False
                elif isinstance(effect, Verdict) and effect.accepted:
                    accepted += 1
            assert relay == state.relay_on
        # Every RelayOn belongs to its own accepted scan: never more fills than authorisations.
        assert fills_started <= accepted


def test_single_use_authorisation() -> None:
    state, effects = to_filling()
    for seconds, event in [(2, Weight(29.3, False)), (3, Weight(29.5, True)), (4, Weight(15.2, True)), (5, Confirm())]:
        state, more = step(state, event, at(seconds))
        effects += more
    assert relay_writes(effects).count("RelayOn") == 1
    assert state.phase is Phase.COMPLETE
