"""Start the stand-ins a simulated config names: Modbus scale/relay servers, pty scanners, dataset."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from simulators.dataset import Generated, generate
from simulators.modbus_station import ModbusStationSim
from simulators.scale_model import ScaleModel, ScaleParams
from simulators.serial_pty import PtyScanner

from .config import Config
from .store import Store

log = logging.getLogger(__name__)


@dataclass
class Simulation:
    config: Config
    modbus: dict[tuple[str, int], ModbusStationSim] = field(default_factory=dict)
    scanners: dict[str, PtyScanner] = field(default_factory=dict)  # lane id -> its first scanner
    ptys: list[PtyScanner] = field(default_factory=list)
    dataset: list[Generated] = field(default_factory=list)

    def start(self) -> Simulation:
        sim = self.config.simulators
        if sim is None:
            raise ValueError("this config has no simulators section")
        params = ScaleParams(flow_kg_per_s=sim.flow_kg_per_s, valve_delay_s=sim.valve_delay_s, noise_kg=sim.noise_kg)
        for index, lane in enumerate(self.config.lanes):
            key = (lane.scale.host, lane.scale.port)
            if key not in self.modbus:
                model = ScaleModel(params, seed=sim.dataset_seed + index)
                self.modbus[key] = ModbusStationSim(model, lane.scale.port, lane.relay.coil, lane.scale.host).start()
            for scanner in lane.scanners:
                pty = PtyScanner(scanner.port, terminator=scanner.terminator.encode())
                self.ptys.append(pty)
                self.scanners.setdefault(lane.id, pty)
        log.info("simulators up: %d Modbus stations, %d scanners", len(self.modbus), len(self.scanners))
        return self

    def seed_cache(self, store: Store, now: datetime) -> int:
        """Load the seeded dataset unless the cache already holds cylinders."""
        sim = self.config.simulators
        assert sim is not None
        self.dataset = generate(
            sim.dataset_size,
            self.config.station.owner_unit,
            self.config.station.region,
            now.astimezone(self.config.tz).date(),
            sim.dataset_seed,
        )
        if store.query("SELECT count(*) AS n FROM cylinders")[0]["n"]:
            return 0
        store.upsert_cylinders((g.row for g in self.dataset), now)
        for g in self.dataset:
            if g.block_reason:
                store.block(g.row["id"], g.block_reason, now)
        store.mark_cache_refreshed(now)
        return len(self.dataset)

    def station_for(self, lane_id: str) -> ModbusStationSim:
        lane = next(l for l in self.config.lanes if l.id == lane_id)
        return self.modbus[(lane.scale.host, lane.scale.port)]

    def stop(self) -> None:
        for pty in self.ptys:
            pty.close()
        for server in self.modbus.values():
            server.stop()
