"""One filling position: feeds scanner, scale and operator events to the fill machine and carries
out its effects. A lane owns its devices; it never waits on the network or on another lane."""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from drivers.base import Buttons, CodeReader, DeviceError, Fault, Relay, Scale, Scan, SignalOutput
from drivers.buttons import Debouncer
from interlock import codes
from interlock.fill import (
    BUSY,
    Abort,
    Confirm,
    Decided,
    Effect,
    Event,
    LaneState,
    Phase,
    Plan,
    Record,
    RelayOff,
    RelayOn,
    Reset,
    ScaleLost,
    Signal,
    Tick,
    Verdict,
    Weight,
    step,
)
from interlock.reasons import Reason, text
from interlock.rules import (
    Cylinder,
    Decision,
    Policy,
    evaluate,
    fresher_record_could_allow,
    refused_by_record_only,
    reject,
)

from . import staff
from .config import Config, LaneConfig
from .logs import LaneLog
from .lookup import Answer, LiveLookup, Source
from .store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
RELAY_OFF_ATTEMPTS = 3
BUTTON_POLL_S = 0.02
SCALE_FAULTS = {
    Fault.NO_ANSWER: Reason.SCALE_LOST,
    Fault.EXCEPTION: Reason.SCALE_LOST,
    Fault.FROZEN: Reason.SCALE_FROZEN,
    Fault.OVERLOAD: Reason.SCALE_OVERLOAD,
    Fault.ERROR: Reason.SCALE_ERROR,
}
BUTTON_EVENTS: dict[str, Callable[[], Confirm | Abort]] = {"confirm": Confirm, "abort": Abort}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class LaneEvent:
    """What a lane tells observers (the demo, a status page): verdicts and finished fills."""

    lane: str
    kind: str  # "verdict", "fill_end" or "valve_off" (with the cut-off lag)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteLock:
    """The company locks the lane (reason) or lifts its lock (None). Goes through the inbox so the
    control loop applies it between two polls, like any other event."""

    reason: str | None


