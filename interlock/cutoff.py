"""Where a fill stands between polls: its flow rate, a noise-filtered weight and when it will reach
the cut-off weight. Pure: samples are (seconds, gross kg) pairs the fill machine keeps.

The filter is a median of the last FILTER_SAMPLES readings, each carried forward to the newest
reading's time at the measured flow. A plain median of a rising weight lags it by a poll; carried
forward, the readings of a steady ramp agree, so the median has no lag, and a single noisy
reading (high or low) is outvoted. Until the flow is known the readings are not carried forward:
then the filtered weight lags by about one poll, which delays the cut-off (more gas, never less)
and shows up in the in-flight mass the lane learns.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Sequence

Sample = tuple[float, float]  # (seconds since the fill started, gross kg)

FILTER_SAMPLES = 3
FLOW_WINDOW_S = 1.0  # the flow is measured over the readings of the last second
MIN_FLOW_SAMPLES = 5
MIN_FLOW_SPAN_S = 0.4
# The flow is steady when its two halves of the window agree within this fraction of it: a rate
# that changes faster (a valve still opening, a cylinder knocked) is not extrapolated.
STEADY_TOLERANCE = 0.25
MIN_FLOW_KG_PER_S = 0.005


@dataclass(frozen=True)
class Flow:
    kg_per_s: float
    steady: bool


def window(samples: Sequence[Sample], now_s: float) -> tuple[Sample, ...]:
    """The samples worth keeping at now_s: those in the flow window, and at least the filter's."""
    recent = [s for s in samples if s[0] >= now_s - FLOW_WINDOW_S]
    keep = max(len(recent), FILTER_SAMPLES)
    return tuple(samples[-keep:])


def slope(samples: Sequence[Sample]) -> float | None:
    """Theil-Sen: the median of the slopes between every pair, robust to a wild reading or two."""
    slopes = [
        (w2 - w1) / (t2 - t1)
        for i, (t1, w1) in enumerate(samples)
        for t2, w2 in samples[i + 1 :]
        if t2 - t1 > 1e-6
    ]
    return statistics.median(slopes) if slopes else None


def flow(samples: Sequence[Sample]) -> Flow | None:
    if len(samples) < MIN_FLOW_SAMPLES or samples[-1][0] - samples[0][0] < MIN_FLOW_SPAN_S:
        return None
    whole = slope(samples)
    if whole is None or whole < MIN_FLOW_KG_PER_S:
        return None
    half = len(samples) // 2
    first, second = slope(samples[: half + 1]), slope(samples[half:])
    steady = first is not None and second is not None and abs(first - second) <= STEADY_TOLERANCE * whole
    return Flow(whole, steady)


def filtered(samples: Sequence[Sample], kg_per_s: float | None) -> float:
    """The noise-filtered weight at the newest sample's time."""
    last = samples[-FILTER_SAMPLES:]
    newest = last[-1][0]
    rate = kg_per_s or 0.0
    return statistics.median(w + rate * (newest - t) for t, w in last)


def crossing_s(samples: Sequence[Sample], kg_per_s: float, threshold_kg: float) -> float:
    """When (seconds since the fill started) the filtered weight reaches threshold_kg at kg_per_s."""
    newest = samples[-1][0]
    return newest + max(0.0, threshold_kg - filtered(samples, kg_per_s)) / kg_per_s
