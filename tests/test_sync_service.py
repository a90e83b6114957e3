"""The daemon's sync threads: the refresher pulls on its interval and the uploader drains, while
the lanes' store stays usable."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from edge.config import load_config
from edge.daemon.city import SyncService
from edge.daemon.station import open_store
from edge.store.outbox import Outbox
from simulators.city import CitySim
from sync.profile import load_profile
from sync.refresh import LAST_FULL

from .city_support import assert_local_times, finished_fills, registry
from .conftest import write_config
from .test_crash_restart import wait_for


def test_refresher_pulls_on_its_interval_and_the_uploader_drains(city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path) -> None:
    rows = registry(60)
    city = CitySim(load_profile("chongqing"), rows, tls=city_tls[0]).start()

    def with_city(raw: dict[str, Any]) -> None:
        del raw["simulators"]
        raw["city"] = {"profile": "chongqing", "base_url": city.base_url, "ca_bundle": str(city_tls[1]),
                       "username": "station", "password": "secret",
                       "upload": {"idle_s": 0.05, "max_rate_per_s": 200},
                       "refresh": {"interval_s": 0.2, "page_size": 25}}

    config = load_config(write_config(tmp_path, with_city))
    store = open_store(config)
    finished_fills(store, [rows[0]["id"], rows[1]["id"]])
    service = SyncService(config)
    service.start()
    try:
        wait_for(lambda: store.get_meta(LAST_FULL) is not None, what="the first (full) pull")
        assert store.query("SELECT count(*) AS n FROM cylinders")[0]["n"] == 60
        wait_for(lambda: Outbox(store).pending_count() == 0, what="the outbox to drain")
        assert [r["requestId"] for r in city.records()] == ["fill-000000", "fill-000001"]

        city.put_cylinder({**rows[5], "status": "停用"})
        wait_for(lambda: store.query("SELECT status FROM cylinders WHERE id = ?", [rows[5]["id"]])[0]["status"] == "停用",
                 what="an incremental pull to bring the suspension")
        finished_fills(store, [rows[2]["id"]], first=2)
        wait_for(lambda: len(city.records()) == 3, what="a fill recorded while running to be delivered")
        wait_for(lambda: len(city.records("trace")) == 3, what="its trace node")
        assert assert_local_times(city, store) == 6
    finally:
        service.stop()
        store.close()
        city.stop()
    assert all(not t.is_alive() for t in service.threads)
