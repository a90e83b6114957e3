"""The systemd unit: it verifies, and its command lines behave as systemd expects of them.

systemd itself is not PID 1 in the CI sandbox and no user manager can start there, so the unit
cannot run under `systemd-run --user`. These tests do what systemd would: run ExecStartPre,
ExecStart with a $NOTIFY_SOCKET they listen on, send the stop or watchdog signal, then run
ExecStopPost, and watch the simulated relay board throughout.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from drivers.base import Reading

from .conftest import SimStation
from .systemd_support import UNIT, NotifySocket, unit_command, unit_service
from .test_crash_restart import simulated_hardware, wait_for

VENV_BIN = Path(sys.executable).parent


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # As installed: the venv path substituted. verify checks that every Exec binary exists.
    rendered = tmp_path / "station-edge.service"
    rendered.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/station-edge/venv", str(VENV_BIN.parent)))
    result = subprocess.run(["systemd-analyze", "verify", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_unit_promises() -> None:
    service = unit_service()["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "always"
    assert "valves-off" in service["ExecStopPost"]
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    # Devices are the job: PrivateDevices would hide every serial port and GPIO chip.
    assert "PrivateDevices" not in service


@pytest.mark.slow
def test_unit_lifecycle_ready_watchdog_stop_and_stop_post(tmp_path: Path) -> None:
    sim, config_path, config, cylinder = simulated_hardware(tmp_path)
    board = sim.station_for("A").board
    notify = NotifySocket()
    env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000", "PATH": str(VENV_BIN)}
    daemon: subprocess.Popen[bytes] | None = None

    def start() -> subprocess.Popen[bytes]:
        pre = subprocess.run(unit_command("ExecStartPre", VENV_BIN, config_path), capture_output=True, text=True)
        assert pre.returncode == 0, pre.stderr
        return subprocess.Popen(unit_command("ExecStart", VENV_BIN, config_path), env=env, stderr=subprocess.DEVNULL)

    def stop_post() -> None:
        post = subprocess.run(unit_command("ExecStopPost", VENV_BIN, config_path), capture_output=True, text=True)
        assert post.returncode == 0, post.stdout + post.stderr

    try:
        board.set(0, True)  # latched on, as a crash leaves it: READY must come only after it is off
        daemon = start()
        notify.wait_for("READY=1", timeout=30)
        assert not sim.station_for("A").valve_on(), "READY=1 before the valve was driven off"
        pings = [t for t, m in notify.drain(2.5) if "WATCHDOG=1" in m]
        assert len(pings) >= 3, f"{len(pings)} watchdog pings in 2.5 s at a 0.5 s interval"

        # The watchdog's kill (SIGABRT) mid-fill: the coil stays latched until ExecStopPost.
        sim.scanners["A"].scan(cylinder.row["qr_content"])
        sim.station_for("A").model.place(cylinder.row["tare_kg"])
        wait_for(sim.station_for("A").valve_on, what="valve on")
        daemon.send_signal(signal.SIGABRT)
        daemon.wait(10)
        assert sim.station_for("A").valve_on()
        stop_post()
        assert not sim.station_for("A").valve_on()

        # Restart=always, then `systemctl stop` (SIGTERM) mid-fill: clean exit, valve off.
        sim.station_for("A").model.place(0.0)
        daemon = start()
        notify.wait_for("READY=1", timeout=30)
        sim.scanners["A"].scan(cylinder.row["qr_content"])
        sim.station_for("A").model.place(cylinder.row["tare_kg"])
        wait_for(sim.station_for("A").valve_on, what="valve on after restart")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0
        notify.wait_for("STOPPING=1", timeout=1)
        assert not sim.station_for("A").valve_on()
        stop_post()
        assert not sim.station_for("A").valve_on() and not sim.station_for("B").valve_on()
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        notify.close()
        sim.stop()


class HungScale:
    """A scale whose read never returns until released: a driver call stuck in the kernel."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def read(self) -> Reading:
        self.release.wait()
        raise AssertionError("released")

    def close(self) -> None:
        self.release.set()


def test_hung_control_loop_withholds_the_watchdog(
    make_station: Callable[..., SimStation], monkeypatch: pytest.MonkeyPatch
) -> None:
    notify = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # a ping each second
    hung = HungScale()
    try:
        s = make_station()
        notify.wait_for("READY=1", timeout=5)
        assert sum("WATCHDOG=1" in m for _, m in notify.drain(2.6)) >= 2
        lane: Any = s.station.lanes["B"]
        lane.scale = hung
        time.sleep(1.2)  # the loop is stuck from its next poll; from here on it is stale
        assert s.station.stalled_lanes(1.0) == ["B"]
        notify.drain(0.05)  # pings sent before it went stale
        assert not any("WATCHDOG=1" in m for _, m in notify.drain(3.0)), "pinged while lane B's loop was hung"
    finally:
        hung.release.set()
        notify.close()
