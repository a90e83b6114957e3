"""A simulated station with the staff web app on HTTPS, and a client that logs in like a browser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import requests

from edge.lanes.lane import utc_now
from edge.webapp.accounts import set_secret
from edge.webapp.server import make_certificate

from .conftest import SimStation

STAFF = {"chk-wang": ("checker", "246810"), "op-zhang": ("operator", "135790"), "disp-liu": ("dispatcher", "112233"),
         "mgr-chen": ("manager", "998877")}


def webapp_override(tmp_path: Path, precheck_lane: str | None = "A") -> Callable[[dict[str, Any]], None]:
    cert, key = tmp_path / "tls" / "web.pem", tmp_path / "tls" / "web.key"
    make_certificate(cert, key, ["127.0.0.1", "localhost"])

    def override(raw: dict[str, Any]) -> None:
        raw["webapp"] = {"enabled": True, "host": "127.0.0.1", "port": 0, "tls": {"cert": str(cert), "key": str(key)},
                         "max_failed_logins": 3}
        raw["operators"] += [{"id": "disp-liu", "name": "刘强"}, {"id": "mgr-chen", "name": "陈静"}]
        raw["checks"] = {"photo_dir": str(tmp_path / "photos")}
        for lane in raw["lanes"]:
            lane["require_precheck"] = lane["id"] == precheck_lane

    return override


def enrol(s: SimStation) -> None:
    assert s.station.store is not None
    for person, (role, pin) in STAFF.items():
        set_secret(s.station.store, person, pin, role, utc_now())


def base(s: SimStation) -> str:
    assert s.station.webapp is not None
    return s.station.webapp.url.rstrip("/")


def cert_path(s: SimStation) -> str:
    assert s.config.webapp.tls is not None
    return str(s.config.webapp.tls.cert)


class Client:
    """requests with the station's certificate pinned, reading CSRF tokens from the pages."""

    def __init__(self, s: SimStation | None = None, url: str = "", cert: str = "") -> None:
        self.base = base(s) if s else url.rstrip("/")
        self.http = requests.Session()
        # Per request: a session-wide `verify` loses to REQUESTS_CA_BUNDLE from the environment.
        self.verify = cert_path(s) if s else cert

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("allow_redirects", method != "POST")
        return self.http.request(method, self.base + path, timeout=10, verify=self.verify, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> requests.Response:
        return self.request("POST", path, data=data, **kw)

    def csrf(self, path: str = "/") -> str:
        page = self.get(path).text
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, person: str, pin: str | None = None) -> requests.Response:
        token = self.csrf("/login")
        return self.post("/login", {"csrf": token, "staff_id": person, "secret": pin or STAFF[person][1]})

    def form(self, path: str, data: dict[str, Any], page: str | None = None, **kw: Any) -> requests.Response:
        return self.post(path, {"csrf": self.csrf(page or "/"), **data}, **kw)


def all_items(s: SimStation, kind: str, medium: str = "G13") -> dict[str, str]:
    items = s.config.checks.prefill[medium] if kind == "pre" else s.config.checks.postfill
    return {f"item_{i.id}": "pass" for i in items}


def logged_in(s: SimStation, person: str) -> Client:
    c = Client(s)
    assert c.login(person).status_code == 303, f"{person} could not log in"
    return c


def edge_verify(s: SimStation) -> bool:
    """`edge verify` on the running station's store: the chain, and every row the journal implies."""
    from edge.cli import main

    return main(["verify", "--config", str(Path(str(s.config.store.path)).parent / "station.yaml")]) == 0
