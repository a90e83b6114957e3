"""Camera frames with QR codes as a station camera sees them: rendered with segno, then blurred,
noisy, low in contrast, seen at an angle, inverted, or etched into metal (light dots on a
brushed, uneven surface). The harder set is what a camera over a scale also sees: a label on a
curved neck ring or shoulder turned away, a glove over part of one finder pattern, uneven
dot-peen on steel, scratches, rolling-shutter skew. Seeded, so a benchmark set is the same on
every machine."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import segno

WIDTH, HEIGHT = 640, 480
KINDS = ("clean", "blur", "noise", "low_contrast", "perspective", "inverted", "etched")
HARD_KINDS = ("curved", "gloved", "dot_peen", "scratched", "rolling_shutter")


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
    return _put(_canvas(modules, module_px, dots), rng)


def _put(canvas: Any, rng: random.Random, background: int = 235) -> Any:
    """The canvas at a random place on a plain frame."""
    height, width = canvas.shape[:2]
    frame = np.full((HEIGHT, WIDTH), background, np.uint8)
    top = rng.randrange(0, max(1, HEIGHT - height))
    left = rng.randrange(0, max(1, WIDTH - width))
    frame[top : top + height, left : left + width] = canvas[: HEIGHT - top, : WIDTH - left]
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


def _curved(modules: Any, rng: random.Random, severity: float) -> Any:
    """A label wrapped round a neck ring or shoulder (a cylinder whose axis is vertical in the
    frame), the middle of the label turned 20-45 degrees away from the camera: orthographic
    projection of the surface, so modules shrink towards the limb, and lit from the camera, so the
    label darkens as it turns away. Turned left or right."""
    module_px = rng.randint(6, 8)
    label = _canvas(modules, module_px).astype(np.float32)
    size = label.shape[0]
    turn = np.radians(20 + 25 * severity) * rng.choice((-1, 1))
    # The label spans 40 (shoulder) to 60 (narrow neck ring) degrees of the circumference.
    radius = size / np.radians(40 + 20 * severity)
    half = size / 2
    first, last = np.sin(turn - half / radius), np.sin(turn + half / radius)
    width = int(np.ceil(radius * (last - first))) + 1
    xs = first * radius + np.arange(width, dtype=np.float32)
    angle = np.arcsin(np.clip(xs / radius, -1, 1))
    column = (angle - turn) * radius + half  # arc length along the label, in label pixels
    map_x = np.repeat(column[None, :], size, 0).astype(np.float32)
    map_y = np.repeat(np.arange(size, dtype=np.float32)[:, None], width, 1)
    warped = cv2.remap(label, map_x, map_y, cv2.INTER_LINEAR, borderValue=235)
    shade = 0.55 + 0.45 * np.cos(angle)[None, :]
    return _put(np.clip(warped * shade, 0, 255).astype(np.uint8), rng)


def _gloved(modules: Any, rng: random.Random, severity: float) -> Any:
    """A gloved hand (a dark rounded blob) over a corner of one finder pattern."""
    module_px = rng.randint(5, 8)
    canvas = _canvas(modules, module_px)
    quiet, count = 4 * module_px, modules.shape[0]
    corner = rng.choice(("top_left", "top_right", "bottom_left"))
    # The finder's outer corner, and the direction into the code from it.
    x0 = quiet if corner != "top_right" else quiet + count * module_px
    y0 = quiet if corner != "bottom_left" else quiet + count * module_px
    sx = 1 if corner != "top_right" else -1
    sy = 1 if corner != "bottom_left" else -1
    # A fingertip from outside the code over the finder's outer corner: from about two modules
    # (mild) to four of its seven (harsh) covered along each edge.
    reach = (2 + 2 * severity) * module_px
    centre = (int(x0 + sx * module_px * 0.5), int(y0 + sy * module_px * 0.5))
    axes = (int(reach * rng.uniform(1.0, 1.3)), int(reach))
    glove = 70 + rng.randint(-20, 40)
    cv2.ellipse(canvas, centre, axes, rng.uniform(0, 180), 0, 360, glove, -1)
    return _put(cv2.GaussianBlur(canvas, (3, 3), 0), rng)


def _dot_peen(modules: Any, nprng: Any, rng: random.Random, severity: float) -> Any:
    """Dot-peen on steel with a worn stylus: dots of uneven size and depth, some barely marked,
    on a curved, unevenly lit steel surface with a specular streak."""
    module_px = rng.randint(6, 8)
    quiet = 4
    size = (modules.shape[0] + 2 * quiet) * module_px
    depth = np.zeros((size, size), np.float32)
    for y, x in zip(*np.nonzero(modules)):
        centre = ((x + quiet) * module_px + module_px // 2, (y + quiet) * module_px + module_px // 2)
        radius = max(1, round(module_px * nprng.uniform(0.3, 0.48)))
        weak = nprng.random() < 0.05 + 0.15 * severity
        cv2.circle(depth, centre, radius, float(nprng.uniform(0.1, 0.4) if weak else nprng.uniform(0.6, 1.0)), -1)
    depth = cv2.GaussianBlur(depth, (0, 0), module_px * 0.12)
    frame = np.zeros((HEIGHT, WIDTH), np.float32)
    top, left = rng.randrange(0, HEIGHT - size), rng.randrange(0, WIDTH - size)
    frame[top : top + size, left : left + size] = depth
    xs = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :]
    steel = 100 + 60 * np.sin(xs * np.pi * nprng.uniform(0.8, 1.6)) + 45 * np.exp(-((xs - nprng.uniform(0.2, 0.8)) / 0.08) ** 2)
    grain = cv2.blur(nprng.normal(0, 14, (HEIGHT, WIDTH)).astype(np.float32), (25, 1))
    # A dent is a small dark cup with a light rim where the light catches it: it reads darker.
    image = steel + grain - frame * (40 - 15 * severity) + nprng.normal(0, 3 + 5 * severity, frame.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _scratched(modules: Any, nprng: Any, rng: random.Random, severity: float) -> Any:
    """A worn label: light and dark scratches across it."""
    image = _place(modules, rng, rng.randint(5, 8))
    for _ in range(int(4 + 16 * severity)):
        start = (rng.randrange(WIDTH), rng.randrange(HEIGHT))
        length, direction = rng.uniform(60, 300), rng.uniform(0, np.pi)
        end = (int(start[0] + length * np.cos(direction)), int(start[1] + length * np.sin(direction)))
        cv2.line(image, start, end, 255 if rng.random() < 0.6 else 20, rng.randint(1, 2 + int(2 * severity)), cv2.LINE_AA)
    return np.clip(image + nprng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def _rolling_shutter(modules: Any, nprng: Any, rng: random.Random, severity: float) -> Any:
    """A cylinder swinging past a rolling-shutter camera: each row is read a little later, so
    the label is sheared sideways and wobbles, with some motion blur along the rows."""
    image = _place(modules, rng, rng.randint(5, 8)).astype(np.float32)
    shear = (0.08 + 0.27 * severity) * rng.choice((-1, 1))
    rows = np.arange(HEIGHT, dtype=np.float32)[:, None]
    wobble = (1 + 3 * severity) * np.sin(rows / HEIGHT * np.pi * nprng.uniform(2, 4))
    map_x = np.arange(WIDTH, dtype=np.float32)[None, :] + shear * (rows - HEIGHT / 2) + wobble
    map_y = np.repeat(rows, WIDTH, 1)
    image = cv2.remap(image, map_x.astype(np.float32), map_y, cv2.INTER_LINEAR, borderValue=235)
    smear = int(1 + 3 * severity)
    image = cv2.blur(image, (smear * 2 + 1, 1))
    return np.clip(image + nprng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)


def render_hard(text: str, kind: str, severity: float, seed: int) -> Frame:
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    modules = _modules(text)
    if kind == "curved":
        image = _curved(modules, rng, severity)
    elif kind == "gloved":
        image = _gloved(modules, rng, severity)
    elif kind == "dot_peen":
        image = _dot_peen(modules, nprng, rng, severity)
    elif kind == "scratched":
        image = _scratched(modules, nprng, rng, severity)
    elif kind == "rolling_shutter":
        image = _rolling_shutter(modules, nprng, rng, severity)
    else:
        raise ValueError(f"unknown hard kind {kind!r}; known: {HARD_KINDS}")
    return Frame(image, text, kind, severity)


def scene(codes: list[tuple[str, int, int]], module_px: int = 4, gloved: tuple[int, ...] = ()) -> Any:
    """One frame with several labels in view, each (text, left, top) in pixels: the cylinder on
    the scale and its neighbours, as a camera over a lane sees them. The labels numbered in
    `gloved` have a gloved fingertip over the outer corner of their top-left finder pattern (about
    three of its seven modules each way), which some decoders read past and others do not."""
    frame = np.full((HEIGHT, WIDTH), 235, np.uint8)
    for index, (text, left, top) in enumerate(codes):
        canvas = _canvas(_modules(text), module_px)
        size = canvas.shape[0]
        if left < 0 or top < 0 or left + size > WIDTH or top + size > HEIGHT:
            raise ValueError(f"a {size} px code at ({left}, {top}) does not fit a {WIDTH} x {HEIGHT} frame")
        frame[top : top + size, left : left + size] = canvas
        if index in gloved:
            corner = (left + 4 * module_px + module_px // 2, top + 4 * module_px)
            cv2.ellipse(frame, corner, (int(3.5 * module_px), 3 * module_px), 30, 0, 360, 70, -1)
    return frame


def degraded_set(count_per_kind: int, seed: int = 2026) -> list[Frame]:
    """count_per_kind frames of every kind, severity spread evenly from mild to harsh."""
    return _seeded_set(KINDS, render, "CQ500112", count_per_kind, seed)


def hard_set(count_per_kind: int, seed: int = 2027) -> list[Frame]:
    """count_per_kind frames of every hard kind, severity spread evenly from mild to harsh."""
    return _seeded_set(HARD_KINDS, render_hard, "CQ500113", count_per_kind, seed)


def _seeded_set(kinds: Sequence[str], draw: Callable[[str, str, float, int], Frame], prefix: str, count_per_kind: int,
                seed: int) -> list[Frame]:
    """Each kind's frames, each with a code of its own: the same seed draws the same frames."""
    frames = []
    for k, kind in enumerate(kinds):
        for i in range(count_per_kind):
            text = f"https://qp.cqsjj.example.cn/trace?code={prefix}{seed % 1000:03d}{k}{i:05d}"
            frames.append(draw(text, kind, i / max(1, count_per_kind - 1), seed * 1000 + k * 100 + i))
    return frames
