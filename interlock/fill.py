"""The fill state machine: one per lane, pure, `step(state, event, now) -> (state, effects)`.

The valve relay is energised only by the transition into FILLING and every way out of FILLING
emits RelayOff, so "relay on" and "phase is FILLING" are the same fact. The lane carries out the
effects in order; a Record always precedes the RelayOn it authorises (write ahead).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from . import cutoff
from .reasons import Reason
from .rules import Decision, Finding


class Phase(StrEnum):
    IDLE = "idle"
    AUTHORISED = "authorised"  # accepted scan, waiting for the cylinder and the pre-fill check
    READY = "ready"  # pre-check passed, waiting for the operator to start
    FILLING = "filling"  # the only phase with the relay on
    SETTLING = "settling"  # relay off, waiting for a stable reading for the post-fill check
    COMPLETE = "complete"
    ABORTED = "aborted"
    LOCKED = "locked"  # tripped: relay off and scans refused until an operator resets the lane


# Below this fraction of the cylinder's tare the platter is empty: the cylinder has been lifted off.
EMPTY_PLATTER = 0.2

BUSY = frozenset({Phase.AUTHORISED, Phase.READY, Phase.FILLING, Phase.SETTLING})


@dataclass(frozen=True)
class Plan:
    """Everything one fill needs, fixed at authorisation time."""

    fill_id: str
    cylinder_id: str
    code: str
    tare_kg: float
    target_net_kg: float
    tolerance_kg: float
    preact_kg: float
    overfill_margin_kg: float
    tare_tolerance_kg: float
    capacity_kg: float
    max_fill_s: float
    auth_timeout_s: float
    settle_min_s: float
    settle_timeout_s: float
    max_inflight_kg: float
    max_step_kg: float
    auto_start: bool = True
    # Learned in-flight time (seconds of flow) from the lane's store; None: use preact_kg as is.
    inflight_s: float | None = None
    preact_min_kg: float = 0.0  # the learned pre-act is clamped to these
    preact_max_kg: float = 1.0
    predict_cutoff: bool = False  # cut off between polls when the flow is steady
    # Flow faults: the valve is on but the net weight has not risen by no_flow_kg for no_flow_s,
    # or frozen_samples readings in a row are identical (see _flow_fault).
    no_flow_s: float = 5.0
    no_flow_kg: float = 0.2
    frozen_samples: int = 20
    # After cut-off, with the valve off: a fall of more than leak_kg is a leak. The fill completes
    # only once its reading has held for leak_check_s after the first stable one (the re-check).
    leak_kg: float = 0.2
    leak_check_s: float = 2.0

    @property
    def target_gross_kg(self) -> float:
        return self.tare_kg + self.target_net_kg

    @property
    def overfill_limit_kg(self) -> float:
        return self.target_gross_kg + self.overfill_margin_kg


@dataclass(frozen=True)
class LaneState:
    phase: Phase = Phase.IDLE
    since: datetime | None = None
    plan: Plan | None = None
    start_gross_kg: float | None = None
    cutoff_gross_kg: float | None = None
    last_gross_kg: float | None = None
    cause: Reason | None = None
    # While FILLING: recent readings (seconds since the fill started, gross kg), the last steady
    # flow, and when the filtered weight is predicted to reach the cut-off (seconds since start).
    samples: tuple[cutoff.Sample, ...] = ()
    flow_kg_per_s: float | None = None
    cutoff_due_s: float | None = None
    preact_kg: float | None = None  # the pre-act the cut-off used
    # The scale's own fault from the last poll (None once it answers again): a reset waits for it.
    scale_fault: Reason | None = None
    # FILLING: the weight and time the flow was last seen to progress, and how many readings in a
    # row were identical.
    flow_ref_kg: float | None = None
    flow_ref_at: datetime | None = None
    repeats: int = 0
    # SETTLING: when the post-fill re-check began, and the stable weight it holds the cylinder to.
    recheck_at: datetime | None = None
    recheck_gross_kg: float | None = None

    @property
    def relay_on(self) -> bool:
        return self.phase is Phase.FILLING

    @property
    def cutoff_due_at(self) -> datetime | None:
        """When the lane should send CutoffDue: only while FILLING, only with a steady flow."""
        if self.phase is not Phase.FILLING or self.cutoff_due_s is None or self.since is None:
            return None
        return self.since + timedelta(seconds=self.cutoff_due_s)


# Events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    """A scan was parsed and evaluated; `plan` is present only when the rules allowed it."""

    code: str
    decision: Decision
    plan: Plan | None = None


@dataclass(frozen=True)
class Weight:
    gross_kg: float
    stable: bool


@dataclass(frozen=True)
class ScaleLost:
    """The scale could not be read, or reported that it cannot be trusted."""

    detail: str
    cause: Reason = Reason.SCALE_LOST


@dataclass(frozen=True)
class Tick:
    pass


@dataclass(frozen=True)
class CutoffDue:
    """The lane's timer: the moment the machine predicted for the cut-off has come (between polls)."""


