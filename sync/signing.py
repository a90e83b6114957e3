"""Sign a request as the profile's `signing:` recipe says (app key, timestamp, nonce, signature).

The recipe is data (sync.profile.SigningSpec); this module only follows it. SM3 comes from the
interpreter's OpenSSL when it has it (OpenSSL 3 ships SM3 in its default provider), otherwise
from gmssl (`pip install 'station-edge[sm3]'`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from .profile import SigningSpec


class SigningUnavailable(RuntimeError):
    """The recipe names an algorithm this installation cannot compute."""


def _sm3(data: bytes) -> str:
    try:
        return hashlib.new("sm3", data).hexdigest()
    except ValueError:
        pass
    try:
        from gmssl import func, sm3
    except ImportError as exc:
        raise SigningUnavailable(
            "this profile signs with SM3, which neither OpenSSL nor gmssl provides here: pip install 'station-edge[sm3]'"
        ) from exc
    return str(sm3.sm3_hash(func.bytes_to_list(data)))


def digest(algorithm: str, text: str, secret: str) -> str:
    data = text.encode("utf-8")
    if algorithm == "md5":
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    if algorithm == "sha256":
        return hashlib.sha256(data).hexdigest()
    if algorithm == "hmac-sha256":
        return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()
    if algorithm == "sm3":
        return _sm3(data)
    raise SigningUnavailable(f"unknown signing algorithm {algorithm!r}")


def check_available(spec: SigningSpec) -> None:
    """Fail at start-up, not at the first record, when the algorithm is missing."""
    digest(spec.algorithm, "", "")


def _scalar(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Signer:
    def __init__(
        self,
        spec: SigningSpec,
        app_key: str,
        secret: str,
        wall: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        check_available(spec)
        self.spec, self.app_key, self.secret, self.wall, self.nonce = spec, app_key, secret, wall, nonce

    def elements(self) -> dict[str, str]:
        """A fresh app key / timestamp / nonce triple, keyed by the recipe's part names."""
        now = self.wall()
        stamp = int(now * 1000) if self.spec.timestamp_unit == "ms" else int(now)
        return {"app_key": self.app_key, "timestamp": str(stamp), "nonce": self.nonce(), "secret": self.secret}

    def sign(self, body: dict[str, Any], raw: str, elements: dict[str, str]) -> str:
        """The signature of one request whose JSON body is `body`, sent as the text `raw`."""
        spec = self.spec
        parts: list[str] = []
        for part in spec.order:
            if part == "body":
                parts.append(raw)
            elif part == "params":
                parts.append(self._params(body, elements))
            else:
                parts.append(elements[part])
        value = digest(spec.algorithm, spec.join.join(parts), self.secret)
        return value.upper() if spec.hex_case == "upper" else value

    def _params(self, body: dict[str, Any], elements: dict[str, str]) -> str:
        spec = self.spec
        names = {"app_key": spec.app_key_field, "timestamp": spec.timestamp_field, "nonce": spec.nonce_field,
                 "secret": spec.secret_param}
        params = {k: v for k, v in body.items() if k != spec.signature_field}
        params.update({names[e]: elements[e] for e in spec.params_with})
        pairs = sorted(
            (k, _scalar(v)) for k, v in params.items() if not (spec.skip_empty and (v is None or v == ""))
        )
        return spec.pair_join.join(f"{k}={v}" for k, v in pairs)

    def apply(self, body: dict[str, Any], headers: dict[str, str]) -> str:
        """Sign a request in place (headers or body gain the elements) and return the body's text."""
        spec = self.spec
        elements = self.elements()
        carried = {spec.app_key_field: elements["app_key"], spec.timestamp_field: elements["timestamp"],
                   spec.nonce_field: elements["nonce"]}
        if spec.place == "body":
            body.update(carried)
            body[spec.signature_field] = self.sign(body, "", elements)
            return _dumps(body)
        raw = _dumps(body)
        headers.update(carried)
        headers[spec.signature_field] = self.sign(body, raw, elements)
        return raw


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False)
