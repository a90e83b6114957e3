"""A simulated station for integration tests: real Modbus TCP, real ptys, a real SQLite file."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from drivers.base import CodeReader, Scan
from edge.config import Config, load_config
from edge.daemon.station import Station
from edge.demo.run import BUNDLED_CONFIG, effective_config
from edge.demo.simulation import Simulation
from edge.lanes.lane import LaneEvent
from simulators.dataset import Generated

Override = Callable[[dict[str, Any]], None]


def first_scan(reader: CodeReader, seconds: float = 2.0) -> Scan | None:
    """Read until a scan arrives or the time is up."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        scan = reader.read()
        if scan is not None:
            return scan
    return None


def write_config(tmp_path: Path, override: Override | None = None) -> Path:
    path = effective_config(BUNDLED_CONFIG, tmp_path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if override:
        override(raw)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def daemon_config(tmp_path: Path, override: Override | None = None) -> tuple[Path, Config]:
    """The station.yaml write_config made, as a daemon child process gets it: without the
    simulators (they belong to the test process), changed by `override`, saved as daemon.yaml."""
    raw = yaml.safe_load((tmp_path / "station.yaml").read_text(encoding="utf-8"))
    del raw["simulators"]
    if override:
        override(raw)
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path, load_config(path)


@dataclass
class SimStation:
    config: Config
    sim: Simulation
    station: Station
    events: dict[str, "queue.Queue[LaneEvent]"]

    def cylinder(self, scenario: str = "ok", skip: int = 0) -> Generated:
        matches = [g for g in self.sim.dataset if g.scenario == scenario and g.row["model"] != "YSP50"]
        return matches[skip]

    def scan(self, lane: str, code: str | bytes) -> dict[str, Any]:
        self.sim.scanners[lane].scan(code)
        return self.wait(lane, "verdict")

    def wait(self, lane: str, kind: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            event = self.events[lane].get(timeout=max(0.01, deadline - time.monotonic()))
            if event.kind == kind:
                return event.data

    def modbus(self, lane: str):  # type: ignore[no-untyped-def]
        return self.sim.station_for(lane)

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}")
            time.sleep(0.01)

    def wait_valve(self, lane: str, on: bool, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        while self.modbus(lane).valve_on() != on:
            if time.monotonic() > deadline:
                raise AssertionError(f"valve on lane {lane} never went {'on' if on else 'off'}")
            time.sleep(0.005)
        return time.monotonic()

    def start_fill(self, lane: str, cylinder: Generated, residual: float = 0.1) -> dict[str, Any]:
        verdict = self.scan(lane, cylinder.row["qr_content"])
        assert verdict["accepted"], verdict
        self.modbus(lane).model.place(cylinder.row["tare_kg"] + residual)
        self.wait_valve(lane, True)
        return verdict

    def fill_row(self, fill_id: str) -> dict[str, Any]:
        assert self.station.store is not None
        return self.station.store.query("SELECT * FROM fills WHERE id = ?", [fill_id])[0]


def start_sim_station(tmp_path: Path, override: Override | None = None) -> SimStation:
    config = load_config(write_config(tmp_path, override))
    sim = Simulation(config).start()
    sim.seed_store()
    station = Station(config)
    station.start()
    events: dict[str, queue.Queue[LaneEvent]] = {}
    for lane_id, lane in station.lanes.items():
        events[lane_id] = queue.Queue()
        lane.listeners.append(events[lane_id].put)
    return SimStation(config, sim, station, events)


@pytest.fixture
def make_station(tmp_path: Path) -> Iterator[Callable[..., SimStation]]:
    started: list[SimStation] = []

    def make(override: Override | None = None) -> SimStation:
        s = start_sim_station(tmp_path, override)
        started.append(s)
        return s

    yield make
    for s in started:
        s.station.stop()
        s.sim.stop()


@pytest.fixture
def station(make_station: Callable[..., SimStation]) -> SimStation:
    return make_station()


@pytest.fixture(scope="session")
def city_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A CA made for this test run and a server certificate for 127.0.0.1 (trustme)."""
    from simulators.city import tls_context

    return tls_context(tmp_path_factory.mktemp("city-ca") / "city-ca.pem")


@pytest.fixture(autouse=True)
def private_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Device locks in this test's own directory: daemons of other tests (or a station-edge
    installed on this machine) holding the same simulated ports must not refuse ours."""
    monkeypatch.setenv("EDGE_LOCK_DIR", str(tmp_path / "locks"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that takes a chromium fixture (`browser`, `chromium`) is marked browser. Slow tests go first: with several
    workers (`make test`) the longest ones start at once instead of being dealt out last and
    leaving one worker busy after the others are done."""
    for item in items:
        if {"browser", "chromium"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
