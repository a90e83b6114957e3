"""QR decoders for camera frames, and the cascade that tries them in order and stops at the first
that reads a code. Each decoder reads every code in the frame, with where it is: a frame showing
two cylinders names two, and the caller decides what that means. Preprocessing helps laser-etched
and dot-peen codes on metal: low contrast, light-on-dark, dots that do not touch. Unwarping helps a
label on a neck ring or shoulder turned away from the camera. Needs the camera extra
(opencv-python-headless, pyzbar, zxing-cpp)."""

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


Corners = tuple[tuple[float, float], ...]


def _zxing_read(gray: Any) -> tuple[list[Code], list[Corners]]:
    """The codes zxing-cpp reads, and the outlines of the codes it found but could not read."""
    zxing = _load("zxingcpp")
    found, failed = [], []
    for result in zxing.read_barcodes(gray, formats=zxing.BarcodeFormat.QRCode, return_errors=True):
        at = result.position
        corners = tuple((float(p.x), float(p.y)) for p in (at.top_left, at.top_right, at.bottom_right, at.bottom_left))
        if result.valid and result.text:
            found.append(Code(str(result.text), corners))
        elif not result.valid:
            failed.append(corners)
    return found, failed


def decode_zxing(gray: Any) -> list[Code]:
    return _zxing_read(gray)[0]


# Hypotheses for a label on a cylinder whose axis is upright in the frame: the code's middle turned
# this many degrees from the camera (either way) and covering twice `half` degrees of its
# circumference. Neck rings and shoulders put a code at 20-45 degrees and 35-60 degrees wide; the
# first hypothesis that reads wins, and a wrong guess only fails to read (the code's own
# error correction decides, as for any frame).
UNWARP_TURNS = (25, -25, 40, -40, 55, -55)
UNWARP_HALVES = (18, 28)
UNWARP_MARGIN = 20  # pixels of border round a flattened code, so its quiet zone is complete


