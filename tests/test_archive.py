"""`edge archive`: closed months move into monthly archive files that still verify and read, and
the live chain continues from the archive's head. Real stores (written through the daemon's own
store calls), the real CLI."""

from __future__ import annotations

import json
import lzma
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from edge.demo.run import BUNDLED_CONFIG, effective_config
from edge.store import journal, packing
from tests.history_support import FILL_EVERY, build, cylinders, open_history_store
from tests.journal_support import editable

EDGE = [sys.executable, "-m", "edge.cli"]
JAN, FEB, MAR = (datetime(2025, m, 10, 2, 0, tzinfo=UTC) for m in (1, 2, 3))


def _fills(db: Path, first: int, count: int, at: datetime, acknowledge: bool = True) -> None:
    """`count` fills from fill number `first`, the first of them at `at`, acknowledged upstream."""
    store = open_history_store(db, durable=False)
    try:
        if first == 0:
            store.upsert_cylinders(cylinders(30), datetime.now(UTC))
        for _ in build(store, count, first=first, start=at - first * FILL_EVERY, ack_every=20, acknowledge=acknowledge):
            pass
    finally:
        store.close()


@pytest.fixture
def station(tmp_path: Path) -> tuple[Path, Path]:
    """A store with 30 fills in each of January, February and March 2025, and its config."""
    return _station(tmp_path, (JAN, FEB, MAR))


def _station(tmp_path: Path, starts: tuple[datetime, ...], each: int = 30) -> tuple[Path, Path]:
    db = tmp_path / "station.db"
    for n, at in enumerate(starts):
        _fills(db, each * n, each, at)
    raw = yaml.safe_load(effective_config(BUNDLED_CONFIG, tmp_path).read_text(encoding="utf-8"))
    raw["store"]["path"] = str(db)
    raw["store"]["archive_dir"] = str(tmp_path / "archive")
    config = tmp_path / "station.yaml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return db, config


def edge(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGE, *args, "--config", str(config)], capture_output=True, text=True, timeout=300)


