"""The pure parts of the checks: the pre-fill rule, check lists, the re-weigh, the gate's rules;
and the web app's PIN hashes, sessions and login limiter with a clock passed in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from interlock.checks import FillSummary, Item, PostCheck, dispatch_findings, failed_items, reweigh_flag
from interlock.reasons import TEXT, Reason
from interlock.rules import CheckRecord, Cylinder, Policy, evaluate, precheck_findings

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
VALID_S = 1800.0


def check(minutes_ago: float, passed: bool = True, failed: tuple[str, ...] = ()) -> CheckRecord:
    return CheckRecord(passed, NOW - timedelta(minutes=minutes_ago), "王芳", failed)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (None, Reason.PRECHECK_MISSING),
        (check(31), Reason.PRECHECK_MISSING),  # too old
        (check(-5), Reason.PRECHECK_MISSING),  # from the future: a clock fault
        (check(5, passed=False, failed=("valve",)), Reason.PRECHECK_FAILED),
        (check(300, passed=False, failed=("valve",)), Reason.PRECHECK_FAILED),  # a refusal does not expire
        (check(29.9), None),
        (check(0), None),
        (check(-0.5), None),  # a phone's clock a little ahead is not a fault
    ],
)
def test_precheck_rule(record: CheckRecord | None, reason: Reason | None) -> None:
    findings = precheck_findings(record, NOW, VALID_S)
    assert [f.reason for f in findings] == ([] if reason is None else [reason])


def test_failed_precheck_names_its_items() -> None:
    assert precheck_findings(check(1, False, ("valve", "body")), NOW, VALID_S)[0].detail == "valve, body"


def cylinder() -> Cylinder:
    return Cylinder("C1", "站", "G13", "在用", "2022-01", "2028-01", "REG", 35.5, 15.0, 14.5, "YSP35.5")


def policy(require: bool) -> Policy:
    return Policy("站", "G13", ZoneInfo("Asia/Shanghai"), require_precheck=require, precheck_valid_s=VALID_S)


def test_evaluate_requires_the_check_only_where_the_lane_does() -> None:
    assert evaluate(cylinder(), policy(False), NOW, 10.0).allowed
    refused = evaluate(cylinder(), policy(True), NOW, 10.0)
    assert not refused.allowed and refused.reasons == (Reason.PRECHECK_MISSING,)
    assert evaluate(cylinder(), policy(True), NOW, 10.0, precheck=check(3)).allowed
    # A passed check never overrides another refusal.
    scrapped = Cylinder("C1", "站", "G13", "报废", "2022-01", "2028-01", "REG", 35.5, 15.0, 14.5)
    assert evaluate(scrapped, policy(True), NOW, 10.0, precheck=check(3)).reasons == (Reason.SCRAPPED,)
    # A failed check refuses on a lane that does not require checks too.
    assert evaluate(cylinder(), policy(False), NOW, 10.0, precheck=check(3, False, ("body",))).reasons == (Reason.PRECHECK_FAILED,)
    assert evaluate(cylinder(), policy(False), NOW, 10.0, precheck=check(300)).allowed  # an old pass is no matter there
    # Unknown cylinders are refused as unknown, not for a missing check.
    assert evaluate(None, policy(True), NOW, 10.0).reasons == (Reason.UNKNOWN_CYLINDER,)


ITEMS = (Item("a", "甲", "a"), Item("b", "乙", "b"), Item("c", "丙", "c"))


def test_every_item_must_be_ticked_passed() -> None:
    assert failed_items(ITEMS, {"a": True, "b": True, "c": True}) == ()
    assert failed_items(ITEMS, {"a": True, "c": True}) == (ITEMS[1],)  # unanswered is failed
    assert failed_items(ITEMS, {"a": True, "b": False, "c": "yes"}) == (ITEMS[1], ITEMS[2])  # type: ignore[dict-item]


@pytest.mark.parametrize(("gross", "flag"), [(29.5, None), (30.0, None), (30.01, Reason.OVERFILLED),
                                             (29.0, None), (28.99, Reason.UNDERFILLED)])
def test_reweigh(gross: float, flag: Reason | None) -> None:
    assert reweigh_flag(gross, tare_kg=15.0, target_net_kg=14.5, tolerance_kg=0.5) == flag


def post(passed: bool = True, flag: Reason | None = None) -> PostCheck:
    return PostCheck(check(1, passed, () if passed else ("leak",)), flag)


@pytest.mark.parametrize(
    ("fill", "postcheck", "blocked", "reasons"),
    [
        (FillSummary("complete", "ok"), post(), None, []),
        # A check recorded as passed with an UNDERFILLED flag (as older releases did) still blocks.
        (FillSummary("complete", "UNDERFILLED"), post(flag=Reason.UNDERFILLED), None, [Reason.UNDERFILLED]),
        (FillSummary("complete", "ok"), post(False, Reason.UNDERFILLED), None, [Reason.UNDERFILLED, Reason.POSTCHECK_FAILED]),
        (None, None, None, [Reason.FILL_NOT_COMPLETE]),
        (FillSummary("aborted", "aborted"), post(), None, [Reason.FILL_NOT_COMPLETE]),
        (FillSummary("filling", None), None, None, [Reason.FILL_NOT_COMPLETE]),
        (FillSummary("complete", "ok"), None, None, [Reason.POSTCHECK_MISSING]),
        (FillSummary("complete", "OVERFILLED"), None, None, [Reason.OVERFILLED, Reason.POSTCHECK_MISSING]),
        (FillSummary("complete", "ok"), post(False), None, [Reason.POSTCHECK_FAILED]),
        (FillSummary("complete", "ok"), post(False, Reason.OVERFILLED), None, [Reason.OVERFILLED, Reason.POSTCHECK_FAILED]),
        (FillSummary("complete", "OVERFILLED"), post(), None, []),  # decanted and re-weighed within tolerance
        (FillSummary("complete", "ok"), post(), "corroded", [Reason.BLOCKED_LOCALLY]),
    ],
)
def test_dispatch_rules(fill: FillSummary | None, postcheck: PostCheck | None, blocked: str | None, reasons: list[Reason]) -> None:
    assert [f.reason for f in dispatch_findings(fill, postcheck, blocked)] == reasons


def test_new_reasons_have_both_languages() -> None:
    for reason in (Reason.PRECHECK_MISSING, Reason.PRECHECK_FAILED, Reason.POSTCHECK_MISSING, Reason.POSTCHECK_FAILED,
                   Reason.FILL_NOT_COMPLETE, Reason.CHECK_ITEM_FAILED):
        zh, en = TEXT[reason]
        assert zh and en and zh != en


# The web app's building blocks ---------------------------------------------------------------------


def test_pin_hash_is_salted_scrypt_and_checks_only_the_right_pin() -> None:
    from edge.webapp.accounts import check_secret, hash_secret

    one, two = hash_secret("246810"), hash_secret("246810")
    assert one != two and one.startswith("scrypt$16384$8$1$")
    assert check_secret("246810", one) and check_secret("246810", two)
    assert not check_secret("246811", one) and not check_secret("", one)
    assert not check_secret("246810", None) and not check_secret("246810", "md5$abc") and not check_secret("x", "junk")


def test_sessions_expire_when_idle_and_are_bounded() -> None:
    from edge.scanpoints import Actor
    from edge.webapp.security import Sessions

    now = [0.0]
    sessions = Sessions(idle_s=60, clock=lambda: now[0], limit=2)
    a = sessions.open(Actor("a", "A", "checker"))
    assert sessions.get(a) is not None and sessions.get("forged") is None and sessions.get(None) is None
    now[0] = 59
    assert sessions.get(a) is not None  # seen at 59: idle clock restarts
    now[0] = 118
    assert sessions.get(a) is not None
    now[0] = 179
    assert sessions.get(a) is None
    b, c = sessions.open(Actor("b", "B", "checker")), sessions.open(Actor("c", "C", "checker"))
    now[0] += 1
    sessions.get(c)
    sessions.open(Actor("d", "D", "checker"))  # over the limit: the stalest (b) goes
    assert sessions.get(b) is None and sessions.get(c) is not None and sessions.count() == 2
    assert sessions.get(c).csrf != sessions.get(sessions.open(Actor("e", "E", "x"))).csrf  # type: ignore[union-attr]


def test_login_limiter_locks_account_and_address_for_the_window() -> None:
    from edge.webapp.security import LoginLimiter

    now = [0.0]
    limiter = LoginLimiter(limit=3, window_s=100, clock=lambda: now[0])
    for _ in range(2):
        limiter.failed("account:x", "address:1")
    assert not limiter.locked("account:x", "address:1")
    limiter.failed("account:x", "address:1")
    assert limiter.locked("account:x") and limiter.locked("address:1") and limiter.locked("account:y", "address:1")
    assert not limiter.locked("account:y", "address:2")
    now[0] = 99
    assert limiter.locked("account:x")
    now[0] = 101
    assert not limiter.locked("account:x", "address:1")


class ScriptedScale:
    """A scale that answers from a script: readings, or DeviceError for a silent one."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers

    def read(self) -> Any:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_check_scale_reading_waits_for_stable_and_refuses_a_silent_or_restless_scale() -> None:
    from drivers.base import DeviceError, Reading
    from edge.scanpoints import Refused
    from edge.scanpoints.checks import read_check_scale

    assert read_check_scale(ScriptedScale([Reading(30.2, False), Reading(30.1, True)]), poll_s=0) == 30.1
    with pytest.raises(Refused) as silent:
        read_check_scale(ScriptedScale([DeviceError("no answer")]), poll_s=0)
    assert silent.value.findings[0].reason is Reason.SCALE_LOST
    with pytest.raises(Refused) as restless:
        read_check_scale(ScriptedScale([Reading(30.0, False)]), settle_s=0.05, poll_s=0.01)
    assert restless.value.findings[0].reason is Reason.SETTLE_TIMEOUT


def test_photo_retention_deletes_only_old_photos(tmp_path: Any) -> None:
    import os
    import time

    from edge.scanpoints.bindings import prune_photos

    old, new = tmp_path / "2025-01" / "a.jpg", tmp_path / "2026-11" / "b.jpg"
    for path in (old, new):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\xff\xd8\xff")
    os.utime(old, (time.time() - 40 * 86400,) * 2)
    assert prune_photos(tmp_path, retention_days=30) == 1
    assert not old.exists() and new.exists()
