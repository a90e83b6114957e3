"""The camera reader over an image folder and a video file of simulated frames, and the cascade."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.base import DeviceError
from drivers.camera import CameraReader
from drivers.qr_decode import Cascade
from simulators.qr_frames import HEIGHT, WIDTH, render

FIRST = "https://qp.cqsjj.example.cn/trace?code=CQ500112000001"
SECOND = "https://qp.cqsjj.example.cn/trace?code=CQ500112000002"


def _sequence() -> list[np.ndarray]:
    blank = np.full((HEIGHT, WIDTH), 200, np.uint8)
    first = [render(FIRST, "clean", 0, seed).image for seed in range(3)]  # the cylinder stays in view
    return [blank, *first, blank, render(SECOND, "inverted", 0, 9).image]


def _scans(reader: CameraReader, frames: int) -> list[bytes]:
    found = []
    for _ in range(frames + 2):
        scan = reader.read()
        if scan is not None:
            found.append(scan.data)
    return found


def test_image_folder_gives_each_code_once(tmp_path: Path) -> None:
    for index, image in enumerate(_sequence()):
        cv2.imwrite(str(tmp_path / f"{index:03d}.png"), image)
    (tmp_path / "notes.txt").write_text("not an image")
    reader = CameraReader(str(tmp_path), repeat_s=10, fps=60)
    reader.open()
    assert _scans(reader, 6) == [FIRST.encode(), SECOND.encode()]
    assert reader.frames == 6 and reader.decoded == 4


def test_video_file_and_a_missing_source(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (WIDTH, HEIGHT), isColor=False)
    for image in _sequence():
        writer.write(image)
    writer.release()
    reader = CameraReader(str(path), repeat_s=10, fps=60)
    reader.open()
    assert _scans(reader, 6) == [FIRST.encode(), SECOND.encode()]
    missing = CameraReader(str(tmp_path / "nope.avi"), fps=60, reconnect_s=0.01)
    with pytest.raises(OSError):
        missing.open()
    assert missing.read() is None, "an absent camera is retried, not a crash"


def test_cascade_stops_at_the_first_decoder_that_reads_the_code() -> None:
    cascade = Cascade(("pyzbar", "zxing"))
    assert cascade.decode(render(FIRST, "clean", 0, 1).image).decoder == "pyzbar"  # type: ignore[union-attr]
    inverted = cascade.decode(render(FIRST, "inverted", 0, 1).image)  # pyzbar cannot read light-on-dark
    assert inverted is not None and inverted.decoder == "zxing" and inverted.text == FIRST
    assert cascade.decode(np.random.default_rng(1).integers(0, 255, (HEIGHT, WIDTH), dtype=np.uint8)) is None


def test_unknown_or_missing_decoder_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DeviceError, match="unknown QR decoder"):
        Cascade(("zxing", "wechat"))
    monkeypatch.setitem(sys.modules, "zxingcpp", None)
    with pytest.raises(DeviceError, match="zxingcpp cannot be loaded"):
        Cascade(("pyzbar", "zxing"))
