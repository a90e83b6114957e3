"""USB keyboard-wedge scanners read through evdev (python-evdev, the `hid` extra).

The device is grabbed, so the scanner's keystrokes never reach a console or a login prompt.
Keycodes are positional: set the scanner to a US keyboard layout. Shift is tracked here, Enter
ends a code. An unplugged scanner raises ENODEV (errno 19); the device is then reopened by its
path or name once it is back.
"""

from __future__ import annotations

import errno
import importlib
import logging
import select
import time
from types import ModuleType
from typing import Any

from .base import DeviceError, Scan

log = logging.getLogger(__name__)

EV_KEY, KEY_DOWN = 1, 1
KEY_ENTER, KEY_KPENTER = 28, 96
SHIFTS = {42, 54}
# US layout: keycode -> (plain, shifted)
_ROWS = {
    2: "1!", 3: "2@", 4: "3#", 5: "4$", 6: "5%", 7: "6^", 8: "7&", 9: "8*", 10: "9(", 11: "0)", 12: "-_", 13: "=+",
    16: "qQ", 17: "wW", 18: "eE", 19: "rR", 20: "tT", 21: "yY", 22: "uU", 23: "iI", 24: "oO", 25: "pP", 26: "[{", 27: "]}",
    30: "aA", 31: "sS", 32: "dD", 33: "fF", 34: "gG", 35: "hH", 36: "jJ", 37: "kK", 38: "lL", 39: ";:", 40: "'\"", 41: "`~",
    43: "\\|", 44: "zZ", 45: "xX", 46: "cC", 47: "vV", 48: "bB", 49: "nN", 50: "mM", 51: ",<", 52: ".>", 53: "/?", 57: "  ",
}
KEYMAP: dict[int, tuple[str, str]] = {code: (chars[0], chars[1]) for code, chars in _ROWS.items()}


def _evdev() -> ModuleType:
    try:
        return importlib.import_module("evdev")
    except ImportError as exc:
        raise DeviceError(f"evdev cannot be loaded ({exc}); install the hid extra (pip install 'station-edge[hid]')") from exc


class HidScanner:
    def __init__(self, device: str, grab: bool = True, max_length: int = 1000, timeout_s: float = 0.2,
                 reconnect_s: float = 1.0) -> None:
        self.evdev = _evdev()
        self.device_spec, self.grab, self.max_length = device, grab, max_length
        self.timeout_s, self.reconnect_s = timeout_s, reconnect_s
        self.disconnects = 0
        self.unmapped = 0  # keys outside the map: counted, and the code they were in is refused
        self._device: Any = None
        self._chars: list[str] = []
        self._shift = False
        self._bad = False

    def _find(self) -> str:
        if self.device_spec.startswith("/"):
            return self.device_spec
        for path in self.evdev.list_devices():
            candidate = self.evdev.InputDevice(path)
            if candidate.name == self.device_spec:
                candidate.close()
                return str(path)
            candidate.close()
        raise OSError(errno.ENODEV, f"no input device named {self.device_spec!r}")

    def open(self) -> None:
        device = self.evdev.InputDevice(self._find())
        if self.grab:
            device.grab()
        self._device = device
        self._chars.clear()
        self._shift = self._bad = False

    def read(self) -> Scan | None:
        if self._device is None:
            try:
                self.open()
            except OSError as exc:
                log.warning("HID scanner %s unavailable: %s", self.device_spec, exc)
                time.sleep(self.reconnect_s)
                return None
        try:
            ready, _, _ = select.select([self._device.fd], [], [], self.timeout_s)
            if not ready:
                return None
            for event in self._device.read():
                scan = self._key(event)
                if scan is not None:
                    return scan
        except OSError as exc:
            if exc.errno != errno.ENODEV:
                log.warning("HID scanner %s: %s", self.device_spec, exc)
            else:
                log.warning("HID scanner %s unplugged", self.device_spec)
            self.disconnects += 1
            self.close()
        return None

    def _key(self, event: Any) -> Scan | None:
        if event.type != EV_KEY:
            return None
        if event.code in SHIFTS:
            self._shift = event.value != 0  # down or repeat: held
            return None
        if event.value != KEY_DOWN:
            return None
        if event.code in (KEY_ENTER, KEY_KPENTER):
            return self._finish()
        chars = KEYMAP.get(event.code)
        if chars is None:
            self.unmapped += 1
            self._bad = True
        elif len(self._chars) <= self.max_length:
            self._chars.append(chars[1] if self._shift else chars[0])
        return None

    def _finish(self) -> Scan | None:
        data, bad = "".join(self._chars).encode("ascii"), self._bad
        self._chars.clear()
        self._bad = False
        now = time.monotonic()
        if len(data) > self.max_length:
            return Scan(b"", now, problem=f"longer than the reader's maximum of {self.max_length} characters")
        if bad:
            return Scan(data, now, problem="keys outside the US layout (is the scanner set to a US keyboard?)")
        return Scan(data, now) if data else None

    def close(self) -> None:
        if self._device is not None:
            try:
                if self.grab:
                    self._device.ungrab()
                self._device.close()
            except OSError:
                pass
            self._device = None
