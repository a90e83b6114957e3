"""The checker's pre-fill and post-fill checks (TSG 07-2019: a recorded check of every cylinder
before and after filling, by someone other than the operator)."""

from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from drivers.base import DeviceError, Scale
from interlock.checks import (
    Item, cylinder_capacity_kg, failed_items, reweigh_flag, reweigh_plausible, reweigh_range, typed_needs_confirmation,
)
from interlock.reasons import Reason
from interlock.rules import CheckRecord, Finding

from ..config import Config
from ..store import Store, journal
from ..store.database import iso
from .common import Actor, Refused, last_fill, queue_upload, resolve
from .duties import refuse_postcheck_by_operator, refuse_precheck_by_operator

if TYPE_CHECKING:
    from ..config.model import LaneConfig

log = logging.getLogger(__name__)

# A gross mass as a person types it on a phone: digits, one decimal point or comma, grams at most.
_MASS = re.compile(r"\d{1,4}(?:[.,]\d{1,3})?")


class Unconfirmed(Refused):
    """A typed re-weigh the checker must confirm before it is recorded."""

    def __init__(self, typed_kg: float, final_gross_kg: float, tolerance_kg: float) -> None:
        detail = f"{typed_kg} kg; 充装秤终重 filling scale {final_gross_kg} kg, 允差 tolerance {tolerance_kg} kg"
        super().__init__([Finding(Reason.REWEIGH_UNCONFIRMED, detail)])
        self.typed_kg = typed_kg


def parse_reweigh(text: str) -> float:
    """A typed gross mass in kg, or ValueError in the staff's words (full-width digits and a
    decimal comma, as phone keyboards give them, are read as meant)."""
    value = unicodedata.normalize("NFKC", text).strip().removesuffix("kg").strip()
    if not _MASS.fullmatch(value):
        raise ValueError("复秤毛重请填写数字（千克），如 29.5 / re-weigh: the gross mass in kg as a number, e.g. 29.5")
    return float(value.replace(",", "."))


@dataclass(frozen=True)
class CheckResult:
    id: str
    cylinder_id: str
    passed: bool
    failed: tuple[Item, ...]
    flag: Reason | None = None
    reweigh_kg: float | None = None


def prefill_items(config: Config, medium: str | None) -> list[Item]:
    items = config.checks.prefill.get(medium or "")
    if items is None:
        raise Refused.one(Reason.MEDIUM_MISMATCH, f"no pre-fill check list for medium {medium} (checks.prefill)")
    return [i.item() for i in items]


def postfill_items(config: Config) -> list[Item]:
    return [i.item() for i in config.checks.postfill]


def refuse_own(store: Store, config: Config, actor: Actor, kind: str, row: dict[str, Any]) -> None:
    """Refused when the person rule forbids `actor` this check of the cylinder: said as soon as the
    cylinder is looked up, before the checker ticks a list that could not be recorded."""
    if kind == "pre":
        refuse_precheck_by_operator(store, config, actor, row["medium"])
        return
    fill = last_fill(store, row["id"])
    if fill is not None:
        refuse_postcheck_by_operator(store, actor, fill)


def prefill(store: Store, config: Config, actor: Actor, code: str, ticked: Mapping[str, bool], now: datetime) -> CheckResult:
    """Record a pre-fill check. Any failed item refuses the cylinder for filling, naming the item."""
    row = resolve(store, config, code)
    refuse_precheck_by_operator(store, config, actor, row["medium"])
    items = prefill_items(config, row["medium"])
    failed = failed_items(items, ticked)
    result = CheckResult(str(uuid.uuid4()), row["id"], not failed, failed)
    _write(store, config, "prefill", actor, row, code, items, ticked, result, now)
    return result


def postfill(
    store: Store,
    config: Config,
    actor: Actor,
    code: str,
    ticked: Mapping[str, bool],
    now: datetime,
    reweigh_kg: float | None = None,
    source: str = "check_scale",
    confirmed: bool = False,
) -> CheckResult:
    """Record a post-fill check of the cylinder's last fill, with its re-weigh: a reading when
    given (from the check scale, or typed in: `source` says which), else the filling scale's final
    reading. A re-weigh the cylinder cannot physically read is refused with the range it can; a
    typed one far from the filling scale's final reading needs `confirmed`. An over- or underfill
    found here fails the check, which blocks the cylinder's dispatch; an overfill also flags it for
    decanting. The fill's operator may not record its check."""
    row = resolve(store, config, code)
    fill = last_fill(store, row["id"])
    if fill is None or fill["status"] != "complete":
        raise Refused.one(Reason.FILL_NOT_COMPLETE, "no completed fill to check" if fill is None else f"last fill {fill['status']}")
    refuse_postcheck_by_operator(store, actor, fill)
    gross = reweigh_kg if reweigh_kg is not None else fill["final_gross_kg"]
    gross = None if gross is None else round(gross, 3)
    source = source if reweigh_kg is not None else "fill_scale"
    if gross is None or fill["tare_kg"] is None or fill["target_net_kg"] is None:
        raise Refused.one(Reason.NO_FILL_DATA, "no re-weigh reading")
    lane = _lane(config, fill["lane"])
    tolerance = lane.fill.tolerance_kg if lane else min(l.fill.tolerance_kg for l in config.lanes)
    slack = lane.fill.tare_tolerance_kg if lane else max(l.fill.tare_tolerance_kg for l in config.lanes)
    capacity = cylinder_capacity_kg(row.get("volume_l"), fill["target_net_kg"])
    if not reweigh_plausible(gross, fill["tare_kg"], capacity, slack):
        low, high = reweigh_range(fill["tare_kg"], capacity, slack)
        raise Refused.one(Reason.REWEIGH_IMPLAUSIBLE, f"{gross} kg; 应为 expected {low}–{high} kg")
    if source == "typed" and not confirmed and typed_needs_confirmation(gross, fill["final_gross_kg"], tolerance):
        raise Unconfirmed(gross, fill["final_gross_kg"], tolerance)
    flag = reweigh_flag(gross, fill["tare_kg"], fill["target_net_kg"], tolerance)
    items = postfill_items(config)
    failed = failed_items(items, ticked)
    result = CheckResult(str(uuid.uuid4()), row["id"], not failed and flag is None, failed, flag, gross)
    _write(store, config, "postfill", actor, row, code, items, ticked, result, now, fill_id=fill["id"], source=source)
    return result


