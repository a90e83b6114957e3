"""What a lane screen shows, derived from the lane's present state and its last events. Pure.

Each element has its own lifetime, so nothing on the screen outlives what it says:

- the lock (cause, what to do, how to reset) shows exactly while the lane is locked;
- a refused reset shows while the lane stays locked, for the hold time;
- a decision (a scan's verdict, a fill's result) shows until a newer decision replaces it, an
  accepted reset clears it, or the hold time has passed; then the idle screen returns;
- a fill in progress shows its live net weight; the idle screen shows the live gross weight (a
  cylinder on the platter before its scan).

The page only draws this; it never keeps anything from one refresh to the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from interlock.fill import HOLD_CAUSES
from interlock.reasons import TEXT, WARNINGS, Reason

from .actions import Line, action

AIM_MISSING = "symbology none"

PHASES: dict[str, Line] = {
    "idle": ("请扫码", "scan a cylinder"),
    "authorised": ("已授权，请上秤", "place the cylinder on the scale"),
    "ready": ("请按开始", "press start"),
    "filling": ("充装中", "filling"),
    "settling": ("复检中", "re-weighing"),
}
RESULTS: dict[str, Line] = {
    "ok": ("✔ 合格", "ok"),
    "overfilled": ("✘ 超装", "overfilled"),
    "underfilled": ("✘ 欠装", "underfilled"),
    "aborted": ("✘ 中止", "aborted"),
}


@dataclass(frozen=True)
class Seen:
    """One event of the lane as the board kept it: when it came (monotonic seconds), its order
    among the lane's events, the local time to print, and the event's data."""

    kind: str  # "verdict", "fill_end" or "reset"
    seq: int
    at: float
    clock: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class LaneNow:
    phase: str
    cause: str | None
    gross_kg: float | None
    scale_ok: bool
    fill: Mapping[str, Any] | None = None  # cylinder_id, model, tare_kg, target_net_kg, phase_s


@dataclass(frozen=True)
class Rules:
    """The lane's configuration as the screen needs it."""

    hold_s: float
    reset_how: Line
    ack_how: Line = ("", "")
    items: Mapping[str, Line] = field(default_factory=dict)  # pre-fill check item id -> its name
    aim: tuple[str, ...] = ()  # the AIM identifiers the lane's scanners are configured to send


def _line(pair: Line) -> dict[str, str]:
    return {"zh": pair[0], "en": pair[1]}


def reason_text(code: str) -> Line:
    try:
        return TEXT[Reason(code)]
    except (ValueError, KeyError):
        return code, code


def _reason(code: str, detail: str | None, rules: Rules) -> dict[str, Any]:
    zh, en = reason_text(code)
    if code in (Reason.PRECHECK_FAILED, Reason.CHECK_ITEM_FAILED) and detail:
        # Name the failed items as the checklist names them, not by their ids.
        names = [rules.items.get(item.strip(), (item.strip(), item.strip())) for item in detail.split(",")]
        zh += "：" + "、".join(n[0] for n in names)
        en += ": " + ", ".join(n[1] for n in names)
        detail = None
    return {"code": code, "zh": zh, "en": en, "detail": detail or None}


def _action(code: str, detail: str | None, rules: Rules) -> Line:
    if code == Reason.INVALID_CODE and detail and detail.startswith(AIM_MISSING) and rules.aim:
        wanted = " ".join(rules.aim)
        return (f"扫描枪未发送AIM前缀（配置要求 {wanted}）：请设置扫描枪发送AIM标识，或修改配置 aim",
                f"the scanner sends no AIM prefix but the config requires {wanted}: set the scanner to send AIM IDs, or change aim")
    return action(code)


def _live(now: Seen | None, since_seq: int, at: float, hold_s: float) -> Seen | None:
    """An event still on screen: after the last accepted reset, and within the hold time."""
    if now is None or now.seq <= since_seq or at - now.at > hold_s:
        return None
    return now


def lane_view(lane: LaneNow, seen: Mapping[str, Seen], now: float, rules: Rules) -> dict[str, Any]:
    """The lane screen's content: tone (idle, ok, refused, filling, locked), heading, verdict,
    reasons, actions, weight, bar, facts, detail and notices."""
    if not lane.scale_ok:
        lane = replace(lane, gross_kg=None)  # the last reading of a scale that stopped answering is not its weight
    view: dict[str, Any] = {"tone": "idle", "heading": None, "verdict": None, "reasons": [], "actions": [],
                            "weight": None, "bar": None, "facts": [], "detail": None, "notices": [], "refused_reset": None}
    reset = seen.get("reset")
    cleared = reset.seq if reset is not None and reset.data.get("accepted") else 0
    verdict = _live(seen.get("verdict"), cleared, now, rules.hold_s)
    ended = _live(seen.get("fill_end"), cleared, now, rules.hold_s)
    if lane.phase == "locked":
        _locked(view, lane, reset, now, rules)
    elif lane.phase in ("filling", "settling") and lane.fill:
        _filling(view, lane)
    elif lane.phase in ("authorised", "ready"):
        _authorised(view, lane, verdict, rules)
    else:
        latest = max((e for e in (verdict, ended) if e is not None), key=lambda e: e.seq, default=None)
        if latest is not None and latest.kind == "verdict" and not latest.data.get("accepted"):
            _refused(view, latest, rules)
        elif latest is not None and latest.kind == "fill_end":
            _ended(view, latest, rules)
        else:
            view["heading"] = _line(PHASES["idle"])
            view["weight"] = {"kg": lane.gross_kg, "suffix": "kg", "label": "秤上 / on the scale"}
    if not lane.scale_ok and lane.phase != "locked":
        view["notices"].append(_line(("秤无响应", "scale not answering")))
    return view


