"""The shift and monthly reports' commands: which shift is meant, and a refusal when the records
differ from the journal (the documents themselves: test_documents_render.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge.config import ConfigError, load_config
from edge.config.reports import ShiftConfig
from edge.daemon.station import open_store
from edge.manager import shift

from .conftest import write_config
from .documents_support import busy_day_station
from .systemd_support import unit_command, unit_service
from .test_manager_tools import edge

TZ = ZoneInfo("Asia/Shanghai")
DAY, NIGHT = ShiftConfig(name="早班", start=time(8), end=time(20)), ShiftConfig(name="夜班", start=time(20), end=time(8))


def test_a_night_shift_ends_the_next_morning_and_the_last_ended_shift_is_the_one_meant() -> None:
    night = shift.window(NIGHT, datetime(2026, 11, 20).date(), TZ)
    assert (night.start.isoformat(), night.end.isoformat()) == ("2026-11-20T20:00:00+08:00", "2026-11-21T08:00:00+08:00")
    at_nine = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai: the night shift ended at 08:00
    assert shift.last_ended([DAY, NIGHT], TZ, at_nine) == night
    # A timer that last ran two days ago catches up every shift that ended since, oldest first.
    since = datetime(2026, 11, 19, 1, 0, tzinfo=UTC)
    assert [w.slug for w in shift.ended_between([DAY, NIGHT], TZ, since, at_nine)] == [
        "2026-11-19-早班", "2026-11-19-夜班", "2026-11-20-早班", "2026-11-20-夜班"]


def test_reports_config_refuses_what_would_mislead(tmp_path: Path) -> None:
    def with_reports(reports: dict) -> Path:  # type: ignore[type-arg]
        return write_config(tmp_path, lambda raw: raw.update(reports=reports))

    ok = load_config(with_reports({"printer": "Office_A4", "shifts": [{"name": "早班", "start": "08:00", "end": "20:00"}]}))
    assert ok.reports.printer == "Office_A4" and ok.reports.shifts[0].end == time(20)
    for reports, words in (
        ({"shifts": [{"name": "早班", "start": 480, "end": "20:00"}]}, 'quoted "HH:MM"'),  # YAML's 08:00 unquoted
        ({"shifts": [{"name": "早班", "start": "08:00", "end": "08:00"}]}, "end differs from its start"),
        ({"shifts": [{"name": "a", "start": "08:00", "end": "20:00"}, {"name": "a", "start": "20:00", "end": "08:00"}]},
         "distinct names"),
        ({"shifts": [{"name": "../早班", "start": "08:00", "end": "20:00"}]}, "a shift name"),  # it names files
        ({"printer": "-o evil"}, "CUPS printer name"),
        ({"paper": "letter"}, "paper"),
    ):
        with pytest.raises(ConfigError, match=words):
            load_config(with_reports(reports))


def test_shift_and_monthly_reports_are_refused_when_the_records_differ_from_the_journal(tmp_path: Path) -> None:
    config = busy_day_station(tmp_path, per_lane=2)
    with sqlite3.connect(load_config(config).store.path) as conn:
        conn.execute("UPDATE fills SET net_kg = 20.0 WHERE rowid = (SELECT min(rowid) FROM fills WHERE net_kg IS NOT NULL)")
    for name, command in (("shift", ["report", "shift", "2026-11-20"]), ("monthly", ["report", "monthly", "2026-11"])):
        pdf, xlsx = tmp_path / f"{name}.pdf", tmp_path / f"{name}.xlsx"
        refused = edge(*command, "--config", str(config), "--pdf", str(pdf), "--xlsx", str(xlsx))
        assert refused.returncode == 3 and "edge verify" in refused.stderr and "net_kg" in refused.stderr, refused.stderr
        assert not pdf.exists() and not xlsx.exists()
        forced = edge(*command, "--config", str(config), "--pdf", str(pdf), "--xlsx", str(xlsx), "--allow-unverified")
        assert forced.returncode == 0 and "UNVERIFIED" in forced.stdout, forced.stderr
        page = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert "UNVERIFIED" in page
        from openpyxl import load_workbook

        assert "UNVERIFIED" in load_workbook(xlsx).active["A1"].value


def test_the_shift_command_says_which_shift_it_needs(tmp_path: Path) -> None:
    config = write_config(tmp_path, lambda raw: raw.update(reports={"shifts": [
        {"name": "早班", "start": "08:00", "end": "20:00"}, {"name": "夜班", "start": "20:00", "end": "08:00"}]}))
    unknown = edge("report", "shift", "2026-11-20", "--shift", "午班", "--config", str(config))
    assert unknown.returncode == 2 and "早班, 夜班" in unknown.stderr
    which = edge("report", "shift", "2026-11-20", "--config", str(config))
    assert which.returncode == 2 and "--shift 早班 or --shift 夜班" in which.stderr
    half = edge("report", "shift", "--from", "08:00", "--config", str(config))
    assert half.returncode == 2 and "--from and --to go together" in half.stderr
    open_store(load_config(config)).close()  # a station that has started once, and filled nothing yet
    text = edge("report", "shift", "2026-11-20", "--shift", "夜班", "--config", str(config))
    assert text.returncode == 0 and "班次：夜班 2026-11-20 20:00 至 2026-11-21 08:00" in text.stdout


FAKE_LP = """#!/bin/sh
# A stand-in for CUPS' lp: records its arguments one per line, answers as lp does; refuses while
# the file 'offline' is beside it (a printer switched off).
here=$(dirname "$0")
[ -e "$here/offline" ] && { echo "lp: Error - The printer or class does not exist." >&2; exit 1; }
for arg in "$@"; do printf '%s\\n' "$arg"; done >> "$here/lp.calls"
echo >> "$here/lp.calls"
echo "request id is Office-$(wc -l < "$here/lp.calls") (1 file(s))"
"""


def _with_reports(config: Path, folder: Path, printer: str | None) -> None:
    reports = {"folder": str(folder), "shifts": [{"name": "早班", "start": "08:00", "end": "20:00"},
                                                 {"name": "夜班", "start": "20:00", "end": "08:00"}]}
    if printer:
        reports["printer"] = printer
    import yaml

    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["reports"] = reports
    config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_reports_due_writes_the_days_documents_and_shift_records_once_and_prints_them(tmp_path: Path) -> None:
    config = busy_day_station(tmp_path, per_lane=3)
    folder, bin_dir = tmp_path / "reports", tmp_path / "bin"
    _with_reports(config, folder, "Office")
    bin_dir.mkdir()
    (bin_dir / "lp").write_text(FAKE_LP, encoding="utf-8")
    (bin_dir / "lp").chmod(0o755)
    (bin_dir / "offline").touch()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}

    # 20:05: the day shift has ended; the printer is off, so its record waits to be printed.
    evening = edge_env(env, "reports", "due", "--now", "2026-11-20T20:05", "--config", str(config))
    assert evening.returncode == 1 and "lp -d Office refused it" in evening.stdout, evening.stdout + evening.stderr
    assert {"shift-2026-11-20-早班.pdf", "shift-2026-11-20-早班.xlsx"} <= {p.name for p in folder.iterdir()}
    assert not (folder / "daily-2026-11-20.pdf").exists(), "the day is not over"

    # After midnight, printer on: the day's report and ledger are written, and every PDF not yet
    # printed goes to lp (the shift record too), each once.
    (bin_dir / "offline").unlink()
    night = edge_env(env, "reports", "due", "--now", "2026-11-21T00:30", "--config", str(config), "--json")
    assert night.returncode == 0, night.stdout + night.stderr
    written = json.loads(night.stdout)["written"]
    assert {"daily-2026-11-20.pdf", "ledger-2026-11-20.xlsx"} <= set(written) and not any("早班" in w for w in written)
    calls = [block.split("\n") for block in (bin_dir / "lp.calls").read_text(encoding="utf-8").strip().split("\n\n")]
    printed = {call[-1] for call in calls}
    assert str(folder / "daily-2026-11-20.pdf") in printed and str(folder / "shift-2026-11-20-早班.pdf") in printed
    assert all(call[:2] == ["-d", "Office"] for call in calls) and len(printed) == len(calls)
    assert not any(call[-1].endswith(".xlsx") for call in calls)
    # The ledger in the folder is the day's, whole; the daily report is the day's.
    from openpyxl import load_workbook

    assert load_workbook(folder / "ledger-2026-11-20.xlsx").worksheets[0].cell(2, 1).value.count("共 36 条") == 1
    again = edge_env(env, "reports", "due", "--now", "2026-11-21T00:45", "--config", str(config), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["written"] == []
    assert len((bin_dir / "lp.calls").read_text(encoding="utf-8").strip().split("\n\n")) == len(calls), "nothing printed twice"


def edge_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


REPORTS_UNIT = Path(__file__).resolve().parent.parent / "systemd" / "station-edge-reports.service"
TIMER = REPORTS_UNIT.with_suffix(".timer")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_reports_timer_and_service_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    venv = Path(sys.executable).parent.parent
    for unit in (REPORTS_UNIT, TIMER):  # as installed: the venv path substituted
        (tmp_path / unit.name).write_text(unit.read_text(encoding="utf-8").replace("/opt/station-edge/venv", str(venv)))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / REPORTS_UNIT.name), str(tmp_path / TIMER.name)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    assert unit_service(TIMER)["Timer"]["Persistent"] == "true"
    # install.sh installs and enables both.
    install = (REPORTS_UNIT.parent / "install.sh").read_text(encoding="utf-8")
    assert "station-edge-reports.service station-edge-reports.timer" in install and "enable station-edge.service station-edge-reports.timer" in install


def test_the_reports_units_command_writes_what_is_due(tmp_path: Path) -> None:
    """The service's own command line, as install.sh points it: last month's summary and
    yesterday's documents appear in the folder."""
    config = busy_day_station(tmp_path, per_lane=2)
    _with_reports(config, tmp_path / "reports", None)
    result = subprocess.run(unit_command("ExecStart", Path(sys.executable).parent, config, unit=REPORTS_UNIT),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    today = datetime.now(TZ).date()
    last_month = today.replace(day=1) - timedelta(days=1)
    names = {p.name for p in (tmp_path / "reports").iterdir()}
    assert {f"daily-{today - timedelta(days=1)}.pdf", f"ledger-{today - timedelta(days=1)}.xlsx",
            f"monthly-{last_month:%Y-%m}.pdf", f"monthly-{last_month:%Y-%m}.xlsx"} <= names, names


def test_reports_due_catches_up_the_days_and_shifts_with_fills_after_the_station_was_off(tmp_path: Path) -> None:
    config = busy_day_station(tmp_path, per_lane=2)
    _with_reports(config, tmp_path / "reports", None)
    # Switched on again three days after the busy day.
    result = edge("reports", "due", "--now", "2026-11-23T09:00", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    written = set(json.loads(result.stdout)["written"])
    assert {"daily-2026-11-20.pdf", "ledger-2026-11-20.xlsx", "shift-2026-11-20-早班.pdf", "daily-2026-11-22.pdf"} <= written
    # Quiet days and shifts long past are not written; the last night's shift is (it just ended).
    assert "daily-2026-11-21.pdf" not in written and "shift-2026-11-21-早班.pdf" not in written
    assert "shift-2026-11-22-夜班.pdf" in written