def edge_json(config: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = edge(config, *args, "--json")
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _archives(config: Path) -> list[Path]:
    return sorted((config.parent / "archive").glob("*.edge-archive.xz"))


def test_an_archive_round_trip_keeps_verify_green_and_the_records_readable(station: tuple[Path, Path]) -> None:
    db, config = station
    before = {r["id"] for r in edge_json(config, "records")}
    assert len(before) == 90
    done = edge_json(config, "archive", "--before", "2025-03-15")
    assert [a["month"] for a in done["archived"]] == ["2025-01", "2025-02"]
    files = _archives(config)
    assert [f.name for f in files] == [Path(a["file"]).name for a in done["archived"]]
    assert [re.fullmatch(r"station-[\w.-]+-(\d{4}-\d{2})\.edge-archive\.xz", f.name).group(1) for f in files] == [  # type: ignore[union-attr]
        "2025-01", "2025-02"]
    # The live store keeps March (and the archive's head as its first entry); the rest moved out.
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM fills").fetchone()[0] == 30
        assert conn.execute("SELECT min(seq) FROM journal").fetchone()[0] == done["base"]["entry"]
        assert journal.entry_hash(conn, done["base"]["entry"]) == done["base"]["hash"]
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 30 * 2  # a filling record and a trace node each
    assert done["verified"] and done["deleted"]["fills"] == 60

    incremental = edge_json(config, "verify")
    assert incremental["ok"] and incremental["archive_base"] == done["base"]["entry"]
    full = edge(config, "verify", "--full")
    assert full.returncode == 0, full.stdout + full.stderr
    assert f"from the archive's head at entry {done['base']['entry']}" in full.stdout and "integrity_check ok" in full.stdout

    archived = set()
    for file in files:
        checked = edge_json(config, "verify", "--archive", str(file))
        assert checked["ok"] and checked["counts"]["fills"] == 30, checked
        assert checked["live_store"].startswith("matches the live store's record")
        archived |= {r["id"] for r in edge_json(config, "records", "--archive", str(file))}
    assert "begins at its head" in edge_json(config, "verify", "--archive", str(files[-1]))["live_store"]
    live = {r["id"] for r in edge_json(config, "records")}
    assert archived | live == before and not archived & live and len(archived) == 60
    # The usual filters work on an archive: one lane, one day, the CSV.
    lane_a = edge_json(config, "records", "--archive", str(files[0]), "--lane", "A")
    assert lane_a and {r["lane"] for r in lane_a} == {"A"}
    day = edge_json(config, "records", "--archive", str(files[1]), "--date", "2025-02-10")
    assert len(day) == 30
    rejected = edge_json(config, "records", "--archive", str(files[0]), "--rejected")
    assert len(rejected) == 3 and all(r["reasons"] == ["INSPECTION_OVERDUE"] for r in rejected)
    csv = edge(config, "records", "--archive", str(files[0]), "--csv")
    assert csv.returncode == 0 and len(csv.stdout.strip().splitlines()) == 31


def _edit_archive(file: Path, sql: str) -> None:
    """What someone with the file would do: unpack it, change a row, pack it again."""
    db = file.with_suffix(".db")
    db.write_bytes(lzma.decompress(file.read_bytes()))
    with editable(sqlite3.connect(db)) as conn:
        assert conn.execute(sql).rowcount == 1
    file.write_bytes(lzma.compress(db.read_bytes()))
    db.unlink()


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("UPDATE fills SET net_kg = net_kg + 1 WHERE rowid = 3", "net_kg"),
        # Delivered records left the outbox before the archive was cut: a record added is caught.
        ("INSERT INTO outbox (kind, idempotency_key, payload, status, created_at, queued_seq) VALUES ('filling', 'forged',"
         " '{}', 'sent', '2025-01-20T00:00:00+00:00', (SELECT max(seq) FROM journal))", "outbox"),
        ("DELETE FROM fills WHERE rowid = 5", "fill"),
        ("UPDATE journal SET data = edit(data, '\"accepted\":false', '\"accepted\":true') WHERE seq ="
         " (SELECT min(seq) FROM journal WHERE kind = 'scan' AND unpack(data) LIKE '%\"accepted\":false%')", "altered"),
    ],
)
def test_an_edited_archive_is_caught_by_verify_archive(station: tuple[Path, Path], sql: str, said: str) -> None:
    _, config = station
    edge_json(config, "archive", "--before", "2025-02-01")
    [file] = _archives(config)
    _edit_archive(file, sql)
    result = edge(config, "verify", "--archive", str(file), "--json")
    assert result.returncode == 1, result.stdout
    checked = json.loads(result.stdout)
    assert not checked["ok"] and said in checked["problem"], checked["problem"]


