"""Resetting a tripped lane, by a person, on the record: over the control socket (`edge lane
reset`), by holding the abort button, and by a reset input. A reset is refused while the scale
still shows the fault; a reset lane fills again. Also: a cylinder lifted off mid-fill is
recorded as CYLINDER_REMOVED."""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from edge.store.journal import load as load_entry
from interlock.reasons import Reason

from .conftest import SimStation

EDGE = [sys.executable, "-m", "edge.cli"]
HOLD_S = 0.6


def buttons_with_reset(raw: dict[str, Any]) -> None:
    lane = raw["lanes"][0]
    lane["buttons"] = {
        "driver": "modbus_input", "bus": "tcp-A", "device_id": 2, "confirm": 0, "abort": 1, "reset": 2,
        "reset_hold_s": HOLD_S,
    }
    lane["fill"] = copy.deepcopy(lane["fill"])


def edge_lane(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [*EDGE, "lane", "reset", "--config", str(tmp_path / "station.yaml"), "--json", *args],
        capture_output=True, text=True, timeout=30,
    )
    return result.returncode, json.loads(result.stdout)


def journal(station: SimStation, kind: str) -> list[dict[str, Any]]:
    assert station.station.store is not None
    rows = station.station.store.query("SELECT data FROM journal WHERE kind = ? AND lane = 'A' ORDER BY seq", [kind])
    return [load_entry(r["data"]) for r in rows]


def hold(station: SimStation, index: int, seconds: float) -> None:
    board = station.modbus("A").board
    board.inputs[index] = True
    time.sleep(seconds)
    board.inputs[index] = False


def trip_scale_lost(station: SimStation, skip: int) -> None:
    station.start_fill("A", station.cylinder(skip=skip))
    station.modbus("A").silent = True
    station.wait_valve("A", False, timeout=3.0)
    assert station.wait("A", "fill_end")["cause"] == Reason.SCALE_LOST


def fill_completes(station: SimStation, skip: int) -> None:
    verdict = station.start_fill("A", station.cylinder(skip=skip))
    end = station.wait("A", "fill_end", timeout=20)
    assert end["fill_id"] == verdict["fill_id"] and end["status"] == "complete", end
    station.wait_valve("A", False)
    station.modbus("A").model.remove()


def scale_back(station: SimStation) -> None:
    """The scale answers again and shows an empty platter (after the bus's back-off)."""
    station.modbus("A").silent = False
    station.modbus("A").model.remove()

    def answering() -> bool:
        state = station.station.lanes["A"].state
        return state.scale_fault is None and state.last_gross_kg is not None and state.last_gross_kg < 1.0

    station.wait_for(answering, "the scale back", timeout=5)


def lane_phase(station: SimStation) -> str:
    return station.station.lanes["A"].state.phase.value


def test_a_tripped_lane_refuses_scans_and_is_reset_by_each_path(
    make_station: Callable[..., SimStation], tmp_path: Path
) -> None:
    station = make_station(buttons_with_reset)
    trip_scale_lost(station, skip=0)
    refused = station.scan("A", station.cylinder(skip=1).row["qr_content"])
    assert not refused["accepted"] and refused["reasons"] == [Reason.LANE_LOCKED]
    assert not station.modbus("A").valve_on()

    # 1. The command line, refused while the scale is still silent, then done once it answers.
    assert stat.S_IMODE(os.stat(station.config.store.control_path).st_mode) == 0o660
    code, reply = edge_lane(tmp_path, "A", "--by", "op-zhang", "--why", "checked the cable")
    assert code == 1 and reply["refused"] == Reason.SCALE_LOST and reply["phase"] == "locked", reply
    code, reply = edge_lane(tmp_path, "A", "--by", "nobody", "--why", "x")
    assert code == 1 and "not a registered member of staff" in reply["message"]
    scale_back(station)
    code, reply = edge_lane(tmp_path, "A", "--by", "op-zhang", "--why", "checked the cable")
    assert code == 0 and reply["ok"] and reply["phase"] == "idle", reply
    done = journal(station, "lane_reset")[-1]
    assert done["by"] == "op-zhang" and done["why"] == "checked the cable" and done["cause"] == Reason.SCALE_LOST
    assert done["source"].startswith("command uid=")
    assert journal(station, "lane_reset_refused")[0]["refused"] == Reason.SCALE_LOST
    fill_completes(station, skip=2)

    # 2. A long press of abort (a short one resets nothing), as the operator on shift.
    trip_scale_lost(station, skip=3)
    scale_back(station)
    hold(station, 1, 0.2)
    time.sleep(0.3)
    assert lane_phase(station) == "locked", "a short abort press is not a reset"
    hold(station, 1, HOLD_S + 0.3)
    station.wait_for(lambda: lane_phase(station) == "idle", "reset by a long abort press", timeout=3)
    done = journal(station, "lane_reset")[-1]
    assert done["source"] == "abort_long_press" and done["by"] == "op-zhang"
    fill_completes(station, skip=4)

    # 3. The reset input, refused while the scale is silent, done once it answers.
    trip_scale_lost(station, skip=5)
    hold(station, 2, 0.2)
    station.wait_for(lambda: len(journal(station, "lane_reset_refused")) == 2, "the refused reset input")
    assert lane_phase(station) == "locked"
    scale_back(station)
    hold(station, 2, 0.2)
    station.wait_for(lambda: lane_phase(station) == "idle", "reset by the reset input", timeout=3)
    assert journal(station, "lane_reset")[-1]["source"] == "reset_input"
    fill_completes(station, skip=6)


def test_no_daemon_is_a_clear_error(tmp_path: Path) -> None:
    from .conftest import write_config

    write_config(tmp_path)
    code, reply = edge_lane(tmp_path, "A", "--by", "op-zhang")
    assert code == 3 and "no running daemon" in reply["message"]


def test_lifting_the_cylinder_off_mid_fill_is_cylinder_removed(make_station: Callable[..., SimStation]) -> None:
    station = make_station()
    for lane in ("A", "B"):  # TCP and RTU
        verdict = station.start_fill(lane, station.cylinder(skip=7 if lane == "A" else 8))
        station.modbus(lane).model.remove()
        station.wait_valve(lane, False, timeout=2.0)
        end = station.wait(lane, "fill_end")
        assert end["cause"] == Reason.CYLINDER_REMOVED, end
        assert station.fill_row(verdict["fill_id"])["cause"] == Reason.CYLINDER_REMOVED
