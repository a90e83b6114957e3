from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from interlock.codes import Identifier, Kind
from interlock.reasons import TEXT, WARNINGS, Reason
from interlock.rules import Cylinder, Policy, end_of_month, evaluate, parse_month

SHANGHAI = ZoneInfo("Asia/Shanghai")
OWNER = "重庆渝能燃气有限公司"
POLICY = Policy(owner_unit=OWNER, medium="G13", tz=SHANGHAI, service_life_years=8, max_cache_age_s=72 * 3600)
NOW = datetime(2026, 6, 15, 9, 0, tzinfo=SHANGHAI)
GOOD = Cylinder(
    id="CQ-1",
    owner_unit=OWNER,
    medium="G13",
    status="在用",
    manufacture_month="2024-03",
    next_inspection="2028-03",
    registration_no="渝A-0001",
    tare_kg=15.0,
)


def reasons(cylinder: Cylinder | None, **kw) -> set[Reason]:
    decision = evaluate(cylinder, kw.pop("policy", POLICY), kw.pop("now", NOW), kw.pop("age", 60.0), **kw)
    return {f.reason for f in decision.findings}


def test_good_cylinder_is_allowed() -> None:
    decision = evaluate(GOOD, POLICY, NOW, 60.0)
    assert decision.allowed and decision.findings == ()


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"owner_unit": "别家燃气公司"}, Reason.NOT_SELF_OWNED),
        ({"status": "报废"}, Reason.SCRAPPED),
        ({"status": "停用"}, Reason.SUSPENDED),
        ({"status": "???"}, Reason.SUSPENDED),
        ({"next_inspection": "2026-05"}, Reason.INSPECTION_OVERDUE),
        ({"next_inspection": None}, Reason.INSPECTION_OVERDUE),
        ({"next_inspection": "garbage"}, Reason.INSPECTION_OVERDUE),
        ({"manufacture_month": "2018-05"}, Reason.SERVICE_LIFE_EXCEEDED),
        ({"manufacture_month": None}, Reason.SERVICE_LIFE_EXCEEDED),
        ({"medium": "G10"}, Reason.MEDIUM_MISMATCH),
        ({"registration_no": ""}, Reason.NOT_REGISTERED),
        ({"registration_no": None}, Reason.NOT_REGISTERED),
        ({"blocked_reason": "dented"}, Reason.BLOCKED_LOCALLY),
        ({"removed_at": "2026-06-15T01:00:00.000+00:00"}, Reason.NOT_IN_REGISTRY),
    ],
)
def test_each_rejection(change: dict, reason: Reason) -> None:
    decision = evaluate(replace(GOOD, **change), POLICY, NOW, 60.0)
    assert not decision.allowed
    assert decision.reasons == (reason,)


def test_unknown_cylinder() -> None:
    decision = evaluate(None, POLICY, NOW, 60.0)
    assert not decision.allowed and decision.reasons == (Reason.UNKNOWN_CYLINDER,)


def test_all_reasons_are_collected() -> None:
    bad = replace(GOOD, owner_unit="x", status="报废", medium="G1", registration_no=None)
    assert reasons(bad) >= {Reason.NOT_SELF_OWNED, Reason.SCRAPPED, Reason.MEDIUM_MISMATCH, Reason.NOT_REGISTERED}


def test_owner_name_normalised() -> None:
    assert evaluate(replace(GOOD, owner_unit=" 重庆渝能燃气 有限公司 "), POLICY, NOW, 60.0).allowed


def test_registration_optional_by_policy() -> None:
    policy = replace(POLICY, require_registration=False)
    assert evaluate(replace(GOOD, registration_no=None), policy, NOW, 60.0).allowed


def test_cylinder_service_life_overrides_policy() -> None:
    old = replace(GOOD, manufacture_month="2010-01", service_life_years=30)
    assert evaluate(old, POLICY, NOW, 60.0).allowed


class TestCache:
    def test_stale_cache_rejects(self) -> None:
        decision = evaluate(GOOD, POLICY, NOW, 73 * 3600.0)
        assert not decision.allowed and decision.reasons == (Reason.CACHE_STALE,)

    def test_never_refreshed_is_stale(self) -> None:
        assert evaluate(GOOD, POLICY, NOW, None).reasons == (Reason.CACHE_STALE,)

    def test_stale_cache_can_only_warn(self) -> None:
        decision = evaluate(GOOD, replace(POLICY, stale_cache_rejects=False), NOW, 100 * 3600.0)
        assert decision.allowed and decision.warnings == (Reason.CACHE_AGING,)

    def test_aging_cache_warns(self) -> None:
        decision = evaluate(GOOD, POLICY, NOW, 60 * 3600.0)
        assert decision.allowed and decision.warnings == (Reason.CACHE_AGING,)

    def test_no_limit(self) -> None:
        assert evaluate(GOOD, replace(POLICY, max_cache_age_s=None), NOW, None).allowed


