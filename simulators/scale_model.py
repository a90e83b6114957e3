"""The physics of one filling position: what sits on the scale and what flows while the valve is open.

Beyond the plain flow the model carries what makes a fixed pre-act wrong in a real station, each
off by default so a test asks for what it needs:

- the valve passes gas for `valve_delay_s` after its coil drops (the solenoid closing);
- gas in flight (the hose and filling head between the valve and the cylinder) keeps arriving
  after the valve has closed: `inflight_s` seconds' worth of the flow at the moment the valve
  shuts, spread over `inflight_tail_s`, and different from fill to fill by up to
  +-`inflight_variation` (a cylinder's back pressure, the gas temperature);
- the flow wanders during a fill (`flow_drift`, relative change per square-root second, a random
  walk bounded at +-`MAX_DRIFT`);
- the supply slows as its tank empties (`supply_kg` in the tank: the flow falls linearly to
  `flow_at_empty` of nominal as it runs out).
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass

MAX_DRIFT = 0.25  # the flow stays within +-25 % of nominal however long it wanders
STEP_S = 0.005  # integration step: the flow is constant within it


@dataclass
class ScaleParams:
    flow_kg_per_s: float = 4.0
    valve_delay_s: float = 0.08  # the valve keeps passing gas this long after the coil drops
    noise_kg: float = 0.01
    settle_s: float = 0.2  # a reading is stable this long after the last change
    inflight_s: float = 0.0  # gas in flight after the valve closes, in seconds of flow
    inflight_tail_s: float = 0.3  # over how long it arrives
    inflight_variation: float = 0.15  # fill-to-fill spread of the in-flight mass, relative
    flow_drift: float = 0.0  # random-walk drift of the flow, relative per sqrt(s)
    supply_kg: float | None = None  # gas left in the supply tank; None for a supply that never slows
    flow_at_empty: float = 0.5
    # A load cell's last digit flickers even at rest; 0 shows a resting weight bit-identical.
    jitter_kg: float = 0.0


class ScaleModel:
    """Thread-safe: the Modbus server thread reads it, scripted operators move cylinders."""

    def __init__(self, params: ScaleParams, seed: int = 0, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.params = params
        self._clock = clock
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._load_kg = 0.0  # what the operator put on the scale
        self._filled_kg = 0.0  # gas that flowed in since
        self._valve_on = False
        self._valve_off_at: float | None = None
        self._last_change = clock()
        self._updated = clock()
        self._drift = 1.0  # this fill's flow relative to nominal
        self.supply_left_kg = params.supply_kg
        self._tail_kg = 0.0  # in-flight gas still to arrive after the valve closed
        self._tail_rate = 0.0
        self.last_inflight_kg = 0.0  # what arrived after the coil dropped, for the bench's truth
        # Faults of the world, switched by tests: an empty supply (the valve opens, nothing
        # flows) and a leaking valve or fitting (with the valve shut, gas leaves the cylinder).
        self.supply_empty = False
        self.leak_kg_per_s = 0.0

    def place(self, gross_kg: float) -> None:
        with self._lock:
            self._advance()
            self._load_kg, self._filled_kg = gross_kg, 0.0
            self._tail_kg = 0.0
            self._last_change = self._clock()

    def remove(self) -> None:
        self.place(0.0)

    def set_valve(self, on: bool) -> None:
        with self._lock:
            self._advance()
            now = self._clock()
            if self._valve_on and not on:
                self._valve_off_at = now
                self._start_tail()
            elif on and not self._valve_on:
                self._drift = 1.0
                self._tail_kg = 0.0
                self.last_inflight_kg = 0.0
            self._valve_on = on

    @property
    def valve_on(self) -> bool:
        with self._lock:
            return self._valve_on

    def true_gross_kg(self) -> float:
        with self._lock:
            self._advance()
            return self._load_kg + self._filled_kg

    def sample(self) -> tuple[float, bool]:
        """(displayed gross kg, stable) as the indicator would show it now."""
        with self._lock:
            self._advance()
            stable = self._clock() - self._last_change >= self.params.settle_s
            noise = self.params.jitter_kg if stable else self.params.noise_kg
            return self._load_kg + self._filled_kg + (self._rng.gauss(0.0, noise) if noise else 0.0), stable

    def flow_now(self) -> float:
        """The flow through an open valve at this moment, kg/s."""
        p = self.params
        supply = 1.0
        if p.supply_kg and self.supply_left_kg is not None:
            supply = p.flow_at_empty + (1 - p.flow_at_empty) * max(0.0, self.supply_left_kg) / p.supply_kg
        return p.flow_kg_per_s * self._drift * supply

    def _start_tail(self) -> None:
        p = self.params
        if p.inflight_s <= 0:
            return
        spread = self._rng.uniform(1 - p.inflight_variation, 1 + p.inflight_variation)
        self._tail_kg = p.inflight_s * self.flow_now() * spread
        self._tail_rate = self._tail_kg / p.inflight_tail_s

    def _main_flow_until(self, now: float) -> float:
        if self._valve_on:
            return now
        if self._valve_off_at is not None:
            return min(now, self._valve_off_at + self.params.valve_delay_s)
        return self._updated

    def _advance(self) -> None:
        now = self._clock()
        if self._load_kg <= 0:
            self._updated = now
            return
        main_end = self._main_flow_until(now)
        t = self._updated
        while t < now:
            dt = min(STEP_S, now - t)
            arrived = 0.0
            if t < main_end:
                dt = min(dt, main_end - t)
                arrived = 0.0 if self.supply_empty else self.flow_now() * dt
                self._wander(dt)
                if not self._valve_on:
                    self.last_inflight_kg += arrived
            elif self._tail_kg > 0:
                arrived = min(self._tail_kg, self._tail_rate * dt)
                self._tail_kg -= arrived
                self.last_inflight_kg += arrived
            else:
                break
            self._filled_kg += arrived
            if self.supply_left_kg is not None:
                self.supply_left_kg -= arrived
            t += dt
            if arrived:
                self._last_change = t
        self._leak(now, main_end)
        self._updated = now

    def _wander(self, dt: float) -> None:
        if self.params.flow_drift <= 0:
            return
        step = self._rng.gauss(0.0, self.params.flow_drift * math.sqrt(dt))
        self._drift = min(1 + MAX_DRIFT, max(1 - MAX_DRIFT, self._drift * math.exp(step)))

    def _leak(self, now: float, flow_end: float) -> None:
        """With the valve shut and its in-flight gas arrived, a leak takes gas out of the cylinder."""
        if self._valve_on or self.leak_kg_per_s <= 0 or self._load_kg <= 0 or self._tail_kg > 0:
            return
        start = max(self._updated, flow_end)
        if now > start:
            lost = (now - start) * self.leak_kg_per_s
            self._filled_kg = max(-self._load_kg, self._filled_kg - lost)
            self._last_change = now
