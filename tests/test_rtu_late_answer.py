"""RTU has no transaction id: an answer that arrives after its request timed out must never be
taken as the answer to the next request. Tested over a paced pty null modem at 9600 baud against
the simulator's LATE fault (an indicator that answers, but after the client gave up)."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest
import serial

from drivers.base import DeviceError
from drivers.modbus import BusDevice, ModbusBus, ModbusScale
from drivers.registers import RegisterMap, Value
from simulators.modbus_devices import ScaleFault, SimScale
from simulators.modbus_server import ModbusSimServer
from simulators.null_modem import NullModem
from simulators.scale_model import ScaleModel, ScaleParams

BAUD = 9600
TIMEOUT_S = 0.2
LATE_S = 0.3  # held past the timeout, as the slow slave was (0.24-0.30 s at 9600 baud)
MAP = RegisterMap(weight=Value(0x10, "int32"), scale=0.01)


class Rig:
    def __init__(self) -> None:
        self.model = ScaleModel(ScaleParams(settle_s=0.0, noise_kg=0.0))
        self.model.place(17.25)
        self.sim = SimScale(self.model, MAP, unit=1)
        self.sim.late_s = LATE_S
        self.modem = NullModem(baudrate=BAUD).start()
        self.server = ModbusSimServer([self.sim], serial_port=self.modem.device.port, baudrate=BAUD).start()
        self.bus = ModbusBus.rtu("rtu", self.modem.host.port, BAUD)
        self.device = BusDevice(self.bus, 1, TIMEOUT_S)
        self.scale = ModbusScale(self.device, MAP)

    def close(self) -> None:
        self.bus.close()
        self.server.stop()
        self.modem.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig()
    yield rig
    rig.close()


def test_a_late_answer_is_discarded_not_taken_as_the_next_reading(rig: Rig) -> None:
    assert rig.scale.read().gross_kg == pytest.approx(17.25)
    weights = [21.5, 33.75, 40.0, 52.25]
    for weight in weights:
        rig.sim.fault = ScaleFault.LATE
        with pytest.raises(DeviceError):
            rig.scale.read()
        # The answer on its way holds the old weight; the platform now carries another.
        rig.model.place(weight)
        rig.sim.fault = None
        started = time.monotonic()
        reading = rig.scale.read()
        assert reading.gross_kg == pytest.approx(weight), "the stale frame was used as this poll's reading"
        # The next read waited for the late answer to pass and for the line to fall silent.
        assert time.monotonic() - started < 3 * TIMEOUT_S + 0.3
    assert rig.bus.discarded_bytes >= 9 * len(weights), "each late answer reached the line and was discarded"


def _crc16(frame: bytes) -> bytes:
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def test_an_answer_of_another_function_is_rejected() -> None:
    """A slave (a raw responder, not pymodbus) answers a holding-register read with a well-formed
    input-register answer, as a stale answer to another request would look."""
    modem = NullModem(baudrate=BAUD).start()
    stop = threading.Event()

    def slave() -> None:
        with serial.Serial(modem.device.port, BAUD, timeout=0.05) as port:
            while not stop.is_set():
                request = port.read(8)
                if len(request) == 8:
                    body = bytes([request[0], 4, 4, 0, 0, 0x06, 0xBD])
                    port.write(body + _crc16(body))

    thread = threading.Thread(target=slave, daemon=True)
    thread.start()
    bus = ModbusBus.rtu("rtu", modem.host.port, BAUD)
    try:
        with pytest.raises(DeviceError, match="function 4, the request was function 3"):
            ModbusScale(BusDevice(bus, 1, TIMEOUT_S), MAP).read()
    finally:
        stop.set()
        thread.join(1)
        bus.close()
        modem.close()


def test_polls_on_a_healthy_line_lose_no_time_to_draining(rig: Rig) -> None:
    for _ in range(5):
        rig.scale.read()
    assert rig.bus.discarded_bytes == 0
