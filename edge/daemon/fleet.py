"""The station's side of the company fleet: the uplink (sync.fleet) wired to this station's lanes
and store, and the company's commands carried out here.

A command can only make the station safer: a block adds a refusal the interlock already knows
(BLOCKED_LOCALLY), a lock drives the valve off through the lane's fault path, and the matching
unblock/unlock lifts only what the company itself set. Nothing here energises a valve or relaxes a
local rule.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import datetime
from typing import Any

from interlock import codes
from sync.fleet.protocol import Command, CommandError, check_fresh, envelope, parse_command
from sync.fleet.uplink import Uplink

from .. import __version__
from ..config import Config
from ..lanes.lane import Clock, Lane, LaneEvent
from ..store import Store
from ..store.fleet import STATION, FleetLedger, FleetOutbox

log = logging.getLogger(__name__)

STATE_TICK_S = 0.25  # how often lane state is compared with what was last published


class FleetService:
    def __init__(self, config: Config, lanes: dict[str, Lane], clock: Clock) -> None:
        assert config.fleet is not None
        self.config, self.fleet, self.lanes, self.clock = config, config.fleet, lanes, clock
        # Connections of its own, so command writes and delivery marks never hold a lane's. Blocks
        # and locks are committed durably; a delivery mark lost to a power cut only means the event
        # is sent again (the consumer drops the repeat), so it skips the fsync.
        self.store = Store(config.store.path)
        self.marks = Store(config.store.path, durable=False)
        self.ledger = FleetLedger(self.store)
        self.outbox = FleetOutbox(self.marks, clock)
        self.key = self.fleet.command_key()
        self.patterns = [codes.UrlPattern(re.compile(p.regex), p.kind) for p in config.codes.url_patterns]
        # What the station publishes is stamped in its own time zone, with the offset: the company
        # reads each station's times as the station lived them.
        self.uplink = Uplink(self.fleet.broker, self.fleet.company, self.fleet.station_id, self.outbox, self.handle,
                             self._local_now)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._published: dict[str, tuple[Any, ...]] = {}

    def _local_now(self) -> datetime:
        return self.clock().astimezone(self.config.tz)

    def start(self) -> None:
        # The command checks load now, not at the first command: a block must not wait for them.
        from sync.fleet.validation import prepare

        prepare()
        # Locks survive a restart: a lane the company stopped stays stopped.
        locks = self.ledger.locks()
        for lane in self.lanes.values():
            reason = locks.get(lane.id) or locks.get(STATION)
            if reason is not None:
                lane.lock(reason)
            lane.listeners.append(self._on_lane_event)
        self.uplink.start()
        self._thread = threading.Thread(target=self._state_loop, name="fleet-state", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.uplink.stop()
        self.store.close()
        self.marks.close()

    def _on_lane_event(self, event: LaneEvent) -> None:
        if event.kind in ("verdict", "fill_end"):
            self.uplink.wake()  # the event row is committed by now

    # Retained state --------------------------------------------------------------------------

    def _state_loop(self) -> None:
        health_due = 0.0
        elapsed = 0.0
        while not self._stop.wait(STATE_TICK_S):
            elapsed += STATE_TICK_S
            try:
                for lane in self.lanes.values():
                    self._publish_lane(lane)
                if elapsed >= health_due:
                    health_due = elapsed + self.fleet.health_interval_s
                    self._resolve_pending_blocks()
                    self.uplink.publish_state(("health",), "health", self.health())
            except Exception:  # state is informative; a failure here must not end the loop
                log.exception("fleet state publishing failed")

    def _publish_lane(self, lane: Lane, force: bool = False) -> None:
        state = lane_state(lane)
        changed = tuple(v for k, v in state.items() if k != "gross_kg")
        if force or self._published.get(lane.id) != changed:
            self._published[lane.id] = changed
            self.uplink.publish_state(("lane", lane.id), "lane", state)

    def health(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "online": True,
            "version": __version__,
            "tz": self.config.station.timezone,
            "lanes": sorted(self.lanes),
            "outbox": self.outbox.counts(),
            "cache_age_s": self.store.cache_age_s(now),
            "uploads": self._uploads(),
            "locks": self.ledger.locks(),
            "fleet_blocks": self.store.query("SELECT count(*) AS n FROM fleet_blocks")[0]["n"],
        }

    def _uploads(self) -> dict[str, int]:
        """The city upload outbox: records still to send, and those the city refused for good."""
        counts = self.store.count_by_status("outbox", "sent")  # pending and dead: not the delivered that left
        return {"pending": counts.get("pending", 0), "dead": counts.get("dead", 0)}

    # Commands --------------------------------------------------------------------------------

    def handle(self, raw: bytes) -> dict[str, Any] | None:
        """Carry out one command; returns the acknowledgement (None when not addressed to us)."""
        now = self.clock()
        try:
            command = parse_command(raw, self.key)
        except CommandError as exc:
            # Answered even without an id to quote: the company learns that something it (or
            # someone with its account) sent was refused, and why.
            log.warning("fleet command %s refused: %s", exc.command_id or "(no valid id)", exc)
            self.store.journal(now, "fleet_command", {"id": exc.command_id, "outcome": "refused", "detail": str(exc)})
            return self._reply(exc.command_id or "", None, "refused", str(exc))
        if not command.targets(self.fleet.station_id):
            return None
        fields = {"sent_at": command.ts.isoformat(), "sender": command.sender, "action": command.action,
                  "lane": command.lane, "identifier": command.identifier, "reason": command.reason}
        if self.ledger.seen(command.id):
            outcome, detail = "refused", "replayed: this command id was already received"
        else:
            try:
                check_fresh(command, now, self.fleet.max_command_age_s, self.fleet.max_clock_skew_s)
                outcome, detail = self._apply(command)
            except CommandError as exc:
                outcome, detail = "refused", str(exc)
        if not self.ledger.record(now, command.id, fields, outcome, detail):
            outcome, detail = "refused", "replayed: this command id was already received"
        log.warning("fleet command %s %s by %s: %s (%s)", command.id, command.action, command.sender, outcome, detail)
        status = self.status() if command.action == "status" and outcome == "applied" else None
        return self._reply(command.id, command.action, outcome, detail, status)

    def _apply(self, command: Command) -> tuple[str, str]:
        now = self.clock()
        match command.action:
            case "block":
                assert command.identifier is not None
                identifier = command.identifier.strip()
                cylinder_id = self.resolve(identifier)
                self.ledger.block(now, identifier, cylinder_id, command.reason, command.sender, command.id)
                if cylinder_id is None:
                    return "applied", "not in this station's cache: blocked as soon as its record arrives"
                return "applied", f"cylinder {cylinder_id} blocked"
            case "unblock":
                assert command.identifier is not None
                return "applied", self.ledger.unblock(now, command.identifier.strip(), command.sender)
            case "lock" | "unlock":
                return self._lock(command)
            case _:
                return "applied", "status attached"

    def _lock(self, command: Command) -> tuple[str, str]:
        if command.lane is not None and command.lane not in self.lanes:
            raise CommandError(f"no lane {command.lane!r} at this station")
        target = command.lane or STATION
        now = self.clock()
        if command.action == "lock":
            self.ledger.lock(now, target, command.reason, command.sender, command.id)
            for lane in self._lanes(command.lane):
                lane.lock(f"{command.reason} ({command.sender})")
            return "applied", f"{'lane ' + command.lane if command.lane else 'every lane'} locked, valve off"
        if not self.ledger.unlock(target):
            return "applied", "was not locked by the company"
        locks = self.ledger.locks()
        still = [lane.id for lane in self._lanes(command.lane) if lane.id in locks or STATION in locks]
        for lane in self._lanes(command.lane):
            if lane.id not in still:
                lane.unlock()
        held = f"; still locked: {', '.join(still)}" if still else ""
        return "applied", f"remote lock lifted (an operator resets the lane to fill again){held}"

    def _lanes(self, lane_id: str | None) -> list[Lane]:
        return list(self.lanes.values()) if lane_id is None else [self.lanes[lane_id]]

    def resolve(self, identifier: str) -> str | None:
        """The cached cylinder an identifier names: its id, or any code a reader could give."""
        if self.store.query("SELECT 1 FROM cylinders WHERE id = ?", [identifier]):
            return identifier
        for source in (codes.Source.OPTICAL, codes.Source.RFID):
            parsed = codes.parse(identifier.encode("utf-8"), source, self.patterns)
            if isinstance(parsed, codes.Identifier):
                row = self.store.cylinder_record(parsed)
                if row is not None:
                    return str(row["id"])
        return None

    def _resolve_pending_blocks(self) -> None:
        for row in self.ledger.unresolved_blocks():
            cylinder_id = self.resolve(row["identifier"])
            if cylinder_id is not None:
                self.ledger.block(self.clock(), row["identifier"], cylinder_id, row["reason"], row["sender"], row["command_id"])
                log.warning("fleet block on %s now applies to cylinder %s", row["identifier"], cylinder_id)

    def status(self) -> dict[str, Any]:
        return {**self.health(), "lane_states": {lane.id: lane_state(lane) for lane in self.lanes.values()}}

    def _reply(self, command_id: str, action: str | None, outcome: str, detail: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
        extra = {"status": status} if status is not None else {}
        return envelope("reply", self.fleet.company, self.fleet.station_id, self._local_now(),
                        command_id=command_id, action=action, outcome=outcome, detail=detail, **extra)


def lane_state(lane: Lane) -> dict[str, Any]:
    state = lane.state
    plan = state.plan
    return {
        "lane": lane.id,
        "medium": lane.config.medium,
        "phase": state.phase.value,
        "since": state.since.isoformat(timespec="milliseconds") if state.since else None,
        "cylinder_id": plan.cylinder_id if plan else None,
        "fill_id": plan.fill_id if plan else None,
        "cause": state.cause.value if state.cause else None,
        "remote_lock": lane.remote_lock,
        "scale_ok": lane.scale_ok,
        "gross_kg": lane.last_gross_kg,
    }
