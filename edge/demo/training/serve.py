"""`edge demo --serve`: a simulated station kept running for training, with its status page, the
staff app and the simulation console, until SIGINT or SIGTERM.

The station is the bundled simulated config with what a real station does switched on for
practice (lane A requires the checker's pre-fill check in the staff app, lane B waits for the
operator's confirm before it opens the valve), or the trainer's own config (`--config X`) as it
is: X must name simulated devices only, or it is refused.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

import yaml

from ... import logs
from ...config import ConfigError, load_config
from ...config.devices import SerialScannerConfig
from ...daemon.station import Station
from ...lanes.lane import utc_now
from ...webapp.accounts import set_secret
from .. import checks as demo_checks
from ..run import BUNDLED_CONFIG, effective_config
from ..simulation import Simulation
from .console import Console

# The staff app's PIN for every trainee account: a training station's store holds no real people.
TRAINING_PIN = "246810"
CONFIRM_LANE = "B"


class TrainingConfigError(Exception):
    """The trainer's config cannot run as a training station; says why."""


def training_config(state_dir: Path, source: Path | None, status_port: int | None) -> tuple[Path, str]:
    """The effective config in the state dir, and the staff app's certificate fingerprint."""
    if source is not None:
        try:
            given = load_config(source)
        except ConfigError as exc:
            raise TrainingConfigError(str(exc)) from None
        if given.simulators is None:
            raise TrainingConfigError(f"{source} has no simulators section: training runs simulated devices only"
                                      " (start from config/simulated.yaml)")
        for lane in given.lanes:
            for scanner in lane.scanners:
                if not isinstance(scanner, SerialScannerConfig):
                    raise TrainingConfigError(f"{source}: lane {lane.id} has a {scanner.driver} scanner; the simulation"
                                              " has serial scanners only")
    path = effective_config(source or BUNDLED_CONFIG, state_dir)
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    keep = {lane["id"]: lane.get("require_precheck", False) for lane in raw["lanes"]}
    checks = raw.get("checks", {})
    fingerprint = demo_checks.prepare(path, state_dir)  # the staff app, on the loopback over HTTPS
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if source is not None:
        raw["checks"] = {**checks, "photo_dir": raw["checks"]["photo_dir"]}
    for lane in raw["lanes"]:
        if source is not None:
            lane["require_precheck"] = keep[lane["id"]]  # the trainer's config decides
        elif lane["id"] == CONFIRM_LANE:
            lane["fill"] = {**lane["fill"], "auto_start": False}  # a copy: the lanes share one YAML anchor
    if status_port is not None:
        raw["status_page"] = {**raw.get("status_page", {}), "port": status_port}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path, fingerprint


def serve(state_dir: Path, console_port: int, out: TextIO = sys.stdout, stop: threading.Event | None = None,
          source: Path | None = None, status_port: int | None = None) -> int:
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    state_dir.mkdir(parents=True, exist_ok=True)
    path, fingerprint = training_config(state_dir, source, status_port)
    config = load_config(path)
    logs.set_timezone(config.tz)
    sim = Simulation(config).start()
    station = Station(config)
    console = None
    try:
        sim.seed_store()
        station.start()
        assert station.store is not None
        logins = _staff_logins(station)
        status_url = f"http://{station.status.host}:{station.status.port}/" if station.status else ""
        webapp_url = station.webapp.url if station.webapp is not None else ""
        console = Console(station, sim, console_port, status_url, webapp_url).start()
        lanes = "\n".join(
            f"  lane {lane.id}: " + ", ".join(
                (["pre-fill check first (staff app)"] if lane.require_precheck else [])
                + (["operator presses confirm to start"] if not lane.fill.auto_start else ["starts when the cylinder is on the scale"]))
            for lane in config.lanes)
        print(f"training station in {state_dir} ({source or 'bundled simulated station'})\n"
              f"  status page        {status_url}  (one lane: {status_url}lane/{config.lanes[0].id})\n"
              f"  simulation console {console.url}\n"
              f"  staff app          {webapp_url}  (certificate SHA-256 {fingerprint[:23]}...)\n"
              f"  staff app logins   {logins}, PIN {TRAINING_PIN}\n{lanes}\nCtrl-C to stop.", file=out, flush=True)
        stop.wait()
    finally:
        if console:
            console.stop()
        station.stop()
        sim.stop()
    return 0


def _staff_logins(station: Station) -> str:
    """Every operator and checker of the lanes gets the training PIN in their role."""
    assert station.store is not None
    roles: dict[str, str] = {}
    for lane in station.config.lanes:
        roles.setdefault(lane.checker, "checker")
        roles.setdefault(lane.operator, "operator")
    for person, role in roles.items():
        set_secret(station.store, person, TRAINING_PIN, role, utc_now())
    return ", ".join(f"{person} ({role})" for person, role in roles.items())

