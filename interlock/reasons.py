"""Reason codes: a stable code for programs, short Chinese and English text for operators."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # Rejections of a scan.
    INVALID_CODE = "INVALID_CODE"
    TWO_CODES = "TWO_CODES"  # a camera frame showed several cylinders' codes: which one is on the scale?
    UNKNOWN_CYLINDER = "UNKNOWN_CYLINDER"
    NOT_SELF_OWNED = "NOT_SELF_OWNED"
    SCRAPPED = "SCRAPPED"
    SUSPENDED = "SUSPENDED"
    INSPECTION_OVERDUE = "INSPECTION_OVERDUE"
    SERVICE_LIFE_EXCEEDED = "SERVICE_LIFE_EXCEEDED"
    MEDIUM_MISMATCH = "MEDIUM_MISMATCH"
    NOT_REGISTERED = "NOT_REGISTERED"
    CACHE_STALE = "CACHE_STALE"
    BLOCKED_LOCALLY = "BLOCKED_LOCALLY"
    NOT_IN_REGISTRY = "NOT_IN_REGISTRY"
    LANE_BUSY = "LANE_BUSY"
    LANE_LOCKED = "LANE_LOCKED"
    NO_FILL_DATA = "NO_FILL_DATA"
    REMOTE_LOCK = "REMOTE_LOCK"  # the company (or the regulator through it) locked the lane
    # The checker's pre-fill check (lanes with require_precheck) and the gate's dispatch rules.
    PRECHECK_MISSING = "PRECHECK_MISSING"
    PRECHECK_FAILED = "PRECHECK_FAILED"
    CHECK_ITEM_FAILED = "CHECK_ITEM_FAILED"
    FILL_NOT_COMPLETE = "FILL_NOT_COMPLETE"
    POSTCHECK_MISSING = "POSTCHECK_MISSING"
    POSTCHECK_FAILED = "POSTCHECK_FAILED"
    # Separation of duties by person, and values a person typed that physics rules out.
    SAME_PERSON = "SAME_PERSON"
    REWEIGH_IMPLAUSIBLE = "REWEIGH_IMPLAUSIBLE"
    REWEIGH_UNCONFIRMED = "REWEIGH_UNCONFIRMED"
    # One fill leaves the station once; an identifier belongs to one cylinder.
    ALREADY_DISPATCHED = "ALREADY_DISPATCHED"
    TAG_TAKEN = "TAG_TAKEN"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    # Warnings: shown to the operator, never block a fill.
    INSPECTION_DUE_SOON = "INSPECTION_DUE_SOON"
    CACHE_AGING = "CACHE_AGING"
    # Why a fill ended without completing, and trips.
    TARE_MISMATCH = "TARE_MISMATCH"
    ALREADY_FULL = "ALREADY_FULL"
    AUTH_EXPIRED = "AUTH_EXPIRED"
    OPERATOR_ABORT = "OPERATOR_ABORT"
    SCALE_LOST = "SCALE_LOST"
    SCALE_FROZEN = "SCALE_FROZEN"
    SCALE_OVERLOAD = "SCALE_OVERLOAD"
    SCALE_ERROR = "SCALE_ERROR"
    IMPLAUSIBLE_WEIGHT = "IMPLAUSIBLE_WEIGHT"
    CYLINDER_REMOVED = "CYLINDER_REMOVED"
    MAX_FILL_TIME = "MAX_FILL_TIME"
    OVERFILL_LIMIT = "OVERFILL_LIMIT"
    WEIGHT_RISING_VALVE_OFF = "WEIGHT_RISING_VALVE_OFF"
    SETTLE_TIMEOUT = "SETTLE_TIMEOUT"
    RELAY_FAULT = "RELAY_FAULT"
    LANE_FAULT = "LANE_FAULT"
    INTERRUPTED = "INTERRUPTED"
    NO_FLOW = "NO_FLOW"
    LOOP_STALLED = "LOOP_STALLED"
    LEAK = "LEAK"
    # Why a reset was refused (besides a scale fault that still shows).
    CYLINDER_ON_SCALE = "CYLINDER_ON_SCALE"
    # Post-fill re-check flags.
    OVERFILLED = "OVERFILLED"
    UNDERFILLED = "UNDERFILLED"


TEXT: dict[Reason, tuple[str, str]] = {
    Reason.INVALID_CODE: ("无法识别的码", "code not recognised"),
    Reason.TWO_CODES: ("两个码同时在视野内", "two codes in view"),
    Reason.UNKNOWN_CYLINDER: ("未登记的气瓶", "cylinder not in records"),
    Reason.NOT_SELF_OWNED: ("非本单位自有气瓶", "not owned by this station"),
    Reason.SCRAPPED: ("气瓶已报废", "cylinder scrapped"),
    Reason.SUSPENDED: ("气瓶已停用", "cylinder suspended"),
    Reason.INSPECTION_OVERDUE: ("超期未检", "inspection overdue"),
    Reason.SERVICE_LIFE_EXCEEDED: ("超过设计使用年限", "service life exceeded"),
    Reason.MEDIUM_MISMATCH: ("充装介质不符", "wrong gas for this lane"),
    Reason.NOT_REGISTERED: ("未办理使用登记", "no use registration"),
    Reason.CACHE_STALE: ("气瓶数据过期，请同步", "cylinder data too old, sync needed"),
    Reason.BLOCKED_LOCALLY: ("本站已锁定该气瓶", "blocked at this station"),
    Reason.NOT_IN_REGISTRY: ("监管平台已注销该气瓶", "no longer in the city registry"),
    Reason.LANE_BUSY: ("正在充装，扫码无效", "lane busy, scan ignored"),
    Reason.LANE_LOCKED: ("充装位已锁定，请复位", "lane locked, reset required"),
    Reason.NO_FILL_DATA: ("缺少皮重或充装量", "no tare or fill mass on record"),
    Reason.REMOTE_LOCK: ("已被远程锁定", "locked remotely by the company"),
    Reason.PRECHECK_MISSING: ("未做充装前检查", "no pre-fill check"),
    Reason.PRECHECK_FAILED: ("充装前检查不合格", "pre-fill check failed"),
    Reason.CHECK_ITEM_FAILED: ("检查项不合格", "check item failed"),
    Reason.FILL_NOT_COMPLETE: ("最近一次充装未完成", "last fill not completed"),
    Reason.POSTCHECK_MISSING: ("未做充装后检查", "no post-fill check"),
    Reason.POSTCHECK_FAILED: ("充装后检查不合格", "post-fill check failed"),
    Reason.SAME_PERSON: ("充装人员不得检查自己充装的气瓶", "the person who operates a fill may not check it"),
    Reason.REWEIGH_IMPLAUSIBLE: ("复秤重量不可能，请重新称重或核对输入", "re-weigh impossible for this cylinder: weigh again or check what was typed"),
    Reason.REWEIGH_UNCONFIRMED: ("复秤重量与充装秤终重不符，请确认", "re-weigh differs from the filling scale's final reading: confirm it"),
    Reason.ALREADY_DISPATCHED: ("本次充装的气瓶已出站", "this fill has already left the station"),
    Reason.TAG_TAKEN: ("标识已属于另一只气瓶", "identifier belongs to another cylinder"),
    Reason.STORE_UNAVAILABLE: ("记录无法保存（磁盘满或只读），暂停充装", "records cannot be saved (disk full or read-only); filling paused"),
    Reason.INSPECTION_DUE_SOON: ("即将到检", "inspection due soon"),
    Reason.CACHE_AGING: ("气瓶数据较旧", "cylinder data getting old"),
    Reason.TARE_MISMATCH: ("皮重不符", "tare does not match"),
    Reason.ALREADY_FULL: ("气瓶已满", "cylinder already full"),
    Reason.AUTH_EXPIRED: ("授权超时", "authorisation expired"),
    Reason.OPERATOR_ABORT: ("人工中止", "stopped by operator"),
    Reason.SCALE_LOST: ("秤通讯中断", "scale not answering"),
    Reason.SCALE_FROZEN: ("秤仪表死机", "scale indicator hung (heartbeat stopped)"),
    Reason.SCALE_OVERLOAD: ("秤超载", "scale overload"),
    Reason.SCALE_ERROR: ("秤仪表报错", "scale indicator reports an error"),
    Reason.IMPLAUSIBLE_WEIGHT: ("称重异常", "implausible weight"),
    Reason.CYLINDER_REMOVED: ("气瓶离秤", "cylinder left the scale"),
    Reason.MAX_FILL_TIME: ("充装超时", "fill took too long"),
    Reason.OVERFILL_LIMIT: ("超装切断", "overfill cut-off"),
    Reason.WEIGHT_RISING_VALVE_OFF: ("关阀后重量仍上升", "weight rising with valve off"),
    Reason.SETTLE_TIMEOUT: ("称重不稳定", "scale did not settle"),
    Reason.RELAY_FAULT: ("阀门继电器故障", "valve relay fault"),
    Reason.LANE_FAULT: ("充装位故障", "lane fault"),
    Reason.INTERRUPTED: ("充装中断（系统重启）", "fill interrupted by restart"),
    Reason.NO_FLOW: ("阀已开但重量不增（气源、瓶阀或秤值冻结）", "valve open but no weight gain (supply, cylinder valve or frozen reading)"),
    Reason.LOOP_STALLED: ("控制程序停滞，已强制关阀", "control loop hung: valve closed by the guard"),
    Reason.LEAK: ("关阀后重量下降，疑似泄漏", "weight falling with valve off: possible leak"),
    Reason.CYLINDER_ON_SCALE: ("请先将气瓶移离秤台", "take the cylinder off the scale first"),
    Reason.OVERFILLED: ("超装，需倒残", "overfilled, decant required"),
    Reason.UNDERFILLED: ("欠装", "underfilled"),
}

# Reasons that only warn; every other reason on a decision refuses the fill.
WARNINGS = frozenset({Reason.INSPECTION_DUE_SOON, Reason.CACHE_AGING})


def text(reason: Reason) -> str:
    """Operator text in both languages, e.g. '超期未检 / inspection overdue'."""
    zh, en = TEXT[reason]
    return f"{zh} / {en}"
