"""The staff's pages: log in, pre-fill and post-fill checks, tag binding, dispatch at the gate.

Bottle (one module, no dependencies) routes the requests and escapes every value its templates
show. Security is enforced in one place, a hook in front of every route: a write (any method but
GET/HEAD) needs a live session and its CSRF token, so a route added later cannot forget them;
each page then checks the role its scan point needs. Pages carry no inline script, and the
Content-Security-Policy forbids any, so even a missed escape could not run a hostile QR code.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from typing import Any

import bottle

from drivers.base import Scale

from ..config import Config
from ..output import clock_text
from ..scanpoints import bindings, checks, dispatch
from ..scanpoints.common import Refused, resolve, summary
from ..store import Store
from ..store.database import iso
from . import accounts
from .security import LoginLimiter, Session, Sessions, same_token

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
COOKIE = "edge_session"
LOGIN_COOKIE = "edge_login"  # the login form's CSRF token (double submit: no session yet)
PACKAGE = resources.files("edge.webapp")
SAFE_METHODS = frozenset({"GET", "HEAD"})
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:;"
    " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8"}


class WebApp:
    """The WSGI application and what its pages need: the store, sessions and the login limiter."""

    def __init__(self, config: Config, store: Store, clock: Clock, https: bool, check_scale: Scale | None = None) -> None:
        self.config, self.store, self.clock, self.https = config, store, clock, https
        self.check_scale = check_scale
        self._scale_lock = threading.Lock()  # one reading at a time: the scale's motion state is shared
        settings = config.webapp
        self.sessions = Sessions(settings.session_idle_minutes * 60)
        self.limiter = LoginLimiter(settings.max_failed_logins, settings.lockout_minutes * 60)
        self.max_body = bindings.MAX_PHOTOS * config.checks.max_photo_bytes + 64_000
        # One list object for every render: bottle caches compiled templates by its identity.
        self.lookup = [str(PACKAGE.joinpath("views"))]
        self.app = bottle.Bottle()
        self.app.add_hook("before_request", self._guard)
        # The security headers (HEADERS) go on in the server, on every answer, errors included.
        self.app.error_handler.update({code: self._error for code in (400, 403, 404, 405, 408, 411, 413, 429, 500)})
        self._routes()

    # Security: every request passes here ---------------------------------------------------------

    def _guard(self) -> None:
        request = bottle.request
        if "chunked" in request.get_header("Transfer-Encoding", "").lower():
            # A body without a length could be any size: phones send Content-Length.
            bottle.abort(411, "Content-Length required")
        if request.content_length > self.max_body:
            bottle.abort(413, "request too large")
        path, method = request.path, request.method
        if path.startswith("/static/"):
            return
        if method not in SAFE_METHODS:
            self._parse_body()
        if path == "/login":
            if method not in SAFE_METHODS and not same_token(request.forms.get("csrf"), request.get_cookie(LOGIN_COOKIE)):
                bottle.abort(403, "login form expired: reload the page")
            return
        session = self.sessions.get(request.get_cookie(COOKIE))
        if session is None:
            if method in SAFE_METHODS:
                bottle.redirect("/login")
            bottle.abort(403, "not logged in")
        assert session is not None
        if method not in SAFE_METHODS and not same_token(request.forms.get("csrf"), session.csrf):
            bottle.abort(403, "form token missing or wrong: reload the page")
        request.environ["edge.session"] = session

    @staticmethod
    def _parse_body() -> None:
        """Parse the form once, here, before any route reads it: bottle raises ValueError for a
        part header with control characters (a NUL in a file name), and the socket's timeout for a
        body that stops short of its Content-Length; either would be a 500."""
        try:
            bottle.request.POST  # noqa: B018 (parsed and cached on first access)
        except ValueError:
            bottle.abort(400, "malformed form data: control characters in a part's header")
        except OSError:
            bottle.abort(408, "request body incomplete: it stopped before its Content-Length")

    def _error(self, error: bottle.HTTPError) -> str:
        bottle.response.content_type = "text/html; charset=utf-8"
        return self._page("error", None, status=error.status_code, message=str(error.body))

    # Helpers ---------------------------------------------------------------------------------------

    def _page(self, name: str, session: Session | None, **values: Any) -> str:
        tz = self.config.tz
        return bottle.template(
            name, template_lookup=self.lookup, me=session.actor if session else None,
            csrf=session.csrf if session else "",
            # Stored times are UTC: a page shows the station's local time with its offset.
            when=lambda value, with_date=True: clock_text(value, tz, with_date), **values,
        )

    @staticmethod
    def _session() -> Session:
        return bottle.request.environ["edge.session"]  # type: ignore[no-any-return]

    def _allowed(self, action: str) -> Session:
        session = self._session()
        if not accounts.may(session.actor, action):
            bottle.abort(403, f"your role ({session.actor.role}) may not do this")
        return session

    def _cookie(self, name: str, value: str) -> None:
        bottle.response.set_cookie(name, value, path="/", httponly=True, secure=self.https, samesite="Strict")

    def _address(self) -> str:
        # The socket's peer, never X-Forwarded-For: a header would let a guesser pick its address.
        return str(bottle.request.environ.get("REMOTE_ADDR", "?"))

    # Routes ----------------------------------------------------------------------------------------

    def _routes(self) -> None:
        app = self.app
        app.route("/static/<name>", "GET", self.static)
        app.route("/login", "GET", self.login_form)
        app.route("/login", "POST", self.login)
        app.route("/logout", "POST", self.logout)
        app.route("/", "GET", self.home)
        app.route("/check/<kind:re:pre|post>", "GET", self.check_form)
        app.route("/check/<kind:re:pre|post>", "POST", self.check_submit)
        app.route("/bind", "GET", self.bind_form)
        app.route("/bind", "POST", self.bind_submit)
        app.route("/dispatch", "GET", self.dispatch_form)
        app.route("/dispatch/vehicle", "POST", self.dispatch_vehicle)
        app.route("/dispatch", "POST", self.dispatch_submit)

    def static(self, name: str) -> bytes:
        item = PACKAGE.joinpath("static", name)
        suffix = name[name.rfind("."):] if "." in name else ""
        if "/" in name or suffix not in STATIC_TYPES or not item.is_file():
            bottle.abort(404, "not found")
        bottle.response.content_type = STATIC_TYPES[suffix]
        data: bytes = item.read_bytes()
        return data

    def login_form(self, message: str = "") -> str:
        # Keep a token the browser already holds: a second tab, or the favicon request redirected
        # here, must not invalidate the form that is open.
        token = bottle.request.get_cookie(LOGIN_COOKIE) or ""
        if not re.fullmatch(r"[A-Za-z0-9_-]{32}", token):
            token = secrets.token_urlsafe(24)
            self._cookie(LOGIN_COOKIE, token)
        return bottle.template("login", template_lookup=self.lookup, me=None, csrf=token, message=message)

    def login(self) -> str:
        form = bottle.request.forms
        person, secret = form.getunicode("staff_id", "").strip()[:40], form.getunicode("secret", "")
        keys = (f"account:{person}", f"address:{self._address()}")
        now = self.clock()
        if self.limiter.locked(*keys):
            # Not journalled each time: a guesser hammering a locked account must not fill the journal.
            bottle.response.status = 429
            return self.login_form("尝试次数过多，请稍后再试 / too many wrong PINs: try again later")
        actor = accounts.authenticate(self.store, person, secret)
        if actor is None:
            self.limiter.failed(*keys)
            self.store.journal(now, "staff_login_failed", {"id": person, "address": self._address()})
            if self.limiter.locked(*keys):
                log.warning("staff login locked out for %s from %s after wrong PINs", person, self._address())
                self.store.journal(now, "staff_login_locked", {"id": person, "address": self._address()})
            bottle.response.status = 401
            return self.login_form("工号或密码错误 / wrong staff id or PIN")
        self.limiter.succeeded(keys[0])
        self._cookie(COOKIE, self.sessions.open(actor))
        self.store.journal(now, "staff_login", {"by": actor.id, "role": actor.role, "address": self._address()})
        bottle.redirect("/")
        raise AssertionError("unreachable")  # bottle.redirect raises

    def logout(self) -> None:
        session = self._session()
        self.sessions.close(bottle.request.get_cookie(COOKIE))
        self.store.journal(self.clock(), "staff_logout", {"by": session.actor.id})
        bottle.response.delete_cookie(COOKIE, path="/", secure=self.https, httponly=True, samesite="Strict")
        bottle.redirect("/login")

    def home(self) -> str:
        session = self._session()
        return self._page("home", session, may={a: accounts.may(session.actor, a) for a in accounts.PERMISSIONS})

    # Checks ------------------------------------------------------------------------------------------

    def check_form(self, kind: str) -> str:
        session = self._allowed("check")
        code = bottle.request.query.getunicode("code", "").strip()[:500]
        values: dict[str, Any] = {"kind": kind, "code": code, "cylinder": None, "items": [], "result": None, "problem": ""}
        if code:
            try:
                row = resolve(self.store, self.config, code)
                checks.refuse_own(self.store, self.config, session.actor, kind, row)
                values["cylinder"] = summary(self.store, row)
                values["items"] = checks.prefill_items(self.config, row["medium"]) if kind == "pre" else checks.postfill_items(self.config)
            except Refused as exc:
                values["problem"] = str(exc)
        return self._page("check", session, check_scale=self.check_scale is not None, **values)

    def check_submit(self, kind: str) -> str:
        session = self._allowed("check")
        form = bottle.request.forms
        code = form.getunicode("code", "").strip()[:500]
        ticked = {key[5:]: True for key in form.keys() if key.startswith("item_") and form.get(key) == "pass"}
        values: dict[str, Any] = {"kind": kind, "code": "", "cylinder": None, "items": [], "result": None, "problem": ""}
        try:
            if kind == "pre":
                result = checks.prefill(self.store, self.config, session.actor, code, ticked, self.clock())
            else:
                typed = form.getunicode("reweigh_kg", "").strip()[:40]
                reweigh, source = (checks.parse_reweigh(typed), "typed") if typed else (self._read_check_scale(), "check_scale")
                # Confirmed only for the very value the checker was asked about.
                confirmed = reweigh is not None and form.getunicode("confirm_kg", "") == str(reweigh)
                result = checks.postfill(self.store, self.config, session.actor, code, ticked, self.clock(), reweigh, source, confirmed)
            values["result"] = result
        except checks.Unconfirmed as exc:
            # The same form again, as filled in, asking the checker to confirm the typed value.
            row = resolve(self.store, self.config, code)
            values.update(code=code, cylinder=summary(self.store, row), items=checks.postfill_items(self.config),
                          problem=str(exc), ticked=ticked, confirm_kg=exc.typed_kg)
            bottle.response.status = 422
        except (Refused, ValueError) as exc:
            values["problem"] = str(exc)
            bottle.response.status = 422
        return self._page("check", session, check_scale=self.check_scale is not None, **values)

    def _read_check_scale(self) -> float | None:
        if self.check_scale is None:
            return None  # the filling scale's final reading
        with self._scale_lock:
            return checks.read_check_scale(self.check_scale)

    # Tag binding ---------------------------------------------------------------------------------

    def bind_form(self) -> str:
        return self._page("bind", self._allowed("bind"), result=None, problem="")

    def bind_submit(self) -> str:
        session = self._allowed("bind")
        form = bottle.request.forms
        photos = [upload.file.read(self.config.checks.max_photo_bytes + 1) for upload in bottle.request.files.getall("photos")]
        try:
            result = bindings.bind(
                self.store, self.config, session.actor, form.getunicode("stamp", ""), form.getunicode("tag", ""),
                bindings.tag_kind(form.getunicode("tag_kind", "")), [p for p in photos if p], self.clock(),
                form.getunicode("rebind_reason", ""),
            )
            return self._page("bind", session, result=result, problem="")
        except (Refused, ValueError) as exc:
            bottle.response.status = 422
            return self._page("bind", session, result=None, problem=str(exc))

    # Dispatch ------------------------------------------------------------------------------------

    def dispatch_form(self, result: dict[str, Any] | None = None, problem: str = "") -> str:
        session = self._allowed("dispatch")
        vehicle = session.data.get("vehicle")
        loaded = dispatch.trip_cylinders(self.store, vehicle, session.data["trip_since"]) if vehicle else []
        return self._page("dispatch", session, vehicle=vehicle, loaded=loaded, result=result, problem=problem)

    def dispatch_vehicle(self) -> str:
        session = self._allowed("dispatch")
        form = bottle.request.forms
        try:
            session.data["vehicle"] = dispatch.trip(form.getunicode("plate", ""), form.getunicode("courier", ""))
            session.data["trip_since"] = iso(self.clock())
        except ValueError as exc:
            bottle.response.status = 422
            return self.dispatch_form(problem=str(exc))
        return self.dispatch_form()

    def dispatch_submit(self) -> str:
        session = self._allowed("dispatch")
        vehicle = session.data.get("vehicle")
        if vehicle is None:
            bottle.response.status = 422
            return self.dispatch_form(problem="先填写车牌和送气员 / enter the vehicle and delivery person first")
        code = bottle.request.forms.getunicode("code", "")
        try:
            result = dispatch.dispatch(self.store, self.config, session.actor, vehicle, code, self.clock())
        except (Refused, ValueError) as exc:
            bottle.response.status = 422
            return self.dispatch_form(problem=str(exc))
        return self.dispatch_form(result=result)
