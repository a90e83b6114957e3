"""The city system's client: one requests session, TLS verified, a timeout on every call, and
every failure classified by what the station should do about it.

| failure                                           | class      | the uploader                    |
| ------------------------------------------------- | ---------- | ------------------------------- |
| connection refused, DNS, TLS, timeout, 5xx, 429   | Retryable  | backs off and retries           |
| 401 or an auth envelope code                      | AuthError  | logs in once, then retry        |
| a duplicate envelope code or HTTP status          | Duplicate  | marks it sent (as a duplicate)  |
| other 4xx, a rejection envelope, a value too long | Rejected   | dead letter, with reason        |
| a reply that is not the envelope (an HTML page)   | Malformed  | backs off; dead after a window  |
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests

from .mapping import FieldTooLong, city_zone, cylinder_from_city, format_datetime, to_city
from .profile import AuthSpec, Profile, dig
from .signing import Signer

log = logging.getLogger(__name__)


class SyncError(Exception):
    """Base of every classified failure; `str()` is the reason shown to the station manager."""


class Retryable(SyncError):
    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class AuthError(SyncError):
    pass


class Rejected(SyncError):
    """The city (or the profile's limits) refuses this record as it stands: retrying cannot help."""


class Duplicate(SyncError):
    """The city already has this record (its answer to a repeat): delivered, not refused."""


class Malformed(SyncError):
    """A reply that is not the city's envelope: a captive portal's or proxy's page, cut-off JSON."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True)
class Tls:
    # True, or the path of a CA bundle that signs the city's certificate.
    verify: bool | str = True
    client_cert: str | tuple[str, str] | None = None


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    total: int | None
    server_time: str | None


class CityClient:
    def __init__(
        self,
        profile: Profile,
        base_url: str,
        credentials: Credentials,
        tls: Tls = Tls(),
        timeout_s: tuple[float, float] = (5.0, 15.0),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
    ) -> None:
        self.profile, self.credentials, self.timeout_s, self.clock = profile, credentials, timeout_s, clock
        self.wall = wall  # for absolute token expiry and signature timestamps
        self.signer = Signer(profile.signing, credentials.username, credentials.password, wall) if profile.signing else None
        # The city's wall-time zone: the profile's, else the station's (`tz`).
        self.tz = city_zone(profile, tz)
        self.base_url = base_url.rstrip("/")
        self.tls = tls
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "application/json; charset=utf-8"
        self._token: str | None = None
        self._token_expires: float | None = None
        self.logins = 0

    def close(self) -> None:
        self.session.close()

    # Business calls ----------------------------------------------------------------------------

    def submit(self, kind: str, record: dict[str, Any], key: str) -> Any:
        """Send one record of `kind` with its idempotency key; returns the city's data member."""
        path = self.profile.endpoint(kind)
        if path is None:
            raise Rejected(f"profile {self.profile.name} has no endpoint for {kind} records")
        try:
            body = to_city(self.profile, kind, record, self.tz)
        except (FieldTooLong, ValueError) as exc:
            raise Rejected(str(exc)) from exc
        if self.profile.idempotency.field:
            body[self.profile.idempotency.field] = key
        return self.call(path, body, key)

    def query_page(self, page: int, page_size: int, changed_since: datetime | None = None) -> Page:
        spec = self.profile.query
        body: dict[str, Any] = {spec.page: page, spec.page_size: min(page_size, spec.max_page_size)}
        if changed_since is not None:
            body[spec.changed_since] = format_datetime(self.profile, changed_since, self.tz)
        return self._page(self.call(spec.path, body))

    def find_cylinder(self, key: str, value: str) -> dict[str, Any] | None:
        """Look one cylinder up by a key the profile knows (info_code, id, product_no ...)."""
        spec = self.profile.query
        if key not in spec.keys:
            raise ValueError(f"profile {self.profile.name} cannot query by {key} (it knows {sorted(spec.keys)})")
        records = self._page(self.call(spec.path, {spec.keys[key]: value, spec.page: spec.first_page, spec.page_size: 1})).records
        return records[0] if records else None

    def bind_tag(self, record: dict[str, Any], photo: Path, key: str) -> Any:
        """Bind a tag to a cylinder with its stamp photo; the city answers with the info code."""
        path = self.profile.endpoints.tag_binding
        if path is None:
            raise Rejected(f"profile {self.profile.name} has no tag_binding endpoint")
        payload = {**record, "photo": base64.b64encode(photo.read_bytes()).decode("ascii"), "photo_name": photo.name}
        try:
            body = to_city(self.profile, "tag_binding", payload, self.tz)
        except FieldTooLong as exc:
            raise Rejected(str(exc)) from exc
        if self.profile.idempotency.field:
            body[self.profile.idempotency.field] = key
        return self.call(path, body, key)

    def _page(self, data: Any) -> Page:
        spec = self.profile.query
        rows = dig(data, spec.records)
        if not isinstance(rows, list):
            raise Malformed(f"query reply without a {spec.records!r} list")
        try:
            records = [cylinder_from_city(self.profile, row, self.tz) for row in rows if isinstance(row, dict)]
        except ValueError as exc:
            raise Malformed(f"cylinder record: {exc}") from exc
        total = dig(data, spec.total)
        server_time = dig(data, spec.server_time) if spec.server_time else None
        return Page(records, total if isinstance(total, int) else None, server_time if isinstance(server_time, str) else None)

    # Transport -----------------------------------------------------------------------------------

    def call(self, path: str, body: dict[str, Any], key: str | None = None) -> Any:
        """POST with a valid token; on an auth refusal, log in again once and repeat."""
        self._ensure_token()
        try:
            return self._post(path, body, key, authorised=True)
        except AuthError:
            log.info("city refused our token; logging in again")
            self._token = None
            self._ensure_token()
            return self._post(path, body, key, authorised=True)

    def login(self) -> None:
        auth = self.profile.auth
        body = {auth.username_field: self.credentials.username, auth.password_field: self.credentials.password}
        try:
            data = self._post(auth.path, body, None, authorised=False)
        except (AuthError, Rejected) as exc:
            # Wrong credentials are the station's problem, not any record's: never dead-letter
            # records for it; keep retrying (slowly) and show it as the last error.
            raise AuthError(f"login refused: {exc}") from exc
        token = dig(data, auth.token_field)
        if not isinstance(token, str):
            raise Malformed(f"login reply without a {auth.token_field!r} string")
        self._token = token
        expires = dig(data, auth.expires_field) if auth.expires_field else None
        lifetime = token_lifetime(auth, self.profile.formats.datetime, expires, self.wall())
        if lifetime is None:
            self._token_expires = None
        else:
            self._token_expires = self.clock() + max(0.0, lifetime - min(auth.renew_margin_s, lifetime / 2))
        self.logins += 1

    def _ensure_token(self) -> None:
        if self._token is None or (self._token_expires is not None and self.clock() >= self._token_expires):
            self.login()

    def _post(self, path: str, body: dict[str, Any], key: str | None, authorised: bool) -> Any:
        headers: dict[str, str] = {}
        if authorised and self._token is not None:
            headers[self.profile.auth.header] = self.profile.auth.scheme + self._token
        if key is not None and self.profile.idempotency.header:
            headers[self.profile.idempotency.header] = key
        # Signed afresh on every attempt: a retry carries a new timestamp and nonce.
        raw = self.signer.apply(dict(body), headers) if self.signer else json.dumps(body, ensure_ascii=False)
        url = self.base_url + path
        try:
            response = self.session.post(
                url,
                data=raw.encode("utf-8"),
                headers=headers,
                timeout=self.timeout_s,
                # Per request, not on the session: requests lets REQUESTS_CA_BUNDLE override a
                # session's verify, and a configured CA bundle must win.
                verify=self.tls.verify,
                cert=self.tls.client_cert,
            )
        except requests.exceptions.SSLError as exc:
            raise Retryable(f"TLS failure talking to {self.base_url}: {_root(exc)}") from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise Retryable(f"connect timeout after {self.timeout_s[0]} s") from exc
        except requests.exceptions.Timeout as exc:
            raise Retryable(f"no answer within {self.timeout_s[1]} s (the city may have the record)") from exc
        except requests.exceptions.ConnectionError as exc:
            raise Retryable(f"cannot reach {self.base_url}: {_root(exc)}") from exc
        except requests.exceptions.RequestException as exc:  # a reply cut off mid-body, and the like
            raise Retryable(f"{type(exc).__name__}: {_root(exc)}") from exc
        return self._classify(response)

    def _classify(self, response: requests.Response) -> Any:
        status = response.status_code
        if status == 401:
            raise AuthError("HTTP 401")
        if status == 429 or status >= 500:
            raise Retryable(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
        spec = self.profile.envelope
        if status in spec.duplicate_statuses:
            raise Duplicate(f"HTTP {status}: {response.text[:200]}")
        if status >= 400:
            raise Rejected(f"HTTP {status}: {response.text[:200]}")
        try:
            envelope = response.json()
        except ValueError as exc:
            raise Malformed(_not_json(response)) from exc
        code_value = dig(envelope, spec.code)
        if code_value is None or isinstance(code_value, (dict, list)):
            raise Malformed(f"HTTP {status} reply without the envelope's {spec.code!r}")
        code = str(code_value)
        message = str(dig(envelope, spec.message) or "")
        if code == spec.success:
            return self._data(dig(envelope, spec.data))
        if code in spec.auth_codes:
            raise AuthError(f"city code {code}: {message}")
        if code in spec.retry_codes:
            raise Retryable(f"city code {code}: {message}")
        if code in spec.duplicate_codes:
            raise Duplicate(f"city code {code}: {message}")
        raise Rejected(f"city code {code}: {message}")

    def _data(self, data: Any) -> Any:
        if self.profile.envelope.data_is_json_string and isinstance(data, str) and data[:1] in ("{", "["):
            try:
                return json.loads(data)
            except ValueError as exc:
                raise Malformed(f"envelope data is not valid JSON: {data[:80]!r}") from exc
        return data


def token_lifetime(auth: AuthSpec, datetime_format: str, value: Any, now: float) -> float | None:
    """Seconds the token stays valid from `now` (wall clock), or None when the reply does not say."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and auth.expires_kind == "absolute" and not value.isdigit():
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            try:
                moment = datetime.strptime(value, datetime_format)
            except ValueError:
                return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(auth.expires_zone))
        return max(0.0, moment.timestamp() - now)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)):
        return None
    seconds = value / 1000 if auth.expires_unit == "ms" else float(value)
    return max(0.0, seconds - now) if auth.expires_kind == "absolute" else seconds


def _not_json(response: requests.Response) -> str:
    text = response.text[:80]
    kind = response.headers.get("Content-Type", "")
    if "html" in kind or text.lstrip()[:1] == "<":
        return f"HTTP {response.status_code} HTML page instead of the envelope (captive portal or proxy?): {text!r}"
    return f"HTTP {response.status_code} reply is not JSON: {text!r}"


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date (RFC 9110 10.2.3); None when absent or nonsense."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _root(exc: BaseException) -> str:
    # requests wraps urllib3's reason in a long pool message; the part after "Caused by" says it.
    text = str(exc) or type(exc).__name__
    return text.split("Caused by ", 1)[-1].rstrip(")")[:200]
