"""QR decoders for camera frames, and the cascade that tries them in order and stops at the first
that reads a code. Each decoder reads every code in the frame, with where it is: a frame showing
two cylinders names two, and the caller decides what that means. Preprocessing helps laser-etched
and dot-peen codes on metal: low contrast, light-on-dark, dots that do not touch. Needs the camera
extra (opencv-python-headless, pyzbar, zxing-cpp)."""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from .base import DeviceError

log = logging.getLogger(__name__)


Region = tuple[float, float, float, float]  # left, top, right, bottom as fractions of the frame


@dataclass(frozen=True)
class Code:
    text: str
    corners: tuple[tuple[float, float], ...]  # the code's outline, in pixels of the frame

    def touches(self, region: Region, width: int, height: int) -> bool:
        """Whether any part of the code lies inside `region` (fractions of a width x height frame)."""
        left, top, right, bottom = region
        xs, ys = [x for x, _ in self.corners], [y for _, y in self.corners]
        return min(xs) < right * width and max(xs) > left * width and min(ys) < bottom * height and max(ys) > top * height

Decoder = Callable[[Any], list[Code]]


def _load(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # pyzbar also raises ImportError when libzbar0 is missing
        raise DeviceError(f"{name} cannot be loaded ({exc}); install the camera extra and libzbar0") from exc


def decode_zxing(gray: Any) -> list[Code]:
    zxing = _load("zxingcpp")
    found = []
    for result in zxing.read_barcodes(gray, formats=zxing.BarcodeFormat.QRCode):
        if result.valid and result.text:
            at = result.position
            corners = tuple((float(p.x), float(p.y)) for p in (at.top_left, at.top_right, at.bottom_right, at.bottom_left))
            found.append(Code(str(result.text), corners))
    return found


def decode_pyzbar(gray: Any) -> list[Code]:
    pyzbar = _load("pyzbar.pyzbar")
    return [
        Code(str(symbol.data.decode("utf-8", "replace")), tuple((float(p.x), float(p.y)) for p in symbol.polygon))
        for symbol in pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE])
        if symbol.data and symbol.polygon
    ]


def variants(gray: Any) -> list[Any]:
    """Preprocessed versions of a frame, cheapest first."""
    cv2 = _load("cv2")
    clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(gray)
    blurred = cv2.GaussianBlur(clahe, (5, 5), 0)
    threshold = cv2.adaptiveThreshold(blurred, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, 31, 5)
    found = [clahe, 255 - clahe, threshold]
    ellipse = cv2.MORPH_ELLIPSE
    # Dot-peen dots do not touch: eroding the background between them joins the dots into modules.
    found.append(cv2.erode(threshold, cv2.getStructuringElement(ellipse, (5, 5))))
    # Etched dots on brushed metal: a top-hat keeps features smaller than itself (the dots) and
    # drops the streaks and the lighting gradient; dots may read light (top-hat) or dark (black-hat).
    smooth = cv2.GaussianBlur(gray, (0, 0), 1.5)
    for operation in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT):
        for size in (9, 15):
            hat = cv2.morphologyEx(smooth, operation, cv2.getStructuringElement(ellipse, (size, size)))
            _, dots = cv2.threshold(hat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            found.append(255 - cv2.dilate(dots, cv2.getStructuringElement(ellipse, (5, 5))))
    return found


# The base decoders; "NAME_preprocessed" runs NAME over every preprocessed variant of a frame.
BASE: dict[str, Decoder] = {"zxing": decode_zxing, "pyzbar": decode_pyzbar}
DECODERS = (*BASE, *(f"{name}_preprocessed" for name in BASE))


@dataclass(frozen=True)
class Decoded:
    codes: tuple[Code, ...]  # every code the decoder read in the frame (inside the region, if one)
    decoder: str
    seconds: float

    @property
    def texts(self) -> tuple[str, ...]:
        """The distinct texts, in the order read: one label read twice is one code."""
        return tuple(dict.fromkeys(code.text for code in self.codes))


class Cascade:
    def __init__(self, names: tuple[str, ...]) -> None:
        unknown = [n for n in names if n not in DECODERS]
        if unknown:
            raise DeviceError(f"unknown QR decoder(s) {unknown}; known: {list(DECODERS)}")
        self.names = names
        # Load every library now: a missing one is a start-up error, not a silent skip later.
        _load("cv2")
        for name in names:
            _load("zxingcpp" if name.startswith("zxing") else "pyzbar.pyzbar")

    def decode(self, gray: Any, region: Region | None = None) -> Decoded | None:
        """The codes of the first decoder (or preprocessed variant) that reads any; with a region,
        only codes touching it count, so a code outside it does not stop the cascade."""
        started = time.perf_counter()
        height, width = gray.shape[:2]
        prepared: list[Any] | None = None  # the variants, made once per frame and only if needed
        for name in self.names:
            base, _, preprocessing = name.partition("_")
            if preprocessing and prepared is None:
                prepared = variants(gray)
            for image in prepared if preprocessing else [gray]:  # type: ignore[union-attr]
                codes = [c for c in BASE[base](image) if region is None or c.touches(region, width, height)]
                if codes:
                    return Decoded(tuple(codes), name, time.perf_counter() - started)
        return None
