"""Monthly archive files: closed months move out of the live store and still verify.

`edge archive --before DATE` moves a prefix of the journal (one chain across all lanes) out of
the live store: for each whole month before DATE's month, the entries up to the last one before
the month's end, the fills those entries finished, the outbox rows they queued (each with the
city's reply) and the rows that name those fills (checks, dispatches). Each month becomes one
SQLite file compressed with lzma, `station-<unit>-<yyyy-mm>.edge-archive.xz`, holding:

  * the chain segment, with the entry before it (the previous archive's head, the "anchor"), so
    the segment is walked exactly as the live chain is: journal.verify from (anchor, its hash);
  * the replay's state at its start and at its end (staff, shifts, fills still in progress), so
    its fills and outbox rows are held to the entries, as `edge verify` holds the live ones;
  * a checkpoint: sha256 digests of its rows in pieces (as audit.py digests the live rows);
  * a manifest naming all of it, and the staff table (without PIN hashes) for the names.

The live store then journals an entry of kind "archived" (audit.ARCHIVED): the archive's head
(entry and hash), the replay's state there, and each file made (month, entries, head, the digest
of its checkpoint). That entry is chained like any other, so it is witnessed with the rest; the
live chain begins at the archive's head (that entry is kept as its first row), and verification
starts there. Rows are deleted in short transactions (a lane never waits long for the store),
oldest kinds of row first, and a crash midway is finished by the next `edge archive`.

A fill still in progress at the cut stays live: it is in the state the "archived" entry carries,
and is held to its entries when they finish it. An archive is refused, naming what is missing,
when a fill it would move is not yet acknowledged by the city or the company fleet, when a fill
is still open, when a lane is held for an acknowledgement, or when the live chain does not verify.
"""

from __future__ import annotations

import hashlib
import json
import logging
import lzma
import os
import re
import shutil
import sqlite3
import tempfile
import time as time_mod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from . import audit, journal, replay
from .database import _FILL_COLUMNS as FILL_COLUMNS
from .database import NEWEST_HOLDS, Store, iso, set_meta
from .durable import fsync_dir

log = logging.getLogger(__name__)

SUFFIX = ".edge-archive.xz"
FORMAT = 1
FINAL_KINDS = tuple(f"fill_{status}" for status in replay.FINAL_STATUSES)
STEP = 2_000  # rows (or entries) deleted per write transaction: a lane's commit waits for one at most
PRESET = 1  # 10x faster than lzma's default 6 for files a third bigger (about 750 B a fill; bench/archive.py)


class ArchiveRefused(Exception):
    """The archive cannot be made now; the message names what is missing (nothing was changed)."""


class ArchiveInvalid(Exception):
    """A file that is not a readable archive."""


@dataclass
class Segment:
    """One month's part of the chain: entries (lo, hi], the entry lo being the one before it."""

    month: str
    lo: int
    hi: int
    start: replay.State
    end: replay.State
    outbox: tuple[int, int]  # outbox ids (lo, hi] the entries queued
    cut: str  # the archive's cut (UTC): rows naming its fills made later stay live
    file: Path | None = None
    record: dict[str, Any] = field(default_factory=dict)  # what the live store journals of the file


def file_name(unit: str, month: str) -> str:
    return f"station-{re.sub(r'[^A-Za-z0-9_.-]+', '_', unit)}-{month}{SUFFIX}"


def month_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day.replace(day=1), time(), tz).astimezone(timezone.utc)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


# Making an archive -----------------------------------------------------------------------------


