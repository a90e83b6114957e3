"""The fleet's topic tree and versioned JSON payloads (schema: fleet.schema.json beside this file).

    <company>/<station>/event/fill      a finished fill              QoS 1, key = fill id
    <company>/<station>/event/scan      a rejected scan              QoS 1, key = journal entry
    <company>/<station>/lane/<lane>     the lane's present state     retained
    <company>/<station>/health          the station's health         retained; last will: offline
    <company>/<station>/reply           acknowledgements of commands QoS 1
    <company>/_fleet/command            the company's commands       QoS 1, read by every station

Every payload carries "v" (the schema version) and "type". A consumer ignores a version it does not
know rather than misread it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("fleet.schema.json")
COMMAND_SEGMENT = "_fleet"
ACTIONS = ("block", "unblock", "lock", "unlock", "status")
ALL = "*"


def station_topic(company: str, station: str, *parts: str) -> str:
    return "/".join((company, station, *parts))


def command_topic(company: str) -> str:
    return f"{company}/{COMMAND_SEGMENT}/command"


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def envelope(kind: str, company: str, station: str, ts: datetime, **fields: Any) -> dict[str, Any]:
    return {"v": VERSION, "type": kind, "company": company, "station": station, "ts": ts.isoformat(timespec="milliseconds"), **fields}


# Commands -----------------------------------------------------------------------------------


class CommandError(ValueError):
    """A command that is malformed, stale, replayed or wrongly signed: refused, never applied.
    `command_id` is the id it claimed, when it had a well-formed one to answer to."""

    def __init__(self, reason: str, command_id: str | None = None) -> None:
        super().__init__(reason)
        self.command_id = command_id


@dataclass(frozen=True)
class Command:
    id: str
    ts: datetime
    sender: str
    action: str
    station: str  # a station id or "*"
    lane: str | None = None
    identifier: str | None = None
    reason: str = ""

    def targets(self, station: str) -> bool:
        return self.station in (ALL, station)


def command_payload(command: Command, key: bytes | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "v": VERSION,
        "type": "command",
        "id": command.id,
        "ts": command.ts.isoformat(timespec="milliseconds"),
        "sender": command.sender,
        "action": command.action,
        "target": {"station": command.station, **({"lane": command.lane} if command.lane else {})},
        "reason": command.reason,
    }
    if command.identifier is not None:
        payload["identifier"] = command.identifier
    if key is not None:
        payload["signature"] = signature(payload, key)
    return payload


def signature(payload: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 over the canonical JSON of everything but the signature itself."""
    body = encode({k: v for k, v in payload.items() if k != "signature"})
    return hmac.new(key, body, hashlib.sha256).hexdigest()


_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")


def parse_command(raw: bytes, key: bytes | None = None) -> Command:
    """A command from its raw bytes, or CommandError saying what is wrong with it. Checked in this
    order, each step before the next may look: size and depth, JSON, the schema (types, known
    fields only, lengths), then the signature, then what the schema cannot say."""
    # Imported here: jsonschema loads only in a process that receives commands or events.
    from .validation import COMMAND_MAX_BYTES, PayloadError, check, load

    try:
        payload = load(raw, COMMAND_MAX_BYTES)
    except PayloadError as exc:
        raise CommandError(str(exc)) from None
    claimed = payload.get("id") if isinstance(payload, dict) else None
    claimed = claimed if isinstance(claimed, str) and _ID.match(claimed) else None
    try:
        check(payload, "command")
    except PayloadError as exc:
        raise CommandError(str(exc), claimed) from None
    if key is not None:
        given = payload.get("signature")
        if not isinstance(given, str) or not hmac.compare_digest(given, signature(payload, key)):
            raise CommandError("signature missing or wrong", claimed)
    try:
        ts = datetime.fromisoformat(payload["ts"])
    except ValueError:
        raise CommandError(f"ts: {payload['ts']!r} is not a date and time", claimed) from None
    command = Command(
        id=payload["id"], ts=ts, sender=payload["sender"], action=payload["action"],
        station=payload["target"]["station"], lane=payload["target"].get("lane"),
        identifier=payload.get("identifier"), reason=payload["reason"],
    )
    if command.action in ("block", "unblock") and not (command.identifier or "").strip():
        raise CommandError(f"{command.action} needs an identifier", claimed)
    if command.action in ("block", "lock") and not command.reason.strip():
        raise CommandError(f"{command.action} needs a reason", claimed)
    return command


def check_fresh(command: Command, now: datetime, max_age_s: float, max_skew_s: float) -> None:
    """Refuse a command older than max_age_s, or dated ahead of our clock by more than max_skew_s."""
    age = (now - command.ts).total_seconds()
    if age > max_age_s:
        raise CommandError(f"stale: sent {age:.0f} s ago (limit {max_age_s:.0f} s)")
    if -age > max_skew_s:
        raise CommandError(f"dated {-age:.0f} s in the future (clock skew limit {max_skew_s:.0f} s)")
