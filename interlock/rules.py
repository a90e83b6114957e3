"""Eligibility: may this cylinder be filled at this lane, now?

`evaluate` collects every reason that applies (an operator fixing one problem should not discover
the next one at the following scan) and separates blocking reasons from warnings.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

from .codes import Identifier, Kind, split_traceable
from .reasons import WARNINGS, Reason

IN_USE = "在用"
SUSPENDED = "停用"
SCRAPPED = "报废"


@dataclass(frozen=True)
class Cylinder:
    """The subset of a cached city record (plus station data) that the rules need."""

    id: str
    owner_unit: str
    medium: str
    status: str
    manufacture_month: str | None = None  # yyyy-mm
    next_inspection: str | None = None  # yyyy-mm, valid through the end of that month
    registration_no: str | None = None
    volume_l: float | None = None
    tare_kg: float | None = None
    fill_mass_kg: float | None = None
    model: str | None = None
    service_life_years: int | None = None
    blocked_reason: str | None = None
    removed_at: str | None = None  # when the station learnt the city's registry no longer lists it


@dataclass(frozen=True)
class Policy:
    owner_unit: str
    medium: str
    tz: tzinfo
    require_registration: bool = True
    inspection_warning_days: int = 30
    service_life_years: int | None = None  # used when the cylinder carries none
    max_cache_age_s: float | None = None
    stale_cache_rejects: bool = True
    cache_warning_fraction: float = 0.75
    # A lane that fills only cylinders a checker passed within precheck_valid_s (TSG 07-2019).
    require_precheck: bool = False
    precheck_valid_s: float = 1800.0


@dataclass(frozen=True)
class CheckRecord:
    """A checker's recorded check of one cylinder, as the rules see it."""

    passed: bool
    at: datetime
    checker: str  # the name the records show
    failed_items: tuple[str, ...] = ()
    checker_id: str = ""  # the person, for the rule that an operator never checks their own fill


@dataclass(frozen=True)
class Finding:
    reason: Reason
    detail: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return tuple(f.reason for f in self.findings if f.reason not in WARNINGS)

    @property
    def warnings(self) -> tuple[Reason, ...]:
        return tuple(f.reason for f in self.findings if f.reason in WARNINGS)


def reject(reason: Reason, detail: str = "") -> Decision:
    return Decision(False, (Finding(reason, detail),))


def evaluate(
    cylinder: Cylinder | None,
    policy: Policy,
    now: datetime,
    cache_age_s: float | None,
    identifier: Identifier | None = None,
    precheck: CheckRecord | None = None,
) -> Decision:
    """Decide eligibility. `now` must be timezone-aware; dates are judged in the station's zone.

    `precheck` is the cylinder's newest pre-fill check since its last fill (None: none). Where the
    policy requires one it must have passed recently; anywhere, a failed one refuses."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    findings: list[Finding] = []
    findings += _cache_findings(policy, cache_age_s)
    if cylinder is None:
        findings.append(Finding(Reason.UNKNOWN_CYLINDER, "no cached record for this code"))
        return _decide(findings)
    today = now.astimezone(policy.tz).date()
    if identifier is not None and identifier.kind is Kind.TRACEABLE:
        findings += _traceable_findings(identifier.value, cylinder)
    if cylinder.blocked_reason is not None:
        findings.append(Finding(Reason.BLOCKED_LOCALLY, cylinder.blocked_reason))
    if cylinder.removed_at is not None:
        findings.append(Finding(Reason.NOT_IN_REGISTRY, f"since {cylinder.removed_at[:16]}"))
    if _normalise(cylinder.owner_unit) != _normalise(policy.owner_unit):
        findings.append(Finding(Reason.NOT_SELF_OWNED, f"owned by {cylinder.owner_unit}"))
    if cylinder.status == SCRAPPED:
        findings.append(Finding(Reason.SCRAPPED))
    elif cylinder.status != IN_USE:
        findings.append(Finding(Reason.SUSPENDED, f"status {cylinder.status!r}"))
    findings += _inspection_findings(cylinder, policy, today)
    findings += _service_life_findings(cylinder, policy, today)
    if cylinder.medium != policy.medium:
        findings.append(
            Finding(Reason.MEDIUM_MISMATCH, f"cylinder {cylinder.medium}, lane {policy.medium}")
        )
    if policy.require_registration and not (cylinder.registration_no or "").strip():
        findings.append(Finding(Reason.NOT_REGISTERED))
    if policy.require_precheck:
        findings += precheck_findings(precheck, now, policy.precheck_valid_s)
    elif precheck is not None and not precheck.passed:
        # A checker's refusal holds on every lane, until a later check passes.
        findings += precheck_findings(precheck, now, policy.precheck_valid_s)
    return _decide(findings)


def precheck_findings(check: CheckRecord | None, now: datetime, valid_s: float) -> list[Finding]:
    """A passed check, no older than valid_s and not from the future, or a refusal saying why."""
    if check is not None and not check.passed:
        return [Finding(Reason.PRECHECK_FAILED, ", ".join(check.failed_items) or f"by {check.checker}")]
    if check is None:
        return [Finding(Reason.PRECHECK_MISSING, "no pre-fill check since the last fill")]
    age_s = (now - check.at).total_seconds()
    if age_s > valid_s:
        return [Finding(Reason.PRECHECK_MISSING, f"last check {age_s / 60:.0f} min ago, valid {valid_s / 60:.0f} min")]
    if age_s < -60:
        # A check stamped in the future is a clock fault, not a check to trust.
        return [Finding(Reason.PRECHECK_MISSING, "check time is in the future")]
    return []


# Refusals that come from the city's record of the cylinder: a fresher copy could lift them.
RECORD_REASONS = frozenset({
    Reason.UNKNOWN_CYLINDER, Reason.NOT_SELF_OWNED, Reason.SCRAPPED, Reason.SUSPENDED, Reason.INSPECTION_OVERDUE,
    Reason.SERVICE_LIFE_EXCEEDED, Reason.MEDIUM_MISMATCH, Reason.NOT_REGISTERED, Reason.NOT_IN_REGISTRY,
})


def refused_by_record_only(decision: Decision) -> bool:
    """Whether every reason refusing this decision comes from the city's record of the cylinder."""
    blocking = set(decision.reasons)
    return not decision.allowed and bool(blocking) and blocking <= RECORD_REASONS


