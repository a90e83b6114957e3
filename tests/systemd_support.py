"""What systemd does around a Type=notify unit, done by a test: the notify socket, and the unit's
own command lines with its environment substituted."""

from __future__ import annotations

import configparser
import os
import shlex
import socket
import tempfile
import time
from pathlib import Path

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "station-edge.service"


class NotifySocket:
    """The datagram socket systemd passes as $NOTIFY_SOCKET; collects the messages sent to it."""

    def __init__(self) -> None:
        # AF_UNIX paths are limited to 108 bytes, so not under pytest's long tmp_path.
        self.dir = tempfile.mkdtemp(prefix="notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[tuple[float, str]] = []

    def wait_for(self, message: str, timeout: float) -> float:
        """Receive until `message` arrives; returns its arrival time (monotonic)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {message} within {timeout} s; got {[m for _, m in self.messages]}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            arrived = time.monotonic()
            self.messages.append((arrived, data))
            if message in data.splitlines():
                return arrived

    def drain(self, seconds: float) -> list[tuple[float, str]]:
        """Everything received over the next `seconds`."""
        got: list[tuple[float, str]] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                got.append((time.monotonic(), self.sock.recv(4096).decode()))
            except socket.timeout:
                break
        self.messages += got
        return got

    def close(self) -> None:
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def unit_service(unit: Path = UNIT) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(unit, encoding="utf-8")
    return parser


def unit_command(key: str, venv_bin: Path, config: Path, unit: Path = UNIT) -> list[str]:
    """The unit's Exec line `key`, pointed at this venv and config as install.sh would point it."""
    line = unit_service(unit)["Service"][key]
    line = line.replace("/opt/station-edge/venv/bin", str(venv_bin)).replace("${EDGE_CONFIG}", str(config))
    return shlex.split(line)
