"""systemd's notify protocol (sd_notify(3)) without a library: one datagram per message.

Outside systemd (no $NOTIFY_SOCKET) every call is a no-op, so the daemon runs the same by hand.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Callable

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one message such as "READY=1"; False when not under systemd or the send failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract socket namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot notify systemd (%s): %s", message.split("=")[0], exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of WatchdogSec when systemd asked this process for pings, else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


class Periodic:
    """A daemon thread that calls tick() every interval_s until stopped."""

    def __init__(self, name: str, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()

    def tick(self) -> None:
        raise NotImplementedError


class Watchdog(Periodic):
    """Pings WATCHDOG=1 only while every control loop is alive.

    `stale()` names the lanes whose loop has not come round recently. A hung loop (a driver call
    that never returns, a deadlock) stops the pings, and systemd kills and restarts the daemon,
    whose start drives every valve off. The pinging thread itself never decides a loop is fine.
    """

    def __init__(self, interval_s: float, stale: Callable[[], list[str]]) -> None:
        super().__init__("watchdog", interval_s)
        self._stale = stale
        self._withheld = False

    def tick(self) -> None:
        stale = self._stale()
        if stale:
            if not self._withheld:
                log.critical("control loop of lane %s is not running; withholding the watchdog ping", ", ".join(stale))
            self._withheld = True
            return
        self._withheld = False
        notify("WATCHDOG=1")
