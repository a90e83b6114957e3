"""One contract, every code reader adapter: idle gives None, a presented code gives one Scan with
its bytes and source, garbage never raises and never passes as a clean code."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import pytest

from drivers.base import CodeReader
from drivers.camera import CameraReader
from drivers.hid_scanner import HidScanner
from drivers.rfid import UhfReader
from drivers.serial_scanner import SerialScanner
from simulators.qr_frames import HEIGHT, WIDTH, render
from simulators.serial_pty import PtyScanner, PtyUhfReader

from .conftest import first_scan
from .test_hid_scanner import Hub

READERS = ["serial_qr", "serial_rfid_ascii", "uhf", "hid", "camera"]


@dataclass
class Rig:
    reader: CodeReader
    present: Callable[[], None]  # show the reader one good code
    garbage: Callable[[], None]  # feed it noise
    expected: bytes
    source: str


@pytest.fixture(params=READERS)
def rig(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    kind = request.param
    if kind in ("serial_qr", "serial_rfid_ascii"):
        pty = PtyScanner()
        if kind == "serial_qr":
            reader = SerialScanner(pty.port, aim=("]Q",), timeout_s=0.05)
            rig = Rig(reader, lambda: pty.scan("]Q1CQ500112ABC"), lambda: pty.scan(b"\xff\x00]C0123456"), b"CQ500112ABC", "optical")
        else:  # a 125 kHz reader framing its hex UID as STX ... ETX, CR LF
            reader = SerialScanner(pty.port, terminator=b"\r\n", prefix=b"\x02", suffix=b"\x03", timeout_s=0.05, source="rfid")
            rig = Rig(reader, lambda: pty.write(b"\x020A1B2C3D4E\x03\r\n"), lambda: pty.write(b"\x02\x99\x98" * 800 + b"\r\n"), b"0A1B2C3D4E", "rfid")
        reader.open()
        yield rig
        reader.close()
        pty.close()
    elif kind == "uhf":
        sim = PtyUhfReader()
        reader = UhfReader(sim.port, timeout_s=0.05, repeat_s=5)
        epc = bytes.fromhex("E2801160600002084C5C1A23")

        def garbage() -> None:
            sim.mode = "garbage"

        reader.open()
        yield Rig(reader, lambda: setattr(sim, "tags", [epc]), garbage, epc.hex().upper().encode(), "rfid")
        reader.close()
        sim.close()
    elif kind == "hid":
        hub = Hub()
        monkeypatch.setitem(sys.modules, "evdev", hub.module())
        reader = HidScanner("Honeywell Xenon", timeout_s=0.05)
        reader.open()
        device = hub.opened[-1]
        yield Rig(reader, lambda: device.type("CQ500112ABC"), lambda: device._push(1, 183, 1), b"CQ500112ABC", "optical")
        reader.close()
    else:
        frames = tmp_path / "frames"
        frames.mkdir()
        counter = iter(range(1000))

        def show(image: np.ndarray) -> None:
            cv2.imwrite(str(frames / f"{next(counter):04d}.png"), image)

        reader = CameraReader(str(frames), fps=50, repeat_s=5)
        noise = np.random.default_rng(3).integers(0, 255, (HEIGHT, WIDTH), dtype=np.uint8)
        # The folder is read when opened: the rig writes frames, then (re)opens to see them.
        yield Rig(reader, lambda: (show(render("CQ500112ABC", "clean", 0, 1).image), reader.open()),
                  lambda: (show(noise), reader.open()), b"CQ500112ABC", "optical")
        reader.close()


def test_idle_reader_returns_nothing(rig: Rig) -> None:
    assert first_scan(rig.reader, 0.3) is None


def test_a_presented_code_is_one_scan(rig: Rig) -> None:
    rig.present()
    scan = first_scan(rig.reader)
    assert scan is not None and scan.data == rig.expected and scan.source == rig.source and scan.problem is None
    assert first_scan(rig.reader, 0.3) is None


def test_garbage_never_raises_and_never_passes_as_clean(rig: Rig) -> None:
    rig.garbage()
    scan = first_scan(rig.reader, 0.5)
    assert scan is None or scan.problem is not None
