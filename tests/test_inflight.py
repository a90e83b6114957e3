"""The learned in-flight estimate: robust to outliers, blind to fills that did not complete,
inside its clamps, and kept across restarts in the store with every change journalled."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from pathlib import Path

import pytest

from edge.store import Store, journal
from interlock.fill import Record
from interlock.inflight import ANY_MODEL, FillResult, Learned, Limits, observe, pick, preact_kg

LIMITS = Limits(window=5, min_kg=0.02, max_kg=0.5)
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)


def good(inflight_kg: float, flow: float = 0.5, cutoff: float = 29.0) -> FillResult:
    return FillResult(True, True, cutoff, cutoff + inflight_kg, flow)


def learn(results: list[FillResult], seed_kg: float = 0.2) -> Learned:
    learned = Learned()
    for result in results:
        learned, _ = observe(learned, result, seed_kg, LIMITS)
    return learned


def test_the_configured_preact_is_the_starting_value() -> None:
    assert preact_kg(None, 0.5, LIMITS) is None and preact_kg(Learned(), 0.5, LIMITS) is None
    first = learn([good(0.1)], seed_kg=0.2)
    assert first.seconds == (pytest.approx(0.4), pytest.approx(0.2)), "seeded from 0.2 kg at 0.5 kg/s"
    assert preact_kg(first, 0.5, LIMITS) == pytest.approx(0.15)


def test_it_converges_on_the_true_inflight_time() -> None:
    rng = random.Random(5)
    learned = learn([good(0.075 * rng.uniform(0.85, 1.15), flow=0.25) for _ in range(10)])
    assert learned.inflight_s == pytest.approx(0.3, rel=0.1)
    assert preact_kg(learned, 0.5, LIMITS) == pytest.approx(0.15, rel=0.1), "learned at 0.25 kg/s, applied at 0.5"


def test_one_odd_fill_does_not_move_it() -> None:
    steady = learn([good(0.1)] * 6)
    knocked = learn([good(0.1)] * 6 + [good(0.45)])  # inside the limits, far from the rest
    assert knocked.inflight_s == pytest.approx(steady.inflight_s)
    refused, reason = observe(steady, good(0.9), 0.2, LIMITS)  # beyond max_kg: refused outright
    assert refused == steady and reason is not None and "outside" in reason


@pytest.mark.parametrize(
    "result, why",
    [
        (FillResult(False, True, 29.0, 29.1, 0.5), "did not complete"),
        (FillResult(True, False, 29.0, 29.1, 0.5), "not stable"),
        (FillResult(True, True, None, 29.1, 0.5), "no cut-off"),
        (FillResult(True, True, 29.0, 29.1, None), "flow not steady"),
        (FillResult(True, True, 29.0, 28.9, 0.5), "outside"),
    ],
)
def test_fills_that_tripped_aborted_or_were_unstable_teach_nothing(result: FillResult, why: str) -> None:
    before = learn([good(0.1)] * 3)
    after, reason = observe(before, result, 0.2, LIMITS)
    assert after == before and reason is not None and why in reason


def test_it_stays_within_its_clamps_whatever_it_is_fed() -> None:
    rng = random.Random(9)
    learned = Learned()
    for _ in range(500):
        flow = rng.uniform(0.05, 2.0)
        result = good(rng.uniform(-1.0, 2.0), flow)
        learned, _ = observe(learned, result, 0.2, LIMITS)
        assert len(learned.seconds) <= LIMITS.window
        for check_flow in (0.05, 0.5, 5.0):
            applied = preact_kg(learned, check_flow, LIMITS)
            assert applied is None or LIMITS.min_kg <= applied <= LIMITS.max_kg


def test_a_cylinder_model_uses_its_own_estimate_once_it_has_enough_fills() -> None:
    lane, small = learn([good(0.1)] * 5), learn([good(0.2)] * 2)
    assert pick({ANY_MODEL: lane, "YSP5": small}, "YSP5") == lane
    small = learn([good(0.2)] * 3)
    assert pick({ANY_MODEL: lane, "YSP5": small}, "YSP5") == small
    assert pick({ANY_MODEL: lane}, None) == lane and pick({}, "YSP5") is None


def test_the_estimate_survives_a_restart_and_each_change_is_journalled(tmp_path: Path) -> None:
    path = tmp_path / "station.db"
    store = Store(path)
    first, second = learn([good(0.1)] * 3), learn([good(0.1)] * 4)
    for fill_id, learned in (("fill-1", {ANY_MODEL: first, "YSP15": first}), ("fill-2", {ANY_MODEL: second})):
        store.apply_record("A", Record(fill_id, "authorised", {"cylinder_id": "C1", "authorised_at": NOW}), NOW, {})
        store.apply_record("A", Record(fill_id, "complete", {"finished_at": NOW, "outcome": "ok"}), NOW, {}, learned)
    store.close()
    reopened = Store(path)
    assert reopened.inflight("A") == {ANY_MODEL: second, "YSP15": first}
    assert reopened.inflight("B") == {}
    # Each fill's final entry keeps what it taught.
    entries = reopened.query("SELECT fill_id, data FROM journal WHERE kind = 'fill_complete' ORDER BY seq")
    assert [e["fill_id"] for e in entries] == ["fill-1", "fill-2"]
    assert journal.load(entries[1]["data"])["inflight"][ANY_MODEL]["seconds"] == list(second.seconds)
    assert reopened.reset_inflight("A", NOW, by="manager-1") == 2
    assert reopened.inflight("A") == {}
    reset = reopened.query("SELECT data FROM journal WHERE kind = 'inflight_reset'")
    assert journal.load(reset[0]["data"]) == {"by": "manager-1", "estimates": 2}
    assert reopened.verify().ok
    reopened.close()
