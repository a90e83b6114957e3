"""Who may read and write the store, with the kernel's own permission checks (commands run as other
users): a manager in the service user's group reads the records without root, with the daemon
stopped or running, and writes nothing, not even a verify's checkpoint; anyone else is told plainly
what they lack; a store root created is refused by name, and root does not create one where the
service user keeps it."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import load_config
from edge.daemon.station import open_store

from .conftest import write_config
from .permissions_support import chown_tree, needs_root, run_as, shared_dir, spawned_as
from .test_manager_tools import DAY, edge, fill

pytestmark = needs_root

SERVICE, GROUP, MANAGER, OUTSIDER = 2601, 2601, 2602, 2603  # uids and gid no other test uses
EDGE = [sys.executable, "-m", "edge.cli"]


@pytest.fixture
def station() -> Iterator[Path]:
    """A store of 40 fills, verified once by its owner (a checkpoint), then 5 more fills; owned by
    the service user in a group-readable directory, as the unit leaves it; daemon stopped."""
    with shared_dir() as home:
        config = write_config(home, lambda raw: raw["store"].update(path=str(home / "state" / "station.db")))
        store = open_store(load_config(config))
        try:
            for n in range(40):
                fill(store, n, "A", DAY, "张伟", "ok", 14.5)
            assert store.audit(full=True).ok
            for n in range(40, 45):
                fill(store, n, "A", DAY, "张伟", "ok", 14.5)
        finally:
            store.close()
        config.chmod(0o644)
        chown_tree(home / "state", SERVICE, GROUP)
        out = home / "out"
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        yield config


def _as(uid: int, groups: tuple[int, ...], *args: str) -> subprocess.CompletedProcess[str]:
    return run_as(uid, uid, groups, [*EDGE, *args])


def _files(state: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(state.iterdir())}


def _checkpoints(db: Path) -> int:
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM journal WHERE kind = 'verified'").fetchone()[0]


def test_a_group_member_reads_every_record_with_the_daemon_stopped_and_writes_nothing(station: Path) -> None:
    state = station.parent / "state"
    before = _files(state)
    config = str(station)
    for command in (["status"], ["records"], ["sync", "status"], ["report", "daily", "2026-11-20"],
                    ["report", "shift", "2026-11-20"], ["report", "monthly", "2026-11"],
                    ["export", "-o", str(station.parent / "out" / "ledger.csv")]):
        result = _as(MANAGER, (GROUP,), *command, "--config", config, "--json")
        assert result.returncode == 0, (command, result.stderr)
    records = json.loads(_as(MANAGER, (GROUP,), "records", "--config", config, "--json").stdout)
    assert len(records) == 45
    verify = _as(MANAGER, (GROUP,), "verify", "--config", config)
    assert verify.returncode == 0, verify.stderr
    # Verified from the owner's checkpoint (incrementally), and said that none was recorded.
    assert "since the checkpoint at entry" in verify.stdout and "records OK" in verify.stdout
    assert "checkpoint not recorded: opened read-only" in verify.stdout
    assert _files(state) == before  # not a byte written, no -wal or -shm left behind
    # The owner's verify (a writable run) records the checkpoint the manager's could not.
    owner = _as(SERVICE, (), "verify", "--config", config)
    assert owner.returncode == 0 and "checkpoint not recorded" not in owner.stdout, owner.stderr
    assert _checkpoints(state / "station.db") == 2


def test_a_group_member_reads_while_the_daemon_writes(station: Path) -> None:
    db = station.parent / "state" / "station.db"
    store = open_store(load_config(station))  # the daemon's connection: -wal and -shm exist while it runs
    try:
        for suffix in ("-wal", "-shm"):
            os.chown(f"{db}{suffix}", SERVICE, GROUP)
            os.chmod(f"{db}{suffix}", 0o640)  # as the unit's UMask=0027 makes them
        fill(store, 45, "A", DAY, "李娜", "ok", 14.5)  # committed to the WAL, not yet to the database file
        result = _as(MANAGER, (GROUP,), "records", "--config", str(station), "--json")
        assert result.returncode == 0, result.stderr
        assert {row["operator"] for row in json.loads(result.stdout)} == {"张伟", "李娜"}
        verify = _as(MANAGER, (GROUP,), "verify", "--config", str(station), "--json")
        assert verify.returncode == 0 and json.loads(verify.stdout)["records_checked"]["fills"] == 46, verify.stderr
    finally:
        store.close()


def test_a_verify_read_with_the_daemon_stopped_notices_a_writer_that_started_meanwhile(station: Path) -> None:
    """With no -wal to read through, a manager reads the store as SQLite's immutable: a writer that
    opens it during the check (a daemon starting) would change it under the replay, so the
    verdict is withheld and the manager asked to run it again."""
    db = station.parent / "state" / "station.db"
    script = (
        "import sys\n"
        "from edge.store import Store, StoreUnavailable\n"
        f"store = Store({str(db)!r}, readonly=True)\n"
        "print('immutable' if store.immutable else 'shared', flush=True)\n"
        "sys.stdin.readline()\n"
        "try:\n"
        "    print(store.audit().ok)\n"
        "except StoreUnavailable as exc:\n"
        "    print(exc)\n"
    )
    with spawned_as(MANAGER, MANAGER, (GROUP,), [sys.executable, "-c", script]) as reader:
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().strip() == "immutable", reader.stderr.read() if reader.stderr else ""
        store = open_store(load_config(station))  # the daemon starts, writes and stops again
        try:
            fill(store, 45, "A", DAY, "李娜", "ok", 14.5)
        finally:
            store.close()
        reader.stdin.write("go\n")
        reader.stdin.flush()
        said = reader.stdout.readline().strip()
    assert "began writing the store during the check; run it again" in said, said
    # Run again, it reads the store as it now stands.
    again = _as(MANAGER, (GROUP,), "verify", "--config", str(station), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["records_checked"]["fills"] == 46, again.stderr


def test_a_user_outside_the_group_is_told_plainly(station: Path) -> None:
    for command in (["status"], ["records"], ["verify"]):
        result = _as(OUTSIDER, (), *command, "--config", str(station))
        assert result.returncode == 4, (command, result.stderr)
        assert "permission denied" in result.stderr and "member of group station-edge" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_user_who_may_not_read_the_config_is_told_plainly(station: Path) -> None:
    os.chown(station, 0, GROUP)
    station.chmod(0o640)  # as install.sh leaves /etc/station-edge/station.yaml
    result = _as(OUTSIDER, (), "status", "--config", str(station))
    assert result.returncode == 2 and "permission denied: 2603 may not read the config" in result.stderr, result.stderr
    assert "member of group station-edge" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert _as(MANAGER, (GROUP,), "status", "--config", str(station)).returncode == 0


def test_a_store_root_created_is_refused_by_name_not_as_a_readonly_database() -> None:
    """Root ran the first import, so the store is root's; the daemon's user then cannot write it."""
    with shared_dir() as home:
        state = home / "state"
        config = write_config(home, lambda raw: raw["store"].update(path=str(state / "station.db")))
        config.chmod(0o644)
        store = open_store(load_config(config))  # as root
        store.close()
        os.chown(state, SERVICE, GROUP)  # the unit's StateDirectory; the store in it stays root's
        result = _as(SERVICE, (), "inflight-reset", "A", "--config", str(config))
        assert result.returncode == 4, result.stderr
        assert "station.db is owned by root: run as station-edge" in result.stderr, result.stderr
        assert "readonly database" not in result.stderr


def test_root_does_not_create_a_store_in_the_service_users_directory() -> None:
    with shared_dir() as home:
        state = home / "state"
        state.mkdir()
        os.chown(state, SERVICE, GROUP)
        config = write_config(home, lambda raw: raw["store"].update(path=str(state / "station.db")))
        ledger = home / "ledger.csv"
        ledger.write_text("id,owner_unit,medium,status,tare_kg,fill_mass_kg,volume_l\n", encoding="utf-8")
        result = edge("cache", "import", str(ledger), "--config", str(config))
        assert result.returncode == 4 and "run as 2601" in result.stderr, result.stderr
        assert not (state / "station.db").exists()
