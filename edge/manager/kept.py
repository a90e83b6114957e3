"""The documents the station keeps by itself (`edge reports due`, run by its systemd timer): after
midnight the day's daily report and ledger, at each configured shift's end its hand-over record,
written into `reports.folder` and, where `reports.printer` names a CUPS queue, printed with `lp`.

A document is written once, under a name that says what it is; a run that finds it there skips
it, so the timer catches up after a power cut and never writes a day twice. Files appear whole
(written beside, then renamed), and a PDF is printed until `lp` has taken it (its `.printed` mark).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

CATCH_UP_DAYS = 7  # days before yesterday written if missing, when they had fills
PRINT_WITHIN = timedelta(days=7)  # an unprinted PDF older than this is left unprinted (the printer was gone a week)
KINDS = {"daily": "充装日报", "ledger": "充装记录", "shift": "交接班记录", "monthly": "充装月报"}
# Every file the folder holds: kind, local date, an optional shift name, extension.
NAME = re.compile(r"(daily|ledger|shift|monthly)-(\d{4}-\d{2}(?:-\d{2})?)(?:-([^/\\\x00-\x1f]{1,20}))?\.(pdf|xlsx)")
PRINTED = ".printed"


def whole(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary name beside `path`, then rename: a reader (or the next run) never
    finds half a document under the real name."""
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def latest(folder: Path) -> dict[str, str]:
    """The newest document of each kind in the folder: kind.ext -> file name."""
    found: dict[str, tuple[tuple[str, float], str]] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return {}
    for entry in entries:
        match = NAME.fullmatch(entry.name)
        if match is None or not entry.is_file():
            continue
        key = f"{match.group(1)}.{match.group(4)}"
        rank = (match.group(2), entry.stat().st_mtime)
        if key not in found or rank > found[key][0]:
            found[key] = (rank, entry.name)
    return {key: name for key, (_, name) in sorted(found.items())}


def days_due(folder: Path, today: date) -> list[date]:
    """Yesterday, and the days of the week before it whose daily report is missing."""
    days = [today - timedelta(days=n) for n in range(CATCH_UP_DAYS + 1, 0, -1)]
    return [day for day in days if not (folder / f"daily-{day}.pdf").exists()]


def print_pending(folder: Path, printer: str, now: datetime) -> list[str]:
    """Send every PDF of the last week that `lp` has not yet taken to the CUPS queue; returns the
    problems (a printer that is off leaves its documents for the next run)."""
    problems = []
    for pdf in sorted(folder.glob("*.pdf")):
        mark = pdf.with_name(pdf.name + PRINTED)
        if mark.exists() or NAME.fullmatch(pdf.name) is None:
            continue
        if now.timestamp() - pdf.stat().st_mtime > PRINT_WITHIN.total_seconds():
            continue
        kind = NAME.fullmatch(pdf.name).group(1)  # type: ignore[union-attr]
        command = ["lp", "-d", printer, "-t", f"{KINDS[kind]} {pdf.stem}", "-o", "media=A4", "-o", "sides=one-sided", str(pdf)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"{pdf.name}: lp failed ({exc})")
            continue
        if done.returncode != 0:
            problems.append(f"{pdf.name}: lp -d {printer} refused it: {(done.stderr or done.stdout).strip()[:200]}")
            continue
        mark.write_text(f"{now.isoformat()} {(done.stdout or '').strip()}\n", encoding="utf-8")
        log.info("printed %s on %s: %s", pdf.name, printer, (done.stdout or "").strip())
    return problems
