"""The status page in Debian's headless chromium, and the metrics endpoint by scraping it."""

from __future__ import annotations

import platform
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge import __version__
from interlock.reasons import Reason

from .conftest import SimStation

ROOT = Path(__file__).resolve().parent.parent
SCREENS = ROOT / "var" / "test-output" / "screens"

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


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


def base_url(s: SimStation) -> str:
    assert s.station.status is not None
    return f"http://{s.station.status.host}:{s.station.status.port}"


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


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/system-deps.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_text(driver: Any, css: str, wanted: str, timeout: float = 5.0) -> float:
    """Seconds until the element's text contains `wanted`."""
    started = time.monotonic()
    while True:
        text = driver.execute_script(f"const e = document.querySelector('{css}'); return e ? e.innerText : '';")
        if wanted in text:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{css} never showed {wanted!r}; it shows {text!r}")
        time.sleep(0.02)


def test_lane_view_in_chromium_shows_each_decision_large(station: SimStation, browser: Any) -> None:
    base = base_url(station)
    browser.get(base + "/lane/A")
    wait_text(browser, "#lane-A", "请扫码")
    assert browser.execute_script("return document.querySelectorAll('section.lane').length") == 1

    scrapped = next(g for g in station.sim.dataset if g.scenario == Reason.SCRAPPED)
    station.scan("A", scrapped.row["qr_content"])
    seen = wait_text(browser, "#lane-A", "气瓶已报废")
    text = browser.execute_script("return document.querySelector('#lane-A').innerText")
    assert "禁止充装" in text and "scrapped" in text.lower() and scrapped.row["id"] in text
    size = browser.execute_script("return parseFloat(getComputedStyle(document.querySelector('#lane-A .reason')).fontSize)")
    assert size >= 60, f"reason text {size}px: too small to read across the hall"
    print(f"\nrejection shown on the lane view {seen * 1000:.0f} ms after the verdict")

    station.start_fill("A", station.cylinder())
    wait_text(browser, "#lane-A", "充装中")
    station.wait("A", "fill_end", timeout=30)
    wait_text(browser, "#lane-A", "充装完成")
    wait_text(browser, "#lane-A", "合格")

    # The overview shows both lanes, the cache age and the upload backlog.
    browser.get(base + "/")
    wait_text(browser, "footer", "待上传")
    assert browser.execute_script("return document.querySelectorAll('section.lane').length") == 2

    # A controller that stops answering is shown as such, not as a frozen last state.
    station.station.status.stop()  # type: ignore[union-attr]
    station.station.status = None
    wait_text(browser, "#stale", "lost contact", timeout=5)


OVERFLOW = """
const vw = window.innerWidth, vh = window.innerHeight, problems = [];
if (document.documentElement.scrollWidth > vw || document.documentElement.scrollHeight > vh)
  problems.push(`page ${document.documentElement.scrollWidth}x${document.documentElement.scrollHeight} in ${vw}x${vh}`);
for (const e of document.querySelectorAll("section.lane, section.lane *, header, footer")) {
  const r = e.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  if (r.right > vw + 1 || r.bottom > vh + 1 || r.left < -1 || r.top < -1) problems.push(`${e.className || e.tagName} outside the screen`);
  if (e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0) problems.push(`${e.className || e.tagName} cut on the right`);
  const lane = e.closest("section.lane");
  if (lane && e !== lane) {
    const l = lane.getBoundingClientRect();
    if (r.bottom > l.bottom + 1 || r.right > l.right + 1) problems.push(`${e.className || e.tagName} spills out of its lane`);
  }
}
return problems;
"""


def settle_on(browser: Any, css: str, wanted: str, name: str, timeout: float = 10.0) -> None:
    """Wait for the state, take its screenshot, assert nothing overflows a 1920x1080 screen."""
    wait_text(browser, css, wanted, timeout)
    time.sleep(0.3)  # one more refresh, so the picture is the state and not a transition
    browser.save_screenshot(str(SCREENS / f"{name}.png"))
    problems = browser.execute_script(OVERFLOW)
    assert problems == [], f"{name}: {problems}"


def test_lane_screens_at_1080p(station: SimStation, browser: Any) -> None:
    """Idle, rejected, filling, complete and tripped at 1920x1080: each fits the screen; the
    screenshots stay in var/test-output/screens/ for a person to look at."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1920, 1080)
    inner = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    browser.set_window_size(1920 + 1920 - inner[0], 1080 + 1080 - inner[1])
    assert browser.execute_script("return [window.innerWidth, window.innerHeight]") == [1920, 1080]
    base = base_url(station)
    browser.get(base + "/lane/A")
    font = browser.execute_script("return getComputedStyle(document.body).fontFamily")
    assert font.startswith('"WenQuanYi Micro Hei"'), font
    settle_on(browser, "#lane-A", "请扫码", "1-idle")
    assert "充装 张伟 · 复核 王芳" in browser.execute_script("return document.querySelector('#lane-A .top').innerText")

    overdue = next(g for g in station.sim.dataset if g.scenario == Reason.INSPECTION_OVERDUE)
    station.scan("A", overdue.row["qr_content"])
    settle_on(browser, "#lane-A", "禁止充装", "2-rejected")

    station.start_fill("A", station.cylinder())
    settle_on(browser, "#lane-A .facts", "目标", "3-filling", timeout=20)
    sizes = browser.execute_script(
        "const f = s => parseFloat(getComputedStyle(document.querySelector('#lane-A ' + s)).fontSize);"
        "return [f('.weight'), f('.phase'), f('.facts')]")
    assert sizes[0] > 2 * sizes[1] and sizes[0] >= 150, f"the live weight is not the largest thing: {sizes}"
    assert browser.execute_script("return document.querySelector('#lane-A .verdict')") is None  # no stale 允许充装

    station.wait("A", "fill_end", timeout=30)
    settle_on(browser, "#lane-A", "合格", "4-complete")
    assert "最近充装" in browser.execute_script("return document.querySelector('#lane-A').innerText")

    browser.get(base + "/lane/B")
    station.start_fill("B", station.cylinder(skip=1))
    station.modbus("B").silent = True
    station.wait("B", "fill_end", timeout=30)
    settle_on(browser, "#lane-B", "复位", "5-tripped")
    text = browser.execute_script("return document.querySelector('#lane-B').innerText")
    cause = station.config.lanes[1].id and text.split("\n")[1]
    assert text.count(cause.lstrip("⚠ ").strip()) == 1, f"the cause is said more than once: {text!r}"

    browser.get(base + "/")
    settle_on(browser, "footer", "待上传", "6-overview")
