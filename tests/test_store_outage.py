"""A full or read-only disk is an outage: scans are refused with STORE_UNAVAILABLE, no valve
opens, no lane locks, and the lanes serve again on their own once writes succeed; the uploader
backs off. Shown with SQLite's max_page_count (anywhere) and a small real tmpfs (where the test
may mount one)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from edge.config import load_config
from edge.lanes.lane import utc_now
from edge.store import Store, StoreUnavailable
from edge.store.outbox import Outbox
from interlock.fill import Phase
from simulators.city import CitySim
from sync.profile import load_profile
from sync.uploader import RetryPolicy, Uploader

from .city_support import client_for, finished_fills, open_station_store, start_sim
from .conftest import SimStation
from .test_crash_restart import EDGE, journal_count, simulated_hardware, start_daemon, wait_for


def fill_store(store: Store) -> None:
    """SQLite refuses to grow the database on this connection (the limit is per connection): to
    its writes the disk is full. VACUUM first packs every page and empties the free list, so no
    journal entry fits in the slack of a half-empty page."""
    with store._lock:
        store._conn.execute("VACUUM")
        current = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {current}")
    # Then the slack left in the pages journal entries go to, as a disk fills with small writes.
    failures = 0
    while failures < 6:
        for kind, lane in (("scan", "A"), ("store_available", None)):
            try:
                store.journal(utc_now(), kind, {}, lane=lane)
                failures = 0
            except StoreUnavailable:
                failures += 1


def set_read_only(store: Store, on: bool) -> None:
    with store._lock:
        store._conn.execute(f"PRAGMA query_only = {int(on)}")


def free_store(store: Store) -> None:
    with store._lock:
        store._conn.execute("PRAGMA max_page_count = 1073741823")


def valve_opened(s: SimStation, lane: str, since: int) -> bool:
    board = s.modbus(lane).board
    return any(on and coil == s.modbus(lane).coil for _, coil, on in board.writes[since:])


def _outage_then_recovery(s: SimStation, make_full: Callable[[], None], make_free: Callable[[], None]) -> float:
    """Scans while full are refused and open nothing; returns seconds from space returning to the
    lane accepting a scan again."""
    assert s.station.store is not None
    ok = [s.cylinder(skip=n) for n in range(3)]
    scrapped = s.cylinder("SCRAPPED")
    writes = len(s.modbus("A").board.writes)
    make_full()
    # The first write that fails tells the lane; from then on every scan is refused up front.
    first = s.scan("A", ok[0].row["qr_content"])
    s.wait_for(lambda: s.station.store.outage is not None, "the outage noticed")  # type: ignore[union-attr]
    for code in (ok[0].row["qr_content"], scrapped.row["qr_content"], ok[1].row["qr_content"]):
        verdict = s.scan("A", code)
        assert not verdict["accepted"] and verdict["reasons"] == ["STORE_UNAVAILABLE"], verdict
    lane = s.station.lanes["A"]
    assert lane.state.phase is not Phase.LOCKED, lane.state
    time.sleep(0.3)
    assert not valve_opened(s, "A", writes), f"a valve opened while the store could not write (first scan {first})"

    freed = time.monotonic()
    make_free()
    s.wait_for(lambda: s.station.store.outage is None, "the store writable again", timeout=10)  # type: ignore[union-attr]
    serving = time.monotonic() - freed
    s.modbus("A").model.place(ok[2].row["tare_kg"] + 0.1)
    verdict = s.scan("A", ok[2].row["qr_content"])
    assert verdict["accepted"], verdict
    ended = s.wait("A", "fill_end", timeout=30)
    assert ended["status"] == "complete", ended
    assert s.station.store.verify().ok and s.station.store.verify_records().ok
    return serving


def test_max_page_count_outage_refuses_scans_and_recovers(make_station: Callable[..., SimStation]) -> None:
    s = make_station()
    assert s.station.store is not None
    serving = _outage_then_recovery(s, lambda: fill_store(s.station.store), lambda: free_store(s.station.store))  # type: ignore[arg-type]
    print(f"\nmax_page_count: lanes serving {serving:.2f} s after space returned")
    assert serving < 5.0


def test_a_fill_cut_short_by_a_full_store_is_recorded_once_it_can_be(make_station: Callable[..., SimStation]) -> None:
    s = make_station()
    store = s.station.store
    assert store is not None
    verdict = s.start_fill("A", s.cylinder())
    fill_store(store)
    s.wait_valve("A", False, timeout=30)  # at cut-off at the latest, and then its record fails
    s.wait_for(lambda: store.outage is not None, "the outage noticed", timeout=30)
    assert s.station.lanes["A"].state.phase is not Phase.LOCKED
    free_store(store)
    ended = s.wait("A", "fill_end", timeout=10)
    row = s.fill_row(verdict["fill_id"])
    assert ended["fill_id"] == verdict["fill_id"] and row["status"] in ("aborted", "complete"), row
    if row["status"] == "aborted":
        assert row["cause"] == "STORE_UNAVAILABLE"
    assert store.verify_records().ok


# A real filesystem ---------------------------------------------------------------------------------


@contextmanager
def small_tmpfs(path: Path, size: str = "6m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_disk(directory: Path) -> Path:
    ballast = directory / "ballast"
    # Unbuffered: a buffered file keeps the part of the last write the disk refused and raises
    # ENOSPC again when it is closed (whether it does depends on how much space was left).
    with ballast.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return ballast


def test_full_tmpfs_outage_refuses_scans_and_recovers(make_station: Callable[..., SimStation], tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        s = make_station(lambda raw: raw["store"].update(path=str(disk / "station.db")))
        ballast: list[Path] = []
        serving = _outage_then_recovery(s, lambda: ballast.append(fill_disk(disk)), lambda: ballast[0].unlink())
        print(f"\ntmpfs: lanes serving {serving:.2f} s after space returned")
        assert serving < 5.0
        s.station.stop()  # before the unmount


def test_sigterm_on_a_full_disk_is_one_line_and_an_exit_code(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        sim, config_path, config, cylinder = simulated_hardware(tmp_path)
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        shutil.copy(config.store.path, disk / "station.db")
        raw["store"]["path"] = str(disk / "station.db")
        config_path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        daemon = start_daemon(config_path)
        try:
            moved = load_config(config_path)
            wait_for(lambda: journal_count(moved, "daemon_start") == 1, what="daemon start")
            fill_disk(disk)
            sim.scanners["A"].scan(cylinder.row["qr_content"])  # its record fails: the daemon knows
            time.sleep(1.0)
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(20)
            err = daemon.stderr.read().decode() if daemon.stderr else ""
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
            sim.stop()
        assert code == 4, err
        assert "Traceback" not in err, err
        assert not sim.station_for("A").valve_on()


def test_a_store_that_cannot_be_opened_is_one_line_and_an_exit_code(tmp_path: Path) -> None:
    sim, config_path, config, _ = simulated_hardware(tmp_path)
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    raw["store"]["path"] = str(tmp_path)  # a directory, not a database
    config_path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    try:
        for args in (["records"], ["verify"], ["run"]):
            result = subprocess.run([*EDGE, *args, "--config", str(config_path)], capture_output=True, text=True, timeout=60)
            assert result.returncode == 4, (args, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr and "cannot be opened" in result.stderr, result.stderr
    finally:
        sim.stop()


# The uploader ------------------------------------------------------------------------------------------


@pytest.fixture
def city(city_tls: tuple[object, Path]) -> Iterator[CitySim]:
    sim = start_sim(load_profile("chongqing"), city_tls)  # type: ignore[arg-type]
    yield sim
    sim.stop()


def test_uploader_backs_off_while_it_cannot_mark_rows_sent(city: CitySim, city_tls: tuple[object, Path], tmp_path: Path) -> None:
    store = open_station_store(tmp_path / "station.db")
    finished_fills(store, [next(iter(city.registry))])
    # Read-only, the other face of this outage: marking a delivered row sent fails every time
    # (on a full disk an UPDATE fails the same way once the WAL cannot grow).
    set_read_only(store, True)
    policy = RetryPolicy(initial_s=0.2, max_s=4.0, jitter_s=0.0)
    uploader = Uploader(client_for(city, city_tls[1]), Outbox(store), policy)
    stop = threading.Event()
    thread = threading.Thread(target=uploader.run, args=(stop, 0.5), daemon=True)
    calls: list[float] = []
    started = time.monotonic()
    thread.start()
    try:
        seen = city.calls
        while time.monotonic() - started < 9.0:
            if city.calls != seen:
                calls += [time.monotonic()] * (city.calls - seen)
                seen = city.calls
            time.sleep(0.005)
        submits = len(calls)
        set_read_only(store, False)
        wait_for(lambda: Outbox(store).pending_count() == 0, timeout=10, what="the row marked sent")
    finally:
        stop.set()
        thread.join(10)
        store.close()
    gaps = [round(b - a, 2) for a, b in zip(calls, calls[1:]) if b - a > 0.1]  # a login rides with the first submit
    print(f"\nuploader while the store is read-only: {submits} city calls in 9 s, gaps {gaps} s (idle_s 0.5 without back-off)")
    # Without back-off: a round every 0.5 s, about 18. With it: 0.5, 1, 2, 4, 4.
    assert submits <= 8, gaps
    assert gaps == sorted(gaps) and gaps[-1] >= 2.0, gaps


def _get(s: SimStation, path: str) -> str:
    import urllib.request

    assert s.station.status is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{s.station.status.port}{path}", timeout=5) as response:
        return response.read().decode()


def test_low_space_and_outage_show_on_the_status_page_and_in_metrics(make_station: Callable[..., SimStation]) -> None:
    import json

    # A floor above any disk's free space: the warning is up from the start.
    s = make_station(lambda raw: raw["store"].update(min_free_mb=10**9))
    status = json.loads(_get(s, "/api/status"))["store"]
    assert status["writable"] and status["low_space"] and status["free_bytes"] > 0, status
    metrics = _get(s, "/metrics")
    assert "edge_store_low_space 1" in metrics and "edge_store_writable 1" in metrics
    assert s.station.store is not None
    fill_store(s.station.store)
    status = json.loads(_get(s, "/api/status"))["store"]
    assert not status["writable"] and "full" in status["error"], status
    assert "edge_store_writable 0" in _get(s, "/metrics")
    free_store(s.station.store)
    s.wait_for(lambda: "edge_store_writable 1" in _get(s, "/metrics"), "the store writable again on /metrics", timeout=10)
