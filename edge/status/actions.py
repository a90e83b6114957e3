"""What the operator does next, per reason: one short line in Chinese and English for the lane
screen. A refusal that only says "no" leaves a person with a cylinder in their hands and nothing
to do; every reason that refuses or ends a fill says what to do about it here."""

from __future__ import annotations

from interlock.reasons import Reason

Line = tuple[str, str]

SET_ASIDE = "放置待检"
CALL_SUPERVISOR = "联系负责人"

ACTIONS: dict[Reason, Line] = {
    Reason.TWO_CODES: ("只让本瓶的码对着摄像头，再扫码", "show the camera only this cylinder's code, then scan"),
    Reason.INVALID_CODE: ("请重新扫描气瓶标签；仍无法识别则放置待检", "scan the label again; if it still fails, set the cylinder aside"),
    Reason.UNKNOWN_CYLINDER: (f"{SET_ASIDE}，{CALL_SUPERVISOR}核实登记", "set aside for inspection; the supervisor checks its registration"),
    Reason.NOT_SELF_OWNED: ("退回，本站不得充装", "return it: this station may not fill it"),
    Reason.SCRAPPED: (f"{SET_ASIDE}，交负责人处理", "set aside for inspection; hand it to the supervisor"),
    Reason.SUSPENDED: (f"{SET_ASIDE}，交负责人处理", "set aside for inspection; hand it to the supervisor"),
    Reason.INSPECTION_OVERDUE: (f"{SET_ASIDE}，送定期检验", "set aside; send it for periodic inspection"),
    Reason.SERVICE_LIFE_EXCEEDED: (f"{SET_ASIDE}，交负责人报废处理", "set aside; the supervisor has it scrapped"),
    Reason.MEDIUM_MISMATCH: ("送到对应介质的充装位", "take it to a lane for its gas"),
    Reason.NOT_REGISTERED: (f"{SET_ASIDE}，{CALL_SUPERVISOR}办理使用登记", "set aside; the supervisor arranges its registration"),
    Reason.CACHE_STALE: (f"请同步数据（{CALL_SUPERVISOR}）", "sync the cylinder data (ask the supervisor)"),
    Reason.BLOCKED_LOCALLY: (f"{SET_ASIDE}，{CALL_SUPERVISOR}", "set aside; ask the supervisor"),
    Reason.NOT_IN_REGISTRY: (f"{SET_ASIDE}，{CALL_SUPERVISOR}", "set aside; ask the supervisor"),
    Reason.LANE_BUSY: ("等本次充装结束再扫码", "wait for this fill to end, then scan"),
    Reason.LANE_LOCKED: ("先复位工位，再扫码", "reset the lane first, then scan"),
    Reason.NO_FILL_DATA: (f"{CALL_SUPERVISOR}补录皮重和充装量", "the supervisor adds its tare and fill mass"),
    Reason.REMOTE_LOCK: (f"{CALL_SUPERVISOR}：公司已锁定本工位", "call the supervisor: the company locked this lane"),
    Reason.PRECHECK_MISSING: ("请做充装前检查", "do the pre-fill check first"),
    Reason.PRECHECK_FAILED: (f"{SET_ASIDE}：处理不合格项后重新检查", "set aside: fix the failed item, then check again"),
    Reason.CHECK_ITEM_FAILED: (f"{SET_ASIDE}：处理不合格项后重新检查", "set aside: fix the failed item, then check again"),
    Reason.FILL_NOT_COMPLETE: ("重新充装，或联系负责人", "fill it again, or ask the supervisor"),
    Reason.POSTCHECK_MISSING: ("请做充装后检查", "do the post-fill check"),
    Reason.POSTCHECK_FAILED: (SET_ASIDE, "set aside for inspection"),
    Reason.SAME_PERSON: ("请另一名检查员检查", "another checker does the check"),
    Reason.REWEIGH_IMPLAUSIBLE: ("重新称重，或核对输入的重量", "weigh again, or check the typed weight"),
    Reason.REWEIGH_UNCONFIRMED: ("核对后确认复秤重量", "check, then confirm the re-weigh"),
    Reason.ALREADY_DISPATCHED: ("本次充装已出站，核对气瓶", "this fill has left already: check the cylinder"),
    Reason.TAG_TAKEN: (f"核对标签；改绑请{CALL_SUPERVISOR}", "check the tag; the supervisor rebinds it"),
    Reason.STORE_UNAVAILABLE: (f"{CALL_SUPERVISOR}：检查磁盘空间", "call the supervisor: check the disk"),
    Reason.INSPECTION_DUE_SOON: ("可以充装；请尽快安排检验", "fill allowed; arrange its inspection soon"),
    Reason.CACHE_AGING: ("请尽快同步数据", "sync the cylinder data soon"),
    Reason.TARE_MISMATCH: (f"核对气瓶与标签是否一致，{SET_ASIDE}", "check the cylinder matches its label; set aside"),
    Reason.ALREADY_FULL: ("气瓶已满，请取下", "already full: take it off"),
    Reason.AUTH_EXPIRED: ("请重新扫码", "scan again"),
    Reason.OPERATOR_ABORT: ("取下气瓶；需要时重新扫码", "take the cylinder off; scan again to refill"),
    Reason.SCALE_LOST: ("检查秤的电源和通讯线", "check the scale's power and cable"),
    Reason.SCALE_FROZEN: ("重启秤仪表", "restart the scale indicator"),
    Reason.SCALE_OVERLOAD: ("移走秤台上的多余重物", "take the extra weight off the scale"),
    Reason.SCALE_ERROR: ("查看秤仪表的报错信息", "read the error on the scale indicator"),
    Reason.IMPLAUSIBLE_WEIGHT: ("检查秤台上有无异物", "check the platter for anything else on it"),
    Reason.CYLINDER_REMOVED: ("检查气瓶和充装枪", "check the cylinder and the filling gun"),
    Reason.MAX_FILL_TIME: ("检查气源和瓶阀", "check the gas supply and the cylinder valve"),
    Reason.OVERFILL_LIMIT: (f"气瓶超装：倒残后{SET_ASIDE}", "overfilled: decant, then set aside for inspection"),
    Reason.WEIGHT_RISING_VALVE_OFF: ("关闭总阀，检查充装阀", "close the main valve; check the filling valve"),
    Reason.SETTLE_TIMEOUT: ("保持秤台静止，重新称重", "keep the platter still and weigh again"),
    Reason.RELAY_FAULT: ("关闭总阀，联系维修", "close the main valve; call maintenance"),
    Reason.LANE_FAULT: ("联系维修", "call maintenance"),
    Reason.INTERRUPTED: ("重新称重核对后处理", "re-weigh the cylinder before anything else"),
    Reason.NO_FLOW: ("检查气源、瓶阀和充装枪", "check the gas supply, cylinder valve and filling gun"),
    Reason.LOOP_STALLED: ("联系维修", "call maintenance"),
    Reason.LEAK: (f"关闭瓶阀，检漏，{SET_ASIDE}", "close the cylinder valve, check for leaks, set aside"),
    Reason.CYLINDER_ON_SCALE: ("取下气瓶后再复位", "take the cylinder off, then reset"),
    Reason.OVERFILLED: ("倒残后重新称重", "decant, then weigh again"),
    Reason.UNDERFILLED: ("重新扫码补充装", "scan it again to top it up"),
}


