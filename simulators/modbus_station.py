"""A Modbus TCP server for one filling position: scale indicator and relay board together.

Unit 1 is the scale: holding registers 0-1 gross weight (int32, big word order, 0.01 kg),
2 status (bit 0 stable), 3 heartbeat. Unit 2 is the relay board: coils 0-15, one of which drives
the scale model's valve. A "silent" fault makes the scale stop answering like a dead RS-485
device (no response at all), while the relay board keeps answering.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import deque
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .scale_model import ScaleModel

log = logging.getLogger(__name__)

SCALE_UNIT = 1
RELAY_UNIT = 2
WEIGHT_SCALE = 0.01
COILS = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _block(registers: int) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
    return (
        [SimData(0, count=COILS // 16, datatype=DataType.BITS)],
        [SimData(0, datatype=DataType.BITS)],
        [SimData(0, count=registers, datatype=DataType.REGISTERS)],
        [SimData(0, datatype=DataType.REGISTERS)],
    )


class ModbusStationSim:
    def __init__(self, model: ScaleModel, port: int, valve_coil: int = 0, host: str = "127.0.0.1") -> None:
        self.model, self.host, self.port, self.valve_coil = model, host, port, valve_coil
        self.silent = False
        self.coils = [False] * COILS
        self.coil_writes: list[tuple[float, int, bool]] = []  # (monotonic time, coil, value)
        self.samples: deque[tuple[float, float]] = deque(maxlen=10_000)  # (monotonic time, true gross kg)
        self._loop = asyncio.new_event_loop()
        self._server: ModbusTcpServer | None = None
        self._thread = threading.Thread(target=self._run, name=f"modbus-sim-{port}", daemon=True)
        self._ready = threading.Event()
        self._lock = threading.Lock()

    # Scale: computed from the model at the moment each request arrives.
    async def _scale_action(self, fc: int, start: int, address: int, count: int, regs: list[int], values: Any) -> None:
        if self.silent:
            raise NoSuchIdException("simulated scale is silent")
        gross, stable = self.model.sample()
        self.samples.append((time.monotonic(), self.model.true_gross_kg()))
        raw = round(gross / WEIGHT_SCALE)
        regs[0:2] = ModbusTcpClient.convert_to_registers(raw, ModbusTcpClient.DATATYPE.INT32, word_order="big")
        regs[2] = 1 if stable else 0
        regs[3] = self.model.heartbeat
        return None

    async def _relay_action(self, fc: int, start: int, address: int, count: int, regs: list[int], values: Any) -> None:
        if values is not None:  # FC05 / FC15: the write is applied after this returns
            written = values if isinstance(values, list) else [values]
            with self._lock:
                for offset, value in enumerate(written):
                    self._set_coil(address + offset, bool(value))
        with self._lock:
            for index in range(COILS):
                bit = 1 << (index % 16)
                regs[index // 16] = regs[index // 16] | bit if self.coils[index] else regs[index // 16] & ~bit
        return None

    def _set_coil(self, coil: int, value: bool) -> None:
        if coil >= COILS:
            return
        self.coils[coil] = value
        self.coil_writes.append((time.monotonic(), coil, value))
        if coil == self.valve_coil:
            self.model.set_valve(value)

    def valve_on(self) -> bool:
        with self._lock:
            return self.coils[self.valve_coil]

    def last_write(self, coil: int, value: bool) -> float | None:
        with self._lock:
            times = [t for t, c, v in self.coil_writes if c == coil and v == value]
        return times[-1] if times else None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            devices = [
                SimDevice(id=SCALE_UNIT, simdata=_block(4), action=self._scale_action),
                SimDevice(id=RELAY_UNIT, simdata=_block(1), action=self._relay_action),
            ]
            self._server = ModbusTcpServer(devices, address=(self.host, self.port), ignore_missing_devices=True)
            await self._server.serve_forever(background=True)
            self._ready.set()
            while True:
                await asyncio.sleep(3600)

        try:
            self._loop.run_until_complete(serve())
        except asyncio.CancelledError:
            pass

    def start(self, timeout_s: float = 5.0) -> ModbusStationSim:
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"Modbus simulator on port {self.port} did not start")
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(5)
        for task in asyncio.all_tasks(self._loop):
            self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(5)
        self._server = None
