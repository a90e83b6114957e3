"""What every command group of `edge` shares: the default config, the store's exit code, loading
the config and opening the daemon's store the way a manager's command must."""

from __future__ import annotations

import argparse
import os
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..output import EXIT_INVALID, CommandError

if TYPE_CHECKING:
    from ..config import Config
    from ..store import Store
    from ..store.audit import Head

DEFAULT_CONFIG = os.environ.get("EDGE_CONFIG", "/etc/station-edge/station.yaml")
EXIT_STORE = 4  # the store cannot be opened or written (full or read-only disk, bad path)


def day_arg(text: str) -> date:
    """An argparse type: a local day as yyyy-mm-dd."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a date as yyyy-mm-dd") from None


def read_witness(path: str | None) -> list[Head] | None:
    """The heads of `--witness FILE` (None without one); a file that holds none is a usage error."""
    if not path:
        return None
    from ..store.audit import parse_heads

    try:
        return parse_heads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CommandError(f"--witness {path}: {exc}") from None


def readable_config(path: str) -> None:
    """A config this user may not read is said plainly (exit 2), not as a YAML error."""
    from ..store.access import read_problem

    problem = read_problem(Path(path), "the config")
    if problem is not None:
        raise CommandError(problem, EXIT_INVALID)


def load(path: str) -> Config:
    """The whole config, validated; its problems are a usage error (exit 2)."""
    from ..config import ConfigError, load_config

    readable_config(path)
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CommandError(str(exc), EXIT_INVALID) from None


def open_existing(config: Config, readonly: bool = False) -> Store:
    """The manager's commands read and change the daemon's store; they never create or migrate one.
    Those that only read pass readonly=True: they then work for a member of the service user's group."""
    from ..store.opening import open_store

    return open_store(config, existing=True, readonly=readonly)


def open_to_verify(config: Config) -> Store:
    """For the commands that verify what they read (verify, report, export): writable for a user who
    may write the store (the service user, root), so the verify's checkpoint is journalled and the
    next run starts there; read-only for anyone else (a manager in the group), who still verifies."""
    from ..store.access import read_problem, write_problem

    path = Path(config.store.path)
    return open_existing(config, readonly=read_problem(path) is not None or write_problem(path) is not None)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
