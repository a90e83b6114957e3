"""The person rule (interlock.duties) exhaustively, and the re-weigh's physics (interlock.checks):
pure functions, every combination."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

from interlock.checks import cylinder_capacity_kg, reweigh_plausible, reweigh_range, typed_needs_confirmation
from interlock.duties import Act, Duty, conflicts
from interlock.reasons import TEXT, Reason

AT = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
# The pairs one person may never hold for one fill, in either order.
FORBIDDEN = {frozenset({Duty.OPERATE, Duty.PRECHECK}), frozenset({Duty.OPERATE, Duty.POSTCHECK})}


@pytest.mark.parametrize(
    ("proposed", "recorded", "same", "at"),
    list(itertools.product(Duty, Duty, (True, False), (AT, None))),
)
def test_every_pair_of_duties(proposed: Duty, recorded: Duty, same: bool, at: datetime | None) -> None:
    found = conflicts(Act.by(proposed, "p1"), [Act.by(recorded, "p1" if same else "p2", at=at)])
    refused = same and frozenset({proposed, recorded}) in FORBIDDEN
    assert [f.reason for f in found] == ([Reason.SAME_PERSON] if refused else [])
    if refused:
        assert "p1" in found[0].detail and (at is None or "2026-11-20T08:00" in found[0].detail)


@pytest.mark.parametrize("proposed", list(Duty))
def test_an_unknown_person_conflicts_with_nothing_and_no_record_allows_all(proposed: Duty) -> None:
    assert conflicts(Act.by(proposed, None), [Act.by(d, "p1") for d in Duty]) == []
    assert conflicts(Act.by(proposed, "p1"), [Act.by(d, None) for d in Duty]) == []
    assert conflicts(Act.by(proposed, "p1"), []) == []


def test_a_record_naming_several_possible_persons_refuses_each_of_them() -> None:
    # A fill that names its operator only by a name two staff ids share: neither may check it.
    operated = Act(Duty.OPERATE, frozenset({"p1", "p2"}), AT)
    for person in ("p1", "p2"):
        assert [f.reason for f in conflicts(Act.by(Duty.POSTCHECK, person), [operated])] == [Reason.SAME_PERSON]
    assert conflicts(Act.by(Duty.POSTCHECK, "p3"), [operated]) == []


def test_each_conflicting_record_is_named() -> None:
    found = conflicts(Act.by(Duty.OPERATE, "p1"), [Act.by(Duty.PRECHECK, "p1"), Act.by(Duty.POSTCHECK, "p1"),
                                                   Act.by(Duty.OPERATE, "p1")])
    assert len(found) == 2 and "pre-fill" in found[0].detail and "post-fill" in found[1].detail


def test_the_new_reasons_speak_both_languages() -> None:
    for reason in (Reason.SAME_PERSON, Reason.REWEIGH_IMPLAUSIBLE, Reason.REWEIGH_UNCONFIRMED,
                   Reason.ALREADY_DISPATCHED, Reason.TAG_TAKEN):
        zh, en = TEXT[reason]
        assert zh and en and zh != en


# The re-weigh ----------------------------------------------------------------------------------------


def test_capacity_is_the_water_capacity_or_twice_the_fill() -> None:
    assert cylinder_capacity_kg(35.5, 14.5) == 35.5
    assert cylinder_capacity_kg(None, 14.5) == 29.0
    assert cylinder_capacity_kg(0.0, 14.5) == 29.0
    assert cylinder_capacity_kg(10.0, 14.5) == 14.5  # never below the rated fill


@pytest.mark.parametrize(
    ("gross", "plausible"),
    [(3.3, False), (14.7, True), (14.69, False), (15.02, True), (29.5, True), (50.52, True), (50.53, False), (0.0, False),
     (1e9, False)],
)
def test_the_reweigh_range(gross: float, plausible: bool) -> None:
    # The reported cylinder: tare 15.02 kg, 35.5 L; the scale's tolerance at the tare end 0.32 kg.
    assert reweigh_range(15.02, 35.5, 0.32) == (14.7, 50.52)
    assert reweigh_plausible(gross, 15.02, 35.5, 0.32) is plausible


@pytest.mark.parametrize(
    ("typed", "final", "ask"),
    [(29.5, 29.5, False), (29.9, 29.5, False), (30.01, 29.5, True), (28.99, 29.5, True), (29.5, None, False)],
)
def test_a_typed_reweigh_far_from_the_fill_scale_asks_for_confirmation(typed: float, final: float | None, ask: bool) -> None:
    assert typed_needs_confirmation(typed, final, 0.5) is ask
