"""The simulation console of `edge demo --serve`, driven over HTTP as a trainer's browser drives it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from edge.demo.training.console import Console
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
