"""Start the stand-ins a simulated config names: a Modbus server per bus (TCP, or RTU behind a
null modem whose host end sits at the bus's port path) with each lane's scale and relay board on
it, pty scanners, and the seeded cylinder dataset."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from simulators.city import CitySim, tls_context
from simulators.dataset import Generated, generate
from simulators.modbus_devices import ScaleFault, SimRelayBoard, SimScale
from simulators.modbus_server import ModbusSimServer
from simulators.null_modem import NullModem
from simulators.scale_model import ScaleModel, ScaleParams
from simulators.serial_pty import PtyScanner

from ..config import Config
from ..config.devices import ModbusCoilRelayConfig, ModbusDevice, SerialScannerConfig
from ..lanes.lane import utc_now
from ..store import Store

log = logging.getLogger(__name__)


@dataclass
class LaneSim:
    """One lane's simulated hardware: the scale on the bus and the valve coil on its relay board."""

    model: ScaleModel
    scale: SimScale
    board: SimRelayBoard
    coil: int

    def valve_on(self) -> bool:
        return self.board.coil(self.coil)

    def last_write(self, coil: int, value: bool) -> float | None:
        return self.board.last_write(coil, value)

    @property
    def samples(self) -> deque[tuple[float, float]]:
        return self.scale.samples

    @property
    def silent(self) -> bool:
        return self.scale.fault is ScaleFault.SILENT

    @silent.setter
    def silent(self, value: bool) -> None:
        self.scale.fault = ScaleFault.SILENT if value else None


@dataclass
class Simulation:
    config: Config
    lanes: dict[str, LaneSim] = field(default_factory=dict)
    servers: dict[str, ModbusSimServer] = field(default_factory=dict)
    modems: dict[str, NullModem] = field(default_factory=dict)
    scanners: dict[str, PtyScanner] = field(default_factory=dict)  # lane id -> its first scanner
    ptys: list[PtyScanner] = field(default_factory=list)
    dataset: list[Generated] = field(default_factory=list)
    city: CitySim | None = None
    check_scale: ScaleModel | None = None  # the check table's scale, when the config has one

    def start(self) -> Simulation:
        sim = self.config.simulators
        if sim is None:
            raise ValueError("this config has no simulators section")
        params = ScaleParams(flow_kg_per_s=sim.flow_kg_per_s, valve_delay_s=sim.valve_delay_s, noise_kg=sim.noise_kg)
        devices: dict[str, dict[int, SimScale | SimRelayBoard]] = {name: {} for name in self.config.buses}

        def board(spec: ModbusDevice, lease_base: int | None = None) -> SimRelayBoard:
            found = devices[spec.bus].setdefault(spec.device_id, SimRelayBoard(spec.device_id))
            assert isinstance(found, SimRelayBoard), f"unit {spec.device_id} on {spec.bus} is a scale"
            if lease_base is not None:  # any lane's lease gives the board its timer registers
                found.lease_base = lease_base
            return found

        for index, lane in enumerate(self.config.lanes):
            relay = lane.relay
            if not isinstance(relay, ModbusCoilRelayConfig):
                raise ValueError(f"lane {lane.id}: a simulated station needs Modbus relays (GPIO cannot be simulated here)")
            assert lane.scale.registers is not None
            model = ScaleModel(params, seed=sim.dataset_seed + index)
            scale = SimScale(model, lane.scale.registers.build(), lane.scale.device_id, seed=index, capacity_kg=lane.scale.capacity_kg)
            devices[lane.scale.bus][lane.scale.device_id] = scale
            lease_base = relay.lease.timer_register - relay.coil if relay.lease else None
            valve_board = board(relay, lease_base)
            valve_board.listeners.append(lambda coil, on, c=relay.coil, m=model: coil == c and m.set_valve(on))
            for extra in (lane.signals, lane.buttons):
                if isinstance(extra, ModbusDevice):
                    board(extra)
            self.lanes[lane.id] = LaneSim(model, scale, valve_board, relay.coil)
            for scanner in lane.scanners:
                if isinstance(scanner, SerialScannerConfig):
                    pty = PtyScanner(scanner.port, terminator=scanner.terminator.encode())
                    self.ptys.append(pty)
                    self.scanners.setdefault(lane.id, pty)
        check = self.config.checks.check_scale
        if check is not None:
            assert check.registers is not None
            self.check_scale = ScaleModel(params, seed=sim.dataset_seed + len(self.config.lanes))
            devices[check.bus][check.device_id] = SimScale(
                self.check_scale, check.registers.build(), check.device_id, seed=len(self.config.lanes), capacity_kg=check.capacity_kg
            )
        for name, spec in self.config.buses.items():
            on_bus = list(devices[name].values())
            if spec.transport == "tcp":
                self.servers[name] = ModbusSimServer(on_bus, host=spec.host, port=spec.port).start()
            else:
                modem = self.modems[name] = NullModem(spec.port, baudrate=spec.baudrate).start()
                self.servers[name] = ModbusSimServer(on_bus, serial_port=modem.device.port, baudrate=spec.baudrate).start()
        self.dataset = generate(
            sim.dataset_size,
            self.config.station.owner_unit,
            self.config.station.region,
            utc_now().astimezone(self.config.tz).date(),
            sim.dataset_seed,
        )
        if sim.city:
            self.city = self._start_city()
        log.info("simulators up: %d buses, %d lanes, %d scanners%s", len(self.servers), len(self.lanes), len(self.ptys),
                 ", the city" if self.city else "")
        return self

    def _start_city(self) -> CitySim:
        """The city system at city.base_url, holding the dataset, trusting the configured account."""
        city = self.config.city
        if city is None or city.ca_bundle is None or city.url is None:
            raise ValueError("simulators.city needs a city: section with base_url and ca_bundle")
        address = urlsplit(city.url)
        context, _ = tls_context(city.ca_bundle)
        registry = [g.row for g in self.dataset]
        return CitySim(city.profile, registry, {city.username: city.secret()}, host=address.hostname or "127.0.0.1",
                       port=address.port or 443, tls=context).start()

    def seed_cache(self, store: Store, now: datetime) -> int:
        """Load the seeded dataset unless the cache already holds cylinders."""
        if store.query("SELECT count(*) AS n FROM cylinders")[0]["n"]:
            return 0
        store.upsert_cylinders((g.row for g in self.dataset), now)
        for g in self.dataset:
            if g.block_reason:
                store.block(g.row["id"], g.block_reason, now)
        store.mark_cache_refreshed(now)
        return len(self.dataset)

    def seed_store(self) -> int:
        """Seed the station's store (created as the daemon creates it) and close it again: what a
        simulated station needs before it starts."""
        from ..store.opening import open_store

        store = open_store(self.config)
        try:
            return self.seed_cache(store, utc_now())
        finally:
            store.close()

    def station_for(self, lane_id: str) -> LaneSim:
        return self.lanes[lane_id]

    def stop(self) -> None:
        for pty in self.ptys:
            pty.close()
        for server in self.servers.values():
            server.stop()
        for modem in self.modems.values():
            modem.close()
        if self.city is not None:
            self.city.stop()