def _locked(view: dict[str, Any], lane: LaneNow, reset: Seen | None, now: float, rules: Rules) -> None:
    view["tone"] = "locked"
    view["verdict"] = {"ok": False, **_line(("✘ 工位已锁定", "lane locked"))}
    actions = []
    if lane.cause:
        view["reasons"].append(_reason(lane.cause, None, rules))
        actions.append(action(lane.cause))
    if reset is not None and not reset.data.get("accepted") and now - reset.at <= rules.hold_s:
        refused = str(reset.data.get("refused") or "")
        zh, en = reason_text(refused)
        view["refused_reset"] = {"zh": f"复位被拒绝：{zh}", "en": f"reset refused: {en}", "at": reset.clock}
        actions.append(action(refused))
    actions.append(rules.ack_how if lane.cause in HOLD_CAUSES else rules.reset_how)
    view["actions"] = [_line(a) for a in dict.fromkeys(actions)]  # a refusal for the trip's own cause says it once


def _filling(view: dict[str, Any], lane: LaneNow) -> None:
    fill = lane.fill
    assert fill is not None
    view["tone"] = "filling"
    view["heading"] = _line(PHASES[lane.phase])
    net = None if lane.gross_kg is None else lane.gross_kg - fill["tare_kg"]
    target = fill["target_net_kg"]
    view["weight"] = {"kg": net, "suffix": f"/ {target:.2f} kg", "label": "净重 / net"}
    view["bar"] = max(0.0, min(100.0, 100.0 * (net or 0.0) / target)) if target else None
    phase_s = fill.get("phase_s")
    view["facts"] = [f"型号 {fill.get('model') or '-'}", f"皮重 {fill['tare_kg']:.2f} kg", f"目标 {target:.2f} kg",
                     f"用时 {'-' if phase_s is None else f'{phase_s} s'}"]
    view["detail"] = fill.get("cylinder_id")


def _authorised(view: dict[str, Any], lane: LaneNow, verdict: Seen | None, rules: Rules) -> None:
    view["tone"] = "ok"
    view["verdict"] = {"ok": True, **_line(("✔ 可以充装", "fill allowed"))}
    view["heading"] = _line(PHASES[lane.phase])
    if verdict is not None and verdict.data.get("accepted"):
        warnings = [(r, d) for r, d in zip(verdict.data["reasons"], verdict.data["details"]) if r in WARNINGS]
        view["reasons"] = [_reason(r, d, rules) for r, d in warnings]
        view["actions"] = [_line(action(r)) for r, _ in warnings[:1]]
    elif verdict is not None:
        # A scan during the authorised fill: refused, said once, the fill goes on.
        first = verdict.data["reasons"][0] if verdict.data["reasons"] else ""
        view["notices"].append(_line(reason_text(first)))
    view["weight"] = {"kg": lane.gross_kg, "suffix": "kg", "label": "秤上 / on the scale"}
    if lane.fill:
        view["detail"] = lane.fill.get("cylinder_id")


def _refused(view: dict[str, Any], verdict: Seen, rules: Rules) -> None:
    data = verdict.data
    view["tone"] = "refused"
    view["verdict"] = {"ok": False, **_line(("✘ 禁止充装", "do not fill"))}
    blocking = [(r, d) for r, d in zip(data["reasons"], data["details"]) if r not in WARNINGS]
    view["reasons"] = [_reason(r, d, rules) for r, d in blocking[:2]]
    if len(blocking) > 2:
        view["notices"].append({"zh": f"另有 {len(blocking) - 2} 项", "en": f"+{len(blocking) - 2} more"})
    if blocking:
        view["actions"].append(_line(_action(*blocking[0], rules)))
    view["detail"] = " · ".join(str(p) for p in (data.get("cylinder_id"), str(data.get("code", ""))[:80], verdict.clock) if p)


def _ended(view: dict[str, Any], ended: Seen, rules: Rules) -> None:
    data = ended.data
    outcome = str(data.get("outcome") or data.get("status") or "").lower()
    ok = outcome == "ok"
    view["tone"] = "ok" if ok else "refused"
    view["heading"] = _line(("充装完成", "complete") if data.get("status") == "complete" else ("充装结束", "fill ended"))
    view["verdict"] = {"ok": ok, **_line(RESULTS.get(outcome, (outcome, outcome)))}
    view["weight"] = {"kg": data.get("net_kg"), "suffix": "kg", "label": "净重 / net"}
    cause = data.get("cause")
    if cause:
        view["reasons"].append(_reason(str(cause), None, rules))
    if not ok:
        flag = str(cause) if cause else outcome.upper()
        view["actions"].append(_line(action(flag)))
    view["detail"] = " · ".join(str(p) for p in (data.get("cylinder_id"), ended.clock) if p)
