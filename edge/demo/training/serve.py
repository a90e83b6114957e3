"""`edge demo --serve`: the simulated station kept running, with its status page and the
simulation console, until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

from ...config import load_config
from ...daemon.station import Station
from ..run import BUNDLED_CONFIG, effective_config
from ..simulation import Simulation
from .console import Console


def serve(state_dir: Path, console_port: int, out: TextIO = sys.stdout, stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    state_dir.mkdir(parents=True, exist_ok=True)
    config = load_config(effective_config(BUNDLED_CONFIG, state_dir))
    sim = Simulation(config).start()
    station = Station(config)
    console = None
    try:
        sim.seed_store()
        station.start()
        status_url = f"http://{station.status.host}:{station.status.port}/" if station.status else ""
        console = Console(station, sim, console_port, status_url).start()
        print(f"training station in {state_dir}\n  status page        {status_url}  (one lane: {status_url}lane/A)\n"
              f"  simulation console {console.url}\nCtrl-C to stop.", file=out, flush=True)
        stop.wait()
    finally:
        if console:
            console.stop()
        station.stop()
        sim.stop()
    return 0
