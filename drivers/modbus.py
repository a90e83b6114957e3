"""Modbus adapters on pymodbus, RTU and TCP: the bus and its owner, scale, coil relay (with an
optional self-expiring lease), stack light and push-buttons on discrete inputs."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from .base import DeviceError, Fault, Reading
from .registers import BIT_KINDS, RegisterMap

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# The function code each client method puts on the wire: an answer must carry the same one.
FUNCTION_CODES = {
    "read_coils": 1, "read_discrete_inputs": 2, "read_holding_registers": 3, "read_input_registers": 4,
    "write_coil": 5, "write_register": 6, "write_coils": 15, "write_registers": 16,
}
# Above 19200 baud the Modbus-over-serial spec fixes the inter-frame gap at 1.75 ms.
MIN_FRAME_GAP_S = 0.00175
# A line that keeps chattering this long after a failure is not waited for any longer.
MAX_SETTLE_S = 2.0
# After a request to a unit failed on RTU, the next read from that unit waits for this many of its
# timeouts of silence: an answer up to three timeouts after its request is drained, not misread.
LATE_ANSWER_TIMEOUTS = 2.0


class ModbusBus:
    """The one owner of one bus (an RS-485 port, or a TCP endpoint such as a gateway).

    pymodbus clients are not thread-safe and RS-485 is half duplex, so every request from every
    device on the bus goes through one lock, one at a time. Each request runs with its own
    device's timeout, so a slow device does not lend its timeout to a fast one.
    """

    def __init__(self, name: str, client: ModbusTcpClient | ModbusSerialClient, frame_gap_s: float | None = None) -> None:
        self.name = name
        self._client = client
        # RTU only (None on TCP): 3.5 character times of silence end a frame.
        self.frame_gap_s = frame_gap_s
        # After a failed request on RTU: the unit it went to, and until when (monotonic) a late
        # answer from it may still arrive.
        self._late_unit: int | None = None
        self._late_until = 0.0
        self.discarded_bytes = 0  # bytes drained from the line after failures, for metrics
        self._line_used_at = 0.0  # when the last request ended: the inter-frame gap counts from it
        self._lock = threading.Lock()
        self.units: set[int] = set()  # the devices that share this bus
        self.requests = 0
        self.failures = 0
        # Failed requests per unit id (timeouts, CRC errors, exception responses), for metrics.
        self.unit_errors: dict[int, int] = {}

    @classmethod
    def tcp(cls, name: str, host: str, port: int) -> ModbusBus:
        return cls(name, ModbusTcpClient(host, port=port, timeout=1.0, retries=0, reconnect_delay=0.05))

    @classmethod
    def rtu(cls, name: str, port: str, baudrate: int, parity: str = "N", stopbits: int = 1, bytesize: int = 8) -> ModbusBus:
        client = ModbusSerialClient(
            port, framer=FramerType.RTU, baudrate=baudrate, parity=parity, stopbits=stopbits, bytesize=bytesize,
            timeout=1.0, retries=0,
        )
        bits = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
        return cls(name, client, frame_gap_s=max(3.5 * bits / baudrate, MIN_FRAME_GAP_S))

    def __repr__(self) -> str:
        return f"ModbusBus({self.name})"

    def execute(self, method: str, timeout_s: float, *args: Any, **kwargs: Any) -> Any:
        unit = kwargs.get("device_id", 1)
        reading = method.startswith("read_")
        with self._lock:
            self.requests += 1
            try:
                # pymodbus reads the timeout from its comm params on every request (TCP and serial).
                self._client.comm_params.timeout_connect = timeout_s
                if not self._client.connected and not self._client.connect():
                    raise DeviceError("cannot connect")
                if self.frame_gap_s is not None:
                    self._settle_line(self._late_until if reading and unit == self._late_unit else 0.0)
                response = getattr(self._client, method)(*args, **kwargs)
                self._check_function(method, response)
                if reading and unit == self._late_unit:
                    self._late_unit = None
            except ModbusException as exc:
                self._failed(unit, timeout_s)
                raise DeviceError(str(exc)) from exc
            except OSError as exc:
                self._failed(unit, timeout_s)
                self._client.close()
                raise DeviceError(str(exc)) from exc
            except DeviceError:
                self._failed(unit, timeout_s)
                raise
            finally:
                self._line_used_at = time.monotonic()
        if response.isError():
            raise DeviceError(f"exception response {response}", Fault.EXCEPTION)
        return response

    def _failed(self, unit: int, timeout_s: float) -> None:
        self.failures += 1
        # RTU has no transaction id: an answer that comes after its request timed out would be
        # taken as the answer to the next request to the same unit (another unit's answer carries
        # the wrong unit id, which pymodbus skips). So that unit's next read waits it out.
        self._late_unit, self._late_until = unit, time.monotonic() + LATE_ANSWER_TIMEOUTS * timeout_s

    @staticmethod
    def _check_function(method: str, response: Any) -> None:
        # pymodbus checks the unit id but decodes an answer of any function: a stale answer to a
        # coil write must not pass as a register read, nor the other way round.
        expected = FUNCTION_CODES[method]
        got = response.function_code & 0x7F
        if got != expected:
            raise DeviceError(f"answer carries function {got}, the request was function {expected}")

    def _settle_line(self, not_before: float) -> None:
        """Before an RTU request: discard whatever is on the line and wait until it has been
        silent for one inter-frame gap (3.5 characters), and until not_before.

        After a failed request its unit's next read waits until two more timeouts have passed,
        so a late answer arrives, and is discarded, here rather than in place of the next answer
        (a unit in back-off is asked again later than that anyway, and pays nothing). A write
        waits only for the frame gap: a valve OFF must not queue behind a slow device, and its
        answer is still checked for unit and function, so a stale read answer cannot pass as its
        acknowledgement. Other units are not held up: a late answer from a unit in back-off
        carries its own unit id.
        """
        assert self.frame_gap_s is not None
        port = self._client.socket
        if port is None:
            return
        started = time.monotonic()
        last_byte = self._line_used_at
        while True:
            waiting = port.in_waiting
            now = time.monotonic()
            if waiting:
                stale = port.read(waiting)
                self.discarded_bytes += len(stale)
                last_byte = now
                log.warning("%s: discarded %d stale bytes from the line: %s", self.name, len(stale), stale.hex(" "))
            elif now - last_byte >= self.frame_gap_s and now >= not_before:
                break
            if now - started > MAX_SETTLE_S:
                raise DeviceError(f"line still busy after {MAX_SETTLE_S:.0f} s")
            time.sleep(self.frame_gap_s)

    def close(self) -> None:
        with self._lock:
            self._client.close()


class BusDevice:
    """One device on a bus: its unit id, timeout and back-off.

    After a failed read a device that shares its bus is left alone, 0.5 s doubling to 2 s by
    default: its lane already knows it is lost, and its neighbours should not pay its timeout on
    every poll. A device alone on its bus is retried every poll, so it is back the moment it answers.
    Writes are never skipped: driving a valve OFF must always reach the wire.
    """

    def __init__(
        self, bus: ModbusBus, device_id: int, timeout_s: float, backoff_s: float = 0.5, backoff_max_s: float = 2.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.bus, self.device_id, self.timeout_s = bus, device_id, timeout_s
        bus.units.add(device_id)
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self._clock = clock
        self._failures = 0
        self._quiet_until = 0.0

    def __repr__(self) -> str:
        # Errors from the bus name neither bus nor device: the device adds both.
        return f"{self.bus.name} unit {self.device_id}"

    def read_registers(self, function: str, address: int, count: int) -> list[int]:
        method = "read_input_registers" if function == "input" else "read_holding_registers"
        return list(self._read(method, address, count=count).registers)

    def read_discrete_inputs(self, address: int, count: int) -> list[bool]:
        return list(self._read("read_discrete_inputs", address, count=count).bits[:count])

    def read_bits(self, kind: str, address: int, count: int) -> list[bool]:
        method = "read_coils" if kind == "coil" else "read_discrete_inputs"
        return list(self._read(method, address, count=count).bits[:count])

    def write_coil(self, address: int, value: bool) -> None:
        self._call("write_coil", address, value)

    def write_register(self, address: int, value: int) -> None:
        self._call("write_register", address, value)

    def _read(self, method: str, address: int, count: int) -> Any:
        now = self._clock()
        if now < self._quiet_until and len(self.bus.units) > 1:
            raise DeviceError(f"{self}: not answering ({self._failures} failures), next try in {self._quiet_until - now:.1f} s")
        return self._call(method, address, count=count)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            response = self.bus.execute(method, self.timeout_s, *args, device_id=self.device_id, **kwargs)
        except DeviceError as exc:
            self._failures += 1
            self.bus.unit_errors[self.device_id] = self.bus.unit_errors.get(self.device_id, 0) + 1
            delay = min(self.backoff_s * 2 ** (self._failures - 1), self.backoff_max_s)
            self._quiet_until = self._clock() + delay
            raise DeviceError(f"{self}: {exc}", exc.fault) from exc
        self._failures = 0
        return response


class MotionDetector:
    """Stability for indicators that do not report it: stable once every reading in the last
    window_s lies within band_kg of each other."""

    def __init__(self, band_kg: float, window_s: float) -> None:
        self.band_kg, self.window_s = band_kg, window_s
        self._history: deque[tuple[float, float]] = deque()

    def update(self, gross_kg: float, now: float) -> bool:
        self._history.append((now, gross_kg))
        while self._history and self._history[0][0] < now - self.window_s:
            self._history.popleft()
        weights = [w for _, w in self._history]
        covered = now - self._history[0][0] >= self.window_s * 0.8
        return covered and max(weights) - min(weights) <= self.band_kg


class ModbusScale:
    """A weighing indicator read through its register map. Raises DeviceError with the fault
    when the scale does not answer, reports overload or an error, or its heartbeat stops."""

    def __init__(
        self, device: BusDevice, registers: RegisterMap, motion: MotionDetector | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.device, self.registers, self.clock = device, registers, clock
        self.motion = motion or MotionDetector(0.02, 0.5)
        self._spans = [(kind, address, count) for kind in registers.kinds() for address, count in registers.spans(kind)]
        self._heartbeat: tuple[int | float, float] | None = None  # (value, when it last changed)

    def __repr__(self) -> str:
        return f"ModbusScale({self.device}, {self.registers.name or 'inline map'})"

    def read(self) -> Reading:
        values: dict[int | tuple[str, int], int] = {}
        for kind, address, count in self._spans:
            if kind in BIT_KINDS:
                words: list[int] = [int(bit) for bit in self.device.read_bits(kind, address, count)]
            else:
                words = self.device.read_registers(kind, address, count)
            if len(words) < count:
                raise DeviceError(f"{self.device}: short answer ({len(words)} of {count} {kind} values)")
            values.update(((kind, a), w) for a, w in zip(range(address, address + count), words))
        now = self.clock()
        try:
            decoded = self.registers.decode(values)
        except ValueError as exc:
            raise DeviceError(f"{self.device}: {exc}", Fault.ERROR) from exc
        self._check_heartbeat(decoded.heartbeat, now)
        if decoded.overload:
            raise DeviceError(f"{self.device}: indicator reports overload", Fault.OVERLOAD)
        if decoded.error:
            raise DeviceError(f"{self.device}: indicator reports an error", Fault.ERROR)
        stable = decoded.stable
        if stable is None:
            stable = self.motion.update(decoded.gross_kg, now)
        return Reading(gross_kg=decoded.gross_kg, stable=stable)

    def _check_heartbeat(self, value: int | float | None, now: float) -> None:
        if value is None or self.registers.heartbeat is None:
            return
        if self._heartbeat is None or self._heartbeat[0] != value:
            self._heartbeat = (value, now)
            return
        age = now - self._heartbeat[1]
        if age > self.registers.heartbeat.max_age_s:
            raise DeviceError(f"{self.device}: heartbeat stuck at {value} for {age:.2f} s", Fault.FROZEN)


@dataclass(frozen=True)
class Lease:
    register: int
    unit_s: float
    duration_s: float
    refresh_s: float

    @property
    def ticks(self) -> int:
        return round(self.duration_s / self.unit_s)


class ModbusCoilRelay:
    """A relay-board output. With a lease the output is switched on through the board's timer
    register, and keepalive() re-arms it while the valve should stay open: if the daemon dies
    the board opens the relay by itself when the lease runs out."""

    def __init__(self, device: BusDevice, coil: int, lease: Lease | None = None, clock: Clock = time.monotonic) -> None:
        self.device, self.coil, self.lease, self.clock = device, coil, lease, clock
        self._armed_at: float | None = None

    def __repr__(self) -> str:
        return f"ModbusCoilRelay({self.device} coil {self.coil}{' leased' if self.lease else ''})"

    def on(self) -> None:
        if self.lease is None:
            self.device.write_coil(self.coil, True)
            return
        self.device.write_register(self.lease.register, self.lease.ticks)
        self._armed_at = self.clock()

    def keepalive(self) -> None:
        if self.lease is None or self._armed_at is None:
            return
        if self.clock() - self._armed_at >= self.lease.refresh_s:
            self.on()

    def off(self) -> None:
        self._armed_at = None
        self.device.write_coil(self.coil, False)


class ModbusSignals:
    """A stack light and buzzer on relay-board coils; a light not configured is skipped."""

    def __init__(self, device: BusDevice, coils: dict[str, int]) -> None:
        self.device, self.coils = device, coils

    def show(self, light: str, buzzer: bool) -> None:
        for name, coil in self.coils.items():
            wanted = buzzer if name == "buzzer" else name == light
            self.device.write_coil(coil, wanted)


class ModbusButtons:
    """Confirm/abort push-buttons on discrete inputs, read in one request."""

    def __init__(self, device: BusDevice, inputs: dict[str, int]) -> None:
        self.device, self.inputs = device, inputs
        self._first = min(inputs.values())
        self._count = max(inputs.values()) - self._first + 1

    def pressed(self) -> set[str]:
        bits = self.device.read_discrete_inputs(self._first, self._count)
        return {name for name, address in self.inputs.items() if bits[address - self._first]}
