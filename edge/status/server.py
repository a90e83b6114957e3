"""The local status page and metrics: read-only HTTP, bound to localhost unless configured.

`/` shows every lane; `/lane/ID` is one lane in letters large enough to read across the filling
hall, for a screen at each scale. Both poll `/api/status` four times a second. `/metrics` is the
Prometheus text format. `/documents/NAME` is one of the documents kept in the reports folder, and
the page's footer links the latest of each kind. Nothing here can change a lane: there are no
write routes at all.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from interlock.fill import Phase

from ..config import Config, LaneConfig
from ..config.devices import SerialScannerConfig
from ..lanes.lane import Lane, LaneEvent
from ..store import Store, staff
from ..store.backup_state import status_of as backup_status
from ..store.outbox import MALFORMED_SINCE, Outbox
from . import documents, voice
from .actions import ack_how, reset_how
from .metrics import CONTENT_TYPE, Metrics
from .view import LaneNow, Rules, Seen, lane_view

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
    def dailyverify(self) -> StoreHealth | None: ...

    @property
    def hw(self) -> Buses: ...


# Prompts are built from the reason table, so they are few; the bound only guards memory.
MAX_PROMPTS = 512

PAGE = resources.files("edge.status").joinpath("status.html").read_text(encoding="utf-8")


class LaneBoard:
    """Each lane's last verdict, fill end and reset, kept from its events with when they came,
    and the prompt each lane should say now. The screen is derived from these and the lane's
    present state (view.lane_view); nothing here is what was drawn last."""

    def __init__(self, tz: ZoneInfo, quiet_s: Mapping[str, float], clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self.tz, self.quiet_s, self.clock = tz, quiet_s, clock
        self._seen: dict[str, dict[str, Seen]] = {}
        self._voice: dict[str, dict[str, Any]] = {}
        self._issued: dict[str, str] = {}  # every prompt given so far, by key: the sounds the page may fetch
        self._seq = 0

    def observe(self, event: LaneEvent) -> None:
        if event.kind not in ("verdict", "fill_end", "reset"):
            return
        now = self.clock()
        data = json.loads(json.dumps(event.data, default=str))
        said = voice.prompt(event.kind, data)
        with self._lock:
            self._seq += 1
            clock = datetime.now(self.tz).strftime("%H:%M:%S")
            self._seen.setdefault(event.lane, {})[event.kind] = Seen(event.kind, self._seq, now, clock, data)
            last = self._voice.get(event.lane)
            repeated = last is not None and last["text"] == said and now - last["at"] < self.quiet_s.get(event.lane, 0.0)
            if said is not None and not repeated:
                self._voice[event.lane] = {"id": self._seq, "text": said, "key": voice.key(said), "at": now}
                if len(self._issued) < MAX_PROMPTS:
                    self._issued[voice.key(said)] = said

    def seen(self, lane: str) -> dict[str, Seen]:
        with self._lock:
            return dict(self._seen.get(lane, {}))

    def prompt(self, lane: str) -> dict[str, Any] | None:
        with self._lock:
            last = self._voice.get(lane)
            return None if last is None else {**last, "age_s": round(self.clock() - last["at"], 2)}

    def prompt_text(self, prompt_key: str) -> str | None:
        """The text of a prompt this board has issued (the only texts the page may fetch as sound)."""
        with self._lock:
            return self._issued.get(prompt_key)


def _seconds_since(iso_moment: str | None, now: datetime) -> float:
    return 0.0 if iso_moment is None else max(0.0, (now - datetime.fromisoformat(iso_moment)).total_seconds())


class StatusServer:
    def __init__(self, station: StationView, host: str, port: int) -> None:
        self.station = station
        self.metrics = Metrics(station.lanes, gauges=self._gauges)
        self.board = LaneBoard(station.config.tz, {lane.id: lane.voice.repeat_quiet_s for lane in station.config.lanes})
        self.rules = {lane.id: _rules(station.config, lane) for lane in station.config.lanes}
        speaking = [lane.id for lane in station.config.lanes if lane.voice.enabled]
        if speaking and not voice.available():
            log.warning("lanes %s have voice on, but espeak-ng is not installed: their screens stay silent"
                        " (apt-get install espeak-ng, or voice: {enabled: false})", ", ".join(speaking))
        for lane in station.lanes.values():
            lane.listeners += [self.metrics.observe, self.board.observe]
        self.documents = documents.Shelf(station.config.reports.folder)
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
            fill = None if plan is None or lane.state.phase is Phase.IDLE else {
                "cylinder_id": plan.cylinder_id, "target_net_kg": plan.target_net_kg, "tare_kg": plan.tare_kg,
                "model": self._model(plan.cylinder_id),
                "phase_s": None if since is None else round((now - since).total_seconds()),
            }
            present = LaneNow(lane.state.phase.value, lane.state.cause.value if lane.state.cause else None,
                              lane.last_gross_kg, lane.scale_ok, fill)
            lanes[lane_id] = {
                "phase": lane.state.phase.value,
                "relay_on": lane.state.relay_on,
                "scale_ok": lane.scale_ok,
                "gross_kg": lane.last_gross_kg,
                "fill": fill,
                "shift": staff.on_shift(self.store, lane_id),
                "recent": [
                    {**row, "finished_at": datetime.fromisoformat(row["finished_at"]).astimezone(tz).strftime("%H:%M"),
                     "outcome": (row["outcome"] or "").lower()}
                    for row in self.store.query(
                        "SELECT cylinder_id, outcome, net_kg, finished_at FROM fills WHERE lane = ? AND finished_at IS NOT NULL"
                        " ORDER BY finished_at DESC LIMIT 5", [lane_id])
                ],
                "view": lane_view(present, self.board.seen(lane_id), self.board.clock(), self.rules[lane_id]),
                "voice": self._voice(lane.config),
            }
        return {
            "station": self.station.config.station.owner_unit,
            "time": now.astimezone(self.station.config.tz).strftime("%Y-%m-%d %H:%M:%S"),
            "cache_age_s": self.store.cache_age_s(now),
            "upload": {"pending": outbox["pending"], "dead": outbox["dead"], "oldest_pending_age_s": outbox["oldest_pending_age_s"],
                       "malformed_since": outbox["malformed_since"]},
            "store": None if self.station.storewatch is None else self.station.storewatch.status(),
            "journal": None if self.station.dailyverify is None else self.station.dailyverify.status(),
            "backup": backup_status(self.station.config, now),
            "documents": self.documents.links(),
            "lanes": lanes,
        }

    def _voice(self, lane: LaneConfig) -> dict[str, Any] | None:
        """The prompt the lane's screen should be saying (the page plays each id once), with
        the lane's volume; None where the lane's voice is off."""
        if not lane.voice.enabled:
            return None
        said = self.board.prompt(lane.id)
        if said is None:
            return {"volume": lane.voice.volume, "id": None}
        return {"volume": lane.voice.volume, "id": said["id"], "text": said["text"], "age_s": said["age_s"],
                "url": f"/voice/{said['key']}.wav"}

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
            "journal": self._journal_gauges(),
            "backup": backup_status(self.station.config, now),
        }

    def _journal_gauges(self) -> dict[str, Any] | None:
        if self.station.dailyverify is None:
            return None
        journal = self.station.dailyverify.status()
        last_run, checkpoint = journal["last_run"], journal["last_checkpoint_at"]
        return {"verify_ok": None if last_run is None else bool(last_run["ok"]),
                "checkpoint_ts": None if checkpoint is None else datetime.fromisoformat(checkpoint).timestamp()}


def _rules(config: Config, lane: LaneConfig) -> Rules:
    buttons = lane.buttons
    items = {item.id: (item.zh, item.en) for item in config.checks.prefill.get(lane.medium, [])}
    aim = tuple(a for scanner in lane.scanners if isinstance(scanner, SerialScannerConfig) for a in scanner.aim)
    how = reset_how(lane.id, buttons is not None and buttons.reset is not None,
                    buttons.reset_hold_s if buttons is not None and buttons.abort is not None else None)
    return Rules(config.status_page.decision_hold_s, how, ack_how(lane.id), items, aim)


VOICE_PATH = re.compile(r"^/voice/([0-9a-f]{16})\.wav$")


def _handler(server: StatusServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            path = self.path.split("?", 1)[0]
            try:
                if path == "/" or (path.startswith("/lane/") and path[6:] in server.station.lanes):
                    self._send(200, "text/html; charset=utf-8", PAGE.encode())
                elif path == "/api/status":
                    self._send(200, "application/json", json.dumps(server.status(), ensure_ascii=False, default=str).encode())
                elif (found := VOICE_PATH.match(path)) is not None:
                    self._sound(found.group(1))
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE, server.metrics.exposition())
                elif path.startswith(documents.PREFIX):
                    found = server.documents.file(path)
                    if found is None:
                        self._send(404, "text/plain; charset=utf-8", b"no such document\n")
                    else:
                        self._send(200, documents.content_type(found), found.read_bytes(),
                                   {"Content-Disposition": documents.disposition(found)})
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")
            except Exception:
                log.exception("status page: %s failed", path)
                self._send(500, "text/plain; charset=utf-8", b"internal error\n")

        def _sound(self, prompt_key: str) -> None:
            text = server.board.prompt_text(prompt_key)
            if text is None:
                self._send(404, "text/plain; charset=utf-8", b"no such prompt\n")
            elif not voice.available():
                self._send(503, "text/plain; charset=utf-8", b"espeak-ng is not installed (scripts/system-deps.sh)\n")
            else:
                self._send(200, "audio/wav", voice.synthesise(text))

        def _send(self, code: int, kind: str, body: bytes, headers: Mapping[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            # Four requests a second per screen would flood the journal; errors are logged above.
            return

    return Handler
