"""The company's commands against a real Mosquitto: a block refused at every station within a
second, unblocks that lift only the company's own blocks, stale, replayed, unsigned and malformed
commands refused, and the broker ACL refusing a station that reaches beyond its own topics."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from fleet.console import Connection, _drain, send_command
from edge.store import journal
from interlock import codes
from interlock.reasons import Reason
from interlock.rules import Policy, evaluate
from sync.fleet import mqtt
from sync.fleet.protocol import Command, command_payload, command_topic, encode, signature
from tests.fleet_support import (  # noqa: F401 (the broker fixture)
    COMPANY,
    Broker,
    LightStation,
    broker_fixture,
    check_payload,
    company_config,
    station_config,
    wait_until,
)



@pytest.fixture
def stations(tmp_path: Path, broker: Broker) -> Iterator[dict[str, LightStation]]:
    started = {name: LightStation(station_config(tmp_path, broker, name)).start() for name in ("st1", "st2", "st3")}
    for s in started.values():
        assert s.service.uplink.wait_connected(10)
    yield started
    for s in started.values():
        s.stop()
        s.close()


def reasons(station: LightStation, code: str) -> list[Reason]:
    """What the station's eligibility rules say about a scan of this code, now."""
    parsed = codes.parse(code.encode(), codes.Source.OPTICAL, station.service.patterns)
    assert isinstance(parsed, codes.Identifier)
    config = station.config
    policy = Policy(owner_unit=config.station.owner_unit, medium=config.lanes[0].medium, tz=config.tz)
    return list(evaluate(station.store.find_cylinder(parsed), policy, datetime.now(timezone.utc), 0.0, parsed).reasons)


def fillable(station: LightStation, skip: int = 0) -> dict[str, Any]:
    row = [g.row for g in station.dataset if g.scenario == "ok"][skip]
    assert reasons(station, row["qr_content"]) == []
    return row


def test_a_block_is_refused_at_every_station_within_a_second(tmp_path: Path, broker: Broker, stations: dict[str, LightStation]) -> None:
    company = company_config(tmp_path, broker)
    row = fillable(stations["st1"])
    started = time.monotonic()
    outcome = send_command(company, "block", identifier=row["info_code"], reason="reported stolen", wait_s=5)
    # Every station refuses the cylinder (by its QR code, though the block named its info code).
    pending = set(stations)
    refused_after: dict[str, float] = {}
    while pending and time.monotonic() - started < 5:
        for name in list(pending):
            if Reason.BLOCKED_LOCALLY in reasons(stations[name], row["qr_content"]):
                refused_after[name] = time.monotonic() - started
                pending.discard(name)
        time.sleep(0.005)
    assert not pending, f"never refused at {pending}"
    assert max(refused_after.values()) < 1.0, refused_after
    assert sorted(outcome.replies) == ["st1", "st2", "st3"] and not outcome.missing
    for reply in outcome.replies.values():
        check_payload(reply)
        assert reply["outcome"] == "applied" and reply["detail"] == f"cylinder {row['id']} blocked"
    # Journalled with who sent it.
    entry = stations["st2"].store.query("SELECT data FROM journal WHERE kind = 'fleet_command'")[-1]
    assert journal.load(entry["data"])["sender"] == "dispatcher-li"
    assert stations["st2"].store.verify().ok

    # Unblocking lifts the company's block everywhere ...
    outcome = send_command(company, "unblock", identifier=row["info_code"], wait_s=5)
    assert {r["detail"] for r in outcome.replies.values()} == {"unblocked"}
    assert all(reasons(s, row["qr_content"]) == [] for s in stations.values())


def test_an_unblock_never_lifts_a_stations_own_block(tmp_path: Path, broker: Broker, stations: dict[str, LightStation]) -> None:
    company = company_config(tmp_path, broker)
    row = fillable(stations["st1"], skip=1)
    stations["st1"].store.block(row["id"], "valve thread damaged", datetime.now(timezone.utc))
    send_command(company, "block", identifier=row["id"], reason="recall batch 7", wait_s=5)
    outcome = send_command(company, "unblock", identifier=row["id"], wait_s=5)
    assert outcome.replies["st1"]["detail"].startswith("fleet block removed; the station's own block")
    assert Reason.BLOCKED_LOCALLY in reasons(stations["st1"], row["qr_content"])
    assert reasons(stations["st2"], row["qr_content"]) == []


