"""Driving a lane screen in Debian's headless chromium: the browser fixture, waits on text, a
1920x1080 window, screenshots kept in var/test-output/screens/ and a check that nothing spills
off the screen."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from .conftest import SimStation

ROOT = Path(__file__).resolve().parent.parent
SCREENS = ROOT / "var" / "test-output" / "screens"

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def base_url(s: SimStation) -> str:
    assert s.station.status is not None
    return f"http://{s.station.status.host}:{s.station.status.port}"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/system-deps.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # A lane screen speaks without anyone clicking first, as the kiosk recipe in the README sets up.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def at_1080p(browser: Any) -> None:
    browser.set_window_size(1920, 1080)
    inner = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    browser.set_window_size(1920 + 1920 - inner[0], 1080 + 1080 - inner[1])
    assert browser.execute_script("return [window.innerWidth, window.innerHeight]") == [1920, 1080]


def text_of(driver: Any, css: str) -> str:
    return str(driver.execute_script(f"const e = document.querySelector('{css}'); return e ? e.innerText : '';"))


def wait_text(driver: Any, css: str, wanted: str, timeout: float = 5.0, absent: str | None = None) -> float:
    """Seconds until the element's text contains `wanted` (and not `absent`)."""
    started = time.monotonic()
    while True:
        text = text_of(driver, css)
        if wanted in text and (absent is None or absent not in text):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{css} never showed {wanted!r}" + (f" without {absent!r}" if absent else "") + f"; it shows {text!r}")
        time.sleep(0.02)


def colour(driver: Any, css: str, prop: str = "backgroundColor") -> tuple[int, int, int]:
    value = driver.execute_script(f"return getComputedStyle(document.querySelector('{css}')).{prop}")
    r, g, b = (int(float(part)) for part in value[value.index("(") + 1 : value.index(")")].split(",")[:3])
    return r, g, b


def reddish(rgb: tuple[int, int, int]) -> bool:
    return rgb[0] > 1.5 * max(rgb[1], rgb[2], 10)


def greenish(rgb: tuple[int, int, int]) -> bool:
    return rgb[1] > 1.3 * max(rgb[0], rgb[2], 10)



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


def settle_on(browser: Any, css: str, wanted: str, name: str, timeout: float = 10.0, absent: str | None = None) -> str:
    """Wait for the state, take its screenshot, assert nothing overflows a 1920x1080 screen;
    the element's text."""
    wait_text(browser, css, wanted, timeout, absent)
    SCREENS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.3)  # one more refresh, so the picture is the state and not a transition
    browser.save_screenshot(str(SCREENS / f"{name}.png"))
    problems = browser.execute_script(OVERFLOW)
    assert problems == [], f"{name}: {problems}"
    return text_of(browser, css)