@dataclass(frozen=True)
class Confirm:
    pass


@dataclass(frozen=True)
class Abort:
    pass


@dataclass(frozen=True)
class Reset:
    """A person resets a locked lane: who, why and how (button, reset input, command)."""

    by: str = ""
    why: str = ""
    source: str = ""


@dataclass(frozen=True)
class Acknowledge:
    """A person acknowledges the alarm that holds a lane (an overfill found at start-up)."""

    by: str = ""
    why: str = ""
    source: str = ""


Event = Decided | Weight | ScaleLost | Tick | CutoffDue | Confirm | Abort | Reset | Acknowledge
# A timer may wake a little before the moment it was set for; that early is early enough.
DUE_EARLY_S = 0.002


# Effects ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelayOn:
    pass


@dataclass(frozen=True)
class RelayOff:
    reason: Reason | None = None


@dataclass(frozen=True)
class Signal:
    light: str  # "green", "amber", "red" or "off"
    buzzer: bool = False


@dataclass(frozen=True)
class Verdict:
    """What the operator is told about a scan."""

    code: str
    accepted: bool
    findings: tuple[Finding, ...]
    fill_id: str | None = None


@dataclass(frozen=True)
class Record:
    """A durable milestone of the fill: the lane commits it before carrying out later effects."""

    fill_id: str
    status: str
    fields: dict[str, Any] = field(default_factory=dict)
    # Whether a final record is reported to the city (when its relay was ever energised): an
    # interrupted fill whose weight shows no gas went in is kept locally only.
    report: bool = True

    @property
    def final(self) -> bool:
        return self.status in ("complete", "aborted")


@dataclass(frozen=True)
class LaneReset:
    """The outcome of a Reset, for the journal: refused (with the fault still showing) or done."""

    accepted: bool
    by: str
    why: str
    source: str
    cause: Reason | None  # the trip being reset
    refused: Reason | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    kind: str = "reset"  # or "ack": an acknowledged alarm hold


Effect = RelayOn | RelayOff | Signal | Verdict | Record | LaneReset


def step(state: LaneState, event: Event, now: datetime) -> tuple[LaneState, list[Effect]]:
    match event:
        case Decided():
            return _on_decided(state, event, now)
        case Weight():
            return _on_weight(state, event, now)
        case ScaleLost():
            state = replace(state, scale_fault=event.cause)
            if state.phase is Phase.FILLING:
                return _trip(state, event.cause, now, {"detail": event.detail})
            if state.phase in BUSY:
                return _abort(state, event.cause, now, {"detail": event.detail})
            return state, []
        case Tick():
            return _on_tick(state, now)
        case CutoffDue():
            return _on_cutoff_due(state, now)
        case Confirm():
            if state.phase is Phase.READY:
                return _start(state, now)
            if held(state):  # the confirm button acknowledges an alarm hold
                return _acknowledge(state, Acknowledge(source="confirm_button"), now)
            return state, []
        case Acknowledge():
            if held(state):
                return _acknowledge(state, event, now)
            return state, []
        case Abort():
            if state.phase in BUSY:
                return _abort(state, Reason.OPERATOR_ABORT, now)
            return state, []
        case Reset():
            if state.phase is Phase.LOCKED:
                return _reset(state, event, now)
            return state, []
    raise TypeError(f"not a fill event: {event!r}")


