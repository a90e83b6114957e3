"""A city traceability system over HTTPS, speaking whatever profile it is given.

It holds a cylinder registry, records every accepted submission in order, deduplicates by
idempotency key (counting the duplicate attempts it absorbed), and misbehaves on command: refuse
connections, 5xx, stall past the client's timeout, accept and then drop the connection before
answering, malformed JSON, an HTML page, expire every token, reject in the envelope. Faults are
queued from Python (`inject`) or over HTTP (POST /_sim/fault), so a demo or a shell can drive it too.
Switchable platform habits (simulators/city_auth.py): ignore our idempotency key and answer a
repeat on the natural key with "record already exists" (`ignore_keys`), refuse fields it does not
know, a captive portal for a while (`captive`), signed requests, absolute token expiry, nested
envelopes (the profile's dotted paths).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import json
import logging
import random
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from datetime import datetime, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sync.mapping import city_zone, to_city
from sync.profile import SUBMISSIONS, Profile

from . import city_registry
from .city_auth import CAPTIVE_PAGE, DUPLICATE_CODE, DUPLICATE_MESSAGE, SIGN_CODE, Gateway, expiry_value, natural_key, plant

log = logging.getLogger(__name__)

FAULTS = ("http_5xx", "http_429", "stall", "drop_after_accept", "malformed", "html", "reject", "auth_expired")
UNKNOWN_CYLINDER_CODE = "4004"
REJECT_CODE = "4000"
CITY_TZ = ZoneInfo("Asia/Shanghai")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: CitySim) -> None:
        self.sim = sim
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a stalled answer closes its end; writing to it then fails.
        log.debug("city sim: connection from %s ended mid-answer", client_address, exc_info=True)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the connection's own thread, so one slow client cannot hold
        # up accept() for everyone else.
        if self.sim.tls is not None:
            try:
                request = self.sim.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        with self.sim.lock:
            self.sim.connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self.sim.lock:
                self.sim.connections.discard(request)


class CitySim:
    def __init__(
        self,
        profile: Profile,
        registry: list[dict[str, Any]] | None = None,
        users: dict[str, str] | None = None,
        token_ttl_s: float = 3600.0,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        tz: tzinfo = CITY_TZ,
    ) -> None:
        self.tz = city_zone(profile, tz)  # the city's clock: its timestamps are wall times without an offset
        self.profile, self.users, self.token_ttl_s, self.tls = profile, users or {"station": "secret"}, token_ttl_s, tls
        self.host, self.port = host, port
        self.lock = threading.RLock()
        self.connections: set[Any] = set()
        self.registry: dict[str, dict[str, Any]] = {}  # cylinder id -> city-format record
        self._changed: dict[str, datetime] = {}  # cylinder id -> when it last changed
        self._order: list[tuple[datetime, str]] | None = None  # by change time, rebuilt on demand
        self.accepted: dict[str, list[dict[str, Any]]] = {kind: [] for kind in SUBMISSIONS}
        self.by_key: dict[str, tuple[str, int]] = {}
        self.duplicates = 0
        self.calls = 0
        self.logins = 0
        self.faults: deque[str] = deque()
        self.chaos: tuple[float, tuple[str, ...], random.Random] | None = None
        self.stall_s = 2.0
        self.tokens: dict[str, float] = {}
        # Platform habits, off by default (see city_auth): natural-key de-duplication that ignores
        # our key (answered with duplicate_code, or with duplicate_status as the HTTP status),
        # refusing unknown fields, a captive portal until this monotonic time, expiry as text.
        self.natural_keys = False
        self.duplicate_status: int | None = None
        self.strict_fields = False
        self.captive_until = 0.0
        self.expiry_as_text = False
        self.seen: dict[tuple[Any, ...], int] = {}
        self.gateway = Gateway(profile.signing, self.users) if profile.signing else None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.registry_behaviour = city_registry.RegistryBehaviour()
        for row in registry or []:
            self.put_cylinder(row)

    # Control -------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> CitySim:
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        log.info("city simulator (%s) at %s", self.profile.name, self.base_url)
        return self

    def stop(self) -> None:
        """Close the listening socket and every open connection: clients now get ECONNREFUSED."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def refuse(self, refusing: bool) -> None:
        """Refuse connections (an outage) or come back on the same port."""
        if refusing:
            self.stop()
        elif self._server is None:
            self.start()

    def inject(self, fault: str, count: int = 1) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        with self.lock:
            self.faults.extend([fault] * count)

    def intermittent(self, rate: float, faults: tuple[str, ...], seed: int = 1) -> None:
        """Each call from now on meets one of `faults` with probability `rate` (0 turns it off)."""
        with self.lock:
            self.chaos = (rate, faults, random.Random(seed)) if rate > 0 else None

    def ignore_keys(self, on: bool = True, duplicate_status: int | None = None, strict_fields: bool = False) -> None:
        """Behave like a platform that de-duplicates on cylinder + fill time and ignores our key."""
        with self.lock:
            self.natural_keys, self.duplicate_status, self.strict_fields = on, duplicate_status, strict_fields

    def captive(self, seconds: float) -> None:
        """Answer every call with a captive portal's HTML page (HTTP 200) for `seconds` from now."""
        with self.lock:
            self.captive_until = time.monotonic() + seconds

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def put_cylinder(self, row: dict[str, Any], when: datetime | None = None) -> None:
        """Add or change a cylinder (our field names) as of `when` (aware; default now)."""
        changed = self.wall_time(when)
        record = to_city(self.profile, "cylinder", {**row, "updated_at": changed.replace(tzinfo=self.tz)}, self.tz)
        with self.lock:
            self.registry[row["id"]] = record
            self.registry_behaviour.removed.pop(row["id"], None)
            self.touch(row["id"], changed)

    def remove_cylinder(self, cylinder_id: str, when: datetime | None = None) -> None:
        """The cylinder leaves the registry (see `registry_behaviour.removal_style`)."""
        city_registry.remove(self, cylinder_id, when)

    def wall_time(self, when: datetime | None = None) -> datetime:
        """`when` (aware; default now) as the city's own clock shows it: wall time, whole seconds."""
        return (when or datetime.now(self.tz)).astimezone(self.tz).replace(tzinfo=None, microsecond=0)

    def drop(self, cylinder_id: str) -> None:
        """Forget a cylinder: no listing or lookup finds it any more."""
        with self.lock:
            del self.registry[cylinder_id]
            del self._changed[cylinder_id]
            self._order = None

    def touch(self, cylinder_id: str, changed: datetime) -> None:
        with self.lock:
            self._changed[cylinder_id] = changed
            self._order = None

    def records(self, kind: str = "filling") -> list[dict[str, Any]]:
        with self.lock:
            return list(self.accepted[kind])

    # Requests ------------------------------------------------------------------------------------

    def handle(self, path: str, headers: Any, body: Any, raw: bytes = b"") -> tuple[int, dict[str, str], bytes | None]:
        """(HTTP status, headers, body); a body of None means drop the connection unanswered."""
        with self.lock:
            self.calls += 1
            fault = self.faults.popleft() if self.faults else None
            if fault is None and self.chaos is not None:
                rate, kinds, rng = self.chaos
                fault = rng.choice(kinds) if rng.random() < rate else None
            if time.monotonic() < self.captive_until:
                fault = "html"
        if fault == "html":
            return 200, {"Content-Type": "text/html; charset=utf-8"}, CAPTIVE_PAGE
        if fault == "http_5xx":
            return 503, {}, b"<html>503 Service Unavailable</html>"
        if fault == "http_429":
            return 429, {"Retry-After": "0.05"}, b""
        if fault == "malformed":
            return 200, {}, b'{"code": "200", "data": '
        if fault == "stall":
            time.sleep(self.stall_s)
        if fault == "auth_expired":
            self.expire_tokens()
        status, extra, reply = self._route(path, headers, body, fault == "reject", raw)
        # Processed, and then the connection drops before the answer leaves: a login, a query or
        # an accepted record the client will never hear about.
        return (status, extra, None) if fault == "drop_after_accept" else (status, extra, reply)

    def _route(self, path: str, headers: Any, body: Any, reject: bool, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        if not isinstance(body, dict):
            return 400, {}, b"body must be a JSON object"
        if self.gateway is not None:
            complaint = self.gateway.check(headers, body, raw)
            if complaint:
                return self._envelope(SIGN_CODE, complaint)
            body = self.gateway.strip(body)
        if path == self.profile.auth.path:
            return self._login(body)
        if not self._authorised(headers):
            codes = self.profile.envelope.auth_codes
            if not codes:
                return 401, {}, b""
            return self._envelope(codes[0], "token invalid or expired")
        if path == self.profile.query.path:
            return self._query(body)
        removed_since = self.profile.query.removal.removed_since
        if removed_since is not None and path == removed_since.path:
            answer = city_registry.removed_since(self, body)
            return self._envelope(answer[0], "ok", answer[1]) if answer else self._envelope(REJECT_CODE, "bad query")
        for kind in SUBMISSIONS:
            if getattr(self.profile.endpoints, SUBMISSIONS[kind]) == path:
                if reject:
                    return self._envelope(REJECT_CODE, "系统拒绝 (injected rejection)")
                return self._submit(kind, headers, body)
        return 404, {}, b"no such endpoint"

    def _login(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        auth = self.profile.auth
        user, password = body.get(auth.username_field), body.get(auth.password_field)
        if not isinstance(user, str) or self.users.get(user) != password:
            codes = self.profile.envelope.auth_codes
            return self._envelope(codes[0] if codes else "403", "用户名或密码错误")
        token = uuid.uuid4().hex
        with self.lock:
            self.tokens[token] = time.monotonic() + self.token_ttl_s
            self.logins += 1
        data: dict[str, Any] = {}
        plant(data, auth.token_field, token)
        if auth.expires_field:
            expiry = expiry_value(auth, self.profile.formats.datetime, self.token_ttl_s, time.time(), self.expiry_as_text)
            plant(data, auth.expires_field, expiry)
        return self._envelope(self.profile.envelope.success, "ok", data)

    def _authorised(self, headers: Any) -> bool:
        auth = self.profile.auth
        value = headers.get(auth.header) or ""
        token = value[len(auth.scheme):] if value.startswith(auth.scheme) else None
        with self.lock:
            expiry = self.tokens.get(token or "")
        return expiry is not None and time.monotonic() < expiry

    def _query(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        spec, fields = self.profile.query, self.profile.fields["cylinder"]
        since = datetime.min
        if spec.changed_since in body:
            try:
                since = datetime.strptime(str(body[spec.changed_since]), self.profile.formats.datetime)
            except ValueError:
                return self._envelope(REJECT_CODE, f"{spec.changed_since}: bad time format")
        with self.lock:
            if self._order is None:
                self._order = sorted((when, cid) for cid, when in self._changed.items())
            first = bisect.bisect_left(self._order, (since, ""))
            rows = [self.registry[cid] for _, cid in self._order[first:]]
        listing = True
        for ours, condition in spec.keys.items():
            if condition in body:
                listing = False
                rows = [r for r in rows if r.get(fields[ours]) == body[condition]]
        try:
            page, size = int(body.get(spec.page, spec.first_page)), int(body.get(spec.page_size, 20))
        except (TypeError, ValueError):
            return self._envelope(REJECT_CODE, "bad paging")
        size = city_registry.page_size(self, size)
        start = (page - spec.first_page) * size
        data: dict[str, Any] = {}
        plant(data, spec.records, rows[start:start + size])
        plant(data, spec.total, len(rows))
        if spec.server_time:
            plant(data, spec.server_time, datetime.now(self.tz).strftime(self.profile.formats.datetime))
        reply = self._envelope(self.profile.envelope.success, "ok", data)
        if listing:
            city_registry.listing_page_served(self, page - spec.first_page + 1)
        return reply

    def _submit(self, kind: str, headers: Any, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        fields = self.profile.fields[kind]
        spec = self.profile.idempotency
        if self.strict_fields:
            unknown = sorted(set(body) - set(fields.values()))
            if unknown:
                return self._envelope(REJECT_CODE, f"未知字段 unknown fields {unknown}")
        key: Any = None
        natural_only = self.natural_keys or not (spec.header or spec.field)
        if not natural_only:
            key = headers.get(spec.header) if spec.header else body.get(spec.field or "")
            if not key or (spec.header and spec.field and body.get(spec.field) != key):
                return self._envelope(REJECT_CODE, "idempotency key missing or not the same in header and body")
        if fields["cylinder_id"] not in body:
            return self._envelope(REJECT_CODE, f"缺少字段 {fields['cylinder_id']} missing")
        for ours, limit in self.profile.limits.get(kind, {}).items():
            value = body.get(fields.get(ours, ""))
            if isinstance(value, str) and len(value) > limit:
                return self._envelope(REJECT_CODE, f"{fields[ours]} 超长 longer than {limit}")
        cylinder = body.get(fields["cylinder_id"])
        with self.lock:
            if key in self.by_key:
                self.duplicates += 1
                _, index = self.by_key[key]
                return self._envelope(self.profile.envelope.success, "duplicate ignored", {"ref": index})
            natural = natural_key(self.profile, kind, body)
            if natural_only and natural in self.seen:
                self.duplicates += 1
                if self.duplicate_status is not None:
                    return self.duplicate_status, {}, DUPLICATE_MESSAGE.encode("utf-8")
                return self._envelope(DUPLICATE_CODE, DUPLICATE_MESSAGE)
            if cylinder not in self.registry:
                return self._envelope(UNKNOWN_CYLINDER_CODE, f"气瓶档案不存在 unknown cylinder {cylinder}")
            data: dict[str, Any] = {}
            if kind == "tag_binding":
                photo = body.get(fields.get("photo", ""))
                try:
                    if not photo or not base64.b64decode(photo, validate=True):
                        raise binascii.Error("empty")
                except (binascii.Error, TypeError):
                    return self._envelope(REJECT_CODE, "钢印图片无效 stamp photo missing or not base64")
                info_field = self.profile.fields["cylinder"]["info_code"]
                info_code = self.registry[cylinder].get(info_field) or f"SIM{len(self.accepted[kind]) + 1:08d}"
                self.registry[cylinder][info_field] = info_code
                data[info_field] = info_code
            self.accepted[kind].append(body)
            index = len(self.accepted[kind])
            if key is not None:
                self.by_key[key] = (kind, index)
            if natural is not None:
                self.seen[natural] = index
        return self._envelope(self.profile.envelope.success, "ok", {"ref": index, **data})

    def _envelope(self, code: str, message: str, data: Any = None) -> tuple[int, dict[str, str], bytes]:
        spec = self.profile.envelope
        envelope: dict[str, Any] = {}
        plant(envelope, spec.code, code)
        plant(envelope, spec.message, message)
        if data is not None:
            plant(envelope, spec.data, json.dumps(data, ensure_ascii=False) if spec.data_is_json_string else data)
        return 200, {}, json.dumps(envelope, ensure_ascii=False).encode("utf-8")

    def admin(self, path: str, body: Any) -> tuple[int, dict[str, str], bytes]:
        if path == "/_sim/fault" and isinstance(body, dict):
            try:
                self.inject(str(body.get("kind")), int(body.get("count", 1)))
            except ValueError as exc:
                return 400, {}, str(exc).encode()
            return 200, {}, b"{}"
        if path == "/_sim/state":
            with self.lock:
                state = {"accepted": {k: len(v) for k, v in self.accepted.items()}, "duplicates": self.duplicates,
                         "calls": self.calls, "logins": self.logins, "queued_faults": len(self.faults)}
            return 200, {}, json.dumps(state).encode()
        return 404, {}, b""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one TLS session carries many records
    # Headers and body leave in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK (40 ms a call).
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError):
            body = None
        sim = self.server.sim
        path = self.path.split("?", 1)[0]
        status, headers, reply = sim.admin(path, body) if path.startswith("/_sim/") else sim.handle(path, self.headers, body, raw)
        if reply is None:
            self.close_connection = True  # accepted, and the answer is lost on the way back
            return
        self.send_response(status)
        for name, value in {"Content-Type": "application/json; charset=utf-8", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        log.debug("city sim: " + format, *args)


def tls_context(ca_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A throwaway CA (its PEM written to `ca_path` for clients) and a server certificate for
    127.0.0.1/localhost signed by it."""
    try:
        import trustme
    except ImportError as exc:
        raise RuntimeError("the city simulator needs trustme: pip install 'station-edge[sim]'") from exc
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    ca_path.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(ca_path))
    return context, ca_path


def main(argv: list[str] | None = None) -> int:
    from simulators.dataset import generate
    from sync.profile import load_profile

    parser = argparse.ArgumentParser(description="Run the city simulator until interrupted")
    parser.add_argument("--profile", default="chongqing")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--ca-out", default="city-ca.pem", help="where the CA is written for clients to trust")
    parser.add_argument("--cylinders", type=int, default=400)
    parser.add_argument("--owner-unit", default="重庆渝北燃气有限公司")
    parser.add_argument("--region", default="500112")
    parser.add_argument("--user", default="station:secret", help="USER:PASSWORD accepted at login")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    context, ca_path = tls_context(Path(args.ca_out))
    user, _, password = args.user.partition(":")
    rows = [g.row for g in generate(args.cylinders, args.owner_unit, args.region, datetime.now().date())]
    sim = CitySim(load_profile(args.profile), rows, {user: password}, port=args.port, tls=context).start()
    print(f"city simulator at {sim.base_url}; CA bundle {ca_path}; faults: POST /_sim/fault {{\"kind\": ...}}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
