"""Habits of real city platforms, against the simulator over HTTPS: signed requests checked by the
simulator's own implementation, absolute token expiry, nested envelopes, natural-key
de-duplication that ignores our key, fields it refuses, captive portal pages."""

from __future__ import annotations

import hashlib
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge.store import Store, packing
from edge.store.outbox import Outbox
from simulators.city import CitySim
from sync.client import AuthError, CityClient, Credentials, Duplicate, Malformed, Rejected, Tls, token_lifetime
from sync.profile import Profile, SigningSpec, load_profile
from sync.records import filling_record, trace_node
from sync.signing import Signer
from sync.uploader import RetryPolicy, Uploader

from .city_support import START, STATION, client_for, finished_fills, open_station_store, start_sim

TlsPair = tuple[ssl.SSLContext, Path]
FAST = RetryPolicy(initial_s=0.01, max_s=0.05, jitter_s=0.01)
OTHER = str(Path(__file__).parent / "profiles" / "other-city.yaml")


def fill(cylinder_id: str, started: str = START.isoformat()) -> dict[str, Any]:
    return {"id": "f-1", "cylinder_id": cylinder_id, "medium": "G13", "operator": "张三", "checker": "李四",
            "started_at": started, "finished_at": started, "net_kg": 14.5, "outcome": "ok", "cause": None}


@contextmanager
def talking(profile: Profile, tls: TlsPair) -> Iterator[tuple[CitySim, CityClient]]:
    """A simulator speaking `profile` and a client of it, both closed afterwards."""
    sim = start_sim(profile, tls)
    client = client_for(sim, tls[1])
    try:
        yield sim, client
    finally:
        client.close()
        sim.stop()


def with_signing(profile: Profile, **recipe: Any) -> Profile:
    return profile.model_copy(update={"signing": SigningSpec(**recipe)})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_station_store(tmp_path / "station.db")
    yield s
    s.close()


# Signing ----------------------------------------------------------------------------------------

