"""The technician's commissioning commands against the simulated devices: a scale read over
Modbus TCP (lane A) and RTU on a pty (lane B), a relay test that pulses the real coil and is
journalled, refused without a typed confirmation, for a busy lane, and while a daemon runs; a
scanner echo over a pty that says when the AIM prefix disagrees with the config; `edge run`
naming a missing serial port."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from edge.cli import main
from edge.config import Config, load_config
from edge.daemon import instance
from edge.demo.simulation import Simulation
from edge.store import Store
from edge.store.journal import load as load_entry

from .conftest import Override, write_config

EDGE = [sys.executable, "-m", "edge.cli"]


@pytest.fixture
def simulated(tmp_path: Path) -> Iterator[Callable[..., tuple[Config, Simulation, Path]]]:
    """The simulated devices alone, no daemon: what a technician meets before the first start."""
    started: list[Simulation] = []

    def make(override: Override | None = None) -> tuple[Config, Simulation, Path]:
        path = write_config(tmp_path, override)
        config = load_config(path)
        sim = Simulation(config).start()
        started.append(sim)
        return config, sim, path

    yield make
    for sim in started:
        sim.stop()


def edge(capsys: pytest.CaptureFixture[str], *args: str, typed: str = "") -> tuple[int, list[Any], str]:
    """Run `edge ARGS --json` in this process with `typed` on stdin: (exit code, JSON documents, stderr)."""
    old = sys.stdin
    sys.stdin = io.StringIO(typed)
    try:
        code = main([*args, "--json"])
    finally:
        sys.stdin = old
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_scale_read_over_tcp_and_rtu(simulated: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    config, sim, path = simulated()
    sim.station_for("A").model.place(14.2)
    sim.station_for("B").model.place(31.5)
    time.sleep(0.3)
    code, docs, _ = edge(capsys, "scale", "read", "A", "--config", str(path))
    assert code == 0 and len(docs) == 1
    a = docs[0]
    assert a["gross_kg"] == pytest.approx(14.2, abs=0.05) and a["net_kg"] == pytest.approx(a["gross_kg"])
    assert a["map"] == "flintec-ft112" and a["raw"] and all(isinstance(v, int) for span in a["raw"] for v in span["values"])
    assert a["heartbeat"] is not None and a["overload"] is False and a["error_bit"] is False

    code, docs, _ = edge(capsys, "scale", "read", "A", "--watch", "--count", "3", "--interval", "0.3", "--config", str(path))
    assert code == 0 and len(docs) == 3
    assert docs[0]["heartbeat_changed"] is None and docs[1]["heartbeat_changed"] and docs[2]["heartbeat_changed"]

    code, docs, _ = edge(capsys, "scale", "read", "B", "--config", str(path))  # RTU over the null modem
    assert code == 0 and docs[0]["gross_kg"] == pytest.approx(31.5, abs=0.05) and docs[0]["map"] == "cas-ci600d"
    assert docs[0]["heartbeat"] is None

    # The human form, as a technician reads it.
    assert main(["scale", "read", "A", "--config", str(path)]) == 0
    text = capsys.readouterr().out
    assert "gross 14.2" in text and "stable" in text and "heartbeat" in text and "holding" in text

    # A silent scale: the error, and a failing exit code.
    sim.station_for("A").silent = True
    code, docs, _ = edge(capsys, "scale", "read", "A", "--config", str(path))
    assert code == 1 and "error" in docs[0]


def journal(config: Config, kind: str) -> list[dict[str, Any]]:
    store = Store(config.store.path, existing=True)
    try:
        return [load_entry(r["data"]) | {"lane": r["lane"]} for r in store.query("SELECT data, lane FROM journal WHERE kind = ?", [kind])]
    finally:
        store.close()


def coil_writes(sim: Simulation, lane: str, coil: int, since: float) -> list[bool]:
    return [value for at, c, value in sim.station_for(lane).board.writes if c == coil and at >= since]


def test_relay_test_pulses_each_output_after_a_typed_confirmation(simulated: Callable[..., Any],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config, sim, path = simulated()
    for lane, output, coil in (("A", "valve", 0), ("B", "valve", 0), ("A", "red", 3), ("A", "buzzer", 4)):
        since = time.monotonic()
        code, docs, err = edge(capsys, "relay", "test", lane, "--output", output, "--by", "op-zhang", "--pulse-s", "0.3",
                               "--config", str(path), typed=f"{lane} {output}\n")
        assert code == 0, err
        assert f"Type '{lane} {output}'" in err
        assert docs[0]["ok"] and docs[0]["on_s"] >= 0.3
        assert coil_writes(sim, lane, coil, since)[:1] == [True] and coil_writes(sim, lane, coil, since)[-1] is False
        assert not sim.station_for(lane).board.coil(coil)
    tests = journal(config, "relay_test")
    assert [(t["lane"], t["output"], t["by"]) for t in tests] == [("A", "valve", "op-zhang"), ("B", "valve", "op-zhang"),
                                                                   ("A", "red", "op-zhang"), ("A", "buzzer", "op-zhang")]
    assert all(t["ok"] and t["source"].startswith("command uid=") for t in tests)


def test_relay_test_refuses_without_confirmation_a_stranger_and_a_busy_lane(
    simulated: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    config, sim, path = simulated()
    since = time.monotonic()
    common = ["--config", str(path), "--pulse-s", "0.2"]
    code, _, err = edge(capsys, "relay", "test", "A", "--output", "valve", "--by", "op-zhang", *common, typed="yes\n")
    assert code == 1 and "not confirmed" in err
    code, _, err = edge(capsys, "relay", "test", "A", "--output", "valve", "--by", "nobody", *common, typed="A valve\n")
    assert code == 2 and "not a registered member of staff" in err
    code, _, err = edge(capsys, "relay", "test", "A", "--output", "green", "--by", "op-zhang", "--pulse-s", "9",
                        "--config", str(path), typed="A green\n")
    assert code == 2 and "--pulse-s" in err
    # A cylinder on the scale: a valve pulse would fill it.
    sim.station_for("A").model.place(14.0)
    time.sleep(0.2)
    code, _, err = edge(capsys, "relay", "test", "A", "--output", "valve", "--by", "op-zhang", *common, typed="A valve\n")
    assert code == 1 and "busy" in err and "14.0" in err
    sim.station_for("A").model.remove()
    # An open fill (the daemon stopped mid-fill): the lane is busy until the daemon recovers it.
    store = Store(config.store.path, existing=True)
    with store.transaction() as conn:
        conn.execute("INSERT INTO fills (id, lane, cylinder_id, status, authorised_at) VALUES ('f-open', 'A', 'C1', 'filling',"
                     " '2026-01-01T00:00:00+00:00')")
    store.close()
    code, _, err = edge(capsys, "relay", "test", "A", "--output", "valve", "--by", "op-zhang", *common, typed="A valve\n")
    assert code == 1 and "f-open" in err
    assert coil_writes(sim, "A", 0, since) == [], "a refused test switched nothing"
    assert journal(config, "relay_test") == []


def test_commissioning_is_refused_while_the_daemon_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    config = load_config(path)
    daemon = subprocess.Popen([*EDGE, "run", "--config", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while instance.held_by(instance.store_lock_path(config)) is None or not Path(config.lanes[0].scanners[0].port).exists():
            assert daemon.poll() is None and time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.1)
        time.sleep(1.0)  # its lanes started
        code, _, err = edge(capsys, "relay", "test", "A", "--output", "valve", "--by", "op-zhang", "--config", str(path),
                            typed="A valve\n")
        assert code == 1 and "daemon" in err and f"pid {daemon.pid}" in err and "systemctl stop station-edge" in err
        code, _, err = edge(capsys, "scanner", "echo", "A", "--seconds", "1", "--config", str(path))
        assert code == 1 and "daemon" in err
        code, _, err = edge(capsys, "scale", "read", "B", "--config", str(path))  # RS-485: one master only
        assert code == 1 and "daemon" in err
        code, docs, _ = edge(capsys, "scale", "read", "A", "--config", str(path))  # Modbus TCP answers both
        assert code == 0 and docs[0]["gross_kg"] is not None
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert journal(config, "relay_test") == []


def echo(capsys: pytest.CaptureFixture[str], path: Path, sim: Simulation, codes: list[bytes]) -> tuple[int, list[Any]]:
    """`edge scanner echo A` while the simulated scanner sends the codes."""
    def scan() -> None:
        time.sleep(0.8)  # the echo has opened the port
        for code in codes:
            sim.scanners["A"].scan(code)
            time.sleep(0.1)

    feeder = threading.Thread(target=scan)
    feeder.start()
    try:
        code, docs, _ = edge(capsys, "scanner", "echo", "A", "--count", str(len(codes)), "--seconds", "10", "--config", str(path))
    finally:
        feeder.join()
    return code, docs


def aim(setting: list[str]) -> Override:
    def override(raw: dict[str, Any]) -> None:
        raw["lanes"][0]["scanners"][0]["aim"] = setting
    return override


def test_scanner_echo_shows_bytes_and_the_lanes_reading(simulated: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    config, sim, path = simulated()
    qr = b"https://qp.cqsjj.example.cn/trace?code=CQ50011200000000042"
    code, docs = echo(capsys, path, sim, [qr, b"\x1b[A garbage"])
    assert code == 0, docs
    first, second = docs
    assert first["hex"].startswith("68 74 74 70") and first["hex"].endswith("0d") and first["aim_sent"] is None
    assert first["lane_reads"] == {"ok": True, "kind": "info_code", "value": "CQ50011200000000042"}
    assert second["lane_reads"]["ok"] is False and "1b" in second["hex"]
    # The scanner sends AIM prefixes the config does not expect.
    code, docs = echo(capsys, path, sim, [b"]Q1" + qr])
    assert code == 1 and docs[0]["aim_sent"] == "]Q1" and docs[0]["symbology"] == "QR Code"
    assert "aim: [']Q']" in docs[0]["aim_mismatch"]


def test_scanner_echo_says_the_scanner_sends_no_aim_prefix(simulated: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    config, sim, path = simulated(aim(["]Q"]))
    qr = b"https://qp.cqsjj.example.cn/trace?code=CQ50011200000000042"
    code, docs = echo(capsys, path, sim, [qr])
    assert code == 1 and "sends no AIM prefix" in docs[0]["aim_mismatch"] and docs[0]["lane_reads"]["ok"] is False
    code, docs = echo(capsys, path, sim, [b"]Q1" + qr, b"]C0" + b"123456"])
    assert code == 1
    assert docs[0]["aim_mismatch"] is None and docs[0]["lane_reads"]["value"] == "CQ50011200000000042"
    assert "Code 128" in docs[1]["aim_mismatch"]


def test_run_names_a_missing_serial_port(tmp_path: Path) -> None:
    def real_ports(raw: dict[str, Any]) -> None:
        del raw["simulators"], raw["city"]
        raw["lanes"][0]["scanners"][0]["port"] = str(tmp_path / "no-such-scanner")
        raw["buses"]["rs485-B"]["port"] = str(tmp_path / "no-such-rs485")

    path = write_config(tmp_path, real_ports)
    result = subprocess.run([*EDGE, "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert f"lane A scanner: serial port {tmp_path / 'no-such-scanner'} does not exist" in result.stderr, result.stderr
    assert f"bus rs485-B: serial port {tmp_path / 'no-such-rs485'} does not exist" in result.stderr
