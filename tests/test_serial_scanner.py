"""The serial scanner driver against a real pty."""

import time
from pathlib import Path

import pytest

from drivers.base import Scan
from drivers.serial_scanner import SerialScanner
from simulators.serial_pty import PtyScanner


@pytest.fixture
def pair(tmp_path: Path):  # type: ignore[no-untyped-def]
    pty = PtyScanner(tmp_path / "scanner")
    reader = SerialScanner(pty.port, terminator=b"\r", max_length=64, timeout_s=0.05)
    reader.open()
    yield pty, reader
    reader.close()
    pty.close()


def read(reader: SerialScanner, wait: float = 1.0) -> Scan | None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        scan = reader.read()
        if scan is not None:
            return scan
    return None


def test_codes_split_on_terminator(pair) -> None:  # type: ignore[no-untyped-def]
    pty, reader = pair
    pty.write(b"ONE\rTWO\r")
    assert read(reader).data == b"ONE"
    assert read(reader).data == b"TWO"


def test_partial_frames_are_joined(pair) -> None:  # type: ignore[no-untyped-def]
    pty, reader = pair
    pty.write(b"1232400")
    assert read(reader, 0.2) is None
    pty.write(b"00001\r")
    assert read(reader).data == b"123240000001"


def test_overlong_burst_is_flagged_and_its_tail_discarded(pair) -> None:  # type: ignore[no-untyped-def]
    pty, reader = pair
    pty.write(b"X" * 300 + b"\rNEXT\r")
    first = read(reader)
    assert first is not None and first.problem and "longer" in first.problem and first.data == b""
    assert read(reader).data == b"NEXT"


def test_unplug_is_survived_and_counted(tmp_path: Path) -> None:
    pty = PtyScanner(tmp_path / "s")
    reader = SerialScanner(pty.port, timeout_s=0.05, reconnect_s=0.05)
    reader.open()
    pty.close()
    assert read(reader, 0.5) is None  # no exception escapes
    assert reader.disconnects == 1
    reader.close()
