"""Flow faults (NO_FLOW, LEAK), the post-fill judgement, lane resets and cylinder removal in the
pure fill machine. Time is a parameter: every figure here is simulated seconds."""

from dataclasses import replace

import pytest

from interlock.fill import (
    LaneReset,
    LaneState,
    Phase,
    Reset,
    ScaleLost,
    Signal,
    Tick,
    Weight,
    judge,
    step,
)
from interlock.reasons import TEXT, Reason

from .test_fill_machine import ALLOW, PLAN, at, records, relay_writes, run, to_filling

FLOW = replace(PLAN, no_flow_s=3.0, no_flow_kg=0.2, frozen_samples=5, leak_kg=0.2, leak_check_s=1.0)


def feed(state: LaneState, samples):  # type: ignore[no-untyped-def]
    effects: list = []
    for seconds, gross, stable in samples:
        state, more = step(state, Weight(gross, stable), at(seconds))
        effects += more
    return state, effects


def assert_tripped(state: LaneState, effects, cause: Reason) -> None:  # type: ignore[no-untyped-def]
    assert state.phase is Phase.LOCKED and state.cause is cause
    assert relay_writes(effects)[-1] == "RelayOff"
    final = records(effects)[-1]
    assert final.status == "aborted" and final.fields["cause"] is cause and final.fields["tripped"]


class TestNoFlow:
    def test_weight_that_does_not_rise_trips_after_no_flow_s(self) -> None:
        state, _ = to_filling(FLOW)  # filling from t=1 at 15.2 kg
        # Noisy but not rising: never identical, never up by 0.2 kg.
        state, effects = feed(state, [(1.5, 15.25, False), (2.5, 15.21, False), (3.9, 15.3, False)])
        assert state.phase is Phase.FILLING and effects == []
        state, effects = step(state, Weight(15.28, False), at(4.0))
        assert_tripped(state, effects, Reason.NO_FLOW)
        assert records(effects)[-1].fields["detail"]["seconds"] == 3.0

    def test_progress_moves_the_reference_on(self) -> None:
        state, _ = to_filling(FLOW)
        # Slow but steady: 0.25 kg every 2.5 s never stalls for 3 s.
        samples = [(1 + 2.5 * i, 15.2 + 0.25 * i + (0.01 if i % 2 else 0.0), False) for i in range(1, 8)]
        state, effects = feed(state, samples)
        assert state.phase is Phase.FILLING and effects == []
        state, effects = step(state, Weight(samples[-1][1] + 0.1, False), at(samples[-1][0] + 3.0))
        assert_tripped(state, effects, Reason.NO_FLOW)

    def test_identical_readings_trip_as_frozen_before_no_flow_s(self) -> None:
        state, _ = to_filling(FLOW)
        state, effects = feed(state, [(1.1, 16.0, False), (1.2, 16.0, False), (1.3, 16.0, False), (1.4, 16.0, False)])
        assert state.phase is Phase.FILLING, "four identical readings are not yet five"
        state, effects = step(state, Weight(16.0, False), at(1.5))
        assert_tripped(state, effects, Reason.NO_FLOW)
        detail = records(effects)[-1].fields["detail"]
        assert detail["frozen"] is True and detail["identical_readings"] == 5

    def test_a_changing_reading_resets_the_identical_count(self) -> None:
        state, _ = to_filling(FLOW)
        samples = [(1 + 0.1 * i, 16.0 if i % 4 else 16.05, False) for i in range(1, 20)]
        state, effects = feed(state, samples)
        assert state.phase is Phase.FILLING and effects == []

    def test_no_flow_is_judged_only_while_filling(self) -> None:
        manual = replace(FLOW, auto_start=False)
        state, _ = run([(0, ALLOW), (0.5, Weight(15.2, True))], plan=manual)
        assert state.phase is Phase.READY
        state, effects = feed(state, [(t, 15.2, True) for t in range(1, 20)])
        assert state.phase is Phase.READY and effects == []


class TestLeak:
    def settling(self):  # type: ignore[no-untyped-def]
        state, _ = to_filling(FLOW)
        state, effects = step(state, Weight(29.2, False), at(2))
        assert state.phase is Phase.SETTLING and relay_writes(effects) == ["RelayOff"]
        return state

    def test_fall_below_cutoff_while_settling_is_a_leak(self) -> None:
        state = self.settling()
        state, effects = feed(state, [(2.1, 29.3, False), (2.2, 29.1, False)])
        assert state.phase is Phase.SETTLING, "0.1 kg below cut-off is within leak_kg"
        state, effects = step(state, Weight(28.95, False), at(2.3))
        assert_tripped(state, effects, Reason.LEAK)
        assert records(effects)[-1].fields["detail"]["fall_kg"] == pytest.approx(0.25)

    def test_fall_during_the_recheck_is_a_leak(self) -> None:
        state = self.settling()
        state, effects = feed(state, [(2.3, 29.6, False), (2.5, 29.6, True)])
        assert state.phase is Phase.SETTLING and state.recheck_gross_kg == 29.6, "the re-check holds 29.6"
        state, effects = feed(state, [(2.9, 29.45, False)])
        assert state.phase is Phase.SETTLING
        state, effects = step(state, Weight(29.35, False), at(3.2))
        assert_tripped(state, effects, Reason.LEAK)

    def test_a_steady_weight_completes_after_the_recheck(self) -> None:
        state = self.settling()
        state, effects = feed(state, [(2.3, 29.6, True), (2.8, 29.6, True)])
        assert state.phase is Phase.SETTLING and effects == [], "held 0.5 s of the 1 s re-check"
        state, effects = step(state, Weight(29.58, True), at(3.3))
        assert state.phase is Phase.COMPLETE
        assert records(effects)[-1].fields["outcome"] == "ok"

    def test_recheck_longer_than_the_settle_timeout_never_completes(self) -> None:
        state = self.settling()
        state, _ = feed(state, [(2.5, 29.6, True)])
        state, effects = step(state, Tick(), at(2 + PLAN.settle_timeout_s + 0.1))
        assert state.phase is Phase.ABORTED and state.cause is Reason.SETTLE_TIMEOUT