def _on_decided(state: LaneState, event: Decided, now: datetime) -> tuple[LaneState, list[Effect]]:
    # A scan during a fill never changes that fill: it is refused and logged, nothing more.
    if state.phase in BUSY:
        return state, [Verdict(event.code, False, (Finding(Reason.LANE_BUSY),))]
    if state.phase is Phase.LOCKED:
        return state, [Verdict(event.code, False, (Finding(Reason.LANE_LOCKED),))]
    if not event.decision.allowed or event.plan is None:
        return state, [Verdict(event.code, False, event.decision.findings), Signal("red", True)]
    plan = event.plan
    authorised = LaneState(Phase.AUTHORISED, since=now, plan=plan)
    return authorised, [
        Record(
            plan.fill_id,
            "authorised",
            {
                "cylinder_id": plan.cylinder_id,
                "code": plan.code,
                "tare_kg": plan.tare_kg,
                "target_net_kg": plan.target_net_kg,
                "authorised_at": now,
            },
        ),
        Verdict(event.code, True, event.decision.findings, plan.fill_id),
        Signal("green"),
    ]


def _on_weight(state: LaneState, event: Weight, now: datetime) -> tuple[LaneState, list[Effect]]:
    plan = state.plan
    if plan is None or state.phase not in BUSY:
        return replace(state, last_gross_kg=event.gross_kg, scale_fault=None), []
    gross = event.gross_kg
    previous = state.last_gross_kg
    state = replace(state, last_gross_kg=gross, scale_fault=None)
    if state.phase is Phase.AUTHORISED:
        return _precheck(state, plan, event, now)
    if state.phase is Phase.READY:
        return state, []
    detail = {"gross_kg": gross}
    if _implausible(plan, gross):
        return _trip(state, Reason.IMPLAUSIBLE_WEIGHT, now, detail)
    assert state.start_gross_kg is not None
    jumped = previous is not None and abs(gross - previous) > plan.max_step_kg
    # A cylinder lifted off leaves a nearly empty platter, which is also a big step down: name it
    # for what it is before the step check. A step that lands elsewhere is a reading not to trust.
    if gross < plan.tare_kg * EMPTY_PLATTER or (not jumped and gross < state.start_gross_kg - plan.tare_tolerance_kg):
        return _trip(state, Reason.CYLINDER_REMOVED, now, detail)
    if jumped:
        return _trip(state, Reason.IMPLAUSIBLE_WEIGHT, now, detail)
    if gross > plan.overfill_limit_kg:
        return _trip(state, Reason.OVERFILL_LIMIT, now, detail)
    if state.phase is Phase.FILLING:
        tracked, effects = _track(state, plan, gross, now)
        if tracked.phase is not Phase.FILLING:
            return tracked, effects  # cut off: the valve is closing whatever the flow did
        tracked, stalled = flow_fault(tracked, plan, gross, previous, now)
        if stalled is not None:
            return _trip(tracked, Reason.NO_FLOW, now, stalled)
        return tracked, effects
    return _on_settling_weight(state, plan, event, now)


def _implausible(plan: Plan, gross: float) -> bool:
    return gross < -0.02 * plan.capacity_kg or gross > plan.capacity_kg


def flow_fault(
    state: LaneState, plan: Plan, gross: float, previous: float | None, now: datetime
) -> tuple[LaneState, dict[str, Any] | None]:
    """While the valve is on: the state with its flow reference moved on, and the trip detail when
    the flow has stopped.

    Two symptoms, one cause code (NO_FLOW): the net weight has not risen by no_flow_kg within
    no_flow_s, or frozen_samples readings in a row are bit-identical. The second is the quicker
    sign of a frozen indicator without a heartbeat, but from the weight alone it cannot be told
    apart from an empty supply: a stable indicator repeats its value exactly when nothing flows.
    Either way gas is not going in as commanded, so the valve closes; the detail says which
    symptom it was.
    """
    repeats = state.repeats + 1 if previous is not None and gross == previous else 0
    state = replace(state, repeats=repeats)
    if repeats + 1 >= plan.frozen_samples:
        return state, {"gross_kg": gross, "identical_readings": repeats + 1, "frozen": True}
    assert state.flow_ref_kg is not None and state.flow_ref_at is not None
    if gross >= state.flow_ref_kg + plan.no_flow_kg:
        return replace(state, flow_ref_kg=gross, flow_ref_at=now), None
    stalled_s = (now - state.flow_ref_at).total_seconds()
    if stalled_s >= plan.no_flow_s:
        return state, {"gross_kg": gross, "rise_kg": round(gross - state.flow_ref_kg, 3), "seconds": round(stalled_s, 1)}
    return state, None


