"""The uploader draining a real station database to the city simulator over HTTPS."""

from __future__ import annotations

import json
import ssl
import threading
import time
from datetime import timedelta
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.store import Store
from edge.store.outbox import Outbox
from simulators.city import CitySim
from sync.profile import load_profile
from sync.uploader import RetryPolicy, Uploader

from .city_support import START, assert_local_times, client_for, finished_fills, open_station_store, start_sim

TlsPair = tuple[ssl.SSLContext, Path]
FAST = RetryPolicy(initial_s=0.01, max_s=0.05, jitter_s=0.01)


@pytest.fixture
def sim(city_tls: TlsPair) -> Iterator[CitySim]:
    city = start_sim(load_profile("chongqing"), city_tls)
    yield city
    city.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_station_store(tmp_path / "station.db")
    yield s
    s.close()


def uploader(sim: CitySim, store: Store, ca: Path, policy: RetryPolicy = FAST) -> Uploader:
    return Uploader(client_for(sim, ca), Outbox(store), policy)


def test_drains_oldest_first_filling_record_then_its_trace_node(sim: CitySim, store: Store, city_tls: TlsPair) -> None:
    cylinders = list(sim.registry)[:5]
    fills = finished_fills(store, cylinders)
    result = uploader(sim, store, city_tls[1]).drain(threading.Event())
    assert (result.sent, result.dead) == (10, 0)
    assert [r["requestId"] for r in sim.records("filling")] == fills
    assert [r["requestId"] for r in sim.records("trace")] == [f"{f}:trace" for f in fills]
    rows = store.query("SELECT kind, status, sent_at, reply FROM outbox ORDER BY id")
    assert [r["kind"] for r in rows] == ["filling", "trace"] * 5
    assert all(r["status"] == "sent" and r["sent_at"] and json.loads(r["reply"])["ref"] for r in rows)
    status = Outbox(store).status(START)
    assert status["pending"] == 0 and status["sent"] == 10 and status["last_success_at"]
    assert assert_local_times(sim, store) == 10


def test_fill_that_never_opened_the_valve_is_not_reported(store: Store) -> None:
    from interlock.fill import Record

    authorised = Record("f-x", "authorised", {"cylinder_id": "c", "authorised_at": START})
    store.apply_record("A", authorised, START, {"operator": "张三"})
    aborted = Record("f-x", "aborted", {"finished_at": START, "outcome": "aborted", "cause": "AUTH_EXPIRED"})
    store.apply_record("A", aborted, START, {})
    assert store.query("SELECT count(*) AS n FROM outbox")[0]["n"] == 0


def test_rejection_is_a_dead_letter_with_the_citys_message_and_can_be_requeued(sim: CitySim, store: Store,
                                                                              city_tls: TlsPair) -> None:
    known = list(sim.registry)[:2]
    finished_fills(store, [known[0], "500112999999999", known[1]])
    result = uploader(sim, store, city_tls[1]).drain(threading.Event())
    assert (result.sent, result.dead) == (4, 2)  # the unknown cylinder's filling record and trace node
    status = Outbox(store).status(START)
    assert status["dead"] == 2
    assert all("气瓶档案不存在" in d["last_error"] for d in status["dead_letters"])
    # The records after the dead one were not held up, and the refusal is in the chained journal.
    assert [r["cylinderId"] for r in sim.records("filling")] == known
    assert store.query("SELECT count(*) AS n FROM journal WHERE kind = 'upload_dead'")[0]["n"] == 2
    # Registered upstream later, the manager requeues and the records go through.
    sim.put_cylinder({**sim_row(sim, known[0]), "id": "500112999999999"})
    assert Outbox(store).requeue(START) == 2
    result = uploader(sim, store, city_tls[1]).drain(threading.Event())
    assert (result.sent, result.dead) == (2, 0)
    assert Outbox(store).status(START)["dead"] == 0


def sim_row(sim: CitySim, cylinder_id: str) -> dict[str, object]:
    from sync.mapping import from_city

    return from_city(sim.profile, "cylinder", sim.registry[cylinder_id], sim.tz)


