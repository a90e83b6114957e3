"""Times in the city's zone: every date-time leaves as the station's (or the profile's) wall time
and comes back as UTC, including fills just after local midnight and across month and year ends."""

from __future__ import annotations

import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from edge.store.outbox import Outbox
from simulators.city import CitySim
from sync.mapping import from_city, parse_datetime, to_city
from sync.profile import Profile, profile_path
from sync.refresh import CURSOR, Refresher
from sync.uploader import RetryPolicy, Uploader

from .city_support import TZ, assert_local_times, client_for, finished_fills, open_station_store, registry

OTHER_CITY = str(Path(__file__).parent / "profiles" / "other-city.yaml")
# Fills whose UTC date is not their local date: 00:00:30 on 21 November, 1 December and
# 1 January in Shanghai, and one second before a local midnight (same date in both zones).
AWKWARD = [
    datetime(2026, 11, 20, 16, 0, 30, tzinfo=UTC),
    datetime(2026, 11, 30, 16, 0, 5, tzinfo=UTC),
    datetime(2026, 12, 31, 16, 0, 0, tzinfo=UTC),
    datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC),
]


def with_times(name: str, timezone: str | None = None) -> Profile:
    """A shipped or test profile that also sends the fill's start and end times."""
    raw: dict[str, Any] = yaml.safe_load(profile_path(name).read_text(encoding="utf-8"))
    raw["fields"]["filling"].update({"started_at": "fillStartTime", "finished_at": "fillEndTime"})
    if timezone:
        raw.setdefault("formats", {})["timezone"] = timezone
    return Profile.model_validate(raw)


def test_outgoing_times_are_the_zones_wall_time_and_incoming_ones_come_back_as_utc() -> None:
    profile = with_times("chongqing")
    body = to_city(profile, "filling", {"cylinder_id": "X", "started_at": "2026-11-30T16:00:05.000+00:00",
                                        "finished_at": "2026-11-30T16:00:45+00:00", "filling_date": "2026-12-01"}, TZ)
    assert body["fillStartTime"] == "2026-12-01 00:00:05" and body["fillEndTime"] == "2026-12-01 00:00:45"
    assert body["fillDate"] == "2026-12-01"
    # A trace node carries the station's offset already; the same instant leaves the same way.
    assert to_city(profile, "trace", {"time": "2026-12-01T00:00:05+08:00"}, TZ)["traceTime"] == "2026-12-01 00:00:05"
    # Stored instants without an offset are UTC, as the store writes them.
    assert to_city(profile, "trace", {"time": "2026-11-30T16:00:05"}, TZ)["traceTime"] == "2026-12-01 00:00:05"
    back = from_city(profile, "cylinder", {"cylinderId": "X", "updateTime": "2026-12-01 00:00:05"}, TZ)
    assert back["updated_at"] == "2026-11-30T16:00:05+00:00"
    assert parse_datetime(profile, "2027-01-01 07:30:00", TZ) == datetime(2026, 12, 31, 23, 30, tzinfo=UTC)


def test_a_zone_the_profile_names_wins_over_the_stations() -> None:
    profile = with_times("chongqing", timezone="Asia/Tokyo")
    client_zone = CitySim(profile).tz
    assert client_zone == ZoneInfo("Asia/Tokyo")
    body = to_city(profile, "filling", {"started_at": "2026-11-30T15:30:00+00:00"}, client_zone)
    assert body["fillStartTime"] == "2026-12-01 00:30:00"
    with pytest.raises(ValueError, match="IANA"):
        Profile.model_validate({**profile.model_dump(), "formats": {"timezone": "Mars/Olympus"}})


@pytest.mark.parametrize("profile", [with_times("chongqing"), with_times(OTHER_CITY)], ids=["chongqing", "other-city"])
def test_fills_after_local_midnight_and_at_month_ends_reach_the_city_in_local_time(
    profile: Profile, city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path
) -> None:
    rows = registry(10)
    sim = CitySim(profile, rows, tls=city_tls[0]).start()
    store = open_station_store(tmp_path / "s.db")
    try:
        for n, moment in enumerate(AWKWARD):
            finished_fills(store, [rows[n]["id"]], start=moment - timedelta(seconds=n), first=n)
        client = client_for(sim, city_tls[1])
        result = Uploader(client, Outbox(store), RetryPolicy(initial_s=0.01, max_s=0.05)).drain(threading.Event())
        client.close()
        assert (result.sent, result.dead) == (8, 0)
        # 4 fills x (filling date, start, end) + 4 trace times, each against the local clock.
        assert assert_local_times(sim, store) == 16
        filling = {r[profile.fields["filling"]["cylinder_id"]]: r for r in sim.records("filling")}
        fmt = profile.formats
        first = filling[rows[0]["id"]]
        assert first[profile.fields["filling"]["filling_date"]] == datetime(2026, 11, 21).strftime(fmt.date)
        assert first["fillStartTime"] == datetime(2026, 11, 21, 0, 0, 30).strftime(fmt.datetime)
        new_year = filling[rows[2]["id"]]
        assert new_year[profile.fields["filling"]["filling_date"]] == datetime(2027, 1, 1).strftime(fmt.date)
        eve = filling[rows[3]["id"]]
        assert eve["fillStartTime"] == datetime(2026, 12, 31, 23, 59, 59).strftime(fmt.datetime)
    finally:
        store.close()
        sim.stop()


def test_the_incremental_cursor_is_sent_as_the_citys_wall_time(city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path) -> None:
    """Sent as UTC, an 8-hour-early cursor would re-read the change made three hours ago."""
    rows = registry(30)
    sim = CitySim(Profile.model_validate(yaml.safe_load(profile_path("chongqing").read_text(encoding="utf-8"))), [],
                  tls=city_tls[0])
    now = datetime.now(UTC)
    for row in rows:
        sim.put_cylinder(row, when=now - timedelta(days=2))
    sim.put_cylinder({**rows[3], "unit_no": "changed three hours ago"}, when=now - timedelta(hours=3))
    sim.start()
    store = open_station_store(tmp_path / "s.db")
    client = client_for(sim, city_tls[1])
    try:
        Refresher(client, store, TZ).refresh(full=True)
        cursor = datetime.fromisoformat(store.get_meta(CURSOR) or "")
        assert cursor.tzinfo is not None and abs((cursor - (now - timedelta(minutes=5))).total_seconds()) < 60
        sim.put_cylinder({**rows[5], "status": "停用"})
        incremental = Refresher(client, store, TZ).refresh()
        assert (incremental.mode, incremental.cylinders) == ("incremental", 1)
    finally:
        client.close()
        store.close()
        sim.stop()
