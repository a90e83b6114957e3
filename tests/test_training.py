"""The simulation console of `edge demo --serve`, driven over HTTP as a trainer's browser drives it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from edge.demo.training.console import FAULTS, Console
from interlock.reasons import Reason

from .conftest import SimStation


def call(console: Console, action: str, **body: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(console.url + "api/" + action, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_console_places_scans_fills_and_injects_a_fault(station: SimStation) -> None:
    console = Console(station.station, station.sim).start()
    try:
        with urllib.request.urlopen(console.url, timeout=10) as page:
            assert "模拟控制台" in page.read().decode()
        with urllib.request.urlopen(console.url + "api/info", timeout=10) as info:
            scenarios = json.loads(info.read())["scenarios"]
        assert "ok" in scenarios and Reason.SCRAPPED.value in scenarios

        # A scrapped cylinder: placed, scanned, refused, valve never on.
        assert call(console, "place", lane="A", scenario=Reason.SCRAPPED.value)[0] == 200
        assert call(console, "scan", lane="A")[0] == 200
        verdict = station.wait("A", "verdict")
        assert not verdict["accepted"] and verdict["reasons"][0] == Reason.SCRAPPED.value
        assert not station.modbus("A").valve_on()
        call(console, "remove", lane="A")

        # A good one fills to completion.
        status, placed = call(console, "place", lane="A", scenario="ok")
        assert status == 200 and placed["placed"]["scenario"] == "ok"
        call(console, "scan", lane="A")
        assert station.wait("A", "verdict")["accepted"]
        station.wait_valve("A", True)
        assert station.wait("A", "fill_end", timeout=30)["status"] == "complete"

        # On lane B a scale fault during a fill: the valve goes off, the lane locks, reset after clearing.
        call(console, "place", lane="B", scenario="ok")
        call(console, "scan", lane="B")
        assert station.wait("B", "verdict")["accepted"]
        station.wait_valve("B", True)
        assert call(console, "fault", lane="B", fault="scale_silent")[0] == 200
        end = station.wait("B", "fill_end", timeout=30)
        assert end["status"] == "aborted" and end["cause"] == Reason.SCALE_LOST.value
        station.wait_valve("B", False)
        assert call(console, "fault", lane="B", fault="clear")[0] == 200
        assert call(console, "reset", lane="B")[1] == {"pressed": "reset"}

        # Nonsense is refused with a reason.
        assert call(console, "place", lane="Z", scenario="ok") == (400, {"error": "no lane 'Z'"})
        assert call(console, "fault", lane="A", fault="meteor")[0] == 400
        assert call(console, "launch", lane="A")[0] == 404
    finally:
        console.stop()


def test_edge_demo_serve_runs_until_sigterm(tmp_path: Any) -> None:
    import re
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "demo", "--serve", "--console-port", "0",
                             "--state-dir", str(tmp_path / "training")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("simulation console" in line for line in lines):
            lines.append(proc.stdout.readline())
        url = re.search(r"simulation console (http://\S+)", "".join(lines)).group(1)  # type: ignore[union-attr]
        with urllib.request.urlopen(url + "api/info", timeout=10) as info:
            assert json.loads(info.read())["lanes"] == ["A", "B"]
        status_url = json.loads(urllib.request.urlopen(url + "api/info", timeout=10).read())["status_url"]
        with urllib.request.urlopen(status_url + "api/status", timeout=10) as status:
            assert set(json.loads(status.read())["lanes"]) == {"A", "B"}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, proc.stderr.read() if proc.stderr else ""


def info(console: Console) -> dict[str, Any]:
    with urllib.request.urlopen(console.url + "api/info", timeout=10) as response:
        return dict(json.loads(response.read()))


def place_and_fill(station: SimStation, console: Console, lane: str) -> None:
    call(console, "place", lane=lane, scenario="ok")
    call(console, "scan", lane=lane)
    assert station.wait(lane, "verdict")["accepted"]
    station.wait_valve(lane, True)


def cleared_and_reset(station: SimStation, console: Console, lane: str) -> None:
    call(console, "fault", lane=lane, fault="clear")
    call(console, "remove", lane=lane)
    time.sleep(0.5)  # the empty platter reaches the lane before the reset
    call(console, "reset", lane=lane)
    station.wait(lane, "reset")
    station.wait_for(lambda: station.station.lanes[lane].state.phase.value == "idle", f"lane {lane} reset")


@pytest.mark.slow
def test_console_practises_each_fault_by_its_chinese_name(station: SimStation) -> None:
    console = Console(station.station, station.sim).start()
    try:
        said = info(console)
        assert said["scenario_names"]["SCRAPPED"] == "气瓶已报废 / cylinder scrapped"
        assert said["scenario_names"]["ok"] == "可充装 / fillable"
        assert {"overfill", "leak", "no_flow", "lift", "scanner_garbage", "unknown_code"} <= set(said["faults"])
        assert said["faults"]["leak"].startswith("关阀后泄漏")

        assert call(console, "fault", lane="A", fault="unknown_code")[0] == 200
        assert station.wait("A", "verdict")["reasons"] == [Reason.UNKNOWN_CYLINDER.value]
        assert call(console, "fault", lane="B", fault="scanner_garbage")[0] == 200
        assert station.wait("B", "verdict")["reasons"] == [Reason.INVALID_CODE.value]

        # Each fault trips the lane for the reason a real one would, the valve off. On lane A (Modbus
        # TCP): the transports have their own trip tests, and RS-485's timing under a loaded test
        # machine is not what this test is about.
        lane = "A"
        for fault, cause in (("no_flow", Reason.NO_FLOW), ("leak", Reason.LEAK), ("overfill", Reason.WEIGHT_RISING_VALVE_OFF),
                             ("lift", Reason.CYLINDER_REMOVED)):
            place_and_fill(station, console, lane)
            status, answer = call(console, "fault", lane=lane, fault=fault)
            assert status == 200 and answer["name"] == " / ".join(FAULTS[fault])
            end = station.wait(lane, "fill_end", timeout=30)
            assert end["cause"] == cause.value, (fault, end)
            station.wait_valve(lane, False)
            cleared_and_reset(station, console, lane)
    finally:
        console.stop()


def checks_and_confirm(raw: dict[str, Any]) -> None:
    raw["lanes"][0]["require_precheck"] = True
    raw["lanes"][1]["fill"] = {**raw["lanes"][1]["fill"], "auto_start": False}


def test_console_stands_in_for_the_checker_and_lanes_wait_for_confirm(make_station: Any) -> None:
    station = make_station(checks_and_confirm)
    console = Console(station.station, station.sim).start()
    try:
        assert info(console)["lane_rules"] == {"A": {"confirm": False, "precheck": True}, "B": {"confirm": True, "precheck": False}}
        call(console, "place", lane="A", scenario="ok")
        call(console, "scan", lane="A")
        assert station.wait("A", "verdict")["reasons"] == [Reason.PRECHECK_MISSING.value]
        status, checked = call(console, "precheck", lane="A", passed=False)
        assert status == 200 and checked["precheck"] == "failed" and checked["failed"]
        call(console, "scan", lane="A")
        assert station.wait("A", "verdict")["reasons"] == [Reason.PRECHECK_FAILED.value]
        assert call(console, "precheck", lane="A")[1]["precheck"] == "passed"
        call(console, "scan", lane="A")
        assert station.wait("A", "verdict")["accepted"]
        station.wait_valve("A", True)

        call(console, "place", lane="B", scenario="ok")
        call(console, "scan", lane="B")
        assert station.wait("B", "verdict")["accepted"]
        station.wait_for(lambda: station.station.lanes["B"].state.phase.value == "ready", "lane B ready")
        time.sleep(0.5)
        assert not station.modbus("B").valve_on(), "a lane that needs confirm does not start by itself"
        call(console, "confirm", lane="B")
        station.wait_valve("B", True)
        assert call(console, "precheck", lane="B", passed=True)[0] == 200  # any lane's checker may check
    finally:
        console.stop()


def test_demo_serve_uses_the_given_config_or_refuses_it(tmp_path: Any) -> None:
    import re
    import signal
    import subprocess
    import sys

    import yaml

    from simulators.modbus_server import free_port

    from .conftest import write_config

    edge = [sys.executable, "-m", "edge.cli", "demo"]
    real = tmp_path / "real.yaml"
    raw = yaml.safe_load(write_config(tmp_path).read_text(encoding="utf-8"))
    del raw["simulators"]
    real.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    refused = subprocess.run([*edge, "--serve", "--config", str(real), "--state-dir", str(tmp_path / "r")],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "no simulators section" in refused.stderr, refused.stderr
    scripted = subprocess.run([*edge, "--config", str(real)], capture_output=True, text=True, timeout=60)
    assert scripted.returncode == 2 and "--serve" in scripted.stderr

    def trainers_own(raw: dict[str, Any]) -> None:
        raw["station"]["owner_unit"] = "培训中心演示站"
        raw["lanes"][0]["fill"] = {**raw["lanes"][0]["fill"], "auto_start": False}

    (tmp_path / "mine").mkdir()
    mine = write_config(tmp_path / "mine", trainers_own)
    status_port, console_port = free_port(), free_port()
    proc = subprocess.Popen([*edge, "--serve", "--config", str(mine), "--status-port", str(status_port), "--console-port",
                             str(console_port), "--state-dir", str(tmp_path / "training")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("Ctrl-C" in line for line in lines):
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        assert f"status page        http://127.0.0.1:{status_port}/" in text, text
        assert f"simulation console http://127.0.0.1:{console_port}/" in text
        assert "lane A: operator presses confirm to start" in text and "PIN" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/api/status", timeout=10) as status:
            assert json.loads(status.read())["station"] == "培训中心演示站"
        with urllib.request.urlopen(f"http://127.0.0.1:{console_port}/api/info", timeout=10) as console:
            said = json.loads(console.read())
        assert said["lane_rules"]["A"] == {"confirm": True, "precheck": False} and said["webapp_url"].startswith("https://")
        assert re.search(r"staff app logins .*chk-wang \(checker\)", text)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, proc.stderr.read() if proc.stderr else ""
