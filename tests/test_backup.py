"""`edge backup` and `edge restore` against a real SFTP server (Debian's sshd on a loopback port)
and a local directory standing for the USB disk: the copy verifies, the rotation keeps the right
files, an unreachable or unknown server fails loudly and loses nothing, and a damaged backup or a
live store is never restored over."""

from __future__ import annotations

import gzip
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.backup import names
from edge.backup.restore import restore
from edge.backup.run import backup
from edge.backup.snapshot import BackupError
from edge.config import ConfigError
from edge.store import backup_state as state
from edge.daemon.instance import InstanceLock
from tests.backup_support import backup_config, edge, history_store
from tests.history_support import open_history_store
from tests.ssh_support import SshServer, free_port, start_sshd


@pytest.fixture
def sshd(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = start_sshd(tmp_path / "ssh")
    yield server
    server.stop()


def fills(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM fills").fetchone()[0])
    finally:
        conn.close()


# The rotation -------------------------------------------------------------------------------------


def test_rotation_keeps_the_newest_of_each_recent_day_and_month() -> None:
    start = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)
    moments = [start + timedelta(days=d, hours=h) for d in range(400) for h in (0, 12)]  # two a day for 400 days
    kept = names.keep(moments, daily=14, monthly=12)
    newest = max(moments)
    days = sorted({m.date() for m in moments}, reverse=True)[:14]
    daily = {max(m for m in moments if m.date() == day) for day in days}
    months = sorted({(m.year, m.month) for m in moments}, reverse=True)[:12]
    monthly = {max(m for m in moments if (m.year, m.month) == month) for month in months}
    assert kept == daily | monthly | {newest}
    # The last day is 4 February: February's and January's newest are among the 14 days' already.
    assert len(kept) == 14 + 10
    assert names.keep([], 14, 12) == set()
    assert names.keep([start], 1, 0) == {start}


def test_rotation_on_a_target_deletes_only_this_stations_old_backups(tmp_path: Path) -> None:
    store = tmp_path / "var" / "station.db"
    history_store(store, fills=5)
    usb = tmp_path / "usb"
    usb.mkdir()
    _, config = backup_config(tmp_path, store, {"local_dir": str(usb), "keep_daily": 3, "keep_monthly": 2})
    station = names.station_slug(config.station.unit_code)
    now = datetime(2026, 6, 15, 3, 0, tzinfo=UTC)
    old = [now - timedelta(days=d) for d in range(1, 90)]
    for moment in old:
        (usb / names.backup_name(station, moment)).write_bytes(b"an older backup")
    foreign = [names.backup_name("another-station", now - timedelta(days=40)), "notes.txt", "station-x.db.gz"]
    for name in foreign:
        (usb / name).write_text("not ours")
    outcome = backup(config, now=now)
    assert outcome.ok, outcome.as_data()
    left = {p.name for p in usb.iterdir()}
    ours = {names.backup_name(station, m) for m in [now, *old]}
    expected = {names.backup_name(station, m) for m in names.keep([now, *old], 3, 2)}
    assert left & ours == expected
    assert names.backup_name(station, now) in expected and len(expected) == 3 + 1  # 3 days; May's newest
    assert set(foreign) <= left  # never another station's, never a person's file
    assert sorted(outcome.deleted[f"local {usb}"]) == sorted(ours - expected)


# Backup and restore -------------------------------------------------------------------------------


def test_backup_to_usb_and_sftp_then_restore_by_name_on_a_fresh_machine(tmp_path: Path, sshd: SshServer) -> None:
    store = tmp_path / "var" / "station.db"
    history_store(store, fills=40)
    usb = tmp_path / "usb"
    usb.mkdir()
    config_path, config = backup_config(tmp_path, store, {"local_dir": str(usb), "sftp": sshd.target()})
    done = edge("backup", "--config", str(config_path), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["ok"] and outcome["fills"] == 40 and outcome["failed"] == {}
    assert 0 < outcome["compressed_bytes"] < outcome["raw_bytes"]
    name = outcome["name"]
    assert (usb / name).read_bytes() == (sshd.root / name).read_bytes()
    assert not [p for p in sshd.root.iterdir() if p.name != name]  # no partial file left behind
    status = json.loads(edge("status", "--config", str(config_path), "--json").stdout)
    assert status["backup"]["ok"] and status["backup"]["name"] == name
    listed = json.loads(edge("backup", "--list", "--config", str(config_path), "--json").stdout)
    assert {row["target"] for row in listed["backups"] if row["name"] == name} == {f"local {usb}", f"sftp {sshd.user}@127.0.0.1:{sshd.port} {sshd.root}"}

    # A fresh machine: a clean directory, the same config, no USB disk; the backup is on the server.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    fresh_config, _ = backup_config(fresh, fresh / "state" / "station.db", {"sftp": sshd.target()})
    done = edge("restore", name, "--config", str(fresh_config), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    restored = json.loads(done.stdout)
    assert restored["fills"] == 40 and restored["source"].startswith("sftp ")
    verify = edge("verify", "--full", "--config", str(fresh_config))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    conn = sqlite3.connect(fresh / "state" / "station.db")
    kinds = [row[0] for row in conn.execute("SELECT kind FROM journal ORDER BY seq DESC LIMIT 2")]
    conn.close()
    assert "store_restored" in kinds  # the chain went on from the backup's head
    assert fills(fresh / "state" / "station.db") == 40


def test_a_backup_taken_while_fills_are_written_is_consistent(tmp_path: Path) -> None:
    import threading

    from tests.history_support import build

    store_path = tmp_path / "var" / "station.db"
    history_store(store_path, fills=20)
    usb = tmp_path / "usb"
    usb.mkdir()
    _, config = backup_config(tmp_path, store_path, {"local_dir": str(usb)})
    stop = threading.Event()

    def writer() -> None:
        store = open_history_store(store_path)
        try:
            for _ in build(store, 2000, first=20, ack_every=5):
                if stop.is_set():
                    return
        finally:
            store.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        outcomes = [backup(config, now=datetime(2026, 6, 1, 3, n, tzinfo=UTC)) for n in range(3)]
    finally:
        stop.set()
        thread.join()
    assert all(o.ok for o in outcomes), [o.as_data() for o in outcomes]
    assert len({o.fills for o in outcomes}) > 1, "the writer never wrote between the copies"


# Hostile and careless cases -----------------------------------------------------------------------


def test_an_unreachable_server_fails_the_backup_loudly_and_loses_nothing(tmp_path: Path) -> None:
    store = tmp_path / "var" / "station.db"
    history_store(store, fills=10)
    usb = tmp_path / "usb"
    usb.mkdir()
    dead = {"host": "127.0.0.1", "port": free_port(), "user": "backup", "key_file": str(tmp_path / "none"),
            "known_hosts": str(tmp_path / "none"), "path": "/backups", "timeout_s": 2}
    (tmp_path / "none").write_text("")
    config_path, _ = backup_config(tmp_path, store, {"local_dir": str(usb), "sftp": dead})
    done = edge("backup", "--config", str(config_path))
    assert done.returncode == 1
    assert "unreachable" in done.stdout and f"127.0.0.1:{dead['port']}" in done.stdout
    assert len(list(usb.glob("*.db.gz"))) == 1  # the disk that was there got its copy
    status = edge("status", "--config", str(config_path), "--json")
    backup_state = json.loads(status.stdout)["backup"]
    assert not backup_state["ok"] and "unreachable" in backup_state["problem"]
    human = edge("status", "--config", str(config_path)).stdout
    assert "backup           PROBLEM: the last backup failed" in human
    assert fills(store) == 10
    assert edge("verify", "--full", "--config", str(config_path)).returncode == 0


def test_an_unplugged_usb_disk_is_a_failure_not_a_directory_on_the_card(tmp_path: Path) -> None:
    store = tmp_path / "var" / "station.db"
    history_store(store, fills=3)
    config_path, config = backup_config(tmp_path, store, {"local_dir": str(tmp_path / "media" / "usb")})
    outcome = backup(config)
    assert not outcome.ok and "is the USB disk mounted?" in outcome.error_text()
    assert not (tmp_path / "media").exists()
    recorded = state.read(store)
    assert recorded is not None and recorded["last_ok_at"] is None and "USB" in recorded["error"]


def test_a_server_with_another_host_key_is_refused(tmp_path: Path, sshd: SshServer) -> None:
    store = tmp_path / "var" / "station.db"
    history_store(store, fills=3)
    line = sshd.known_hosts.read_text().split()
    other = tmp_path / "known_hosts"
    other.write_text(f"{line[0]} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGrLbRFg0Qv0TArDpLmZu5l7VjxtY9zUgfw0OuYkPaZX\n")
    _, config = backup_config(tmp_path, store, {"sftp": sshd.target(known_hosts=str(other))})
    outcome = backup(config)
    assert not outcome.ok and "host key" in outcome.error_text()
    assert list(sshd.root.iterdir()) == []
    _, unknown = backup_config(tmp_path, store, {"sftp": sshd.target(known_hosts=str(tmp_path / "empty"))})
    (tmp_path / "empty").write_text("")
    outcome = backup(unknown)
    assert not outcome.ok and "known_hosts" in outcome.error_text()


def _damaged(kind: str, good: Path, tmp_path: Path) -> Path:
    bad = tmp_path / "bad" / good.name
    bad.parent.mkdir(exist_ok=True)
    data = good.read_bytes()
    if kind == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "flipped":
        middle = len(data) // 2
        bad.write_bytes(data[:middle] + bytes([data[middle] ^ 0x40]) + data[middle + 1:])
    elif kind == "not gzip":
        bad.write_bytes(b"SQLite format 3\x00" + data[16:])
    else:  # a well-formed archive of a store whose fill was edited after the fact
        raw = tmp_path / "edited.db"
        raw.write_bytes(gzip.decompress(data))
        conn = sqlite3.connect(raw)
        conn.execute("UPDATE fills SET net_kg = net_kg - 1 WHERE rowid = 3")
        conn.commit()
        conn.close()
        bad.write_bytes(gzip.compress(raw.read_bytes()))
    return bad


@pytest.mark.parametrize("kind", ["truncated", "flipped", "not gzip", "edited record"])
def test_a_damaged_backup_is_refused_and_nothing_is_put_in_place(tmp_path: Path, kind: str) -> None:
    store = tmp_path / "var" / "station.db"
    history_store(store, fills=10)
    usb = tmp_path / "usb"
    usb.mkdir()
    _, config = backup_config(tmp_path, store, {"local_dir": str(usb)})
    outcome = backup(config)
    assert outcome.ok
    bad = _damaged(kind, usb / outcome.name, tmp_path)
    target = tmp_path / "fresh" / "state" / "station.db"
    fresh_path, _ = backup_config(tmp_path / "fresh", target, {"local_dir": str(usb)})
    done = edge("restore", str(bad), "--config", str(fresh_path))
    assert done.returncode == 1
    assert "restore refused" in done.stderr
    expected = {"truncated": "truncated or damaged", "flipped": "truncated or damaged", "not gzip": "truncated or damaged",
                "edited record": "does not verify"}[kind]
    assert expected in done.stderr
    assert sorted(p.name for p in target.parent.iterdir()) == ["station.db.lock"]  # no store, no leftovers


def test_restore_never_overwrites_a_store_without_force_nor_under_a_running_daemon(tmp_path: Path) -> None:
    store = tmp_path / "var" / "station.db"
    history_store(store, fills=6)
    usb = tmp_path / "usb"
    usb.mkdir()
    config_path, config = backup_config(tmp_path, store, {"local_dir": str(usb)})
    outcome = backup(config)
    assert outcome.ok
    live = open_history_store(store)
    live.journal(datetime.now(UTC), "note", {"text": "after the backup"})
    live.close()
    before = store.read_bytes()

    lock = InstanceLock(config).acquire()  # the daemon's own lock, as `edge run` holds it
    try:
        with pytest.raises(BackupError, match="daemon"):
            restore(config, str(usb / outcome.name), force=True)
    finally:
        lock.release()
    done = edge("restore", str(usb / outcome.name), "--config", str(config_path))
    assert done.returncode == 1 and "already holds a store" in done.stderr and "--force" in done.stderr
    assert store.read_bytes() == before

    for hostile in ("../" + outcome.name, "/srv/backups/" + outcome.name, "station.db", ""):
        with pytest.raises(BackupError, match="not a backup's name"):  # a name is matched on a target, never joined as a path
            restore(config, hostile, force=True)
    assert store.read_bytes() == before

    forced = restore(config, str(usb / outcome.name), force=True)
    assert forced.moved_aside is not None and Path(forced.moved_aside).read_bytes() == before  # kept, not deleted
    assert fills(store) == 6


def test_a_backup_section_without_a_target_or_with_a_typo_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "var" / "station.db"
    for backup_section, said in (({"keep_daily": 7}, "a target"), ({"local_dir": "/mnt", "keep_dialy": 7}, "keep_dialy"),
                                 ({"local_dir": "/mnt", "keep_daily": 0}, "keep_daily"),
                                 ({"sftp": {"host": "backup.example", "user": "st", "path": "/b"}}, "key_file")):
        with pytest.raises(ConfigError, match=said):
            backup_config(tmp_path, store, backup_section)
