"""The learned in-flight mass in a running station (Modbus TCP simulator, real SQLite): the first
fill learns it, the next fill's plan uses it, `edge status` and the metrics show it, a manager's
reset forgets it; the predicted cut-off fires between polls without the polls stopping."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Callable

from edge.config import load_config
from edge.daemon.station import open_store
from edge.store import journal
from interlock.inflight import ANY_MODEL

from .conftest import SimStation

EDGE = [sys.executable, "-m", "edge.cli"]


def slow_lane_a(raw: dict[str, Any]) -> None:
    raw["simulators"]["flow_kg_per_s"] = 1.0
    raw["simulators"]["valve_delay_s"] = 0.15
    raw["lanes"][0]["fill"] = {**raw["lanes"][0]["fill"], "settle_min_s": 0.5, "preact_kg": 0.45}


def fill(station: SimStation, skip: int, top_up: float = 2.5) -> dict[str, Any]:
    cylinder = station.cylinder(skip=skip)
    verdict = station.scan("A", cylinder.row["qr_content"])
    assert verdict["accepted"], verdict
    target = cylinder.row["fill_mass_kg"]
    station.modbus("A").model.place(cylinder.row["tare_kg"] + target - top_up)
    end = station.wait("A", "fill_end", timeout=20)
    station.modbus("A").model.remove()
    return end


def cylinder_target(station: SimStation, end: dict[str, Any]) -> float:
    return float(station.fill_row(end["fill_id"])["target_net_kg"])


def test_a_lane_learns_uses_shows_and_forgets_its_inflight(make_station: Callable[..., SimStation]) -> None:
    station = make_station(slow_lane_a)
    store = station.station.store
    assert store is not None
    first = fill(station, 0)
    assert first["status"] == "complete"
    learned = store.inflight("A")[ANY_MODEL]
    # 0.15 s valve delay at 1 kg/s plus the relay's answer: far below the 0.45 kg configured.
    assert learned.fills == 1 and 0.1 < learned.inflight_s < 0.45  # type: ignore[operator]
    polls = station.station.lanes["A"].polls
    later: list[dict[str, Any]] = []
    settling: list[dict[str, Any]] = []

    def cut_off(end: dict[str, Any]) -> dict[str, Any]:
        [row] = store.query("SELECT data FROM journal WHERE kind = 'fill_settling' AND fill_id = ?", [end["fill_id"]])
        return journal.load(row["data"])  # type: ignore[no-any-return]

    # Most cut-offs fall between polls; a noisy reading, or a machine so busy that a poll comes
    # late, can still put one on a poll (sample): three fills at least, six at most to see one.
    for skip in range(1, 7):
        later.append(fill(station, skip))
        settling.append(cut_off(later[-1]))
        if skip >= 3 and any(s["cutoff_by"] == "predicted" for s in settling):
            break
    assert all(end["status"] == "complete" for end in later)
    assert station.station.lanes["A"].polls > polls + 30, "the lane kept polling through the fills"
    assert all(s["preact_kg"] < 0.45 for s in settling), "the later fills' plans carried the learned value"
    assert any(s["cutoff_by"] == "predicted" for s in settling), [s["cutoff_by"] for s in settling]
    assert abs(later[-1]["net_kg"] - cylinder_target(station, later[-1])) < 0.1, "the seed has left the median"
    page = station.station.config.status_page
    assert page is not None
    with urllib.request.urlopen(f"http://{page.host}:{page.port}/metrics", timeout=5) as reply:
        metrics = reply.read().decode()
    assert 'edge_learned_inflight_seconds{lane="A",model="*"}' in metrics


def test_status_shows_it_and_a_manager_resets_it(make_station: Callable[..., SimStation], tmp_path: Path) -> None:
    station = make_station(slow_lane_a)
    config_path = tmp_path / "station.yaml"  # where make_station wrote it
    assert fill(station, 0)["status"] == "complete"
    station.station.stop()
    status = subprocess.run([*EDGE, "status", "--config", str(config_path), "--json"], capture_output=True, text=True, timeout=60)
    inflight = json.loads(status.stdout)["inflight"]["A"]
    assert inflight[ANY_MODEL]["fills"] == 1 and inflight[ANY_MODEL]["inflight_s"] > 0
    reset = subprocess.run([*EDGE, "inflight-reset", "A", "--by", "op-zhang", "--config", str(config_path)],
                           capture_output=True, text=True, timeout=60)
    assert reset.returncode == 0, reset.stderr
    unknown = subprocess.run([*EDGE, "inflight-reset", "Z", "--config", str(config_path)], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "no lane" in unknown.stderr
    store = open_store(load_config(config_path))
    try:
        assert store.inflight("A") == {}
        entry = store.query("SELECT data FROM journal WHERE kind = 'inflight_reset' AND lane = 'A'")
        assert journal.load(entry[0]["data"])["by"] == "op-zhang"
    finally:
        store.close()