def make(store: Store, before: date, tz: ZoneInfo, directory: Path, unit: str, now: datetime) -> dict[str, Any]:
    """Archive every whole month before `before`'s month into `directory`; returns what was done.
    ArchiveRefused (with nothing changed) when it cannot be done now."""
    finished = resume(store)
    cut = month_start(before, tz)
    if cut > month_start(now.astimezone(tz).date(), tz):
        raise ArchiveRefused(f"{before:%Y-%m} is not over yet: only whole months before the current one are archived")
    # Every row the archive moves must be what the journal implies: all of them re-checked now.
    proven = store.audit(budget=10**12)
    if not proven.ok:
        raise ArchiveRefused(f"the live store does not verify ({proven.problem()}); see `edge verify`")
    conn = sqlite3.connect(str(store.path), timeout=30)
    try:
        segments = _plan(conn, cut, tz)
        if not segments:
            return {"archived": [], "base": _base(conn), "resumed": finished, "cut": iso(cut)}
        _refuse_open_things(conn, segments, cut)
        directory.mkdir(parents=True, exist_ok=True)
        for segment in segments:
            _write(conn, segment, directory, unit, tz, now)
        last = segments[-1]
        head = journal.entry_hash(conn, last.hi)
    finally:
        conn.close()
    # The rows of the prefix still live: the fills in progress at the cut (held in the state), no outbox row.
    state = replay.State(**{**last.end.__dict__, "fills": len(last.end.open_fills), "outbox": 0, "queued": []})
    entry = {"upto": last.hi, "head": head, "from": segments[0].lo, "state": state.as_data(), "outbox_id": last.outbox[1],
             "before": iso(cut), "files": [s.record for s in segments]}
    with store.transaction() as tx:
        seq = store.journal(now, audit.ARCHIVED, entry)
        set_meta(tx, audit.APPLYING, json.dumps({"entry": seq}))
    deleted = _delete(store, seq, entry)
    rebased = store.audit()  # from the archive's head: its checkpoint digests every row that stays
    return {"archived": [{"file": str(s.file), **s.record} for s in segments], "base": {"entry": last.hi, "hash": head},
            "deleted": deleted, "resumed": finished, "cut": iso(cut), "verified": rebased.ok, "problem": rebased.problem()}


def resume(store: Store) -> bool:
    """Finish deleting the rows of an archive a crash interrupted. True when there was one."""
    pending = store.get_meta(audit.APPLYING)
    if pending is None:
        return False
    seq = json.loads(pending)["entry"]
    data = journal.load(store.query("SELECT data FROM journal WHERE seq = ?", [seq])[0]["data"])
    log.warning("finishing the archive journalled at entry %s: deleting the rows it moved out", seq)
    _delete(store, seq, data)
    store.audit()
    return True


def _base(conn: sqlite3.Connection) -> dict[str, Any]:
    rebased = audit.rebase_point(conn)
    return {"entry": 0, "hash": journal.GENESIS} if rebased is None else {"entry": rebased[1]["upto"], "hash": rebased[1]["head"]}


def _plan(conn: sqlite3.Connection, cut: datetime, tz: ZoneInfo) -> list[Segment]:
    """The months to archive, each replayed from the state the last one ends in."""
    rebased = audit.rebase_point(conn)
    lo = 0 if rebased is None else rebased[1]["upto"]
    state = replay.State() if rebased is None else replay.State.from_data(rebased[1]["state"])
    outbox = 0 if rebased is None else rebased[1]["outbox_id"]
    first = conn.execute("SELECT ts FROM journal WHERE seq > ? ORDER BY seq LIMIT 1", (lo,)).fetchone()
    if first is None:
        return []
    month = datetime.fromisoformat(first[0]).astimezone(tz).date().replace(day=1)
    segments = []
    while month_start(month, tz) < cut:
        end = month_start(next_month(month), tz)
        # The month ends before the first entry at or after its end (lanes' clocks may interleave
        # by a moment: an entry stamped earlier but written later goes with the next month).
        row = conn.execute("SELECT seq FROM journal WHERE seq > ? AND julianday(ts) >= julianday(?) ORDER BY seq LIMIT 1",
                           (lo, iso(end))).fetchone()
        hi = (row[0] - 1) if row is not None else conn.execute("SELECT max(seq) FROM journal").fetchone()[0]
        if hi > lo:
            report, reached = replay.replay_check(conn, FILL_COLUMNS, _copy(state), lo, hi, finish=False)
            if not report.ok:
                raise ArchiveRefused(f"{month:%Y-%m}: {report.first}; see `edge verify`")
            top = max(outbox, _outbox_upto(conn, lo, hi))
            segments.append(Segment(f"{month:%Y-%m}", lo, hi, state, reached, (outbox, top), iso(cut)))
            lo, state, outbox = hi, reached, top
        month = next_month(month)
    return segments


