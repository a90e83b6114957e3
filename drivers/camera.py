"""A camera code reader: frames from a V4L2 device (/dev/video0 or an index), a video file or a
folder of images, decoded by a cascade, with repeated reads of the code in view debounced.

One frame names one cylinder. A frame with two distinct codes in view (the cylinder on the scale
and its neighbour) is reported as such, never as whichever code was read first; with a region of
interest over the platter, only codes touching it count."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Iterator

from .base import Scan
from .qr_decode import DEFAULT, Cascade, Region, _load

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm"}


class CameraReader:
    def __init__(self, source: str, decoders: tuple[str, ...] = DEFAULT,
                 repeat_s: float = 3.0, fps: float = 10.0, reconnect_s: float = 1.0, region: Region | None = None) -> None:
        self.cv2 = _load("cv2")
        self.cascade = Cascade(decoders)
        self.source, self.repeat_s, self.period_s, self.reconnect_s = source, repeat_s, 1.0 / fps, reconnect_s
        self.region = region
        self.frames = self.decoded = self.failures = 0
        self._capture: Any = None
        self._images: Iterator[Path] | None = None
        self._last: tuple[frozenset[str], float] | None = None  # (the codes in view, when last seen)
        self._next_frame = 0.0

    def open(self) -> None:
        folder = Path(self.source)
        if folder.is_dir():
            self._images = iter(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
            return
        target: int | str = int(self.source) if self.source.isdigit() else self.source
        capture = self.cv2.VideoCapture(target)
        if not capture.isOpened():
            raise OSError(f"cannot open camera source {self.source!r}")
        self._capture = capture

    def _frame(self) -> Any:
        if self._images is not None:
            path = next(self._images, None)
            return None if path is None else self.cv2.imread(str(path), self.cv2.IMREAD_GRAYSCALE)
        ok, frame = self._capture.read()
        if not ok:
            return None
        return frame if frame.ndim == 2 else self.cv2.cvtColor(frame, self.cv2.COLOR_BGR2GRAY)

    def read(self) -> Scan | None:
        if self._capture is None and self._images is None:
            try:
                self.open()
            except OSError as exc:
                log.warning("camera %s unavailable: %s", self.source, exc)
                time.sleep(self.reconnect_s)
                return None
        wait = self._next_frame - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._next_frame = time.monotonic() + self.period_s
        frame = self._frame()
        if frame is None:
            # End of a file or folder, or a camera that stopped delivering: idle, do not spin.
            self.failures += 1
            time.sleep(self.period_s)
            return None
        self.frames += 1
        found = self.cascade.decode(frame, self.region)
        now = time.monotonic()
        if found is None:
            return None
        self.decoded += 1
        seen = self._last
        if len(found.texts) == 1 and not (seen is not None and now - seen[1] < self.repeat_s and seen[0] == set(found.texts)):
            # One code, not simply the one still in view: before it is taken as the cylinder, every
            # decoder and retry looks at the rest of the frame, since the one that read it may have
            # missed another (the cylinder's own, with this one the neighbour's). Once per new view
            # (or per frame while fewer codes are read than were just seen), not on every frame.
            found = self.cascade.look_further(frame, found, self.region)
        if self._debounced(frozenset(found.texts), now):
            return None
        texts = found.texts
        self._last = (frozenset(texts), now)
        if len(texts) > 1:
            log.info("camera %s: %d codes in one frame, none taken", self.source, len(texts))
            return Scan(" | ".join(texts).encode("utf-8"), now, codes_in_view=len(texts))
        log.debug("camera %s: decoded by %s in %.1f ms", self.source, found.decoder, found.seconds * 1000)
        return Scan(texts[0].encode("utf-8"), now)

    def _debounced(self, view: frozenset[str], now: float) -> bool:
        """Whether this view is no new scan: the same code(s) as just seen, or fewer of them."""
        seen = self._last
        if seen is None or now - seen[1] >= self.repeat_s:
            return False
        if seen[0] == view:
            self._last = (view, now)
            return True  # the same code(s) still in view: one scan, however many frames show them
        # Fewer of the codes just seen together: the others are most likely still there, only not
        # read in this frame. Taking one alone could authorise the neighbour; it counts once a
        # whole repeat_s has passed without a frame showing them together.
        return view < seen[0]

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture = None
        self._images = None
