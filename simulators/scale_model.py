"""The physics of one filling position: what sits on the scale and what flows while the valve is open."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass


@dataclass
class ScaleParams:
    flow_kg_per_s: float = 4.0
    valve_delay_s: float = 0.08  # the valve keeps passing gas this long after the coil drops
    noise_kg: float = 0.01
    settle_s: float = 0.2  # a reading is stable this long after the last change
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
        # Faults of the world, switched by tests: an empty supply (the valve opens, nothing
        # flows) and a leaking valve or fitting (with the valve shut, gas leaves the cylinder).
        self.supply_empty = False
        self.leak_kg_per_s = 0.0

    def place(self, gross_kg: float) -> None:
        with self._lock:
            self._advance()
            self._load_kg, self._filled_kg = gross_kg, 0.0
            self._last_change = self._clock()

    def remove(self) -> None:
        self.place(0.0)

    def set_valve(self, on: bool) -> None:
        with self._lock:
            self._advance()
            if self._valve_on and not on:
                self._valve_off_at = self._clock()
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

    def _flowing_until(self, now: float) -> float:
        if self._valve_on:
            return now
        if self._valve_off_at is not None:
            return min(now, self._valve_off_at + self.params.valve_delay_s)
        return self._updated

    def _advance(self) -> None:
        now = self._clock()
        flow_end = self._flowing_until(now)
        if flow_end > self._updated and self._load_kg > 0 and not self.supply_empty:
            self._filled_kg += (flow_end - self._updated) * self.params.flow_kg_per_s
            self._last_change = flow_end
        self._leak(now, flow_end)
        self._updated = now

    def _leak(self, now: float, flow_end: float) -> None:
        """With the valve shut and its in-flight gas arrived, a leak takes gas out of the cylinder."""
        if self._valve_on or self.leak_kg_per_s <= 0 or self._load_kg <= 0:
            return
        start = max(self._updated, flow_end)
        if now > start:
            lost = (now - start) * self.leak_kg_per_s
            self._filled_kg = max(-self._load_kg, self._filled_kg - lost)
            self._last_change = now
