"""The staff web app over real HTTPS against a simulated station: sessions, CSRF, lockout, plain
HTTP, escaping, and each scan point's effect on the interlock, the journal and the outbox."""

from __future__ import annotations

import io
import json
from datetime import datetime
import socket
import ssl
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from edge.cli import main
from edge.lanes.lane import utc_now
from edge.store.journal import load as load_entry
from interlock.reasons import Reason
from simulators.photos import stamp_photo

from .conftest import SimStation
from .webapp_support import STAFF, Client, all_items, base, enrol, webapp_override

HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


@pytest.fixture
def web(make_station: Callable[..., SimStation], tmp_path: Path) -> SimStation:
    s = make_station(webapp_override(tmp_path))
    enrol(s)
    return s


def checker(s: SimStation) -> Client:
    c = Client(s)
    assert c.login("chk-wang").status_code == 303
    return c


def raw_request(s: SimStation, rest: bytes) -> bytes:
    """A POST written by hand over TLS, for what requests will not send; the reply's first bytes."""
    assert s.station.webapp is not None and s.config.webapp.tls is not None
    ctx = ssl.create_default_context(cafile=str(s.config.webapp.tls.cert))
    with socket.create_connection(("127.0.0.1", s.station.webapp.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"POST /bind HTTP/1.1\r\nHost: x\r\n" + rest)
            return tls.recv(100)


def journal(s: SimStation, kind: str) -> list[dict[str, Any]]:
    assert s.station.store is not None
    return [load_entry(r["data"]) for r in s.station.store.query("SELECT data FROM journal WHERE kind = ? ORDER BY seq", [kind])]


# Security ------------------------------------------------------------------------------------------


def test_every_write_route_refuses_without_a_session_or_with_a_bad_csrf_token(web: SimStation) -> None:
    assert web.station.webapp is not None
    routes = [(r.method, r.rule) for r in web.station.webapp.web.app.routes if r.method not in ("GET", "HEAD")]
    assert len(routes) >= 6, routes  # found from the app itself, not listed by hand
    samples = {"<kind:re:pre|post>": "pre"}
    anonymous, logged_in = Client(web), checker(web)
    good = logged_in.csrf()
    for method, rule in routes:
        path = rule
        for pattern, value in samples.items():
            path = path.replace(pattern, value)
        assert "<" not in path, f"add a sample value for {rule}"
        if path == "/login":
            # The login form's own token (no session yet): refused without it.
            assert anonymous.request(method, path, data={"staff_id": "chk-wang", "secret": "x"}).status_code == 403
            continue
        assert anonymous.request(method, path, data={"csrf": good}, allow_redirects=False).status_code == 403, rule
        for token in (None, "wrong", good[:-1]):
            data = {} if token is None else {"csrf": token}
            got = logged_in.request(method, path, data=data, allow_redirects=False)
            assert got.status_code == 403, (rule, token, got.status_code)
    # Nothing was written by any of those requests.
    assert web.station.store is not None
    assert web.station.store.query("SELECT count(*) AS n FROM checks")[0]["n"] == 0
    assert logged_in.get("/").status_code == 200  # and the session still works with its token
    # Bodies have a length, and a bounded one.
    assert raw_request(web, b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").startswith(b"HTTP/1.0 411")
    # Refused on its headers, before any of the announced 17 MB is read.
    assert raw_request(web, b"Content-Length: 17000000\r\n\r\n").startswith(b"HTTP/1.0 413")


def test_session_cookie_is_secure_httponly_samesite_and_pages_forbid_inline_script(web: SimStation) -> None:
    c = Client(web)
    reply = c.login("chk-wang")
    cookie = reply.headers["Set-Cookie"]
    assert "edge_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    page = c.get("/")
    assert "script-src" not in page.headers["Content-Security-Policy"] and "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<script>" not in page.text  # only external, same-origin scripts
    # Anonymous pages send the visitor to the login page.
    assert Client(web).get("/check/pre", allow_redirects=False).headers["Location"].endswith("/login")


def test_session_expires_when_idle(web: SimStation) -> None:
    assert web.station.webapp is not None
    sessions = web.station.webapp.web.sessions
    now = [1000.0]
    sessions.clock = lambda: now[0]
    c = checker(web)
    assert c.get("/check/pre", allow_redirects=False).status_code == 200
    now[0] += sessions.idle_s - 1
    assert c.get("/check/pre", allow_redirects=False).status_code == 200  # activity restarts the idle clock
    now[0] += sessions.idle_s + 1
    assert c.get("/check/pre", allow_redirects=False).status_code == 303


def test_wrong_pins_lock_out_the_account_and_the_address(web: SimStation) -> None:
    c = Client(web)
    for _ in range(3):
        assert c.login("chk-wang", "000000").status_code == 401
    # The right PIN is refused now: the account is locked out.
    locked = c.login("chk-wang")
    assert locked.status_code == 429 and "too many" in locked.text
    # The address is locked too: guessing another account from it does not work either.
    assert c.login("mgr-chen").status_code == 429
    assert c.login("mgr-chen").status_code == 429
    # Three failures journalled and one lockout; the refused attempts add nothing.
    assert len(journal(web, "staff_login_failed")) == 3 and len(journal(web, "staff_login_locked")) == 1
    # Once the window has passed, the right PIN works again.
    assert web.station.webapp is not None
    limiter = web.station.webapp.web.limiter
    limiter.clock = (lambda real: (lambda: real() + limiter.window_s + 1))(limiter.clock)
    assert c.login("chk-wang").status_code == 303


def test_plain_http_to_the_https_port_gets_nothing(web: SimStation) -> None:
    url = base(web).replace("https://", "http://")
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/login", timeout=5)
    with socket.create_connection(("127.0.0.1", web.station.webapp.port), timeout=5) as sock:  # type: ignore[union-attr]
        sock.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert b"HTTP/" not in sock.recv(4096)
    # TLS itself works, with the certificate pinned.
    ctx = ssl.create_default_context(cafile=str(web.config.webapp.tls.cert))  # type: ignore[union-attr]
    with socket.create_connection(("127.0.0.1", web.station.webapp.port), timeout=5) as raw:  # type: ignore[union-attr]
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_config_refuses_plain_http_off_the_loopback(tmp_path: Path) -> None:
    from edge.config.webapp import WebAppConfig

    with pytest.raises(ValueError, match="tls"):
        WebAppConfig(enabled=True, host="0.0.0.0")
    assert WebAppConfig(enabled=True, host="127.0.0.1").tls is None


def test_hostile_scans_and_cylinder_fields_are_shown_as_text(web: SimStation) -> None:
    assert web.station.store is not None
    target = web.cylinder(skip=3)
    with web.station.store.transaction() as conn:
        conn.execute("UPDATE cylinders SET model = ?, owner_unit = ? WHERE id = ?", (HOSTILE, HOSTILE, target.row["id"]))
    c = checker(web)
    pages = [
        c.get("/check/pre", params={"code": HOSTILE}).text,  # a QR code carrying markup
        c.get("/check/pre", params={"code": target.row["qr_content"]}).text,  # a record carrying it
        c.form("/check/pre", {"code": HOSTILE}).text,
        c.form("/bind", {"stamp": HOSTILE, "tag": HOSTILE, "tag_kind": "qr"}, files={"photos": ("p.png", stamp_photo("stamp"))}).text,
    ]
    d = Client(web)
    d.login("disp-liu")
    d.form("/dispatch/vehicle", {"plate": "渝A12345", "courier": "<b>x</b>"})
    pages.append(d.form("/dispatch", {"code": HOSTILE}).text)
    pages.append(d.get("/dispatch").text)
    for page in pages:
        assert "<script>alert" not in page and "<img src=x" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[1]


# The scan points -----------------------------------------------------------------------------------


def test_require_precheck_lane_refuses_until_a_checker_passes_the_cylinder(web: SimStation) -> None:
    cylinder = web.cylinder()
    code = cylinder.row["qr_content"]
    refused = web.scan("A", code)
    assert not refused["accepted"] and refused["reasons"] == [Reason.PRECHECK_MISSING]
    c = checker(web)
    page = c.get("/check/pre", params={"code": code}).text
    assert cylinder.row["id"] in page and cylinder.row["model"] in page and "钢印标记" in page
    # One failed item refuses the cylinder and says which.
    items = all_items(web, "pre")
    failed = c.form("/check/pre", {"code": code, **items, "item_valve": "fail"})
    assert "不合格 REFUSED" in failed.text and "瓶阀及螺纹完好" in failed.text
    assert web.scan("A", code)["reasons"] == [Reason.PRECHECK_FAILED]
    # The refusal holds on lane B too, which does not require checks.
    assert web.scan("B", code)["reasons"] == [Reason.PRECHECK_FAILED]
    passed = c.form("/check/pre", {"code": code, **items})
    assert "合格 PASSED" in passed.text
    web.modbus("A").model.place(cylinder.row["tare_kg"] + 0.1)
    verdict = web.scan("A", code)
    assert verdict["accepted"], verdict
    end = web.wait("A", "fill_end", timeout=30)
    fill = web.fill_row(end["fill_id"])
    check = journal(web, "check_prefill")[-1]
    assert fill["precheck_id"] == check["id"] and fill["checker"] == "王芳" and check["by"] == "chk-wang"
    # A check is good for one fill: the next scan of the same cylinder needs a new one.
    web.modbus("A").model.remove()
    assert web.scan("A", code)["reasons"] == [Reason.PRECHECK_MISSING]
    # Lane B does not require the check.
    assert web.scan("B", web.cylinder(skip=1).row["qr_content"])["accepted"]


def checked_fill(s: SimStation, skip: int) -> dict[str, Any]:
    """A cylinder pre-checked (through the scan-point function the app calls) and filled on lane A,
    whose scale and relay answer Modbus TCP."""
    from edge.scanpoints import Actor, checks

    cylinder = s.cylinder(skip=skip)
    assert s.station.store is not None
    checks.prefill(s.station.store, s.config, Actor("chk-wang", "王芳", "checker"), cylinder.row["qr_content"],
                   {i.id: True for i in s.config.checks.prefill["G13"]}, utc_now())
    s.start_fill("A", cylinder)
    end = s.wait("A", "fill_end", timeout=30)
    assert end["status"] == "complete"
    s.modbus("A").model.remove()
    return cylinder.row


def test_postfill_check_and_dispatch_at_the_gate(web: SimStation) -> None:
    row = checked_fill(web, 2)
    code = row["qr_content"]
    d = Client(web)
    assert d.login("disp-liu").status_code == 303
    assert d.get("/check/post").status_code == 403  # a dispatcher does not check
    d.form("/dispatch/vehicle", {"plate": "渝a12345", "courier": "赵六"})
    refused = d.form("/dispatch", {"code": code})
    assert refused.status_code == 422 and "未做充装后检查" in refused.text
    c = checker(web)
    # An overfill found at the re-weigh (on a check scale) fails the check and blocks dispatch.
    heavy = str(round(row["tare_kg"] + row["fill_mass_kg"] + 2.0, 2))
    # Typed 2 kg above the filling scale's final reading: the checker confirms the value first.
    asked = c.form("/check/post", {"code": code, **all_items(web, "post"), "reweigh_kg": heavy})
    assert asked.status_code == 422 and 'name="confirm_kg"' in asked.text
    flagged = c.form("/check/post", {"code": code, **all_items(web, "post"), "reweigh_kg": heavy, "confirm_kg": heavy})
    assert "OVERFILLED" in flagged.text and "不合格 REFUSED" in flagged.text
    refused = d.form("/dispatch", {"code": code})
    assert "超装" in refused.text and "充装后检查不合格" in refused.text
    # Decanted and re-weighed on the filling scale's reading: passes, and leaves.
    passed = c.form("/check/post", {"code": code, **all_items(web, "post")})
    assert "合格 PASSED" in passed.text
    out = d.form("/dispatch", {"code": code})
    assert out.status_code == 200 and "放行 OUT" in out.text and 'id="count">1<' in out.text
    # Times on the staff's pages are the station's local time with its offset, not UTC cut short.
    tz = web.config.tz
    dispatched = web.station.store.query("SELECT at FROM dispatches ORDER BY rowid DESC LIMIT 1")[0]["at"]  # type: ignore[union-attr]
    assert f"<small>{datetime.fromisoformat(dispatched).astimezone(tz):%H:%M:%S} +08:00</small>" in out.text
    started = web.station.store.query("SELECT started_at FROM fills WHERE cylinder_id = ?", [row["id"]])[0]["started_at"]  # type: ignore[union-attr]
    assert f"{datetime.fromisoformat(started).astimezone(tz):%Y-%m-%d %H:%M} +08:00 complete" in asked.text, asked.text
    entry = journal(web, "dispatch")[-1]
    assert entry["plate"] == "渝A12345" and entry["courier"] == "赵六" and entry["by"] == "disp-liu"
    assert web.station.store is not None
    node = web.station.store.query("SELECT payload FROM outbox WHERE idempotency_key LIKE 'dispatch:%'")
    assert json.loads(node[0]["payload"])["node"] == "dispatch"
    # Chongqing's profile has no fields for checks: none was queued.
    assert web.station.store.query("SELECT count(*) AS n FROM outbox WHERE kind = 'fill_check'")[0]["n"] == 0
    # A cylinder never filled here cannot leave.
    assert "最近一次充装未完成" in d.form("/dispatch", {"code": web.cylinder(skip=7).row["qr_content"]}).text
    assert web.station.store.verify().ok


def test_daily_report_counts_dispatches_per_vehicle(web: SimStation, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.scanpoints import Actor, checks, dispatch

    row = checked_fill(web, 4)
    assert web.station.store is not None
    store, config = web.station.store, web.config
    checks.postfill(store, config, Actor("chk-wang", "王芳", "checker"), row["qr_content"],
                    {i.id: True for i in config.checks.postfill}, utc_now())
    dispatch.dispatch(store, config, Actor("disp-liu", "刘强", "dispatcher"), dispatch.trip("渝B7", "赵六"),
                      row["qr_content"], utc_now())
    config_path = Path(str(config.store.path)).parent / "station.yaml"
    assert main(["report", "daily", "--config", str(config_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dispatches"] == [{"plate": "渝B7", "courier": "赵六", "cylinders": 1}]


def test_tag_binding_binds_at_once_and_queues_the_photo_for_the_city(web: SimStation) -> None:
    target = web.cylinder(skip=5).row
    new_tag = "https://sim.example/q?code=CQNEWTAG0001"
    c = checker(web)
    photo = stamp_photo("stamp")
    bound = c.form("/bind", {"stamp": target["product_no"].lower(), "tag": new_tag, "tag_kind": "qr"},
                   files=[("photos", ("stamp1.png", photo)), ("photos", ("stamp2.png", photo + b"\x00"))])
    assert bound.status_code == 200 and "已绑定 BOUND" in bound.text, bound.text
    # The cache finds the cylinder by its new tag at once; the old info code no longer does.
    assert web.station.store is not None
    row = web.station.store.query("SELECT cylinder_id FROM identifiers WHERE value = 'CQNEWTAG0001'")
    assert row == [{"cylinder_id": target["id"]}]
    entry = journal(web, "tag_bound")[-1]
    assert entry["by"] == "chk-wang" and len(entry["photos"]) == 2
    import hashlib

    stored = (Path(web.config.checks.photo_dir) / entry["photos"][0]["file"]).read_bytes()  # type: ignore[arg-type]
    assert entry["photos"][0]["sha256"] == hashlib.sha256(stored).hexdigest() and stored.startswith(b"\xff\xd8\xff")  # re-encoded
    queued = web.station.store.query("SELECT kind, payload FROM outbox WHERE idempotency_key LIKE 'binding:%'")
    assert queued[0]["kind"] == "tag_binding" and json.loads(queued[0]["payload"])["qr_content"] == new_tag
    # A tag bound to one cylinder cannot be bound to another; a file that is not a photo is refused.
    other = web.cylinder(skip=6).row
    again = c.form("/bind", {"stamp": other["product_no"], "tag": new_tag, "tag_kind": "qr"}, files={"photos": ("p.png", photo)})
    assert again.status_code == 422 and target["id"] in again.text
    script = c.form("/bind", {"stamp": other["product_no"], "tag": "CQ-OTHER-1", "tag_kind": "qr"},
                    files={"photos": ("p.png", io.BytesIO(b"<svg onload=alert(1)>"))})
    assert script.status_code == 422 and "JPEG or PNG" in script.text


def test_roles_limit_the_scan_points(web: SimStation) -> None:
    operator = Client(web)
    assert operator.login("op-zhang").status_code == 303
    assert operator.get("/check/pre").status_code == 403
    assert operator.form("/check/pre", {"code": web.cylinder().row["qr_content"]}).status_code == 403
    manager = Client(web)
    manager.login("mgr-chen")
    assert all(manager.get(p).status_code == 200 for p in ("/check/pre", "/check/post", "/bind", "/dispatch"))
    assert journal(web, "staff_login")[0]["by"] == "op-zhang"


def test_staff_passwd_command_sets_a_hash_not_the_pin(web: SimStation, monkeypatch: pytest.MonkeyPatch) -> None:
    config_path = Path(str(web.config.store.path)).parent / "station.yaml"
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-pin\n"))
    assert main(["staff", "passwd", "op-li", "--role", "checker", "--stdin", "--config", str(config_path)]) == 0
    assert web.station.store is not None
    row = web.station.store.query("SELECT role, secret_hash FROM staff WHERE id = 'op-li'")[0]
    assert row["role"] == "checker" and row["secret_hash"].startswith("scrypt$") and "s3cret" not in row["secret_hash"]
    assert Client(web).login("op-li", "s3cret-pin").status_code == 303
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["staff", "passwd", "op-li", "--stdin", "--config", str(config_path)]) == 2
    assert STAFF  # the fixture's accounts are untouched


def test_postfill_reweigh_reads_the_check_scale(make_station: Callable[..., SimStation], tmp_path: Path) -> None:
    base_override = webapp_override(tmp_path, precheck_lane=None)

    def override(raw: dict[str, Any]) -> None:
        base_override(raw)
        raw["checks"]["check_scale"] = {"driver": "modbus", "bus": "tcp-A", "device_id": 3, "register_map": "flintec-ft112",
                                        "timeout_s": 0.25}

    s = make_station(override)
    enrol(s)
    row = checked_fill(s, 3)
    assert s.sim.check_scale is not None
    c = checker(s)
    assert "读复秤台" in c.get("/check/post", params={"code": row["qr_content"]}).text
    # Nothing on the check scale yet... then the cylinder, overfilled by 1.5 kg, read over Modbus.
    s.sim.check_scale.place(row["tare_kg"] + row["fill_mass_kg"] + 1.5)
    flagged = c.form("/check/post", {"code": row["qr_content"], **all_items(s, "post")})
    assert "OVERFILLED" in flagged.text, flagged.text
    check = journal(s, "check_postfill")[-1]
    assert check["reweigh_source"] == "check_scale" and check["flag"] == "OVERFILLED" and not check["passed"]
    assert abs(check["reweigh_kg"] - (row["tare_kg"] + row["fill_mass_kg"] + 1.5)) < 0.1
    # Decanted: the check scale now reads within tolerance and the check passes.
    s.sim.check_scale.place(row["tare_kg"] + row["fill_mass_kg"])
    assert "合格 PASSED" in c.form("/check/post", {"code": row["qr_content"], **all_items(s, "post")}).text
    assert journal(s, "check_postfill")[-1]["reweigh_source"] == "check_scale"


def test_config_refuses_a_check_scale_that_is_a_lane_scale_and_precheck_without_a_list(tmp_path: Path) -> None:
    from edge.config import ConfigError, load_config

    from .conftest import write_config

    def override(raw: dict[str, Any]) -> None:
        raw["checks"] = {"check_scale": {"driver": "modbus", "bus": "tcp-A", "device_id": 1, "register_map": "flintec-ft112"},
                         "prefill": {"G5": [{"id": "x", "zh": "甲", "en": "x"}]}}
        raw["lanes"][0]["require_precheck"] = True

    with pytest.raises(ConfigError) as refused:
        load_config(write_config(tmp_path, override))
    text = str(refused.value)
    assert "checks.check_scale.device_id" in text and "already read by lane A" in text
    assert "lanes.0.require_precheck" in text and "G13" in text


def test_checks_go_upstream_where_the_profile_has_fields(make_station: Callable[..., SimStation], tmp_path: Path) -> None:
    from edge.scanpoints import Actor, checks

    base_override = webapp_override(tmp_path, precheck_lane=None)
    other = Path(__file__).parent / "profiles" / "other-city.yaml"

    def override(raw: dict[str, Any]) -> None:
        base_override(raw)
        raw["city"]["profile"] = str(other)

    s = make_station(override)
    enrol(s)
    assert s.station.store is not None and s.sim.city is not None
    row = checked_fill(s, 1)
    result = checks.postfill(s.station.store, s.config, Actor("chk-wang", "王芳", "checker"), row["qr_content"],
                             {**{i.id: True for i in s.config.checks.postfill}, "seal": False}, utc_now())
    assert not result.passed
    # Both checks of the cylinder, before and after its fill, reach the city.
    s.wait_for(lambda: len(s.sim.city.records("fill_check")) == 2, "the checks delivered to the city", timeout=20)  # type: ignore[union-attr]
    pre, post = s.sim.city.records("fill_check")
    assert (pre["qpid"], pre["jclx"], pre["hg"], pre["bhgx"]) == (row["id"], "prefill", True, "")
    assert (post["qpid"], post["jclx"], post["jcry"], post["hg"], post["bhgx"]) == (row["id"], "postfill", "王芳", False, "seal")
