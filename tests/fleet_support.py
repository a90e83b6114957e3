"""A real Mosquitto for the fleet tests: the shipped config and ACL, a CA made for the run
(trustme), a password file made with mosquitto_passwd, on a free local port. Never the system
service."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from sync.fleet.settings import BrokerConfig

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "fleet"
COMPANY = "acme"
HQ = "acme-hq"
STATIONS = ("st1", "st2", "st3")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Debian puts the broker in /usr/sbin, which is not on every user's PATH.
MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")


def needs_mosquitto() -> None:
    if MOSQUITTO is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("Debian's mosquitto is not installed (scripts/system-deps.sh installs it)")


class Broker:
    def __init__(self, directory: Path) -> None:
        import trustme

        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = directory / "ca.crt"
        ca.cert_pem.write_to_path(str(self.ca_file))
        cert.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
        cert.private_key_pem.write_to_path(str(directory / "server.key"))
        self.ca = ca
        passwd = directory / "passwd"
        passwd.touch()
        for user in (HQ, *STATIONS, "intruder"):
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, self.password(user)], check=True, capture_output=True)
        (directory / "data").mkdir()
        shutil.copy(SHIPPED / "acl", directory / "acl")
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(self._config(), encoding="utf-8")
        self.log = directory / "mosquitto.log"

    @staticmethod
    def password(user: str) -> str:
        return f"pw-{user}-secret"

    def _config(self) -> str:
        text = (SHIPPED / "mosquitto.conf").read_text(encoding="utf-8")
        paths = {
            "password_file": self.dir / "passwd",
            "acl_file": self.dir / "acl",
            "persistence_location": f"{self.dir / 'data'}/",
            "certfile": self.dir / "server.crt",
            "keyfile": self.dir / "server.key",
            "cafile": self.ca_file,
        }
        for key, value in paths.items():
            text, count = re.subn(rf"^{key} .*$", f"{key} {value}", text, flags=re.M)
            assert count == 1, key
        text, count = re.subn(r"^listener 8883$", f"listener {self.port} 127.0.0.1", text, flags=re.M)
        assert count == 1
        if os.geteuid() == 0:
            # As root, mosquitto drops to its own user, which cannot write a test's directory.
            text += "\nuser root\n"
        return text

    def start(self) -> Broker:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(MOSQUITTO), "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not start:\n" + self.log.read_text(errors="replace"))
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file and exits
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def settings(self, user: str, protocol: str = "5", **changes: object) -> BrokerConfig:
        fields: dict[str, object] = {
            "host": "127.0.0.1", "port": self.port, "protocol": protocol, "ca_file": self.ca_file,
            "username": user, "password": self.password(user), "keepalive_s": 5, "connect_timeout_s": 5.0,
        }
        fields.update(changes)
        return BrokerConfig.model_validate(fields)


def wait_until(condition, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker per test module (imported by the fleet test modules)."""
    needs_mosquitto()
    b = Broker(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()
