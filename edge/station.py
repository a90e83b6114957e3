"""The daemon's assembly: store, relays driven off first, lanes side by side, a clean stop."""

from __future__ import annotations

import logging

from drivers.base import DeviceError
from sync.records import Station as SyncStation
from sync.records import filling_record

from . import __version__
from .assembly import Links, all_relays, build_readers, build_relay, build_scale, build_signals
from .config import Config
from .lane import Clock, Lane, utc_now
from .store import Store

log = logging.getLogger(__name__)


class StartupError(Exception):
    pass


def open_store(config: Config) -> Store:
    station = SyncStation(config.station.owner_unit, config.station.unit_code, config.station.region, config.tz)
    return Store(config.store.path, outbox_payload=lambda fill: filling_record(fill, station))


def valves_off(config: Config, links: Links | None = None) -> dict[str, str | None]:
    """Drive every configured valve relay off. Returns lane -> error (None when it went off)."""
    own = links is None
    links = links or Links()
    results: dict[str, str | None] = {}
    try:
        for lane_id, relay in all_relays(config, links).items():
            try:
                relay.off()
                results[lane_id] = None
            except DeviceError as exc:
                results[lane_id] = str(exc)
    finally:
        if own:
            links.close()
    return results


class Station:
    def __init__(self, config: Config, clock: Clock = utc_now) -> None:
        self.config, self.clock = config, clock
        self.links = Links()
        self.store: Store | None = None
        self.lanes: dict[str, Lane] = {}

    def start(self) -> None:
        # Safe state before anything else: every valve off, or we do not start.
        failures = {lane: err for lane, err in valves_off(self.config, self.links).items() if err}
        if failures:
            self.links.close()
            raise StartupError("cannot drive valves off: " + "; ".join(f"lane {k}: {v}" for k, v in failures.items()))
        log.info("station-edge %s starting: %d lanes, valves off", __version__, len(self.config.lanes))
        self.store = open_store(self.config)
        now = self.clock()
        interrupted = self.store.recover_interrupted(now)
        self.store.journal(now, "daemon_start", {"version": __version__, "interrupted_fills": interrupted})
        for lane_config in self.config.lanes:
            lane = Lane(
                lane_config,
                self.config,
                self.store,
                scale=build_scale(lane_config, self.links),
                relay=build_relay(lane_config, self.links),
                signals=build_signals(lane_config, self.links),
                readers=build_readers(lane_config),
                clock=self.clock,
            )
            self.lanes[lane.id] = lane
        for lane in self.lanes.values():
            lane.start()
        log.info("station ready: lanes %s", ", ".join(self.lanes))

    def stop(self) -> None:
        for lane in self.lanes.values():
            lane.stop()  # each lane drives its own valve off as its loop ends
        valves_off(self.config, self.links)  # and once more, for any lane whose loop died early
        if self.store is not None:
            self.store.journal(self.clock(), "daemon_stop", {})
            self.store.close()
            self.store = None
        self.links.close()
        log.info("station stopped: valves off, store closed")