def test_malformed_replies_dead_letter_only_after_the_window(sim: CitySim, store: Store, city_tls: TlsPair) -> None:
    finished_fills(store, list(sim.registry)[:1])
    sim.inject("html", 6)
    policy = RetryPolicy(initial_s=0.01, max_s=0.05, jitter_s=0.01, malformed_window_s=3600)
    clock = lambda: START + timedelta(minutes=20 * sim.calls)  # noqa: E731 (20 minutes pass per call)
    result = Uploader(client_for(sim, city_tls[1]), Outbox(store), policy, clock=clock).drain(threading.Event())
    # The filling record met HTML pages for an hour of (fake) time and died; its trace met the
    # rest and then went through, which ended the condition.
    assert (result.sent, result.dead) == (1, 1)
    status = Outbox(store).status(START)
    [dead] = status["dead_letters"]
    assert dead["kind"] == "filling" and "HTML page" in dead["last_error"] and "no proper reply for 1.0 h" in dead["last_error"]
    assert dead["attempts"] == 4 and status["malformed_since"] is None


def test_captive_portal_within_the_window_loses_nothing_and_shows_while_it_lasts(sim: CitySim, store: Store,
                                                                                city_tls: TlsPair) -> None:
    fills = finished_fills(store, list(sim.registry)[:3])
    sim.captive(60)
    up = uploader(sim, store, city_tls[1])
    stop = threading.Event()
    worker = threading.Thread(target=lambda: up.drain(stop))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while Outbox(store).status(START)["malformed_since"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        status = Outbox(store).status(START)
        assert status["malformed_since"] and "captive portal" in status["last_error"]["error"]
        assert status["pending"] == 6 and status["dead"] == 0
        sim.captive(0)
        worker.join(10)
    finally:
        stop.set()
        worker.join(5)
    status = Outbox(store).status(START)
    assert (status["sent"], status["dead"], status["malformed_since"]) == (6, 0, None)
    assert [r["requestId"] for r in sim.records("filling")] == fills


def test_too_long_value_is_a_dead_letter_and_never_sent(city_tls: TlsPair, tmp_path: Path) -> None:
    other = load_profile(str(Path(__file__).parent / "profiles" / "other-city.yaml"))
    sim = start_sim(other, city_tls)
    store = open_station_store(tmp_path / "s.db")
    try:
        finished_fills(store, list(sim.registry)[:1], operator="欧阳诸葛明")  # 5 characters; this city takes 4
        result = uploader(sim, store, city_tls[1]).drain(threading.Event())
        assert (result.sent, result.dead) == (1, 1)
        [dead] = Outbox(store).status(START)["dead_letters"]
        assert "filling.operator (czry) is 5 characters, other-city accepts at most 4" in dead["last_error"]
        assert sim.records("filling") == []
    finally:
        store.close()
        sim.stop()


def test_retryable_faults_are_retried_until_delivered(sim: CitySim, store: Store, city_tls: TlsPair) -> None:
    finished_fills(store, list(sim.registry)[:3])
    up = uploader(sim, store, city_tls[1])
    up.client.login()  # so the faults below meet the submissions
    for fault in ("http_5xx", "http_429", "drop_after_accept", "auth_expired", "http_5xx"):
        sim.inject(fault)
    result = up.drain(threading.Event())
    assert (result.sent, result.dead) == (6, 0)
    assert len(sim.records("filling")) == 3 and sim.duplicates == 1
    failed = store.query("SELECT attempts, last_error FROM outbox WHERE attempts > 1 ORDER BY id")
    assert failed and all(r["last_error"] for r in failed)
    assert "Retryable: HTTP 503" in json.dumps(Outbox(store).status(START)["last_error"])


def test_stop_during_back_off_returns_promptly_and_leaves_the_row_pending(sim: CitySim, store: Store,
                                                                         city_tls: TlsPair) -> None:
    finished_fills(store, list(sim.registry)[:1])
    sim.refuse(True)
    stop = threading.Event()
    slow = RetryPolicy(initial_s=30, max_s=60, jitter_s=0)
    up = uploader(sim, store, city_tls[1], slow)
    thread = threading.Thread(target=up.drain, args=(stop,))
    thread.start()
    time.sleep(0.3)
    stop.set()
    thread.join(2.0)
    assert not thread.is_alive()
    row = store.query("SELECT status, attempts, last_error FROM outbox ORDER BY id LIMIT 1")[0]
    assert row["status"] == "pending" and row["attempts"] == 1 and "cannot reach" in row["last_error"]
