"""The outcome of the last backups, kept in a small JSON file beside the store (station.db ->
station.db.backup.json), and what it means now: the status page, the metrics and `edge status`
derive "failed" and "missing" from it and the clock at each look, never from a remembered verdict.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def state_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".backup.json")


def read(store_path: Path) -> dict[str, Any] | None:
    """The last outcome, or None when no backup has run (or its file is unreadable: said in the log)."""
    path = state_path(store_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("backup state %s unreadable: %s", path, exc)
        return {"last_attempt_at": None, "last_ok_at": None, "error": f"backup state unreadable: {exc}"}
    return data if isinstance(data, dict) else None


def write(store_path: Path, data: dict[str, Any]) -> None:
    path = state_path(store_path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(partial, path)


def assess(state: dict[str, Any] | None, max_age_hours: float, now: datetime) -> dict[str, Any]:
    """{"ok", "problem", "last_ok_at", "age_hours", "last_attempt_at", "error"} as of `now`:
    not ok when no backup was ever made, when the last attempt failed, or when the last good one is
    older than max_age_hours."""
    state = state or {}
    last_ok = state.get("last_ok_at")
    age_h = None if not last_ok else round((now - datetime.fromisoformat(last_ok)).total_seconds() / 3600, 2)
    problem = None
    if state.get("error"):
        problem = f"the last backup failed: {state['error']}"
    elif age_h is None:
        problem = "no backup has been made yet"
    elif age_h > max_age_hours:
        problem = f"the last good backup is {age_h:.1f} h old (more than {max_age_hours:g} h): is the backup timer running?"
    return {"ok": problem is None, "problem": problem, "last_ok_at": last_ok, "age_hours": age_h,
            "last_attempt_at": state.get("last_attempt_at"), "error": state.get("error"), "name": state.get("name"),
            "max_age_hours": max_age_hours}


def status_of(config: Any, now: datetime) -> dict[str, Any] | None:
    """The backup's state for the status page, the metrics and `edge status`; None without a
    backup: section."""
    if config.backup is None:
        return None
    return assess(read(config.store.path), config.backup.max_age_hours, now)
