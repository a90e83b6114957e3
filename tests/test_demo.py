"""`edge demo --json` from the command line: the whole simulated station, scripted operators."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.reasons import Reason

EDGE = [sys.executable, "-m", "edge.cli"]
REJECTIONS = {
    Reason.UNKNOWN_CYLINDER, Reason.NOT_SELF_OWNED, Reason.SCRAPPED, Reason.SUSPENDED, Reason.INSPECTION_OVERDUE,
    Reason.SERVICE_LIFE_EXCEEDED, Reason.MEDIUM_MISMATCH, Reason.NOT_REGISTERED, Reason.CACHE_STALE,
    Reason.INVALID_CODE, Reason.BLOCKED_LOCALLY,
}


@pytest.mark.slow
def test_demo_json_summary_and_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    # TZ=UTC: a log line stamped in the machine's zone would read differently from the station's.
    result = subprocess.run([*EDGE, "demo", "--json", "--state-dir", str(state)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TZ": "UTC"})
    assert result.returncode == 0, result.stderr
    # The daemon's warnings at the terminal (the scale that stops answering, at least) are in the
    # station's local time with its offset, as `edge run` prints them.
    stamped = [line for line in result.stderr.splitlines() if re.match(r"\d{4}-\d\d-\d\dT", line)]
    assert stamped and all(re.match(r"\S+\+08:00 (WARNING|ERROR|CRITICAL) ", line) for line in stamped), stamped
    summary = json.loads(result.stdout)
    assert summary["scans"] >= 20
    assert REJECTIONS <= set(summary["rejected"])
    assert summary["accepted"] + sum(summary["rejected"].values()) == summary["scans"]
    assert summary["fills_completed"] >= 3 and summary["fills_aborted"] >= 1
    assert summary["chain_ok"] is True
    # Every fill that opened a valve reached the city simulator: a filling record and a trace node;
    # so did each dispatch's 配送 node and the tag binding.
    started = summary["fills_completed"] + summary["fills_aborted"]
    uploads = 2 * started + summary["dispatches"] + summary["tag_bindings"]
    assert (summary["uploads_sent"], summary["uploads_pending"], summary["uploads_dead"]) == (uploads, 0, 0)
    # Lane A requires pre-fill checks: the scripted checker's checks, the refusals without one.
    assert summary["prefill_checks"] >= 4 and summary["prefill_refused"] == 1
    assert summary["rejected"][Reason.PRECHECK_MISSING] == 1 == summary["scans_refused_no_precheck"]
    assert summary["rejected"][Reason.PRECHECK_FAILED] == 1
    # The scripted checker's person rule: lane A's operator may not pre-check for it.
    assert "REFUSED: 充装人员不得检查自己充装的气瓶" in result.stderr
    assert summary["postfill_checks"] == summary["fills_completed"] == summary["dispatches"]
    assert summary["tag_bindings"] == 1
    assert summary["elapsed_s"] < 60
    assert "accelerated" in result.stderr  # progress goes to stderr with --json, and says so

    config = str(state / "station.yaml")
    records = subprocess.run([*EDGE, "records", "--json", "--config", config], capture_output=True, text=True)
    rows = json.loads(records.stdout)
    assert len(rows) == summary["fills_completed"] + summary["fills_aborted"]
    status = json.loads(subprocess.run([*EDGE, "status", "--json", "--config", config], capture_output=True, text=True).stdout)
    assert status["fills"]["complete"] == summary["fills_completed"]
    assert status["cylinders_cached"] > 0
    verify = subprocess.run([*EDGE, "verify", "--json", "--config", config], capture_output=True, text=True)
    assert verify.returncode == 0 and json.loads(verify.stdout)["entries"] == summary["journal_entries"]


def test_demo_summary_counts_this_run_only(tmp_path: Path) -> None:
    """A state dir that holds an earlier run: the summary is this run's figures, the chain checked whole."""
    from edge.config import load_config
    from edge.daemon.station import open_store
    from edge.demo.run import run_marks, summarise

    from .conftest import write_config
    from .test_manager_tools import DAY, fill, rejected

    config = load_config(write_config(tmp_path))
    store = open_store(config)
    try:
        fill(store, 1, "A", DAY, "张伟", "ok")  # the earlier run
        rejected(store, DAY, "A", ["SCRAPPED"], "CYL900")
        marks = run_marks(store)
        fill(store, 2, "B", DAY, "李娜", "aborted", None, cause="SCALE_LOST")  # this run
        rejected(store, DAY, "B", ["INSPECTION_OVERDUE"], "CYL901")
        rejected(store, DAY, "B", ["SCRAPPED"], "CYL900")
    finally:
        store.close()
    summary = summarise(config, marks)
    assert (summary["scans"], summary["accepted"], summary["rejected"]) == (2, 0, {"INSPECTION_OVERDUE": 1, "SCRAPPED": 1})
    assert (summary["fills_completed"], summary["fills_aborted"]) == (0, 1)
    assert summary["uploads_pending"] == 2 and summary["chain_ok"] is True
    everything = summarise(config)
    assert (everything["scans"], everything["fills_completed"], everything["uploads_pending"]) == (3, 1, 4)
