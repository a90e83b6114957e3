"""The daemon's assembly: store, relays driven off first, lanes side by side, a clean stop."""

from __future__ import annotations

import logging

from drivers.base import DeviceError, Relay
from sync.records import Station as SyncStation
from sync.records import outbox_entries

from . import __version__, staff
from .assembly import Hardware, all_relays, build_buttons, build_readers, build_scale, build_signals
from .city import SyncService
from .config import Config
from .fleet import FleetService
from .lane import Clock, Lane, utc_now
from .lookup import LiveLookup
from .notify import Watchdog, notify, watchdog_interval_s
from .store import Store
from .store.fleet import journal_sink
from .web import StatusServer

log = logging.getLogger(__name__)


class StartupError(Exception):
    pass


def open_store(config: Config) -> Store:
    station = SyncStation(config.station.owner_unit, config.station.unit_code, config.station.region, config.tz)
    sink = None
    if config.fleet is not None:  # events owed to the company are written with their records
        sink = journal_sink(config.fleet.company, config.fleet.station_id, config.tz)
    return Store(config.store.path, outbox_entries=lambda fill: outbox_entries(fill, station), journal_sink=sink)


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
        now = self.clock()
        interrupted = self.store.recover_interrupted(now)
        staff.register_config(self.store, self.config, now)
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
        self._start_lookup()
        for lane in self.lanes.values():
            lane.start()
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

    def _start_lookup(self) -> None:
        """Lanes ask the city about a code the cache refuses, when the config has a city."""
        city = self.config.city
        if city is None or not city.lookup.enabled:
            return
        self.lookup = LiveLookup(city, self.config.store.path, self.config.tz, self.clock)
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
        for lane in self.lanes.values():
            lane.stop()  # each lane drives its own valve off as its loop ends
        drive_off(self.relays)  # and once more, for any lane whose loop died early
        if self.fleet is not None:
            self.fleet.stop()
            self.fleet = None
        if self.sync is not None:  # valves first; an upload in flight can wait its turn
            self.sync.stop()
            self.sync = None
        if self.lookup is not None:
            self.lookup.close()
            self.lookup = None
        if self.store is not None:
            self.store.journal(self.clock(), "daemon_stop", {})
            self.store.close()
            self.store = None
        self.hw.close()
        log.info("station stopped: valves off, store closed")
