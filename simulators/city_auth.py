"""The city simulator's checks and shapes that real platforms have and our client must meet.

Written apart from sync/ on purpose, from the profile's declared recipe, so a mistake in our
client's signing or envelope reading cannot be mirrored here and pass unnoticed:

* signatures verified independently (md5, sha256, hmac-sha256, SM3 via gmssl when installed),
  with a timestamp window and nonce replay refusal as real gateways have;
* tokens whose expiry is an absolute time (epoch number or local date-time string);
* nested envelopes: every dotted path in the profile is planted as nested objects;
* natural-key de-duplication that ignores our idempotency key, answering a repeat with a
  "record already exists" code;
* a captive portal: HTML with HTTP 200 for a while, as a hotel or a 4G router does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sync.profile import AuthSpec, Profile, SigningSpec

SIGN_CODE = "4013"  # the gateway's "signature invalid" envelope code
DUPLICATE_CODE = "4009"
DUPLICATE_MESSAGE = "记录已存在 record already exists"
TIMESTAMP_WINDOW_S = 300.0
CAPTIVE_PAGE = (
    "<!DOCTYPE html><html><head><title>Wi-Fi 认证 / Sign in</title></head>"
    "<body><h1>请先登录网络 Please sign in to use the network</h1><form action='/portal'></form></body></html>"
).encode("utf-8")

# What makes two submissions "the same record" to a platform that keys on its own data.
NATURAL_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    # cylinder + fill time: the most precise time the profile sends.
    "filling": (("cylinder_id", "started_at"), ("cylinder_id", "finished_at"), ("cylinder_id", "filling_date")),
    "trace": (("cylinder_id", "node", "time"),),
    "inspection": (("cylinder_id", "inspection_date"),),
    "tag_binding": (("cylinder_id", "qr_content"),),
}


def plant(tree: dict[str, Any], path: str, value: Any) -> None:
    """Put `value` at the dotted `path`, creating the objects on the way."""
    *parents, last = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[last] = value


def expiry_value(auth: AuthSpec, datetime_format: str, ttl_s: float, now: float, as_text: bool) -> Any:
    """What the login reply says about expiry, in the shape the profile declares: a duration, or
    the moment of expiry as an epoch number or (as_text) a local date-time string."""
    scale = 1000 if auth.expires_unit == "ms" else 1
    if auth.expires_kind == "duration":
        return ttl_s * scale
    if not as_text:
        return int((now + ttl_s) * scale)
    return datetime.fromtimestamp(now + ttl_s, ZoneInfo(auth.expires_zone)).strftime(datetime_format)


def natural_key(profile: Profile, kind: str, body: dict[str, Any]) -> tuple[Any, ...] | None:
    fields = profile.fields.get(kind, {})
    for names in NATURAL_KEYS.get(kind, ()):
        if all(n in fields for n in names):
            return (kind, *(body.get(fields[n]) for n in names))
    return None


def _digest(algorithm: str, text: bytes, secret: bytes) -> str:
    if algorithm == "md5":
        return hashlib.md5(text, usedforsecurity=False).hexdigest()
    if algorithm == "sha256":
        return hashlib.sha256(text).hexdigest()
    if algorithm == "hmac-sha256":
        return hmac.new(secret, text, hashlib.sha256).hexdigest()
    try:  # SM3: gmssl's pure-Python implementation when present, a different one from OpenSSL's
        from gmssl import func, sm3

        return str(sm3.sm3_hash(func.bytes_to_list(text)))
    except ImportError:
        return hashlib.new("sm3", text).hexdigest()


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class Gateway:
    """The platform's signature gate: app key known, timestamp fresh, nonce unseen, signature right."""

    def __init__(self, spec: SigningSpec, secrets: dict[str, str]) -> None:
        self.spec, self.secrets = spec, secrets
        self.nonces: set[str] = set()
        self._nonce_order: deque[tuple[float, str]] = deque()  # oldest first, for forgetting
        self.lock = threading.Lock()
        self.verified = 0

    def check(self, headers: Any, body: dict[str, Any], raw: bytes) -> str | None:
        """None if the request is properly signed, else the gateway's complaint."""
        spec = self.spec
        carried = (spec.app_key_field, spec.timestamp_field, spec.nonce_field, spec.signature_field)
        source = body if spec.place == "body" else {k: headers.get(k) for k in carried}
        app_key, stamp = source.get(spec.app_key_field), source.get(spec.timestamp_field)
        nonce, given = source.get(spec.nonce_field), source.get(spec.signature_field)
        if not all(isinstance(v, str) and v for v in (app_key, stamp, nonce, given)):
            return "签名参数缺失 signature elements missing"
        secret = self.secrets.get(str(app_key))
        if secret is None:
            return f"appKey {app_key} 未注册 unknown"
        try:
            sent_at = int(str(stamp)) / (1000 if spec.timestamp_unit == "ms" else 1)
        except ValueError:
            return "时间戳无效 bad timestamp"
        now = time.time()
        if abs(now - sent_at) > TIMESTAMP_WINDOW_S:
            return "时间戳过期 timestamp outside the window"
        values = {"app_key": str(app_key), "timestamp": str(stamp), "nonce": str(nonce), "secret": secret}
        pieces = []
        for part in spec.order:
            if part == "body":
                pieces.append(raw.decode("utf-8"))
            elif part == "params":
                pieces.append(self._params(body, values))
            else:
                pieces.append(values[part])
        expected = _digest(spec.algorithm, spec.join.join(pieces).encode("utf-8"), secret.encode("utf-8"))
        wanted = expected.upper() if spec.hex_case == "upper" else expected
        if not hmac.compare_digest(wanted, str(given)):
            return "签名错误 signature mismatch"
        with self.lock:
            # A nonce need only be remembered while its timestamp could still pass the window.
            while self._nonce_order and self._nonce_order[0][0] < now - 2 * TIMESTAMP_WINDOW_S:
                self.nonces.discard(self._nonce_order.popleft()[1])
            if nonce in self.nonces:
                return "nonce 重复 replayed request"
            self.nonces.add(str(nonce))
            self._nonce_order.append((now, str(nonce)))
            self.verified += 1
        return None

    def _params(self, body: dict[str, Any], values: dict[str, str]) -> str:
        spec = self.spec
        named = {"app_key": spec.app_key_field, "timestamp": spec.timestamp_field, "nonce": spec.nonce_field,
                 "secret": spec.secret_param}
        table = dict(body)
        table.pop(spec.signature_field, None)
        for element in spec.params_with:
            table[named[element]] = values[element]
        kept = [k for k in table if not (spec.skip_empty and table[k] in (None, ""))]
        return spec.pair_join.join(k + "=" + _text(table[k]) for k in sorted(kept))

    def strip(self, body: dict[str, Any]) -> dict[str, Any]:
        """The business body without the signing elements carried in it."""
        if self.spec.place != "body":
            return body
        spec = self.spec
        drop = {spec.app_key_field, spec.timestamp_field, spec.nonce_field, spec.signature_field}
        return {k: v for k, v in body.items() if k not in drop}
