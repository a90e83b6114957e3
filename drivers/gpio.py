"""GPIO relays, stack lights and push-buttons on a Raspberry Pi or any Linux board.

Two backends, chosen by config and imported only then: RPi.GPIO (BCM numbering; on a Pi 5 the
rpi-lgpio package provides the same module) and gpiod (the libgpiod v2 bindings, chip found by its
label because chip numbers change between kernels). The backend module is looked up at
construction, which is also where tests inject a fake of it.

Outputs are claimed driven off. A valve relay is active-high: energised only while the pin is
driven high, so a floating or reset pin keeps the valve closed.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from .base import DeviceError

log = logging.getLogger(__name__)

CONSUMER = "station-edge"


class GpioBackend(Protocol):
    def setup_output(self, line: int, level: bool) -> None: ...

    def write(self, line: int, level: bool) -> None: ...

    def setup_input(self, line: int, pull_up: bool) -> None: ...

    def read(self, line: int) -> bool: ...

    def close(self) -> None: ...


def _import(name: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except (ImportError, RuntimeError) as exc:  # RPi.GPIO raises RuntimeError off a Pi
        raise DeviceError(f"GPIO backend {name} cannot be loaded ({exc}); install {extra}") from exc


class RpiGpioBackend:
    def __init__(self) -> None:
        self.gpio = _import("RPi.GPIO", "the rpi extra (pip install 'station-edge[rpi]'), or rpi-lgpio on a Pi 5")
        self.gpio.setwarnings(False)
        self.gpio.setmode(self.gpio.BCM)
        self._lines: set[int] = set()

    def setup_output(self, line: int, level: bool) -> None:
        self.gpio.setup(line, self.gpio.OUT, initial=self.gpio.HIGH if level else self.gpio.LOW)
        self._lines.add(line)

    def write(self, line: int, level: bool) -> None:
        self.gpio.output(line, self.gpio.HIGH if level else self.gpio.LOW)

    def setup_input(self, line: int, pull_up: bool) -> None:
        self.gpio.setup(line, self.gpio.IN, pull_up_down=self.gpio.PUD_UP if pull_up else self.gpio.PUD_DOWN)
        self._lines.add(line)

    def read(self, line: int) -> bool:
        return bool(self.gpio.input(line))

    def close(self) -> None:
        if self._lines:
            self.gpio.cleanup(sorted(self._lines))
            self._lines.clear()


class GpiodBackend:
    def __init__(self, chip_label: str, dev_dir: Path = Path("/dev")) -> None:
        self.gpiod = _import("gpiod", "gpiod>=2 (pip install gpiod), the libgpiod v2 bindings")
        self.path = self._find_chip(chip_label, dev_dir)
        self._requests: dict[int, Any] = {}

    def _find_chip(self, label: str, dev_dir: Path) -> str:
        seen = []
        for path in sorted(dev_dir.glob("gpiochip*")):
            if not self.gpiod.is_gpiochip_device(str(path)):
                continue
            with self.gpiod.Chip(str(path)) as chip:
                found = chip.get_info().label
            seen.append(f"{path.name}={found}")
            if found == label:
                return str(path)
        raise DeviceError(f"no GPIO chip labelled {label!r} (found: {', '.join(seen) or 'none'})")

    def _value(self, level: bool) -> Any:
        return self.gpiod.line.Value.ACTIVE if level else self.gpiod.line.Value.INACTIVE

    def setup_output(self, line: int, level: bool) -> None:
        settings = self.gpiod.LineSettings(direction=self.gpiod.line.Direction.OUTPUT, output_value=self._value(level))
        self._requests[line] = self.gpiod.request_lines(self.path, consumer=CONSUMER, config={line: settings})

    def write(self, line: int, level: bool) -> None:
        self._requests[line].set_value(line, self._value(level))

    def setup_input(self, line: int, pull_up: bool) -> None:
        bias = self.gpiod.line.Bias.PULL_UP if pull_up else self.gpiod.line.Bias.PULL_DOWN
        settings = self.gpiod.LineSettings(direction=self.gpiod.line.Direction.INPUT, bias=bias)
        self._requests[line] = self.gpiod.request_lines(self.path, consumer=CONSUMER, config={line: settings})

    def read(self, line: int) -> bool:
        return bool(self._requests[line].get_value(line) == self.gpiod.line.Value.ACTIVE)

    def close(self) -> None:
        for request in self._requests.values():
            request.release()
        self._requests.clear()


def open_backend(kind: str, chip_label: str) -> GpioBackend:
    if kind == "rpi_gpio":
        return RpiGpioBackend()
    if kind == "gpiod":
        return GpiodBackend(chip_label)
    raise DeviceError(f"unknown GPIO backend {kind!r}")


def _guarded(action: str, line: int, call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except DeviceError:
        raise
    except Exception as exc:  # backends raise OSError, RuntimeError or their own types
        raise DeviceError(f"GPIO line {line}: {action} failed: {exc}") from exc


class GpioRelay:
    def __init__(self, backend: GpioBackend, line: int, active_high: bool = True) -> None:
        self.backend, self.line, self.active_high = backend, line, active_high
        _guarded("claim", line, backend.setup_output, line, not active_high)

    def __repr__(self) -> str:
        return f"GpioRelay(line {self.line}{'' if self.active_high else ', active-low'})"

    def on(self) -> None:
        _guarded("on", self.line, self.backend.write, self.line, self.active_high)

    def keepalive(self) -> None:
        """A GPIO line has no lease: the hardware watchdog and a normally-closed valve cover a dead daemon."""

    def off(self) -> None:
        _guarded("off", self.line, self.backend.write, self.line, not self.active_high)


class GpioSignals:
    def __init__(self, backend: GpioBackend, lines: dict[str, int]) -> None:
        self.backend, self.lines = backend, lines
        for line in lines.values():
            _guarded("claim", line, backend.setup_output, line, False)

    def show(self, light: str, buzzer: bool) -> None:
        for name, line in self.lines.items():
            wanted = buzzer if name == "buzzer" else name == light
            _guarded("write", line, self.backend.write, line, wanted)


class GpioButtons:
    def __init__(self, backend: GpioBackend, lines: dict[str, int], pressed_low: bool = True) -> None:
        self.backend, self.lines, self.pressed_low = backend, lines, pressed_low
        for line in lines.values():
            _guarded("claim", line, backend.setup_input, line, pressed_low)

    def pressed(self) -> set[str]:
        return {
            name for name, line in self.lines.items()
            if _guarded("read", line, self.backend.read, line) != self.pressed_low
        }
