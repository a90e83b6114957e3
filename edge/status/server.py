"""The local status page and metrics: read-only HTTP, bound to localhost unless configured.

`/` shows every lane; `/lane/ID` is one lane in letters large enough to read across the filling
hall, for a screen at each scale. Both poll `/api/status` four times a second. `/metrics` is the
Prometheus text format. Nothing here can change a lane: there are no write routes at all.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from interlock.fill import Phase
from interlock.reasons import TEXT, Reason

from ..config import Config
from ..lanes.lane import Lane, LaneEvent
from ..store import Store, staff
from ..store.outbox import MALFORMED_SINCE, Outbox
from .metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from drivers.modbus import ModbusBus

log = logging.getLogger(__name__)


class StoreHealth(Protocol):
    def status(self) -> dict[str, Any]: ...


class Buses(Protocol):
    def buses(self) -> Mapping[str, ModbusBus]: ...


class StationView(Protocol):
    """What the page reads from the running station, and nothing more; the daemon's Station is
    one. Described here rather than imported, so this package never imports the daemon's."""

    @property
    def config(self) -> Config: ...

    @property
    def lanes(self) -> Mapping[str, Lane]: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def storewatch(self) -> StoreHealth | None: ...

    @property
    def hw(self) -> Buses: ...


PAGE = resources.files("edge.status").joinpath("status.html").read_text(encoding="utf-8")


