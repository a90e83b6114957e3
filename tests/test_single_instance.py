"""One daemon per station: a second `edge run` on the same store or the same devices exits 2
before it writes a single coil, and the first one's fill completes untouched."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.config import load_config
from edge.daemon.station import open_store

from .test_crash_restart import EDGE, journal_count, simulated_hardware, start_daemon, wait_for


def _fill(config: Any) -> dict[str, Any] | None:
    store = open_store(config)
    try:
        rows = store.query("SELECT * FROM fills")
    finally:
        store.close()
    return rows[0] if rows else None


def _valve_writes(lane: Any) -> list[tuple[float, int, bool]]:
    return [w for w in list(lane.board.writes) if w[1] == lane.coil]


def _second_config(tmp_path: Path, first: Path, change: Any) -> Path:
    raw = yaml.safe_load(first.read_text(encoding="utf-8"))
    change(raw)
    path = tmp_path / "second.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def _refused_mid_fill(tmp_path: Path, second: Any, names: str) -> None:
    sim, config_path, config, cylinder = simulated_hardware(tmp_path)
    first = start_daemon(config_path)
    try:
        wait_for(lambda: journal_count(config, "daemon_start") == 1, what="daemon start")
        lane = sim.station_for("A")
        sim.scanners["A"].scan(cylinder.row["qr_content"])
        lane.model.place(cylinder.row["tare_kg"])
        wait_for(lane.valve_on, what="valve on")
        # A slow trickle while the second daemon tries: the first one's fill cannot reach its
        # cut-off (its own valve write) in the window, however slowly a loaded machine starts it.
        lane.model.params.flow_kg_per_s = 0.2
        valve_writes = len(_valve_writes(lane))

        other = second(tmp_path, config_path)
        result = subprocess.run([*EDGE, "run", "--config", str(other)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert f"pid {first.pid}" in result.stderr and "since" in result.stderr and names in result.stderr, result.stderr
        # Not one write to the valve coil (a second daemon's first act would be valves-off), and
        # the first daemon's valve still open on its fill.
        assert len(_valve_writes(lane)) == valve_writes, _valve_writes(lane)[valve_writes:]
        assert lane.valve_on()
        lane.model.params.flow_kg_per_s = 4.0

        wait_for(lambda: (_fill(config) or {}).get("status") == "complete", timeout=60, what="the first fill completing")
        fill = _fill(config)
        assert fill is not None and fill["outcome"] == "ok" and fill["cause"] is None, fill
        assert not lane.valve_on()
        assert journal_count(config, "daemon_start") == 1

        # valves-off is never refused: it drives the valves off and names the running daemon.
        lane.board.set(0, True)
        off = subprocess.run([*EDGE, "valves-off", "--config", str(config_path), "--json"], capture_output=True, text=True)
        said = json.loads(off.stdout)
        # Lane B's RS-485 port belongs to the running daemon; lane A's board answers anyone.
        assert said["lanes"]["A"] is None, said
        assert said["daemon_running"]["pid"] == first.pid
        assert not lane.valve_on()

        first.send_signal(signal.SIGTERM)
        assert first.wait(15) == 0
        # The lock died with its holder: the same config starts again.
        again = start_daemon(config_path)
        try:
            wait_for(lambda: journal_count(config, "daemon_start") == 2, what="restart after the first stopped")
        finally:
            again.send_signal(signal.SIGKILL)
            again.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        sim.stop()


@pytest.mark.slow
def test_second_daemon_on_the_same_config_is_refused(tmp_path: Path) -> None:
    _refused_mid_fill(tmp_path, lambda _tmp, first: first, "the store")


@pytest.mark.slow
def test_second_config_sharing_a_scanner_port_is_refused(tmp_path: Path) -> None:
    def change(raw: dict[str, Any]) -> None:
        # Another store and a relay board nobody runs: only lane A's scanner port is shared.
        raw["store"]["path"] = str(tmp_path / "other" / "station.db")
        raw["buses"]["tcp-A"]["port"] = 15999
        raw["lanes"] = [lane for lane in raw["lanes"] if lane["id"] == "A"]
        del raw["buses"]["rs485-B"]

    _refused_mid_fill(tmp_path, lambda tmp, first: _second_config(tmp, first, change), "scanner port")


def test_a_killed_daemon_leaves_no_stale_lock(tmp_path: Path) -> None:
    sim, config_path, config, _ = simulated_hardware(tmp_path)
    daemon = start_daemon(config_path)
    try:
        wait_for(lambda: journal_count(config, "daemon_start") == 1, what="daemon start")
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
        # valves-off with no daemon says nothing about one.
        off = subprocess.run([*EDGE, "valves-off", "--config", str(config_path), "--json"], capture_output=True, text=True)
        assert off.returncode == 0 and json.loads(off.stdout)["daemon_running"] is None, off.stdout + off.stderr
        daemon = start_daemon(config_path)
        wait_for(lambda: journal_count(config, "daemon_start") == 2, what="restart after SIGKILL")
        time.sleep(0.1)
        assert daemon.poll() is None
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        sim.stop()


def test_device_keys_resolve_spellings(tmp_path: Path) -> None:
    from edge.daemon.instance import device_keys

    from .conftest import write_config

    config = load_config(write_config(tmp_path))
    keys = device_keys(config)
    port = config.buses["tcp-A"].port  # type: ignore[union-attr]
    assert f"modbus:127.0.0.1:{port}:unit2" in keys
    assert any("scanner port" in v for v in keys.values())
    assert any(v.startswith("RS-485 bus rs485-B") for v in keys.values())
