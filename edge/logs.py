"""Log lines for journald and for people: one line per event, context as key=value fields.

Under systemd (stderr connected to the journal, $JOURNAL_STREAM set) each line starts with the
sd-daemon priority prefix (<3>, <4>, <6>, ...) so `journalctl -p warning` filters by level, and
carries no timestamp of its own: journald adds one. At a terminal, lines carry their time. Lane,
cylinder, fill and reason travel as fields, so `journalctl -u station-edge | grep reason=SCRAPPED`
finds every refusal of a scrapped cylinder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import sys
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, MutableMapping

from . import __version__
from .textsafe import printable

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger(__name__)

# The zone terminal lines are stamped in: the station's, once its config is read (set_timezone).
TIMEZONE: tzinfo | None = None
# The context fields, in the order they are printed.
FIELDS = ("lane", "cylinder", "fill", "reason")
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class FieldFormatter(logging.Formatter):
    def __init__(self, journald: bool) -> None:
        super().__init__("%(name)s: %(message)s" if journald else "%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.journald = journald

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's API)
        """Local time with its offset: the time a person at the station reads off a clock. Before a
        station's zone is known (or for a command with none, the company's collector) the
        machine's own zone, with its offset too."""
        moment = datetime.fromtimestamp(record.created, TIMEZONE) if TIMEZONE else datetime.fromtimestamp(record.created).astimezone()
        return moment.isoformat(timespec="milliseconds")
    def formatMessage(self, record: logging.LogRecord) -> str:
        # A message may carry scanned or city text: no control character reaches the log raw.
        record.message = printable(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{key}={_field(getattr(record, key))}" for key in FIELDS if getattr(record, key, None) is not None)
        if fields:
            line = f"{line} [{fields}]"
        if self.journald:
            # One journal entry per record: a traceback's lines stay in it, indented.
            prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
            line = prefix + line.replace("\n", "\n" + prefix + "  ")
        return line


def _field(value: Any) -> str:
    text = printable(str(value))
    return text if text and not any(c.isspace() for c in text) else repr(text)


class LaneLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that stamps every line with its lane, merged with any fields the call adds."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def setup(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FieldFormatter(journald=_to_journal()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # pymodbus logs every retry of every request; our drivers report what matters once.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    # urllib3 says "Retrying" and "Resetting dropped connection" for each upload in a backlog.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def _to_journal() -> bool:
    """Whether stderr is the journal stream systemd named in $JOURNAL_STREAM (device:inode)."""
    stream = os.environ.get("JOURNAL_STREAM")
    if not stream:
        return False
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{stat.st_dev}:{stat.st_ino}"


SECRET_KEYS = frozenset({"password"})
VERSIONED = ("pymodbus", "pyserial", "pydantic", "requests", "sqlite-utils", "tenacity")


def versions() -> dict[str, str]:
    # For the daemon's start line only: these two cost every other command about 25 ms.
    import platform
    from importlib import metadata

    found = {"station-edge": __version__, "python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if k in SECRET_KEYS and v is not None else redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


def set_timezone(tz: tzinfo | None) -> None:
    global TIMEZONE
    TIMEZONE = tz


def config_summary(config: Config) -> str:
    """The effective config in one readable line: what runs where, and a digest of the whole."""
    lanes = "; ".join(
        f"{lane.id}: {lane.medium}, scale {_device(lane.scale)}, relay {_device(lane.relay)},"
        f" {'+'.join(s.driver for s in lane.scanners)} scanner"
        for lane in config.lanes
    )
    city = config.city
    parts = [
        f"station {config.station.owner_unit} ({config.station.unit_code}, {config.station.timezone})",
        f"store {config.store.path}",
        f"lanes [{lanes}]",
        f"city {city.profile.name} at {city.url}" if city else "no city",
        f"status page {config.status_page.host}:{config.status_page.port}" if config.status_page.enabled else "no status page",
    ]
    if config.simulators is not None:
        parts.append("SIMULATED devices")
    return ", ".join(parts)


def _device(spec: Any) -> str:
    bus = getattr(spec, "bus", None)
    where = f"{bus}/{spec.device_id}" if bus else getattr(spec, "backend", "")
    return f"{spec.driver} {where}".strip()


def log_start(config: Config, path: str) -> None:
    """Lines that answer "what was running, and how was it set up" for any later incident: the
    versions, the config in a short summary with the digest of the whole, and the whole (redacted)
    at debug level."""
    log.info("versions %s", json.dumps(versions(), separators=(",", ":")))
    effective = json.dumps(redacted(config.model_dump(mode="json", exclude_none=True)), ensure_ascii=False,
                           separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(effective.encode()).hexdigest()[:12]
    log.info("config from %s (sha256 %s): %s", path, digest, config_summary(config))
    log.debug("effective config: %s", effective)
