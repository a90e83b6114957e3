"""The daemon's log as journald receives it: priority prefixes, context fields, bounded volume."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from interlock.reasons import Reason

from .test_crash_restart import EDGE, simulated_hardware, wait_for


def test_journald_lines_carry_priority_fields_and_no_per_sample_lines(tmp_path: Path) -> None:
    sim, config_path, config, cylinder = simulated_hardware(tmp_path)
    scrapped = next(g for g in sim.dataset if g.scenario == Reason.SCRAPPED)
    log_path = tmp_path / "journal-stream.log"
    with log_path.open("wb") as stream:
        # systemd names the stream it connected to stderr; the daemon checks that it is the same.
        info = os.fstat(stream.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        daemon = subprocess.Popen([*EDGE, "run", "--config", str(config_path)], stderr=stream, env=env)
        try:
            wait_for(lambda: "station ready" in log_path.read_text(encoding="utf-8"), what="station ready")
            sim.scanners["A"].scan(scrapped.row["qr_content"])
            sim.scanners["A"].scan(cylinder.row["qr_content"])
            sim.station_for("A").model.place(cylinder.row["tare_kg"])
            wait_for(lambda: "fill complete" in log_path.read_text(encoding="utf-8"), timeout=60, what="fill complete")
            polls_during_fill = sum(1 for _ in sim.station_for("A").samples)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(15)
            sim.stop()
    lines = log_path.read_text(encoding="utf-8").splitlines()
    assert all(re.match(r"<[0-7]>", line) for line in lines), [l for l in lines if not re.match(r"<[0-7]>", l)]
    assert not any(re.match(r"<\d>\d{4}-\d\d-\d\d", line) for line in lines), "journald stamps the time itself"

    reject = next(line for line in lines if "REJECT" in line)
    assert reject.startswith("<6>edge.lanes.lane: REJECT")
    assert f"[lane=A cylinder={scrapped.row['id']} reason=SCRAPPED]" in reject
    accept = next(line for line in lines if "ACCEPT" in line)
    assert f"lane=A cylinder={cylinder.row['id']} fill=" in accept
    complete = next(line for line in lines if "fill complete" in line)
    assert "lane=A" in complete and f"cylinder={cylinder.row['id']}" in complete
    assert re.search(r"fill complete: (ok|overfilled|underfilled), net \d+\.\d\d kg of \d+\.\d\d kg", complete), complete
    valve_off = [line for line in lines if "valve OFF" in line]
    assert len(valve_off) == 1 and re.search(
        r"valve OFF at \d+\.\d\d kg gross(, | \(last reading\), )\d+ ms after the (reading|predicted moment)", valve_off[0])

    assert any(line.startswith("<6>edge.logs: versions {") and '"pymodbus":"3.' in line for line in lines)
    started = next(line for line in lines if "config from" in line)
    assert "sha256" in started and "lanes [A: G13, scale modbus tcp-A/1" in started and len(started) < 600, started
    assert "demo-secret" not in log_path.read_text(encoding="utf-8")

    # Bounded: the fill took many polls, and the whole run logged a few dozen lines, none per sample.
    assert polls_during_fill > 20
    assert len(lines) < 40, "\n".join(lines)
    per_sample = [line for line in lines if line.startswith("<6>edge.lanes.lane") and "fill complete" not in line and "valve OFF" not in line]
    assert not any(re.search(r"\bgross\b|\bweight\b|kg", line) for line in per_sample)


def test_terminal_lines_carry_the_station_local_time_with_its_offset() -> None:
    import logging
    from zoneinfo import ZoneInfo

    from edge import logs

    record = logging.LogRecord("edge.lanes.lane", logging.INFO, __file__, 1, "valve ON", None, None)
    record.created = 1795000000.0  # 2026-11-18T11:06:40Z
    logs.set_timezone(ZoneInfo("Asia/Shanghai"))
    try:
        line = logs.FieldFormatter(journald=False).format(record)
    finally:
        logs.set_timezone(None)
    assert line.startswith("2026-11-18T19:06:40.000+08:00 INFO edge.lanes.lane: valve ON"), line


def test_terminal_lines_without_a_station_zone_carry_the_machines_offset() -> None:
    """A command with no station config (the company's `edge fleet collect`), or a line logged before
    the config is read: the machine's local time, still with its offset, never a bare local time."""
    import logging
    import os
    import re
    import time

    from edge import logs

    record = logging.LogRecord("fleet.collector", logging.INFO, __file__, 1, "collector connected", None, None)
    record.created = 1795000000.0  # 2026-11-18T11:06:40Z
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        line = logs.FieldFormatter(journald=False).format(record)
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        time.tzset()
    assert re.match(r"2026-11-18T06:06:40\.000-05:00 INFO fleet\.collector: collector connected$", line), line
