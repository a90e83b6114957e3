"""The station's store as the daemon and the manager's commands open it, with the outbox records
each finished fill owes the city. Light to import: the commands load it at start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sync.records import Station as SyncStation
from sync.records import outbox_entries

from .database import Store

if TYPE_CHECKING:
    from ..config import Config


def open_store(config: Config, existing: bool = False, readonly: bool = False) -> Store:
    """existing=True: refuse a missing store or one of another schema version instead of creating or
    migrating it (the manager's commands). readonly=True: also write nothing (the commands that only
    read, which a member of the service user's group may run)."""
    station = SyncStation(config.station.owner_unit, config.station.unit_code, config.station.region, config.tz)
    sink = None
    if config.fleet is not None:  # events owed to the company are written with their records
        from .fleet import journal_sink

        sink = journal_sink(config.fleet.company, config.fleet.station_id, config.tz)
    return Store(config.store.path, outbox_entries=lambda fill: outbox_entries(fill, station), journal_sink=sink,
                 existing=existing, readonly=readonly)
