"""The daemon's assembly: store, relays driven off first, lanes side by side, a clean stop."""

from __future__ import annotations

import logging
from typing import Any

from drivers.base import DeviceError, Relay
from interlock.fill import Acknowledge, Record, Reset
from interlock.reasons import Reason
from interlock.recovery import Limits, OpenFill, reweigh

from .. import __version__
from ..config import Config
from ..config.devices import ModbusCoilRelayConfig, TcpBusConfig
from ..lanes.lane import Clock, Lane, utc_now
from ..lanes.lookup import LiveLookup
from ..status.server import StatusServer
from ..store import Store, StoreUnavailable, staff
from ..store.opening import open_store
from .assembly import Hardware, all_relays, build_buttons, build_readers, build_relay, build_scale, build_signals, scale_from
from .city import SyncService, build_client
from .control import ControlServer
from .fleet import FleetService
from .guard import Guard
from .notify import Watchdog, notify, watchdog_interval_s
from .dailyverify import DailyVerify
from .storewatch import StoreWatch

log = logging.getLogger(__name__)


class StartupError(Exception):
    pass


def valves_off(config: Config) -> dict[str, str | None]:
    """Drive every configured valve relay off. Returns lane -> error (None when it went off)."""
    hw = Hardware(config)
    try:
        return drive_off(all_relays(config, hw))
    except DeviceError as exc:  # a relay that cannot even be built (GPIO backend missing)
        return {lane.id: str(exc) for lane in config.lanes}
    finally:
        hw.close()


def drive_off(relays: dict[str, Relay]) -> dict[str, str | None]:
    results: dict[str, str | None] = {}
    for lane_id, relay in relays.items():
        try:
            relay.off()
            results[lane_id] = None
        except DeviceError as exc:
            results[lane_id] = str(exc)
    return results