class Lane:
    def __init__(
        self,
        config: LaneConfig,
        station: Config,
        store: Store,
        scale: Scale,
        relay: Relay,
        signals: SignalOutput,
        readers: list[CodeReader],
        buttons: Buttons | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.config, self.id = config, config.id
        self.log = LaneLog(log, {"lane": self.id})
        self.store, self.scale, self.relay, self.signals, self.readers = store, scale, relay, signals, readers
        self.buttons = buttons
        self.clock = clock
        self.policy = Policy(
            owner_unit=station.station.owner_unit,
            medium=config.medium,
            tz=station.tz,
            require_registration=station.eligibility.require_registration,
            inspection_warning_days=station.eligibility.inspection_warning_days,
            service_life_years=station.eligibility.service_life_years,
            max_cache_age_s=(
                None if station.eligibility.max_cache_age_hours is None else station.eligibility.max_cache_age_hours * 3600
            ),
            stale_cache_rejects=station.eligibility.on_stale_cache == "reject",
        )
        self.url_patterns = [
            codes.UrlPattern(re.compile(p.regex), p.kind) for p in station.codes.url_patterns
        ]
        self.state = LaneState(Phase.IDLE, since=clock())
        self.listeners: list[Callable[[LaneEvent], None]] = []
        # Recent scan-to-decision times, for benchmarks and a future status page; bounded.
        self.decision_latencies_s: deque[float] = deque(maxlen=10_000)
        self._inbox: queue.Queue[Scan | Event | RemoteLock] = queue.Queue()
        self.remote_lock: str | None = None  # why the company locked this lane, while it is locked
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._scale_errors = 0
        self.polls = 0  # scale polls attempted, for status and the bus tests
        self.last_gross_kg: float | None = None
        self._scanned: str | None = None  # the cylinder the scan being decided resolved to
        self._source = Source.CACHE  # what the scan being decided was decided on
        self.lookup: LiveLookup | None = None  # set by the station when the city can be asked
        # When the control loop last came round (monotonic), for the systemd watchdog.
        self.loop_seen = time.monotonic()

    # Life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        # Open readers before returning: opening a serial port flushes its input, so a port
        # opened later by the reader thread could swallow the first scan.
        for reader in self.readers:
            try:
                reader.open()
            except OSError as exc:
                self.log.warning("code reader not available yet (%s); will retry", exc)
        self._threads = [threading.Thread(target=self._control_loop, name=f"lane-{self.id}", daemon=True)]
        for index, reader in enumerate(self.readers):
            self._threads.append(
                threading.Thread(target=self._reader_loop, args=(reader,), name=f"lane-{self.id}-reader{index}", daemon=True)
            )
        if self.buttons is not None:
            self._threads.append(threading.Thread(target=self._button_loop, name=f"lane-{self.id}-buttons", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for reader in self.readers:
            reader.close()

    def loop_stalled(self, limit_s: float) -> bool:
        """Whether the control loop has not come round for limit_s (hung, or ended by a fault)."""
        return time.monotonic() - self.loop_seen > limit_s

    @property
    def scale_ok(self) -> bool:
        """Whether the last poll of the scale succeeded."""
        return self._scale_errors == 0

    def submit(self, event: Confirm | Abort | Reset) -> None:
        """Operator buttons (or a test) feed the lane through its inbox, like scans."""
        self._inbox.put(event)

    def lock(self, reason: str) -> None:
        """A remote stop: the valve goes off through the fault path and scans are refused until
        `unlock()`; even then the lane stays locked until an operator resets it at the lane."""
        self._inbox.put(RemoteLock(reason))

    def unlock(self) -> None:
        self._inbox.put(RemoteLock(None))

    # Threads ---------------------------------------------------------------------------------

    def _reader_loop(self, reader: CodeReader) -> None:
        while not self._stop.is_set():
            try:
                scan = reader.read()
            except Exception:  # a reader bug must not take the lane down; the relay is not involved
                self.log.exception("reader failed")
                time.sleep(1.0)
                continue
            if scan is not None:
                self._inbox.put(scan)

    def _button_loop(self) -> None:
        assert self.buttons is not None and self.config.buttons is not None
        debounce = Debouncer(self.config.buttons.debounce_s)
        failing = False
        while not self._stop.wait(BUTTON_POLL_S):
            try:
                held = self.buttons.pressed()
            except DeviceError as exc:
                if not failing:
                    self.log.warning("buttons cannot be read: %s", exc)
                failing = True
                continue
            failing = False
            for name in debounce.update(held, time.monotonic()):
                self.log.info("%s button pressed", name)
                self._inbox.put(BUTTON_EVENTS[name]())

    def _control_loop(self) -> None:
        period = self.config.scale.poll_period_s
        next_poll = time.monotonic()
        try:
            while not self._stop.is_set():
                self.loop_seen = time.monotonic()
                wait = next_poll - self.loop_seen
                if wait > 0:
                    try:
                        item = self._inbox.get(timeout=wait)
                    except queue.Empty:
                        continue
                    self._handle(item)
                    continue
                next_poll = max(next_poll + period, time.monotonic())
                self._poll()
        except Exception:
            self.log.exception("unhandled error; valve off and lane locked")
            self._fault(Reason.LANE_FAULT)
        finally:
            self._drive_off()
            if self.state.phase in BUSY:
                # A clean stop mid-fill: record it now rather than leave it for the next start.
                self._record_abort(Reason.INTERRUPTED, tripped=False)
            self._show(Signal("off"))

    # Events ----------------------------------------------------------------------------------

    def _handle(self, item: Scan | Event | RemoteLock) -> None:
        if isinstance(item, Scan):
            self._on_scan(item)
        elif isinstance(item, RemoteLock):
            self._remote_lock(item.reason)
        elif isinstance(item, Reset) and self.remote_lock is not None:
            self.log.warning("reset refused: the lane is locked remotely (%s)", self.remote_lock)
        else:
            self._step(item)

    def _remote_lock(self, reason: str | None) -> None:
        self.remote_lock = reason
        if reason is None:
            self.log.warning("remote lock lifted; the lane stays locked until an operator resets it")
            return
        self.log.warning("locked remotely: %s; valve off", reason)
        self._fault(Reason.REMOTE_LOCK)

    def _poll(self) -> None:
        self.polls += 1
        polled_at = time.monotonic()
        was_on = self.state.relay_on
        try:
            reading = self.scale.read()
        except DeviceError as exc:
            self._scale_errors += 1
            # One line when the scale is lost, not one per poll while it stays lost.
            if self._scale_errors == 1 or self.state.phase in BUSY:
                self.log.warning("scale not answering: %s", exc)
            self._step(ScaleLost(str(exc), SCALE_FAULTS[exc.fault]))
        else:
            if self._scale_errors:
                self.log.info("scale answering again after %d failed polls", self._scale_errors)
                self._scale_errors = 0
            self.last_gross_kg = reading.gross_kg
            self._step(Weight(reading.gross_kg, reading.stable))
        if was_on and not self.state.relay_on:
            # Cut-off lag: from asking the scale for the reading that ended the fill (target or
            # trip) to the valve's OFF acknowledged.
            self._notify(LaneEvent(self.id, "valve_off", {"lag_s": time.monotonic() - polled_at}))
        self._step(Tick())
        if self.state.relay_on:
            self._keepalive()

    def _keepalive(self) -> None:
        try:
            self.relay.keepalive()
        except DeviceError as exc:
            self.log.error("valve lease not renewed (%s); valve off and lane locked", exc)
            self._fault(Reason.RELAY_FAULT)

    def _on_scan(self, scan: Scan) -> None:
        now = self.clock()
        shown = scan.data.decode("ascii", "backslashreplace")[:200]
        decision, plan = self._decide(scan, now)
        self.decision_latencies_s.append(time.monotonic() - scan.received_at)
        self._step(Decided(shown, decision, plan), now)

    def _decide(self, scan: Scan, now: datetime) -> tuple[Decision, Plan | None]:
        self._scanned, self._source = None, Source.CACHE
        if self.remote_lock is not None:
            return reject(Reason.REMOTE_LOCK, self.remote_lock), None
        if scan.problem:
            return reject(Reason.INVALID_CODE, scan.problem), None
        identifier = codes.parse(scan.data, codes.Source(scan.source), self.url_patterns)
        if isinstance(identifier, codes.Invalid):
            return reject(Reason.INVALID_CODE, identifier.detail), None
        cylinder = self.store.find_cylinder(identifier)
        decision = evaluate(cylinder, self.policy, now, self.store.cache_age_s(now), identifier)
        if self.lookup is not None and not decision.allowed:
            cylinder, decision = self._with_city_record(self.lookup, identifier, cylinder, decision, now)
        self._scanned = cylinder.id if cylinder else None
        if not decision.allowed or cylinder is None:
            return decision, None
        plan = self._plan(cylinder, identifier.value)
        if plan is None:
            return reject(Reason.NO_FILL_DATA, f"cylinder {cylinder.id}"), None
        return decision, plan

    def _with_city_record(
        self, lookup: LiveLookup, identifier: codes.Identifier, cylinder: Cylinder | None, decision: Decision, now: datetime
    ) -> tuple[Cylinder | None, Decision]:
        """When only the cached record refuses this code, ask the city for it and decide on its
        answer. The lane waits at most the lookup's deadline, and only while idle: a scan during a
        fill is refused without asking."""
        if not refused_by_record_only(decision):  # decided before the record's age is read
            return cylinder, decision
        age = None if cylinder is None else self.store.cylinder_age_s(cylinder.id, now)
        if not fresher_record_could_allow(decision, age, lookup.max_record_age_s):
            return cylinder, decision
        if self.state.phase in BUSY or self.state.phase is Phase.LOCKED:
            self._source = Source.NOT_IDLE
            return cylinder, decision
        pending = lookup.ask(identifier, cylinder.id if cylinder else None)
        if pending is None:
            return cylinder, decision
        answer = self._await_city(pending, lookup.deadline_s)
        self._source = answer.source
        if answer.source != Source.CITY:
            return cylinder, decision
        fresh = self.store.find_cylinder(identifier)
        return fresh, evaluate(fresh, self.policy, now, self.store.cache_age_s(now), identifier)

    def _await_city(self, pending: Future[Answer], deadline_s: float) -> Answer:
        """The city's answer, or a timeout at the deadline; the loop's heartbeat goes on meanwhile."""
        end = time.monotonic() + deadline_s
        while (remaining := end - time.monotonic()) > 0:
            try:
                return pending.result(timeout=min(remaining, 0.1))
            except TimeoutError:
                self.loop_seen = time.monotonic()
            except Exception as exc:  # a bug in the lookup must not take the lane down
                self.log.exception("live lookup failed")
                return Answer(Source.OFFLINE, detail=str(exc))
        return Answer(Source.TIMEOUT)

    def _plan(self, cylinder: Cylinder, code: str) -> Plan | None:
        fill = self.config.fill
        target = cylinder.fill_mass_kg or fill.targets_kg.get(cylinder.model or "")
        if target is None and cylinder.volume_l and fill.fill_ratio_kg_per_l:
            target = round(cylinder.volume_l * fill.fill_ratio_kg_per_l, 2)
        if target is None or cylinder.tare_kg is None:
            return None
        return Plan(
            fill_id=str(uuid.uuid4()),
            cylinder_id=cylinder.id,
            code=code,
            tare_kg=cylinder.tare_kg,
            target_net_kg=target,
            tolerance_kg=fill.tolerance_kg,
            preact_kg=fill.preact_kg,
            overfill_margin_kg=fill.overfill_margin_kg,
            tare_tolerance_kg=fill.tare_tolerance_kg,
            capacity_kg=self.config.scale.capacity_kg,
            max_fill_s=fill.max_fill_s,
            auth_timeout_s=fill.auth_timeout_s,
            settle_min_s=fill.settle_min_s,
            settle_timeout_s=fill.settle_timeout_s,
            max_inflight_kg=fill.max_inflight_kg,
            max_step_kg=fill.max_step_kg,
            auto_start=fill.auto_start,
        )

    def _step(self, event: Event, now: datetime | None = None) -> None:
        now = now or self.clock()
        self.state, effects = step(self.state, event, now)
        try:
            for effect in effects:
                self._apply(effect, now)
        except Exception as exc:
            # Nothing after a failed effect runs: a record that did not commit never opens the valve.
            self.log.error("%s failed (%s); valve off and lane locked", type(effect).__name__, exc)
            self._fault(Reason.RELAY_FAULT if isinstance(effect, RelayOn) else Reason.LANE_FAULT)

    # Effects ---------------------------------------------------------------------------------

    def _apply(self, effect: Effect, now: datetime) -> None:
        match effect:
            case RelayOn():
                self.relay.on()
                plan = self.state.plan
                self.log.info("valve ON", extra={"fill": self._fill_id(), "cylinder": plan.cylinder_id if plan else None})
            case RelayOff():
                if not self._drive_off():
                    raise DeviceError("valve relay did not acknowledge OFF")
            case Record():
                # A fill records who was on shift when it was authorised; later milestones add nothing.
                context = self._shift_context() if effect.status == "authorised" else {}
                self.store.apply_record(self.id, effect, now, context)
                if effect.final:
                    self._fill_ended(effect)
            case Verdict():
                self._verdict(effect, now)
            case Signal():
                self._show(effect)

    def _shift_context(self) -> dict[str, Any]:
        return {**staff.on_shift(self.store, self.id), "medium": self.config.medium}

    def _verdict(self, verdict: Verdict, now: datetime) -> None:
        reasons = [f.reason.value for f in verdict.findings]
        data = {
            "code": verdict.code,
            "accepted": verdict.accepted,
            "reasons": reasons,
            "details": [f.detail for f in verdict.findings],
            "fill_id": verdict.fill_id,
            "cylinder_id": self._scanned,
            "source": self._source,
        }
        self.store.journal(now, "scan", data, lane=self.id, fill_id=verdict.fill_id, cylinder_id=self._scanned)
        said = "; ".join(text(f.reason) + (f" ({f.detail})" if f.detail else "") for f in verdict.findings)
        fields = {"cylinder": self._scanned, "fill": verdict.fill_id, "reason": ",".join(reasons) or None}
        self.log.info(
            "%s %s%s", "ACCEPT" if verdict.accepted else "REJECT", verdict.code[:60], f": {said}" if said else "", extra=fields
        )
        self._notify(LaneEvent(self.id, "verdict", data))

    def _fill_ended(self, record: Record) -> None:
        fields = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in record.fields.items()}
        cylinder = self.state.plan.cylinder_id if self.state.plan else None
        self.log.info(
            "fill %s: %s", record.status, fields.get("outcome"),
            extra={"cylinder": cylinder, "fill": record.fill_id, "reason": fields.get("cause")},
        )
        self._notify(LaneEvent(self.id, "fill_end", {"fill_id": record.fill_id, "status": record.status, **fields}))

    def _notify(self, event: LaneEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                self.log.exception("listener failed")

    def _show(self, signal: Signal) -> None:
        try:
            self.signals.show(signal.light, signal.buzzer)
        except DeviceError as exc:
            self.log.warning("stack light: %s", exc)

    def _drive_off(self) -> bool:
        for attempt in range(1, RELAY_OFF_ATTEMPTS + 1):
            try:
                self.relay.off()
                return True
            except DeviceError as exc:
                self.log.error("valve OFF attempt %d failed: %s", attempt, exc)
        self.log.critical("valve relay cannot be driven off; rely on the hardware interlock")
        return False

    def _fault(self, cause: Reason) -> None:
        """The one path for lane faults: valve off, open fill recorded as aborted, lane locked."""
        self._drive_off()
        if self.state.phase in BUSY:
            self._record_abort(cause, tripped=True)
        self.state = LaneState(Phase.LOCKED, since=self.clock(), plan=self.state.plan, cause=cause)
        self._show(Signal("red", True))

    def _record_abort(self, cause: Reason, tripped: bool) -> None:
        plan = self.state.plan
        assert plan is not None
        now = self.clock()
        fields = {"finished_at": now, "outcome": "aborted", "cause": cause, "tripped": tripped}
        self.state = LaneState(Phase.ABORTED, since=now, plan=plan, cause=cause)
        try:
            self.store.apply_record(self.id, Record(plan.fill_id, "aborted", fields), now, {})
        except Exception:
            self.log.exception("could not record the aborted fill; the next start will")

    def _fill_id(self) -> str | None:
        return self.state.plan.fill_id if self.state.plan else None
