"""Every fleet payload is checked before anything reads it, in this order: its size, its nesting
depth (counted on the raw bytes, so a deeply nested document never reaches the JSON parser's
recursion), UTF-8 and strict JSON, the schema version, then the shipped schema for its type
(types, known fields only, lengths). Only then may a station check a command's signature, or a
collector store an event.

The schema (fleet.schema.json) is the single description of every payload; the validators here
are built from it by name. A new payload type is its definition under "$defs" and a "$ref" to it
in the top-level "oneOf"; a new event the collector stores (published on
<company>/<station>/event/<type>) is also one more name in EVENT_TYPES, and carries "key" and
"day" like the others (the collector keys and groups on them).
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from .protocol import SCHEMA_FILE, VERSION

# No legitimate payload nests deeper than a status reply (reply > status > lane_states > lane).
MAX_DEPTH = 6
COMMAND_MAX_BYTES = 4 * 1024
EVENT_MAX_BYTES = 64 * 1024
# Events the collector keeps, one row each keyed on (station, key); each is published on
# <company>/<station>/event/<type>.
EVENT_TYPES = ("fill", "scan", "chain_head")
# Retained station state the collector keeps as the latest per station.
STATE_TYPES = ("health",)

_SHORT = 40  # how much of an offending value or field name a reason quotes


class PayloadError(ValueError):
    """A payload refused before any effect; the message is the reason, short and safe to echo."""

    def __init__(self, reason: str, claimed_id: str | None = None) -> None:
        super().__init__(reason)
        self.claimed_id = claimed_id


def load(raw: bytes, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse raw bytes as JSON after checking their size and depth; PayloadError otherwise."""
    if len(raw) > max_bytes:
        raise PayloadError(f"{len(raw)} bytes, more than the {max_bytes} allowed")
    _check_depth(raw, max_depth)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        reason = str(exc)
        raise PayloadError(f"not JSON: {reason if len(reason) <= 80 else reason[:79] + '…'}") from None


def check(payload: Any, kind: str | None = None) -> dict[str, Any]:
    """The payload, if it is a version-1 object of a known type (of `kind`, when given) that its
    schema accepts; PayloadError with the first problem otherwise."""
    if not isinstance(payload, dict):
        raise PayloadError(f"a JSON {_json_type(payload)}, not an object")
    if payload.get("v") != VERSION:
        raise PayloadError(f"schema version {_short(payload.get('v'))} not understood (this side speaks {VERSION})")
    declared = payload.get("type")
    if kind is not None and declared != kind:
        raise PayloadError(f"type {_short(declared)}, not {kind}")
    validator = _validators().get(declared) if isinstance(declared, str) else None
    if validator is None:
        raise PayloadError(f"unknown type {_short(declared)}")
    error = best_match(validator.iter_errors(payload))
    if error is not None:
        raise PayloadError(describe(error))
    return payload


def describe(error: ValidationError) -> str:
    """A reason a person can read, that never echoes a long value back."""
    where = ".".join(str(p) for p in error.absolute_path)
    field = where or "payload"
    rule, limit, value = error.validator, error.validator_value, error.instance
    if rule == "additionalProperties" and isinstance(value, dict):
        known = error.schema.get("properties", {})
        extra = sorted(k for k in value if k not in known)
        return f"unknown field {_short('.'.join(filter(None, (where, extra[0] if extra else '?'))))}"
    if rule == "required" and isinstance(value, dict):
        missing = [k for k in limit if k not in value]
        return f"missing field {_short('.'.join(filter(None, (where, missing[0] if missing else '?'))))}"
    if rule == "type":
        return f"{field}: must be {' or '.join(limit) if isinstance(limit, list) else limit}, not {_json_type(value)}"
    if rule in ("maxLength", "maxItems"):
        return f"{field}: longer than {limit}"
    if rule in ("minLength", "minItems"):
        return f"{field}: shorter than {limit}"
    if rule in ("enum", "const"):
        return f"{field}: {_short(value)} is not one of {_short(limit if rule == 'enum' else [limit], 120)}"
    if rule == "pattern":
        return f"{field}: {_short(value)} does not match {limit}"
    return f"{field}: fails {rule}"


def prepare() -> None:
    """Build the validators ahead of the first payload."""
    _validators()


@cache
def _validators() -> dict[str, Draft202012Validator]:
    """One validator per payload type, each the schema's definition of that name."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    definitions = schema["$defs"]
    names = [entry["$ref"].rsplit("/", 1)[1] for entry in schema["oneOf"]]
    return {name: Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": definitions}) for name in names}


# Only the characters that open, close or quote matter for depth; an escape inside a string is
# consumed whole so an escaped quote does not end it.
_STRUCTURE = re.compile(rb'\\.|["\[\]{}]', re.S)


def _check_depth(raw: bytes, limit: int) -> None:
    depth, in_string = 0, False
    for match in _STRUCTURE.finditer(raw):
        token = match.group()
        if token == b'"':
            in_string = not in_string
        elif in_string or len(token) == 2:
            continue
        elif token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                raise PayloadError(f"nested deeper than {limit} levels")
        else:
            depth -= 1


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a field appears twice")
    return result


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _short(value: Any, limit: int = _SHORT) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = repr(text) if isinstance(value, str) else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_message(topic: str, raw: bytes) -> dict[str, Any]:
    """A station's message as the company receives it: the payload checked, and consistent with
    the topic it came on (the broker's ACL vouches for the topic's station, not the payload's)."""
    parts = topic.split("/")
    payload = check(load(raw, EVENT_MAX_BYTES))
    kind = payload["type"]
    if len(parts) == 4 and parts[2] == "event":
        expected = parts[3]
        if expected not in EVENT_TYPES:
            raise PayloadError(f"no event type {_short(expected)} (known: {', '.join(EVENT_TYPES)})")
    elif len(parts) == 3 and parts[2] in STATE_TYPES:
        expected = parts[2]
    else:
        raise PayloadError("not an event or state topic")
    if kind != expected:
        raise PayloadError(f"a {_short(kind)} payload on a {expected} topic")
    if (payload["company"], payload["station"]) != (parts[0], parts[1]):
        raise PayloadError(f"says {_short(payload['company'])}/{_short(payload['station'])}, came on {parts[0]}/{parts[1]}")
    return payload
