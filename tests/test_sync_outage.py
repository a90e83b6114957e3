"""Through any outage: every finished fill reaches the city exactly once, in order per cylinder.

The decisive test: 10,000 fills are recorded while the city refuses connections; then it comes
back misbehaving (5xx, 429, stalls past the timeout, answers lost after acceptance, expired
tokens). At the end the city holds exactly one filling record and one trace node per fill, each
cylinder's records in the order they happened, and the outbox holds only the rightly rejected.
The second test restarts a real daemon mid-drain (SIGKILL) and checks nothing is lost or doubled.
"""

from __future__ import annotations

import json
import signal
import ssl
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from edge.config import load_config
from edge.daemon.station import open_store
from edge.store import Store
from edge.store.outbox import Outbox
from simulators.city import CitySim
from sync.profile import load_profile
from sync.uploader import RetryPolicy, Uploader

from .city_support import START, assert_local_times, client_for, finished_fills, open_station_store, registry
from .outbox_support import delivered
from .test_crash_restart import simulated_hardware, start_daemon, wait_for

FILLS = 10_000
UNKNOWN = ["500112900000001", "500112900000002", "500112900000003"]  # not in the city's registry


def per_cylinder(records: list[dict[str, object]], key: str) -> dict[object, list[object]]:
    order: dict[object, list[object]] = defaultdict(list)
    for record in records:
        order[record["cylinderId"]].append(record[key])
    return order


def start_uploading(sim: CitySim, ca: Path, store: Store) -> tuple[threading.Event, threading.Thread]:
    """The daemon's uploader loop in a thread, with a 0.25 s timeout and quick back-off."""
    uploader = Uploader(client_for(sim, ca, timeout_s=0.25), Outbox(store), RetryPolicy(initial_s=0.01, max_s=0.2, jitter_s=0.02))
    stop = threading.Event()
    thread = threading.Thread(target=uploader.run, args=(stop, 0.05), daemon=True)
    thread.start()
    return stop, thread


@pytest.mark.slow
def test_ten_thousand_fills_through_an_outage_and_a_misbehaving_return(
    city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path
) -> None:
    rows = registry(400)
    cylinders = [row["id"] for row in rows]
    sim = CitySim(load_profile("chongqing"), rows, tls=city_tls[0]).start()
    sim.refuse(True)  # the city is down before the first fill of the day
    store = open_station_store(tmp_path / "station.db")
    stop, thread = start_uploading(sim, city_tls[1], store)
    try:
        # Fills keep being recorded through the outage, in batches, as lanes would.
        fill_ids: list[str] = []
        rejected: list[str] = []
        for batch in range(10):
            ids = [cylinders[(batch * 1000 + i) % len(cylinders)] for i in range(1000)]
            fill_ids += finished_fills(store, ids, first=batch * 1000)
            if batch == 4:
                rejected = finished_fills(store, UNKNOWN, first=FILLS)
        status = Outbox(store).status(START)
        assert status["pending"] == 2 * (FILLS + len(UNKNOWN)) and sim.records() == []
        assert "cannot reach" in status["last_error"]["error"]

        sim.stall_s = 0.4  # past the client's 0.25 s timeout
        sim.intermittent(0.01, ("http_5xx", "http_429", "stall", "drop_after_accept", "auth_expired"), seed=7)
        sim.refuse(False)
        began = time.monotonic()
        wait_for(lambda: Outbox(store).pending_count() == 0, timeout=600, what="the outbox to drain")
        drained_s = time.monotonic() - began
    finally:
        stop.set()
        thread.join(5)
        sim.stop()

    filling, trace = sim.records("filling"), sim.records("trace")
    print(f"\n10,000-fill outage: drained {len(filling) + len(trace)} records in {drained_s:.1f} s;"
          f" {sim.calls} calls, {sim.duplicates} duplicates absorbed, {sim.logins} logins")
    # Exactly one record per fill, and per kind: no loss, no duplicate.
    assert len(filling) == FILLS and sorted(r["requestId"] for r in filling) == fill_ids
    assert len(trace) == FILLS and len({r["requestId"] for r in trace}) == FILLS
    # In order per cylinder: fill ids are issued in time order.
    for cylinder, keys in per_cylinder(filling, "requestId").items():
        assert keys == sorted(keys), cylinder
    assert sim.duplicates > 0  # the faults did bite: answers were lost and retried
    # Only the rightly rejected remain: the three fills for cylinders the city does not know.
    final = Outbox(store).status(START)
    assert final["pending"] == 0 and final["dead"] == 2 * len(UNKNOWN)
    assert all("气瓶档案不存在" in d["last_error"] for d in final["dead_letters"])
    assert {d["fill_id"] for d in final["dead_letters"]} == set(rejected)
    assert assert_local_times(sim, store) == 2 * FILLS  # each filling date and trace time, local
    store.close()


NATURAL_FILLS = 500  # 1,000 records: enough faults to bite, tens of seconds per variant