def _on_settling_weight(
    state: LaneState, plan: Plan, event: Weight, now: datetime
) -> tuple[LaneState, list[Effect]]:
    """The relay is off: only the valve's in-flight gas may still arrive, and nothing may leave."""
    gross = event.gross_kg
    assert state.cutoff_gross_kg is not None
    if gross > state.cutoff_gross_kg + plan.max_inflight_kg:
        return _trip(state, Reason.WEIGHT_RISING_VALVE_OFF, now, {"gross_kg": gross})
    held = max(state.cutoff_gross_kg, state.recheck_gross_kg or state.cutoff_gross_kg)
    if gross < held - plan.leak_kg:
        return _trip(state, Reason.LEAK, now, {"gross_kg": gross, "held_kg": round(held, 3), "fall_kg": round(held - gross, 3)})
    if not event.stable or (now - _since(state)).total_seconds() < plan.settle_min_s:
        return state, []
    if state.recheck_at is None:
        # The re-check: the first stable reading must hold (no leak) for leak_check_s.
        state = replace(state, recheck_at=now, recheck_gross_kg=gross)
    if (now - state.recheck_at).total_seconds() >= plan.leak_check_s:
        return _postcheck(state, plan, gross, now)
    return state, []


def _precheck(
    state: LaneState, plan: Plan, event: Weight, now: datetime
) -> tuple[LaneState, list[Effect]]:
    gross = event.gross_kg
    # Until something tare-sized sits still on the scale the operator is still placing it.
    if not event.stable or gross < plan.tare_kg / 2:
        return state, []
    residual = gross - plan.tare_kg
    detail = {"gross_kg": gross, "tare_kg": plan.tare_kg}
    if residual < -plan.tare_tolerance_kg:
        return _abort(state, Reason.TARE_MISMATCH, now, detail)
    if gross >= plan.target_gross_kg - plan.tolerance_kg:
        return _abort(state, Reason.ALREADY_FULL, now, detail)
    ready = replace(state, phase=Phase.READY, since=now, start_gross_kg=gross)
    checked = Record(
        plan.fill_id, "prechecked", {"start_gross_kg": gross, "residual_kg": round(residual, 3)}
    )
    if plan.auto_start:
        started, effects = _start(ready, now)
        return started, [checked, *effects]
    return ready, [checked, Signal("amber")]


def _track(state: LaneState, plan: Plan, gross: float, now: datetime) -> tuple[LaneState, list[Effect]]:
    """A FILLING reading that tripped nothing: cut off on the filtered weight, or predict when to.

    The trip checks above act on the raw reading, before and whatever this filter says: a single
    reading above the overfill limit trips at once (the fail-safe direction), while the same
    reading above the cut-off only is outvoted by its neighbours and cannot end a fill early.
    """
    elapsed = (now - _since(state)).total_seconds()
    samples = cutoff.window((*state.samples, (elapsed, gross)), elapsed)
    measured = cutoff.flow(samples)
    steady = measured.kg_per_s if measured is not None and measured.steady else None
    rate = steady if steady is not None else state.flow_kg_per_s
    preact = _preact(plan, rate)
    threshold = plan.target_gross_kg - preact
    state = replace(state, samples=samples, flow_kg_per_s=rate, cutoff_due_s=None)
    weight = cutoff.filtered(samples, rate)
    if weight >= threshold:
        return _cut(state, plan, now, weight, preact, "sample")
    if plan.predict_cutoff and steady is not None:
        state = replace(state, cutoff_due_s=cutoff.crossing_s(samples, steady, threshold))
    return state, []


