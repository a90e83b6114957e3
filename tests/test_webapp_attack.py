"""A black-box attack on the running staff app, as a hostile or careless person on the station LAN
would try it: the real HTTPS server, an HTTP client, raw sockets for what no client sends, and
chromium for sessions and CSRF. The routes come from the app's own route table, the fields from
the forms its pages serve, so a route or field added later is attacked too (or the first test
says it needs a class). After every attempt nothing was written (journal, fills, outbox, checks,
bindings, dispatches, identifiers, photo files) and the store verifies; `edge verify` runs after
each class of attempts."""

from __future__ import annotations

import functools
import html.parser
import http.server
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from edge.cli import main
from edge.lanes.lane import utc_now
from edge.scanpoints.common import ROLES, Actor
from edge.webapp import accounts
from interlock import codes
from simulators.photos import stamp_photo

from .conftest import SimStation
from .test_webapp_browser import chromium  # noqa: F401 (the fixture: Debian's chromium at phone size)
from .test_webapp_photos import HOSTILE as NOT_IMAGES
from .test_webapp_photos import bomb
from .test_webapp_requests import assert_guarded, send_raw
from .webapp_support import STAFF, Client, all_items, enrol, webapp_override

TABLES = ("journal", "fills", "outbox", "checks", "tag_bindings", "dispatches", "identifiers", "staff", "shifts")
# What each route's page needs: routes reachable without a session, with any session, or with
# the permission (accounts.PERMISSIONS) of one scan point. Keyed by the route's handler name.
PUBLIC = {"static", "login_form", "login"}
ANY_SESSION = {"home", "logout"}
ACTION = {"check_form": "check", "check_submit": "check", "bind_form": "bind", "bind_submit": "bind",
          "dispatch_form": "dispatch", "dispatch_vehicle": "dispatch", "dispatch_submit": "dispatch"}
SAMPLES = {"<kind:re:pre|post>": ("pre", "post"), "<name>": ("app.js",)}
PERSON = {role: next(p for p, (r, _) in STAFF.items() if r == role) for role in ROLES}

HOSTILE_TEXT: list[str | bytes] = [
    '"><script>alert(1)</script><img src=x onerror=alert(2)>',
    "' OR '1'='1'; DROP TABLE fills; --",
    "CQ\x00500112",
    "x\r\nSet-Cookie: edge_session=forged",
    "\u202egnp.exe\u200b",
    "𠜎😀" * 40,
    "%s%n{0}${jndi:ldap://x/a}",
    "../../../../etc/passwd",
    "Z" * 5000,
    "nan",
    "-1e309",
    b"\xff\xfe\xc0\xaf",  # not UTF-8 at all
]
# A field whose every value is a legitimate answer: hostile text there may be recorded, as text
# (a radio value other than "pass" records a failed item; a rebind's reason is free text, and a
# binding of a free tag goes ahead whatever it says). A tag kind is one of the spec's two words.
MAY_RECORD = {"item_", "rebind_reason"}


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)  # name -> the value the page gives it
    files: set[str] = field(default_factory=set)


