"""The metrics endpoint by scraping it, and the status server's routes. The lane screens in
chromium are tests/test_lane_screen.py."""

from __future__ import annotations

import platform
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge import __version__
from interlock.reasons import Reason

from .conftest import SimStation
from .screen_support import base_url, browser

__all__ = ["browser"]  # the fixture, used by name


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = get(base + "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_scans_decisions_fills_trips_cutoff_and_device_errors(station: SimStation) -> None:
    base = base_url(station)
    assert station.station.status is not None and station.station.status.host == "127.0.0.1"
    scrapped = next(g for g in station.sim.dataset if g.scenario == Reason.SCRAPPED)
    assert not station.scan("A", scrapped.row["qr_content"])["accepted"]
    station.start_fill("A", station.cylinder())
    end = station.wait("A", "fill_end", timeout=30)
    # Lane B: a fill whose scale goes silent trips the interlock.
    station.start_fill("B", station.cylinder(skip=1))
    station.modbus("B").silent = True
    tripped = station.wait("B", "fill_end", timeout=30)
    assert tripped["tripped"]
    m = scrape(base)
    assert m[("edge_scans_total", (("lane", "A"),))] == 2
    assert m[("edge_decisions_total", (("decision", "rejected"), ("lane", "A")))] == 1
    assert m[("edge_decisions_total", (("decision", "accepted"), ("lane", "A")))] == 1
    assert m[("edge_rejections_total", (("lane", "A"), ("reason", "SCRAPPED")))] == 1
    assert not any(dict(labels).get("reason") == "NONE" for _, labels in m)
    assert m[("edge_fills_total", (("lane", "A"), ("outcome", end["outcome"].lower())))] == 1
    # Present from the start, at zero; outcomes in one case.
    assert m[("edge_fills_total", (("lane", "B"), ("outcome", "overfilled")))] == 0
    assert not any(name == "edge_fills_total" and dict(labels)["outcome"] != dict(labels)["outcome"].lower() for name, labels in m)
    assert m[("edge_trips_total", (("cause", tripped["cause"]), ("lane", "B")))] == 1
    assert m[("edge_cutoff_lag_seconds_count", (("lane", "A"),))] == 1
    assert 0 < m[("edge_cutoff_lag_seconds_sum", (("lane", "A"),))] < 1.0
    assert m[("edge_upload_backlog", ())] >= 0 and ("edge_upload_dead_letters", ()) in m
    b_scale = station.config.lanes[1].scale
    a_scale = station.config.lanes[0].scale
    assert m[("edge_modbus_errors_total", (("bus", b_scale.bus), ("device", str(b_scale.device_id))))] >= 1
    assert m[("edge_modbus_errors_total", (("bus", a_scale.bus), ("device", str(a_scale.device_id))))] == 0
    assert m[("edge_scale_polls_total", (("lane", "A"),))] > 10
    assert m[("edge_cache_age_seconds", ())] >= 0
    assert m[("edge_scale_up", (("bus", a_scale.bus), ("device", str(a_scale.device_id)), ("lane", "A")))] == 1
    assert m[("edge_scale_up", (("bus", b_scale.bus), ("device", str(b_scale.device_id)), ("lane", "B")))] == 0
    assert m[("edge_build_info", (("python", platform.python_version()), ("version", __version__)))] == 1
    assert m[("process_resident_memory_bytes", ())] > 10e6 and ("process_cpu_seconds_total", ()) in m
    # The first fill's records were delivered to the simulated city: a last success, and recent.
    deadline = time.monotonic() + 20
    while ("edge_upload_last_success_timestamp_seconds", ()) not in m and time.monotonic() < deadline:
        time.sleep(0.5)
        m = scrape(base)
    assert 0 < time.time() - m[("edge_upload_last_success_timestamp_seconds", ())] < 120


def test_metrics_series_exist_from_the_start(make_station: Any) -> None:
    fresh = make_station()
    m = scrape(base_url(fresh))
    for lane in ("A", "B"):
        assert m[("edge_scans_total", (("lane", lane),))] == 0
        assert m[("edge_decisions_total", (("decision", "accepted"), ("lane", lane)))] == 0
        assert m[("edge_cutoff_lag_seconds_count", (("lane", lane),))] == 0
        for outcome in ("ok", "overfilled", "underfilled", "aborted"):
            assert m[("edge_fills_total", (("lane", lane), ("outcome", outcome)))] == 0


def test_status_api_and_read_only(station: SimStation) -> None:
    base = base_url(station)
    request = urllib.request.Request(base + "/api/status", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 501  # no write routes: the page cannot touch a lane
    assert get(base + "/lane/Z")[0] == 404


def test_the_page_links_the_latest_kept_documents_and_serves_only_them(make_station: Any, tmp_path: Any) -> None:
    folder = tmp_path / "reports"
    s = make_station(lambda raw: raw.update(reports={"folder": str(folder)}))
    base = base_url(s)
    assert get(base + "/api/status")[1].count('"documents": []') == 1  # no folder yet: no links, no error
    folder.mkdir()
    for name in ("daily-2026-11-19.pdf", "daily-2026-11-20.pdf", "ledger-2026-11-20.xlsx", "shift-2026-11-20-早班.pdf",
                 "monthly-2026-10.pdf", "notes.txt", ".daily-2026-11-21.partial.pdf"):
        (folder / name).write_bytes(f"%PDF {name}".encode())
    (tmp_path / "station.yaml.pdf").write_bytes(b"secret")
    import json
    import urllib.parse

    links = json.loads(get(base + "/api/status")[1])["documents"]
    assert [(d["label"], d["name"]) for d in links] == [
        ("充装日报", "daily-2026-11-20.pdf"), ("充装记录", "ledger-2026-11-20.xlsx"),
        ("交接班记录", "shift-2026-11-20-早班.pdf"), ("充装月报", "monthly-2026-10.pdf")]
    with urllib.request.urlopen(base + links[2]["url"], timeout=5) as response:
        assert response.read() == "%PDF shift-2026-11-20-早班.pdf".encode()
        assert response.headers["Content-Type"] == "application/pdf"
    for hostile in ("notes.txt", ".daily-2026-11-21.partial.pdf", "..%2Fstation.yaml.pdf", "../station.yaml.pdf",
                    "daily-2026-11-20.pdf%00", "%ff%fe.pdf", urllib.parse.quote("daily-2026-11-20.pdf/..")):
        assert get(base + "/documents/" + hostile)[0] == 404, hostile
    # A new document appears in the links on the next poll.
    (folder / "daily-2026-11-21.pdf").write_bytes(b"%PDF")
    assert json.loads(get(base + "/api/status")[1])["documents"][0]["name"] == "daily-2026-11-21.pdf"


def test_the_footer_links_the_latest_documents_in_the_browser(make_station: Any, browser: Any, tmp_path: Any) -> None:
    from selenium.webdriver.common.by import By

    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "daily-2026-11-20.pdf").write_bytes(b"%PDF-1.4 the day")
    s = make_station(lambda raw: raw.update(reports={"folder": str(folder)}))
    browser.get(base_url(s) + "/")
    deadline = time.monotonic() + 10
    while not (links := browser.find_elements(By.CSS_SELECTOR, "#documents a")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [(a.text, a.get_attribute("href")) for a in links] == [("充装日报 2026-11-20", base_url(s) + "/documents/daily-2026-11-20.pdf")]
    # A shift record written later appears beside it without reloading the page.
    (folder / "shift-2026-11-20-早班.pdf").write_bytes(b"%PDF-1.4 the shift")
    while len(browser.find_elements(By.CSS_SELECTOR, "#documents a")) < 2 and time.monotonic() < deadline + 10:
        time.sleep(0.1)
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#documents a")] == ["充装日报 2026-11-20", "交接班记录 2026-11-20 早班"]