def read_check_scale(scale: Scale, settle_s: float = 3.0, poll_s: float = 0.1) -> float:
    """A stable gross reading from the check table's scale, or Refused."""
    deadline = time.monotonic() + settle_s
    while True:
        try:
            reading = scale.read()
        except DeviceError as exc:
            raise Refused.one(Reason.SCALE_LOST, f"check scale: {exc}") from exc
        if reading.stable:
            return reading.gross_kg
        if time.monotonic() > deadline:
            raise Refused.one(Reason.SETTLE_TIMEOUT, f"check scale not stable within {settle_s:.0f} s")
        time.sleep(poll_s)


def _lane(config: Config, lane: str) -> LaneConfig | None:
    """The lane's config (None: a lane since removed from the config)."""
    return next((l for l in config.lanes if l.id == lane), None)


def _write(
    store: Store,
    config: Config,
    kind: str,
    actor: Actor,
    row: dict[str, Any],
    code: str,
    items: list[Item],
    ticked: Mapping[str, bool],
    result: CheckResult,
    now: datetime,
    fill_id: str | None = None,
    source: str | None = None,
) -> None:
    answers = {item.id: ticked.get(item.id) is True for item in items}
    failed = [item.id for item in result.failed]
    record = {
        "id": result.id, "kind": kind, "cylinder_id": row["id"], "code": code[:200], "medium": row["medium"],
        "checker": actor.id, "checker_name": actor.name, "passed": int(result.passed),
        "items": json.dumps(answers), "failed": json.dumps(failed), "fill_id": fill_id,
        "reweigh_kg": result.reweigh_kg, "reweigh_source": source,
        "flag": None if result.flag is None else result.flag.value, "at": iso(now),
    }
    with store.transaction() as conn:
        store.db["checks"].insert(record)
        journal.append(
            conn, iso(now), f"check_{kind}",
            {**record, "items": answers, "failed": failed, "by": actor.id},
            fill_id=fill_id, cylinder_id=row["id"],
        )
        city = config.city.profile if config.city is not None else None
        if city is not None and city.endpoint("fill_check"):
            upload = {
                "cylinder_id": row["id"], "check_kind": kind, "time": now.astimezone(config.tz).isoformat(timespec="seconds"),
                "checker": actor.name, "passed": result.passed, "failed_items": ",".join(failed),
                "reweigh_kg": result.reweigh_kg, "flag": record["flag"],
            }
            queue_upload(conn, "fill_check", f"check:{result.id}", upload, now)
    verdict = "passed" if result.passed else " ".join(["FAILED", *([",".join(failed)] if failed else []), *([result.flag] if result.flag else [])])
    log.info("%s check of %s by %s: %s", kind, row["id"], actor.id, verdict)


def latest_precheck(store: Store, cylinder_id: str) -> tuple[str, CheckRecord] | None:
    """The newest pre-fill check of the cylinder since its last fill started (a check is good for
    one fill), with its id."""
    rows = store.query(
        "SELECT id, passed, at, checker, checker_name, failed FROM checks WHERE kind = 'prefill' AND cylinder_id = ?"
        " AND at > coalesce((SELECT max(started_at) FROM fills WHERE cylinder_id = ? AND started_at IS NOT NULL), '')"
        " ORDER BY at DESC LIMIT 1",
        [cylinder_id, cylinder_id],
    )
    if not rows:
        return None
    r = rows[0]
    return r["id"], CheckRecord(
        bool(r["passed"]), datetime.fromisoformat(r["at"]), r["checker_name"], tuple(json.loads(r["failed"])), r["checker"],
    )


def latest_postcheck(store: Store, cylinder_id: str, fill_id: str) -> dict[str, Any] | None:
    rows = store.query(
        "SELECT * FROM checks WHERE kind = 'postfill' AND cylinder_id = ? AND fill_id = ? ORDER BY at DESC LIMIT 1",
        [cylinder_id, fill_id],
    )
    return rows[0] if rows else None
