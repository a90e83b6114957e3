"""Fakes of the two GPIO backend modules, injected at the import boundary (sys.modules): this
machine's kernel has no GPIO chip. Each keeps real pin state and a history of every write."""

from __future__ import annotations

import enum
import types
from pathlib import Path
from typing import Any


class Pins:
    def __init__(self) -> None:
        self.level: dict[int, bool] = {}
        self.mode: dict[int, str] = {}
        self.pull: dict[int, bool] = {}  # True: pulled up
        self.history: list[tuple[int, bool]] = []
        self.external: dict[int, bool] = {}  # what a button drives an input to

    def drive(self, line: int, level: bool) -> None:
        if self.mode.get(line) != "out":
            raise RuntimeError(f"line {line} is not an output")
        self.level[line] = level
        self.history.append((line, level))

    def sense(self, line: int) -> bool:
        if self.mode.get(line) != "in":
            raise RuntimeError(f"line {line} is not an input")
        return self.external.get(line, self.pull.get(line, False))


def fake_rpi_gpio(pins: Pins) -> tuple[types.ModuleType, types.ModuleType]:
    gpio = types.ModuleType("RPi.GPIO")
    gpio.BCM, gpio.OUT, gpio.IN, gpio.HIGH, gpio.LOW, gpio.PUD_UP, gpio.PUD_DOWN = 11, 0, 1, 1, 0, 22, 21  # type: ignore[attr-defined]
    gpio.mode = None  # type: ignore[attr-defined]

    def setmode(mode: int) -> None:
        gpio.mode = mode  # type: ignore[attr-defined]

    def setup(line: int, direction: int, initial: int | None = None, pull_up_down: int | None = None) -> None:
        assert gpio.mode == gpio.BCM, "setmode(BCM) first"  # type: ignore[attr-defined]
        if direction == gpio.OUT:  # type: ignore[attr-defined]
            pins.mode[line] = "out"
            pins.drive(line, bool(initial))
        else:
            pins.mode[line] = "in"
            pins.pull[line] = pull_up_down == gpio.PUD_UP  # type: ignore[attr-defined]

    def cleanup(lines: list[int]) -> None:
        for line in lines:
            pins.mode[line] = "in"

    gpio.setmode, gpio.setup, gpio.cleanup = setmode, setup, cleanup  # type: ignore[attr-defined]
    gpio.setwarnings = lambda flag: None  # type: ignore[attr-defined]
    gpio.output = lambda line, level: pins.drive(line, bool(level))  # type: ignore[attr-defined]
    gpio.input = lambda line: int(pins.sense(line))  # type: ignore[attr-defined]
    package = types.ModuleType("RPi")
    package.GPIO = gpio  # type: ignore[attr-defined]
    return package, gpio


def fake_gpiod(pins: Pins, chips: dict[str, str]) -> types.ModuleType:
    """chips: device path -> label."""
    gpiod = types.ModuleType("gpiod")
    line = types.ModuleType("gpiod.line")
    line.Direction = enum.Enum("Direction", "AS_IS INPUT OUTPUT")  # type: ignore[attr-defined]
    line.Value = enum.Enum("Value", {"INACTIVE": 0, "ACTIVE": 1})  # type: ignore[attr-defined]
    line.Bias = enum.Enum("Bias", "AS_IS PULL_UP PULL_DOWN DISABLED")  # type: ignore[attr-defined]
    gpiod.line = line  # type: ignore[attr-defined]
    claimed: set[int] = set()

    class LineSettings:
        def __init__(self, direction: Any = None, output_value: Any = None, bias: Any = None) -> None:
            self.direction, self.output_value, self.bias = direction, output_value, bias

    class Request:
        def __init__(self, config: dict[int, LineSettings]) -> None:
            self.offsets = list(config)
            for offset, settings in config.items():
                if offset in claimed:
                    raise OSError(16, "Device or resource busy")
                claimed.add(offset)
                if settings.direction is line.Direction.OUTPUT:  # type: ignore[attr-defined]
                    pins.mode[offset] = "out"
                    pins.drive(offset, settings.output_value is line.Value.ACTIVE)  # type: ignore[attr-defined]
                else:
                    pins.mode[offset] = "in"
                    pins.pull[offset] = settings.bias is line.Bias.PULL_UP  # type: ignore[attr-defined]

        def set_value(self, offset: int, value: Any) -> None:
            assert offset in self.offsets
            pins.drive(offset, value is line.Value.ACTIVE)  # type: ignore[attr-defined]

        def get_value(self, offset: int) -> Any:
            return line.Value.ACTIVE if pins.sense(offset) else line.Value.INACTIVE  # type: ignore[attr-defined]

        def release(self) -> None:
            for offset in self.offsets:
                claimed.discard(offset)

    class Chip:
        def __init__(self, path: str) -> None:
            self.path = path

        def __enter__(self) -> "Chip":
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def get_info(self) -> Any:
            return types.SimpleNamespace(label=chips[self.path])

    def request_lines(path: str, consumer: str, config: dict[int, LineSettings]) -> Request:
        assert path in chips and consumer
        return Request(config)

    gpiod.LineSettings, gpiod.Chip, gpiod.request_lines = LineSettings, Chip, request_lines  # type: ignore[attr-defined]
    gpiod.is_gpiochip_device = lambda path: path in chips  # type: ignore[attr-defined]
    return gpiod


def chip_dir(tmp_path: Path, labels: list[str]) -> tuple[Path, dict[str, str]]:
    """A stand-in /dev with one gpiochip file per label."""
    chips = {}
    for number, label in enumerate(labels):
        path = tmp_path / f"gpiochip{number}"
        path.touch()
        chips[str(path)] = label
    return tmp_path, chips
