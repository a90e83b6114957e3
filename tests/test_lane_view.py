"""The lane screen's content as a pure function of the lane's present and its last events: each
element's lifetime, what to do per reason, how this station resets a lane, and the voice's
prompts and their quiet time."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge.lanes.lane import LaneEvent
from edge.status.actions import ACTIONS, action, ack_how, reset_how
from edge.status.server import LaneBoard
from edge.status.view import LaneNow, Rules, Seen, lane_view
from edge.status.voice import prompt
from interlock.reasons import Reason

RULES = Rules(hold_s=20.0, reset_how=reset_how("A", False, 3.0), ack_how=ack_how("A"),
              items={"valve_ok": ("瓶阀完好", "cylinder valve intact")}, aim=("]Q",))
IDLE = LaneNow("idle", None, 0.02, True)


def refused(seq: int, at: float, reason: Reason = Reason.SCRAPPED, detail: str = "") -> Seen:
    return Seen("verdict", seq, at, "10:00:00", {"accepted": False, "code": "CODE1", "cylinder_id": "C1",
                                                 "reasons": [reason.value], "details": [detail]})


def ended(seq: int, at: float, outcome: str = "OK", cause: str | None = None, tripped: bool = False) -> Seen:
    return Seen("fill_end", seq, at, "10:00:00", {"status": "complete" if outcome == "OK" else "aborted", "outcome": outcome,
                                                  "net_kg": 14.49, "cause": cause, "tripped": tripped})


def reset(seq: int, at: float, accepted: bool, refused_by: Reason | None = None) -> Seen:
    return Seen("reset", seq, at, "10:00:00", {"accepted": accepted, "refused": refused_by.value if refused_by else None})


def words(view: dict[str, Any]) -> str:
    parts = [view["heading"], view["verdict"], view["refused_reset"], *view["reasons"], *view["actions"], *view["notices"]]
    return " ".join(f"{p['zh']} {p['en']}" for p in parts if p)


def test_every_reason_says_what_to_do() -> None:
    assert set(ACTIONS) == set(Reason), f"no action line for {set(Reason) - set(ACTIONS)}"
    for reason, (zh, en) in ACTIONS.items():
        assert zh and en and len(zh) <= 30, (reason, zh)
    assert action("SOME_FUTURE_REASON") == ("联系负责人", "ask the supervisor")


@pytest.mark.parametrize(("reset_input", "hold_s", "said"), [
    (False, None, ["edge lane reset A --by"]),
    (True, None, ["按复位键", "press the reset key", "edge lane reset A"]),
    (False, 3.0, ["长按中止键 3 秒", "hold abort for 3 s", "edge lane reset A"]),
    (True, 2.5, ["按复位键", "长按中止键 2.5 秒", "edge lane reset A"]),
])
def test_a_trip_says_how_this_station_resets(reset_input: bool, hold_s: float | None, said: list[str]) -> None:
    how = reset_how("A", reset_input, hold_s)
    for text in said:
        assert text in how[0] + how[1]
    if not reset_input:
        assert "复位键" not in how[0]
    if hold_s is None:
        assert "长按" not in how[0]


def test_idle_shows_the_live_weight_and_nothing_else() -> None:
    view = lane_view(LaneNow("idle", None, 14.2, True), {}, 100.0, RULES)
    assert view["tone"] == "idle" and view["heading"]["zh"] == "请扫码" and view["weight"]["kg"] == 14.2
    assert view["verdict"] is None and view["reasons"] == [] and view["actions"] == []


def test_a_silent_scale_shows_no_weight_and_says_so() -> None:
    view = lane_view(LaneNow("idle", None, 14.2, False), {}, 100.0, RULES)
    assert view["weight"]["kg"] is None and "秤无响应" in words(view)


def test_a_decision_shows_until_its_hold_time_then_fades_to_idle() -> None:
    seen = {"verdict": refused(1, 100.0)}
    shown = lane_view(IDLE, seen, 119.0, RULES)
    assert shown["tone"] == "refused" and "气瓶已报废" in words(shown) and "放置待检" in words(shown)
    faded = lane_view(IDLE, seen, 121.0, RULES)
    assert faded["tone"] == "idle" and "气瓶已报废" not in words(faded)


def test_a_refused_scan_replaces_the_fills_heading() -> None:
    seen = {"fill_end": ended(1, 100.0), "verdict": refused(2, 101.0)}
    view = lane_view(LaneNow("complete", None, 25.0, True), seen, 102.0, RULES)
    assert "充装完成" not in words(view) and "合格" not in words(view) and view["verdict"]["zh"] == "✘ 禁止充装"
    # And a newer fill end replaces an older refusal.
    seen = {"verdict": refused(1, 100.0), "fill_end": ended(2, 101.0)}
    view = lane_view(LaneNow("complete", None, 25.0, True), seen, 102.0, RULES)
    assert view["heading"]["zh"] == "充装完成" and view["tone"] == "ok" and "禁止充装" not in words(view)


def test_locked_says_cause_action_and_reset_and_a_refused_reset_says_why() -> None:
    locked = LaneNow("locked", Reason.SCALE_LOST.value, None, False)
    seen = {"fill_end": ended(1, 100.0, "ABORTED", Reason.SCALE_LOST.value, tripped=True)}
    view = lane_view(locked, seen, 101.0, RULES)
    assert view["tone"] == "locked" and "秤通讯中断" in words(view) and "检查秤的电源" in words(view)
    assert "长按中止键 3 秒" in words(view) and view["refused_reset"] is None
    assert "秤无响应" not in words(view), "the lock already says the scale is lost"

    seen["reset"] = reset(2, 102.0, False, Reason.CYLINDER_ON_SCALE)
    view = lane_view(locked, seen, 103.0, RULES)
    assert view["refused_reset"]["zh"] == "复位被拒绝：请先将气瓶移离秤台"
    assert "取下气瓶后再复位" in words(view)
    assert lane_view(locked, seen, 200.0, RULES)["refused_reset"] is None, "a refused reset fades too"


def test_an_accepted_reset_clears_every_lock_message_and_older_decisions() -> None:
    seen = {"verdict": refused(1, 100.0, Reason.LANE_LOCKED), "fill_end": ended(2, 100.5, "ABORTED", Reason.NO_FLOW.value, True),
            "reset": reset(3, 101.0, True)}
    view = lane_view(IDLE, seen, 102.0, RULES)
    assert view["tone"] == "idle" and "锁定" not in words(view) and "复位" not in words(view) and "阀已开" not in words(view)
    # The next cylinder fills under a clean screen.
    filling = LaneNow("filling", None, 20.0, True, {"cylinder_id": "C2", "model": "YSP15", "tare_kg": 12.0, "target_net_kg": 14.5,
                                                    "phase_s": 3})
    view = lane_view(filling, seen, 103.0, RULES)
    assert view["tone"] == "filling" and view["weight"]["kg"] == pytest.approx(8.0) and view["bar"] == pytest.approx(800 / 14.5)
    assert "锁定" not in words(view)


def test_a_held_lane_says_acknowledge_not_reset() -> None:
    view = lane_view(LaneNow("locked", Reason.OVERFILLED.value, 40.0, True), {}, 1.0, RULES)
    assert "edge lane ack A" in words(view) and "edge lane reset" not in words(view)


def test_a_failed_prefill_check_names_the_failed_item() -> None:
    seen = {"verdict": refused(1, 100.0, Reason.PRECHECK_FAILED, "valve_ok,unknown_item")}
    view = lane_view(IDLE, seen, 101.0, RULES)
    reason = view["reasons"][0]
    assert reason["zh"] == "充装前检查不合格：瓶阀完好、unknown_item" and "cylinder valve intact" in reason["en"]
    assert "处理不合格项" in words(view)


def test_no_aim_prefix_is_explained_when_the_config_wants_one() -> None:
    seen = {"verdict": refused(1, 100.0, Reason.INVALID_CODE, "symbology none not accepted (a 1D barcode?)")}
    assert "扫描枪未发送AIM前缀" in words(lane_view(IDLE, seen, 101.0, RULES))
    other = {"verdict": refused(1, 100.0, Reason.INVALID_CODE, "symbology ]C0 not accepted (a 1D barcode?)")}
    assert "AIM" not in words(lane_view(IDLE, other, 101.0, RULES))


def test_a_scan_during_a_fill_does_not_take_over_the_screen() -> None:
    authorised = LaneNow("authorised", None, 0.0, True, {"cylinder_id": "C1", "tare_kg": 12.0, "target_net_kg": 14.5})
    seen = {"verdict": refused(2, 100.0, Reason.LANE_BUSY)}
    view = lane_view(authorised, seen, 101.0, RULES)
    assert view["verdict"]["zh"] == "✔ 可以充装" and view["notices"] == [{"zh": "正在充装，扫码无效", "en": "lane busy, scan ignored"}]


@pytest.mark.parametrize(("kind", "data", "said"), [
    ("verdict", {"accepted": True, "reasons": []}, "可以充装"),
    ("verdict", {"accepted": True, "reasons": ["INSPECTION_DUE_SOON"]}, "可以充装"),
    ("verdict", {"accepted": False, "reasons": ["INSPECTION_DUE_SOON", "SCRAPPED"]}, "禁止充装，气瓶已报废"),
    ("fill_end", {"outcome": "OK", "status": "complete"}, "充装完成"),
    ("fill_end", {"outcome": "ABORTED", "cause": "LEAK", "tripped": True}, "工位已锁定，关阀后重量下降，疑似泄漏"),
    ("fill_end", {"outcome": "OVERFILLED", "status": "complete", "cause": None}, "充装结束，超装"),
    ("reset", {"accepted": False, "refused": "CYLINDER_ON_SCALE"}, "复位被拒绝，请先将气瓶移离秤台"),
    ("reset", {"accepted": True}, "工位已复位"),
    ("valve_off", {"lag_s": 0.01}, None),
])
def test_voice_prompts(kind: str, data: dict[str, Any], said: str | None) -> None:
    assert prompt(kind, data) == said


def test_a_repeated_prompt_is_not_given_a_new_turn_within_the_quiet_time() -> None:
    now = [100.0]
    board = LaneBoard(ZoneInfo("Asia/Shanghai"), {"A": 5.0}, clock=lambda: now[0])
    scrapped = {"accepted": False, "code": "X", "reasons": ["SCRAPPED"], "details": [""]}
    board.observe(LaneEvent("A", "verdict", scrapped))
    first = board.prompt("A")
    assert first is not None and first["text"] == "禁止充装，气瓶已报废"
    now[0] = 103.0
    board.observe(LaneEvent("A", "verdict", scrapped))
    assert board.prompt("A")["id"] == first["id"], "said again within 5 s"  # type: ignore[index]
    now[0] = 109.0
    board.observe(LaneEvent("A", "verdict", scrapped))
    again = board.prompt("A")
    assert again is not None and again["id"] != first["id"]
    # Another prompt is said at once, and the page may fetch only issued prompts.
    board.observe(LaneEvent("A", "verdict", {"accepted": True, "code": "Y", "reasons": [], "details": []}))
    assert board.prompt("A")["text"] == "可以充装"  # type: ignore[index]
    assert board.prompt_text(first["key"]) == "禁止充装，气瓶已报废" and board.prompt_text("0" * 16) is None