def fresher_record_could_allow(decision: Decision, record_age_s: float | None, max_record_age_s: float) -> bool:
    """Whether asking the city for this one cylinder could change a refusal: only the city's
    record refuses it, and the cached copy is older than `max_record_age_s` (a code with no
    cached record, `record_age_s` None, always qualifies)."""
    return refused_by_record_only(decision) and (record_age_s is None or record_age_s > max_record_age_s)


def _decide(findings: list[Finding]) -> Decision:
    allowed = all(f.reason in WARNINGS for f in findings)
    return Decision(allowed, tuple(findings))


def _normalise(name: str) -> str:
    # Full-width letters and stray spaces are common in hand-kept ledgers.
    return "".join(unicodedata.normalize("NFKC", name).split())


def _cache_findings(policy: Policy, cache_age_s: float | None) -> list[Finding]:
    if policy.max_cache_age_s is None:
        return []
    if cache_age_s is None or cache_age_s > policy.max_cache_age_s:
        age = "never refreshed" if cache_age_s is None else f"{cache_age_s / 3600:.1f} h old"
        reason = Reason.CACHE_STALE if policy.stale_cache_rejects else Reason.CACHE_AGING
        return [Finding(reason, age)]
    if cache_age_s > policy.max_cache_age_s * policy.cache_warning_fraction:
        return [Finding(Reason.CACHE_AGING, f"{cache_age_s / 3600:.1f} h old")]
    return []


def _traceable_findings(value: str, cylinder: Cylinder) -> list[Finding]:
    code = split_traceable(value)
    month = parse_month(cylinder.manufacture_month)
    if code is None or month is None or month.strftime("%y") != code.year:
        made = cylinder.manufacture_month or "unknown"
        return [Finding(Reason.INVALID_CODE, f"year digits {value[3:5]} vs manufactured {made}")]
    return []


def _inspection_findings(cylinder: Cylinder, policy: Policy, today: date) -> list[Finding]:
    due = parse_month(cylinder.next_inspection)
    if due is None:
        return [Finding(Reason.INSPECTION_OVERDUE, "no valid next-inspection date")]
    last_valid_day = end_of_month(due)
    if today > last_valid_day:
        return [Finding(Reason.INSPECTION_OVERDUE, f"due {cylinder.next_inspection}")]
    if today + timedelta(days=policy.inspection_warning_days) > last_valid_day:
        return [Finding(Reason.INSPECTION_DUE_SOON, f"due {cylinder.next_inspection}")]
    return []


def _service_life_findings(cylinder: Cylinder, policy: Policy, today: date) -> list[Finding]:
    years = cylinder.service_life_years or policy.service_life_years
    if years is None:
        return []
    made = parse_month(cylinder.manufacture_month)
    if made is None:
        return [Finding(Reason.SERVICE_LIFE_EXCEEDED, "no valid manufacture month")]
    # Made in March 2018 with an 8-year life: fillable through 31 March 2026.
    last_valid_day = end_of_month(date(made.year + years, made.month, 1))
    if today > last_valid_day:
        return [Finding(Reason.SERVICE_LIFE_EXCEEDED, f"made {cylinder.manufacture_month}, {years} y")]
    return []


def parse_month(value: str | None) -> date | None:
    """'2026-03' (or a full date, whose day is ignored) -> date(2026, 3, 1); junk -> None."""
    if not value:
        return None
    try:
        year, month = int(value[0:4]), int(value[5:7])
        if value[4] not in "-/" or not (1 <= month <= 12 and 1900 <= year <= 2200):
            return None
        return date(year, month, 1)
    except (ValueError, IndexError):
        return None


def end_of_month(first: date) -> date:
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return following - timedelta(days=1)