def _publish_raw(broker: Broker, payload: dict[str, Any] | bytes, user: str = "acme-hq") -> None:
    client = mqtt.make_client(broker.settings(user), f"raw-{uuid.uuid4().hex[:6]}", persistent=False)
    mqtt.connect_async(client, broker.settings(user), persistent=False)
    try:
        raw = payload if isinstance(payload, bytes) else encode(payload)
        deadline = time.monotonic() + 5
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        client.publish(command_topic(COMPANY), raw, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def _command(action: str = "block", ts: datetime | None = None, **fields: Any) -> Command:
    defaults: dict[str, Any] = {"identifier": "X-1", "reason": "test", "station": "*"}
    defaults.update(fields)
    return Command(id=uuid.uuid4().hex, ts=ts or datetime.now(timezone.utc), sender="auditor", action=action, **defaults)


def _replies(tmp_path: Path, broker: Broker, send: Any, seconds: float = 0.8) -> list[dict[str, Any]]:
    """Every reply published while `send()` runs and for a moment after it."""
    seen: list[dict[str, Any]] = []
    with Connection(company_config(tmp_path, broker), [f"{COMPANY}/+/reply"], "replies") as conn:
        send()
        _drain(conn.messages, seconds, lambda t, p: seen.append(p))
    return seen


def test_replayed_stale_and_malformed_commands_are_refused(tmp_path: Path, broker: Broker, stations: dict[str, LightStation]) -> None:
    row = fillable(stations["st1"], skip=2)
    lock = _command("lock", station="st1", identifier=None, reason="inspection")
    first = _replies(tmp_path, broker, lambda: _publish_raw(broker, command_payload(lock)))
    assert [(r["station"], r["outcome"]) for r in first] == [("st1", "applied")]
    stations["st1"].service.ledger.unlock("*")  # (a test shortcut: the lock itself is not the subject)

    # The same bytes again, captured and replayed: refused, and nothing is applied.
    replay = _replies(tmp_path, broker, lambda: _publish_raw(broker, command_payload(lock)))
    assert [(r["station"], r["outcome"], r["detail"]) for r in replay] == [
        ("st1", "refused", "replayed: this command id was already received")
    ]
    assert stations["st1"].service.ledger.locks() == {}

    old = _command("block", ts=datetime.now(timezone.utc) - timedelta(hours=1), identifier=row["id"])
    stale = _replies(tmp_path, broker, lambda: _publish_raw(broker, command_payload(old)))
    assert sorted(r["station"] for r in stale) == ["st1", "st2", "st3"]
    assert all(r["outcome"] == "refused" and r["detail"].startswith("stale") for r in stale)
    future = _command("block", ts=datetime.now(timezone.utc) + timedelta(hours=1), identifier=row["id"])
    ahead = _replies(tmp_path, broker, lambda: _publish_raw(broker, command_payload(future)))
    assert all(r["outcome"] == "refused" and "future" in r["detail"] for r in ahead) and len(ahead) == 3

    garbage = _replies(tmp_path, broker, lambda: _publish_raw(broker, b"\xff{not json"))
    # No id to answer to: every station still says it refused something, and why.
    assert sorted((r["station"], r["command_id"], r["detail"]) for r in garbage) == [
        (s, "", "not UTF-8") for s in ("st1", "st2", "st3")
    ]
    unknown = {**command_payload(_command("open-valve")), "action": "open-valve"}
    answered = _replies(tmp_path, broker, lambda: _publish_raw(broker, unknown))
    assert all(r["outcome"] == "refused" and r["detail"].startswith("action: 'open-valve' is not one of") for r in answered) and len(answered) == 3
    for s in stations.values():
        assert reasons(s, row["qr_content"]) == []  # nothing refused was applied
        kinds = [journal.load(r["data"]).get("outcome") for r in s.store.query("SELECT data FROM journal WHERE kind = 'fleet_command'")]
        assert kinds.count("refused") >= 4


def _retained_health(tmp_path: Path, broker: Broker, station: str) -> bool:
    seen: list[str] = []
    with Connection(company_config(tmp_path, broker), [f"{COMPANY}/{station}/health"], "health") as conn:
        _drain(conn.messages, 0.5, lambda t, p: seen.append(t))
    return bool(seen)


class Probe:
    """A raw client logged in as some user: what it publishes and what the broker answers."""

    def __init__(self, broker: Broker, user: str, protocol: str, **changes: Any) -> None:
        settings = broker.settings(user, protocol, **changes)
        self.client = mqtt.make_client(settings, f"probe-{uuid.uuid4().hex[:6]}", persistent=False)
        self.acks: dict[int, Any] = {}
        self.granted: list[Any] = []
        self.received: list[str] = []
        self.connect_result: list[Any] = []
        self.client.on_connect = lambda c, u, f, rc, p: self.connect_result.append(rc)
        self.client.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.granted.extend(rcs)
        self.client.on_message = lambda c, u, m: self.received.append(m.topic)
        mqtt.connect_async(self.client, settings, persistent=False)

    def connected(self) -> bool:
        wait_until(lambda: bool(self.connect_result), "a CONNACK", timeout=5)
        return not mqtt.failed(self.connect_result[0])

    def publish(self, topic: str) -> Any:
        info = self.client.publish(topic, b'{"v":1}', qos=1)
        info.wait_for_publish(5)
        return self.acks.get(info.mid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def st2(tmp_path: Path, broker: Broker) -> Iterator[LightStation]:
    """Station st2 alone: the tests that log in with st1's account play st1 themselves (the broker
    gives st1's account st1's client id, so a real st1 and a probe would take turns)."""
    station = LightStation(station_config(tmp_path, broker, "st2")).start()
    assert station.service.uplink.wait_connected(10)
    yield station
    station.stop()
    station.close()


def test_the_acl_keeps_a_station_to_its_own_topics(tmp_path: Path, broker: Broker, st2: LightStation) -> None:
    watcher = Probe(broker, "acme-hq", "5")
    assert watcher.connected()
    watcher.client.subscribe(f"{COMPANY}/#", qos=1)
    wait_until(lambda: bool(watcher.granted), "the watcher's subscription")
    foreign = [f"{COMPANY}/st2/event/fill", f"{COMPANY}/st2/health", command_topic(COMPANY), "other-co/st1/event/fill"]
    try:
        # MQTT 5: the broker answers a refused publish with PUBACK reason code 135 (not authorised).
        v5 = Probe(broker, "st1", "5")
        assert v5.connected()
        for topic in foreign:
            assert v5.publish(topic).value == 135, topic
        assert v5.publish(f"{COMPANY}/st1/event/scan").value in (0, 16)  # its own topic: accepted
        # MQTT 3.1.1 has no refusal code: the publish is acknowledged and silently dropped.
        v311 = Probe(broker, "st3", "3.1.1")  # another account: st1's would take over v5's session
        assert v311.connected()
        for topic in foreign:
            v311.publish(topic)
        # A station cannot listen to another station either: mosquitto grants the subscription but
        # delivers nothing the ACL does not let it read, not even st2's retained health.
        v5.client.subscribe(f"{COMPANY}/st2/#", qos=1)
        wait_until(lambda: bool(v5.granted), "the SUBACK")
        time.sleep(0.5)
        assert _retained_health(tmp_path, broker, "st2")  # the company can read it
        assert v5.received == []
        # What the company sees: only st1's publish on its own topic arrived; st2 applied nothing.
        probes = [t for t in watcher.received if not t.endswith(("/health", "/reply")) and "/lane/" not in t]
        assert probes == [f"{COMPANY}/st1/event/scan"]
        assert st2.service.ledger.locks() == {}
        v5.close()
        v311.close()
        # No account, a wrong password, or a broker certificate we do not trust: no connection.
        wrong = Probe(broker, "st1", "5", password="guess")
        assert not wrong.connected()
        wrong.close()
        intruder = Probe(broker, "intruder", "5")
        assert intruder.connected() and intruder.publish(f"{COMPANY}/st1/event/fill").value == 135
        intruder.close()
    finally:
        watcher.close()


def test_an_untrusted_broker_certificate_is_refused(tmp_path: Path, broker: Broker) -> None:
    import ssl

    import trustme

    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    settings = broker.settings("st1", ca_file=other_ca)
    client = mqtt.make_client(settings, "mitm-check", persistent=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect(settings.host, settings.port)


def _signed(key: bytes, command: Command, **changes: Any) -> bytes:
    """A command the company's key signs, with fields changed before signing: hostile, yet valid
    as far as the signature goes."""
    payload = {**command_payload(command), **changes}
    payload["signature"] = signature(payload, key)
    return encode(payload)


def test_signed_hostile_commands_are_refused_before_any_effect(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "command-key"
    key_file.write_text("the-company-key\n", encoding="utf-8")
    key = b"the-company-key"
    keyed = {name: LightStation(station_config(tmp_path, broker, name, command_key_file=str(key_file))).start()
             for name in ("st1", "st2", "st3")}
    try:
        for s in keyed.values():
            assert s.service.uplink.wait_connected(10)
        company = company_config(tmp_path, broker, command_key_file=key_file)
        row = fillable(keyed["st1"], skip=3)
        blocked = send_command(company, "block", identifier=row["id"], reason="reported stolen", wait_s=5)
        assert {r["outcome"] for r in blocked.replies.values()} == {"applied"} and len(blocked.replies) == 3

        unblock = _command("unblock", identifier=row["id"], reason="")
        hostile = {
            "reason: must be string, not number": _signed(key, unblock, reason=7),
            "unknown field 'force'": _signed(key, _command("unblock", identifier=row["id"]), force=True),
            "unknown field 'target.force'": _signed(key, _command("unblock", identifier=row["id"]),
                                                  target={"station": "*", "force": True}),
            "missing field 'identifier'": _signed(key, _command("unblock", identifier=None)),
        }
        for reason, raw in hostile.items():
            answers = _replies(tmp_path, broker, lambda raw=raw: _publish_raw(broker, raw))
            assert sorted((r["station"], r["outcome"], r["detail"]) for r in answers) == [
                (s, "refused", reason) for s in ("st1", "st2", "st3")
            ], reason
        # Too large, or nested too deep to parse: refused before the JSON parser, still answered.
        huge = _signed(key, _command("unblock", identifier=row["id"]), reason="x" * 1_000_000)
        deep = b"[" * 100_000 + b"]" * 100_000
        shallow_but_deep = b'{"v":1,"type":"command","x":' + b"[" * 1000 + b"]" * 1000 + b"}"
        for raw, reason in ((huge, f"{len(huge)} bytes, more than the 4096 allowed"),
                            (deep, "200000 bytes, more than the 4096 allowed"),
                            (shallow_but_deep, "nested deeper than 6 levels")):
            answers = _replies(tmp_path, broker, lambda raw=raw: _publish_raw(broker, raw))
            assert sorted((r["station"], r["command_id"], r["detail"]) for r in answers) == [
                (s, "", reason) for s in ("st1", "st2", "st3")
            ]
        # A valid unblock, then the same bytes replayed: the replay is answered with its reason.
        good = _signed(key, _command("unblock", identifier=row["id"]))
        applied = _replies(tmp_path, broker, lambda: _publish_raw(broker, good))
        assert sorted(r["outcome"] for r in applied) == ["applied"] * 3
        send_command(company, "block", identifier=row["id"], reason="reported stolen again", wait_s=5)
        replayed = _replies(tmp_path, broker, lambda: _publish_raw(broker, good))
        assert sorted((r["station"], r["outcome"], r["detail"]) for r in replayed) == [
            (s, "refused", "replayed: this command id was already received") for s in ("st1", "st2", "st3")
        ]
        for s in keyed.values():
            # No hostile unblock and no replay lifted the block; no handler raised.
            assert Reason.BLOCKED_LOCALLY in reasons(s, row["qr_content"])
            assert s.store.verify().ok
        assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    finally:
        for s in keyed.values():
            s.stop()
            s.close()
