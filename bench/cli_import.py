"""Peak memory of `edge cache import` for 100,000 cylinders (CSV and .xlsx), and how long
`edge status` takes to start and answer.

Each import runs as `edge cache import` in its own process; its peak resident memory is the
child's ru_maxrss. The start time of `edge status` is the median of --runs runs, printed beside
the interpreter's own start (`python -c pass`) because the machine is shared and noisy: the
ratio says what our imports add. Targets: < 100 MB peak for either format, status < 0.2 s.

    .venv/bin/python bench/cli_import.py [--rows 100000] [--runs 9]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.demo.run import BUNDLED_CONFIG, effective_config  # noqa: E402
from edge.store.schema import CITY_FIELDS  # noqa: E402

EDGE = [sys.executable, "-m", "edge.cli"]
HEADER = ["id", "owner_unit", "region", "variety", "product_no", "medium", "manufacture_month", "volume_l", "next_inspection",
          "status", "info_code", "qr_content", "registration_no", "tare_kg", "fill_mass_kg"]


def rows(count: int) -> list[list[object]]:
    return [[f"B{n:09d}", "重庆渝能燃气有限公司", "500112", "2320", f"YSP15-{n:07d}", "G13", "2024-03", 35.5, "2028-03", "在用",
             f"CQ{n:08d}", f"https://qp.example.cn/trace?code=CQ{n:08d}", f"R{n}", 15.1, 14.5] for n in range(count)]


def write_csv(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([CITY_FIELDS.get(h, h) for h in HEADER])
        writer.writerows(rows(count))


def write_xlsx(path: Path, count: int) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("气瓶档案")
    sheet.append([CITY_FIELDS.get(h, h) for h in HEADER])
    for row in rows(count):
        sheet.append(row)
    book.save(path)


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        state = Path(tmp)
        config = effective_config(BUNDLED_CONFIG, state)
        for kind, writer in (("csv", write_csv), ("xlsx", write_xlsx)):
            path = state / f"cylinders.{kind}"
            writer(path, args.rows)
            (state / "station.db").unlink(missing_ok=True)
            # A fresh process per import: each measurement is that import's own peak.
            probe = [sys.executable, "-c",
                     "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
                     "print(r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr);"
                     "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)",
                     *EDGE, "cache", "import", str(path), "--config", str(config)]
            started = time.monotonic()
            result = subprocess.run(probe, capture_output=True, text=True)
            seconds = time.monotonic() - started
            said, peak_kb = result.stdout.strip().splitlines()[-2:]
            print(f"import {kind:4}: {args.rows} rows, peak RSS {int(peak_kb) / 1024:.1f} MB, {seconds:.1f} s ({said})")
        bare = median_seconds([sys.executable, "-c", "pass"], args.runs)
        status = median_seconds([*EDGE, "status", "--config", str(config)], args.runs)
        print(f"edge status: median {status * 1000:.0f} ms over {args.runs} runs; python -c pass {bare * 1000:.0f} ms;"
              f" ratio {status / bare:.1f}")


if __name__ == "__main__":
    main()
