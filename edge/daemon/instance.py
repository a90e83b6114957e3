"""One daemon per station: OS locks that die with the process.

`edge run` takes, before it touches any relay, scanner or record:

- the store lock, a file beside the database (`station.db.lock`), so two daemons never share
  one store whichever configs they were started with;
- one lock per device the config claims (each serial port by its resolved path, each Modbus
  relay board by host:port and unit, each RTU bus by its port, each GPIO chip line), in a lock
  directory every daemon on the machine agrees on, so a second config naming another store but
  the same scanner or relay is refused as well.

The locks are flock(2) locks: the kernel drops them when the process ends however it ends, so a
SIGKILLed daemon never leaves a stale lock behind. Each lock file holds the holder's pid, start
time and store, so a refusal can name the running instance.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import Config
from ..config.devices import (
    GpioRelayConfig,
    HidScannerConfig,
    ModbusDevice,
    RfidSerialConfig,
    RtuBusConfig,
    SerialScannerConfig,
    TcpBusConfig,
)

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "EDGE_LOCK_DIR"
# The systemd unit creates this (RuntimeDirectory=lock/station-edge); a daemon started by hand
# on the same machine finds it too.
SYSTEM_LOCK_DIR = Path("/run/lock/station-edge")


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its file says."""

    pid: int | None
    since: str | None
    store: str | None

    def __str__(self) -> str:
        return f"pid {self.pid if self.pid is not None else '?'}, since {self.since or '?'}"


class AlreadyRunning(Exception):
    def __init__(self, what: str, holder: Holder) -> None:
        super().__init__(f"another station-edge daemon ({holder}) already holds {what}")
        self.what, self.holder = what, holder


def store_lock_path(config: Config) -> Path:
    # Resolved, so a symlink or another spelling of the same database finds the same lock.
    return Path(os.path.realpath(config.store.path) + ".lock")


def lock_dir() -> Path:
    """The directory of device locks: $EDGE_LOCK_DIR, else /run/lock/station-edge when it can be
    used, else a per-user directory under the temporary directory."""
    override = os.environ.get(LOCK_DIR_ENV)
    candidates = [Path(override)] if override else [SYSTEM_LOCK_DIR, Path(tempfile.gettempdir()) / f"station-edge-locks-{os.getuid()}"]
    for candidate in candidates:
        with suppress(OSError):
            candidate.mkdir(parents=True, exist_ok=True)
        if candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    raise OSError(f"no usable lock directory (tried {', '.join(map(str, candidates))}; set ${LOCK_DIR_ENV})")


def _host(name: str) -> str:
    """One spelling per address: 'localhost' and '127.0.0.1' are the same board."""
    try:
        return socket.gethostbyname(name)
    except OSError:
        return name.lower()


def bus_key(config: Config, device: ModbusDevice) -> tuple[str, str]:
    """The lock key of a Modbus device and what to call it: its RS-485 port (one process owns
    the port, every unit on it), or its unit at a TCP address."""
    bus = config.buses[device.bus]
    if isinstance(bus, RtuBusConfig):
        return f"serial:{os.path.realpath(bus.port)}", f"RS-485 bus {device.bus} ({bus.port})"
    assert isinstance(bus, TcpBusConfig)
    return (
        f"modbus:{_host(bus.host)}:{bus.port}:unit{device.device_id}",
        f"Modbus unit {device.device_id} at {bus.host}:{bus.port}",
    )


def scanner_key(lane_id: str, scanner: object) -> tuple[str, str] | None:
    if isinstance(scanner, (SerialScannerConfig, RfidSerialConfig)):
        return f"serial:{os.path.realpath(scanner.port)}", f"lane {lane_id} scanner port {scanner.port}"
    if isinstance(scanner, HidScannerConfig) and scanner.device.startswith("/"):
        return f"input:{os.path.realpath(scanner.device)}", f"lane {lane_id} scanner {scanner.device}"
    return None


def device_keys(config: Config) -> dict[str, str]:
    """key -> what the config calls it, for every device whose second owner would be a hazard."""
    keys: dict[str, str] = {}
    for lane in config.lanes:
        for scanner in lane.scanners:
            found = scanner_key(lane.id, scanner)
            if found is not None:
                keys[found[0]] = found[1]
        for device in (lane.scale, lane.relay):
            if isinstance(device, ModbusDevice):
                key, said = bus_key(config, device)
                keys.setdefault(key, said)
        if isinstance(lane.relay, GpioRelayConfig):
            relay = lane.relay
            keys[f"gpio:{relay.chip}:{relay.line}"] = f"lane {lane.id} valve GPIO {relay.chip} line {relay.line}"
    return keys


def _file_name(key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")[:80]
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.lock"


def read_holder(path: Path) -> Holder:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        data = {}
    return Holder(data.get("pid"), data.get("since"), data.get("store"))


def device_lock_path(key: str) -> Path:
    return lock_dir() / _file_name(key)


def held_by(path: Path) -> Holder | None:
    """The holder of a lock file if a live process holds it, else None. Takes nothing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(path)
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return None


class InstanceLock:
    """The store lock and every device lock, held until release() or the process ends."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._fds: list[int] = []

    def acquire(self) -> InstanceLock:
        me = {"pid": os.getpid(), "since": datetime.now(timezone.utc).isoformat(timespec="seconds"), "store": str(self.config.store.path)}
        try:
            store_lock = store_lock_path(self.config)
            store_lock.parent.mkdir(parents=True, exist_ok=True)
            self._take(store_lock, f"the store {self.config.store.path}", me)
            for key, said in sorted(device_keys(self.config).items()):
                self._take(device_lock_path(key), said, {**me, "device": key})
        except BaseException:
            self.release()
            raise
        return self

    def _take(self, path: Path, what: str, me: dict[str, Any]) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(what, read_holder(path)) from None
        # Written only once the lock is ours: the file of a running daemon is never overwritten.
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._fds.append(fd)

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


class DeviceLock(InstanceLock):
    """Some devices of the config, for a commissioning command (`edge relay test`): taken only
    when no daemon holds them, and while held a daemon started meanwhile is refused."""

    def __init__(self, config: Config, keys: dict[str, str]) -> None:
        super().__init__(config)
        self.keys = keys

    def acquire(self) -> DeviceLock:
        me = {"pid": os.getpid(), "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "store": str(self.config.store.path), "tool": "commissioning"}
        try:
            for key, said in sorted(self.keys.items()):
                self._take(device_lock_path(key), said, {**me, "device": key})
        except BaseException:
            self.release()
            raise
        return self