def _copy(state: replay.State) -> replay.State:
    """A state to replay from: the replay changes the one it is given, the segment keeps its start."""
    return replay.State.from_data(json.loads(journal.canonical(state.as_data())))


def _outbox_upto(conn: sqlite3.Connection, lo: int, hi: int) -> int:
    """The newest outbox id the entries (lo, hi] queued: rows are queued with their entry, in one
    transaction, so ids rise with the entries."""
    # Since schema 11 the entries name their rows' ids: a fill's final entry, or a scan point's.
    newer = conn.execute("SELECT data FROM journal WHERE seq > ? AND seq <= ? AND kind IN (?, ?, ?) ORDER BY seq DESC",
                         (lo, hi, "outbox_queued", *FINAL_KINDS))
    for (data,) in newer:
        rows = journal.load(data)
        ids = [row["id"] for row in rows.get("queued", rows.get("rows", ())) if "id" in row]
        if ids:
            return max(ids)
        if "rows" in rows:  # an entry from before schema 11: as it was found then
            break
    top = 0
    row = conn.execute("SELECT fill_id, data FROM journal WHERE kind = 'outbox_queued' AND seq > ? AND seq <= ?"
                       " ORDER BY seq DESC LIMIT 1", (lo, hi)).fetchone()
    for queued in [] if row is None else journal.load(row[1])["rows"]:
        if row[0]:  # a fill's row: found by (fill, kind), as the replay finds it
            found = conn.execute("SELECT id FROM outbox WHERE fill_id = ? AND kind = ?", (row[0], queued["kind"])).fetchone()
        else:
            found = conn.execute("SELECT id FROM outbox WHERE idempotency_key = ? AND kind = ? AND fill_id IS NULL",
                                 (queued["key"], queued["kind"])).fetchone()
        top = max(top, found[0] if found else 0)
    for (data,) in conn.execute("SELECT data FROM journal WHERE kind = ? AND fill_id IS NULL AND seq > ? AND seq <= ?",
                                 (replay.BASELINE, lo, hi)):
        top = max([top, *(int(k) for k in journal.load(data).get("outbox", {}))])
    return top


def _refuse_open_things(conn: sqlite3.Connection, segments: list[Segment], cut: datetime) -> None:
    """What must be closed before its records leave the live store; the first one found is named."""
    hi = segments[-1].hi
    outbox = (segments[0].outbox[0], segments[-1].outbox[1])
    row = conn.execute("SELECT id, kind, fill_id, idempotency_key, status FROM outbox WHERE id > ? AND id <= ? AND status <> 'sent'"
                       " ORDER BY id LIMIT 1", outbox).fetchone()
    if row is not None:
        what = f"fill {row[2]}" if row[2] else f"{row[1]} record {row[3]}"
        raise ArchiveRefused(f"{what} is not delivered to the city yet (its {row[1]} record is {row[4]}): archive after it is sent")
    row = conn.execute("SELECT kind, key FROM fleet_outbox WHERE delivered_at IS NULL AND julianday(created_at) < julianday(?)"
                       " ORDER BY id LIMIT 1", (iso(cut),)).fetchone()
    if row is not None:
        what = f"fill {row[1]}" if row[0] == "fill" else f"the {row[0]} event {row[1]}"
        raise ArchiveRefused(f"{what} is not acknowledged by the company fleet yet: archive after the uplink delivers it")
    for fill_id in segments[-1].end.open_fills:
        status = conn.execute("SELECT status FROM fills WHERE id = ?", (fill_id,)).fetchone()
        if status is None or status[0] not in replay.FINAL_STATUSES:
            raise ArchiveRefused(f"fill {fill_id} is still open ({status[0] if status else 'no row'}): the daemon closes it"
                                 " at its next start; archive after that")
    held = conn.execute(f"SELECT lane, seq FROM journal WHERE seq IN ({NEWEST_HOLDS}) AND kind = 'lane_held' AND seq <= ?"
                        " ORDER BY lane LIMIT 1", (hi,)).fetchone()
    if held is not None:  # the hold is known from that entry only: it must stay live
        raise ArchiveRefused(f"lane {held[0]} is held for an acknowledgement since entry {held[1]}: `edge lane ack` it first")


