"""Stamp photo uploads: how long decoding and re-encoding takes, and how much memory one upload can
make the process take, for a phone's photo, the largest accepted PNG and the hostile files that
are refused (a decompression bomb, a PNG claiming 100000 x 100000 pixels). Each case runs in a
fresh process, so its peak resident memory is its own. Prints the median time and the peak RSS
above the process's baseline.

    .venv/bin/python bench/photo_uploads.py [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.scanpoints.photos import PhotoRefused, prepare  # noqa: E402

MAX_BYTES, MAX_PIXELS = 4_000_000, 25_000_000


def _png(width: int, height: int, idat: bytes, colour: int = 0) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _flat_png(width: int, height: int, channels: int) -> bytes:
    packer = zlib.compressobj(9)
    row = b"\x00" * (width * channels + 1)
    return _png(width, height, b"".join(packer.compress(row) for _ in range(height)) + packer.flush(), 0 if channels == 1 else 2)


def _phone_jpeg() -> bytes:
    from PIL import Image

    image = Image.effect_noise((4032, 3024), 12).convert("RGB")  # texture, so the JPEG is photo-sized
    out = io.BytesIO()
    image.save(out, "JPEG", quality=75)
    return out.getvalue()


CASES = {
    "phone JPEG 4032x3024 (12 MP)": _phone_jpeg,
    "PNG 5000x5000 RGB (25 MP, the limit)": lambda: _flat_png(5000, 5000, 3),
    "bomb PNG 16000x16000 (refused)": lambda: _flat_png(16000, 16000, 1),
    "PNG header claiming 100000x100000 (refused)": lambda: _png(100_000, 100_000, zlib.compress(b"\x00" * 1000)),
    "PNG header then HTML (refused)": lambda: b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>",
}


def one(case: str, runs: int) -> dict[str, object]:
    data = CASES[case]()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, outcome = [], ""
    for _ in range(runs):
        started = time.perf_counter()
        try:
            photo = prepare(data, MAX_BYTES, MAX_PIXELS)
            outcome = f"kept {photo.width}x{photo.height}, {len(photo.jpeg) // 1000} kB"
        except PhotoRefused as exc:
            outcome = "refused: " + str(exc).split(" / ")[-1]
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline  # kB on Linux
    return {"case": case, "upload_kb": len(data) // 1000, "median_ms": statistics.median(times) * 1000,
            "peak_mb": peak / 1024, "outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.runs)))
        return
    print(f"limits: {MAX_BYTES // 1000} kB, {MAX_PIXELS / 1e6:g} MP; median of {args.runs} runs; peak RSS above baseline")
    print(f"{'case':46} {'upload':>9} {'median ms':>10} {'peak MB':>8}  outcome")
    for case in CASES:
        found = subprocess.run([sys.executable, __file__, "--one", case, "--runs", str(args.runs)],
                               capture_output=True, text=True, check=True)
        row = json.loads(found.stdout)
        print(f"{case:46} {row['upload_kb']:>6} kB {row['median_ms']:>10.1f} {row['peak_mb']:>8.1f}  {row['outcome']}")


if __name__ == "__main__":
    main()
