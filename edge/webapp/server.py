"""Serve the staff's app: a threaded WSGI server (the standard library's wsgiref) in a thread of
the daemon, HTTPS with the configured certificate. A client that speaks plain HTTP to it fails
the TLS handshake and gets nothing: no page, no cookie, no redirect that could be intercepted."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from drivers.base import Scale

from ..config import Config
from ..store import Store
from .app import HEADERS, WebApp

log = logging.getLogger(__name__)

# Names no version: a scanner on the LAN learns nothing to look up in a vulnerability list.
SERVER_NAME = "station-edge"
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Handler(WSGIRequestHandler):
    """One connection. The standard library answers what it cannot parse itself (a bad request
    line, 414, 431) through send_error; those answers carry the same headers as the app's."""

    error_message_format = "%(code)d %(message)s\n"
    # A request line that does not parse leaves this version: an HTTP/0.9 answer has no headers.
    default_request_version = "HTTP/1.0"
    error_content_type = "text/plain; charset=utf-8"

    def version_string(self) -> str:
        return SERVER_NAME

    def end_headers(self) -> None:
        # Only send_error's answers pass here: wsgiref writes the app's headers itself.
        for name, value in self.server.headers:  # type: ignore[attr-defined]
            if name != "Server":
                self.send_header(name, value)
        super().end_headers()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        # Framing is the server's business: a length that is not one plain number would reach
        # the app as a ValueError (a 500); refuse it here with a reason.
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) > 1 or (lengths and not re.fullmatch(r"[0-9]{1,15}", lengths[0].strip())):
            self.send_error(400, "Content-Length must be one number")
            return False
        return True

    def handle(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                # Plain HTTP on the HTTPS port, a scanner probing, a client that gave up.
                log.debug("TLS handshake with %s failed: %s", self.client_address[0], exc)
                return
        super().handle()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return  # the app journals what matters; one log line per request would flood the journal


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], tls: ssl.SSLContext | None, timeout_s: float) -> None:
        self.tls, self.timeout_s = tls, timeout_s
        self.headers = [("Server", SERVER_NAME), *HEADERS.items()]
        if tls is not None:
            self.headers.append(("Strict-Transport-Security", "max-age=31536000"))
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        # A slow or silent client holds only its own thread, and not for long.
        sock.settimeout(self.timeout_s)
        if self.tls is not None:
            # The handshake runs in the request's thread (_Handler.handle), not in the accept loop.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def setup_environ(self) -> None:
        super().setup_environ()
        if self.tls is not None:
            self.base_environ["HTTPS"] = "on"


def with_headers(app: WsgiApp, headers: list[tuple[str, str]]) -> WsgiApp:
    """The app with `headers` on every answer it gives: pages, redirects, errors, even a 500."""
    names = {name.lower() for name, _ in headers}

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(name, value) for name, value in response_headers if name.lower() not in names]
            return start_response(status, kept + headers, exc_info)

        return app(environ, start)

    return wrapped


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


class WebServer:
    """The app on its configured address, in a thread of its own, with its own database connection."""

    def __init__(self, config: Config, clock: Callable[[], datetime], check_scale: Scale | None = None) -> None:
        settings = config.webapp
        tls = tls_context(settings.tls.cert, settings.tls.key) if settings.tls else None
        self.store = Store(config.store.path)
        self.web = WebApp(config, self.store, clock, https=tls is not None, check_scale=check_scale)
        try:
            self._http = _Server((settings.host, settings.port), tls, settings.request_timeout_s)
        except OSError:
            self.store.close()
            raise
        self._http.set_app(with_headers(self.web.app, self._http.headers))
        self.host, self.port = settings.host, self._http.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._http.serve_forever, name="webapp-http", daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/"

    def start(self) -> None:
        self._thread.start()
        log.info("staff web app at %s", self.url)

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self.store.close()


def make_certificate(cert: Path, key: Path, names: list[str], days: int = 3650) -> str:
    """A self-signed certificate for the station's addresses (openssl, as Debian ships it);
    returns its SHA-256 fingerprint, for staff to compare (pin) on their phones."""
    cert.parent.mkdir(parents=True, exist_ok=True)
    key.parent.mkdir(parents=True, exist_ok=True)
    alt = ",".join(f"IP:{n}" if _is_ip(n) else f"DNS:{n}" for n in names)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", str(days), "-subj", "/CN=station-edge",
         "-addext", f"subjectAltName={alt}"],
        check=True, capture_output=True,
    )
    key.chmod(0o600)
    return fingerprint(cert)


def fingerprint(cert: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text(encoding="ascii"))
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False
