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
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable

from drivers.base import Buttons, CodeReader, DeviceError, Fault, Relay, Scale, Scan, SignalOutput
from drivers.buttons import Debouncer
from interlock import codes, inflight
from interlock.fill import (
    BUSY,
    Abort,
    Acknowledge,
    Confirm,
    CutoffDue,
    Decided,
    Effect,
    Event,
    LaneReset,
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
from interlock.duties import Act, Duty, conflicts
from interlock.reasons import Reason, text
from interlock.rules import (
    CheckRecord,
    Cylinder,
    Decision,
    Finding,
    Policy,
    evaluate,
    fresher_record_could_allow,
    refused_by_record_only,
    reject,
)

from ..config import Config, LaneConfig
from ..logs import LaneLog
from ..scanpoints.checks import latest_precheck
from ..scanpoints.duties import lane_operator
from ..store import Store, StoreUnavailable, staff
from ..textsafe import scanned_text
from .lookup import Answer, LiveLookup, Source

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
# How long a request from the control socket may wait for the control loop to take it.
REQUEST_TIMEOUT_S = 5.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Request:
    """An operator event from outside the lane (the control socket) that wants an answer."""

    event: Reset | Acknowledge
    reply: "queue.Queue[dict[str, Any]]" = field(default_factory=lambda: queue.Queue(maxsize=1))


@dataclass(frozen=True)
class LaneEvent:
    """What a lane tells observers (the demo, a status page): verdicts and finished fills."""

    lane: str
    kind: str  # "verdict", "fill_end", "valve_off" (with the cut-off lag) or "reset" (done or refused)
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
            require_precheck=config.require_precheck,
            precheck_valid_s=station.checks.precheck_valid_minutes * 60,
        )
        self.url_patterns = [
            codes.UrlPattern(re.compile(p.regex), p.kind) for p in station.codes.url_patterns
        ]
        self.state = LaneState(Phase.IDLE, since=clock())
        self.listeners: list[Callable[[LaneEvent], None]] = []
        # Recent scan-to-decision times, for benchmarks and a future status page; bounded.
        self.decision_latencies_s: deque[float] = deque(maxlen=10_000)
        self._inbox: queue.Queue[Scan | Event | RemoteLock | Request] = queue.Queue()
        self.remote_lock: str | None = None  # why the company locked this lane, while it is locked
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._scale_errors = 0
        self.polls = 0  # scale polls attempted, for status and the bus tests
        self.last_gross_kg: float | None = None
        self._scanned: str | None = None  # the cylinder the scan being decided resolved to
        self._precheck: tuple[str, CheckRecord] | None = None  # the pre-fill check it relied on
        # The learned in-flight lives in the store (read afresh for each fill, so a manager's reset
        # by command takes effect on the next fill of a running daemon); the open fill's model.
        self.inflight_limits = inflight.Limits(config.fill.learn_window, config.fill.preact_min_kg, config.fill.preact_ceiling_kg)
        self._fill_model: tuple[str, str | None] | None = None  # (fill id, cylinder model)
        self._reset_outcome: LaneReset | None = None  # what the last Reset came to, for its requester
        self._scan_hex: str | None = None  # its raw bytes, for the journal's evidence
        self._shown = ""  # and as it is shown
        # A fill's end the store could not take (full or read-only disk), written once it can.
        self._unrecorded: Record | None = None
        # When the control loop last came round (monotonic), for the systemd watchdog and the guard.
        self._source = Source.CACHE  # what the scan being decided was decided on
        self.lookup: LiveLookup | None = None  # set by the station when the city can be asked
        self.loop_seen = time.monotonic()
        # Set by the loop guard's thread when it found this loop hung with the valve on.
        self.guard_cause: Reason | None = None

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

    def weigh_stable(self, timeout_s: float) -> tuple[float | None, str]:
        """Poll the scale until it shows a stable reading: (gross kg, "") or (None, why not).
        For the start-up re-weighing of an interrupted fill, before the control loop runs."""
        deadline = time.monotonic() + timeout_s
        problem = "no stable reading"
        while True:
            try:
                reading = self.scale.read()
            except DeviceError as exc:
                problem = f"scale not answering: {exc}"
            else:
                if reading.stable:
                    return reading.gross_kg, ""
                problem = f"no stable reading in {timeout_s:g} s (last {reading.gross_kg:.2f} kg)"
            if time.monotonic() >= deadline:
                return None, problem
            time.sleep(self.config.scale.poll_period_s)

    def hold(self, cause: Reason, detail: dict[str, Any]) -> None:
        """Hold the lane for an acknowledgement before it starts: red light and buzzer, scans refused."""
        self.state = LaneState(Phase.LOCKED, since=self.clock(), cause=cause)
        self.log.warning("lane held until acknowledged: %s %s", text(cause), detail)
        self._show(Signal("red", True))

    def guard_trip(self, cause: Reason) -> None:
        """From the guard's thread: this lane may not energise or re-arm its valve again, and
        locks itself as soon as its loop comes round (if it ever does)."""
        self.guard_cause = cause

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

    def request(self, event: Reset | Acknowledge, timeout_s: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
        """Hand an event to the control loop and wait for what became of it."""
        request = Request(event)
        self._inbox.put(request)
        try:
            return request.reply.get(timeout=timeout_s)
        except queue.Empty:
            return {"ok": False, "message": f"lane {self.id} did not answer within {timeout_s:.0f} s"}

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
        # A long press of abort resets a locked lane (its first moments were a short press, which
        # aborts nothing in a locked lane).
        hold_s = self.config.buttons.reset_hold_s
        long_press = Debouncer(hold_s)
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
            now = time.monotonic()
            for name in debounce.update(held, now):
                self.log.info("%s button pressed", name)
                if name == "reset":
                    self._inbox.put(Reset(self._shift_operator(), "reset input", "reset_input"))
                else:
                    self._inbox.put(BUTTON_EVENTS[name]())
            if "abort" in long_press.update(held & {"abort"}, now):
                self.log.info("abort button held %.1f s: reset", hold_s)
                self._inbox.put(Reset(self._shift_operator(), f"abort held {hold_s:g} s", "abort_long_press"))

    def _shift_operator(self) -> str:
        """Who a button press at this lane is recorded as: the operator on its shift."""
        rows = self.store.query("SELECT operator FROM shifts WHERE lane = ?", [self.id])
        return rows[0]["operator"] if rows else "unknown"

    def _control_loop(self) -> None:
        period = self.config.scale.poll_period_s
        next_poll = time.monotonic()
        try:
            while not self._stop.is_set():
                self.loop_seen = time.monotonic()
                if self.guard_cause is not None and self.state.phase is not Phase.LOCKED:
                    self._fault(self.guard_cause)
                wait = next_poll - self.loop_seen
                due = self._cutoff_due_in()
                if due is not None and due <= wait:
                    # The predicted cut-off falls before the next poll: wake for it. The poll is
                    # not moved, so every trip check still runs on every reading.
                    if not self._take_inbox(due):
                        self._cutoff_due()
                    continue
                if wait > 0:
                    self._take_inbox(wait)
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

    def _take_inbox(self, timeout_s: float) -> bool:
        """Handle one scan or operator event if one comes within timeout_s; False if none did."""
        if timeout_s <= 0:
            return False
        try:
            item = self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            return False
        self._handle(item)
        return True

    def _cutoff_due(self) -> None:
        fired_at = time.monotonic()
        self._step(CutoffDue())
        if not self.state.relay_on:
            # Cut-off lag of a predicted cut-off: from the predicted moment to the valve's OFF acknowledged.
            lag = time.monotonic() - fired_at
            self.log.info("valve OFF at %.2f kg gross (last reading), %.0f ms after the predicted moment",
                          self.last_gross_kg or 0.0, lag * 1000, extra={"fill": self._fill_id()})
            self._notify(LaneEvent(self.id, "valve_off", {"lag_s": lag, "predicted": True}))

    def _cutoff_due_in(self) -> float | None:
        due = self.state.cutoff_due_at
        return None if due is None else (due - self.clock()).total_seconds()

    # Events ----------------------------------------------------------------------------------

    def _handle(self, item: Scan | Event | RemoteLock | Request) -> None:
        if isinstance(item, Scan):
            self._on_scan(item)
        elif isinstance(item, RemoteLock):
            self._remote_lock(item.reason)
        elif isinstance(item, Reset | Request) and self._remotely_locked(item):
            return
        elif isinstance(item, Request):
            self._answer(item)
        else:
            self._step(item)

    def _remotely_locked(self, item: Reset | Request) -> bool:
        """A reset, from any path, is refused while the company's lock stands."""
        if self.remote_lock is None or not isinstance(item.event if isinstance(item, Request) else item, Reset):
            return False
        self.log.warning("reset refused: the lane is locked remotely (%s)", self.remote_lock)
        if isinstance(item, Request):
            item.reply.put({
                "ok": False, "refused": Reason.REMOTE_LOCK.value, "lane": self.id, "phase": self.state.phase.value,
                "message": f"refused: the lane is locked remotely ({self.remote_lock})",
            })
        return True

    def _remote_lock(self, reason: str | None) -> None:
        self.remote_lock = reason
        if reason is None:
            self.log.warning("remote lock lifted; the lane stays locked until an operator resets it")
            return
        self.log.warning("locked remotely: %s; valve off", reason)
        self._fault(Reason.REMOTE_LOCK)

    def _answer(self, request: Request) -> None:
        self._reset_outcome = None
        self._step(request.event)
        outcome = self._reset_outcome
        verb, done = ("acknowledge", "acknowledged") if isinstance(request.event, Acknowledge) else ("reset", "reset")
        if outcome is None:
            why = f"locked by {self.state.cause}" if self.state.phase is Phase.LOCKED else "not locked"
            answer = {"ok": False, "message": f"lane {self.id} is {self.state.phase.value} ({why}): nothing to {verb}"}
        elif outcome.accepted:
            answer = {"ok": True, "message": f"lane {self.id}: {outcome.cause or 'trip'} {done} by {outcome.by}"}
        else:
            assert outcome.refused is not None
            answer = {"ok": False, "refused": outcome.refused.value, "message": f"refused: {text(outcome.refused)}"}
        request.reply.put({**answer, "lane": self.id, "phase": self.state.phase.value})

    def _poll(self) -> None:
        if self._unrecorded is not None and self.store.outage is None:
            self._write_unrecorded()
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
            lag = time.monotonic() - polled_at
            self.log.info("valve OFF at %.2f kg gross, %.0f ms after the reading", self.last_gross_kg or 0.0, lag * 1000,
                          extra={"fill": self._fill_id()})
            self._notify(LaneEvent(self.id, "valve_off", {"lag_s": lag}))
        self._step(Tick())
        if self.state.relay_on:
            self._keepalive()

    def _keepalive(self) -> None:
        if self.guard_cause is not None:  # the guard closed this valve: never re-arm its lease
            return
        try:
            self.relay.keepalive()
        except DeviceError as exc:
            self.log.error("valve lease not renewed (%s); valve off and lane locked", exc)
            self._fault(Reason.RELAY_FAULT)

    def _on_scan(self, scan: Scan) -> None:
        now = self.clock()
        # Shown (journal, logs, records) with controls escaped; the raw bytes go in as hex.
        shown = scanned_text(scan.data)
        self._scan_hex = scan.data.hex()
        self._shown = shown
        decision, plan = self._decide(scan, now)
        self.decision_latencies_s.append(time.monotonic() - scan.received_at)
        self._step(Decided(shown, decision, plan), now)

    def _decide(self, scan: Scan, now: datetime) -> tuple[Decision, Plan | None]:
        self._scanned, self._source = None, Source.CACHE
        if self.remote_lock is not None:
            return reject(Reason.REMOTE_LOCK, self.remote_lock), None
        outage = self.store.outage
        if outage is not None:  # a fill that cannot be recorded is not started
            return reject(Reason.STORE_UNAVAILABLE, outage.error), None
        if scan.codes_in_view > 1:  # the frame does not say which cylinder is on the scale
            return reject(Reason.TWO_CODES, f"{scan.codes_in_view} codes in one camera frame"), None
        if scan.problem:
            return reject(Reason.INVALID_CODE, scan.problem), None
        identifier = codes.parse(scan.data, codes.Source(scan.source), self.url_patterns)
        if isinstance(identifier, codes.Invalid):
            return reject(Reason.INVALID_CODE, identifier.detail), None
        cylinder = self.store.find_cylinder(identifier)
        decision = evaluate(cylinder, self.policy, now, self.store.cache_age_s(now), identifier, self._precheck_of(cylinder))
        if self.lookup is not None and not decision.allowed:
            cylinder, decision = self._with_city_record(self.lookup, identifier, cylinder, decision, now)
        self._scanned = cylinder.id if cylinder else None
        decision = self._separate_duties(decision)
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
        return fresh, evaluate(fresh, self.policy, now, self.store.cache_age_s(now), identifier, self._precheck_of(fresh))

    def _precheck_of(self, cylinder: Cylinder | None) -> CheckRecord | None:
        """The cylinder's latest pre-fill check, kept for the fill record that may follow."""
        self._precheck = latest_precheck(self.store, cylinder.id) if cylinder else None
        return self._precheck[1] if self._precheck else None

    def _separate_duties(self, decision: Decision) -> Decision:
        """The lane's operator may not fill a cylinder they pre-checked themselves."""
        if self._precheck is None:
            return decision
        check = self._precheck[1]
        found = conflicts(
            Act.by(Duty.OPERATE, lane_operator(self.store, self.id)), [Act.by(Duty.PRECHECK, check.checker_id, at=check.at)]
        )
        return Decision(False, decision.findings + tuple(found)) if found else decision

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
        learned = inflight.pick(self.store.inflight(self.id), cylinder.model) if fill.learn_preact else None
        plan = Plan(
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
            inflight_s=learned.inflight_s if learned else None,
            preact_min_kg=self.inflight_limits.min_kg,
            preact_max_kg=self.inflight_limits.max_kg,
            predict_cutoff=fill.cutoff == "predicted",
            no_flow_s=fill.no_flow_s,
            no_flow_kg=fill.no_flow_kg,
            frozen_samples=fill.frozen_samples,
            leak_kg=fill.leak_kg,
            leak_check_s=fill.leak_check_s,
        )
        self._fill_model = (plan.fill_id, cylinder.model)
        return plan

    def _step(self, event: Event, now: datetime | None = None) -> None:
        now = now or self.clock()
        self.state, effects = step(self.state, event, now)
        try:
            for effect in effects:
                self._apply(effect, now)
        except StoreUnavailable as exc:
            self._store_failed(effect, exc)
        except Exception as exc:
            # Nothing after a failed effect runs: a record that did not commit never opens the valve.
            self.log.error("%s failed (%s); valve off and lane locked", type(effect).__name__, exc)
            self._fault(Reason.RELAY_FAULT if isinstance(effect, RelayOn) else Reason.LANE_FAULT)

    # Effects ---------------------------------------------------------------------------------

    def _apply(self, effect: Effect, now: datetime) -> None:
        match effect:
            case RelayOn():
                if self.guard_cause is not None:
                    raise DeviceError(f"the loop guard has locked this lane ({self.guard_cause})")
                self.relay.on()
                plan = self.state.plan
                self.log.info("valve ON", extra={"fill": self._fill_id(), "cylinder": plan.cylinder_id if plan else None})
            case RelayOff():
                if not self._drive_off():
                    raise DeviceError("valve relay did not acknowledge OFF")
            case Record():
                # A fill records who was on shift when it was authorised; later milestones add nothing.
                context = self._shift_context() if effect.status == "authorised" else {}
                learned = self._learned_inflight(effect) if effect.status == "complete" else None
                self.store.apply_record(self.id, effect, now, context, learned)
                if learned:
                    self.log.info("in-flight now %.3f s of flow", learned[inflight.ANY_MODEL].inflight_s or 0.0,
                                  extra={"fill": effect.fill_id})
                if effect.final:
                    self._fill_ended(effect)
            case Verdict():
                self._verdict(effect, now)
            case LaneReset():
                self._journal_reset(effect, now)
            case Signal():
                self._show(effect)

    def _shift_context(self) -> dict[str, Any]:
        context: dict[str, Any] = {**staff.on_shift(self.store, self.id), "medium": self.config.medium}
        if self._precheck is not None:
            # The fill names the pre-fill check it relied on, and its checker is the one who checked.
            context.update(precheck_id=self._precheck[0], checker=self._precheck[1].checker)
        return context

    def _verdict(self, verdict: Verdict, now: datetime) -> None:
        reasons = [f.reason.value for f in verdict.findings]
        data = {
            "code": verdict.code,
            "raw_hex": self._scan_hex,
            "accepted": verdict.accepted,
            "reasons": reasons,
            "details": [f.detail for f in verdict.findings],
            "fill_id": verdict.fill_id,
            "cylinder_id": self._scanned,
            "source": self._source,
        }
        try:
            self.store.journal(now, "scan", data, lane=self.id, fill_id=verdict.fill_id, cylinder_id=self._scanned)
        except StoreUnavailable as exc:
            # The verdict still shows and logs; an accepted one then fails at its fill record.
            self.log.warning("scan not journalled: %s", exc)
        said = "; ".join(text(f.reason) + (f" ({f.detail})" if f.detail else "") for f in verdict.findings)
        fields = {"cylinder": self._scanned, "fill": verdict.fill_id, "reason": ",".join(reasons) or None}
        self.log.info(
            "%s %s%s", "ACCEPT" if verdict.accepted else "REJECT", verdict.code[:60], f": {said}" if said else "", extra=fields
        )
        self._notify(LaneEvent(self.id, "verdict", data))

    def _journal_reset(self, outcome: LaneReset, now: datetime) -> None:
        if not outcome.by:  # a button: the operator on shift at this lane
            outcome = replace(outcome, by=self._shift_operator())
        self._reset_outcome = outcome
        if outcome.accepted:
            self.guard_cause = None
        data = {
            "by": outcome.by, "why": outcome.why, "source": outcome.source,
            "cause": outcome.cause.value if outcome.cause else None,
            "refused": outcome.refused.value if outcome.refused else None, "detail": outcome.detail,
        }
        kind = f"lane_{outcome.kind}" + ("" if outcome.accepted else "_refused")
        self.store.journal(now, kind, data, lane=self.id)
        self._notify(LaneEvent(self.id, "reset", {"accepted": outcome.accepted, "kind": outcome.kind, **data}))
        # Who, how and why as far as each is known: an empty one is left out, not printed blank.
        who = f"{outcome.kind} by {outcome.by or 'unknown'}" + (f" via {outcome.source}" if outcome.source else "")
        if outcome.accepted:
            why = f" ({outcome.why})" if outcome.why else ""
            self.log.warning("lane %s%s%s", who, why, f": was {text(outcome.cause)}" if outcome.cause else "")
        else:
            assert outcome.refused is not None
            self.log.warning("%s refused: %s", who, text(outcome.refused))

    def _fill_ended(self, record: Record) -> None:
        fields = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in record.fields.items()}
        cylinder = self.state.plan.cylinder_id if self.state.plan else None
        net, target = fields.get("net_kg"), self.state.plan.target_net_kg if self.state.plan else None
        self.log.info(
            "fill %s: %s%s", record.status, str(fields.get("outcome")).lower(),
            f", net {net:.2f} kg" + (f" of {target:.2f} kg" if target is not None else "") if net is not None else "",
            extra={"cylinder": cylinder, "fill": record.fill_id, "reason": fields.get("cause")},
        )
        self._notify(LaneEvent(self.id, "fill_end", {"fill_id": record.fill_id, "status": record.status, **fields}))

    def _learned_inflight(self, record: Record) -> dict[str, inflight.Learned] | None:
        """The lane's (and the cylinder model's) in-flight estimate with what this fill showed;
        None when nothing is learned. The fill's final record keeps it."""
        if not self.config.fill.learn_preact:
            return None
        try:
            return self._learn(record)
        except Exception:  # learning is not safety: a fault in it must not cost the fill's record
            self.log.exception("could not learn the in-flight from this fill")
            return None

    def _learn(self, record: Record) -> dict[str, inflight.Learned] | None:
        model = self._fill_model[1] if self._fill_model and self._fill_model[0] == record.fill_id else None
        result = inflight.FillResult(
            complete=True,
            stable=True,  # the machine completes a fill only on a stable reading
            cutoff_gross_kg=self.state.cutoff_gross_kg,
            final_gross_kg=record.fields.get("final_gross_kg"),
            flow_kg_per_s=self.state.flow_kg_per_s,
        )
        current = self.store.inflight(self.id)
        learned: dict[str, inflight.Learned] = {}
        for key in dict.fromkeys([inflight.ANY_MODEL, model or inflight.ANY_MODEL]):
            after, ignored = inflight.observe(current.get(key, inflight.Learned()), result, self.config.fill.preact_kg,
                                              self.inflight_limits)
            if ignored:
                self.log.info("in-flight not learned from this fill: %s", ignored, extra={"fill": record.fill_id})
                return None
            learned[key] = after
        return learned

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
        record = Record(plan.fill_id, "aborted", fields)
        try:
            self.store.apply_record(self.id, record, now, {})
        except StoreUnavailable as exc:
            self.log.error("aborted fill not recorded yet (%s); written when the store takes writes", exc)
            self._unrecorded = record
        except Exception:
            self.log.exception("could not record the aborted fill; the next start will")

    def _store_failed(self, effect: Effect, exc: StoreUnavailable) -> None:
        """A write the store could not take (full or read-only disk): not the valve's fault, so
        the lane is not locked. The valve goes off, since nothing unrecorded may go on; scans are
        refused with STORE_UNAVAILABLE until the store takes writes again, with no restart."""
        self._drive_off()
        if isinstance(effect, Record) and effect.status != "authorised":
            # The fill's row exists: its end is written once the store is back.
            fields = {"finished_at": self.clock(), "outcome": "aborted", "cause": Reason.STORE_UNAVAILABLE, "tripped": False}
            self._unrecorded = effect if effect.final else Record(effect.fill_id, "aborted", fields)
        elif isinstance(effect, Record):
            # The scan that found the store full: the operator is told it was refused, and why.
            refused = Verdict(self._shown, False, (Finding(Reason.STORE_UNAVAILABLE, str(exc)),))
            self._verdict(refused, self.clock())
        self.log.error("%s not recorded (%s); valve off, scans refused until the store takes writes",
                       type(effect).__name__, exc, extra={"fill": self._fill_id(), "reason": Reason.STORE_UNAVAILABLE.value})
        self.state = LaneState(Phase.IDLE, since=self.clock())
        self._show(Signal("red", False))

    def _write_unrecorded(self) -> None:
        record = self._unrecorded
        assert record is not None
        try:
            self.store.apply_record(self.id, record, self.clock(), {})
        except StoreUnavailable:
            return
        self.log.warning("fill %s %s recorded now that the store takes writes", record.fill_id, record.status)
        self._unrecorded = None
        self._fill_ended(record)

    def _fill_id(self) -> str | None:
        return self.state.plan.fill_id if self.state.plan else None
