"""The dead card, end to end: a station fills, is backed up while its daemon runs, fills more (all
of it reaching the city), loses its store; the backup is restored from the SFTP server (a real sshd
on a loopback port) into a clean directory, the daemon starts and continues the journal's chain,
`edge verify --full` passes, and the city holds every record exactly once.

The simulated devices and the city run in this process, the daemon in a child process, as in
test_crash_restart.py.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.config import load_config
from edge.demo.simulation import Simulation
from edge.lanes.lane import utc_now
from edge.store import Store
from edge.store.opening import open_store
from edge.store.outbox import Outbox
from simulators.city_auth import DUPLICATE_CODE
from sync.profile import BUNDLED_PROFILES
from tests.backup_support import EDGE, edge
from tests.conftest import daemon_config, write_config
from tests.ssh_support import free_port, start_sshd


def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def read(store: Path, sql: str) -> list[tuple[Any, ...]]:
    """A read of the daemon's store from outside, as any reader of a WAL database may."""
    if not store.exists():
        return []
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # not yet created
    finally:
        conn.close()


def completed(store: Path) -> list[str]:
    return [r[0] for r in read(store, "SELECT id FROM fills WHERE status = 'complete' ORDER BY rowid")]


def uploads(store: Path) -> dict[str, int]:
    """The outbox's pending, sent and dead counts, as `edge sync status` reads them."""
    if not store.exists():
        return {}
    opened = Store(store, existing=True)
    try:
        status = Outbox(opened).status(utc_now())
    finally:
        opened.close()
    return {key: status[key] for key in ("pending", "sent", "dead")}


def pending(store: Path) -> int:
    return uploads(store).get("pending", -1)


def fill_one(sim: Simulation, store: Path, cylinder: Any) -> str:
    before = len(completed(store))
    sim.scanners["A"].scan(cylinder.row["qr_content"])
    time.sleep(0.3)
    sim.station_for("A").model.place(cylinder.row["tare_kg"] + 0.1)
    wait_for(lambda: len(completed(store)) == before + 1, "the fill to complete")
    sim.station_for("A").model.remove()
    time.sleep(0.5)
    return completed(store)[-1]


def start_daemon(config_path: Path, log: Path) -> subprocess.Popen[bytes]:
    """`edge run` in a child process, its log in a file (a pipe nobody reads would fill and stall it)."""
    with log.open("ab") as out:
        return subprocess.Popen([*EDGE, "run", "--config", str(config_path)], stdout=subprocess.DEVNULL, stderr=out)


def wait_started(daemon: subprocess.Popen[bytes], store: Path, starts: int, log: Path) -> None:
    """Until the daemon has journalled its `starts`-th start; its own words if it exits instead."""
    def started() -> bool:
        if daemon.poll() is not None:
            raise AssertionError(f"the daemon exited {daemon.returncode}: {log.read_text(errors='replace')[-2000:]}")
        return len(read(store, "SELECT 1 FROM journal WHERE kind = 'daemon_start'")) == starts
    wait_for(started, "the daemon's start", timeout=90)


