"""A station config with a backup: section over a store that has a past, for the backup tests."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.config import Config, load_config
from tests.conftest import write_config
from tests.history_support import build, cylinders, open_history_store

EDGE = [sys.executable, "-m", "edge.cli"]


def history_store(path: Path, fills: int = 40) -> None:
    """A store of `fills` fills written through the daemon's own store calls, uploads acknowledged."""
    store = open_history_store(path, durable=False)
    try:
        store.upsert_cylinders(cylinders(), datetime.now(UTC))
        for _ in build(store, fills, ack_every=20):
            pass
    finally:
        store.close()


def backup_config(tmp_path: Path, store: Path, backup: dict[str, Any], name: str = "station.yaml") -> tuple[Path, Config]:
    """The simulated station's config with `store` and `backup`, written to tmp_path/name."""
    def override(raw: dict[str, Any]) -> None:
        raw["store"]["path"] = str(store)
        raw["backup"] = backup
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_config(tmp_path, override)
    if path.name != name:
        path = path.rename(path.with_name(name))
    return path, load_config(path)


def edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGE, *args], capture_output=True, text=True, timeout=300)
