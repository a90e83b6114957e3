"""A live lookup on a cache miss, through the simulated station: real scans on a pty, the city
simulator over HTTPS, the valve on Modbus."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from edge.lanes.lookup import Source
from edge.store import journal
from interlock.reasons import Reason
from simulators.dataset import QR_BASE
from sync.refresh import LAST_FULL

from .conftest import SimStation


def quick_city(raw: dict[str, Any]) -> None:
    # Ask about every refused record however fresh, so a re-inspection made a minute ago counts.
    raw["city"]["lookup"] = {"deadline_s": 1.5, "max_record_age_s": 0}


@pytest.fixture
def station(make_station: Callable[..., SimStation]) -> SimStation:
    s = make_station(quick_city)
    assert s.station.store is not None and s.sim.city is not None
    # The daemon's first (full) pull; after it, the city changes only what each test says.
    s.wait_for(lambda: s.station.store.get_meta(LAST_FULL) is not None, "the first full pull", timeout=30)
    return s


def journalled_source(s: SimStation, fill_or_code: str) -> str:
    assert s.station.store is not None
    rows = s.station.store.query("SELECT data FROM journal WHERE kind = 'scan' ORDER BY seq DESC LIMIT 1")
    data = journal.load(rows[0]["data"])
    assert fill_or_code in (data["code"], data["fill_id"])
    return str(data["source"])


def retag(s: SimStation, skip: int = 0) -> tuple[dict[str, Any], str]:
    """A cylinder the cache knows, given a new QR tag at the city this morning."""
    assert s.sim.city is not None
    row = dict(s.cylinder("ok", skip=skip).row)
    code = f"RT{skip:04d}{row['id'][-8:]}"
    row.update(info_code=code, qr_content=QR_BASE + code)
    s.sim.city.put_cylinder(row)
    return row, row["qr_content"]


def test_a_code_the_cache_does_not_know_but_the_city_does_fills(station: SimStation) -> None:
    row, qr = retag(station)
    verdict = station.scan("A", qr)
    assert verdict["accepted"], verdict
    assert verdict["source"] == Source.CITY and verdict["cylinder_id"] == row["id"]
    station.modbus("A").model.place(row["tare_kg"] + 0.1)
    station.wait_valve("A", True)
    end = station.wait("A", "fill_end", timeout=30)
    assert end["status"] == "complete" and end["outcome"] == "ok"
    assert journalled_source(station, verdict["fill_id"]) == Source.CITY
    # The cache learnt it: the next scan of the new tag needs no lookup.
    station.modbus("A").model.remove()
    time.sleep(0.5)
    again = station.scan("A", qr)
    assert again["accepted"] and again["source"] == Source.CACHE


def test_a_reinspection_the_cache_has_not_seen_yet_fills(station: SimStation) -> None:
    assert station.sim.city is not None
    overdue = dict(station.cylinder(Reason.INSPECTION_OVERDUE).row)
    station.sim.city.put_cylinder({**overdue, "next_inspection": "2031-06", "last_inspection": "2026-11-21"})
    verdict = station.scan("A", overdue["qr_content"])
    assert verdict["accepted"] and verdict["source"] == Source.CITY, verdict


def test_with_the_city_stalled_the_scan_is_refused_within_the_deadline_and_other_lanes_go_on(
    station: SimStation,
) -> None:
    assert station.sim.city is not None
    _, qr = retag(station)
    station.sim.city.stall_s = 6.0
    station.sim.city.inject("stall", 4)
    began = time.monotonic()
    station.sim.scanners["A"].scan(qr)
    time.sleep(0.2)  # lane A is waiting for the city now
    fillable = station.cylinder("ok", skip=3).row["qr_content"]
    other = station.scan("B", fillable)
    other_at = time.monotonic() - began
    refused = station.wait("A", "verdict")
    refused_at = time.monotonic() - began
    assert not refused["accepted"] and refused["reasons"] == [Reason.UNKNOWN_CYLINDER]
    assert refused["source"] == Source.TIMEOUT
    # The deadline is 1.5 s: waited for it, and not (much) longer. Lane B never waited on A.
    assert 1.4 <= refused_at < 2.5, refused_at
    assert other["accepted"] and other["source"] == Source.CACHE and other_at < refused_at
    assert not station.modbus("A").valve_on()


def test_offline_the_scan_is_decided_from_the_cache_at_once(station: SimStation) -> None:
    assert station.sim.city is not None
    _, qr = retag(station)
    station.sim.city.refuse(True)
    began = time.monotonic()
    verdict = station.scan("A", qr)
    assert time.monotonic() - began < 1.4
    assert not verdict["accepted"] and verdict["reasons"] == [Reason.UNKNOWN_CYLINDER]
    assert verdict["source"] == Source.OFFLINE
    station.sim.city.refuse(False)


def test_a_code_the_city_does_not_know_either_is_refused_and_says_so(station: SimStation) -> None:
    verdict = station.scan("A", QR_BASE + "NOSUCHCODE01")
    assert not verdict["accepted"] and verdict["reasons"] == [Reason.UNKNOWN_CYLINDER]
    assert verdict["source"] == Source.CITY_UNKNOWN


def test_a_refusal_the_record_does_not_cause_is_not_looked_up(station: SimStation) -> None:
    blocked = station.cylinder(Reason.BLOCKED_LOCALLY).row
    verdict = station.scan("A", blocked["qr_content"])
    assert Reason.BLOCKED_LOCALLY in verdict["reasons"] and verdict["source"] == Source.CACHE
