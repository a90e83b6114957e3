"""Cut-off on the filtered weight, predicted between polls, with the learned pre-act from the plan:
the machine's side. Every trip check still acts on each raw reading."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from interlock import cutoff
from interlock.fill import BUSY, CutoffDue, LaneState, Phase, Record, RelayOff, Tick, Weight, step
from interlock.reasons import Reason

from .test_fill_machine import ALLOW, PLAN, at, records, relay_writes, run, to_filling

FLOW = 0.5  # kg/s
POLL = 0.1  # s
PREDICTING = replace(PLAN, predict_cutoff=True)


def ramp(state: LaneState, start_s: float, until_kg: float, noise: float = 0.0, seed: int = 1):
    """Feed readings of a steady 0.5 kg/s ramp every 0.1 s (from 15.2 kg at 1 s) until the machine
    predicts a cut-off or the weight reaches until_kg; returns (state, effects, time of the last)."""
    rng = random.Random(seed)
    effects: list = []
    t = start_s
    while state.phase is Phase.FILLING:
        t = round(t + POLL, 6)
        true = 15.213 + FLOW * (t - 1.0)  # 13 g off the poll grid: crossings fall between polls
        if true > until_kg:
            break
        state, produced = step(state, Weight(true + rng.gauss(0, noise), False), at(t))
        effects += produced
        if state.cutoff_due_at is not None and produced == []:
            due = (state.cutoff_due_at - at(t)).total_seconds()
            if due < POLL:
                return state, effects, t
    return state, effects, t


def test_flow_and_filter_on_a_steady_ramp() -> None:
    samples = [(t / 10, 20.0 + 0.05 * t) for t in range(11)]
    measured = cutoff.flow(samples)
    assert measured is not None and measured.steady and measured.kg_per_s == pytest.approx(0.5)
    assert cutoff.filtered(samples, 0.5) == pytest.approx(20.5), "carried forward: no lag"
    assert cutoff.filtered(samples, None) == pytest.approx(20.45), "without the flow: one poll behind"


def test_a_flow_that_changes_is_not_steady() -> None:
    samples = [(t / 10, 20.0 + (0.02 * t if t < 5 else 0.1 + 0.08 * (t - 5))) for t in range(11)]
    measured = cutoff.flow(samples)
    assert measured is not None and not measured.steady


def test_a_single_noisy_reading_above_the_cutoff_does_not_end_the_fill() -> None:
    state, _ = to_filling()
    for t, w in [(2, 20.0), (3, 22.0), (4, 24.0), (5, 29.9), (6, 26.0)]:  # 29.9: a spike over 29.2
        state, effects = step(state, Weight(w, False), at(t))
        assert state.phase is Phase.FILLING and not relay_writes(effects)


def test_a_single_reading_above_the_overfill_limit_still_trips_at_once() -> None:
    state, _ = to_filling()
    state, _ = step(state, Weight(20.0, False), at(2))
    state, effects = step(state, Weight(PLAN.overfill_limit_kg + 0.05, False), at(3))
    assert state.phase is Phase.LOCKED and state.cause is Reason.OVERFILL_LIMIT
    assert relay_writes(effects) == ["RelayOff"]


def test_predicted_cutoff_fires_between_polls_at_the_predicted_weight() -> None:
    state, _ = to_filling(PREDICTING)
    threshold = PLAN.target_gross_kg - PLAN.preact_kg
    state, effects, last = ramp(state, 1.0, threshold + 1)
    assert not relay_writes(effects)
    due = state.cutoff_due_at
    assert due is not None and at(last) < due < at(last + POLL)
    early, nothing = step(state, CutoffDue(), due - (due - at(last)) / 2)
    assert early is state and nothing == [], "a timer that wakes early changes nothing"
    state, effects = step(state, CutoffDue(), due)
    assert state.phase is Phase.SETTLING and relay_writes(effects) == ["RelayOff"]
    settling = records(effects)[0].fields
    assert settling["cutoff_by"] == "predicted"
    assert settling["cutoff_gross_kg"] == pytest.approx(threshold, abs=0.005)


def test_sample_crossing_without_prediction_overshoots_by_up_to_a_poll() -> None:
    state, _ = to_filling()
    threshold = PLAN.target_gross_kg - PLAN.preact_kg
    state, effects, _ = ramp(state, 1.0, threshold + 1)
    assert state.phase is Phase.SETTLING and state.cutoff_due_at is None
    fields = records(effects)[-1].fields
    assert fields["cutoff_by"] == "sample"
    assert threshold <= fields["cutoff_gross_kg"] < threshold + FLOW * POLL + 0.01


def test_an_unsteady_flow_is_never_extrapolated() -> None:
    state, _ = to_filling(PREDICTING)
    t, w = 1.0, 15.2
    for i in range(40):
        t += POLL
        w += 0.02 if i % 4 else 0.3  # surges: the halves of the window disagree
        state, _ = step(state, Weight(w, False), at(t))
        if state.phase is not Phase.FILLING:
            break
        measured = cutoff.flow(state.samples)
        if measured is None or not measured.steady:
            assert state.cutoff_due_at is None


def test_the_learned_preact_comes_from_the_plan_and_is_clamped() -> None:
    learned = replace(PREDICTING, inflight_s=0.4, preact_min_kg=0.05, preact_max_kg=0.15)
    state, _ = to_filling(learned)
    state, effects, last = ramp(state, 1.0, 40.0)
    state, effects = step(state, CutoffDue(), state.cutoff_due_at)
    fields = records(effects)[0].fields
    assert fields["preact_kg"] == pytest.approx(0.15), "0.4 s x 0.5 kg/s = 0.2 kg, clamped to 0.15"
    assert fields["cutoff_gross_kg"] == pytest.approx(PLAN.target_gross_kg - 0.15, abs=0.005)
    plain = replace(PREDICTING, inflight_s=0.2, preact_max_kg=1.0)
    state, _ = to_filling(plain)
    state, _, _ = ramp(state, 1.0, 40.0)
    _, effects = step(state, CutoffDue(), state.cutoff_due_at)
    assert records(effects)[0].fields["preact_kg"] == pytest.approx(0.1, abs=0.005)


def _every_phase() -> list[LaneState]:
    """A state of every phase, each with a pending prediction left over where one can be."""
    filling, _ = to_filling(PREDICTING)
    filling, _, last = ramp(filling, 1.0, 40.0)
    assert filling.cutoff_due_s is not None
    states = [replace(filling, phase=phase) for phase in Phase if phase is not Phase.FILLING]
    states.append(run([])[0])
    states.append(run([(0, ALLOW)])[0])
    return states


@pytest.mark.parametrize("state", _every_phase(), ids=lambda s: s.phase.value)
def test_cutoff_due_never_acts_outside_filling(state: LaneState) -> None:
    assert state.cutoff_due_at is None
    for seconds in (0, 10, 1000):
        after, effects = step(state, CutoffDue(), at(seconds))
        assert after == state and effects == []


def test_a_pending_prediction_never_skips_a_trip_check() -> None:
    state, _ = to_filling(PREDICTING)
    state, _, last = ramp(state, 1.0, 40.0)
    assert state.cutoff_due_at is not None
    # A reading that trips arrives before the timer: the trip wins, and the timer is then void.
    tripped, effects = step(state, Weight(PLAN.overfill_limit_kg + 0.1, False), at(last + 0.01))
    assert tripped.phase is Phase.LOCKED and relay_writes(effects) == ["RelayOff"]
    assert step(tripped, CutoffDue(), state.cutoff_due_at) == (tripped, [])
    # So does the fill-time limit, checked on the tick that follows every poll.
    slow = replace(state, since=at(last - PLAN.max_fill_s - 1))
    timed_out, effects = step(slow, Tick(), at(last))
    assert timed_out.phase is Phase.LOCKED and timed_out.cause is Reason.MAX_FILL_TIME
    # After a predicted cut-off every SETTLING reading is still checked: gas with the valve off.
    settling, _ = step(state, CutoffDue(), state.cutoff_due_at)
    rising, effects = step(settling, Weight(settling.cutoff_gross_kg + PLAN.max_inflight_kg + 0.1, False), at(last + 0.3))
    assert rising.phase is Phase.LOCKED and rising.cause is Reason.WEIGHT_RISING_VALVE_OFF
    assert relay_writes(effects) == ["RelayOff"]


def test_noise_on_the_ramp_never_cuts_off_early() -> None:
    threshold = PLAN.target_gross_kg - PLAN.preact_kg
    for seed in range(30):
        state, _ = to_filling()
        state, effects, _ = ramp(state, 1.0, threshold + 1, noise=0.01, seed=seed)
        cut = [r for r in records(effects) if r.status == "settling"]
        assert cut, "the fill was cut off"
        assert cut[0].fields["cutoff_gross_kg"] >= threshold - 0.01
        assert not any(isinstance(e, RelayOff) for e in effects[: effects.index(cut[0]) - 1])
        assert state.phase in BUSY