def test_a_rechained_archive_is_caught_against_the_live_store(station: tuple[Path, Path]) -> None:
    """Every hash recomputed inside the file holds together on its own; the live store recorded
    the archive's head when it was made."""
    from edge.store import archive

    live_db, config = station
    with sqlite3.connect(live_db) as conn:  # a head printed on a January daily report
        entry = conn.execute("SELECT max(seq) / 2 FROM journal WHERE ts < '2025-02-01'").fetchone()[0]
        digest = journal.entry_hash(conn, entry)
    witness = config.parent / "witness.json"
    witness.write_text(json.dumps({"entry": entry, "hash": digest}), encoding="utf-8")
    edge_json(config, "archive", "--before", "2025-02-01")
    live = edge_json(config, "verify", "--witness", str(witness))
    assert live["ok"] and live["witnessed_heads_archived"] == 1
    [file] = _archives(config)
    held = edge_json(config, "verify", "--archive", str(file), "--witness", str(witness))
    assert held["ok"] and held["witnessed_heads"] == 1
    db = file.with_suffix(".db")
    db.write_bytes(lzma.decompress(file.read_bytes()))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE fills SET net_kg = 1.0 WHERE rowid = 1")
        fill_id = conn.execute("SELECT id FROM fills WHERE rowid = 1").fetchone()[0]
        seq, data = conn.execute("SELECT seq, data FROM journal WHERE fill_id = ? AND kind = 'fill_complete'", (fill_id,)).fetchone()
        conn.execute("UPDATE journal SET data = ? WHERE seq = ?", (packing.pack(journal.canonical({**journal.load(data), "net_kg": 1.0})), seq))
        prev = journal.GENESIS
        columns = ("seq", "ts", "lane", "kind", "fill_id", "cylinder_id", "data")
        for row in conn.execute(f"SELECT {', '.join(columns)} FROM journal ORDER BY seq").fetchall():
            digest = journal.row_hash(prev, {**dict(zip(columns, row)), "data": packing.unpack(row[6])})
            conn.execute("UPDATE journal SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, row[0]))
            prev, last = digest, row[0]
        conn.execute("UPDATE chain_head SET seq = ?, hash = ?", (last, prev))
        manifest = json.loads(conn.execute("SELECT value FROM manifest WHERE key = 'head'").fetchone()[0])
        conn.execute("UPDATE manifest SET value = ? WHERE key = 'head'", (json.dumps({**manifest, "hash": prev}),))
        outbox = json.loads(conn.execute("SELECT value FROM manifest WHERE key = 'outbox_ids'").fetchone()[0])
        digests = archive._checkpoint(conn, 0, last, tuple(outbox))  # and the digests recomputed too
        conn.execute("UPDATE manifest SET value = ? WHERE key = 'checkpoint'", (json.dumps(digests),))
    file.write_bytes(lzma.compress(db.read_bytes()))
    db.unlink()
    result = edge(config, "verify", "--archive", str(file), "--json")
    checked = json.loads(result.stdout)
    assert result.returncode == 1 and not checked["ok"]
    assert checked["live_store"].startswith("DIFFERS") and "differ from the live store's record" in checked["problem"], checked
    # Away from the station (no live store), the witnessed head still finds the rewrite.
    config.with_name("station.db").rename(config.with_name("elsewhere.db"))
    alone = edge(config, "verify", "--archive", str(file), "--witness", str(witness), "--json")
    assert alone.returncode == 1 and "rewritten" in json.loads(alone.stdout)["problem"], alone.stdout


def test_an_archive_is_refused_while_a_fill_is_not_delivered_to_the_city(tmp_path: Path, station: tuple[Path, Path]) -> None:
    db, config = station
    with sqlite3.connect(db) as conn:
        fill_id = conn.execute("SELECT fill_id FROM outbox ORDER BY id LIMIT 1 OFFSET 7").fetchone()[0]
        conn.execute("UPDATE outbox SET status = 'pending' WHERE fill_id = ?", (fill_id,))
        size = conn.execute("SELECT count(*) FROM journal").fetchone()[0]
    result = edge(config, "archive", "--before", "2025-03-01")
    assert result.returncode == 1
    assert f"fill {fill_id} is not delivered to the city yet" in result.stderr
    assert not _archives(config)
    with sqlite3.connect(db) as conn:  # nothing moved (the verify before it journalled its checkpoint)
        assert conn.execute("SELECT count(*) FROM fills").fetchone()[0] == 90
        assert conn.execute("SELECT count(*) FROM journal").fetchone()[0] == size + 1


def test_an_archive_is_refused_while_the_fleet_has_not_acknowledged_a_fill(station: tuple[Path, Path]) -> None:
    db, config = station
    with sqlite3.connect(db) as conn:  # January's first fill, its event still waiting for the broker
        assert conn.execute("SELECT count(*) FROM fleet_outbox").fetchone()[0] == 0  # acknowledged: deleted
        key, finished = conn.execute("SELECT id, finished_at FROM fills ORDER BY rowid LIMIT 1").fetchone()
        conn.execute("INSERT INTO fleet_outbox (kind, key, payload, created_at) VALUES ('fill', ?, '{}', ?)", (key, finished))
    result = edge(config, "archive", "--before", "2025-02-01")
    assert result.returncode == 1 and f"fill {key} is not acknowledged by the company fleet" in result.stderr


def test_an_archive_is_refused_when_the_live_store_does_not_verify(station: tuple[Path, Path]) -> None:
    db, config = station
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE fills SET net_kg = 3 WHERE rowid = 2")
    result = edge(config, "archive", "--before", "2025-02-01")
    assert result.returncode == 1 and "does not verify" in result.stderr and not _archives(config)


def test_the_live_chain_continues_and_a_second_archive_follows_the_first(station: tuple[Path, Path]) -> None:
    db, config = station
    first = edge_json(config, "archive", "--before", "2025-02-01")
    assert [a["month"] for a in first["archived"]] == ["2025-01"]
    _fills(db, 90, 20, datetime(2025, 4, 3, 2, 0, tzinfo=UTC))  # the station goes on filling
    assert edge_json(config, "verify")["ok"]
    second = edge_json(config, "archive", "--before", "2025-04-01")
    assert [a["month"] for a in second["archived"]] == ["2025-02", "2025-03"]
    feb = _archives(config)[1]
    # Each archive starts where the one before it ends: February's anchor is January's head.
    assert edge_json(config, "verify", "--archive", str(feb))["anchor"] == {"entry": first["base"]["entry"], "hash": first["base"]["hash"]}
    for file in _archives(config):
        assert edge_json(config, "verify", "--archive", str(file))["ok"]
    assert edge_json(config, "verify")["ok"] and edge_json(config, "verify", "--full")["ok"]
    assert len(edge_json(config, "records")) == 20
    _fills(db, 110, 10, datetime(2025, 4, 20, 2, 0, tzinfo=UTC))
    again = edge_json(config, "verify")
    assert again["ok"] and again["from_checkpoint"] > second["base"]["entry"]
    # Nothing is left to archive before April: a second run changes nothing.
    assert edge_json(config, "archive", "--before", "2025-04-01")["archived"] == []


def test_an_edit_to_a_live_row_after_an_archive_is_still_caught(station: tuple[Path, Path]) -> None:
    db, config = station
    edge_json(config, "archive", "--before", "2025-03-01")
    edge_json(config, "verify")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE fills SET net_kg = 2 WHERE rowid = (SELECT max(rowid) FROM fills)")
    result = edge(config, "verify", "--json")
    assert result.returncode == 1 and not json.loads(result.stdout)["ok"]


def test_a_fill_in_progress_at_the_month_end_stays_live_and_verifies(tmp_path: Path) -> None:
    """Lanes fill across midnight: a fill authorised in January and finished in February stays in
    the live store (in the state the archive's entry carries) and is held to its entries there."""
    # 1 February 00:00 in Shanghai is 31 January 16:00 UTC: fills every 24 s from 15:55, each 64 s long.
    db, config = _station(tmp_path, (JAN, datetime(2025, 1, 31, 15, 55, tzinfo=UTC), MAR), each=20)
    done = edge_json(config, "archive", "--before", "2025-02-01")
    with sqlite3.connect(db) as conn:
        entry = journal.load(conn.execute("SELECT data FROM journal WHERE kind = 'archived'").fetchone()[0])
        spanning = list(entry["state"]["open_fills"])
        assert spanning, "no fill was in progress at the cut"
        statuses = {r[0] for r in conn.execute(f"SELECT status FROM fills WHERE id IN ({', '.join('?' * len(spanning))})", spanning)}
        assert statuses == {"complete"}
    archived = {r["id"] for r in edge_json(config, "records", "--archive", done["archived"][0]["file"])}
    assert not archived & set(spanning) and len(archived) + len(edge_json(config, "records")) == 60
    assert edge_json(config, "verify", "--archive", done["archived"][0]["file"])["ok"]
    assert edge_json(config, "verify", "--full")["ok"]
    # The spanning fill is held to its entries in the live store: an edit to it is caught.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE fills SET net_kg = 1 WHERE id = ?", (spanning[0],))
    result = edge(config, "verify", "--full", "--json")
    assert result.returncode == 1 and spanning[0] in result.stdout


def test_retention_archives_what_the_setting_no_longer_keeps(station: tuple[Path, Path]) -> None:
    _, config = station
    assert edge_json(config, "archive", "--retention")["archived"] == []  # not set: everything stays
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["store"]["retention_months"] = 0
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    refused = edge(config, "archive", "--retention")
    assert refused.returncode == 2 and "retention_months" in refused.stderr
    raw["store"]["retention_months"] = 12
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    done = edge_json(config, "archive", "--retention")  # today is long after March 2025: all three months go
    assert [a["month"] for a in done["archived"]] == ["2025-01", "2025-02", "2025-03"]
    assert edge_json(config, "records") == [] and edge_json(config, "verify")["ok"]


def test_an_inspector_verifies_an_archive_without_the_station(station: tuple[Path, Path], tmp_path: Path) -> None:
    _, config = station
    edge_json(config, "archive", "--before", "2025-02-01")
    [file] = _archives(config)
    copy = tmp_path / "inspector" / file.name
    copy.parent.mkdir()
    copy.write_bytes(file.read_bytes())
    result = subprocess.run([*EDGE, "verify", "--archive", str(copy), "--config", str(tmp_path / "none.yaml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "journal OK" in result.stdout and "records OK: 30 fills" in result.stdout and "live store" not in result.stdout
    assert [p.name for p in copy.parent.iterdir()] == [file.name]  # its scratch copy is gone


def test_a_file_that_is_not_an_archive_is_named_and_nothing_is_touched(station: tuple[Path, Path], tmp_path: Path) -> None:
    db, config = station
    junk = tmp_path / "junk.edge-archive.xz"
    for content in (b"not xz at all", lzma.compress(b"not a database"), lzma.compress(b"x" * 100_000)[:200]):
        junk.write_bytes(content)
        for command in (("verify", "--archive", str(junk)), ("records", "--archive", str(junk))):
            result = edge(config, *command)
            assert result.returncode == 2 and "not an archive file" in result.stderr, (command, result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no scratch copy left behind
    missing = edge(config, "records", "--archive", str(tmp_path / "none.xz"))
    assert missing.returncode == 2 and "none.xz" in missing.stderr
    future = edge(config, "archive", "--before", "2999-01-01")
    assert future.returncode == 1 and "not over yet" in future.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM fills").fetchone()[0] == 90


def test_vacuum_returns_the_space_and_the_checkpoints_still_hold(station: tuple[Path, Path]) -> None:
    """The checkpoints address fills by rowid: the rewrite must not move them."""
    db, config = station
    edge_json(config, "verify")
    with sqlite3.connect(db) as conn:
        rowids = conn.execute("SELECT rowid, id FROM fills WHERE authorised_at >= '2025-03' ORDER BY rowid").fetchall()
    done = edge_json(config, "archive", "--before", "2025-03-01", "--vacuum")
    assert done["vacuumed"] and done["store_bytes_after"] < done["store_bytes_before"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT rowid, id FROM fills ORDER BY rowid").fetchall() == rowids
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on
    check = edge_json(config, "verify")
    assert check["ok"] and check["older_rows_rechecked"] == check["older_rows"] > 0
    _fills(db, 90, 10, datetime(2025, 4, 3, 2, 0, tzinfo=UTC))
    assert edge_json(config, "verify")["ok"] and edge_json(config, "verify", "--full")["ok"]
    second = edge_json(config, "archive", "--before", "2025-04-01")
    assert second["pages_returned"] > 0 and second["store_bytes_after"] < second["store_bytes_before"]
    assert edge_json(config, "verify")["ok"]


def test_an_archive_interrupted_while_deleting_is_finished_by_the_next(station: tuple[Path, Path],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from zoneinfo import ZoneInfo

    from edge.store import archive

    db, config = station
    store = open_history_store(db)
    real = archive._Steps.transaction
    calls = {"n": 0}

    def dies_midway(self: archive._Steps):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the power goes, or someone presses ^C
        return real(self)

    monkeypatch.setattr(archive._Steps, "transaction", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        archive.make(store, datetime(2025, 3, 1).date(), ZoneInfo("Asia/Shanghai"), config.parent / "archive", "u",
                     datetime.now(UTC))
    store.close()
    monkeypatch.setattr(archive._Steps, "transaction", real)
    meanwhile = edge_json(config, "verify")  # verifies, from the archive's head, but journals no checkpoint
    assert meanwhile["ok"] and meanwhile["archive_base"]
    with sqlite3.connect(db) as conn:
        last = conn.execute("SELECT max(seq) FROM journal WHERE kind = 'verified'").fetchone()[0]
        assert last < conn.execute("SELECT seq FROM journal WHERE kind = 'archived'").fetchone()[0]
    done = edge_json(config, "archive", "--before", "2025-03-01")
    assert done["resumed"] and done["archived"] == []
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM fills").fetchone()[0] == 30
        assert conn.execute("SELECT count(*) FROM meta WHERE key = 'archive_applying'").fetchone()[0] == 0
    assert edge_json(config, "verify")["ok"] and edge_json(config, "verify", "--full")["ok"]


def test_a_live_store_that_no_longer_begins_at_the_archives_head_is_reported(station: tuple[Path, Path]) -> None:
    db, config = station
    done = edge_json(config, "archive", "--before", "2025-02-01")
    base = done["base"]["entry"]
    with sqlite3.connect(db) as conn:  # the archive's head, the live chain's first entry, removed
        conn.execute("DELETE FROM journal WHERE seq = ?", (base,))
    result = edge(config, "verify", "--full", "--json")
    assert result.returncode == 1
    assert f"entry {base}" in json.loads(result.stdout)["problem"] and "altered or removed" in json.loads(result.stdout)["problem"]


def test_a_fills_dispatches_go_with_it_unless_made_after_the_cut(station: tuple[Path, Path]) -> None:
    """dispatches name their fill: the one made in January moves with its January fill; the one
    made in February, of a January fill, is February's record and stays live."""
    db, config = station
    assert edge(config, "staff", "add", "d1", "王五").returncode == 0
    pin = subprocess.run([*EDGE, "staff", "passwd", "d1", "--role", "dispatcher", "--stdin", "--config", str(config)],
                         input="482915\n", capture_output=True, text=True, timeout=60)
    assert pin.returncode == 0, pin.stderr
    with sqlite3.connect(db) as conn:  # the rows as edge.scanpoints.dispatch writes them
        first, second = (r[0] for r in conn.execute("SELECT id FROM fills ORDER BY rowid LIMIT 2"))
        for n, (fill_id, at) in enumerate(((first, "2025-01-20T01:00:00.000+00:00"), (second, "2025-02-03T01:00:00.000+00:00"))):
            conn.execute("INSERT INTO dispatches (id, cylinder_id, fill_id, plate, courier, dispatcher, at)"
                         " SELECT ?, cylinder_id, id, '渝A12345', '李四', 'd1', ? FROM fills WHERE id = ?", (f"dispatch-{n}", at, fill_id))
    done = edge_json(config, "archive", "--before", "2025-02-01")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id, fill_id FROM dispatches").fetchall() == [("dispatch-1", second)]
        assert conn.execute("SELECT secret_hash FROM staff WHERE id = 'd1'").fetchone()[0]
    db_copy = db.with_name("jan.db")
    db_copy.write_bytes(lzma.decompress(Path(done["archived"][0]["file"]).read_bytes()))
    with sqlite3.connect(db_copy) as conn:
        assert conn.execute("SELECT id, fill_id FROM dispatches").fetchall() == [("dispatch-0", first)]
        staff = conn.execute("SELECT id, name, secret_hash FROM staff").fetchall()
        assert ("d1", "王五", None) in staff and {s[2] for s in staff} == {None}  # names kept, PIN hashes not
    assert edge_json(config, "verify", "--full")["ok"]
