"""The CLI as a Unix tool: options anywhere, one-line errors with exit codes, no tracebacks, no
store created by a read-only command, filters that refuse nonsense, output fit for a pipe."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from edge.config import load_config
from edge.daemon.station import open_store

from .conftest import write_config
from .test_manager_tools import DAY, edge, fill

EDGE = [sys.executable, "-m", "edge.cli"]


def station(tmp_path: Path) -> Path:
    config = write_config(tmp_path)
    store = open_store(load_config(config))
    try:
        for n in range(40):
            fill(store, n, "A", DAY, "张伟", "ok", 14.5)
    finally:
        store.close()
    return config


def test_config_and_json_before_or_after_the_subcommand(tmp_path: Path) -> None:
    config = str(station(tmp_path))
    before = edge("--config", config, "--json", "status")
    after = edge("status", "--config", config, "--json")
    mixed = edge("--json", "status", "--config", config)
    assert before.returncode == after.returncode == mixed.returncode == 0, before.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout) == json.loads(mixed.stdout)
    assert json.loads(edge("--config", config, "--json", "check-config").stdout)["ok"] is True
    human = edge("--config", config, "status").stdout
    assert "+08:00" in human and "T" in human.split("lane A", 1)[1]  # lane activity in Shanghai time


def test_errors_are_one_line_with_an_exit_code_and_json_when_asked(tmp_path: Path) -> None:
    config = str(station(tmp_path))
    usage = edge("--json", "records", "--config", config, "--lane")
    assert usage.returncode == 2 and json.loads(usage.stderr)["exit_code"] == 2 and "--lane" in json.loads(usage.stderr)["error"]
    missing_dir = edge("export", "--config", config, "-o", str(tmp_path / "missing-dir" / "x.xlsx"))
    assert missing_dir.returncode == 2 and "does not exist" in missing_dir.stderr
    assert "Traceback" not in missing_dir.stderr and len(missing_dir.stderr.strip().splitlines()) == 1
    not_a_store = tmp_path / "junk.db"
    not_a_store.write_bytes(b"this is not sqlite" * 100)
    other = write_config(tmp_path, lambda raw: raw["store"].update(path=str(not_a_store)))
    junk = edge("status", "--config", str(other), "--json")
    assert junk.returncode == 1 and "Traceback" not in junk.stderr and json.loads(junk.stderr)["ok"] is False


def test_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    config = str(station(tmp_path))
    proc = subprocess.Popen([*EDGE, "records", "--config", config], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| head -0`: the reader is gone before the first line
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and stderr == ""


def test_read_only_commands_never_create_a_store(tmp_path: Path) -> None:
    config = write_config(tmp_path, lambda raw: raw["store"].update(path=str(tmp_path / "wrong" / "station.db")))
    for command in (["status"], ["verify"], ["records"], ["report", "daily"], ["sync", "status"], ["cache", "show", "X"]):
        result = edge(*command, "--config", str(config))
        assert result.returncode == 1 and "no station store there" in result.stderr, (command, result.stderr)
    assert not (tmp_path / "wrong").exists()


def test_read_only_commands_do_not_migrate(tmp_path: Path) -> None:
    import sqlite3

    config = write_config(tmp_path)
    db = load_config(config).store.path
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    result = edge("status", "--config", str(config))
    assert result.returncode == 1 and "schema version 1" in result.stderr and "start the daemon" in result.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()


def test_bad_filters_are_refused(tmp_path: Path) -> None:
    config = str(station(tmp_path))
    for args, says in (
        (["--lane", "Z"], "no lane 'Z' in the config (lanes: A, B)"),
        (["--since", "2026-11-21", "--until", "2026-11-20"], "is after --until"),
        (["--date", "2026-11-20", "--since", "2026-11-19"], "--date is one day"),
        (["--limit", "0"], "expected a whole number of 1 or more"),
    ):
        result = edge("records", "--config", config, *args)
        assert result.returncode == 2 and says in result.stderr, (args, result.stderr)
        assert result.stdout == ""
    assert edge("export", "--config", config, "--lane", "Z", "-o", str(tmp_path / "x.csv")).returncode == 2


def test_staff_remove_sticks_for_someone_in_the_config(tmp_path: Path) -> None:
    config = str(station(tmp_path))
    edge("staff", "add", "op-chen", "陈静", "--config", config)
    assert edge("staff", "assign", "A", "--operator", "op-chen", "--checker", "chk-wang", "--config", config).returncode == 0
    removed = edge("staff", "remove", "op-zhang", "--config", config)
    assert removed.returncode == 0 and "still listed in the config" in removed.stdout
    listing = json.loads(edge("staff", "list", "--config", config, "--json").stdout)
    assert {s["id"]: s["active"] for s in listing["staff"]}["op-zhang"] == 0
    refused = edge("staff", "assign", "B", "--operator", "op-zhang", "--checker", "chk-wang", "--config", config)
    assert refused.returncode == 2 and "not registered" in refused.stderr
    assert edge("staff", "add", "op-zhang", "张伟", "--config", config).returncode == 0
    listing = json.loads(edge("staff", "list", "--config", config, "--json").stdout)
    assert {s["id"]: s["active"] for s in listing["staff"]}["op-zhang"] == 1


def test_any_identifier_finds_the_cylinder(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from edge.store import Store

    config = station(tmp_path)
    store = Store(load_config(config).store.path)
    store.upsert_cylinders([{"id": "CYL001", "owner_unit": "X", "medium": "G13", "status": "在用", "info_code": "CQ900001",
                             "qr_content": "https://qp.example.cn/trace?code=CQ900001"}], datetime.now(UTC))
    store.close()
    by_id = edge("cache", "show", "CYL001", "--config", str(config), "--json")
    by_code = edge("cache", "show", "CQ900001", "--config", str(config), "--json")
    assert by_id.returncode == by_code.returncode == 0, by_id.stderr
    assert json.loads(by_id.stdout)["cylinder"]["id"] == json.loads(by_code.stdout)["cylinder"]["id"] == "CYL001"
    rows = json.loads(edge("records", "--cylinder", "CQ900001", "--config", str(config), "--json").stdout)
    assert [r["id"] for r in rows] == ["fill-001"]
    absent = edge("cache", "show", "NOPE-404", "--config", str(config))
    assert absent.returncode == 1 and "not in the cache" in absent.stdout


def test_status_loads_no_driver_sync_or_export_library(tmp_path: Path) -> None:
    """What keeps `edge status` quick to start (bench/cli_import.py measures it)."""
    config = station(tmp_path)
    probe = ("import sys; from edge.cli import main; code = main(['status', '--config', sys.argv[1]]);"
             "heavy = [m for m in ('pymodbus', 'requests', 'openpyxl', 'serial', 'pydantic', 'edge.config.model', 'interlock.fill', 'edge.status.server', 'edge.daemon.station') if m in sys.modules];"
             "print(heavy, file=sys.stderr); raise SystemExit(code)")
    result = subprocess.run([sys.executable, "-c", probe, str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "[]", result.stderr


def test_import_problems_are_summarised_and_progress_drawn_only_on_a_terminal(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    rows = ["ID,使用单位名称,充装介质,使用状态,颜色"] + [f"P{n},X,G13,在用,red" for n in range(3000)]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    piped = edge("cache", "import", str(path), "--config", str(config))
    assert piped.returncode == 1 and "skipped 3000" in piped.stdout
    assert piped.stderr.strip().splitlines() == [f"{path}: unknown field '颜色': 3000 lines (2, 3, 4 and 2997 more)"]

    # On a terminal: a progress line, redrawn in place, a bounded number of times.
    good = tmp_path / "good.csv"
    good.write_text("\n".join(["ID,使用单位名称,充装介质,使用状态"] + [f"G{n},X,G13,在用" for n in range(3000)]) + "\n",
                    encoding="utf-8")
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([*EDGE, "cache", "import", str(good), "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    drawn = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
        elif proc.poll() is not None:
            break
    os.close(controller)
    assert proc.wait(timeout=30) == 0
    assert b"\r" in drawn and b"rows 3000" in drawn
    assert drawn.count(b"\r") <= 20  # throttled, not one redraw per row