def _schema(conn: sqlite3.Connection, table: str) -> list[str]:
    """The live CREATE statements of a table and its indexes: an archive has the store's own format."""
    return [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL"
                                       " ORDER BY type = 'table' DESC", (table,))]


def _made_before(conn: sqlite3.Connection, table: str) -> str:
    """SQL: the row was made before a moment (?1). A dispatch made after the archive's cut, of a
    fill before it, is a later record: it stays live, naming a fill that is in the archive."""
    columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    made = next((c for c in ("at", "created_at") if c in columns), None)
    return "?1 IS NOT NULL" if made is None else f"julianday({made}) < julianday(?1)"


def _dependents(conn: sqlite3.Connection) -> list[str]:
    """Tables (other than the outbox) whose rows name a fill: they go with the fill."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('outbox', 'fills')")]
    return [n for n in names if any(fk[2] == "fills" for fk in conn.execute(f"PRAGMA foreign_key_list({n})"))]


def _write(conn: sqlite3.Connection, segment: Segment, directory: Path, unit: str, tz: ZoneInfo, now: datetime) -> None:
    name = file_name(unit, segment.month)
    building = directory / f".{name}.db"
    building.unlink(missing_ok=True)
    dependents = _dependents(conn)
    out = sqlite3.connect(str(building))
    try:
        for table in ("journal", "chain_head", "fills", "outbox", "staff", *dependents):
            for sql in _schema(conn, table):
                out.execute(sql)
        out.execute("CREATE TABLE manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        out.commit()
    finally:
        out.close()
    conn.execute("ATTACH DATABASE ? AS archive", (str(building),))
    try:
        with conn:
            lo, hi = segment.lo, segment.hi
            conn.execute("INSERT INTO archive.journal SELECT * FROM main.journal WHERE seq >= ? AND seq <= ? ORDER BY seq", (lo, hi))
            # The file begins and ends at entries whose hashes it states: their rows store them
            # (since schema 11 most rows do not), as nothing before the first is in the file.
            for seq in (lo, hi):
                _store_hash(conn, "archive", seq, journal.entry_hash(conn, seq))
            conn.execute("INSERT INTO archive.chain_head (id, seq, hash) VALUES (1, ?, ?)", (hi, journal.entry_hash(conn, hi)))
            conn.execute(f"INSERT INTO archive.fills SELECT * FROM main.fills WHERE id IN (SELECT fill_id FROM main.journal"
                         f" WHERE seq > ? AND seq <= ? AND kind IN ({', '.join('?' * len(FINAL_KINDS))})) ORDER BY rowid",
                         (lo, hi, *FINAL_KINDS))
            conn.execute("INSERT INTO archive.outbox SELECT * FROM main.outbox WHERE id > ? AND id <= ? ORDER BY id", segment.outbox)
            for table in dependents:
                conn.execute(f"INSERT INTO archive.{table} SELECT * FROM main.{table} WHERE fill_id IN (SELECT id FROM archive.fills)"
                             f" AND {_made_before(conn, table)}", (segment.cut,))
            conn.execute("INSERT INTO archive.staff SELECT * FROM main.staff")
            if any(c[1] == "secret_hash" for c in conn.execute("PRAGMA archive.table_info(staff)")):
                conn.execute("UPDATE archive.staff SET secret_hash = NULL")  # PIN hashes stay at the station
    finally:
        conn.execute("DETACH DATABASE archive")
    out = sqlite3.connect(str(building))
    try:
        manifest = _manifest(out, segment, unit, tz, now)
        with out:
            out.executemany("INSERT INTO manifest (key, value) VALUES (?, ?)",
                            [(k, json.dumps(v, ensure_ascii=False)) for k, v in manifest.items()])
    finally:
        out.close()
    target = directory / name
    part = directory / f".{name}.part"
    with open(building, "rb") as src, lzma.open(part, "wb", preset=PRESET) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, target)
    building.unlink()
    fsync_dir(directory)
    segment.file = target
    segment.record = {"name": name, "month": segment.month, "first_entry": segment.lo + 1, "last_entry": segment.hi,
                      "head": manifest["head"]["hash"], "fills": manifest["counts"]["fills"],
                      "checkpoint": checkpoint_digest(manifest["checkpoint"])}


def checkpoint_digest(checkpoint: dict[str, Any]) -> str:
    return hashlib.sha256(journal.canonical(checkpoint).encode("utf-8")).hexdigest()


def _manifest(out: sqlite3.Connection, segment: Segment, unit: str, tz: ZoneInfo, now: datetime) -> dict[str, Any]:
    anchor = journal.entry_hash(out, segment.lo)
    counts = {t: out.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("journal", "fills", "outbox")}
    return {
        "format": FORMAT,
        "station": unit,
        "month": segment.month,
        "timezone": str(tz),
        "made_at": iso(now),
        "anchor": {"entry": segment.lo, "hash": anchor or journal.GENESIS},
        "head": {"entry": segment.hi, "hash": journal.entry_hash(out, segment.hi)},
        "outbox_ids": list(segment.outbox),
        "start_state": segment.start.as_data(),
        "end_state": segment.end.as_data(),
        "counts": counts,
        "checkpoint": _checkpoint(out, segment.lo, segment.hi, segment.outbox),
    }


def _checkpoint(conn: sqlite3.Connection, lo: int, hi: int, outbox: tuple[int, int]) -> dict[str, Any]:
    """Digests of the archive's rows, in pieces, as the live store's checkpoints digest its own."""
    fills_top = conn.execute("SELECT coalesce(max(rowid), 0) FROM fills").fetchone()[0]
    columns = {"journal": list(journal.STORED_COLUMNS), "fills": [r[1] for r in conn.execute("PRAGMA table_info(fills)")],
               "outbox": list(audit.OUTBOX_COLUMNS)}
    segment = audit.pieces("journal", lo, hi) + audit.pieces("fills", 0, fills_top) + audit.pieces("outbox", *outbox)
    return {"columns": columns, "pieces": [[t, a, b, audit.digest(conn, t, columns[t], a, b)] for t, a, b in segment]}


# Deleting what moved out -----------------------------------------------------------------------


class _Steps:
    """Short write transactions, the longest of them timed: the most a lane's commit waited."""

    def __init__(self, store: Store) -> None:
        self.store, self.longest = store, 0.0

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        started = time_mod.monotonic()
        with self.store.transaction() as tx:
            yield tx
        self.longest = max(self.longest, time_mod.monotonic() - started)