def decode_zxing_unwarped(gray: Any) -> list[Code]:
    """Codes zxing-cpp found but could not read, flattened as if on a cylinder and read again.
    A curved code fails the checksum (its modules shrink towards the cylinder's edge, so a flat
    sampling grid drifts off them); its outline still says where it is and how wide."""
    cv2, np = _load("cv2"), _load("numpy")
    height = gray.shape[0]
    found: list[Code] = []
    for outline in _zxing_read(gray)[1]:
        xs, ys = [x for x, _ in outline], [y for _, y in outline]
        left, span = min(xs), max(xs) - min(xs)
        if span < 20:  # a few modules at most: no code to flatten
            continue
        top = max(0, int(min(ys) - 0.15 * span))
        rows = np.arange(top, min(height, int(max(ys) + 0.15 * span)), dtype=np.float32)
        for turn, half in ((t, h) for t in UNWARP_TURNS for h in UNWARP_HALVES):
            t, a = np.radians(turn), np.radians(half)
            radius = span / (np.sin(t + a) - np.sin(t - a))
            axis = left - radius * np.sin(t - a)
            # Arc length round the cylinder, a margin beyond the code for its quiet zone.
            start = radius * max(-np.pi / 2, t - 1.2 * a)
            arc = np.arange(start, radius * min(np.pi / 2, t + 1.2 * a), 1.0, dtype=np.float32)
            source_x = (axis + radius * np.sin(arc / radius)).astype(np.float32)
            flat = cv2.remap(gray, np.repeat(source_x[None, :], len(rows), 0), np.repeat(rows[:, None], len(arc), 1),
                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            margin = UNWARP_MARGIN
            codes = decode_zxing(cv2.copyMakeBorder(flat, margin, margin, margin, margin, cv2.BORDER_REPLICATE))
            if codes:
                # Back to the frame's pixels, so a region of interest applies as to any code.
                last = len(arc) - 1
                found += [Code(c.text, tuple((float(source_x[int(min(max(x - margin, 0), last))]), float(top + y - margin))
                                             for x, y in c.corners)) for c in codes]
                break
    return found


def _finder_patterns(gray: Any) -> list[Any]:
    """Finder-pattern-like squares (a dark square ring round a dark core): OpenCV rotated
    rectangles ((x, y), (width, height), angle)."""
    cv2 = _load("cv2")
    _, dark = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    contours, hierarchy = cv2.findContours(dark, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    found = []
    for index, contour in enumerate(contours if hierarchy is not None else ()):
        hole = hierarchy[0][index][2]
        core = hierarchy[0][hole][2] if hole >= 0 else -1
        if core < 0:
            continue
        rect = cv2.minAreaRect(contour)
        width, height = rect[1]
        if min(width, height) < 14 or max(width, height) > 1.3 * min(width, height):
            continue
        # The core is 3 x 3 of the finder's 7 x 7 modules: 18 % of its area.
        if 0.1 < cv2.contourArea(contours[core]) / max(cv2.contourArea(contour), 1.0) < 0.35:
            found.append(rect)
    return found


def decode_zxing_refinder(gray: Any) -> list[Code]:
    """A code with one finder pattern covered (a glove, a smear): where exactly two finders are
    seen, a whole finder is drawn where the third would be, for each place it can be (beside
    either finder, or between them when they are diagonal), and zxing-cpp reads again. A wrong
    place only fails to read: the code's error correction decides."""
    cv2, np = _load("cv2"), _load("numpy")
    finders = _finder_patterns(gray)
    if len(finders) != 2:
        return []
    (first, size_a, angle), (second, size_b, _) = finders
    p, q = np.array(first), np.array(second)
    module = (sum(size_a) + sum(size_b)) / 4 / 7
    along = q - p
    length = float(np.linalg.norm(along))
    normal = np.array([-along[1], along[0]])
    places = [p + normal, p - normal, q + normal, q - normal, (p + q + normal) / 2, (p + q - normal) / 2]
    theta = np.radians(angle)
    across, down = np.array([np.cos(theta), np.sin(theta)]), np.array([-np.sin(theta), np.cos(theta)])
    height, width = gray.shape[:2]
    for place in places:
        if not (0 <= place[0] < width and 0 <= place[1] < height) or length < 10 * module:
            continue
        image = gray.copy()
        # Outermost first: the white separator (9 x 9), the dark ring (7 x 7), white (5 x 5), the core.
        for half, shade in ((4.5, 255), (3.5, 0), (2.5, 255), (1.5, 0)):
            corners = [place + (sx * across + sy * down) * half * module for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
            cv2.fillConvexPoly(image, np.round(np.array(corners)).astype(np.int32), shade)
        codes = decode_zxing(image)
        if codes:
            return codes
    return []


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
BASE: dict[str, Decoder] = {"zxing": decode_zxing, "pyzbar": decode_pyzbar, "zxing_unwarped": decode_zxing_unwarped,
                            "zxing_refinder": decode_zxing_refinder}
PREPROCESSED = "_preprocessed"
DECODERS = (*BASE, *(f"{name}{PREPROCESSED}" for name in ("zxing", "pyzbar")))
DEFAULT = ("zxing", "pyzbar", "zxing_unwarped", "zxing_refinder", "zxing_preprocessed")


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
            preprocessed = name.endswith(PREPROCESSED)
            if preprocessed and prepared is None:
                prepared = variants(gray)
            for image in prepared if preprocessed else [gray]:  # type: ignore[union-attr]
                codes = [c for c in BASE[name.removesuffix(PREPROCESSED)](image) if region is None or c.touches(region, width, height)]
                if codes:
                    return Decoded(tuple(codes), name, time.perf_counter() - started)
        return None

    def look_further(self, gray: Any, found: Decoded, region: Region | None = None) -> Decoded:
        """`found` with any other code the whole cascade reads once the codes found are covered.
        The cascade stops at the first decoder that reads anything, and a decoder may read the
        neighbour's label and miss the cylinder's own: before one code alone is taken as the
        cylinder, every decoder and every retry looks at the rest of the frame."""
        started = time.perf_counter()
        cv2, np = _load("cv2"), _load("numpy")
        covered = gray.copy()
        background = int(np.median(gray))
        for code in found.codes:
            outline = np.array(code.corners, np.float32)
            middle = outline.mean(axis=0)
            # A little beyond the outline, so no finder pattern of the code read is left to confuse.
            grown = middle + (outline - middle) * 1.15
            cv2.fillPoly(covered, [grown.round().astype(np.int32)], background)
        more = self.decode(covered, region)
        if more is None:
            return Decoded(found.codes, found.decoder, found.seconds + time.perf_counter() - started)
        return Decoded(found.codes + more.codes, f"{found.decoder}+{more.decoder}", found.seconds + time.perf_counter() - started)
