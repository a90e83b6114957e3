"""The lane screen in Debian's headless chromium at 1920x1080, against a simulated station: every
state's text and colour, that nothing outlives what it says (a reset clears the lock, a decision
replaces the heading, a decision fades to idle, a lost controller blanks the lane), the voice,
and the scanner's AIM hint. Screenshots of each state stay in var/test-output/screens/."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from typing import Any, Callable

from interlock.fill import Reset
from interlock.reasons import Reason

from .conftest import SimStation
from .screen_support import at_1080p, base_url, browser, colour, greenish, reddish, settle_on, text_of, wait_text

__all__ = ["browser"]  # the fixture, used by name

HOLD_S = 3.0
CARD = "#lane-A"


def short_hold(raw: dict[str, Any]) -> None:
    raw["status_page"] = {**raw.get("status_page", {}), "decision_hold_s": HOLD_S}


def scenario(station: SimStation, reason: Reason, skip: int = 0) -> str:
    return str([g for g in station.sim.dataset if g.scenario == reason][skip].row["qr_content"])


def tone(browser: Any) -> tuple[int, int, int]:
    return colour(browser, CARD)


def test_each_state_shows_the_present_in_text_and_colour(make_station: Callable[..., SimStation], browser: Any) -> None:
    station = make_station(short_hold)
    at_1080p(browser)
    base = base_url(station)
    browser.get(base + "/lane/A")
    font = browser.execute_script("return getComputedStyle(document.body).fontFamily")
    assert font.startswith('"WenQuanYi Micro Hei"'), font

    # Idle shows the live weight: a cylinder put on the platter before its scan.
    station.modbus("A").model.place(14.2)
    text = settle_on(browser, CARD, "14.2", "01-idle-weight")
    assert "请扫码" in text and "秤上" in text
    assert "充装 张伟 · 复核 王芳" in text_of(browser, f"{CARD} .top")
    idle = tone(browser)
    assert not reddish(idle) and not greenish(idle), idle
    station.modbus("A").model.remove()
    wait_text(browser, f"{CARD} .weight", "0.0")

    # A refusal: verdict, reason, and what to do, on red.
    station.scan("A", scenario(station, Reason.INSPECTION_OVERDUE))
    decided = time.monotonic()
    text = settle_on(browser, CARD, "禁止充装", "02-refused")
    assert "超期未检" in text and "放置待检，送定期检验" in text and "periodic inspection" in text
    assert reddish(tone(browser)), tone(browser)
    size = browser.execute_script(f"return parseFloat(getComputedStyle(document.querySelector('{CARD} .reason')).fontSize)")
    assert size >= 60, f"reason text {size}px: too small to read across the hall"

    # It fades to the idle screen after the configured time, and nothing of it stays.
    wait_text(browser, CARD, "请扫码", timeout=HOLD_S + 3, absent="禁止充装")
    assert time.monotonic() - decided >= HOLD_S - 0.5, "faded before its hold time"
    assert "超期未检" not in text_of(browser, CARD)

    # Filling: the live net weight is the largest thing; no verdict of the scan stays above it.
    station.start_fill("A", station.cylinder())
    settle_on(browser, f"{CARD} .facts", "目标", "03-filling", timeout=20)
    sizes = browser.execute_script(
        "const f = s => parseFloat(getComputedStyle(document.querySelector('#lane-A ' + s)).fontSize);"
        "return [f('.weight'), f('.heading'), f('.facts')]")
    assert sizes[0] > 2 * sizes[1] and sizes[0] >= 150, f"the live weight is not the largest thing: {sizes}"
    assert "可以充装" not in text_of(browser, CARD)
    bar = browser.execute_script(f"return document.querySelector('{CARD} .bar').getBoundingClientRect().height")
    assert bar >= 40, f"a progress bar {bar}px high cannot be read from 3 m"

    station.wait("A", "fill_end", timeout=30)
    text = settle_on(browser, CARD, "合格", "04-complete")
    assert "充装完成" in text and "最近充装" in text
    assert greenish(tone(browser)), tone(browser)

    # A refusal after the fill replaces its heading: no "complete" over a refused scan.
    station.scan("A", scenario(station, Reason.SCRAPPED))
    text = settle_on(browser, CARD, "气瓶已报废", "05-refused-after-complete")
    assert "充装完成" not in text and "合格" not in text.replace("不合格", "") and "禁止充装" in text
    assert reddish(tone(browser))

    # The controller lost: the whole screen says so, grey with a red frame, with the time since;
    # nothing of the lane's last state stays up.
    station.modbus("A").model.remove()
    station.station.status.stop()  # type: ignore[union-attr]
    station.station.status = None
    wait_text(browser, "#lost", "控制器断开", timeout=5)
    wait_text(browser, "#lost", "s · 最后联系 / last contact", timeout=5)
    assert re.search(r"已断开 \d+ 秒 / for \d+ s", text_of(browser, "#lost")), text_of(browser, "#lost")
    page = browser.execute_script("return document.body.innerText")
    assert "controller lost" in page and "禁止充装" not in page and "气瓶已报废" not in page
    settle_on(browser, "#lost", "控制器断开", "06-controller-lost")
    background, frame = colour(browser, "#lost"), colour(browser, "#lost", "borderTopColor")
    assert max(background) - min(background) < 16 and 50 < background[0] < 130, f"not grey: {background}"
    assert reddish(frame), frame
    area = browser.execute_script("const r = document.querySelector('#lost').getBoundingClientRect(); return r.width * r.height")
    assert area >= 0.9 * 1920 * 1080, "the lost screen must fill the screen"


def test_reset_sequence_trip_refused_reset_reset_next_fill(make_station: Callable[..., SimStation], browser: Any) -> None:
    station = make_station()
    at_1080p(browser)
    browser.get(base_url(station) + "/lane/A")
    wait_text(browser, CARD, "请扫码")
    lane = station.station.lanes["A"]

    # Trip: the scale goes silent mid-fill.
    station.start_fill("A", station.cylinder())
    station.modbus("A").silent = True
    assert station.wait("A", "fill_end", timeout=10)["cause"] == Reason.SCALE_LOST
    text = settle_on(browser, CARD, "工位已锁定", "07-tripped")
    assert "秤通讯中断" in text and "检查秤的电源和通讯线" in text
    assert "edge lane reset A" in text, "a trip must say how this station resets a lane"
    assert reddish(tone(browser))

    # A reset while the fault still shows is refused, and the screen says so and why.
    answer = lane.request(Reset("op-zhang", "tried too early", "command"))
    assert not answer["ok"] and answer["refused"] == Reason.SCALE_LOST
    text = settle_on(browser, CARD, "复位被拒绝", "08-reset-refused")
    assert "reset refused: scale not answering" in text and "工位已锁定" in text

    # The fault cleared, the cylinder taken off: the reset clears every lock message.
    station.modbus("A").silent = False
    station.modbus("A").model.remove()
    def answering() -> bool:
        return lane.state.scale_fault is None and lane.state.last_gross_kg is not None and lane.state.last_gross_kg < 1.0

    station.wait_for(answering, "the scale back")
    assert lane.request(Reset("op-zhang", "scale cable reseated", "command"))["ok"]
    text = settle_on(browser, CARD, "请扫码", "09-reset", absent="锁定")
    assert "复位被拒绝" not in text and "秤通讯中断" not in text
    assert not reddish(tone(browser))

    # The next cylinder fills under a clean screen.
    station.start_fill("A", station.cylinder(skip=1))
    text = settle_on(browser, f"{CARD}", "充装中", "10-next-fill", timeout=20)
    assert "锁定" not in text and "lane locked" not in text and "复位" not in text
    station.wait("A", "fill_end", timeout=30)
    settle_on(browser, CARD, "合格", "11-next-complete")

    # The overview: both lanes fit, each in its own state; it never speaks.
    station.scan("B", scenario(station, Reason.INSPECTION_OVERDUE))
    browser.get(base_url(station) + "/")
    settle_on(browser, "#lane-B", "超期未检", "12-overview")
    assert "合格" in text_of(browser, CARD) and browser.execute_script("return document.querySelectorAll('section.lane').length") == 2
    time.sleep(0.5)
    assert browser.execute_script("return window.voiceLog.length") == 0


def voice_log(browser: Any) -> list[dict[str, Any]]:
    return list(browser.execute_script("return window.voiceLog || []"))


def wait_spoken(browser: Any, count: int, timeout: float = 8.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        log = voice_log(browser)
        if len(log) >= count and all(entry["playing"] or entry["ended"] for entry in log[:count]):
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} prompts played, the page has {log}")
        time.sleep(0.05)


def no_voice_on_b(raw: dict[str, Any]) -> None:
    raw["lanes"][1]["voice"] = {"enabled": False}
    raw["lanes"][0]["voice"] = {"volume": 0.6, "repeat_quiet_s": 4}


def test_the_lane_speaks_each_decision_once_one_at_a_time(make_station: Callable[..., SimStation], browser: Any) -> None:
    station = make_station(no_voice_on_b)
    base = base_url(station)
    browser.get(base + "/lane/A")
    wait_text(browser, CARD, "请扫码")
    assert voice_log(browser) == []

    scrapped = scenario(station, Reason.SCRAPPED)
    station.scan("A", scrapped)
    first = wait_spoken(browser, 1)[0]
    assert first["text"] == "禁止充装，气瓶已报废" and first["volume"] == 0.6 and first["error"] is None, first
    # The same refusal again within the quiet time is not said again.
    station.scan("A", scrapped)
    time.sleep(1.5)
    assert len(voice_log(browser)) == 1, voice_log(browser)

    station.start_fill("A", station.cylinder())
    assert wait_spoken(browser, 2)[1]["text"] == "可以充装"
    station.wait("A", "fill_end", timeout=30)
    assert wait_spoken(browser, 3)[2]["text"] == "充装完成"
    # Never two at once: the page holds one player, and a newer prompt stops the older one.
    playing = browser.execute_script("return document.querySelectorAll('audio').length")
    assert playing == 0  # players are not left in the page

    # The sound is espeak-ng's WAV of that text, served for issued prompts only.
    status = station.station.status
    assert status is not None
    prompt = status.status()["lanes"]["A"]["voice"]
    with urllib.request.urlopen(base + prompt["url"], timeout=10) as response:
        body = response.read()
    assert response.headers["Content-Type"] == "audio/wav" and body[:4] == b"RIFF" and len(body) > 10_000
    assert int.from_bytes(body[4:8], "little") == len(body) - 8, "the WAV header must hold the real length"
    try:
        urllib.request.urlopen(base + "/voice/0123456789abcdef.wav", timeout=5)
        raise AssertionError("an unissued prompt was served")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404

    # Lane B's voice is off: its screen says nothing.
    browser.get(base + "/lane/B")
    wait_text(browser, "#lane-B", "请扫码")
    station.scan("B", scrapped)
    wait_text(browser, "#lane-B", "气瓶已报废")
    time.sleep(1.0)
    assert voice_log(browser) == [] and status.status()["lanes"]["B"]["voice"] is None


def aim_required(raw: dict[str, Any]) -> None:
    raw["lanes"][0]["scanners"][0]["aim"] = ["]Q"]


def test_screen_says_the_scanner_sends_no_aim_prefix(make_station: Callable[..., SimStation], browser: Any) -> None:
    station = make_station(aim_required)
    browser.get(base_url(station) + "/lane/A")
    wait_text(browser, CARD, "请扫码")
    verdict = station.scan("A", station.cylinder().row["qr_content"])
    assert verdict["reasons"] == [Reason.INVALID_CODE]
    text = wait_text(browser, CARD, "扫描枪未发送AIM前缀") and text_of(browser, CARD)
    assert "]Q" in text and "sends no AIM prefix" in text
    # With the prefix, the same code is read.
    assert station.scan("A", b"]Q1" + station.cylinder(skip=1).row["qr_content"].encode())["accepted"]