def _delete(store: Store, seq: int, entry: dict[str, Any]) -> dict[str, Any]:
    """Delete the rows the archive at entry `seq` holds, in short transactions: outbox rows, then
    the rows naming a fill and the fills (found by their entries, still there), then the entries
    but the head. Repeatable after a crash. (Fleet events the broker acknowledged are deleted
    then, and the archive waits for those of its months.)"""
    lo, hi, top = entry["from"], entry["upto"], entry["outbox_id"]
    steps = _Steps(store)
    with steps.transaction() as tx:  # the live chain begins at this entry: its row states its hash
        _store_hash(tx, "main", hi, entry["head"])
    counts = {"outbox": 0, "fills": 0, "journal": 0}
    first = store.query("SELECT coalesce(min(id), 1) AS n FROM outbox")[0]["n"]
    for start in range(first - 1, top, STEP):
        with steps.transaction() as tx:
            counts["outbox"] += tx.execute("DELETE FROM outbox WHERE id > ? AND id <= ?", (start, min(start + STEP, top))).rowcount
    kinds = ", ".join(f"?{n}" for n in range(3, 3 + len(FINAL_KINDS)))
    finished = f"SELECT fill_id FROM journal WHERE seq > ?1 AND seq <= ?2 AND kind IN ({kinds})"
    # A dispatch made after the cut names its archived fill and stays: this connection's foreign
    # keys are off for the deletion (the daemon's are not: it never deletes a fill).
    store.query("PRAGMA foreign_keys = OFF")
    try:
        # The rows naming an archived fill have no index by fill: each table is walked once, by
        # rowid, against the archived fills gathered once (a temporary table of this connection).
        store.query("CREATE TEMP TABLE IF NOT EXISTS archived_fills (id TEXT PRIMARY KEY)")
        store.query("DELETE FROM temp.archived_fills")
        store.query(f"INSERT OR IGNORE INTO temp.archived_fills {finished}", (lo, hi, *FINAL_KINDS))
        with store.transaction() as tx:
            dependents = {table: _made_before(tx, table) for table in _dependents(tx)}
        for table, made_before in dependents.items():
            top_rowid = store.query(f"SELECT coalesce(max(rowid), 0) AS n FROM {table}")[0]["n"]
            for start in range(0, top_rowid, STEP):
                with steps.transaction() as tx:
                    tx.execute(f"DELETE FROM {table} WHERE rowid > ?2 AND rowid <= ?3 AND {made_before}"
                               " AND fill_id IN (SELECT id FROM temp.archived_fills)", (entry["before"], start, start + STEP))
        store.query("DROP TABLE temp.archived_fills")
        for start in range(lo, hi, STEP):
            with steps.transaction() as tx:
                counts["fills"] += tx.execute(f"DELETE FROM fills WHERE id IN ({finished})",
                                              (start, min(start + STEP, hi), *FINAL_KINDS)).rowcount
    finally:
        store.query("PRAGMA foreign_keys = ON")
    first = store.query("SELECT coalesce(min(seq), 0) AS n FROM journal")[0]["n"]
    for start in range(first, hi, STEP):
        with steps.transaction() as tx:
            counts["journal"] += tx.execute("DELETE FROM journal WHERE seq >= ? AND seq < ?", (start, min(start + STEP, hi))).rowcount
    with store.transaction() as tx:
        tx.execute("DELETE FROM meta WHERE key = ?", (audit.APPLYING,))
    log.debug("archive at entry %s: deleted %s, the longest transaction %.3f s", seq, counts, steps.longest)
    return {**counts, "longest_transaction_s": round(steps.longest, 3)}


