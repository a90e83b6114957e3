"""The simulated filling physics, on a hand-driven clock: what arrives after the coil drops
depends on the flow and differs from fill to fill; the flow drifts; an emptying supply slows."""

from __future__ import annotations

import statistics

import pytest

from simulators.scale_model import MAX_DRIFT, ScaleModel, ScaleParams


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _fill(model: ScaleModel, clock: Clock, open_s: float) -> tuple[float, float]:
    """(kg that arrived while the coil was on, kg that arrived after it dropped)."""
    start = model.true_gross_kg()
    model.set_valve(True)
    clock.t += open_s
    at_cutoff = model.true_gross_kg()
    model.set_valve(False)
    clock.t += 2.0
    return at_cutoff - start, model.true_gross_kg() - at_cutoff


@pytest.mark.parametrize("flow", [0.25, 0.5])
def test_inflight_mass_scales_with_flow_and_varies_within_its_spread(flow: float) -> None:
    clock = Clock()
    params = ScaleParams(flow_kg_per_s=flow, valve_delay_s=0.15, inflight_s=0.2, inflight_variation=0.15)
    model = ScaleModel(params, seed=3, clock=clock)
    model.place(20.0)
    afters = [_fill(model, clock, 1.0)[1] for _ in range(40)]
    valve = flow * 0.15
    for after in afters:
        assert valve + flow * 0.2 * 0.85 - 1e-9 <= after <= valve + flow * 0.2 * 1.15 + 1e-9
    assert statistics.pstdev(afters) > 0.005 * flow, "the in-flight mass differs from fill to fill"
    assert model.last_inflight_kg == pytest.approx(afters[-1])


def test_the_valve_passes_gas_for_its_delay_after_the_coil_drops() -> None:
    clock = Clock()
    model = ScaleModel(ScaleParams(flow_kg_per_s=0.5, valve_delay_s=0.15), clock=clock)
    model.place(20.0)
    _, after = _fill(model, clock, 2.0)
    assert after == pytest.approx(0.075)


def test_flow_drifts_but_stays_bounded() -> None:
    clock = Clock()
    model = ScaleModel(ScaleParams(flow_kg_per_s=0.5, flow_drift=0.2), seed=1, clock=clock)
    model.place(20.0)
    model.set_valve(True)
    flows = []
    for _ in range(600):
        clock.t += 0.1
        model.true_gross_kg()
        flows.append(model.flow_now())
    assert max(flows) - min(flows) > 0.02, "the flow wandered"
    assert all(0.5 * (1 - MAX_DRIFT) - 1e-9 <= f <= 0.5 * (1 + MAX_DRIFT) + 1e-9 for f in flows)


def test_an_emptying_supply_slows_the_flow() -> None:
    clock = Clock()
    model = ScaleModel(ScaleParams(flow_kg_per_s=0.5, supply_kg=20.0, flow_at_empty=0.5), clock=clock)
    model.place(20.0)
    first, _ = _fill(model, clock, 4.0)
    for _ in range(6):
        _fill(model, clock, 4.0)
    last, _ = _fill(model, clock, 4.0)
    assert last < first * 0.9
    assert model.supply_left_kg is not None and model.supply_left_kg < 10.0
