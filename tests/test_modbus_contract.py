"""Contract tests for the Modbus scale and relay adapters, over TCP and over RTU on a pty null
modem, against the simulator serving each shipped register map."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from drivers.base import DeviceError, Fault
from drivers.modbus import BusDevice, Lease, ModbusBus, ModbusButtons, ModbusCoilRelay, ModbusScale, ModbusSignals
from drivers.registers import RegisterMap
from edge.config import load_register_map
from simulators.modbus_devices import ScaleFault, SimRelayBoard, SimScale
from simulators.modbus_server import ModbusSimServer, free_port
from simulators.null_modem import NullModem
from simulators.scale_model import ScaleModel, ScaleParams

MAPS_DIR = Path(__file__).resolve().parent.parent / "config" / "scales"
MAPS = sorted(p.stem for p in MAPS_DIR.glob("*.yaml"))
BOARD = 9
TIMEOUT_S = 0.3


@dataclass
class Bus:
    bus: ModbusBus
    scales: dict[str, SimScale]
    maps: dict[str, RegisterMap]
    board: SimRelayBoard

    def scale(self, name: str) -> ModbusScale:
        unit = self.scales[name].unit
        return ModbusScale(BusDevice(self.bus, unit, TIMEOUT_S), self.maps[name])


@pytest.fixture(params=["tcp", "rtu"])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    maps = {name: load_register_map(MAPS_DIR / f"{name}.yaml").build() for name in MAPS}
    scales = {}
    for unit, (name, registers) in enumerate(maps.items(), start=1):
        model = ScaleModel(ScaleParams(settle_s=0.05), seed=unit)
        model.place(17.25)
        scales[name] = SimScale(model, registers, unit)
    board = SimRelayBoard(BOARD, lease_base=0x100)
    devices = [*scales.values(), board]
    modem = None
    if request.param == "tcp":
        port = free_port()
        server = ModbusSimServer(devices, port=port).start()
        client = ModbusBus.tcp("tcp", "127.0.0.1", port)
    else:
        modem = NullModem(baudrate=38400).start()
        server = ModbusSimServer(devices, serial_port=modem.device.port, baudrate=38400).start()
        client = ModbusBus.rtu("rtu", modem.host.port, 38400)
    yield Bus(client, scales, maps, board)
    client.close()
    server.stop()
    if modem:
        modem.close()


def _settled(scale: ModbusScale, deadline_s: float = 3.0):  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline_s
    while True:
        reading = scale.read()
        if reading.stable or time.monotonic() > end:
            return reading
        time.sleep(0.05)


@pytest.mark.parametrize("name", MAPS)
def test_scale_reads_the_weight_on_the_platform(bus: Bus, name: str) -> None:
    reading = _settled(bus.scale(name))
    assert reading.stable, "a resting load reads stable (from the status bit, or from the readings)"
    assert reading.gross_kg == pytest.approx(17.25, abs=0.011)


@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("fault", [ScaleFault.SILENT, ScaleFault.GARBAGE])
def test_a_scale_that_does_not_answer_is_lost_within_its_timeout(bus: Bus, name: str, fault: ScaleFault) -> None:
    scale = bus.scale(name)
    scale.read()
    bus.scales[name].fault = fault
    started = time.monotonic()
    with pytest.raises(DeviceError) as info:
        scale.read()
    assert info.value.fault is Fault.NO_ANSWER
    assert time.monotonic() - started < TIMEOUT_S * len(bus.maps[name].spans()) + 0.3


@pytest.mark.parametrize("name", MAPS)
def test_exception_responses_are_a_fault(bus: Bus, name: str) -> None:
    bus.scales[name].fault = ScaleFault.EXCEPTION
    with pytest.raises(DeviceError) as info:
        bus.scale(name).read()
    assert info.value.fault is Fault.EXCEPTION


@pytest.mark.parametrize("name", [n for n in MAPS if load_register_map(MAPS_DIR / f"{n}.yaml").heartbeat])
def test_a_frozen_heartbeat_is_caught_while_the_scale_still_answers(bus: Bus, name: str) -> None:
    scale = bus.scale(name)
    scale.read()
    bus.scales[name].fault = ScaleFault.FROZEN
    limit = bus.maps[name].heartbeat.max_age_s  # type: ignore[union-attr]
    started = time.monotonic()
    with pytest.raises(DeviceError) as info:
        while time.monotonic() - started < limit + 1.0:
            scale.read()
            time.sleep(0.02)
    assert info.value.fault is Fault.FROZEN
    assert time.monotonic() - started < limit + 0.3


@pytest.mark.parametrize("name", [n for n in MAPS if any(s.overload_bits for s in load_register_map(MAPS_DIR / f"{n}.yaml").build().status)])
def test_overload_bit_is_a_fault(bus: Bus, name: str) -> None:
    bus.scales[name].fault = ScaleFault.OVERLOAD
    with pytest.raises(DeviceError) as info:
        bus.scale(name).read()
    assert info.value.fault is Fault.OVERLOAD


@pytest.mark.parametrize("name", [n for n in MAPS if any(s.ok_bits for s in load_register_map(MAPS_DIR / f"{n}.yaml").build().status)])
def test_a_weight_data_ok_bit_that_drops_is_a_fault(bus: Bus, name: str) -> None:
    scale = bus.scale(name)
    scale.read()
    bus.scales[name].fault = ScaleFault.NOT_OK
    with pytest.raises(DeviceError) as info:
        scale.read()
    assert info.value.fault is Fault.ERROR


def test_a_dead_neighbour_is_left_alone_after_it_fails(bus: Bus) -> None:
    names = list(bus.maps)
    dead, alive = bus.scale(names[0]), bus.scale(names[1])
    started = time.monotonic()
    for _ in range(10):
        alive.read()
    baseline = time.monotonic() - started
    bus.scales[names[0]].fault = ScaleFault.SILENT
    with pytest.raises(DeviceError):
        dead.read()
    served = bus.scales[names[0]].requests
    started = time.monotonic()
    for _ in range(10):
        with pytest.raises(DeviceError, match="next try in"):
            dead.read()
        alive.read()
    assert bus.scales[names[0]].requests == served, "backing off: no request reached the dead device"
    assert time.monotonic() - started < baseline + TIMEOUT_S / 2, "ten polls of the live neighbour paid no timeout"


def test_leased_relay_stays_on_while_renewed_and_opens_by_itself_when_not(bus: Bus) -> None:
    relay = ModbusCoilRelay(BusDevice(bus.bus, BOARD, TIMEOUT_S), 2, Lease(0x102, 0.1, 0.4, 0.1))
    relay.on()
    for _ in range(12):  # 0.6 s, longer than the lease
        time.sleep(0.05)
        relay.keepalive()
        assert bus.board.coil(2), "renewed in time, the lease holds"
    off_at = time.monotonic() + 0.4
    while bus.board.coil(2):  # the daemon stops renewing: the board opens the relay itself
        assert time.monotonic() < off_at + 0.2
        time.sleep(0.01)
    relay.on()
    relay.off()
    assert not bus.board.coil(2) and not bus.board.expires


def test_relay_off_is_never_skipped_by_back_off(bus: Bus) -> None:
    device = BusDevice(bus.bus, BOARD, TIMEOUT_S)
    relay = ModbusCoilRelay(device, 4)
    relay.on()
    bus.board.fault = ScaleFault.SILENT
    with pytest.raises(DeviceError):
        relay.off()
    bus.board.fault = None
    relay.off()  # straight after a failure, inside what would be a back-off period
    assert not bus.board.coil(4)


def test_stack_light_and_buttons_on_the_board(bus: Bus) -> None:
    device = BusDevice(bus.bus, BOARD, TIMEOUT_S)
    ModbusSignals(device, {"green": 10, "red": 11, "buzzer": 12}).show("red", True)
    assert bus.board.coils[10:13] == [False, True, True]
    buttons = ModbusButtons(device, {"confirm": 0, "abort": 3})
    assert buttons.pressed() == set()
    bus.board.inputs[3] = True
    assert buttons.pressed() == {"abort"}