def _store_hash(conn: sqlite3.Connection, schema: str, seq: int, digest: str | None) -> None:
    """Have the row of entry `seq` keep its whole hash (since schema 11 most rows keep a part; the
    hash is the row's own, worked out: keeping it whole changes no entry). Nothing for the genesis."""
    if digest is not None:
        conn.execute(f"UPDATE {schema}.journal SET hash = ? WHERE seq = ? AND length(hash) < 32", (bytes.fromhex(digest), seq))


def reclaim(store: Store, pages: int = 2048) -> int:
    """Return free pages to the filesystem when the store is in incremental auto-vacuum mode, a
    few MB per short transaction; returns the pages returned (0 in any other mode: SQLite reuses
    them for new records, and `vacuum` returns them)."""
    if store.query("PRAGMA auto_vacuum")[0]["auto_vacuum"] != 2:
        return 0
    returned = 0
    while (free := store.query("PRAGMA freelist_count")[0]["freelist_count"]) > 0:
        with store.transaction() as tx:
            tx.execute(f"PRAGMA incremental_vacuum({min(free, pages)})").fetchall()
        returned += min(free, pages)
    if returned:
        store.query("PRAGMA wal_checkpoint(TRUNCATE)")  # the pages moved through the WAL: it shrinks too
    return returned


