"""The camera reader over an image folder and a video file of simulated frames, and the cascade."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pytest

from drivers.base import DeviceError
from drivers.camera import CameraReader
from drivers.qr_decode import Cascade
from edge.store import journal
from interlock.reasons import Reason, text
from simulators.qr_frames import HEIGHT, WIDTH, render, scene

from .conftest import SimStation

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
    assert inverted is not None and inverted.decoder == "zxing" and inverted.texts == (FIRST,)
    assert cascade.decode(np.random.default_rng(1).integers(0, 255, (HEIGHT, WIDTH), dtype=np.uint8)) is None


def test_unknown_or_missing_decoder_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DeviceError, match="unknown QR decoder"):
        Cascade(("zxing", "wechat"))
    monkeypatch.setitem(sys.modules, "zxingcpp", None)
    with pytest.raises(DeviceError, match="zxingcpp cannot be loaded"):
        Cascade(("pyzbar", "zxing"))


# One frame names one cylinder ----------------------------------------------------------------------

ON_SCALE, NEIGHBOUR = (FIRST, 20, 150), (SECOND, 440, 150)  # the platter is the left half of the frame
LEFT_HALF = (0.0, 0.0, 0.5, 1.0)


def _folder(tmp_path: Path, frames: list[np.ndarray]) -> str:
    folder = tmp_path / "frames"
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:03d}.png"), image)
    return str(folder)


@pytest.mark.parametrize("decoders", [("zxing",), ("pyzbar",), ("zxing", "pyzbar", "zxing_preprocessed")])
def test_a_frame_with_two_codes_is_reported_as_two_never_as_one(tmp_path: Path, decoders: tuple[str, ...]) -> None:
    both = scene([ON_SCALE, NEIGHBOUR])
    swapped = scene([(SECOND, 20, 150), (FIRST, 440, 150)])
    reader = CameraReader(_folder(tmp_path, [both, both, swapped]), decoders, repeat_s=10, fps=60)
    scans = [s for s in (reader.read() for _ in range(5)) if s is not None]
    # One scan for the view (debounced over frames, whichever side each label is on), naming both
    # codes and counting them, so the lane can refuse it.
    assert len(scans) == 1 and scans[0].codes_in_view == 2, scans
    assert set(scans[0].data.split(b" | ")) == {FIRST.encode(), SECOND.encode()}


def test_one_code_read_alone_right_after_two_is_not_taken(tmp_path: Path) -> None:
    both, alone = scene([ON_SCALE, NEIGHBOUR]), scene([NEIGHBOUR])
    # The neighbour alone, just after both were seen (the other label glared in this frame): not a
    # scan while the crowd is recent. With a short repeat window it counts once the window passed.
    reader = CameraReader(_folder(tmp_path, [both, alone, alone, both]), ("zxing",), repeat_s=10, fps=60)
    scans = [s for s in (reader.read() for _ in range(6)) if s is not None]
    assert [s.codes_in_view for s in scans] == [2], scans
    quick = CameraReader(_folder(tmp_path / "q", [both, alone]), ("zxing",), repeat_s=0.05, fps=10)
    first, second = quick.read(), quick.read()
    assert first is not None and first.codes_in_view == 2
    assert second is not None and second.codes_in_view == 1 and second.data == SECOND.encode()


def test_a_region_of_interest_counts_only_the_code_on_the_platter(tmp_path: Path) -> None:
    both = scene([ON_SCALE, NEIGHBOUR])
    for decoders in (("zxing",), ("pyzbar",)):
        reader = CameraReader(_folder(tmp_path / decoders[0], [both, both]), decoders, repeat_s=10, fps=60, region=LEFT_HALF)
        scans = [s for s in (reader.read() for _ in range(4)) if s is not None]
        assert [(s.data, s.codes_in_view) for s in scans] == [(FIRST.encode(), 1)], decoders
    # Only the neighbour in view: nothing on the platter, no scan at all.
    reader = CameraReader(_folder(tmp_path / "n", [scene([NEIGHBOUR])]), repeat_s=10, fps=60, region=LEFT_HALF)
    assert [reader.read() for _ in range(3)] == [None, None, None]
    # A label across the region's edge counts: two codes touching the platter are refused.
    straddling = scene([ON_SCALE, (SECOND, 260, 150)])
    reader = CameraReader(_folder(tmp_path / "s", [straddling]), ("zxing",), repeat_s=10, fps=60, region=LEFT_HALF)
    scan = reader.read()
    assert scan is not None and scan.codes_in_view == 2


def test_the_region_is_validated_in_the_config() -> None:
    from pydantic import ValidationError

    from edge.config.devices import CameraScannerConfig

    good = CameraScannerConfig(driver="camera", source="0", roi={"left": 0.1, "top": 0, "right": 0.6, "bottom": 1})
    assert good.roi is not None and good.roi.box() == (0.1, 0, 0.6, 1)
    assert CameraScannerConfig(driver="camera", source="0").roi is None
    for bad in ({"left": 0.6, "top": 0, "right": 0.1, "bottom": 1}, {"left": 0, "top": 0, "right": 1.5, "bottom": 1},
                {"left": 0, "top": 0.5, "right": 1, "bottom": 0.52}, {"left": 0, "top": 0, "right": 1}):
        with pytest.raises(ValidationError):
            CameraScannerConfig(driver="camera", source="0", roi=bad)


def test_the_lane_never_authorises_the_neighbour(make_station: Callable[..., SimStation], tmp_path: Path) -> None:
    """Through the station: lane A's camera (no region) sees the cylinder on its scale and the
    neighbour's label and refuses with TWO_CODES; lane B's camera, with a region over its platter,
    authorises the cylinder on the platter and never the neighbour."""
    sources = {"A": tmp_path / "camera-A", "B": tmp_path / "camera-B"}

    def cameras(raw: dict[str, Any]) -> None:
        for lane in raw["lanes"]:
            # The folders appear once the frames are written: until then the reader retries, like
            # a camera that is not plugged in yet.
            camera = {"driver": "camera", "source": str(sources[lane["id"]]), "fps": 20, "repeat_s": 10}
            if lane["id"] == "B":
                camera["roi"] = {"left": 0.0, "top": 0.0, "right": 0.5, "bottom": 1.0}
            lane["scanners"].append(camera)

    s = make_station(cameras)
    on_scale, neighbour = s.cylinder(skip=0).row, s.cylinder(skip=1).row
    frame = scene([(on_scale["qr_content"], 20, 150), (neighbour["qr_content"], 440, 150)])
    for folder in sources.values():
        _folder(tmp_path / f"{folder.name}.tmp", [frame, frame, frame])
        (tmp_path / f"{folder.name}.tmp" / "frames").rename(folder)
    refused, taken = s.wait("A", "verdict"), s.wait("B", "verdict")
    assert not refused["accepted"] and refused["reasons"] == ["TWO_CODES"], refused
    assert on_scale["qr_content"] in refused["code"] and neighbour["qr_content"] in refused["code"]
    assert taken["accepted"] and taken["cylinder_id"] == on_scale["id"], taken
    assert text(Reason.TWO_CODES) == "两个码同时在视野内 / two codes in view"
    time.sleep(0.5)  # the remaining frames: debounced, no further verdict
    assert s.events["A"].empty() and s.events["B"].empty()
    assert s.station.store is not None
    scans = [journal.load(r["data"]) for r in s.station.store.query("SELECT data FROM journal WHERE kind = 'scan'")]
    assert len(scans) == 2 and not any(scan["accepted"] and scan["cylinder_id"] == neighbour["id"] for scan in scans)
    assert not s.modbus("A").valve_on()