class LaneBoard:
    """What each lane last said, kept from its events for the page."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._lock = threading.Lock()
        self.tz = tz
        self.last: dict[str, dict[str, Any]] = {}
        self._seq = 0

    def observe(self, event: LaneEvent) -> None:
        if event.kind not in ("verdict", "fill_end"):
            return
        with self._lock:
            entry = self.last.setdefault(event.lane, {})
            if event.kind == "verdict":
                entry["verdict"] = {
                    "accepted": event.data["accepted"],
                    "code": event.data["code"][:80],
                    "cylinder_id": event.data.get("cylinder_id"),
                    "reasons": [_reason(r, d) for r, d in zip(event.data["reasons"], event.data["details"])],
                    "at": datetime.now(self.tz).strftime("%H:%M:%S"),
                }
            else:
                entry["last_fill"] = {k: event.data.get(k) for k in ("status", "outcome", "cause", "net_kg", "fill_id")}
                entry["last_fill"]["cause_text"] = _reason(event.data["cause"], None) if event.data.get("cause") else None
            # Which came last, the verdict or the fill's end: the page shows that one.
            self._seq += 1
            entry["verdict" if event.kind == "verdict" else "last_fill"]["seq"] = self._seq

    def get(self, lane: str) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self.last.get(lane, {}), default=str))


def _seconds_since(iso_moment: str | None, now: datetime) -> float:
    return 0.0 if iso_moment is None else max(0.0, (now - datetime.fromisoformat(iso_moment)).total_seconds())


def _reason(code: str, detail: str | None) -> dict[str, Any]:
    try:
        zh, en = TEXT[Reason(code)]
    except (ValueError, KeyError):
        zh, en = code, code
    return {"code": code, "zh": zh, "en": en, "detail": detail or None}


class StatusServer:
    def __init__(self, station: StationView, host: str, port: int) -> None:
        self.station = station
        self.metrics = Metrics(station.lanes, gauges=self._gauges)
        self.board = LaneBoard(station.config.tz)
        for lane in station.lanes.values():
            lane.listeners += [self.metrics.observe, self.board.observe]
        # Its own connection: a scrape never waits on a lane's write lock, nor holds it.
        self.store = Store(station.config.store.path, durable=False)
        self._http = ThreadingHTTPServer((host, port), _handler(self))
        self._http.daemon_threads = True
        self.host, self.port = host, self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, name="status-http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("status page at http://%s:%d/ (metrics at /metrics)", self.host, self.port)

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self.store.close()

    def status(self) -> dict[str, Any]:
        now = self.station.clock()
        outbox = Outbox(self.store).status(now)
        lanes = {}
        tz = self.station.config.tz
        for lane_id, lane in self.station.lanes.items():
            plan = lane.state.plan
            since = lane.state.since
            lanes[lane_id] = {
                "phase": lane.state.phase.value,
                "relay_on": lane.state.relay_on,
                "scale_ok": lane.scale_ok,
                "gross_kg": lane.last_gross_kg,
                "fill": None if plan is None or lane.state.phase is Phase.IDLE else {
                    "cylinder_id": plan.cylinder_id, "target_net_kg": plan.target_net_kg, "tare_kg": plan.tare_kg,
                    "model": self._model(plan.cylinder_id),
                    "phase_s": None if since is None else round((now - since).total_seconds()),
                },
                "shift": staff.on_shift(self.store, lane_id),
                "recent": [
                    {**row, "finished_at": datetime.fromisoformat(row["finished_at"]).astimezone(tz).strftime("%H:%M"),
                     "outcome": (row["outcome"] or "").lower()}
                    for row in self.store.query(
                        "SELECT cylinder_id, outcome, net_kg, finished_at FROM fills WHERE lane = ? AND finished_at IS NOT NULL"
                        " ORDER BY finished_at DESC LIMIT 5", [lane_id])
                ],
                "cause": _reason(lane.state.cause, None) if lane.state.cause else None,
                **self.board.get(lane_id),
            }
        return {
            "station": self.station.config.station.owner_unit,
            "time": now.astimezone(self.station.config.tz).strftime("%Y-%m-%d %H:%M:%S"),
            "cache_age_s": self.store.cache_age_s(now),
            "upload": {"pending": outbox["pending"], "dead": outbox["dead"], "oldest_pending_age_s": outbox["oldest_pending_age_s"],
                       "malformed_since": outbox["malformed_since"]},
            "store": None if self.station.storewatch is None else self.station.storewatch.status(),
            "lanes": lanes,
        }

    def _model(self, cylinder_id: str) -> str | None:
        rows = self.store.query("SELECT model FROM cylinders WHERE id = ?", [cylinder_id])
        return rows[0]["model"] if rows else None

    def _gauges(self) -> dict[str, Any]:
        """Read at each scrape (metrics.Metrics)."""
        now = self.station.clock()
        status = Outbox(self.store).status(now, dead_limit=0)
        errors = {
            (name, unit): bus.unit_errors.get(unit, 0) for name, bus in self.station.hw.buses().items() for unit in bus.units
        }
        last = status["last_success_at"]
        lanes = self.station.lanes
        return {
            "polls": {lane_id: lane.polls for lane_id, lane in lanes.items()},
            "scale_up": {(lane_id, str(lane.config.scale.bus), str(lane.config.scale.device_id)): lane.scale_ok
                         for lane_id, lane in lanes.items()},
            "relay_on": {lane_id: lane.state.relay_on for lane_id, lane in lanes.items()},
            "modbus_errors": errors,
            "pending": status["pending"],
            "dead": status["dead"],
            "last_success_ts": None if last is None else datetime.fromisoformat(last).timestamp(),
            "malformed_s": _seconds_since(self.store.get_meta(MALFORMED_SINCE), now),
            "cache_age_s": self.store.cache_age_s(now),
            "inflight_s": {
                (lane_id, model): learned.inflight_s or 0.0
                for lane_id in self.station.lanes for model, learned in self.store.inflight(lane_id).items()
            },
            "store": None if self.station.storewatch is None else self.station.storewatch.status(),
        }


def _handler(server: StatusServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            path = self.path.split("?", 1)[0]
            try:
                if path == "/" or (path.startswith("/lane/") and path[6:] in server.station.lanes):
                    self._send(200, "text/html; charset=utf-8", PAGE.encode())
                elif path == "/api/status":
                    self._send(200, "application/json", json.dumps(server.status(), ensure_ascii=False, default=str).encode())
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE, server.metrics.exposition())
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")
            except Exception:
                log.exception("status page: %s failed", path)
                self._send(500, "text/plain; charset=utf-8", b"internal error\n")

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            # Four requests a second per screen would flood the journal; errors are logged above.
            return

    return Handler
