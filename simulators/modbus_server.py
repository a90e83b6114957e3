"""A pymodbus server for simulated devices, over TCP or RTU (on a serial port such as one end of
a NullModem), run on its own event loop thread. Answers for a device whose fault is GARBAGE
leave with a broken checksum, as from a noisy RS-485 line."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Protocol

from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import SimDevice

log = logging.getLogger(__name__)

LEASE_TICK_S = 0.01


class SimulatedDevice(Protocol):
    unit: int

    @property
    def garbage(self) -> bool: ...

    def sim_device(self) -> SimDevice: ...


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ModbusSimServer:
    def __init__(
        self, devices: list[SimulatedDevice], *, host: str = "127.0.0.1", port: int | None = None,
        serial_port: str | None = None, baudrate: int = 9600,
    ) -> None:
        if (port is None) == (serial_port is None):
            raise ValueError("a TCP port or a serial port, not both")
        self.devices = {device.unit: device for device in devices}
        self.host, self.port, self.serial_port, self.baudrate = host, port, serial_port, baudrate
        self._loop = asyncio.new_event_loop()
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._thread = threading.Thread(target=self._run, name=f"modbus-sim-{port or serial_port}", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending or len(data) < 3:
            return data
        unit = data[6] if self.serial_port is None and len(data) > 6 else data[0]
        device = self.devices.get(unit)
        if device is not None and device.garbage:
            if self.serial_port is None:  # TCP has no checksum: break the MBAP protocol id instead
                return data[:2] + b"\xde\xad" + data[4:]
            return data[:-2] + bytes(b ^ 0x5A for b in data[-2:])
        return data

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            devices = [device.sim_device() for device in self.devices.values()]
            if self.serial_port is None:
                self._server = ModbusTcpServer(
                    devices, address=(self.host, self.port), ignore_missing_devices=True, trace_packet=self._trace
                )
            else:
                self._server = ModbusSerialServer(
                    devices, framer=FramerType.RTU, port=self.serial_port, baudrate=self.baudrate,
                    ignore_missing_devices=True, trace_packet=self._trace,
                )
            await self._server.serve_forever(background=True)
            self._ready.set()
            while True:
                # Leased relay outputs run out on the board's own clock, polled or not.
                for device in self.devices.values():
                    expire = getattr(device, "expire", None)
                    if expire is not None:
                        expire()
                await asyncio.sleep(LEASE_TICK_S)

        try:
            self._loop.run_until_complete(serve())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    def start(self, timeout_s: float = 5.0) -> ModbusSimServer:
        logging.getLogger("pymodbus").setLevel(logging.ERROR if __import__("os").environ.get("SIMDEBUG") else logging.CRITICAL)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"Modbus simulator on {self.port or self.serial_port} did not start: {self._error}")
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(5)
        except Exception:
            log.debug("simulator shutdown", exc_info=True)
        for task in asyncio.all_tasks(self._loop):
            self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(5)
        self._server = None
