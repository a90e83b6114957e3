"""What the staff record is true: one person never checks a fill they operate (web app over HTTPS,
the lane over Modbus, `edge staff assign`), and a re-weigh is checked against the cylinder's physics
before it becomes a post-fill check."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from edge.cli import main
from edge.lanes.lane import utc_now
from edge.scanpoints import Actor, checks
from interlock.reasons import Reason

from .conftest import SimStation
from .webapp_support import all_items, edge_verify, enrol, logged_in, webapp_override


@pytest.fixture
def web(make_station: Callable[..., SimStation], tmp_path: Path) -> SimStation:
    s = make_station(webapp_override(tmp_path, precheck_lane=None))
    enrol(s)
    return s


def count(s: SimStation, sql: str) -> int:
    assert s.station.store is not None
    return int(s.station.store.query(f"SELECT count(*) AS n FROM {sql}")[0]["n"])


def assign(s: SimStation, lane: str, operator: str, checker: str) -> None:
    config_path = Path(str(s.config.store.path)).parent / "station.yaml"
    assert main(["staff", "assign", lane, "--operator", operator, "--checker", checker, "--config", str(config_path)]) == 0


def test_who_prechecked_a_cylinder_never_fills_it_and_who_filled_it_never_checks_it(web: SimStation) -> None:
    cylinder = web.cylinder(skip=2)
    code = cylinder.row["qr_content"]
    manager = logged_in(web, "mgr-chen")  # a manager may check, and may be put on a lane as its operator
    passed = manager.form("/check/pre", {"code": code, **all_items(web, "pre")})
    assert "合格 PASSED" in passed.text
    # Then put on lane A's shift as its operator, by the command: the lane refuses the cylinder
    # they checked themselves, and the valve never opens.
    assign(web, "A", "mgr-chen", "chk-wang")
    refused = web.scan("A", code)
    assert not refused["accepted"] and Reason.SAME_PERSON in refused["reasons"], refused
    assert "mgr-chen" in " ".join(refused["details"]) and not web.modbus("A").valve_on()
    # While on shift at a G13 lane, they may not pre-check a G13 cylinder at all: nothing is written.
    before = count(web, "checks")
    again = manager.form("/check/pre", {"code": web.cylinder(skip=3).row["qr_content"], **all_items(web, "pre")})
    assert again.status_code == 422 and "充装人员不得检查自己充装的气瓶" in again.text and "mgr-chen" in again.text
    assert count(web, "checks") == before
    # Another checker's check lets the lane fill it, with mgr-chen operating.
    checker = logged_in(web, "chk-wang")
    assert "合格 PASSED" in checker.form("/check/pre", {"code": code, **all_items(web, "pre")}).text
    web.start_fill("A", cylinder)
    end = web.wait("A", "fill_end", timeout=30)
    assert end["status"] == "complete"
    web.modbus("A").model.remove()
    fill = web.fill_row(end["fill_id"])
    assert (fill["operator"], fill["checker"]) == ("陈静", "王芳")
    # The operator may not post-fill check the fill they operated, by web app or scan-point function.
    before = count(web, "checks")
    post = manager.form("/check/post", {"code": code, **all_items(web, "post")})
    assert post.status_code == 422 and "充装人员不得检查" in post.text and "operated" in post.text
    assert web.station.store is not None
    with pytest.raises(checks.Refused) as direct:
        checks.postfill(web.station.store, web.config, Actor("mgr-chen", "陈静", "manager"), code,
                        {i.id: True for i in web.config.checks.postfill}, utc_now())
    assert direct.value.findings[0].reason is Reason.SAME_PERSON
    assert count(web, "checks") == before
    # Moved off the lane, they are still the person who operated that fill.
    assign(web, "A", "op-zhang", "chk-wang")
    assert manager.form("/check/post", {"code": code, **all_items(web, "post")}).status_code == 422
    # Someone else checks it.
    assert "合格 PASSED" in checker.form("/check/post", {"code": code, **all_items(web, "post")}).text
    assert edge_verify(web)


def test_who_operated_a_fill_never_post_fill_checks_it(web: SimStation) -> None:
    assign(web, "A", "mgr-chen", "chk-wang")
    fill = filled(web, 6)
    assert fill["operator"] == "陈静" and fill["precheck_id"] is None
    code = web.cylinder(skip=6).row["qr_content"]
    before = count(web, "checks")
    manager = logged_in(web, "mgr-chen")
    # Said as soon as the cylinder is looked up: no check list to tick.
    looked_up = manager.get("/check/post", params={"code": code}).text
    assert "充装人员不得检查自己充装的气瓶" in looked_up and 'id="checklist"' not in looked_up
    refused = manager.form("/check/post", {"code": code, **all_items(web, "post")})
    assert refused.status_code == 422 and "充装人员不得检查自己充装的气瓶" in refused.text and "mgr-chen operated" in refused.text
    assert count(web, "checks") == before
    assert "合格 PASSED" in logged_in(web, "chk-wang").form("/check/post", {"code": code, **all_items(web, "post")}).text


def filled(s: SimStation, skip: int) -> dict[str, Any]:
    """A cylinder filled to its target on lane A (Modbus TCP), nobody's pre-fill check needed."""
    cylinder = s.cylinder(skip=skip)
    s.start_fill("A", cylinder)
    end = s.wait("A", "fill_end", timeout=30)
    assert end["status"] == "complete"
    s.modbus("A").model.remove()
    return s.fill_row(end["fill_id"])


