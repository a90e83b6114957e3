"""The staff web app in Debian's chromium at phone size: log in, a pre-fill check scanned with the
(fake) camera, a fill, a post-fill check typed by a keyboard-wedge scanner, a dispatch, and a tag
binding with a photo. Screenshots of every page go to build/screenshots/ (EDGE_SCREENSHOTS)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import segno

from .conftest import SimStation
from simulators.photos import stamp_photo

from .test_webapp import journal
from .webapp_support import STAFF, base, enrol, webapp_override

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SCREENSHOTS = Path(os.environ.get("EDGE_SCREENSHOTS", Path(__file__).resolve().parent.parent / "build" / "screenshots"))
PHONE = (390, 844)


def qr_video(text: str, path: Path, width: int = 640, height: int = 480, frames: int = 10) -> Path:
    """A y4m video (what chromium's fake camera plays) of a QR code on white, slightly moving,
    as a phone held over a cylinder would see it."""
    matrix = [list(row) for row in segno.make(text, error="m").matrix]
    modules = len(matrix) + 8  # with the quiet zone
    scale = min(width, height) * 3 // 4 // modules
    size = modules * scale
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for frame in range(frames):
            left, top = (width - size) // 2 + frame % 3, (height - size) // 2 + frame % 2
            luma = bytearray([235]) * (width * height)
            for r, row in enumerate(matrix):
                for c, dark in enumerate(row):
                    if dark:
                        y0, x0 = top + (r + 4) * scale, left + (c + 4) * scale
                        for y in range(y0, y0 + scale):
                            luma[y * width + x0:y * width + x0 + scale] = bytes([16]) * scale
            out.write(b"FRAME\n" + bytes(luma) + bytes([128]) * (width * height // 2))
    return path


@pytest.fixture
def web(make_station: Callable[..., SimStation], tmp_path: Path) -> SimStation:
    s = make_station(webapp_override(tmp_path))
    enrol(s)
    return s


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Callable[[Path | None], Any]]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/system-deps.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers: list[Any] = []

    def start(video: Path | None) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--window-size={PHONE[0]},{PHONE[1]}", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"):
            options.add_argument(flag)
        if video is not None:
            options.add_argument(f"--use-file-for-fake-video-capture={video}")
        # The station's self-signed certificate: a phone's user accepts it once after comparing
        # the fingerprint; the test browser is told to.
        options.accept_insecure_certs = True
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_window_size(*PHONE)
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()


def wait_for(driver: Any, css: str, timeout: float = 10.0) -> Any:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{css} never appeared; page shows {driver.find_element(By.TAG_NAME, 'body').text[:300]!r}")
        time.sleep(0.05)


def shot(driver: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def pass_every_item(driver: Any, before: str, after: str) -> None:
    """Tick 合格 on every item of the open check list, record it, expect it passed."""
    from selenium.webdriver.common.by import By

    for radio in driver.find_elements(By.CSS_SELECTOR, "input[type=radio][value=pass]"):
        driver.execute_script("arguments[0].click()", radio)
    shot(driver, before)
    driver.find_element(By.ID, "record").click()
    assert "合格 PASSED" in wait_for(driver, "#result").text
    shot(driver, after)


def test_checker_scans_with_the_camera_checks_fills_dispatches_and_binds(
    web: SimStation, chromium: Callable[[Path | None], Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    cylinder = web.cylinder(skip=2).row
    driver = chromium(qr_video(cylinder["qr_content"], tmp_path / "qr.y4m"))
    url = base(web)

    driver.get(url + "/check/pre")
    wait_for(driver, "#login")
    shot(driver, "01-login")
    driver.find_element(By.ID, "staff_id").send_keys("mgr-chen")
    driver.find_element(By.ID, "secret").send_keys(STAFF["mgr-chen"][1])
    driver.find_element(By.ID, "submit").click()
    wait_for(driver, "#go-pre")
    shot(driver, "02-home")

    # Pre-fill check: the camera button decodes the QR code in the page, which looks the cylinder up.
    driver.find_element(By.ID, "go-pre").click()
    wait_for(driver, "[data-camera]").click()
    wait_for(driver, "#checklist", timeout=20)
    assert cylinder["id"] in driver.find_element(By.ID, "cylinder").text
    pass_every_item(driver, "03-prefill-checklist", "04-prefill-passed")
    assert journal(web, "check_prefill")[-1]["by"] == "mgr-chen"

    # Lane A requires the check: now it fills.
    web.start_fill("A", web.cylinder(skip=2))
    assert web.wait("A", "fill_end", timeout=30)["status"] == "complete"
    web.modbus("A").model.remove()

    # Post-fill check: a keyboard-wedge scanner types the code and Enter.
    driver.get(url + "/check/post")
    wait_for(driver, "#code").send_keys(cylinder["qr_content"] + Keys.ENTER)
    wait_for(driver, "#checklist")
    pass_every_item(driver, "05-postfill-checklist", "06-postfill-passed")

    # Dispatch at the gate.
    driver.get(url + "/dispatch")
    wait_for(driver, "#plate").send_keys("渝A12345")
    driver.find_element(By.ID, "courier").send_keys("赵六")
    driver.find_element(By.ID, "set-vehicle").click()
    wait_for(driver, "#code").send_keys(cylinder["qr_content"] + Keys.ENTER)
    assert cylinder["id"] in wait_for(driver, "#result").text
    assert driver.find_element(By.ID, "count").text == "1"
    shot(driver, "07-dispatch")

    # Tag binding with a photo of the stamp.
    target = web.cylinder(skip=5).row
    photo = tmp_path / "stamp.png"
    photo.write_bytes(stamp_photo("stamp"))
    driver.get(url + "/bind")
    wait_for(driver, "#tag").send_keys("https://sim.example/q?code=CQBROWSER001")
    driver.find_element(By.ID, "stamp").send_keys(target["product_no"])
    driver.find_element(By.ID, "photos").send_keys(str(photo))
    wait_for(driver, "#previews img")
    shot(driver, "08-binding-review")
    driver.find_element(By.ID, "bind").click()
    assert target["id"] in wait_for(driver, "#result").text
    shot(driver, "09-binding-done")
    assert journal(web, "tag_bound")[-1]["cylinder_id"] == target["id"]
