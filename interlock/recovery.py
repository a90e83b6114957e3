"""What a fill left open by a crash comes to, judged at the next start from one stable reading of
its scale taken after the valve was driven off. Pure: the reading and the time are parameters.

The cylinder is judged exactly as a completed fill's post-check would judge it (fill.judge), so an
overfill that happened while the daemon was dead is flagged, loud, and holds the lane until an
operator acknowledges it. A fill whose weight shows that no gas went in is recorded locally but not
reported as a filling: its valve never opened (a crash between the write-ahead record and the
relay write), or opened too briefly to matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .fill import judge
from .reasons import Reason


@dataclass(frozen=True)
class OpenFill:
    """A fill row left open, as far as the judgement needs it."""

    fill_id: str
    lane: str
    status: str  # the last milestone committed: authorised, prechecked, filling or settling
    tare_kg: float | None
    target_net_kg: float | None
    start_gross_kg: float | None
    started: bool  # a "filling" milestone was committed: the relay may have been energised


@dataclass(frozen=True)
class Limits:
    """The lane's fill settings that the judgement uses."""

    tolerance_kg: float
    tare_tolerance_kg: float
    no_flow_kg: float  # a rise smaller than this is no gas (the fill machine's own measure of flow)
    capacity_kg: float


@dataclass(frozen=True)
class Outcome:
    fields: dict[str, Any]  # the "aborted" record's fields
    hold: bool  # red + buzzer, and the lane held until an operator acknowledges
    report: bool  # reported upstream as a filling


def reweigh(fill: OpenFill, gross_kg: float | None, limits: Limits, now: datetime, problem: str = "") -> Outcome:
    """Judge an interrupted fill from a stable gross reading (None: no stable reading was had)."""
    fields: dict[str, Any] = {"finished_at": now, "outcome": "aborted", "cause": Reason.INTERRUPTED}
    if gross_kg is None:
        fields["detail"] = {"reweighed": False, "why": problem or "no stable reading"}
        return Outcome(fields, hold=False, report=fill.started)
    if fill.tare_kg is None or fill.target_net_kg is None:
        fields["detail"] = {"reweighed": False, "why": "no tare or target on record", "gross_kg": gross_kg}
        return Outcome(fields, hold=False, report=fill.started)
    # The same cylinder, plausibly: not lighter than its empty self, not beyond the scale.
    floor = (fill.start_gross_kg if fill.start_gross_kg is not None else fill.tare_kg) - limits.tare_tolerance_kg
    if gross_kg < floor or gross_kg > limits.capacity_kg:
        fields["detail"] = {"reweighed": False, "why": "no cylinder of this tare on the scale", "gross_kg": gross_kg}
        return Outcome(fields, hold=False, report=fill.started)
    verdict = judge(fill.tare_kg, fill.target_net_kg, limits.tolerance_kg, gross_kg)
    no_gas = fill.start_gross_kg is not None and gross_kg - fill.start_gross_kg < limits.no_flow_kg
    fields.update(final_gross_kg=gross_kg, net_kg=verdict.net_kg, detail={"reweighed": True, "no_gas": no_gas})
    if verdict.flagged and not no_gas:  # a cylinder that got no gas is not under- or overfilled by us
        fields["outcome"] = verdict.outcome
    return Outcome(fields, hold=verdict.outcome == Reason.OVERFILLED, report=fill.started and not no_gas)