def status_page(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        return reply.read().decode()


@pytest.mark.slow
@pytest.mark.parametrize("city_keys", ["idempotency key", "natural key only"])
def test_dead_card_restore_from_sftp_keeps_the_chain_and_the_city_gets_each_record_once(tmp_path: Path, city_keys: str) -> None:
    """Both ways a city settles a record sent again: by our idempotency key, or (a platform that
    ignores it) by answering "already exists" on cylinder and fill time, which the uploader marks
    delivered as a duplicate."""
    sshd = start_sshd(tmp_path / "ssh")
    if city_keys == "natural key only":
        # The station's profile for such a platform names its "already exists" code.
        profile = yaml.safe_load((BUNDLED_PROFILES / "chongqing.yaml").read_text(encoding="utf-8"))
        profile["envelope"]["duplicate_codes"] = [DUPLICATE_CODE]
        (tmp_path / "profiles").mkdir()
        (tmp_path / "profiles" / "chongqing.yaml").write_text(yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")
    sim = Simulation(load_config(write_config(tmp_path))).start()
    status_port = free_port()
    store = tmp_path / "card" / "station.db"

    def on_its_card(raw: dict[str, Any]) -> None:
        raw["store"]["path"] = str(store)
        raw["status_page"] = {"port": status_port}
        raw["backup"] = {"sftp": sshd.target(), "max_age_hours": 1}

    config_path, config = daemon_config(tmp_path, on_its_card)
    seeded = open_store(config)
    sim.seed_cache(seeded, utc_now())
    seeded.close()
    assert sim.city is not None
    city = sim.city
    city.ignore_keys(city_keys == "natural key only")
    cylinders = [g for g in sim.dataset if g.scenario == "ok" and g.row["model"] != "YSP50"][:5]
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config_path, log)
    try:
        wait_started(daemon, store, 1, log)
        # Two fills while the city is away: pending in the backup, delivered only after it.
        city.refuse(True)
        before_backup = [fill_one(sim, store, c) for c in cylinders[:2]]
        assert pending(store) == 4  # a filling record and a trace node each
        backup = edge("backup", "--config", str(config_path), "--json")
        assert backup.returncode == 0, backup.stdout + backup.stderr
        name = json.loads(backup.stdout)["name"]
        head = json.loads(backup.stdout)["entries"]
        city.refuse(False)
        after_backup = [fill_one(sim, store, c) for c in cylinders[2:4]]
        wait_for(lambda: pending(store) == 0, "every record to reach the city")
        assert {r["requestId"] for r in city.records("filling")} == set(before_backup + after_backup)
        # The card dies: the daemon with it, every file of the store gone.
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
        shutil.rmtree(store.parent)

        restored = edge("restore", name, "--config", str(config_path), "--json")
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert json.loads(restored.stdout)["pending_uploads"] == 4
        assert completed(store) == before_backup
        daemon = start_daemon(config_path, log)
        wait_started(daemon, store, 2, log)
        # The four rows pending in the backup went again under their keys; the city already had them.
        wait_for(lambda: pending(store) == 0, "the restored outbox to drain")
        after_restore = fill_one(sim, store, cylinders[4])
        wait_for(lambda: pending(store) == 0, "the new fill's records to reach the city")

        # The restored station has no backup yet: said on its status page and in its metrics.
        state = json.loads(status_page(status_port, "/api/status"))["backup"]
        assert state["ok"] is False and state["problem"] == "no backup has been made yet"
        assert "edge_backup_ok 0.0" in status_page(status_port, "/metrics")
        again = edge("backup", "--config", str(config_path))
        assert again.returncode == 0, again.stdout + again.stderr
        assert json.loads(status_page(status_port, "/api/status"))["backup"]["ok"] is True
        assert "edge_backup_ok 1.0" in status_page(status_port, "/metrics")

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
        verify = edge("verify", "--full", "--config", str(config_path))
        assert verify.returncode == 0, verify.stdout + verify.stderr
        # The chain went on from the backup's head: the restore is its next entry.
        assert read(store, f"SELECT kind FROM journal WHERE seq = {head + 1}") == [("store_restored",)]

        everything = before_backup + after_backup + [after_restore]
        for kind in ("filling", "trace"):
            sent = [r["requestId"] for r in city.records(kind)]
            assert len(sent) == len(set(sent)) == 5, f"{kind} records at the city: {sent}"
        assert {r["requestId"] for r in city.records("filling")} == set(everything)
        assert city.duplicates >= 4  # the re-sent rows, absorbed by their keys
        # The restored store's own rows (the fills before the backup and after the restore), all
        # delivered, none dead-lettered; the rows of the fills in between died with the card.
        assert uploads(store) == {"pending": 0, "sent": 6, "dead": 0}
        # A city that ignores our key said "already exists": those rows are journalled as delivered that way.
        duplicates = read(store, "SELECT count(*) FROM journal WHERE kind = 'upload_duplicate'")[0][0]
        assert duplicates == (4 if city_keys == "natural key only" else 0)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        sim.stop()
        sshd.stop()