def action(reason: str) -> Line:
    """The line for a reason code; a code this release does not know (a newer peer's) asks for
    the supervisor rather than showing nothing."""
    try:
        return ACTIONS[Reason(reason)]
    except (ValueError, KeyError):
        return CALL_SUPERVISOR, "ask the supervisor"


def reset_how(lane_id: str, reset_input: bool, abort_hold_s: float | None) -> Line:
    """How this station resets a locked lane, as configured: the reset key, a long press of
    abort, and always the supervisor's command."""
    zh, en = [], []
    if reset_input:
        zh.append("按复位键")
        en.append("press the reset key")
    if abort_hold_s is not None:
        zh.append(f"长按中止键 {abort_hold_s:g} 秒")
        en.append(f"hold abort for {abort_hold_s:g} s")
    command = f"edge lane reset {lane_id} --by 工号"
    zh.append(f"负责人执行 {command}")
    en.append(f"the supervisor runs edge lane reset {lane_id} --by ID")
    return "排除故障后复位：" + "，或".join(zh), "clear the fault, then reset: " + ", or ".join(en)


def ack_how(lane_id: str) -> Line:
    """A lane held for an acknowledgement (an interrupted fill found overfilled) is not reset."""
    return (f"负责人核实后确认：edge lane ack {lane_id} --by 工号",
            f"the supervisor checks, then acknowledges: edge lane ack {lane_id} --by ID")
