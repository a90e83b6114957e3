"""A binding never rewrites another cylinder's identity, and a fill leaves the station once: the
staff app over HTTPS against a simulated station, the cache read back the way the lane reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from edge.scanpoints.common import resolve
from edge.store import journal
from simulators.photos import stamp_photo

from .conftest import SimStation
from .webapp_support import Client, all_items, edge_verify, enrol, logged_in, webapp_override


@pytest.fixture
def web(make_station: Callable[..., SimStation], tmp_path: Path) -> SimStation:
    s = make_station(webapp_override(tmp_path, precheck_lane=None))
    enrol(s)
    return s


def owner(s: SimStation, code: str) -> str:
    """The cylinder a scanned code names, looked up as every scan point and the lane look it up."""
    assert s.station.store is not None
    return str(resolve(s.station.store, s.config, code)["id"])


def written(s: SimStation) -> tuple[int, int, int]:
    assert s.station.store is not None
    q = s.station.store.query
    return (q("SELECT count(*) AS n FROM tag_bindings")[0]["n"], q("SELECT count(*) AS n FROM outbox")[0]["n"],
            q("SELECT count(*) AS n FROM identifiers")[0]["n"])


def bind(c: Client, stamp: str, tag: str, kind: str = "qr", **extra: Any) -> Any:
    return c.form("/bind", {"stamp": stamp, "tag": tag, "tag_kind": kind, **extra},
                  files={"photos": ("stamp.png", stamp_photo(stamp))})


def test_a_new_code_is_added_and_the_stamp_number_still_finds_its_cylinder(web: SimStation) -> None:
    target = web.cylinder(skip=1).row
    c = logged_in(web, "chk-wang")
    bound = bind(c, target["product_no"], "ZZ000032Q")
    assert bound.status_code == 200 and "已绑定 BOUND" in bound.text, bound.text
    # Both find the cylinder: the binding added a code, it took nothing away.
    assert owner(web, "ZZ000032Q") == target["id"]
    assert owner(web, target["product_no"]) == target["id"]
    assert owner(web, target["qr_content"]) == target["id"]


def test_another_cylinders_stamp_number_is_never_taken_not_even_by_a_manager(web: SimStation) -> None:
    target, other = web.cylinder(skip=1).row, web.cylinder(skip=2).row
    before = written(web)
    for person, extra in (("chk-wang", {}), ("mgr-chen", {"rebind_reason": "标签贴错 wrong tag"})):
        refused = bind(logged_in(web, person), target["product_no"], other["product_no"], **extra)
        assert refused.status_code == 422 and "标识已属于另一只气瓶" in refused.text and other["id"] in refused.text
    assert written(web) == before
    assert owner(web, other["product_no"]) == other["id"] and owner(web, target["product_no"]) == target["id"]


def test_a_tag_bound_elsewhere_moves_only_when_a_manager_rebinds_it_with_a_reason(web: SimStation) -> None:
    target, other = web.cylinder(skip=3).row, web.cylinder(skip=4).row
    tag = other["qr_content"]  # the other cylinder's QR tag, found on the wrong cylinder
    before = written(web)
    refused = bind(logged_in(web, "chk-wang"), target["product_no"], tag, rebind_reason="贴错")
    assert refused.status_code == 422 and other["id"] in refused.text and "manager may rebind" in refused.text
    manager = logged_in(web, "mgr-chen")
    assert bind(manager, target["product_no"], tag).status_code == 422  # no reason given
    assert written(web) == before and owner(web, tag) == other["id"]
    rebound = bind(manager, target["product_no"], tag, rebind_reason="标签贴错瓶 tag on the wrong cylinder")
    assert rebound.status_code == 200 and "已改绑 REBOUND" in rebound.text and other["id"] in rebound.text
    assert owner(web, tag) == target["id"]
    # The other cylinder keeps its stamp number; it lost only the tag that was moved.
    assert owner(web, other["product_no"]) == other["id"]
    assert web.station.store is not None
    entry = journal.load(web.station.store.query("SELECT data FROM journal WHERE kind = 'tag_rebound'")[0]["data"])
    assert (entry["rebound_from"], entry["cylinder_id"], entry["by"]) == (other["id"], target["id"], "mgr-chen")
    assert entry["reason"] == "标签贴错瓶 tag on the wrong cylinder"
    queued = web.station.store.query("SELECT payload FROM outbox WHERE kind = 'tag_binding'")
    payload = json.loads(queued[-1]["payload"])
    assert (payload["cylinder_id"], payload["qr_content"], payload["tag_kind"]) == (target["id"], tag, "二维码")
    assert edge_verify(web)
    # Delivered to the city as a binding of the tag to its new cylinder.
    city = web.sim.city
    assert city is not None
    web.wait_for(lambda: any(b.get("qrContent") == tag for b in city.records("tag_binding")), "the rebinding at the city", 20)


def test_tag_kind_only_from_the_vocabulary_and_rfid_in_the_specs_words(web: SimStation) -> None:
    target = web.cylinder(skip=5).row
    c = logged_in(web, "chk-wang")
    before = written(web)
    for kind in ("nfc", "", "RFID标签<script>", "qr "):
        refused = bind(c, target["product_no"], "E2801160600002054D5C4A51", kind=kind)
        assert refused.status_code == 422 and "tag kind: qr or rfid" in refused.text, kind
    assert written(web) == before
    assert bind(c, target["product_no"], "E2801160600002054D5C4A51", kind="rfid").status_code == 200
    assert web.station.store is not None
    payload = json.loads(web.station.store.query("SELECT payload FROM outbox WHERE kind = 'tag_binding'")[-1]["payload"])
    assert payload["tag_kind"] == "RFID标签" and payload["rfid"] == "E2801160600002054D5C4A51"


def test_a_fill_leaves_the_station_once(web: SimStation) -> None:
    cylinder = web.cylinder(skip=6)
    web.start_fill("A", cylinder)
    assert web.wait("A", "fill_end", timeout=30)["status"] == "complete"
    web.modbus("A").model.remove()
    code = cylinder.row["qr_content"]
    assert "合格 PASSED" in logged_in(web, "chk-wang").form("/check/post", {"code": code, **all_items(web, "post")}).text
    d = logged_in(web, "disp-liu")
    d.form("/dispatch/vehicle", {"plate": "渝A12345", "courier": "赵六"})
    assert d.form("/dispatch", {"code": code}).status_code == 200
    again = d.form("/dispatch", {"code": code})
    assert again.status_code == 422 and "本次充装的气瓶已出站" in again.text
    other = logged_in(web, "mgr-chen")
    other.form("/dispatch/vehicle", {"plate": "渝B99999", "courier": "钱七"})
    assert other.form("/dispatch", {"code": code}).status_code == 422
    assert web.station.store is not None
    assert web.station.store.query("SELECT count(*) AS n FROM dispatches")[0]["n"] == 1