class _Forms(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif tag in ("input", "select", "textarea") and self.forms and a.get("name"):
            form = self.forms[-1]
            if a.get("type") == "file":
                form.files.add(a["name"])
            elif a.get("type") != "radio" or a.get("value") == "pass":
                form.fields.setdefault(a["name"], a.get("value", ""))


def forms(page: str) -> list[Form]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


@pytest.fixture
def web(make_station: Callable[..., SimStation], tmp_path: Path) -> SimStation:
    s = make_station(webapp_override(tmp_path))
    enrol(s)
    return s


def routes(s: SimStation) -> list[tuple[str, str, str]]:
    """(method, path, handler name) for every route of the running app, path parameters filled in."""
    assert s.station.webapp is not None
    found = []
    for route in s.station.webapp.web.app.routes:
        paths = [route.rule]
        for pattern, values in SAMPLES.items():
            if pattern in route.rule:
                paths = [p.replace(pattern, v) for p in paths for v in values]
        for path in paths:
            assert "<" not in path, f"add a sample value for {route.rule} to SAMPLES"
            found.append((route.method, path, route.callback.__name__))
    return found


def written(s: SimStation) -> dict[str, Any]:
    assert s.station.store is not None
    store = s.station.store
    folder = Path(s.config.checks.photo_dir or "")
    return {**{t: store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in TABLES},
            "photos": sorted(str(p) for p in folder.rglob("*")) if folder.is_dir() else []}


def verified(s: SimStation) -> None:
    """The store's chain and rows hold, and `edge verify` (the command a manager runs) says so."""
    assert s.station.store is not None and s.station.store.audit_problem() is None
    assert main(["verify", "--config", str(Path(str(s.config.store.path)).parent / "station.yaml")]) == 0


class Attempts:
    """Each attempt runs, then the store is compared with before it: nothing may have been written."""

    def __init__(self, s: SimStation) -> None:
        self.s, self.count = s, 0

    def __call__(self, what: str, attempt: Callable[[], Any], may_write: bool = False) -> Any:
        before = written(self.s)
        result = attempt()
        if not may_write:
            assert written(self.s) == before, f"{what} wrote something"
        assert self.s.station.store is not None and self.s.station.store.audit_problem() is None, what
        self.count += 1
        return result


def login_all(s: SimStation) -> dict[str, Client]:
    clients = {}
    for role, person in PERSON.items():
        clients[role] = Client(s)
        assert clients[role].login(person).status_code == 303, role
    return clients


def test_every_route_of_the_app_has_a_class(web: SimStation) -> None:
    found = routes(web)
    assert len(found) >= 12, found
    unknown = {name for _, _, name in found} - PUBLIC - ANY_SESSION - set(ACTION)
    assert not unknown, f"new routes {unknown}: say who may use them (PUBLIC, ANY_SESSION or ACTION)"
    assert set(ACTION.values()) == set(accounts.PERMISSIONS), "an action of the app that this test does not attack"


def test_missing_expired_or_forged_sessions_reach_nothing(web: SimStation) -> None:
    real = Client(web)
    assert real.login("mgr-chen").status_code == 303
    token = real.http.cookies["edge_session"]
    ended = Client(web)
    assert ended.login("chk-wang").status_code == 303
    ended_token = ended.http.cookies["edge_session"]
    assert ended.form("/logout", {}).status_code == 303
    forged = {"none": None, "random": secrets.token_urlsafe(32), "ended": ended_token, "altered": token[:-2] + "xx",
              "empty": "", "huge": "A" * 4000, "two cookies": f"{secrets.token_urlsafe(32)}; edge_session={secrets.token_urlsafe(32)}",
              "quoted": f'"{token}x"', "login token": real.http.cookies.get("edge_login", "")}
    attempt = Attempts(web)
    csrf = real.csrf()
    for method, path, name in routes(web):
        if name in PUBLIC:
            continue
        for label, value in forged.items():
            headers = {} if value is None else {"Cookie": f"edge_session={value}"}
            c = Client(web)
            reply = attempt(f"{method} {path} with {label} session",
                            lambda: c.request(method, path, data={"csrf": csrf}, headers=headers, allow_redirects=False))
            if method in ("GET", "HEAD"):
                assert reply.status_code == 303 and reply.headers["Location"].endswith("/login"), (path, label, reply.status_code)
            else:
                assert reply.status_code == 403, (method, path, label, reply.status_code)
            assert_guarded({k.lower(): v for k, v in reply.headers.items()})
    assert real.get("/", allow_redirects=False).status_code == 200  # the real session was never hurt
    verified(web)


def test_csrf_variants_are_refused_on_every_write_route(web: SimStation) -> None:
    clients = login_all(web)
    manager, other = clients["manager"], clients["checker"]
    good, others = manager.csrf(), other.csrf()
    login_token = Client(web).csrf("/login")
    variants: dict[str, Callable[[str, str], Any]] = {
        "no token": lambda m, p: manager.request(m, p, data={}),
        "empty token": lambda m, p: manager.request(m, p, data={"csrf": ""}),
        "wrong token": lambda m, p: manager.request(m, p, data={"csrf": secrets.token_urlsafe(32)}),
        "truncated token": lambda m, p: manager.request(m, p, data={"csrf": good[:-1]}),
        "longer token": lambda m, p: manager.request(m, p, data={"csrf": good + "A"}),
        "another session's token": lambda m, p: manager.request(m, p, data={"csrf": others}),
        "the login form's token": lambda m, p: manager.request(m, p, data={"csrf": login_token}),
        "token in the query only": lambda m, p: manager.request(m, p + f"?csrf={good}", data={}),
        "token in a header only": lambda m, p: manager.request(m, p, data={}, headers={"X-CSRF-Token": good}),
        "token as JSON": lambda m, p: manager.request(m, p, json={"csrf": good}),
        "token, cross-site origin": lambda m, p: manager.request(
            m, p, data={"csrf": others}, headers={"Origin": "https://evil.example", "Referer": "https://evil.example/"}),
    }
    attempt = Attempts(web)
    for method, path, name in routes(web):
        if method in ("GET", "HEAD") or name in PUBLIC:
            continue
        for label, send in variants.items():
            reply = attempt(f"{method} {path}: {label}", lambda: send(method, path))
            assert reply.status_code == 403, (path, label, reply.status_code)
    # The login form: its own double-submit token, refused without it or with a mismatch.
    anonymous = Client(web)
    token = anonymous.csrf("/login")
    for label, data, cookie in (("no token", {}, None), ("token without its cookie", {"csrf": token}, ""),
                                ("mismatched token", {"csrf": secrets.token_urlsafe(24)}, None)):
        c = Client(web) if cookie == "" else anonymous
        reply = attempt(f"login: {label}", lambda: c.post("/login", {**data, "staff_id": "mgr-chen", "secret": STAFF["mgr-chen"][1]}))
        assert reply.status_code == 403, (label, reply.status_code)
    assert manager.get("/", allow_redirects=False).status_code == 200
    verified(web)


def test_role_boundaries_hold_on_every_route(web: SimStation) -> None:
    clients = login_all(web)
    attempt = Attempts(web)
    for role, c in clients.items():
        actor = Actor(PERSON[role], PERSON[role], role)
        token = c.csrf()
        for method, path, name in routes(web):
            if name not in ACTION:
                continue
            allowed = accounts.may(actor, ACTION[name])
            # An allowed write with an empty form is refused by the page (422), never a 403 or a write.
            reply = attempt(f"{role} {method} {path}", lambda: c.request(method, path, data={"csrf": token}))
            if allowed:
                assert reply.status_code in (200, 422), (role, method, path, reply.status_code)
            else:
                assert reply.status_code == 403 and f"({role})" in reply.text, (role, method, path, reply.status_code)
    verified(web)


@pytest.mark.slow
def test_role_boundaries_person_rule_the_operator_never_checks_their_own_fill(web: SimStation) -> None:
    """A checker put on lane A's shift as its operator can neither pre-check what the lane will fill
    nor post-check the fill they operated; both attempts write nothing."""
    from edge.store import staff

    assert web.station.store is not None
    staff.assign(web.station.store, web.config, "A", "chk-wang", "mgr-chen", utc_now())
    operator, checker = Client(web), Client(web)
    assert operator.login("chk-wang").status_code == 303 and checker.login("mgr-chen").status_code == 303
    cylinder = web.cylinder(skip=8)
    code = cylinder.row["qr_content"]
    attempt = Attempts(web)
    own_pre = attempt("the lane's operator pre-checks a cylinder", lambda: operator.form("/check/pre", {"code": code, **all_items(web, "pre")}))
    assert own_pre.status_code == 422 and "充装人员不得检查自己充装的气瓶" in own_pre.text
    pre = checker.form("/check/pre", {"code": code, **all_items(web, "pre")})
    assert pre.status_code == 200 and "合格 PASSED" in pre.text
    assert web.scan("A", code)["accepted"]
    web.modbus("A").model.place(cylinder.row["tare_kg"] + 0.1)
    assert web.wait("A", "fill_end", timeout=30)["status"] == "complete"
    web.modbus("A").model.remove()
    post = attempt("the fill's operator post-checks it", lambda: operator.form("/check/post", {"code": code, **all_items(web, "post")}))
    assert post.status_code == 422 and "充装人员不得检查" in post.text
    verified(web)


def _is_identifier(value: str | bytes) -> bool:
    """Hostile-looking text that is still a well-formed tag (a product number such as "nan")."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8")
    return not isinstance(codes.parse(raw, codes.Source.OPTICAL, []), codes.Invalid)


def _hostile_attempts(web: SimStation, values: list[str | bytes]) -> int:
    """Every form the pages serve (the look-ups' GET forms too), each field in turn given each
    hostile value, the other fields what a careful user would send."""
    clients = login_all(web)
    manager = clients["manager"]
    attempt = Attempts(web)
    target = web.cylinder(skip=9).row
    assert manager.form("/dispatch/vehicle", {"plate": "渝A12345", "courier": "赵六"}).status_code == 200  # shows the scan form
    pages = ["/", "/check/pre", "/check/post", "/bind", "/dispatch",
             *(f"/check/{kind}?code={target['qr_content']}" for kind in ("pre", "post"))]
    found: dict[tuple[str, str], Form] = {}
    for page in pages:
        for form in forms(manager.get(page).text):
            found.setdefault((form.method, form.action), form)
    assert {("post", a) for a in ("/check/pre", "/check/post", "/bind", "/dispatch/vehicle", "/dispatch", "/logout")} | \
        {("get", "/check/pre"), ("get", "/check/post")} <= set(found), set(found)
    good = {"code": target["qr_content"], "stamp": target["product_no"], "tag_kind": "qr", "plate": "渝A12345", "courier": "赵六",
            **all_items(web, "pre"), **all_items(web, "post")}
    tags = iter(range(10_000))
    # The binding form last: a hostile-looking text that is a well-formed tag ("nan") may be bound,
    # and would then name a cylinder in the other forms' attempts.
    for (method, action), form in sorted(found.items(), key=lambda item: item[0][1] == "/bind"):
        if action == "/logout":
            continue
        for name in form.fields:
            if name == "csrf":
                continue
            for value in values:
                data: dict[str, Any] = {k: good.get(k, v) for k, v in form.fields.items()}
                data["csrf"] = manager.csrf()
                if action == "/bind":
                    data["tag"] = f"https://sim.example/q?code=CQATTACK{next(tags):04d}"
                data[name] = value
                files = {n: ("stamp.png", stamp_photo("stamp")) for n in form.files} or None
                may = any(name.startswith(p) for p in MAY_RECORD) or (name == "tag" and _is_identifier(value))
                if method == "get":
                    reply = attempt(f"GET {action}?{name}={value!r:.40}", lambda: manager.get(action, params={name: value}))
                    assert reply.status_code == 200, (action, name, value, reply.status_code)  # the page says what is wrong
                else:
                    reply = attempt(f"{action} {name}={value!r:.40}", lambda: manager.post(action, data, files=files), may_write=may)
                    assert reply.status_code < 500, (action, name, value, reply.status_code)
                    if not may:
                        assert 400 <= reply.status_code < 500 or action == "/dispatch/vehicle", (action, name, value, reply.status_code)
                assert "<script>alert" not in reply.text and "<img src=x" not in reply.text and "Set-Cookie: edge" not in str(reply.headers)
                assert "Traceback" not in reply.text
                assert "could not convert" not in reply.text, (action, name, reply.text[-300:])
    # The login form, once (the address lockout would stop more): a failed login, journalled as such.
    anonymous = Client(web)
    token = anonymous.csrf("/login")
    assert web.station.store is not None
    failed = len(web.station.store.query("SELECT seq FROM journal WHERE kind = 'staff_login_failed'"))
    reply = anonymous.post("/login", {"csrf": token, "staff_id": values[0], "secret": values[0]})
    assert reply.status_code == 401 and "<script>alert" not in reply.text
    assert len(web.station.store.query("SELECT seq FROM journal WHERE kind = 'staff_login_failed'")) == failed + 1
    verified(web)
    return attempt.count


def test_hostile_text_in_every_field(web: SimStation) -> None:
    assert _hostile_attempts(web, HOSTILE_TEXT[:1] + [b"\xff\xfe\xc0\xaf"]) > 20


@pytest.mark.slow
def test_hostile_text_in_every_field_every_kind(web: SimStation) -> None:
    assert _hostile_attempts(web, HOSTILE_TEXT) > 100


def test_uploads_that_are_not_images(web: SimStation) -> None:
    c = Client(web)
    assert c.login("chk-wang").status_code == 303
    target = web.cylinder(skip=10).row
    uploads = {**NOT_IMAGES, "a decompression bomb": bomb(), "an empty file": b"", "HTML named .jpg": b"<html>hi</html>",
               "a PNG cut off in its pixels, a script after": stamp_photo("x")[:45] + b"<script>alert(1)</script>"}
    attempt = Attempts(web)
    fields = {"stamp": target["product_no"], "tag": "https://sim.example/q?code=CQUPLOAD01", "tag_kind": "qr"}
    for label, data in uploads.items():
        reply = attempt(f"upload {label}", lambda: c.form("/bind", fields, files=[("photos", ("stamp.jpg", data))]))
        assert reply.status_code == 422, (label, reply.status_code)
    # Five photos, one too many; a photo field that is not a file.
    five = [("photos", (f"s{i}.png", stamp_photo(str(i)))) for i in range(5)]
    reply = attempt("five photos", lambda: c.form("/bind", fields, files=five))
    assert reply.status_code == 422
    reply = attempt("photo as text", lambda: c.form("/bind", {**fields, "photos": "not a file"}))
    assert reply.status_code == 422
    verified(web)


def test_malformed_requests_over_raw_sockets(web: SimStation) -> None:
    c = Client(web)
    assert c.login("chk-wang").status_code == 303
    cookie = f"edge_session={c.http.cookies['edge_session']}".encode()
    csrf = c.csrf().encode()
    form = b"csrf=" + csrf + b"&code=CQ1"

    def post(path: bytes, headers: bytes, body: bytes) -> bytes:
        return b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: " + cookie + b"\r\n" + headers + b"\r\n" + body

    nul_name = (b"--B\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" + csrf + b"\r\n--B\r\nContent-Disposition: form-data;"
                b" name=\"photos\"; filename=\"a\x00.png\"\r\n\r\n\x89PNG\r\n--B--\r\n")
    multipart = b"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: %d\r\n"
    bell_name = nul_name.replace(b"a\x00", b"a\x07")
    requests_ = {
        "NUL in an upload's file name": post(b"/bind", multipart % len(nul_name), nul_name),
        "Content-Length not a number": post(b"/check/pre", b"Content-Length: twelve\r\n", form),
        "negative Content-Length": post(b"/check/pre", b"Content-Length: -1\r\n", form),
        "two Content-Lengths": post(b"/check/pre", b"Content-Length: %d\r\nContent-Length: 5\r\n" % len(form), form),
        "chunked body": post(b"/check/pre", b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
        "17 MB announced": post(b"/bind", b"Content-Length: 17000000\r\n", b""),
        "multipart without a boundary": post(b"/bind", b"Content-Type: multipart/form-data\r\nContent-Length: %d\r\n" % len(form), form),
        "multipart cut off": post(b"/bind", b"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 12\r\n", b"--B\r\nContent"),
        "control characters in a part header": post(b"/bind", multipart % len(bell_name), bell_name),
        "101 headers": b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(101)) + b"\r\n",
        "a 70 kB header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
        "a 70 kB request line": b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        "a request line of four words": b"GET / HTTP/1.1 x\r\n\r\n",
        "HTTP/0.9": b"GET /\r\n\r\n",
        "HTTP/3.0": b"GET / HTTP/3.0\r\n\r\n",
        "a NUL in the path": b"GET /check/pre\x00x HTTP/1.1\r\nHost: x\r\nCookie: " + cookie + b"\r\n\r\n",
        "a path that is not UTF-8": b"GET /check/\xff\xfe HTTP/1.1\r\nHost: x\r\nCookie: " + cookie + b"\r\n\r\n",
        "percent-encoded NUL": b"GET /check/pre?code=%00%ff HTTP/1.1\r\nHost: x\r\nCookie: " + cookie + b"\r\n\r\n",
        "an absolute URI": b"GET https://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        "an unknown method": b"BREW /check/pre HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "a header without a colon": b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
        "a cookie header of garbage": b"GET / HTTP/1.1\r\nHost: x\r\nCookie: \x01\x02;;==;edge_session\r\n\r\n",
    }
    attempt = Attempts(web)
    for label, raw in requests_.items():
        status, headers, body = attempt(label, lambda: send_raw(web, raw))
        assert status < 500 or (label == "HTTP/3.0" and status == 505), (label, status, body[:200])
        assert_guarded(headers)
        assert b"Traceback" not in body
        if status >= 400:
            assert len(body.strip().splitlines()) <= 1 or b"<html" in body, (label, body[:300])  # a one-line reason, or the error page
    assert c.get("/", allow_redirects=False).status_code == 200  # the server still serves
    verified(web)


# The browser ----------------------------------------------------------------------------------------


@pytest.fixture
def evil_site(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Another origin on the LAN serving a page that posts a form to the app (classic CSRF)."""
    folder = tmp_path / "evil"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def page(html: str) -> str:
        name = f"{secrets.token_hex(4)}.html"
        (folder / name).write_text(html, encoding="utf-8")
        return f"http://127.0.0.1:{server.server_address[1]}/{name}"

    yield page
    server.shutdown()
    server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


def test_browser_sessions_and_csrf(web: SimStation, chromium: Callable[[Path | None], Any], evil_site: Callable[[str], str]) -> None:
    from selenium.webdriver.common.by import By

    from .test_webapp_browser import wait_for

    url = Client(web).base
    driver = chromium(None)
    driver.get(url + "/login")
    wait_for(driver, "#staff_id").send_keys("mgr-chen")
    driver.find_element(By.ID, "secret").send_keys(STAFF["mgr-chen"][1])
    driver.find_element(By.CSS_SELECTOR, "form button").click()
    wait_for(driver, "a[href='/bind']")
    target = web.cylinder(skip=11).row
    attempt = Attempts(web)

    def body() -> str:
        return str(driver.find_element(By.TAG_NAME, "body").text)

    def arrived(target: str, timeout: float = 10.0) -> None:
        """Wait until the auto-submitted form's answer is the page shown (the app has answered)."""
        deadline = time.monotonic() + timeout
        while driver.current_url != target or driver.execute_script("return document.readyState") != "complete":
            assert time.monotonic() < deadline, f"the form never reached {target}: at {driver.current_url}"
            time.sleep(0.05)

    # A page on another origin auto-submits forms to the app while the manager is logged in.
    for action, fields in (("/check/pre", {"code": target["qr_content"], **all_items(web, "pre")}),
                           ("/dispatch/vehicle", {"plate": "渝A12345", "courier": "x"}), ("/logout", {})):
        inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
        evil = evil_site(f'<form id="f" method="post" action="{url}{action}">{inputs}</form>'
                         '<script>document.getElementById("f").submit()</script>')
        attempt(f"cross-site POST {action}", lambda: (driver.get(evil), arrived(url + action)))
        assert "403" in driver.title and "合格 PASSED" not in body(), (action, driver.title, body()[:200])
    driver.get(url + "/")
    assert driver.find_elements(By.CSS_SELECTOR, "a[href='/bind']"), "the cross-site logout ended the session"
    # The page's own form with its token removed or altered in the page.
    for label, script in (("removed", "document.querySelector('input[name=csrf]').remove()"),
                          ("altered", "document.querySelector('input[name=csrf]').value = 'forged'")):
        driver.get(url + f"/check/pre?code={target['qr_content']}")
        wait_for(driver, "input[type=radio][value=pass]")
        for radio in driver.find_elements(By.CSS_SELECTOR, "input[type=radio][value=pass]"):
            driver.execute_script("arguments[0].click()", radio)
        driver.execute_script(script.replace("input[name=csrf]", "form[method=post]:not(.inline) input[name=csrf]"))
        attempt(f"token {label}", lambda: driver.find_element(By.ID, "record").click())
        assert "form token missing or wrong" in wait_for(driver, "#problem").text, label
    # A forged session cookie, then none: the login page, nothing else.
    driver.delete_cookie("edge_session")
    driver.add_cookie({"name": "edge_session", "value": secrets.token_urlsafe(32), "path": "/"})
    driver.get(url + "/bind")
    wait_for(driver, "#staff_id")
    driver.delete_all_cookies()
    driver.get(url + "/dispatch")
    wait_for(driver, "#staff_id")
    assert attempt.count == 5
    verified(web)
