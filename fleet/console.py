"""The company's console: commands with the acknowledgements they got, and the live view."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, TextIO

from sync.fleet import mqtt
from sync.fleet.protocol import ALL, VERSION, Command, command_payload, command_topic, encode

from .config import CompanyConfig
from .views import age, code_tail, offset_of, reason_text, station_time

log = logging.getLogger(__name__)

# Retained health and lane state arrive just after subscribing; this long is plenty on a LAN.
RETAINED_WAIT_S = 0.5


class ConsoleError(Exception):
    pass


class Connection:
    """A short-lived, clean-session client that subscribes and hands every message to a queue."""

    def __init__(self, config: CompanyConfig, topics: list[str], name: str) -> None:
        self.config = config
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._subscribed = threading.Event()
        self._refused: str | None = None
        self.client = mqtt.make_client(config.broker, f"{config.company}-{name}-{uuid.uuid4().hex[:8]}", persistent=False)
        self.client.on_connect = lambda c, u, f, rc, p: self._on_connect(rc, topics)
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message

    def __enter__(self) -> Connection:
        mqtt.connect_async(self.client, self.config.broker, persistent=False)
        if not self._subscribed.wait(self.config.broker.connect_timeout_s):
            self.close()
            raise ConsoleError(self._refused or f"no connection to {self.config.broker.host}:{self.config.broker.port}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, reason_code: Any, topics: list[str]) -> None:
        if mqtt.failed(reason_code):
            self._refused = f"the broker refused us: {reason_code}"
            return
        self.client.subscribe([(t, 1) for t in topics])

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            payload = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(payload, dict) and payload.get("v") == VERSION:
            self.messages.put((message.topic, payload))


@dataclass
class Outcome:
    command: Command
    online: list[str]  # the targeted stations the broker says are online
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return [s for s in self.online if s not in self.replies]


def send_command(
    config: CompanyConfig,
    action: str,
    station: str = ALL,
    lane: str | None = None,
    identifier: str | None = None,
    reason: str = "",
    wait_s: float = 5.0,
) -> Outcome:
    """Publish one command and gather acknowledgements until every targeted online station has
    answered or wait_s has passed."""
    company = config.company
    with Connection(config, [f"{company}/+/health", f"{company}/+/reply"], "console") as conn:
        online: set[str] = set()
        early: list[tuple[str, dict[str, Any]]] = []
        _drain(conn.messages, RETAINED_WAIT_S, lambda t, p: (early.append((t, p)), _note_health(online, p)))
        command = Command(
            id=uuid.uuid4().hex, ts=datetime.now(timezone.utc), sender=config.sender, action=action,
            station=station, lane=lane, identifier=identifier, reason=reason,
        )
        outcome = Outcome(command, sorted(s for s in online if station in (ALL, s)))
        info = conn.client.publish(command_topic(company), encode(command_payload(command, config.command_key())), qos=1)
        info.wait_for_publish(config.broker.connect_timeout_s)
        deadline = time.monotonic() + wait_s
        while outcome.missing or not outcome.online:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                topic, payload = conn.messages.get(timeout=left)
            except queue.Empty:
                break
            if payload.get("type") == "reply" and payload.get("command_id") == command.id:
                outcome.replies[payload["station"]] = payload
            elif payload.get("type") == "health" and payload.get("online") and station in (ALL, payload["station"]):
                if payload["station"] not in outcome.online:
                    outcome.online.append(payload["station"])
    return outcome


def _note_health(online: set[str], payload: dict[str, Any]) -> None:
    if payload.get("type") == "health":
        (online.add if payload.get("online") else online.discard)(payload["station"])


def _drain(messages: queue.Queue[tuple[str, dict[str, Any]]], seconds: float, handle: Callable[[str, dict[str, Any]], Any]) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            handle(*messages.get(timeout=left))
        except queue.Empty:
            return


def format_outcome(outcome: Outcome) -> str:
    c = outcome.command
    target = c.station + (f"/{c.lane}" if c.lane else "")
    lines = [f"{c.action} {c.identifier or ''} -> {target}  (command {c.id})".replace("  ", " ", 1)]
    for station, reply in sorted(outcome.replies.items()):
        lines.append(f"  {station:<16} {reply['outcome']:<8} {reply['detail']}")
    for station in outcome.missing:
        lines.append(f"  {station:<16} NO ANSWER")
    if not outcome.online and not outcome.replies:
        lines.append("  no targeted station is online; a station gets the command when it reconnects, if still fresh")
    return "\n".join(lines)


# The live view -------------------------------------------------------------------------------


@dataclass
class FleetView:
    """What the company sees: every station's health and lanes, and the latest events. Drawn from
    the messages received so far (and, when the collector's database is at hand, when each station
    went offline and how many messages are quarantined), never from what was drawn before."""

    company: str = ""
    stations: dict[str, dict[str, Any]] = field(default_factory=dict)
    lanes: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=12))
    last_update: datetime | None = None

    def update(self, topic: str, payload: dict[str, Any]) -> None:
        kind = payload.get("type")
        if kind == "health":
            self.stations[payload["station"]] = payload
        elif kind == "lane":
            self.lanes[(payload["station"], payload["lane"])] = payload
        elif kind in ("fill", "scan"):
            self.events.append(payload)
        else:
            return
        self.last_update = datetime.now(timezone.utc)

    def render(self, now: datetime | None = None, stored: dict[str, dict[str, Any]] | None = None,
               quarantined: int | None = None) -> str:
        """`stored`: the collector's station rows (for since when an offline station is offline)."""
        now = (now or datetime.now(timezone.utc)).astimezone()
        stored = stored or {}
        updated = "nothing received yet" if self.last_update is None else (
            f"last update {self.last_update.astimezone().isoformat(sep=' ', timespec='seconds')}"
            f" ({age((now - self.last_update).total_seconds())} ago)")
        header = f"{self.company} fleet  {now.isoformat(sep=' ', timespec='seconds')}  {updated}"
        if quarantined is not None:
            header += f"  quarantined {quarantined}"
        lines = [header, "", f"{'station':<14} {'lane':<8} {'state':<10} {'cylinder':<22} note"]
        names = sorted(set(self.stations) | {s for s, _ in self.lanes})
        for name in names:
            health = self.stations.get(name, {})
            zone = health.get("tz") or offset_of(health.get("ts"))
            lines.append(f"{name:<14} {'':<8} {_health_line(health, stored.get(name), zone)}")
            for (station, lane), state in sorted(self.lanes.items()):
                if station != name:
                    continue
                if state.get("remote_lock"):
                    note = f"LOCKED: {state['remote_lock']}"
                else:
                    note = reason_text(state["cause"]) if state.get("cause") else ""
                if not state.get("scale_ok", True):
                    note = f"scale lost {note}"
                since = station_time(state.get("since"), zone, with_date=False) if state.get("since") else ""
                lines.append(f"{'':<14} {lane:<8} {state['phase']:<10} {code_tail(state.get('cylinder_id')) or '-':<22} {note}"
                             + (f" (since {since})" if since else ""))
        if self.events:
            lines.append("")
            lines.append("latest events (station time)")
            for e in self.events:
                zone = self.stations.get(e["station"], {}).get("tz")
                if e["type"] == "fill":
                    what = f"fill {e['outcome']} {e.get('net_kg') or ''} kg" + (" OVERFILL" if e.get("overfilled") else "")
                else:
                    what = "refused " + ", ".join(reason_text(r) for r in e.get("reasons", []))
                lines.append(f"  {station_time(e['ts'], zone)} {e['station']:<12} {e.get('lane') or '-':<8}"
                             f" {e.get('cylinder_id') or code_tail(e.get('code')):<22} {what}")
        return "\n".join(lines)


