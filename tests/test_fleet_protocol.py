"""Commands without a broker: parsing, signatures, freshness, and a station's handler refusing
what it must (the handler is called directly; the broker tests cover the wire)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from edge.config import load_config
from edge.daemon.fleet import FleetService
from edge.store import journal
from sync.fleet.protocol import Command, CommandError, check_fresh, command_payload, encode, parse_command
from tests.conftest import write_config
from tests.fleet_support import check_payload

NOW = datetime(2026, 5, 2, 8, 0, tzinfo=timezone.utc)
KEY = b"company-secret-key"


def command(action: str = "block", **changes: Any) -> Command:
    fields: dict[str, Any] = {"id": "cmd-00000001", "ts": NOW, "sender": "wu", "action": action, "station": "*",
                              "identifier": "CYL-1", "reason": "stolen"}
    fields.update(changes)
    return Command(**fields)


def test_a_command_round_trips_and_matches_the_schema() -> None:
    payload = command_payload(command(), KEY)
    check_payload(payload)
    assert parse_command(encode(payload), KEY) == command()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p.update(v=2), "schema version 2"),
        (lambda p: p.update(action="open"), "action: 'open' is not one of"),
        (lambda p: p.update(id="short"), "id: 'short' does not match"),
        (lambda p: p.pop("identifier"), "missing field 'identifier'"),
        (lambda p: p.update(identifier=" "), "block needs an identifier"),
        (lambda p: p.update(reason=" "), "block needs a reason"),
        (lambda p: p.update(ts="2026-05-02T08:00:00"), "ts: '2026-05-02T08:00:00' does not match"),
        (lambda p: p.update(ts="2026-13-45T08:00:00Z"), "ts: '2026-13-45T08:00:00Z' is not a date and time"),
        (lambda p: p.pop("target"), "missing field 'target'"),
        (lambda p: p.update(type="reply"), "type 'reply', not command"),
    ],
)
def test_malformed_commands_are_refused(mutate: Any, message: str) -> None:
    payload = command_payload(command())
    mutate(payload)
    with pytest.raises(CommandError, match=message):
        parse_command(encode(payload))


def test_signatures() -> None:
    signed = command_payload(command(), KEY)
    with pytest.raises(CommandError, match="signature"):
        parse_command(encode(command_payload(command())), KEY)  # unsigned
    with pytest.raises(CommandError, match="signature"):
        parse_command(encode(command_payload(command(), b"another key")), KEY)
    tampered = {**signed, "action": "unblock"}
    with pytest.raises(CommandError, match="signature"):
        parse_command(encode(tampered), KEY)
    for junk in (b"", b"\xff\xfe", b"[]", b"null"):
        with pytest.raises(CommandError):
            parse_command(junk, KEY)


def test_freshness() -> None:
    check_fresh(command(), NOW + timedelta(seconds=599), 600, 60)
    with pytest.raises(CommandError, match="stale"):
        check_fresh(command(), NOW + timedelta(seconds=601), 600, 60)
    with pytest.raises(CommandError, match="future"):
        check_fresh(command(), NOW - timedelta(seconds=61), 600, 60)


@pytest.fixture
def service(tmp_path: Path) -> Any:
    (tmp_path / "key").write_text(KEY.decode() + "\n", encoding="utf-8")

    def override(raw: dict[str, Any]) -> None:
        raw["fleet"] = {"company": "acme", "station_id": "st1", "command_key_file": str(tmp_path / "key"),
                        "broker": {"host": "127.0.0.1", "username": "st1", "password": "x"}}

    config = load_config(write_config(tmp_path, override))
    now = {"t": NOW}
    s = FleetService(config, {}, lambda: now["t"])
    s.now = now
    yield s
    s.store.close()
    s.marks.close()


def test_the_handler_refuses_unsigned_replayed_and_stale_commands(service: Any) -> None:
    reply = service.handle(encode(command_payload(command())))
    assert reply["outcome"] == "refused" and reply["detail"] == "signature missing or wrong"
    signed = encode(command_payload(command(), KEY))
    assert service.handle(signed)["detail"] == "not in this station's cache: blocked as soon as its record arrives"
    assert service.handle(signed)["detail"] == "replayed: this command id was already received"
    service.now["t"] = NOW + timedelta(hours=1)
    late = encode(command_payload(command(id="cmd-00000002"), KEY))
    assert service.handle(late)["detail"].startswith("stale")
    # Not addressed to this station: no answer, nothing done.
    assert service.handle(encode(command_payload(command(id="cmd-00000003", station="st9", ts=service.now["t"]), KEY))) is None
    outcomes = [journal.load(r["data"])["outcome"] for r in service.store.query("SELECT data FROM journal WHERE kind = 'fleet_command'")]
    assert outcomes == ["refused", "applied", "refused", "refused"]
    assert service.store.verify().ok


def test_a_station_without_a_fleet_section_is_as_before(tmp_path: Path) -> None:
    """No MQTT client loaded, nothing written to the fleet outbox, no fleet service."""
    import subprocess
    import sys

    path = write_config(tmp_path)
    script = f"""
import sys
from datetime import datetime, timezone
from edge.cli import build_parser
from edge.config import load_config
from edge.daemon.station import Station, open_store
config = load_config({str(path)!r})
assert config.fleet is None
store = open_store(config)
store.journal(datetime.now(timezone.utc), "scan", {{"code": "x", "accepted": False, "reasons": ["INVALID_CODE"]}}, lane="A")
assert store.query("SELECT count(*) AS n FROM fleet_outbox")[0]["n"] == 0
assert Station(config).fleet is None
assert not [m for m in sys.modules if m.startswith("paho")], "paho loaded"
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