def _preact(plan: Plan, kg_per_s: float | None) -> float:
    if plan.inflight_s is None or kg_per_s is None:
        return plan.preact_kg
    return min(plan.preact_max_kg, max(plan.preact_min_kg, plan.inflight_s * kg_per_s))


def _on_cutoff_due(state: LaneState, now: datetime) -> tuple[LaneState, list[Effect]]:
    plan = state.plan
    if state.phase is not Phase.FILLING or plan is None or state.cutoff_due_s is None or not state.samples:
        return state, []
    elapsed = (now - _since(state)).total_seconds()
    if elapsed < state.cutoff_due_s - DUE_EARLY_S or state.flow_kg_per_s is None:
        return state, []
    newest = state.samples[-1][0]
    weight = cutoff.filtered(state.samples, state.flow_kg_per_s) + state.flow_kg_per_s * (elapsed - newest)
    return _cut(state, plan, now, weight, _preact(plan, state.flow_kg_per_s), "predicted")


def _cut(
    state: LaneState, plan: Plan, now: datetime, weight: float, preact: float, by: str
) -> tuple[LaneState, list[Effect]]:
    settling = replace(
        state, phase=Phase.SETTLING, since=now, cutoff_gross_kg=weight, cutoff_due_s=None, preact_kg=preact
    )
    fields = {
        "cutoff_at": now,
        "cutoff_gross_kg": round(weight, 3),
        "cutoff_by": by,
        "preact_kg": round(preact, 3),
        "flow_kg_per_s": None if state.flow_kg_per_s is None else round(state.flow_kg_per_s, 4),
    }
    return settling, [RelayOff(), Record(plan.fill_id, "settling", fields)]


def _start(state: LaneState, now: datetime) -> tuple[LaneState, list[Effect]]:
    assert state.plan is not None
    filling = replace(
        state, phase=Phase.FILLING, since=now, samples=(), flow_kg_per_s=None, cutoff_due_s=None,
        flow_ref_kg=state.start_gross_kg, flow_ref_at=now, repeats=0,
    )
    return filling, [Record(state.plan.fill_id, "filling", {"started_at": now}), RelayOn(), Signal("green")]


@dataclass(frozen=True)
class Judgement:
    net_kg: float
    outcome: str  # "ok", OVERFILLED or UNDERFILLED

    @property
    def flagged(self) -> bool:
        return self.outcome != "ok"


def judge(tare_kg: float, target_net_kg: float, tolerance_kg: float, gross_kg: float) -> Judgement:
    """The post-fill verdict on a cylinder's mass, the same for a completed fill and for an
    interrupted one weighed at the next start."""
    net = gross_kg - tare_kg
    if net > target_net_kg + tolerance_kg:
        return Judgement(round(net, 3), Reason.OVERFILLED)
    if net < target_net_kg - tolerance_kg:
        return Judgement(round(net, 3), Reason.UNDERFILLED)
    return Judgement(round(net, 3), "ok")


def _postcheck(
    state: LaneState, plan: Plan, gross: float, now: datetime
) -> tuple[LaneState, list[Effect]]:
    verdict = judge(plan.tare_kg, plan.target_net_kg, plan.tolerance_kg, gross)
    fields = {"finished_at": now, "final_gross_kg": gross, "net_kg": verdict.net_kg, "outcome": verdict.outcome}
    done = replace(state, phase=Phase.COMPLETE, since=now)
    # An overfilled cylinder must be decanted: the operator hears it, it is never silent.
    signal = Signal("red", True) if verdict.flagged else Signal("green", True)
    return done, [Record(plan.fill_id, "complete", fields), signal]