def test_a_reweigh_must_be_physically_possible_and_a_short_one_fails_and_blocks_dispatch(web: SimStation) -> None:
    fill = filled(web, 4)
    cylinder = web.cylinder(skip=4).row
    code = cylinder["qr_content"]
    c = logged_in(web, "chk-wang")
    items = all_items(web, "post")
    before = count(web, "checks")
    # Below the tare: a typing error, refused with the range the cylinder can read.
    low = c.form("/check/post", {"code": code, **items, "reweigh_kg": "3.3"})
    assert low.status_code == 422 and "复秤重量不可能" in low.text
    floor = round(cylinder["tare_kg"] - web.config.lanes[0].fill.tare_tolerance_kg, 3)
    assert f"{floor}–" in low.text and "合格" not in low.text.split('id="problem"')[1].split("</p>")[0]
    # Beyond tare + capacity, or not a number: refused in our words, never Python's.
    assert "复秤重量不可能" in c.form("/check/post", {"code": code, **items, "reweigh_kg": "999"}).text
    for junk in ("abc", "nan", "1e3", "-20", "29.5.1", "２９．５x"):
        page = c.form("/check/post", {"code": code, **items, "reweigh_kg": junk})
        assert page.status_code == 422 and "re-weigh: the gross mass in kg" in page.text, junk
        assert "could not convert" not in page.text and "float" not in page.text
    assert count(web, "checks") == before
    # An underfill typed 3 kg short of the filling scale's final reading: asked to confirm first.
    short = round(fill["final_gross_kg"] - 3.0, 2)
    ask = c.form("/check/post", {"code": code, **items, "reweigh_kg": str(short)})
    assert ask.status_code == 422 and "复秤重量与充装秤终重不符，请确认" in ask.text and 'name="confirm_kg"' in ask.text
    assert count(web, "checks") == before
    # Confirming a different value than the one asked about does not count.
    other = c.form("/check/post", {"code": code, **items, "reweigh_kg": str(short + 0.6), "confirm_kg": str(short)})
    assert other.status_code == 422 and count(web, "checks") == before
    done = c.form("/check/post", {"code": code, **items, "reweigh_kg": str(short), "confirm_kg": str(short)})
    assert done.status_code == 200 and "不合格 REFUSED" in done.text and "UNDERFILLED" in done.text
    assert "合格 PASSED" not in done.text
    assert web.station.store is not None
    check = web.station.store.query("SELECT * FROM checks WHERE kind = 'postfill' ORDER BY at DESC LIMIT 1")[0]
    assert (check["passed"], check["flag"], check["reweigh_source"]) == (0, "UNDERFILLED", "typed")
    d = logged_in(web, "disp-liu")
    d.form("/dispatch/vehicle", {"plate": "渝A12345", "courier": "赵六"})
    blocked = d.form("/dispatch", {"code": code})
    assert blocked.status_code == 422 and "欠装" in blocked.text and count(web, "dispatches") == 0
    # A full-width value within tolerance of the final reading needs no confirmation, and passes.
    typed = f"{fill['final_gross_kg']:.2f}".translate(str.maketrans("0123456789.", "０１２３４５６７８９．"))
    ok = c.form("/check/post", {"code": code, **items, "reweigh_kg": typed})
    assert ok.status_code == 200 and "合格 PASSED" in ok.text, ok.text
    assert d.form("/dispatch", {"code": code}).status_code == 200 and count(web, "dispatches") == 1
    assert edge_verify(web)


def test_a_check_recorded_passed_with_an_underfill_by_an_older_release_still_blocks_dispatch(web: SimStation) -> None:
    fill = filled(web, 5)
    code = web.cylinder(skip=5).row["qr_content"]
    assert web.station.store is not None
    with web.station.store.transaction() as conn:
        conn.execute(
            "INSERT INTO checks (id, kind, cylinder_id, code, medium, checker, checker_name, passed, items, failed, fill_id,"
            " reweigh_kg, reweigh_source, flag, at) VALUES ('old', 'postfill', ?, ?, 'G13', 'chk-wang', '王芳', 1, '{}', '[]',"
            " ?, 3.3, 'typed', 'UNDERFILLED', ?)",
            (fill["cylinder_id"], code, fill["id"], utc_now().isoformat()),
        )
    d = logged_in(web, "disp-liu")
    d.form("/dispatch/vehicle", {"plate": "渝A12345", "courier": "赵六"})
    assert "欠装" in d.form("/dispatch", {"code": code}).text and count(web, "dispatches") == 0
