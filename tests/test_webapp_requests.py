"""Malformed requests to the running staff app, written by hand over TLS: each gets a 4xx with a
one-line reason, never a 500, and every answer (the standard library's own 400/414/431 included)
carries the security headers and a Server header that names no version."""

from __future__ import annotations

import re
import socket
import ssl
from pathlib import Path
from typing import Any, Callable

import pytest

from edge.webapp.app import HEADERS

from .conftest import SimStation
from .webapp_support import Client, enrol, webapp_override


@pytest.fixture
def web(make_station: Callable[..., SimStation], tmp_path: Path) -> SimStation:
    s = make_station(webapp_override(tmp_path))
    enrol(s)
    return s


def send_raw(s: SimStation, request: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One request written as bytes over TLS; the answer's status, headers (last of each name, lower
    case) and body, read until the server closes or goes quiet."""
    assert s.station.webapp is not None and s.config.webapp.tls is not None
    ctx = ssl.create_default_context(cafile=str(s.config.webapp.tls.cert))
    reply = b""
    with socket.create_connection(("127.0.0.1", s.station.webapp.port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(request)
            try:
                while chunk := tls.recv(65536):
                    reply += chunk
            except (TimeoutError, ssl.SSLError, ConnectionError):
                pass
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    match = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0])
    assert match, f"no status line in {reply[:200]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(match.group(1)), headers, body


def assert_guarded(headers: dict[str, str]) -> None:
    """The headers every answer carries."""
    for name, value in HEADERS.items():
        assert headers.get(name.lower()) == value, (name, headers)
    assert headers.get("strict-transport-security", "").startswith("max-age=")
    assert headers["server"] == "station-edge" and not re.search(r"\d", headers["server"]), headers["server"]


def multipart(filename: bytes, csrf: str = "x") -> tuple[bytes, bytes]:
    body = (b"--XX\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" + csrf.encode() + b"\r\n"
            b"--XX\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"" + filename + b"\"\r\n"
            b"Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\nrest\r\n--XX--\r\n")
    return b"multipart/form-data; boundary=XX", body


def counts(s: SimStation) -> dict[str, int]:
    assert s.station.store is not None
    return {t: s.station.store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in ("journal", "tag_bindings", "outbox")}


def test_a_nul_in_an_upload_file_name_is_a_400_with_a_reason(web: SimStation) -> None:
    c = Client(web)
    assert c.login("chk-wang").status_code == 303
    before = counts(web)
    cookie = "; ".join(f"{k}={v}" for k, v in c.http.cookies.items())
    ctype, body = multipart(b"stamp\x00.png", c.csrf("/bind"))
    status, headers, text = send_raw(web, b"POST /bind HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: " + cookie.encode()
                                     + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: " + str(len(body)).encode()
                                     + b"\r\n\r\n" + body)
    assert status == 400 and b"malformed form data" in text, (status, text[:300])
    assert_guarded(headers)
    assert counts(web) == before
    # The same request with a plain name reaches the route (and is refused there as no image).
    ctype, body = multipart(b"stamp.png", c.csrf("/bind"))
    status, _, _ = send_raw(web, b"POST /bind HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: " + cookie.encode()
                            + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: " + str(len(body)).encode()
                            + b"\r\n\r\n" + body)
    assert status == 422


@pytest.mark.parametrize("length", [b"abc", b"-5", b"1e3", b"12, 12", b"0x10"])
def test_a_content_length_that_is_not_a_number_is_a_400(web: SimStation, length: bytes) -> None:
    status, headers, text = send_raw(web, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\nstaff_id=a")
    assert status == 400 and text.strip() == b"400 Content-Length must be one number", text
    assert_guarded(headers)


def test_two_content_lengths_are_a_400(web: SimStation) -> None:
    status, headers, _ = send_raw(web, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 300\r\n\r\nabc")
    assert status == 400
    assert_guarded(headers)


def test_the_standard_librarys_own_errors_carry_the_headers(web: SimStation) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
    status, headers, text = send_raw(web, b"GET /login HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status == 431 and len(text.strip().splitlines()) == 1
    assert_guarded(headers)
    status, headers, _ = send_raw(web, b"GET /login HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n")
    assert status == 431
    assert_guarded(headers)
    status, headers, _ = send_raw(web, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    assert status == 414
    assert_guarded(headers)
    status, headers, _ = send_raw(web, b"GET / HTTP/1.1 extra\r\n\r\n")
    assert status == 400
    assert_guarded(headers)


def test_pages_redirects_and_app_errors_carry_the_headers(web: SimStation) -> None:
    c = Client(web)
    for reply in (c.get("/login"), c.get("/", allow_redirects=False), c.get("/nowhere"), c.post("/login", {}),
                  c.get("/static/app.js"), c.request("DELETE", "/login")):
        assert reply.status_code < 500, reply.status_code
        assert_guarded({k.lower(): v for k, v in reply.headers.items()})


def test_a_body_shorter_than_its_content_length_is_a_408_not_a_500(make_station: Callable[..., SimStation], tmp_path: Path) -> None:
    base_override = webapp_override(tmp_path)

    def override(raw: dict[str, Any]) -> None:
        base_override(raw)
        raw["webapp"]["request_timeout_s"] = 1.0

    s = make_station(override)
    enrol(s)
    before = counts(s)
    status, headers, text = send_raw(s, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                                        b"Content-Length: 100\r\n\r\nstaff_id=a", timeout=5)
    assert status == 408 and b"stopped before its Content-Length" in text, (status, text[-200:])
    assert_guarded(headers)
    assert counts(s) == before
