"""The checker's and the dispatcher's decisions: check lists, the re-weigh, a cylinder at the gate.

Pure like the rest of interlock: the records a decision needs are passed in, nothing is read here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .reasons import Reason
from .rules import CheckRecord, Finding


@dataclass(frozen=True)
class Item:
    """One line of a check list: a stable id for records, labels for the checker."""

    id: str
    zh: str
    en: str


def failed_items(items: Sequence[Item], ticked: Mapping[str, bool]) -> tuple[Item, ...]:
    """The items not ticked as passed. An item the form did not answer counts as failed: a check
    list is passed item by item, never by default."""
    return tuple(item for item in items if ticked.get(item.id) is not True)


def reweigh_flag(gross_kg: float, tare_kg: float, target_net_kg: float, tolerance_kg: float) -> Reason | None:
    """The re-weigh's verdict on a filled cylinder: OVERFILLED (decant before it leaves),
    UNDERFILLED, or None when the net mass is within tolerance of the target."""
    net = gross_kg - tare_kg
    if net > target_net_kg + tolerance_kg:
        return Reason.OVERFILLED
    if net < target_net_kg - tolerance_kg:
        return Reason.UNDERFILLED
    return None


# A cylinder never holds more than its water capacity's mass of liquefied gas at 1 kg per litre
# (LPG: about 0.5 kg/L); without a volume on record, twice its rated fill is the bound.
LIQUID_KG_PER_L = 1.0


def cylinder_capacity_kg(volume_l: float | None, target_net_kg: float) -> float:
    """The most gas the cylinder could physically hold, for telling a typing error from a weight."""
    if volume_l:
        return max(volume_l * LIQUID_KG_PER_L, target_net_kg)
    return 2 * target_net_kg


def reweigh_range(tare_kg: float, capacity_kg: float, tolerance_kg: float) -> tuple[float, float]:
    """The gross masses a re-weigh of this cylinder can physically read: from its empty self (less
    the scale's tolerance) to full of liquid. Anything outside is a typing error or another cylinder."""
    return round(tare_kg - tolerance_kg, 3), round(tare_kg + capacity_kg, 3)


def reweigh_plausible(gross_kg: float, tare_kg: float, capacity_kg: float, tolerance_kg: float) -> bool:
    low, high = reweigh_range(tare_kg, capacity_kg, tolerance_kg)
    return low <= gross_kg <= high


def typed_needs_confirmation(typed_kg: float, final_gross_kg: float | None, tolerance_kg: float) -> bool:
    """Whether a typed re-weigh differs from the lane's own final reading by more than the
    tolerance: a slip of the finger, or a cylinder changed since, and the checker must say which."""
    return final_gross_kg is not None and abs(typed_kg - final_gross_kg) > tolerance_kg


@dataclass(frozen=True)
class FillSummary:
    """The cylinder's last fill, as the gate needs it."""

    status: str  # complete, aborted, or a phase still open
    outcome: str | None


@dataclass(frozen=True)
class PostCheck:
    """The newest post-fill check since that fill."""

    check: CheckRecord
    flag: Reason | None  # the re-weigh's flag (OVERFILLED or UNDERFILLED blocks dispatch until a new check)


def dispatch_findings(
    last_fill: FillSummary | None, postcheck: PostCheck | None, blocked: str | None, dispatched: str | None = None,
) -> list[Finding]:
    """Why a cylinder may not leave on a delivery vehicle (empty: it may). `dispatched` says when
    its last fill already left (a cylinder goes out once per fill)."""
    findings: list[Finding] = []
    if blocked is not None:
        findings.append(Finding(Reason.BLOCKED_LOCALLY, blocked))
    if dispatched is not None:
        findings.append(Finding(Reason.ALREADY_DISPATCHED, f"out at {dispatched}"))
    if last_fill is None or last_fill.status != "complete":
        detail = "never filled here" if last_fill is None else f"last fill {last_fill.status}"
        findings.append(Finding(Reason.FILL_NOT_COMPLETE, detail))
        return findings
    if postcheck is None:
        # An overfilled fill is flagged until a post-fill re-weigh clears it (it was decanted).
        if last_fill.outcome == Reason.OVERFILLED:
            findings.append(Finding(Reason.OVERFILLED, "flagged at cut-off"))
        findings.append(Finding(Reason.POSTCHECK_MISSING, "no post-fill check since the last fill"))
        return findings
    if postcheck.flag in (Reason.OVERFILLED, Reason.UNDERFILLED):
        # Checks recorded before a flag failed them say PASSED: the flag blocks on its own.
        findings.append(Finding(postcheck.flag, "flagged at the re-weigh"))
    if not postcheck.check.passed:
        findings.append(Finding(Reason.POSTCHECK_FAILED, ", ".join(postcheck.check.failed_items)))
    return findings
