"""Separation of duties by person (TSG 07-2019): the person who operates a fill is never its
pre-fill or post-fill checker, whatever roles they hold.

Pure: the caller passes the acts on record that bear on the one proposed (the pre-fill check a
fill relies on, who operates the lane, who operated the fill being checked), each naming the staff
ids it could be; the rule says whether the proposed act would make one person both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .reasons import Reason
from .rules import Finding


class Duty(StrEnum):
    PRECHECK = "precheck"
    OPERATE = "operate"
    POSTCHECK = "postcheck"


# Each duty and the duties the same person may not also hold for the same fill. Pre- and post-fill
# checks by one checker are fine; operating is never combined with checking.
EXCLUSIVE: dict[Duty, frozenset[Duty]] = {
    Duty.PRECHECK: frozenset({Duty.OPERATE}),
    Duty.OPERATE: frozenset({Duty.PRECHECK, Duty.POSTCHECK}),
    Duty.POSTCHECK: frozenset({Duty.OPERATE}),
}
WORDS = {
    Duty.PRECHECK: ("充装前检查", "pre-fill checked"),
    Duty.OPERATE: ("充装", "operated"),
    Duty.POSTCHECK: ("充装后检查", "post-fill checked"),
}


@dataclass(frozen=True)
class Act:
    """One duty done (or about to be done) for a fill, by whichever of `persons` did it. A record
    that names its person only by a name shared by several staff ids names them all: the rule then
    refuses any of them, never lets one through."""

    duty: Duty
    persons: frozenset[str]
    at: datetime | None = None

    @classmethod
    def by(cls, duty: Duty, *persons: str | None, at: datetime | None = None) -> Act:
        return cls(duty, frozenset(p for p in persons if p), at)


def conflicts(proposed: Act, recorded: Iterable[Act]) -> list[Finding]:
    """Why `proposed` may not be done by its person given the acts `recorded` for the same fill
    (empty: it may). An act whose person is unknown conflicts with nothing."""
    findings: list[Finding] = []
    for act in recorded:
        if act.duty not in EXCLUSIVE[proposed.duty]:
            continue
        same = sorted(proposed.persons & act.persons)
        if same:
            zh, en = WORDS[act.duty]
            when = f" at {act.at.isoformat(timespec='minutes')}" if act.at is not None else ""
            findings.append(Finding(Reason.SAME_PERSON, f"{', '.join(same)} {en} it{when} ({zh})"))
    return findings