def test_cylinder_lifted_off_mid_fill_is_removed_not_implausible() -> None:
    # max_step_kg is small enough that the lift is also a big step: removal must win.
    state, effects = to_filling(replace(PLAN, max_step_kg=3.0))
    state, more = step(state, Weight(0.02, False), at(2))
    assert_tripped(state, effects + more, Reason.CYLINDER_REMOVED)


def test_a_step_down_that_leaves_weight_on_the_platter_is_implausible() -> None:
    # A glitch of -10 kg is not a lift: 5.2 kg is more than a fifth of the 15 kg tare.
    state, effects = to_filling(replace(PLAN, max_step_kg=3.0))
    state, more = step(state, Weight(5.2, False), at(2))
    assert_tripped(state, effects + more, Reason.IMPLAUSIBLE_WEIGHT)


def test_cylinder_lifted_off_while_settling_is_removed() -> None:
    state, _ = to_filling()  # max_step_kg 20: the lift from 29.3 kg is a bigger step still
    state, _ = step(state, Weight(29.3, False), at(2))
    state, effects = step(state, Weight(0.0, False), at(2.2))
    assert_tripped(state, effects, Reason.CYLINDER_REMOVED)


@pytest.mark.parametrize(
    "gross, outcome, net",
    [(29.5, "ok", 14.5), (30.0, "ok", 15.0), (30.01, Reason.OVERFILLED, 15.01), (29.0, "ok", 14.0), (28.99, Reason.UNDERFILLED, 13.99)],
)
def test_judge_is_the_postcheck_verdict(gross: float, outcome: str, net: float) -> None:
    verdict = judge(15.0, 14.5, 0.5, gross)
    assert verdict.outcome == outcome and verdict.net_kg == pytest.approx(net)
    assert verdict.flagged == (outcome != "ok")


class TestReset:
    def tripped(self, cause_event, *samples):  # type: ignore[no-untyped-def]
        state, _ = to_filling()
        state, _ = step(state, cause_event, at(2))
        assert state.phase is Phase.LOCKED
        return feed(state, samples)[0]

    def reset(self, state: LaneState):  # type: ignore[no-untyped-def]
        state, effects = step(state, Reset("op-zhang", "scale cable reseated", "command"), at(9))
        outcome = next(e for e in effects if isinstance(e, LaneReset))
        assert (outcome.by, outcome.why, outcome.source) == ("op-zhang", "scale cable reseated", "command")
        return state, effects, outcome

    def test_refused_while_the_scale_is_still_lost(self) -> None:
        state = self.tripped(ScaleLost("timeout"))
        state, effects, outcome = self.reset(state)
        assert state.phase is Phase.LOCKED and not outcome.accepted
        assert outcome.refused is Reason.SCALE_LOST and outcome.cause is Reason.SCALE_LOST
        assert relay_writes(effects) == []

    def test_refused_while_the_reading_is_implausible(self) -> None:
        state = self.tripped(Weight(500.0, False), (3, 500.0, False))
        state, _, outcome = self.reset(state)
        assert state.phase is Phase.LOCKED and outcome.refused is Reason.IMPLAUSIBLE_WEIGHT

    @pytest.mark.parametrize("cause", [Reason.OVERFILL_LIMIT, Reason.LEAK])
    def test_refused_while_the_cylinder_is_still_on_the_scale(self, cause: Reason) -> None:
        state, _ = to_filling(FLOW)
        trip = [(2, 30.6, False)] if cause is Reason.OVERFILL_LIMIT else [(2, 29.2, False), (2.5, 28.5, False)]
        state, _ = feed(state, trip)
        assert state.cause is cause
        state, _, outcome = self.reset(state)
        assert state.phase is Phase.LOCKED and outcome.refused is Reason.CYLINDER_ON_SCALE
        state, _ = feed(state, [(10, 0.01, True)])
        state, effects, outcome = self.reset(state)
        assert state.phase is Phase.IDLE and outcome.accepted

    def test_accepted_once_the_scale_answers(self) -> None:
        state = self.tripped(ScaleLost("timeout"), (5, 15.3, True))
        state, effects, outcome = self.reset(state)
        assert state.phase is Phase.IDLE and outcome.accepted and outcome.refused is None
        assert relay_writes(effects) == ["RelayOff"] and Signal("off") in effects

    def test_reset_does_nothing_unless_locked(self) -> None:
        state, _ = to_filling()
        after, effects = step(state, Reset("op-zhang", "", "command"), at(2))
        assert after == state and effects == []


def test_every_new_reason_speaks_both_languages() -> None:
    for reason in (Reason.NO_FLOW, Reason.LEAK, Reason.CYLINDER_ON_SCALE):
        zh, en = TEXT[reason]
        assert zh and en and zh != en
