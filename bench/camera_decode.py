"""Camera decode benchmark: a seeded set of degraded QR frames (simulators.qr_frames), decoded by
each decoder alone and by the default cascade. Prints success per degradation and the median
decode time per frame (successful or not).

    .venv/bin/python bench/camera_decode.py [--per-kind 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.qr_decode import DECODERS, Cascade  # noqa: E402
from simulators.qr_frames import KINDS, degraded_set  # noqa: E402

CASCADE = ("zxing", "pyzbar", "zxing_preprocessed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-kind", type=int, default=50)
    args = parser.parse_args()
    frames = degraded_set(args.per_kind)
    print(f"{len(frames)} frames 640x480, {args.per_kind} per degradation, severity mild to harsh")
    cascades = {name: Cascade((name,)) for name in DECODERS}
    cascades["cascade " + ">".join(CASCADE)] = Cascade(CASCADE)
    runs = {name: (lambda image, c=c: (" | ".join(found.texts) if (found := c.decode(image)) else None)) for name, c in cascades.items()}
    header = f"{'decoder':<42}" + "".join(f"{kind:>13}" for kind in KINDS) + f"{'total':>8}{'median ms':>11}"
    print(header)
    for name, decode in runs.items():
        hits = {kind: 0 for kind in KINDS}
        times = []
        for frame in frames:
            started = time.perf_counter()
            text = decode(frame.image)
            times.append((time.perf_counter() - started) * 1000)
            hits[frame.kind] += text == frame.text
        total = sum(hits.values())
        row = f"{name:<42}" + "".join(f"{hits[k]:>13}" for k in KINDS)
        print(f"{row}{total:>5}/{len(frames):<3}{statistics.median(times):>10.2f}")


if __name__ == "__main__":
    main()