class Station:
    def __init__(self, config: Config, clock: Clock = utc_now) -> None:
        self.config, self.clock = config, clock
        self.hw = Hardware(config)
        self.relays: dict[str, Relay] = {}
        self.store: Store | None = None
        self.lanes: dict[str, Lane] = {}
        self.sync: SyncService | None = None
        self.watchdog: Watchdog | None = None
        self.status: StatusServer | None = None
        self.fleet: FleetService | None = None
        self.webapp: Any = None  # edge.webapp.server.WebServer, imported only when enabled
        self.control: ControlServer | None = None
        self.guard: Guard | None = None
        # The loop guard's own buses: a second TCP connection per Modbus TCP relay, opened only
        # when the guard trips (see edge/daemon/guard.py for what it can do on RTU and GPIO).
        self.guard_hw = Hardware(config)
        self.storewatch: StoreWatch | None = None
        self.dailyverify: DailyVerify | None = None
        self.stopped_unrecorded = False  # the stop itself could not be journalled (store unavailable)
        self.lookup: LiveLookup | None = None

    def start(self) -> None:
        # Safe state before anything else: every valve off, or we do not start. The relays built
        # here are the ones the lanes drive: a GPIO line can be claimed only once.
        try:
            self.relays = all_relays(self.config, self.hw)
            failures = {lane: err for lane, err in drive_off(self.relays).items() if err}
        except DeviceError as exc:
            failures = {"(all)": str(exc)}
        if failures:
            self.hw.close()
            raise StartupError("cannot drive valves off: " + "; ".join(f"lane {k}: {v}" for k, v in failures.items()))
        log.info("station-edge %s starting: %d lanes, valves off", __version__, len(self.config.lanes))
        self.store = open_store(self.config)
        open_fills = self.store.open_fills()
        staff.register_config(self.store, self.config, self.clock())
        try:
            for lane_config in self.config.lanes:
                lane = Lane(
                    lane_config,
                    self.config,
                    self.store,
                    scale=build_scale(lane_config, self.hw),
                    relay=self.relays[lane_config.id],
                    signals=build_signals(lane_config, self.hw),
                    readers=build_readers(lane_config),
                    buttons=build_buttons(lane_config, self.hw),
                    clock=self.clock,
                )
                self.lanes[lane.id] = lane
        except DeviceError as exc:
            self.store.close()
            self.hw.close()
            raise StartupError(f"lane {lane_config.id}: {exc}") from exc
        # Valves are off: weigh what each crash left on the scales before any lane serves again.
        interrupted = [self._recover(row) for row in open_fills]
        for lane_id, held in self.store.held_lanes().items():
            if lane_id in self.lanes:
                self.lanes[lane_id].hold(Reason(held["cause"]), held)
        self._start_lookup()
        for lane in self.lanes.values():
            lane.start()
        self._start_guard()
        self._start_control()
        self._watch_store()
        if self.config.city is not None:
            self.sync = SyncService(self.config, self.clock)
            try:
                self.sync.start()
            except (OSError, ValueError) as exc:
                self.stop()
                raise StartupError(f"city: {exc}") from exc
        if self.config.fleet is not None:
            self._start_fleet()
        # Journalled once the lanes listen: from here on a scan is read, not flushed by a port open.
        self.store.journal(self.clock(), "daemon_start", {"version": __version__, "interrupted_fills": interrupted})
        self._start_status_page()
        self._start_webapp()
        self.dailyverify = DailyVerify(self.config, self.store, self.clock)
        self.dailyverify.start()
        log.info("station ready: lanes %s", ", ".join(self.lanes))
        interval = watchdog_interval_s()
        if interval is not None:
            # A control loop comes round at least once per poll period (well under a second); one
            # that has not for a whole ping interval is hung.
            self.watchdog = Watchdog(interval, lambda: self.stalled_lanes(max(interval, 1.0)))
            self.watchdog.start()
        # READY only now: every valve has been driven off and every lane is listening.
        notify(f"READY=1\nSTATUS=lanes {', '.join(self.lanes)} ready")

    def _start_fleet(self) -> None:
        try:
            self.fleet = FleetService(self.config, self.lanes, self.clock)
            self.fleet.start()
        except (OSError, ValueError, RuntimeError) as exc:
            self.fleet = None
            self.stop()
            raise StartupError(f"fleet: {exc}") from exc

    def _recover(self, row: dict[str, Any]) -> str:
        """Judge and close one fill a crash left open, from a stable reading of its scale."""
        assert self.store is not None
        fill = OpenFill(
            row["id"], row["lane"], row["status"], row["tare_kg"], row["target_net_kg"], row["start_gross_kg"],
            started=row["started_at"] is not None,
        )
        lane = self.lanes.get(fill.lane)
        if lane is None:
            gross, problem, limits = None, "lane no longer configured", Limits(0.0, 0.0, 0.0, 0.0)
        else:
            fill_config = lane.config.fill
            gross, problem = lane.weigh_stable(fill_config.reweigh_s)
            limits = Limits(fill_config.tolerance_kg, fill_config.tare_tolerance_kg, fill_config.no_flow_kg,
                            lane.config.scale.capacity_kg)
        outcome = reweigh(fill, gross, limits, self.clock(), problem)
        self.store.apply_record(fill.lane, Record(fill.fill_id, "aborted", outcome.fields, report=outcome.report), self.clock(), {})
        fields = outcome.fields
        log.warning(
            "fill %s on lane %s was interrupted (%s): %s, %s%s", fill.fill_id, fill.lane, fill.status,
            f"re-weighed {gross:.2f} kg gross, {fields['net_kg']:.2f} kg net" if "net_kg" in fields
            else f"not re-weighed ({fields['detail']['why']})",
            fields["outcome"], "" if outcome.report else "; no gas went in, not reported as a filling",
        )
        if outcome.hold:
            held = {"fill_id": fill.fill_id, "cause": fields["outcome"], "gross_kg": gross, "net_kg": fields["net_kg"]}
            self.store.journal(self.clock(), "lane_held", held, lane=fill.lane, fill_id=fill.fill_id)
        return fill.fill_id

    def _watch_store(self) -> None:
        assert self.store is not None
        self.storewatch = StoreWatch(self.store, self.clock, int(self.config.store.min_free_mb * 1e6))
        self.storewatch.start()

    def _start_lookup(self) -> None:
        """Lanes ask the city about a code the cache refuses, when the config has a city."""
        city = self.config.city
        if city is None or not city.lookup.enabled:
            return
        self.lookup = LiveLookup(city, self.config.store.path, self.config.tz, build_client, self.clock)
        for lane in self.lanes.values():
            lane.lookup = self.lookup

    def _start_status_page(self) -> None:
        page = self.config.status_page
        if not page.enabled:
            return
        try:
            self.status = StatusServer(self, page.host, page.port)
        except OSError as exc:
            # The page shows the interlock; it is not part of it. Filling goes on without it.
            log.error("status page not started on %s:%d: %s", page.host, page.port, exc)
            return
        self.status.start()

    def _start_webapp(self) -> None:
        if not self.config.webapp.enabled:
            return
        from ..webapp.server import WebServer  # the web framework is loaded only when the app is on

        check = self.config.checks.check_scale
        try:
            # The check table's scale shares its bus owner with the lanes' devices.
            self.webapp = WebServer(self.config, self.clock, scale_from(check, self.hw) if check else None)
        except (OSError, ValueError, DeviceError) as exc:
            # Like the status page, the app is beside the interlock: lanes fill without it.
            log.error("staff web app not started on %s:%d: %s", self.config.webapp.host, self.config.webapp.port, exc)
            return
        self.webapp.start()

    def _start_guard(self) -> None:
        own_paths = {
            lane.id: build_relay(lane, self.guard_hw)
            for lane in self.config.lanes
            if isinstance(lane.relay, ModbusCoilRelayConfig) and isinstance(self.config.buses[lane.relay.bus], TcpBusConfig)
        }
        guard = self.config.guard
        self.guard = Guard(self.lanes, own_paths, guard.stall_factor, guard.floor_s)
        self.guard.start()

    def _start_control(self) -> None:
        path = self.config.store.control_path
        try:
            self.control = ControlServer(path, self.handle_request)
        except OSError as exc:
            # Buttons still reset a lane; only the command line cannot reach this daemon.
            log.error("control socket not opened at %s: %s; `edge lane` cannot reach this daemon", path, exc)
            return
        self.control.start()

    def handle_request(self, request: dict[str, Any], uid: int | None) -> dict[str, Any]:
        """One request from the control socket: {"cmd": "reset", "lane", "by", "why"}."""
        cmd, lane_id, by = request.get("cmd"), request.get("lane"), request.get("by")
        why = str(request.get("why") or "")[:200]
        if cmd not in ("reset", "ack"):
            return {"ok": False, "message": f"unknown command {cmd!r}"}
        lane = self.lanes.get(lane_id) if isinstance(lane_id, str) else None
        if lane is None:
            return {"ok": False, "message": f"no lane {lane_id!r} (lanes: {', '.join(self.lanes)})"}
        assert self.store is not None
        if not isinstance(by, str) or not self.store.query("SELECT 1 FROM staff WHERE id = ? AND active = 1", [by]):
            return {"ok": False, "message": f"{by!r} is not a registered member of staff (edge staff list)"}
        source = f"command uid={uid}"
        return lane.request(Reset(by, why, source) if cmd == "reset" else Acknowledge(by, why, source))

    def stalled_lanes(self, limit_s: float) -> list[str]:
        return [lane.id for lane in self.lanes.values() if lane.loop_stalled(limit_s)]

    def stop(self) -> None:
        notify("STOPPING=1")
        if self.watchdog is not None:
            self.watchdog.stop()
            self.watchdog = None
        if self.status is not None:
            self.status.stop()
            self.status = None
        if self.webapp is not None:
            self.webapp.stop()
            self.webapp = None
        if self.control is not None:
            self.control.stop()
            self.control = None
        if self.guard is not None:
            self.guard.stop()
            self.guard = None
        for lane in self.lanes.values():
            lane.stop()  # each lane drives its own valve off as its loop ends
        drive_off(self.relays)  # and once more, for any lane whose loop died early
        if self.fleet is not None:
            self.fleet.stop()
            self.fleet = None
        if self.sync is not None:  # valves first; an upload in flight can wait its turn
            self.sync.stop()
            self.sync = None
        if self.dailyverify is not None:
            self.dailyverify.stop()
            self.dailyverify = None
        if self.storewatch is not None:
            self.storewatch.stop()
            self.storewatch = None
        if self.lookup is not None:
            self.lookup.close()
            self.lookup = None
        if self.store is not None:
            try:
                self.store.journal(self.clock(), "daemon_stop", {})
            except StoreUnavailable as exc:
                log.error("stop not journalled: %s", exc)
                self.stopped_unrecorded = True
            self.store.close()
            self.store = None
        self.hw.close()
        self.guard_hw.close()
        log.info("station stopped: valves off, store closed")
