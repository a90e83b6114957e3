"""A real Mosquitto for the fleet tests: the shipped config and ACL, a CA made for the run
(trustme), a password file made with mosquitto_passwd, on a free local port. Never the system
service."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from datetime import datetime, timezone
from typing import Any, Iterator

import jsonschema

import pytest
import yaml

from edge.config import Config, load_config
from edge.daemon.fleet import FleetService
from edge.daemon.station import open_store
from fleet.config import CompanyConfig
from fleet.console import Connection, _drain
from simulators.dataset import generate
from sync.fleet.protocol import SCHEMA_FILE
from sync.fleet.settings import BrokerConfig
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "fleet"
COMPANY = "acme"
HQ = "acme-hq"
STATIONS = ("st1", "st2", "st3")
# The company's accounts, known only to the company's listener.
COMPANY_USERS = (HQ,)


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
    def __init__(self, directory: Path, stations: tuple[str, ...] = STATIONS) -> None:
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
        # The stations' listener knows the stations (and an account with no station of its own);
        # the company's listener knows only the company's accounts.
        for name, users in (("passwd", (*stations, "intruder")), ("company-passwd", COMPANY_USERS)):
            passwd = directory / name
            passwd.touch()
            for user in users:
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, self.password(user)], check=True, capture_output=True)
        (directory / "data").mkdir()
        shutil.copy(SHIPPED / "acl", directory / "acl")
        self.company_port = free_port()
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(self._config(), encoding="utf-8")
        self.log = directory / "mosquitto.log"

    @staticmethod
    def password(user: str) -> str:
        return f"pw-{user}-secret"

    def _config(self) -> str:
        text = (SHIPPED / "mosquitto.conf").read_text(encoding="utf-8")
        paths = {
            "password_file /etc/mosquitto/fleet/passwd": f"password_file {self.dir / 'passwd'}",
            "password_file /etc/mosquitto/fleet/company-passwd": f"password_file {self.dir / 'company-passwd'}",
            "acl_file": f"acl_file {self.dir / 'acl'}",
            "persistence_location": f"persistence_location {self.dir / 'data'}/",
            "certfile": f"certfile {self.dir / 'server.crt'}",
            "keyfile": f"keyfile {self.dir / 'server.key'}",
            "cafile": f"cafile {self.ca_file}",
            "listener 8883": f"listener {self.port} 127.0.0.1",
            "listener 8884": f"listener {self.company_port} 127.0.0.1",
        }
        for key, value in paths.items():
            text, count = re.subn(rf"^{re.escape(key)}( .*)?$", value, text, flags=re.M)
            assert count >= 1, key
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
                for port in (self.port, self.company_port):
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
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
            "host": "127.0.0.1", "port": self.company_port if user in COMPANY_USERS else self.port, "protocol": protocol, "ca_file": self.ca_file,
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


@pytest.fixture(scope="module", name="broker")
def broker_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker per test module (the fleet test modules import this fixture)."""
    needs_mosquitto()
    b = Broker(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()


SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def check_payload(payload: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(payload)



class LightStation:
    """A station's store and fleet service without lanes: events are written the way a lane writes
    them (journal entries in the store), commands are carried out on its store."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = open_store(config)
        now = datetime.now(timezone.utc)
        self.dataset = generate(60, config.station.owner_unit, config.station.region, now.date(), seed=7)
        self.store.upsert_cylinders((g.row for g in self.dataset), now)
        self.store.mark_cache_refreshed(now)
        self.service = FleetService(config, {}, lambda: datetime.now(timezone.utc))
        self.rejected = 0

    def start(self) -> LightStation:
        self.service.start()
        return self

    def stop(self) -> None:
        self.service.stop()

    def close(self) -> None:
        self.store.close()

    def reject_scan(self, lane: str = "A") -> None:
        self.rejected += 1
        data = {"code": f"junk-{self.rejected}", "accepted": False, "reasons": ["INVALID_CODE"], "details": ["not a code"],
                "fill_id": None, "cylinder_id": None}
        self.store.journal(datetime.now(timezone.utc), "scan", data, lane=lane)
        self.service.uplink.wake()


def station_config(tmp_path: Path, broker: Broker, station: str, **fleet: Any) -> Config:
    directory = tmp_path / station
    directory.mkdir()

    def override(raw: dict[str, Any]) -> None:
        raw["fleet"] = {
            "company": COMPANY,
            "station_id": station,
            "broker": json.loads(broker.settings(station).model_dump_json()),
            "health_interval_s": 1.0,
            **fleet,
        }

    return load_config(write_config(directory, override))


def company_config(tmp_path: Path, broker: Broker, **changes: Any) -> CompanyConfig:
    fields: dict[str, Any] = {"database": f"sqlite:///{tmp_path / 'fleet.db'}", **changes}
    return CompanyConfig(company=COMPANY, broker=broker.settings(HQ), sender="dispatcher-li", **fields)


def company_file(tmp_path: Path, broker: Broker) -> Path:
    """The company config as the company's tools read it: a YAML file, its database beside it."""
    settings = json.loads(broker.settings(HQ).model_dump_json())
    path = tmp_path / "company.yaml"
    path.write_text(yaml.safe_dump({"company": COMPANY, "broker": settings, "sender": "safety-officer-wu",
                                    "database": "sqlite:///company/fleet.db"}), encoding="utf-8")
    return path


def retained(broker: Broker, topic: str, seconds: float = 1.0) -> dict[str, dict[str, Any]]:
    """What a new subscriber sees on a topic filter at once: the retained messages."""
    seen: dict[str, dict[str, Any]] = {}
    with Connection(company_config(Path("."), broker), [topic], "probe") as conn:
        _drain(conn.messages, seconds, lambda t, p: seen.__setitem__(t, p))
    return seen


def _postgres_bin() -> Path | None:
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return roots[-1].parent if roots else None


class Unavailable(Exception):
    """What a throwaway server needs is not on this machine."""


@contextlib.contextmanager
def postgres_server(fsync: bool = False) -> Iterator[str]:
    """A throwaway PostgreSQL cluster (Debian's server binaries, initdb + pg_ctl) on a free port."""
    import pwd
    import tempfile

    binaries = _postgres_bin()
    if binaries is None:
        raise Unavailable("Debian's postgresql server is not installed (scripts/system-deps.sh installs it)")
    run_as: list[str] = []
    directory = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
    if os.geteuid() == 0:
        # initdb refuses to run as root: the cluster belongs to the postgres account.
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no postgres account to own a cluster") from None
        os.chown(directory, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = directory / "data", free_port()
    subprocess.run([*run_as, str(binaries / "initdb"), "-D", str(data), "-U", "fleet", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync={'on' if fsync else 'off'}"
    subprocess.run([*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(directory / "log"),
                    "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://fleet@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    pytest.importorskip("psycopg", reason="psycopg is not installed (it is in the test extra)")
    try:
        with postgres_server() as url:
            yield url
    except Unavailable as exc:
        pytest.skip(str(exc))


def fresh_database(server_url: str) -> str:
    """A new, empty database on the throwaway server, so each test starts from nothing."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + f"/{name}"
