"""Operator push-buttons: debouncing, and confirm/abort wired to a relay board's discrete inputs."""

from __future__ import annotations

import copy
import time
from typing import Any, Callable

from drivers.buttons import Debouncer
from interlock.reasons import Reason

from .conftest import SimStation


def test_debouncer_reports_each_press_once_after_it_is_held() -> None:
    d = Debouncer(0.05)
    assert d.update({"confirm"}, 0.00) == set()
    assert d.update({"confirm"}, 0.03) == set(), "a bounce shorter than the debounce time is nothing"
    assert d.update(set(), 0.04) == set()
    assert d.update({"confirm"}, 0.10) == set()
    assert d.update({"confirm"}, 0.16) == {"confirm"}
    assert d.update({"confirm", "abort"}, 0.30) == set(), "held: not reported again"
    assert d.update({"confirm", "abort"}, 0.36) == {"abort"}
    assert d.update(set(), 0.40) == set() and d.update({"confirm"}, 0.41) == set()
    assert d.update({"confirm"}, 0.47) == {"confirm"}, "released and pressed again: a new press"


def buttons_on_board(raw: dict[str, Any]) -> None:
    lane = raw["lanes"][0]
    lane["buttons"] = {"driver": "modbus_input", "bus": "tcp-A", "device_id": 2, "confirm": 0, "abort": 1}
    lane["fill"] = {**copy.deepcopy(lane["fill"]), "auto_start": False}


def _press(station: SimStation, index: int) -> None:
    board = station.modbus("A").board
    board.inputs[index] = True
    time.sleep(0.2)
    board.inputs[index] = False


def test_confirm_starts_the_fill_and_abort_stops_it(make_station: Callable[..., SimStation]) -> None:
    station = make_station(buttons_on_board)
    cylinder = station.cylinder()
    verdict = station.scan("A", cylinder.row["qr_content"])
    station.modbus("A").model.place(cylinder.row["tare_kg"] + 0.1)
    station.wait_for(lambda: station.station.lanes["A"].state.phase == "ready", "the pre-fill check")
    assert not station.modbus("A").valve_on(), "auto_start off: nothing flows before confirm"
    _press(station, 0)
    station.wait_valve("A", True, timeout=2.0)
    _press(station, 1)
    end = station.wait("A", "fill_end")
    assert end["fill_id"] == verdict["fill_id"] and end["cause"] == Reason.OPERATOR_ABORT
    assert not station.modbus("A").valve_on()
