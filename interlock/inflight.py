"""The learned in-flight mass: how much gas still arrives after the cut-off, per lane (and per
cylinder model), learned from completed fills. Pure: the lane keeps the value in its store and
hands the machine the pre-act through the fill plan.

In-flight gas is the flow times a time (the relay's answer, the valve closing, the hose emptying),
so it is learned as that time, in seconds of flow: a lane that fills at 0.25 kg/s one hour and
0.5 kg/s the next keeps its estimate. The estimate is the median of the last `window` fills, so
one odd fill (a cylinder knocked, a stuck reading) cannot move it; an observation whose mass lies
outside [min_kg, max_kg] is refused outright, and the pre-act a plan gets is clamped there too.
The configured preact_kg seeds it: the first observation is averaged with it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

ANY_MODEL = "*"  # the lane-wide estimate, used until a cylinder model has enough fills of its own
MODEL_MIN_FILLS = 3


@dataclass(frozen=True)
class Limits:
    window: int = 5
    min_kg: float = 0.0
    max_kg: float = 1.0


@dataclass(frozen=True)
class FillResult:
    """What a finished fill tells the estimator."""

    complete: bool  # reached its post-fill check (not aborted, not tripped)
    stable: bool  # its final reading was stable
    cutoff_gross_kg: float | None
    final_gross_kg: float | None
    flow_kg_per_s: float | None  # measured just before the cut-off; None if it was not steady


@dataclass(frozen=True)
class Learned:
    seconds: tuple[float, ...] = ()  # in-flight time of the recent good fills, oldest first
    fills: int = 0  # how many fills taught it (the seed from preact_kg is not one)

    @property
    def inflight_s(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


def observe(learned: Learned, fill: FillResult, seed_preact_kg: float, limits: Limits) -> tuple[Learned, str | None]:
    """(the new estimate, or the old one with the reason the fill taught nothing)."""
    if not fill.complete:
        return learned, "fill did not complete"
    if not fill.stable:
        return learned, "final reading not stable"
    if fill.cutoff_gross_kg is None or fill.final_gross_kg is None:
        return learned, "no cut-off or final weight"
    if fill.flow_kg_per_s is None or fill.flow_kg_per_s <= 0:
        return learned, "flow not steady at the cut-off"
    inflight_kg = fill.final_gross_kg - fill.cutoff_gross_kg
    if not limits.min_kg <= inflight_kg <= limits.max_kg:
        return learned, f"in-flight {inflight_kg:.3f} kg outside {limits.min_kg}..{limits.max_kg} kg"
    seconds = learned.seconds
    if not seconds:
        seconds = (seed_preact_kg / fill.flow_kg_per_s,)
    seconds = (*seconds, inflight_kg / fill.flow_kg_per_s)[-limits.window :]
    return Learned(seconds, learned.fills + 1), None


def preact_kg(learned: Learned | None, kg_per_s: float, limits: Limits) -> float | None:
    """The pre-act for a fill now flowing at kg_per_s, or None when nothing has been learned."""
    if learned is None or learned.inflight_s is None:
        return None
    return min(limits.max_kg, max(limits.min_kg, learned.inflight_s * kg_per_s))


def pick(estimates: dict[str, Learned], model: str | None) -> Learned | None:
    """A cylinder model's own estimate once it has enough fills, else the lane's."""
    own = estimates.get(model or "")
    if own is not None and own.fills >= MODEL_MIN_FILLS:
        return own
    return estimates.get(ANY_MODEL)