def _health_line(health: dict[str, Any], stored: dict[str, Any] | None, zone: Any) -> str:
    if not health:
        return "no health yet"
    if not health.get("online"):
        # A last will carries the time its station connected; the collector saw when it arrived.
        since = stored["since"] if stored is not None and not stored["online"] and stored.get("since") else None
        if since is None and health.get("detail") == "stopped":
            since = health.get("ts")
        when = f"since {station_time(since, zone)}" if since else f"(last connected {station_time(health.get('ts'), zone)})"
        return f"OFFLINE {when}: {health.get('detail', '')}"
    outbox, uploads = health.get("outbox") or {}, health.get("uploads") or {}
    return (f"online  v{health.get('version', '?')}  cache {age(health.get('cache_age_s'))} old"
            f"  backlog: {outbox.get('pending', '?')} events, {uploads.get('pending', '?')} uploads,"
            f" {uploads.get('dead', '?')} dead letters  (health {station_time(health.get('ts'), zone, with_date=False)})")


def watch(config: CompanyConfig, out: TextIO, once: bool = False, refresh_s: float = 1.0,
          database: Any = None) -> None:
    """Print the live view: once (after the retained state arrived), or redrawn until interrupted.
    `database`: the collector's EventDatabase, when it can be opened."""
    company = config.company
    view = FleetView(company=company)
    topics = [f"{company}/+/health", f"{company}/+/lane/+", f"{company}/+/event/+"]

    def draw() -> str:
        if database is None:
            return view.render()
        stored = {row["station"]: row for row in database.stations()}
        return view.render(stored=stored, quarantined=database.quarantine_count())

    with Connection(config, topics, "watch") as conn:
        _drain(conn.messages, RETAINED_WAIT_S, view.update)
        if once:
            out.write(draw() + "\n")
            return
        while True:
            out.write("\x1b[H\x1b[2J" + draw() + "\n")
            out.flush()
            _drain(conn.messages, refresh_s, view.update)
