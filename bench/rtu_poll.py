"""RS-485 poll rate: scales polled over Modbus RTU on a pty null modem paced at the bus's baud
rate, each by its own thread at the configured poll period, as lanes poll them. Prints the polls
per second each scale achieved and the median time a poll takes (waiting for the bus included), with one and with
three devices on the bus, and with three where one has died.

    .venv/bin/python bench/rtu_poll.py [--seconds 5] [--period 0.1] [--baud 9600]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.base import DeviceError  # noqa: E402
from drivers.modbus import BusDevice, ModbusBus, ModbusScale  # noqa: E402
from edge.config import load_register_map  # noqa: E402
from simulators.modbus_devices import ScaleFault, SimScale  # noqa: E402
from simulators.modbus_server import ModbusSimServer  # noqa: E402
from simulators.null_modem import NullModem  # noqa: E402
from simulators.scale_model import ScaleModel, ScaleParams  # noqa: E402

MAP = Path(__file__).resolve().parent.parent / "config" / "scales" / "flintec-ft112.yaml"


def run(devices: int, dead: int, seconds: float, period: float, baud: int, timeout: float) -> None:
    registers = load_register_map(MAP).build()
    sims = []
    for unit in range(1, devices + 1):
        model = ScaleModel(ScaleParams())
        model.place(20.0)
        sims.append(SimScale(model, registers, unit))
    for sim in sims[:dead]:
        sim.fault = ScaleFault.SILENT
    modem = NullModem(baudrate=baud).start()
    server = ModbusSimServer(sims, serial_port=modem.device.port, baudrate=baud).start()
    bus = ModbusBus.rtu("bench", modem.host.port, baud)
    scales = [ModbusScale(BusDevice(bus, sim.unit, timeout), registers) for sim in sims]
    polls = [0] * devices
    durations: list[list[float]] = [[] for _ in range(devices)]
    stop = threading.Event()

    def poller(index: int) -> None:
        next_poll = time.monotonic()
        while not stop.is_set():
            next_poll = max(next_poll + period, time.monotonic())
            started = time.perf_counter()
            try:
                scales[index].read()
                durations[index].append(time.perf_counter() - started)
            except DeviceError:
                pass
            polls[index] += 1
            stop.wait(max(0.0, next_poll - time.monotonic()))

    threads = [threading.Thread(target=poller, args=(i,), daemon=True) for i in range(devices)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    rates = [p / elapsed for p in polls]
    live = [i for i in range(devices) if i >= dead]
    answered = [d for i in live for d in durations[i]]
    label = f"{devices} device{'s' if devices > 1 else ''}" + (f", {dead} dead" if dead else "")
    print(
        f"  {label:<22} live scales: {', '.join(f'{rates[i]:.1f}' for i in live)} polls/s"
        f" (target {1 / period:.1f});  a poll takes a median {statistics.median(answered) * 1000:.1f} ms, waiting for the bus included"
    )
    bus.close()
    server.stop()
    modem.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--period", type=float, default=0.1)
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--timeout", type=float, default=0.15)
    args = parser.parse_args()
    print(f"Modbus RTU at {args.baud} baud (paced pty), FT-112 map (one 8-register read), poll period "
          f"{args.period * 1000:.0f} ms, per-device timeout {args.timeout * 1000:.0f} ms, {args.seconds:.0f} s each")
    for devices, dead in ((1, 0), (3, 0), (3, 1)):
        run(devices, dead, args.seconds, args.period, args.baud, args.timeout)


if __name__ == "__main__":
    main()
