"""The city client against the city simulator over real HTTPS: both profiles, every fault class."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.city import CitySim
from sync.client import AuthError, CityClient, Credentials, Malformed, Rejected, Retryable, Tls, _retry_after
from sync.profile import Profile, load_profile
from sync.records import filling_record, trace_node

from .city_support import OWNER, START, STATION, client_for, registry, start_sim

PROFILES = {"chongqing": "chongqing", "other-city": str(Path(__file__).parent / "profiles" / "other-city.yaml"),
            "signed-gateway": "signed-gateway"}


@pytest.fixture(params=list(PROFILES))
def profile(request: pytest.FixtureRequest) -> Profile:
    return load_profile(PROFILES[request.param])


@pytest.fixture
def chongqing() -> Profile:
    return load_profile("chongqing")


@pytest.fixture
def sim(chongqing: Profile, city_tls: tuple[ssl.SSLContext, Path]) -> Iterator[CitySim]:
    city = start_sim(chongqing, city_tls)
    yield city
    city.stop()


@pytest.fixture
def client(sim: CitySim, city_tls: tuple[ssl.SSLContext, Path]) -> Iterator[CityClient]:
    c = client_for(sim, city_tls[1])
    yield c
    c.close()


def fill(cylinder_id: str, operator: str = "张三") -> dict[str, Any]:
    started = START.isoformat()
    return {"id": "f-1", "cylinder_id": cylinder_id, "medium": "G13", "operator": operator, "checker": "李四",
            "started_at": started, "finished_at": started, "net_kg": 14.5, "outcome": "ok", "cause": None}


def test_each_profile_maps_names_formats_and_words(profile: Profile, city_tls: tuple[ssl.SSLContext, Path]) -> None:
    rows = registry()
    sim = start_sim(profile, city_tls, rows)
    client = client_for(sim, city_tls[1])
    try:
        record = filling_record(fill(rows[0]["id"]), STATION)
        client.submit("filling", record, "key-1")
        client.submit("trace", trace_node(fill(rows[0]["id"]), STATION), "key-1:trace")
        [body] = sim.records("filling")
        [trace] = sim.records("trace")
        found = client.find_cylinder("info_code", rows[2]["info_code"])
    finally:
        client.close()
        sim.stop()
    names = profile.fields["filling"]
    assert body[names["cylinder_id"]] == rows[0]["id"]
    assert body[names["operator"]] == "张三"
    if profile.idempotency.field:
        assert body[profile.idempotency.field] == "key-1"
    if profile.name == "chongqing":
        assert body == {"mediumCode": "G13", "fillPerson": "张三", "fillDate": "2026-11-20",
                        "fillUnitName": OWNER, "cylinderId": rows[0]["id"], "requestId": "key-1"}
        assert trace == {"traceTime": "2026-11-20 09:00:00", "nodeName": "充装", "unitOrPerson": "张三",
                         "cylinderId": rows[0]["id"], "requestId": "key-1:trace"}
    elif profile.name == "other-city":
        assert body == {"qpid": rows[0]["id"], "jzdm": "LPG", "czry": "张三", "czrq": "20261120",
                        "czdw": OWNER, "czl": 14.5, "bizNo": "key-1"}
        assert trace["sj"] == "20261120090000" and trace["jd"] == "FILL"
    # Read back into our words and formats, whatever the city calls them.
    assert found is not None
    assert found["id"] == rows[2]["id"] and found["status"] == rows[2]["status"]
    assert found["next_inspection"] == rows[2]["next_inspection"]
    assert found["medium"] == rows[2]["medium"]


def test_refused_connection_is_retryable(sim: CitySim, client: CityClient) -> None:
    sim.refuse(True)
    with pytest.raises(Retryable, match="cannot reach"):
        client.submit("filling", filling_record(fill(next(iter(sim.registry))), STATION), "k")


def test_tls_failure_is_retryable_and_names_tls(sim: CitySim) -> None:
    untrusting = CityClient(sim.profile, sim.base_url, Credentials("station", "secret"), Tls(True), (0.5, 0.5))
    with pytest.raises(Retryable, match="TLS failure.*certificate verify failed"):
        untrusting.login()


@pytest.mark.parametrize("fault, message, retry_after", [("http_5xx", "HTTP 503", None), ("http_429", "HTTP 429", 0.05)])
def test_5xx_and_429_are_retryable_with_retry_after(sim: CitySim, client: CityClient, fault: str, message: str,
                                                    retry_after: float | None) -> None:
    client.login()
    sim.inject(fault)
    with pytest.raises(Retryable, match=message) as caught:
        client.submit("filling", filling_record(fill(next(iter(sim.registry))), STATION), "k")
    assert caught.value.retry_after_s == retry_after


def test_stall_past_the_timeout_is_retryable_and_the_retry_is_deduplicated(sim: CitySim, client: CityClient) -> None:
    sim.stall_s = 1.0
    client.login()
    sim.inject("stall")
    record = filling_record(fill(next(iter(sim.registry))), STATION)
    with pytest.raises(Retryable, match="no answer within"):
        client.submit("filling", record, "k-stall")
    client.submit("filling", record, "k-stall")
    # Whichever of the two requests the city finished first is the record; the other is a duplicate.
    assert len(sim.records("filling")) == 1


def test_answer_lost_after_acceptance_then_retry_is_a_counted_duplicate(sim: CitySim, client: CityClient) -> None:
    client.login()
    sim.inject("drop_after_accept")
    record = filling_record(fill(next(iter(sim.registry))), STATION)
    with pytest.raises(Retryable):
        client.submit("filling", record, "k-drop")
    assert len(sim.records("filling")) == 1  # the city has it; we do not know that
    client.submit("filling", record, "k-drop")
    assert len(sim.records("filling")) == 1 and sim.duplicates == 1


def test_malformed_json_is_its_own_class(sim: CitySim, client: CityClient) -> None:
    client.login()
    sim.inject("malformed")
    with pytest.raises(Malformed, match="not JSON"):
        client.submit("filling", filling_record(fill(next(iter(sim.registry))), STATION), "k")


def test_expired_token_logs_in_once_more_and_the_call_succeeds(profile: Profile, city_tls: tuple[ssl.SSLContext, Path]) -> None:
    # Chongqing refuses in the envelope (code 401); the other city with HTTP 401.
    sim = start_sim(profile, city_tls)
    client = client_for(sim, city_tls[1])
    try:
        cylinder = next(iter(sim.registry))
        client.submit("filling", filling_record(fill(cylinder), STATION), "a")
        sim.expire_tokens()
        client.submit("filling", filling_record(fill(cylinder), STATION), "b")
        assert client.logins == 2 and len(sim.records("filling")) == 2
    finally:
        client.close()
        sim.stop()


def test_token_renewed_before_the_city_says_it_expires(chongqing: Profile, city_tls: tuple[ssl.SSLContext, Path]) -> None:
    sim = start_sim(chongqing, city_tls, token_ttl_s=45.0)
    now = [0.0]
    client = CityClient(chongqing, sim.base_url, Credentials("station", "secret"), Tls(str(city_tls[1])), (0.5, 0.5),
                        clock=lambda: now[0])
    try:
        client.login()
        # A 45 s token: the 30 s margin is capped at half its life, so it serves calls for 22.5 s.
        now[0] = 16.0
        client.find_cylinder("id", next(iter(sim.registry)))
        assert client.logins == 1
        now[0] = 23.0
        client.find_cylinder("id", next(iter(sim.registry)))
        assert client.logins == 2 and sim.logins == 2
    finally:
        client.close()
        sim.stop()


def test_wrong_password_is_an_auth_error_not_a_rejection(sim: CitySim, city_tls: tuple[ssl.SSLContext, Path]) -> None:
    client = client_for(sim, city_tls[1], password="wrong")
    with pytest.raises(AuthError, match="login refused.*用户名或密码错误"):
        client.find_cylinder("id", "x")


def test_envelope_rejection_carries_the_citys_message(sim: CitySim, client: CityClient) -> None:
    with pytest.raises(Rejected, match="city code 4004: 气瓶档案不存在"):
        client.submit("filling", filling_record(fill("500112999999999"), STATION), "k")
    sim.inject("reject")
    with pytest.raises(Rejected, match="city code 4000"):
        client.submit("filling", filling_record(fill(next(iter(sim.registry))), STATION), "k2")


def test_value_too_long_is_rejected_before_sending(sim: CitySim, client: CityClient) -> None:
    calls = sim.calls
    with pytest.raises(Rejected, match=r"filling.operator \(fillPerson\) is 11 characters, chongqing accepts at most 10"):
        client.submit("filling", filling_record(fill(next(iter(sim.registry)), operator="王" * 11), STATION), "k")
    assert sim.calls == calls


def test_other_4xx_is_a_rejection(sim: CitySim, client: CityClient) -> None:
    client.login()
    with pytest.raises(Rejected, match="HTTP 404"):
        client.call("/api/v1/no-such-endpoint", {})


def test_tag_binding_sends_the_stamp_photo_and_returns_the_info_code(sim: CitySim, client: CityClient, tmp_path: Path) -> None:
    photo = tmp_path / "stamp.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 stamp photo bytes")
    cylinder = next(iter(sim.registry))
    data = client.bind_tag({"cylinder_id": cylinder, "tag_kind": "二维码", "qr_content": "https://x/?code=1"}, photo, "bind-1")
    [body] = sim.records("tag_binding")
    assert base64.b64decode(body["stampImage"]) == photo.read_bytes() and body["stampImageName"] == "stamp.jpg"
    assert data["infoCode"] == sim.registry[cylinder]["infoCode"]


def test_inspection_record_submission(sim: CitySim, client: CityClient) -> None:
    cylinder = next(iter(sim.registry))
    record = {"cylinder_id": cylinder, "inspection_date": "2026-11-02", "inspection_body": "重庆市特种设备检测研究院",
              "next_inspection": "2030-11", "conclusion": "合格", "inspection_type": "定期"}
    client.submit("inspection", record, "insp-1")
    [body] = sim.records("inspection")
    assert body["checkDate"] == "2026-11-02" and body["nextCheckDate"] == "2030-11" and body["checkType"] == "定期"


def test_retry_after_as_seconds_or_http_date() -> None:
    assert _retry_after("7") == 7.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no extra wait
    assert _retry_after("soon") is None and _retry_after(None) is None
