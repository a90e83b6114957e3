"""SIGKILL mid-fill, then restart: the coil goes off, the fill is recorded as aborted, the chain holds.

The simulators run in this process and the daemon in a child process, so killing the daemon
leaves the simulated relay board exactly as a real one would be left: with its coil latched on.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.config import load_config
from edge.daemon.station import open_store
from edge.demo.simulation import Simulation
from edge.lanes.lane import utc_now

from .conftest import daemon_config, write_config

EDGE = [sys.executable, "-m", "edge.cli"]


def wait_for(predicate, timeout: float = 15.0, what: str = "condition", interval: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def journal_count(config, kind: str) -> int:  # type: ignore[no-untyped-def]
    store = open_store(config)
    try:
        return store.query("SELECT count(*) AS n FROM journal WHERE kind = ?", [kind])[0]["n"]
    finally:
        store.close()


def start_daemon(config_path: Path) -> subprocess.Popen:
    return subprocess.Popen([*EDGE, "run", "--config", str(config_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def simulated_hardware(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Simulators in this process, a seeded cache, and a config for a daemon child process."""
    sim = Simulation(load_config(write_config(tmp_path))).start()
    config_path, config = daemon_config(tmp_path)
    store = open_store(config)
    sim.seed_cache(store, utc_now())
    store.close()
    cylinder = next(g for g in sim.dataset if g.scenario == "ok" and g.row["model"] == "YSP50")
    return sim, config_path, config, cylinder


def test_sigkill_mid_fill_then_restart(tmp_path: Path) -> None:
    sim, config_path, config, cylinder = simulated_hardware(tmp_path)
    daemon = start_daemon(config_path)
    try:
        wait_for(lambda: journal_count(config, "daemon_start") == 1, what="daemon start")
        sim.scanners["A"].scan(cylinder.row["qr_content"])
        sim.station_for("A").model.place(cylinder.row["tare_kg"])
        wait_for(sim.station_for("A").valve_on, what="valve on")
        time.sleep(0.5)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
        assert sim.station_for("A").valve_on(), "a killed daemon leaves the coil latched: the hazard restart must clear"

        daemon = start_daemon(config_path)
        wait_for(lambda: not sim.station_for("A").valve_on(), timeout=10, what="valve off after restart")
        wait_for(lambda: journal_count(config, "daemon_start") == 2, what="daemon restart")
        store = open_store(config)
        try:
            fills = store.query("SELECT status, cause, started_at FROM fills")
            assert len(fills) == 1
            assert fills[0]["status"] == "aborted" and fills[0]["cause"] == "INTERRUPTED"
            assert fills[0]["started_at"] is not None
            # Gas went in, so the interrupted fill is queued for the city like any finished fill.
            assert [r["kind"] for r in store.query("SELECT kind FROM outbox ORDER BY id")] == ["filling", "trace"]
        finally:
            store.close()
        verify = subprocess.run([*EDGE, "verify", "--config", str(config_path)], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0
        assert not sim.station_for("A").valve_on()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        sim.stop()


def test_valves_off_command_clears_a_latched_coil(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    sim = Simulation(load_config(config_path)).start()
    try:
        for lane in ("A", "B"):
            sim.station_for(lane).model.place(20.0)
            sim.station_for(lane).board.set(0, True)  # latched on, as a crashed daemon leaves it
        assert sim.station_for("A").valve_on() and sim.station_for("B").valve_on()
        result = subprocess.run([*EDGE, "valves-off", "--config", str(config_path), "--json"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert not sim.station_for("A").valve_on() and not sim.station_for("B").valve_on()
    finally:
        sim.stop()
    # With nothing answering, valves-off must say so and fail: silence is not success.
    result = subprocess.run([*EDGE, "valves-off", "--config", str(config_path)], capture_output=True, text=True)
    assert result.returncode == 1 and "FAILED" in result.stdout


def test_a_killed_daemon_cannot_hold_a_leased_valve_open(tmp_path: Path) -> None:
    """Lane B's relay board has timer outputs: with nobody renewing the lease, the board itself
    opens the relay, with no restart and no valves-off."""
    sim, config_path, config, cylinder = simulated_hardware(tmp_path)
    lease = config.lanes[1].relay.lease  # type: ignore[union-attr]
    assert lease is not None
    daemon = start_daemon(config_path)
    try:
        wait_for(lambda: journal_count(config, "daemon_start") == 1, what="daemon start")
        sim.scanners["B"].scan(cylinder.row["qr_content"])
        time.sleep(0.3)
        sim.station_for("B").model.place(cylinder.row["tare_kg"])
        wait_for(sim.station_for("B").valve_on, what="valve on")
        time.sleep(lease.duration_s * 1.5)
        assert sim.station_for("B").valve_on(), "while the daemon lives it renews the lease"
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(5)
        killed = time.monotonic()
        wait_for(lambda: not sim.station_for("B").valve_on(), timeout=lease.duration_s + 1.0, what="lease expiry")
        assert time.monotonic() - killed <= lease.duration_s + 0.5
    finally:
        if daemon.poll() is None:
            daemon.kill()
        sim.stop()
