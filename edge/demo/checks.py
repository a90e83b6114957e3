"""The demo's checker and dispatcher: pre-fill checks for the lane that requires them, post-fill
checks, a tag binding and a dispatch, through the same scan-point functions the staff's web app
calls. The demo's station also serves that app, on HTTPS with a certificate made for the run."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from interlock.reasons import WARNINGS, Reason
from simulators.dataset import Generated
from simulators.photos import stamp_photo

from ..config import Config
from ..lanes.lane import utc_now
from ..scanpoints import Actor, Refused, bindings, checks, dispatch
from ..store import Store, journal, staff

PRECHECK_LANE = "A"
CHECKER = Actor("chk-wang", "王芳", "checker")
DISPATCHER = Actor("disp-liu", "刘强", "dispatcher")


def prepare(config_path: Path, state_dir: Path) -> str:
    """Lane A requires pre-fill checks; the staff app listens on the loopback over HTTPS with a
    certificate made for this run. Returns the certificate's fingerprint."""
    from ..webapp.server import make_certificate

    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    for lane in raw["lanes"]:
        lane["require_precheck"] = lane["id"] == PRECHECK_LANE
    cert, key = state_dir / "webapp.pem", state_dir / "webapp.key"
    fingerprint = make_certificate(cert, key, ["127.0.0.1", "localhost"])
    raw["webapp"] = {"enabled": True, "host": "127.0.0.1", "port": 0, "tls": {"cert": str(cert), "key": str(key)}}
    raw["checks"] = {"photo_dir": str(state_dir / "photos")}
    config_path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return fingerprint


class Checker:
    def __init__(self, config: Config, store: Store, say: Callable[[str], None]) -> None:
        self.config, self.store, self.say = config, store, say
        now = utc_now()
        staff.add(store, DISPATCHER.id, DISPATCHER.name, 10, now)
        self.vehicle = dispatch.trip("渝A·D2026", "赵六")

    def _items(self, kind: str, fail: str | None = None) -> dict[str, bool]:
        items = checks.prefill_items(self.config, "G13") if kind == "pre" else checks.postfill_items(self.config)
        return {i.id: i.id != fail for i in items}

    def precheck(self, cylinder: Generated, fail: str | None = None) -> None:
        result = checks.prefill(self.store, self.config, CHECKER, cylinder.row["qr_content"], self._items("pre", fail), utc_now())
        failed = ", ".join(i.zh for i in result.failed)
        self.say(f"checker    pre-fill check {cylinder.row['id']}: {'passed' if result.passed else 'REFUSED: ' + failed}")

    def refusals(self, scan: Callable[[str, str], Any], cylinder: Generated) -> None:
        """The lane refuses a cylinder nobody checked, then one whose check failed an item."""
        code = cylinder.row["qr_content"]
        scan(code, "own cylinder, not checked")
        self._operator_checks(cylinder)
        self.precheck(cylinder, fail="valve")
        scan(code, "own cylinder, check failed")

    def _operator_checks(self, cylinder: Generated) -> None:
        """The lane's operator, though a manager who may check, may not pre-check what the lane fills."""
        on_shift = self.store.query(
            "SELECT s.operator AS id, o.name FROM shifts s JOIN staff o ON o.id = s.operator WHERE s.lane = ?", [PRECHECK_LANE]
        )[0]
        operator = Actor(on_shift["id"], on_shift["name"], "manager")
        said = f"operator   {operator.name} pre-fill check of {cylinder.row['id']} for lane {PRECHECK_LANE}"
        try:
            checks.prefill(self.store, self.config, operator, cylinder.row["qr_content"], self._items("pre"), utc_now())
        except Refused as exc:
            self.say(f"{said}: REFUSED: {exc}")
            return
        self.say(f"{said}: RECORDED, the person rule did not hold")

    def after_fills(self, unfilled: Generated, tag_for: Generated) -> None:
        """Post-fill checks and dispatch of every completed fill, a refused dispatch, a binding."""
        filled = self.store.query(
            "SELECT DISTINCT c.id, c.qr_content FROM fills f JOIN cylinders c ON c.id = f.cylinder_id WHERE f.status = 'complete'"
        )
        for row in filled:
            try:
                result = checks.postfill(self.store, self.config, CHECKER, row["qr_content"], self._items("post"), utc_now())
            except Refused as exc:
                self.say(f"checker    post-fill check {row['id']}: not possible ({exc})")
                continue
            self.say(f"checker    post-fill check {row['id']}: {'passed' if result.passed else 'FAILED'}"
                     f" (re-weigh {result.reweigh_kg} kg{', ' + result.flag.value if result.flag else ''})")
            self._dispatch(row["id"], row["qr_content"])
        self._dispatch(unfilled.row["id"], unfilled.row["qr_content"])
        photo = stamp_photo(tag_for.row["product_no"])
        bound = bindings.bind(self.store, self.config, CHECKER, tag_for.row["product_no"], f"E2{secrets.token_hex(11).upper()}",
                              True, [photo], utc_now())
        self.say(f"checker    bound RFID tag {bound['tag_value']} to {bound['cylinder_id']} (stamp photo {bound['photos'][0]['sha256'][:12]}...)")

    def _dispatch(self, cylinder_id: str, code: str) -> None:
        try:
            dispatch.dispatch(self.store, self.config, DISPATCHER, self.vehicle, code, utc_now())
            self.say(f"gate       {cylinder_id} out on {self.vehicle['plate']} ({self.vehicle['courier']})")
        except Refused as exc:
            self.say(f"gate       {cylinder_id} REFUSED: {exc}")


def counts(store: Store) -> dict[str, Any]:
    """The scan points' figures for the demo's summary, from the durable records."""
    by_kind = {(r["kind"], r["passed"]): r["n"] for r in store.query("SELECT kind, passed, count(*) AS n FROM checks GROUP BY kind, passed")}
    # Scans refused for nothing but a missing check (an overdue cylinder is refused for that).
    missing = sum(
        1 for r in store.query("SELECT data FROM journal WHERE kind = 'scan'")
        if [x for x in journal.load(r["data"])["reasons"] if x not in WARNINGS] == [Reason.PRECHECK_MISSING]
    )
    return {
        "prefill_checks": by_kind.get(("prefill", 1), 0) + by_kind.get(("prefill", 0), 0),
        "prefill_refused": by_kind.get(("prefill", 0), 0),
        "postfill_checks": by_kind.get(("postfill", 1), 0) + by_kind.get(("postfill", 0), 0),
        "scans_refused_no_precheck": missing,
        "tag_bindings": store.query("SELECT count(*) AS n FROM tag_bindings")[0]["n"],
        "dispatches": store.query("SELECT count(*) AS n FROM dispatches")[0]["n"],
    }
