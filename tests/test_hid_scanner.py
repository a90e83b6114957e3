"""The keyboard-wedge adapter against a fake evdev module injected at the import boundary (this
machine has no /dev/input). The fake device is a real pipe, so select() and reads behave."""

from __future__ import annotations

import errno
import os
import sys
import types
from collections import deque
from typing import Any, Iterator

import pytest

from drivers.base import DeviceError
from drivers.hid_scanner import KEYMAP, HidScanner

SHIFT = 42
CODES = {chars[0]: code for code, chars in KEYMAP.items()} | {chars[1]: code for code, chars in KEYMAP.items()}


class FakeDevice:
    def __init__(self, path: str, hub: "Hub") -> None:
        self.path, self.hub, self.name = path, hub, hub.names[path]
        self.fd, self._w = os.pipe()
        self.grabbed = False
        self.events: deque[Any] = deque()
        hub.opened.append(self)

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def type(self, text: str, enter: bool = True) -> None:
        for ch in text:
            shifted = ch.isupper() or ch in '!@#$%^&*()_+{}:"~|<>?'
            if shifted:
                self._push(1, SHIFT, 1)
            self._push(1, CODES[ch], 1)
            self._push(1, CODES[ch], 0)
            if shifted:
                self._push(1, SHIFT, 0)
        if enter:
            self._push(1, 28, 1)

    def _push(self, type_: int, code: int, value: int) -> None:
        self.events.append(types.SimpleNamespace(type=type_, code=code, value=value))
        self.events.append(types.SimpleNamespace(type=0, code=0, value=0))  # SYN_REPORT
        os.write(self._w, b"x")

    def read(self) -> Iterator[Any]:
        if self.hub.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        os.read(self.fd, 4096)
        while self.events:
            yield self.events.popleft()

    def close(self) -> None:
        for fd in (self.fd, self._w):
            try:
                os.close(fd)
            except OSError:
                pass


class Hub:
    def __init__(self) -> None:
        self.names = {"/dev/input/event3": "Honeywell Xenon", "/dev/input/event4": "Some Keyboard"}
        self.opened: list[FakeDevice] = []
        self.unplugged = False

    def module(self) -> types.ModuleType:
        evdev = types.ModuleType("evdev")
        evdev.list_devices = lambda: list(self.names)  # type: ignore[attr-defined]

        def open_device(path: str) -> FakeDevice:
            if self.unplugged or path not in self.names:
                raise OSError(errno.ENODEV, "No such device")
            return FakeDevice(path, self)

        evdev.InputDevice = open_device  # type: ignore[attr-defined]
        return evdev


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Hub:
    hub = Hub()
    monkeypatch.setitem(sys.modules, "evdev", hub.module())
    return hub


def test_finds_by_name_grabs_and_decodes_shifted_text(hub: Hub) -> None:
    scanner = HidScanner("Honeywell Xenon", timeout_s=0.05)
    scanner.open()
    device = hub.opened[-1]
    assert device.path == "/dev/input/event3" and device.grabbed
    device.type("https://qp.example.cn/t?code=CQ500112ABC")
    scan = scanner.read()
    assert scan is not None and scan.data == b"https://qp.example.cn/t?code=CQ500112ABC" and scan.problem is None


def test_overlong_and_unmapped_input_is_flagged_not_passed(hub: Hub) -> None:
    scanner = HidScanner("/dev/input/event3", max_length=16, timeout_s=0.05)
    scanner.open()
    device = hub.opened[-1]
    device.type("A" * 40)
    scan = scanner.read()
    assert scan is not None and scan.data == b"" and "longer" in (scan.problem or "")
    device._push(1, 183, 1)  # KEY_F13: not on a US keyboard's map
    device.type("123")
    scan = scanner.read()
    assert scan is not None and "US layout" in (scan.problem or "") and scanner.unmapped == 1


def test_unplug_is_counted_and_the_device_is_reopened(hub: Hub) -> None:
    scanner = HidScanner("Honeywell Xenon", timeout_s=0.05, reconnect_s=0.01)
    scanner.open()
    hub.opened[-1].type("CQ1", enter=False)
    hub.unplugged = True
    assert scanner.read() is None and scanner.disconnects == 1
    assert scanner.read() is None, "still unplugged: waits and retries"
    hub.unplugged = False
    assert scanner.read() is None  # reopened on this call
    hub.opened[-1].type("CQ2")
    scan = scanner.read()
    assert scan is not None and scan.data == b"CQ2", "the half-typed code from before the unplug is gone"


def test_missing_evdev_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evdev", None)
    with pytest.raises(DeviceError, match="hid extra"):
        HidScanner("x")