class TestInspectionDates:
    """'Next inspection yyyy-mm' is valid through the last day of that month, station time."""

    def test_last_day_of_month_is_valid(self) -> None:
        now = datetime(2026, 2, 28, 23, 59, 59, tzinfo=SHANGHAI)
        decision = evaluate(replace(GOOD, next_inspection="2026-02"), POLICY, now, 60.0)
        assert decision.allowed and Reason.INSPECTION_DUE_SOON in decision.warnings

    def test_first_day_after_is_overdue(self) -> None:
        now = datetime(2026, 3, 1, 0, 0, tzinfo=SHANGHAI)
        assert reasons(replace(GOOD, next_inspection="2026-02"), now=now) == {Reason.INSPECTION_OVERDUE}

    def test_leap_february(self) -> None:
        now = datetime(2028, 2, 29, 12, tzinfo=SHANGHAI)
        assert evaluate(replace(GOOD, next_inspection="2028-02"), POLICY, now, 60.0).allowed

    def test_utc_evening_is_already_next_day_in_shanghai(self) -> None:
        # 16:30 UTC on 31 March is 00:30 on 1 April in Shanghai: a March due date has passed.
        now = datetime(2026, 3, 31, 16, 30, tzinfo=timezone.utc)
        assert reasons(replace(GOOD, next_inspection="2026-03"), now=now) == {Reason.INSPECTION_OVERDUE}

    def test_utc_morning_is_still_the_same_day(self) -> None:
        now = datetime(2026, 3, 31, 15, 59, tzinfo=timezone.utc)
        assert evaluate(replace(GOOD, next_inspection="2026-03"), POLICY, now, 60.0).allowed

    def test_december_due_date(self) -> None:
        now = datetime(2026, 12, 31, 23, 0, tzinfo=SHANGHAI)
        assert evaluate(replace(GOOD, next_inspection="2026-12"), POLICY, now, 60.0).allowed
        assert reasons(replace(GOOD, next_inspection="2026-12"), now=now + timedelta(hours=1)) == {
            Reason.INSPECTION_OVERDUE
        }

    def test_warning_window(self) -> None:
        due_in_45_days = replace(GOOD, next_inspection="2026-07")
        assert evaluate(due_in_45_days, POLICY, NOW, 60.0).warnings == ()
        assert evaluate(due_in_45_days, replace(POLICY, inspection_warning_days=60), NOW, 60.0).warnings == (
            Reason.INSPECTION_DUE_SOON,
        )

    def test_naive_time_is_refused(self) -> None:
        with pytest.raises(ValueError):
            evaluate(GOOD, POLICY, datetime(2026, 1, 1), 60.0)


class TestServiceLife:
    def test_valid_through_end_of_anniversary_month(self) -> None:
        made = replace(GOOD, manufacture_month="2018-06")
        assert evaluate(made, POLICY, datetime(2026, 6, 30, 23, 59, tzinfo=SHANGHAI), 60.0).allowed
        assert reasons(made, now=datetime(2026, 7, 1, 0, 0, tzinfo=SHANGHAI)) == {Reason.SERVICE_LIFE_EXCEEDED}


class TestTraceableYear:
    def test_year_digits_agree(self) -> None:
        assert evaluate(GOOD, POLICY, NOW, 60.0, Identifier(Kind.TRACEABLE, "123240000001")).allowed

    def test_year_digits_disagree(self) -> None:
        decision = evaluate(GOOD, POLICY, NOW, 60.0, Identifier(Kind.TRACEABLE, "123190000001"))
        assert decision.reasons == (Reason.INVALID_CODE,)


def test_every_reason_has_both_texts() -> None:
    for reason in Reason:
        zh, en = TEXT[reason]
        assert zh and en and zh != en


def test_month_helpers() -> None:
    assert parse_month("2026-02") == parse_month("2026/02") == parse_month("2026-02-17")
    assert parse_month("2026-13") is None and parse_month("26-02") is None and parse_month("") is None
    assert end_of_month(parse_month("2026-12")).day == 31
    assert WARNINGS == {Reason.INSPECTION_DUE_SOON, Reason.CACHE_AGING}


def test_a_fresher_record_is_worth_asking_for_only_when_the_record_alone_refuses() -> None:
    from interlock.rules import fresher_record_could_allow as worth_asking

    overdue = evaluate(replace(GOOD, next_inspection="2026-05"), POLICY, NOW, 60.0)
    unknown = evaluate(None, POLICY, NOW, 60.0)
    assert worth_asking(unknown, None, 600) and worth_asking(overdue, 601, 600)
    assert not worth_asking(overdue, 599, 600)  # asked about (or refreshed) recently enough
    assert not worth_asking(evaluate(GOOD, POLICY, NOW, 60.0), 10_000, 600)  # allowed: nothing to ask
    blocked_too = evaluate(replace(GOOD, next_inspection="2026-05", blocked_reason="dented"), POLICY, NOW, 60.0)
    assert not worth_asking(blocked_too, 10_000, 600)  # a local block stays whatever the city says
    stale = evaluate(None, POLICY, NOW, 100 * 3600.0)
    assert not worth_asking(stale, None, 600)  # the whole cache is stale: one record does not fix that
    due_soon = evaluate(replace(GOOD, next_inspection="2026-06", status="停用"), POLICY, NOW, 60.0)
    assert due_soon.warnings and worth_asking(due_soon, 601, 600)  # warnings do not stop a lookup
