"""Shared pieces for the city-sync tests: a TLS city simulator, a client that trusts it, and
finished fills written through the store's real API."""

from __future__ import annotations

import ssl
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge.store import Store
from interlock.fill import Record
from simulators.city import CitySim
from simulators.dataset import generate
from sync.client import CityClient, Credentials, Tls
from sync.mapping import DATE_FIELDS, DATETIME_FIELDS
from sync.profile import Profile
from sync.records import Station, outbox_entries

OWNER = "重庆渝北燃气有限公司"
REGION = "500112"
TZ = ZoneInfo("Asia/Shanghai")
STATION = Station(OWNER, "CQYB-001", REGION, TZ)
START = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


def registry(count: int = 60) -> list[dict[str, Any]]:
    return [g.row for g in generate(count, OWNER, REGION, date(2026, 11, 20))]


def open_station_store(path: Path) -> Store:
    return Store(path, outbox_entries=lambda fill: outbox_entries(fill, STATION))


def client_for(sim: CitySim, ca: Path, timeout_s: float = 0.5, password: str = "secret") -> CityClient:
    return CityClient(sim.profile, sim.base_url, Credentials("station", password), Tls(str(ca)), (timeout_s, timeout_s),
                      tz=TZ)


def start_sim(
    profile: Profile, tls: tuple[ssl.SSLContext, Path], rows: list[dict[str, Any]] | None = None, **kwargs: Any
) -> CitySim:
    return CitySim(profile, registry() if rows is None else rows, tls=tls[0], **kwargs).start()


def finished_fills(store: Store, cylinder_ids: list[str], start: datetime = START, operator: str = "张三",
                   first: int = 0) -> list[str]:
    """One completed fill per id, in order, committed in one transaction; returns the fill ids."""
    ids = []
    with store.transaction():
        for n, cylinder in enumerate(cylinder_ids, start=first):
            fill_id = f"fill-{n:06d}"
            at = start + timedelta(seconds=n)
            context = {"operator": operator, "checker": "李四", "medium": "G13"}
            store.apply_record("A", Record(fill_id, "authorised", {"cylinder_id": cylinder, "authorised_at": at}), at, context)
            store.apply_record("A", Record(fill_id, "complete", {"started_at": at, "finished_at": at + timedelta(seconds=40),
                                                                  "net_kg": 14.5, "outcome": "ok"}), at, {})
            ids.append(fill_id)
    return ids


def assert_local_times(sim: CitySim, store: Store, station_tz: tzinfo = TZ) -> int:
    """Check every date and time field the city accepted against the fill it came from: dates in
    the station's calendar, date-times as wall times in the city's zone. Returns how many fields
    were checked, so a caller can tell the check was not empty."""
    checked = 0
    formats = sim.profile.formats
    for key, (kind, index) in list(sim.by_key.items()):
        if kind not in ("filling", "trace"):
            continue
        body = sim.accepted[kind][index - 1]
        fill = store.query("SELECT started_at, finished_at FROM fills WHERE id = ?", [key.split(":")[0]])[0]
        instants = {name: datetime.fromisoformat(fill[name]) for name in ("started_at", "finished_at")}
        instants["time"] = instants["started_at"]
        for ours, theirs in sim.profile.fields[kind].items():
            if ours in DATE_FIELDS:
                expected = instants["started_at"].astimezone(station_tz).strftime(formats.date)
            elif ours in DATETIME_FIELDS:
                expected = instants[ours].astimezone(sim.tz).strftime(formats.datetime)
            else:
                continue
            assert body.get(theirs) == expected, f"{kind} {key} {theirs}: sent {body.get(theirs)!r}, local time is {expected!r}"
            checked += 1
    return checked
