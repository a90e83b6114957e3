"""Camera frames with QR codes as a station camera sees them: rendered with segno, then blurred,
noisy, low in contrast, seen at an angle, inverted, or etched into metal (light dots on a
brushed, uneven surface). Seeded, so a benchmark set is the same on every machine."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import segno

WIDTH, HEIGHT = 640, 480
KINDS = ("clean", "blur", "noise", "low_contrast", "perspective", "inverted", "etched")


@dataclass(frozen=True)
class Frame:
    image: Any  # uint8 grayscale HEIGHT x WIDTH
    text: str
    kind: str
    severity: float  # 0 mild .. 1 harsh


def _modules(text: str) -> Any:
    code = segno.make(text, error="m", micro=False)
    return np.array(code.matrix, dtype=np.uint8)  # 1 = dark module


def _canvas(modules: Any, module_px: int, dots: bool = False) -> Any:
    """The code with its quiet zone, dark modules on white."""
    quiet = 4
    size = (modules.shape[0] + 2 * quiet) * module_px
    canvas = np.full((size, size), 255, np.uint8)
    for y, x in zip(*np.nonzero(modules)):
        top, left = (y + quiet) * module_px, (x + quiet) * module_px
        if dots:  # dot peen: a round dent per module, smaller than the module
            centre = (left + module_px // 2, top + module_px // 2)
            cv2.circle(canvas, centre, max(1, int(module_px * 0.38)), 0, -1)
        else:
            canvas[top : top + module_px, left : left + module_px] = 0
    return canvas


def _place(modules: Any, rng: random.Random, module_px: int, dots: bool = False) -> Any:
    canvas = _canvas(modules, module_px, dots)
    size = canvas.shape[0]
    frame = np.full((HEIGHT, WIDTH), 235, np.uint8)
    top = rng.randrange(0, max(1, HEIGHT - size))
    left = rng.randrange(0, max(1, WIDTH - size))
    frame[top : top + size, left : left + size] = canvas[: HEIGHT - top, : WIDTH - left]
    return frame


def render(text: str, kind: str, severity: float, seed: int) -> Frame:
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    modules = _modules(text)
    module_px = rng.randint(5, 8)
    image = _place(modules, rng, module_px, dots=kind == "etched")
    if kind == "blur":
        image = cv2.GaussianBlur(image, (0, 0), 1.0 + severity * 4.0)  # defocus, or a moving cylinder
    elif kind == "noise":
        image = np.clip(image + nprng.normal(0, 20 + severity * 60, image.shape), 0, 255).astype(np.uint8)
    elif kind == "low_contrast":
        span = 60 - severity * 52
        image = (110 + image.astype(np.float32) / 255 * span).astype(np.uint8)
    elif kind == "perspective":
        shift = 0.08 + severity * 0.25
        src = np.float32([[0, 0], [WIDTH, 0], [WIDTH, HEIGHT], [0, HEIGHT]])
        dst = np.float32([[WIDTH * shift, HEIGHT * shift * 0.6], [WIDTH * (1 - shift * 0.3), 0],
                          [WIDTH, HEIGHT], [WIDTH * shift * 0.4, HEIGHT * (1 - shift)]])
        image = cv2.warpPerspective(image, cv2.getPerspectiveTransform(src, dst), (WIDTH, HEIGHT), borderValue=235)
    elif kind == "inverted":
        image = 255 - image
    elif kind == "etched":
        # Metal: brushed texture and a lighting gradient; dents read slightly lighter than the
        # surface around them, with little contrast.
        surface = np.linspace(95, 150, WIDTH, dtype=np.float32)[None, :].repeat(HEIGHT, 0)
        brushed = cv2.blur(nprng.normal(0, 18, (HEIGHT, WIDTH)).astype(np.float32), (31, 1))
        dents = (image < 128).astype(np.float32) * (45 - severity * 25)
        image = np.clip(surface + brushed + dents + nprng.normal(0, 4 + severity * 6, image.shape), 0, 255).astype(np.uint8)
        image = cv2.GaussianBlur(image, (3, 3), 0)
    return Frame(image, text, kind, severity)


def scene(codes: list[tuple[str, int, int]], module_px: int = 4) -> Any:
    """One frame with several labels in view, each (text, left, top) in pixels: the cylinder on
    the scale and its neighbours, as a camera over a lane sees them."""
    frame = np.full((HEIGHT, WIDTH), 235, np.uint8)
    for text, left, top in codes:
        canvas = _canvas(_modules(text), module_px)
        size = canvas.shape[0]
        if left < 0 or top < 0 or left + size > WIDTH or top + size > HEIGHT:
            raise ValueError(f"a {size} px code at ({left}, {top}) does not fit a {WIDTH} x {HEIGHT} frame")
        frame[top : top + size, left : left + size] = canvas
    return frame


def degraded_set(count_per_kind: int, seed: int = 2026) -> list[Frame]:
    """count_per_kind frames of every kind, severity spread evenly from mild to harsh."""
    frames = []
    for k, kind in enumerate(KINDS):
        for i in range(count_per_kind):
            text = f"https://qp.cqsjj.example.cn/trace?code=CQ500112{seed % 1000:03d}{k}{i:05d}"
            frames.append(render(text, kind, i / max(1, count_per_kind - 1), seed * 1000 + k * 100 + i))
    return frames
