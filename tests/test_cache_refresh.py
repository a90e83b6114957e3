"""Cache refresh from the city simulator over HTTPS: full and incremental pulls, page by page."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.store import Store
from interlock.codes import Identifier, Kind
from interlock.reasons import Reason
from interlock.rules import Policy, evaluate
from simulators.city import CitySim
from sync.client import Retryable
from sync.profile import load_profile
from sync.refresh import CURSOR, Refresher

from .city_support import OWNER, TZ, client_for, open_station_store, registry

PROFILES = ["chongqing", str(Path(__file__).parent / "profiles" / "other-city.yaml")]
YESTERDAY = datetime.now(UTC) - timedelta(days=1)


def city_with(profile: str, tls: tuple[ssl.SSLContext, Path], count: int) -> CitySim:
    sim = CitySim(load_profile(profile), [], tls=tls[0])
    for row in registry(count):
        sim.put_cylinder(row, when=YESTERDAY)  # registered long before today's pulls
    return sim.start()


def policy() -> Policy:
    return Policy(owner_unit=OWNER, medium="G13", tz=TZ, max_cache_age_s=72 * 3600)


def decide(store: Store, info_code: str) -> tuple[Reason, ...]:
    now = datetime.now(UTC)
    identifier = Identifier(Kind.INFO_CODE, info_code)
    return evaluate(store.find_cylinder(identifier), policy(), now, store.cache_age_s(now), identifier).reasons


@pytest.mark.parametrize("profile", PROFILES)
def test_full_then_incremental_pull_and_a_cylinder_scrapped_upstream_stops_being_fillable(
    profile: str, city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path
) -> None:
    sim = city_with(profile, city_tls, 1200)
    store = open_station_store(tmp_path / "s.db")
    client = client_for(sim, city_tls[1])
    try:
        rows = registry(1200)
        fillable = next(r for r in rows if r["status"] == "在用" and r["owner_unit"] == OWNER and r["registration_no"]
                        and r["medium"] == "G13" and r["next_inspection"] > "2027")
        assert decide(store, fillable["info_code"]) == (Reason.CACHE_STALE, Reason.UNKNOWN_CYLINDER)
        seen: list[tuple[int, int | None]] = []
        full = Refresher(client, store, TZ, page_size=500).refresh(progress=lambda n, total: seen.append((n, total)))
        page = min(500, sim.profile.query.max_page_size)
        assert full.mode == "full" and full.cylinders == 1200 and full.pages == -(-1200 // page)
        assert seen[-1] == (1200, 1200)
        assert store.query("SELECT count(*) AS n FROM cylinders")[0]["n"] == 1200
        assert decide(store, fillable["info_code"]) == ()
        cached = store.query("SELECT status, medium, next_inspection FROM cylinders WHERE id = ?", [fillable["id"]])[0]
        assert cached == {"status": "在用", "medium": "G13", "next_inspection": fillable["next_inspection"]}

        sim.put_cylinder({**fillable, "status": "报废"})  # scrapped upstream today
        incremental = Refresher(client, store, TZ, page_size=500).refresh()
        assert incremental.mode == "incremental" and incremental.cylinders == 1
        assert decide(store, fillable["info_code"]) == (Reason.SCRAPPED,)
    finally:
        client.close()
        store.close()
        sim.stop()


def test_a_pull_cut_short_keeps_whole_pages_and_leaves_the_age_and_cursor_alone(
    city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path
) -> None:
    sim = city_with("chongqing", city_tls, 1200)
    store = open_station_store(tmp_path / "s.db")
    client = client_for(sim, city_tls[1])
    try:
        with pytest.raises(Retryable, match="HTTP 503"):
            Refresher(client, store, TZ, page_size=500).refresh(progress=lambda n, total: sim.inject("http_5xx"))
        assert store.query("SELECT count(*) AS n FROM cylinders")[0]["n"] == 500
        assert store.cache_refreshed_at() is None and store.get_meta(CURSOR) is None
        # The next attempt is a full pull again, and completes.
        assert Refresher(client, store, TZ, page_size=500).refresh().mode == "full"
        assert store.query("SELECT count(*) AS n FROM cylinders")[0]["n"] == 1200
    finally:
        client.close()
        store.close()
        sim.stop()


def test_station_fields_survive_a_refresh(city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path) -> None:
    """Tare, model and RFID come from the station's own ledger; the city's records do not carry them."""
    sim = city_with("chongqing", city_tls, 50)
    store = open_station_store(tmp_path / "s.db")
    client = client_for(sim, city_tls[1])
    try:
        row = registry(50)[7]
        store.upsert_cylinders([row], datetime.now(UTC))
        Refresher(client, store, TZ).refresh()
        cached = store.query("SELECT tare_kg, model, rfid FROM cylinders WHERE id = ?", [row["id"]])[0]
        assert cached == {"tare_kg": row["tare_kg"], "model": row["model"], "rfid": row["rfid"]}
        assert store.find_cylinder(Identifier(Kind.RFID, row["rfid"])) is not None
    finally:
        client.close()
        store.close()
        sim.stop()