@pytest.mark.slow
@pytest.mark.parametrize("captive_s", [0.0, 15.0], ids=["lost-answers", "lost-answers-and-captive-portal"])
def test_city_that_ignores_our_key_holds_each_record_once_and_nothing_is_dead(
    captive_s: float, city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path
) -> None:
    """A signed platform that de-duplicates on cylinder + fill time, refuses fields it does not
    know (so no idempotency field is sent), accepts and then drops the connection, answers past
    our timeout, and (in one variant) shows a captive portal's HTML for 15 s mid-drain. Every lost
    answer comes back as "record already exists", which is delivery, not a dead letter."""
    rows = registry(200)
    cylinders = [row["id"] for row in rows]
    sim = CitySim(load_profile("signed-gateway"), rows, tls=city_tls[0]).start()
    sim.ignore_keys(strict_fields=True)
    sim.refuse(True)
    store = open_station_store(tmp_path / "station.db")
    stop, thread = start_uploading(sim, city_tls[1], store)
    try:
        finished_fills(store, [cylinders[i % len(cylinders)] for i in range(NATURAL_FILLS)])
        sim.stall_s = 0.4  # past the client's 0.25 s timeout: processed, the answer lost
        sim.intermittent(0.02, ("drop_after_accept", "stall"), seed=11)
        sim.refuse(False)
        began = time.monotonic()
        if captive_s:
            wait_for(lambda: len(sim.records()) >= NATURAL_FILLS // 3, timeout=120, what="a third to arrive")
            sim.captive(captive_s)
            wait_for(lambda: Outbox(store).status(START)["malformed_since"] is not None, timeout=10,
                     what="the captive portal to show in the status")
        wait_for(lambda: Outbox(store).pending_count() == 0, timeout=300, what="the outbox to drain")
        drained_s = time.monotonic() - began
    finally:
        stop.set()
        thread.join(5)
        sim.stop()
    filling, trace = sim.records("filling"), sim.records("trace")
    duplicate_rows = store.query("SELECT count(*) AS n FROM journal WHERE kind = 'upload_duplicate'")[0]["n"]
    print(f"\nnatural-key city{', 15 s captive portal' if captive_s else ''}: {2 * NATURAL_FILLS} records in"
          f" {drained_s:.1f} s; {sim.calls} calls, {sim.duplicates} repeats answered 'already exists',"
          f" {duplicate_rows} delivered as duplicates")
    assert len(filling) == NATURAL_FILLS and len({(r["cylinderId"], r["fillTime"]) for r in filling}) == NATURAL_FILLS
    assert len(trace) == NATURAL_FILLS and len({(r["cylinderId"], r["traceTime"]) for r in trace}) == NATURAL_FILLS
    for cylinder, times in per_cylinder(filling, "fillTime").items():
        assert times == sorted(times), cylinder
    final = Outbox(store).status(START)
    assert (final["pending"], final["dead"], final["sent"]) == (0, 0, 2 * NATURAL_FILLS)
    assert final["malformed_since"] is None
    # Lost answers did happen; a repeat whose own answer was lost again is counted by the city only.
    assert 0 < duplicate_rows <= sim.duplicates
    store.close()


@pytest.mark.slow
def test_daemon_killed_mid_drain_loses_and_duplicates_nothing(
    city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hw, config_path, config, _ = simulated_hardware(tmp_path)
    rows = [g.row for g in hw.dataset]
    city = CitySim(load_profile("chongqing"), rows, tls=city_tls[0]).start()
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    raw["city"] = {
        "profile": "chongqing", "base_url": city.base_url, "ca_bundle": str(city_tls[1]),
        "username": "station", "password_env": "EDGE_TEST_CITY_PASSWORD",
        "upload": {"idle_s": 0.1, "backoff_initial_s": 0.01, "backoff_max_s": 0.2, "max_rate_per_s": 1000},
        "refresh": {"enabled": False},
    }
    config_path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    config = load_config(config_path)
    store = open_store(config)
    fills = finished_fills(store, [rows[i % len(rows)]["id"] for i in range(3000)])
    store.close()
    monkeypatch.setenv("EDGE_TEST_CITY_PASSWORD", "secret")  # the daemon reads city.password_env
    try:
        daemon = start_daemon(config_path)
        wait_for(lambda: len(city.records()) >= 500, timeout=60, what="the daemon to start draining")
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
        at_kill = len(city.records())
        assert at_kill < 3000
        daemon = start_daemon(config_path)

        def drained() -> bool:
            s = open_store(config)
            try:
                return Outbox(s).pending_count() == 0
            finally:
                s.close()

        wait_for(drained, timeout=120, what="the restarted daemon to drain the outbox")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0
    finally:
        city.stop()
        hw.stop()
    keys = [r["requestId"] for r in city.records()]
    print(f"\nkilled at {at_kill} of 3000 delivered; {city.duplicates} duplicate attempt(s) absorbed after restart")
    assert sorted(keys) == sorted(fills) and len(city.records("trace")) == 3000
    store = open_store(config)
    try:
        status = Outbox(store).status(START)
        assert (status["sent"], status["pending"], status["dead"]) == (6000, 0, 0)
        replies = delivered(store)  # in the outbox, or named in the entries of those that left it
        assert len(replies) == 6000 and json.loads(replies[("filling", fills[-1])])["ref"]
        assert assert_local_times(city, store, config.tz) == 6000
    finally:
        store.close()