def _on_tick(state: LaneState, now: datetime) -> tuple[LaneState, list[Effect]]:
    plan = state.plan
    if plan is None or state.phase not in BUSY:
        return state, []
    elapsed = (now - _since(state)).total_seconds()
    if state.phase in (Phase.AUTHORISED, Phase.READY) and elapsed > plan.auth_timeout_s:
        return _abort(state, Reason.AUTH_EXPIRED, now)
    if state.phase is Phase.FILLING and elapsed > plan.max_fill_s:
        return _trip(state, Reason.MAX_FILL_TIME, now, {"elapsed_s": round(elapsed, 1)})
    if state.phase is Phase.SETTLING and elapsed > plan.settle_timeout_s:
        return _abort(state, Reason.SETTLE_TIMEOUT, now)
    return state, []


# Trips whose cylinder must leave the scale (to be decanted or looked at) before the lane serves
# again. A fault the scale itself reports blocks a reset whatever the trip was.
CYLINDER_CAUSES = frozenset({Reason.OVERFILL_LIMIT, Reason.LEAK, Reason.OVERFILLED})


def _reset(state: LaneState, event: Reset, now: datetime) -> tuple[LaneState, list[Effect]]:
    showing, detail = fault_showing(state)
    result = LaneReset(showing is None, event.by, event.why, event.source, state.cause, showing, detail)
    if showing is not None:
        return state, [result]
    return LaneState(Phase.IDLE, since=now, last_gross_kg=state.last_gross_kg), [RelayOff(), result, Signal("off")]


# Causes that hold a lane for an acknowledgement, not a reset: the lane itself is fine, but the
# operator must know (an interrupted fill found overfilled at start-up).
HOLD_CAUSES = frozenset({Reason.OVERFILLED})


def held(state: LaneState) -> bool:
    return state.phase is Phase.LOCKED and state.cause in HOLD_CAUSES


def _acknowledge(state: LaneState, event: Acknowledge, now: datetime) -> tuple[LaneState, list[Effect]]:
    result = LaneReset(True, event.by, event.why, event.source, state.cause, kind="ack")
    return LaneState(Phase.IDLE, since=now, last_gross_kg=state.last_gross_kg), [RelayOff(), result, Signal("off")]


def fault_showing(state: LaneState) -> tuple[Reason | None, dict[str, Any]]:
    """Why a locked lane may not be reset yet (None when it may), judged on the latest poll."""
    gross = state.last_gross_kg
    if state.scale_fault is not None:
        return state.scale_fault, {}
    if gross is None:
        return Reason.SCALE_LOST, {"detail": "no reading since the trip"}
    plan = state.plan
    if plan is not None and _implausible(plan, gross):
        return Reason.IMPLAUSIBLE_WEIGHT, {"gross_kg": gross}
    if plan is not None and state.cause in CYLINDER_CAUSES and gross >= plan.tare_kg / 2:
        return Reason.CYLINDER_ON_SCALE, {"gross_kg": gross}
    return None, {"gross_kg": gross}


def _abort(
    state: LaneState, cause: Reason, now: datetime, detail: dict[str, Any] | None = None
) -> tuple[LaneState, list[Effect]]:
    return _end(state, Phase.ABORTED, cause, now, detail, Signal("red", True))


def _trip(
    state: LaneState, cause: Reason, now: datetime, detail: dict[str, Any] | None = None
) -> tuple[LaneState, list[Effect]]:
    return _end(state, Phase.LOCKED, cause, now, detail, Signal("red", True))


def _end(
    state: LaneState,
    phase: Phase,
    cause: Reason,
    now: datetime,
    detail: dict[str, Any] | None,
    signal: Signal,
) -> tuple[LaneState, list[Effect]]:
    assert state.plan is not None
    ended = replace(state, phase=phase, since=now, cause=cause)
    fields: dict[str, Any] = {"finished_at": now, "outcome": "aborted", "cause": cause}
    if state.last_gross_kg is not None:
        fields["final_gross_kg"] = state.last_gross_kg
    if detail:
        fields["detail"] = detail
    if phase is Phase.LOCKED:
        fields["tripped"] = True
    # Relay off first: nothing, not even the record, stands between a trip and a closed valve.
    return ended, [RelayOff(cause), Record(state.plan.fill_id, "aborted", fields), signal]


def _since(state: LaneState) -> datetime:
    assert state.since is not None
    return state.since