def vacuum(path: Path) -> None:
    """Rewrite the store without its free pages, in incremental auto-vacuum mode from then on (so
    later archives return their space in short steps). Holds the store for the whole rewrite."""
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()  # the rewrite went through the WAL
    finally:
        conn.close()


# Reading and verifying an archive --------------------------------------------------------------


class Archive:
    """An archive file, decompressed beside it (or in the temporary directory), read-only.
    query() and stream() as the Store has them, so the manager's ledger reads it as it reads the
    live store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = _scratch(path)
        try:
            with lzma.open(path, "rb") as src, open(self._tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (lzma.LZMAError, EOFError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise ArchiveInvalid(f"{path}: not an archive file ({exc})") from None
        self.conn = sqlite3.connect(f"file:{self._tmp}?mode=ro", uri=True)
        try:
            self.manifest = {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM manifest")}
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ArchiveInvalid(f"{path}: not an archive file ({exc})") from None
        if self.manifest.get("format") != FORMAT:
            self.close()
            raise ArchiveInvalid(f"{path}: archive format {self.manifest.get('format')!r}, this edge reads {FORMAT}")

    def close(self) -> None:
        self.conn.close()
        self._tmp.unlink(missing_ok=True)

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return list(self.stream(sql, params))

    def stream(self, sql: str, params: Any = ()) -> Iterator[dict[str, Any]]:
        cursor = self.conn.execute(sql, params if isinstance(params, dict) else tuple(params))
        columns = [d[0] for d in cursor.description or ()]
        for row in cursor:
            yield dict(zip(columns, row))


def _scratch(path: Path) -> Path:
    """A file to decompress into: beside the archive (a disk, not a RAM-backed /tmp) when writable."""
    for where in (path.parent, None):
        try:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".db", dir=where)
        except OSError:
            continue
        os.close(fd)
        return Path(name)
    raise ArchiveInvalid(f"{path}: nowhere to decompress it")


@contextmanager
def opened(path: Path) -> Iterator[Archive]:
    archive = Archive(path)
    try:
        yield archive
    finally:
        archive.close()


@dataclass
class ArchiveReport:
    manifest: dict[str, Any]
    chain: journal.ChainReport
    records: replay.RecordsReport | None = None
    problems: list[str] = field(default_factory=list)
    live: str | None = None  # how the live store's record of this archive compares (None: no live store)
    witnessed: int = 0  # witnessed heads within the archive's entries, compared

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems and self.records is not None and self.records.ok

    def problem(self) -> str | None:
        if not self.chain.ok:
            return f"journal broken at entry {self.chain.first_bad_seq}: {self.chain.problem}"
        if self.records is not None and self.records.first is not None:
            return str(self.records.first)
        return self.problems[0] if self.problems else None


def verify(archive: Archive, live: Store | None = None, witness: list[audit.Head] | None = None) -> ArchiveReport:
    """The archive on its own (its chain from its anchor to its head, its rows against its entries
    from the start state, its end state, its digests), and against what the live store journalled
    of it when there is one."""
    m, conn = archive.manifest, archive.conn
    lo, hi = m["anchor"]["entry"], m["head"]["entry"]
    chain = journal.verify(conn, None if lo == 0 else (lo, m["anchor"]["hash"]))
    report = ArchiveReport(m, chain)
    if not chain.ok:
        return report
    if (chain.head_seq, chain.head_hash) != (hi, m["head"]["hash"]):
        report.problems.append(f"the chain ends at entry {chain.head_seq}, the manifest says {hi}")
    start = replay.State.from_data(m["start_state"])
    opened_fills = len(start.open_fills)
    report.records, reached = replay.replay_check(conn, FILL_COLUMNS, start, lo, hi, finish=False, segment_rows=True)
    finished = opened_fills + (reached.fills - m["start_state"]["fills"]) - len(reached.open_fills)
    # The outbox rows counted are those queued before schema 11; later ones are checked by id.
    stored = {"fills": conn.execute("SELECT count(*) FROM fills").fetchone()[0], "outbox": replay.legacy_outbox(conn)}
    if stored["fills"] != finished:
        report.problems.append(f"{stored['fills']} fills rows, but its entries finish {finished} fills")
    if stored["outbox"] != reached.outbox - m["start_state"]["outbox"]:
        report.problems.append(f"{stored['outbox']} outbox rows, but its entries queue {reached.outbox - m['start_state']['outbox']}")
    if journal.canonical(reached.as_data()) != journal.canonical(m["end_state"]):
        report.problems.append("the manifest's end state is not what the entries imply")
    for table, a, b, expected in m["checkpoint"]["pieces"]:
        if audit.digest(conn, table, m["checkpoint"]["columns"][table], a, b) != expected:
            report.problems.append(f"{table} rows {a + 1}-{b} differ from the archive's checkpoint digest")
    for head in witness or []:
        if lo < head.entry <= hi:
            found = journal.entry_hash(conn, head.entry)
            report.witnessed += 1
            if found != head.hash:  # first: a rewritten history holds together otherwise
                report.problems.insert(0, f"entry {head.entry} has hash {(found or 'none')[:16]}… but {head.hash[:16]}…"
                                       " was witnessed: the history was rewritten after it was sent out")
    if live is not None:
        _against_live(report, live)
    return report


def _against_live(report: ArchiveReport, live: Store) -> None:
    """What the live store journalled of this month's file: its head and checkpoint must match;
    and if it is the newest archive, the live chain must begin at its head."""
    m = report.manifest
    recorded = None
    for row in live.query("SELECT data FROM journal WHERE kind = ? AND fill_id IS NULL ORDER BY seq", [audit.ARCHIVED]):
        for item in journal.load(row["data"])["files"]:
            if item["month"] == m["month"] and item["last_entry"] == m["head"]["entry"]:
                recorded = item
    base = live.query("SELECT data FROM journal WHERE kind = ? AND fill_id IS NULL ORDER BY seq DESC LIMIT 1", [audit.ARCHIVED])
    if recorded is None:
        report.live = ("not recorded by the live store (an older store's, another station's, or the live store"
                       " is older than the archive)")
        if not base:
            return
    elif recorded["head"] != m["head"]["hash"] or recorded["checkpoint"] != checkpoint_digest(m["checkpoint"]):
        report.live = "DIFFERS from what the live store recorded when it was made"
        report.problems.append(f"the archive's head or digests differ from the live store's record of {m['month']}")
        return
    else:
        report.live = "matches the live store's record"
    newest = journal.load(base[0]["data"]) if base else None
    if newest is not None and newest["upto"] == m["head"]["entry"]:
        # The live chain holds the entry the archived entry names (`edge verify` proves it walks from there).
        if newest["head"] != m["head"]["hash"]:
            report.live = "the live store does NOT begin at this archive's head"
            report.problems.append(f"the live chain's base (entry {newest['upto']}) is not this archive's head")
        else:
            report.live += "; the live chain begins at its head"
