"""The kept documents (the reports folder) as the status page links them: the latest of each kind,
and a file served only if its name is one the folder's writer makes and it is in that folder."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from ..manager.kept import KINDS, NAME, latest

PREFIX = "/documents/"
TYPES = {".pdf": "application/pdf", ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
ORDER = ("daily.pdf", "ledger.xlsx", "shift.pdf", "monthly.pdf")


class Shelf:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._seen: tuple[int, list[dict[str, Any]]] | None = None

    def links(self) -> list[dict[str, Any]]:
        """The latest daily report, ledger, shift record and monthly summary, as they are in the
        folder now: listed again whenever the folder changed (its mtime), not four times a second."""
        try:
            stamp = os.stat(self.folder).st_mtime_ns
        except OSError:
            return []
        with self._lock:
            if self._seen is None or self._seen[0] != stamp:
                newest = latest(self.folder)
                self._seen = (stamp, [
                    {"kind": key, "label": KINDS[key.split(".")[0]], "date": _dated(newest[key]), "name": newest[key],
                     "url": PREFIX + quote(newest[key])}
                    for key in ORDER if key in newest])
            return self._seen[1]

    def file(self, path: str) -> Path | None:
        """The document a request path names, or None: only a kept document's name, directly in
        the folder (no other file, no path elsewhere), and only a regular file."""
        try:
            name = unquote(path[len(PREFIX):], errors="strict")
        except UnicodeDecodeError:
            return None
        if NAME.fullmatch(name) is None or "/" in name or name.startswith("."):
            return None
        found = self.folder / name
        return found if found.is_file() and not found.is_symlink() else None


def content_type(path: Path) -> str:
    return TYPES[path.suffix]


def disposition(path: Path) -> str:
    # RFC 6266: a browser shows or saves it under its own (Chinese) name.
    kind = "inline" if path.suffix == ".pdf" else "attachment"
    return f"{kind}; filename*=UTF-8''{quote(path.name)}"


def _dated(name: str) -> str:
    match = NAME.fullmatch(name)
    if match is None:  # latest() lists only names that match
        return ""
    return match.group(2) + (f" {match.group(3)}" if match.group(3) else "")
