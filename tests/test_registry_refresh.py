"""A refresh ends with the registry, exactly: against a city that caps its pages, whose rows come and
go while the station pages through them, and that removes cylinders between pulls."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.daemon.city import build_client
from edge.store import Store
from interlock.codes import Identifier, Kind
from interlock.fill import Abort
from interlock.reasons import Reason
from simulators import city_registry
from simulators.city import CitySim
from simulators.dataset import generate
from sync.client import CityClient, Retryable
from sync.mapping import from_city
from sync.profile import Profile, profile_path
from sync.refresh import CURSOR, LAST_FULL, RefreshIncomplete, Refresher

from .city_support import OWNER, REGION, TZ, client_for, open_station_store, registry
from .conftest import SimStation
from .test_cache_refresh import decide

LONG_AGO = datetime.now(UTC) - timedelta(days=1)


def profile(**removal: Any) -> Profile:
    raw = yaml.safe_load(profile_path("chongqing").read_text(encoding="utf-8"))
    raw["query"]["removal"] = removal
    return Profile.model_validate(raw)


def newcomers(count: int) -> list[dict[str, Any]]:
    """Cylinders registered while the station pulls: ids and codes unlike the seeded ones."""
    rows = [g.row for g in generate(count, OWNER, REGION, datetime.now(UTC).date(), seed=7)]
    for n, row in enumerate(rows):
        row.update(id=f"NEW{n:09d}", info_code=f"NEW{n:08d}", qr_content=f"https://x.example/?code=NEW{n:08d}")
    return rows


class City:
    def __init__(self, sim: CitySim, store: Store, client: CityClient) -> None:
        self.sim, self.store, self.client = sim, store, client

    def refresher(self, page_size: int = 100, attempts: int = 3) -> Refresher:
        return Refresher(self.client, self.store, TZ, page_size=page_size, attempts=attempts)

    def assert_cache_is_the_registry(self) -> None:
        listed = {cid: from_city(self.sim.profile, "cylinder", row, self.sim.tz) for cid, row in self.sim.registry.items()
                  if cid not in self.sim.registry_behaviour.removed}
        cached = {r["id"]: r for r in self.store.query(
            "SELECT c.id, c.status, c.next_inspection, c.info_code FROM cylinders c"
            " WHERE c.id NOT IN (SELECT cylinder_id FROM removals)")}
        assert set(cached) == set(listed), (sorted(set(listed) - set(cached))[:5], sorted(set(cached) - set(listed))[:5])
        for cid, row in listed.items():
            assert {k: cached[cid][k] for k in ("status", "next_inspection", "info_code")} == {
                k: row.get(k) for k in ("status", "next_inspection", "info_code")}, cid

    def removed(self) -> set[str]:
        return {r["cylinder_id"] for r in self.store.query("SELECT cylinder_id FROM removals")}


@pytest.fixture
def make_city(city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path) -> Iterator[Any]:
    opened: list[City] = []

    def make(count: int = 600, prof: Profile | None = None, style: str = "vanish") -> City:
        sim = CitySim(prof or profile(), [], tls=city_tls[0])
        sim.registry_behaviour.removal_style = style
        for row in registry(count):
            sim.put_cylinder(row, when=LONG_AGO)
        sim.start()
        city = City(sim, open_station_store(tmp_path / f"s{len(opened)}.db"), client_for(sim, city_tls[1]))
        opened.append(city)
        return city

    yield make
    for city in opened:
        city.client.close()
        city.store.close()
        city.sim.stop()


def test_a_city_serving_fewer_rows_than_asked_is_read_to_its_total(make_city: Any) -> None:
    city = make_city(1000)
    city.sim.registry_behaviour.page_cap = 70  # documented 500, serves 70
    result = city.refresher(page_size=500).refresh(full=True)
    assert (result.cylinders, result.pages, result.attempts) == (1000, -(-1000 // 70), 1)
    city.assert_cache_is_the_registry()


def test_rows_added_and_removed_between_pages_are_pulled_again_until_the_cache_is_the_registry(make_city: Any) -> None:
    city = make_city(600)
    first_page = [cid for _, cid in sorted((w, c) for c, w in city.sim._changed.items())][:100]
    # Between pages 2 and 3: two rows already read leave, two new ones join. The total is
    # unchanged, and two unread rows slide back onto page 2, which the station has read.
    city_registry.during_pull(city.sim, after_page=2, add=newcomers(2), remove=first_page[10:12])
    result = city.refresher().refresh(full=True)
    assert result.attempts == 2
    city.assert_cache_is_the_registry()
    assert city.removed() == set(first_page[10:12])
    # And rows that only leave, and only join, on later pages of the next pull.
    city_registry.during_pull(city.sim, after_page=3, remove=first_page[20:25])
    city_registry.during_pull(city.sim, after_page=4, add=newcomers(9)[2:])
    assert city.refresher().refresh(full=True).attempts == 2
    city.assert_cache_is_the_registry()
    assert city.removed() == set(first_page[10:12]) | set(first_page[20:25])


def test_a_registry_that_never_holds_still_is_an_incomplete_pull_that_sweeps_nothing(make_city: Any) -> None:
    city = make_city(300)
    city.refresher().refresh(full=True)
    ids = list(city.sim.registry)
    city.sim.remove_cylinder(ids[0])
    cursor = city.store.get_meta(CURSOR)
    for n in range(3):
        city_registry.during_pull(city.sim, after_page=2, add=newcomers(3)[n:n + 1])
    with pytest.raises(RefreshIncomplete, match="3 passes"):
        city.refresher().refresh(full=True)
    assert city.removed() == set() and city.store.get_meta(CURSOR) == cursor


def test_a_failed_full_pull_never_sweeps(make_city: Any) -> None:
    city = make_city(300)
    city.refresher().refresh(full=True)
    gone = list(city.sim.registry)[-5:]
    for cid in gone:
        city.sim.remove_cylinder(cid)
    with pytest.raises(Retryable):
        city.refresher().refresh(full=True, progress=lambda n, total: city.sim.inject("http_5xx"))
    assert city.removed() == set()
    assert city.refresher().refresh(full=True).removed == 5
    assert city.removed() == set(gone)
    city.assert_cache_is_the_registry()


@pytest.mark.parametrize(
    ("removal", "style"),
    [({"status_words": ["注销"]}, "status"), ({"deleted_field": "delFlag"}, "flag"),
     ({"removed_since": {"path": "/api/v1/cylinder/removed", "since": "deleteTimeStart",
                         "records": "page.rows", "total": "page.total"}}, "vanish")],
    ids=["status-word", "deleted-flag", "removed-since-query"],
)
def test_incremental_pulls_apply_the_removals_the_profile_can_express(make_city: Any, removal: dict[str, Any],
                                                                       style: str) -> None:
    city = make_city(300, profile(**removal), style)
    city.refresher().refresh(full=True)
    rows = registry(300)
    fillable = next(r for r in rows if r["status"] == "在用" and r["owner_unit"] == OWNER and r["registration_no"]
                    and r["medium"] == "G13" and r["next_inspection"] > "2027")
    assert decide(city.store, fillable["info_code"]) == ()
    city.sim.remove_cylinder(fillable["id"])
    result = city.refresher().refresh()
    assert result.mode == "incremental" and result.removed == 1
    assert Reason.NOT_IN_REGISTRY in decide(city.store, fillable["info_code"])
    city.assert_cache_is_the_registry()
    # Listed again (re-registered): the removal ends with the next pull that lists it.
    city.sim.put_cylinder(fillable)
    city.refresher().refresh()
    assert decide(city.store, fillable["info_code"]) == () and city.removed() == set()


def test_a_removed_cylinder_is_refused_at_the_lane(station: SimStation) -> None:
    """Through the simulated station: the city removes a cylinder, a full pull sweeps it, and the
    operator's scan is refused with its own reason."""
    assert station.sim.city is not None and station.config.city is not None and station.station.store is not None
    lanes_store = station.station.store
    station.wait_for(lambda: lanes_store.get_meta(LAST_FULL) is not None, "the daemon's first full pull", timeout=30)
    cylinder = station.cylinder("ok")
    assert station.scan("A", cylinder.row["qr_content"])["accepted"]
    station.station.lanes["A"].submit(Abort())
    station.sim.city.remove_cylinder(cylinder.row["id"])
    store = Store(station.config.store.path, durable=False)
    client = build_client(station.config.city, station.config.tz)
    try:
        result = Refresher(client, store, station.config.tz).refresh(full=True)
        assert result.removed == 1
        found = store.find_cylinder(Identifier(Kind.QR_URL, cylinder.row["qr_content"]))
        assert found is not None and found.removed_at is not None
    finally:
        client.close()
        store.close()
    verdict = station.scan("A", cylinder.row["qr_content"])
    assert not verdict["accepted"] and verdict["reasons"] == [Reason.NOT_IN_REGISTRY]
    assert not station.modbus("A").valve_on()