RECIPES = {
    # md5(timestamp + nonce + appKey), the fields in the body, upper-case hex.
    "md5-elements": dict(algorithm="md5", place="body", order=["timestamp", "nonce", "app_key"], hex_case="upper"),
    # Sorted parameters with the elements and the secret sorted in, SHA-256 (the shipped profile's).
    "sha256-params": dict(algorithm="sha256", order=["params"], params_with=["app_key", "timestamp", "nonce", "secret"],
                          secret_param="Security"),
    # HMAC-SHA256 keyed with the secret over the body as sent.
    "hmac-body": dict(algorithm="hmac-sha256", order=["app_key", "timestamp", "nonce", "body"], join="\n"),
    # SM3 over the sorted body fields and elements, then "&key=" and the secret, fields in the body.
    "sm3-params-key": dict(algorithm="sm3", place="body", order=["params", "secret"], join="&key=",
                           params_with=["app_key", "timestamp", "nonce"], timestamp_unit="s"),
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_each_signing_recipe_is_verified_by_the_city(recipe: str, city_tls: TlsPair) -> None:
    profile = with_signing(load_profile("chongqing"), **RECIPES[recipe])
    with talking(profile, city_tls) as (sim, client):
        cylinder = next(iter(sim.registry))
        client.submit("filling", filling_record(fill(cylinder), STATION), "k-1")
        assert client.find_cylinder("id", cylinder) is not None
        assert sim.gateway is not None and sim.gateway.verified == 3  # login, submit, query
        assert len(sim.records("filling")) == 1
        # The signing elements carried in a body are not part of the record the city keeps.
        assert "sign" not in sim.records("filling")[0]


def test_a_wrong_secret_is_refused_by_the_gateway(city_tls: TlsPair) -> None:
    profile = load_profile("signed-gateway")
    sim = start_sim(profile, city_tls)
    client = CityClient(profile, sim.base_url, Credentials("station", "secret"), Tls(str(city_tls[1])), (0.5, 0.5))
    client.signer = Signer(profile.signing, "station", "not-the-secret")  # type: ignore[arg-type]
    try:
        with pytest.raises(AuthError, match="签名错误 signature mismatch"):
            client.login()
    finally:
        client.close()
        sim.stop()


def test_a_replayed_nonce_is_refused_so_every_attempt_signs_afresh(city_tls: TlsPair) -> None:
    profile = load_profile("signed-gateway")
    with talking(profile, city_tls) as (sim, client):
        assert client.signer is not None
        client.login()
        client.signer.nonce = lambda: "always-the-same"
        client.find_cylinder("id", next(iter(sim.registry)))
        with pytest.raises(Rejected, match="nonce 重复 replayed"):
            client.find_cylinder("id", next(iter(sim.registry)))


def test_signature_known_answers() -> None:
    # md5(timestamp + nonce + appKey) as such platforms document it, and SM3's standard vector.
    spec = SigningSpec(algorithm="md5", order=["timestamp", "nonce", "app_key"], hex_case="upper")
    signer = Signer(spec, "app", "secret", wall=lambda: 1_700_000_000.0, nonce=lambda: "n1")
    elements = signer.elements()
    assert signer.sign({}, "", elements) == hashlib.md5(b"1700000000000n1app").hexdigest().upper()
    sm3 = Signer(SigningSpec(algorithm="sm3", order=["body"]), "app", "secret")
    assert sm3.sign({}, "abc", sm3.elements()) == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    params = Signer(SigningSpec(algorithm="sha256", order=["params"], params_with=["app_key", "secret"], secret_param="Security"),
                    "app", "s3")
    text = 'Security=s3&a=1&appKey=app&b=%7B%7D&c={"x":[1,2]}'  # sorted by name; null and "" left out
    assert params.sign({"b": "%7B%7D", "a": 1, "c": {"x": [1, 2]}, "d": None, "e": ""}, "", params.elements()) \
        == hashlib.sha256(text.encode()).hexdigest()


# Tokens -----------------------------------------------------------------------------------------

def test_absolute_expiry_as_epoch_or_local_time_and_the_renewal_margin() -> None:
    other, gateway = load_profile(OTHER).auth, load_profile("signed-gateway").auth
    now = 1_800_000_000.0
    assert token_lifetime(other, "%Y%m%d%H%M%S", (now + 600) * 1000, now) == pytest.approx(600)
    # A local time without an offset is Beijing time (the profile's expires_zone), not UTC.
    midnight = datetime(2027, 1, 16, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    assert token_lifetime(gateway, "%Y-%m-%d %H:%M:%S", "2027-01-16 00:00:00", midnight - 90) == pytest.approx(90)
    assert token_lifetime(gateway, "%Y-%m-%d %H:%M:%S", "2027-01-16T00:00:00+08:00", midnight - 90) == pytest.approx(90)
    assert token_lifetime(gateway, "%Y-%m-%d %H:%M:%S", "not a time", now) is None


@pytest.mark.parametrize("name", ["signed-gateway", "other-city"])
def test_short_absolute_token_serves_calls_until_its_margin(name: str, city_tls: TlsPair) -> None:
    profile = load_profile(OTHER if name == "other-city" else name)
    sim = start_sim(profile, city_tls, token_ttl_s=20.0)
    sim.expiry_as_text = name == "signed-gateway"
    now = [0.0]
    client = CityClient(profile, sim.base_url, Credentials("station", "secret"), Tls(str(city_tls[1])), (0.5, 0.5),
                        clock=lambda: now[0])
    cylinder = next(iter(sim.registry))
    try:
        client.login()
        # other-city renews 5 s early (at 15 s); the gateway's 60 s margin is capped at half of 20 s.
        renew_at = 14.0 if name == "other-city" else 9.0
        for now[0] in (1.0, renew_at - 1.0):
            client.find_cylinder("id", cylinder)
        assert client.logins == 1
        now[0] = renew_at + 1.5
        client.find_cylinder("id", cylinder)
        assert client.logins == 2 and sim.logins == 2
    finally:
        client.close()
        sim.stop()


# Replies ----------------------------------------------------------------------------------------

def test_nested_envelope_and_query_paths_are_read(city_tls: TlsPair) -> None:
    profile = load_profile("signed-gateway")
    with talking(profile, city_tls) as (sim, client):
        page = client.query_page(1, 7)
        reply = sim.handle(profile.query.path, {}, {"pageNo": 1})  # unsigned: what the gateway says
    assert len(page.records) == 7 and page.total == len(sim.registry) and page.server_time
    assert b'"head": {"code": "4013"' in reply[2]


def test_html_with_http_200_is_malformed_and_says_captive_portal(city_tls: TlsPair) -> None:
    with talking(load_profile("chongqing"), city_tls) as (sim, client):
        sim.captive(30)
        with pytest.raises(Malformed, match="HTML page instead of the envelope .captive portal or proxy"):
            client.submit("filling", filling_record(fill(next(iter(sim.registry))), STATION), "k")


# Duplicates -------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", ["envelope code", "HTTP 409"])
def test_a_city_that_ignores_our_key_answers_a_repeat_as_a_duplicate(answer: str, city_tls: TlsPair) -> None:
    profile = load_profile("signed-gateway")
    with talking(profile, city_tls) as (sim, client):
        sim.ignore_keys(duplicate_status=409 if answer == "HTTP 409" else None, strict_fields=True)
        record = filling_record(fill(next(iter(sim.registry))), STATION)
        client.submit("filling", record, "first-key")
        with pytest.raises(Duplicate, match="4009|409"):
            client.submit("filling", record, "another-key")  # a new key does not make it new
        # Another fill of the same cylinder a second later is a new record.
        later = filling_record(fill(record["cylinder_id"], started="2026-11-20T01:00:01+00:00"), STATION)
        client.submit("filling", later, "third-key")
    assert len(sim.records("filling")) == 2 and sim.duplicates == 1


def test_a_city_refusing_unknown_fields_refuses_our_idempotency_field(city_tls: TlsPair) -> None:
    with talking(load_profile("chongqing"), city_tls) as (sim, client):
        sim.ignore_keys(strict_fields=True)
        with pytest.raises(Rejected, match="unknown fields .'requestId'"):
            client.submit("trace", trace_node(fill(next(iter(sim.registry))), STATION), "k")


def test_duplicates_are_delivered_and_requeued_dead_letters_deliver_as_duplicates(store: Store, city_tls: TlsPair) -> None:
    chongqing = load_profile("chongqing")
    without = chongqing.model_copy(update={"fields": {**chongqing.fields, "filling": {
        **chongqing.fields["filling"], "started_at": "fillTime"}}})
    knows = without.model_copy(update={"envelope": without.envelope.model_copy(update={"duplicate_codes": ["4009"]})})
    sim = start_sim(without, city_tls)
    sim.ignore_keys()
    cylinders = list(sim.registry)[:3]
    fills = finished_fills(store, cylinders)
    try:
        # Delivered once, then the station forgets (as after a lost answer) and sends them again.
        first = Uploader(client_for(sim, city_tls[1]), Outbox(store), FAST).drain(threading.Event())
        assert (first.sent, first.dead) == (6, 0)
        with store.transaction() as conn:
            conn.execute("UPDATE outbox SET status = 'pending'")
        # A profile that does not know the code dead-letters records the city holds ...
        old = Uploader(client_for(sim, city_tls[1]), Outbox(store), FAST).drain(threading.Event())
        assert (old.sent, old.dead) == (0, 6)
        assert all("记录已存在" in d["last_error"] for d in Outbox(store).status(START)["dead_letters"])
        # ... which, requeued under a profile that does, are delivered as duplicates.
        assert Outbox(store).requeue(START) == 6
        sim.profile = knows
        new = Uploader(CityClient(knows, sim.base_url, Credentials("station", "secret"), Tls(str(city_tls[1])), (0.5, 0.5)),
                       Outbox(store), FAST).drain(threading.Event())
    finally:
        sim.stop()
    assert (new.sent, new.duplicates, new.dead) == (6, 6, 0)
    status = Outbox(store).status(START)
    assert (status["pending"], status["sent"], status["dead"]) == (0, 6, 0)
    assert len(sim.records("filling")) == 3 and [r["requestId"] for r in sim.records("filling")] == fills
    entries = store.query("SELECT fill_id, data FROM journal WHERE kind = 'upload_duplicate' ORDER BY seq")
    assert [e["fill_id"] for e in entries] == [f for f in fills for _ in (0, 1)]
    assert "记录已存在" in packing.unpack(entries[0]["data"])
