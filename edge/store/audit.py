"""Checkpointed verification: what `edge verify`, the daily report and the export run.

A successful verify appends a checkpoint entry (kind "verified") to the journal itself: the entry
it proved up to and that entry's hash, the replay's state there (staff, shifts, fills still open,
row counts), where the rows it proved end (fills rowid, outbox id), and the digests of the rows of
the segment it proved (journal entries, fills rows, outbox rows), cut in pieces of at most CHUNK
rows. The next verify then

  * walks the hash chain only from the checkpoint's head (the checkpoint entry is itself chained:
    forging one means recomputing every hash after it, which a witnessed head catches);
  * replays only the entries since, from the checkpoint's state, holding the rows they imply to them;
  * re-checks older rows by their digests: a piece at a time, oldest first and round the whole
    history, up to a budget of rows per run (a cursor in the checkpoint says where the next run
    resumes), so an edit to any old row or entry is caught by the run that reaches its piece;
    when the history is within the budget every run re-checks all of it.

`full=True` (`edge verify --full`) trusts no checkpoint: it walks and replays from the genesis.

After `edge archive` (edge.store.archive) the entries before its cut are in archive files: the
live chain begins at the archive's head, an entry of kind "archived" records that head and the
replay's state there, and verification (full or not) starts from it; the checkpoints before it
name rows that moved out, so only those journalled after it are re-checked.
Either way memory is bounded: rows are streamed, and only fills in progress are held.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from . import journal, replay

CHECKPOINT = "verified"
ARCHIVED = "archived"  # an `edge archive`: where the live chain begins now, and the state there
APPLYING = "archive_applying"  # meta key, set while an archive's rows are deleted from the live store
CHUNK = 50_000  # rows per digested piece: a piece is re-checked whole
BUDGET_ROWS = 200_000  # older rows re-checked by digest per incremental run (about 1.5 s on a loaded 2-core PC)
OUTBOX_COLUMNS = ("id", "kind", "fill_id", "idempotency_key", "payload")  # what the journal fixes of a row
# table -> (its key column, its digested columns; None: the columns the checkpoint names)
_KEYS = {"journal": "seq", "fills": "rowid", "outbox": "id"}


def digest(conn: sqlite3.Connection, table: str, columns: list[str], lo: int, hi: int) -> str:
    """sha256 of the rows lo < key <= hi, each column as SQLite quotes it (unambiguous, in C)."""
    key = _KEYS[table]
    expr = "||char(31)||".join(f"quote({c})" for c in [key, *columns])
    cursor = conn.execute(f"SELECT {expr}||char(30) FROM {table} WHERE {key} > ? AND {key} <= ? ORDER BY {key}", (lo, hi))
    h = hashlib.sha256()
    while rows := cursor.fetchmany(4096):
        h.update("".join(r[0] for r in rows).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def pieces(table: str, lo: int, hi: int) -> list[tuple[str, int, int]]:
    """(table, lo, hi] cut at multiples of CHUNK."""
    out = []
    while lo < hi:
        end = min(hi, (lo // CHUNK + 1) * CHUNK)
        out.append((table, lo, end))
        lo = end
    return out


@dataclass
class Audit:
    full: bool
    chain: journal.ChainReport
    records: replay.RecordsReport | None = None
    since: int = 0  # the entry the last checkpoint proved up to (0: from the genesis)
    changed: list[str] = field(default_factory=list)  # older pieces whose digest differs
    rechecked_rows: int = 0
    older_rows: int = 0
    cursor: list[int] = field(default_factory=lambda: [0, 0])  # where the next run's re-check resumes
    witnessed: int = 0  # heads given from outside (a printed report, the fleet) that were compared
    unwitnessed: list[str] = field(default_factory=list)  # those the local chain does not hold
    checkpoint: dict[str, Any] | None = None  # what to journal when ok
    unrecorded: str | None = None  # why a checkpoint that was due was not journalled (a read-only store)
    base: int = 0  # the archive's head the live chain begins at (0: the genesis, nothing archived)
    applying: bool = False  # an archive's rows are still being deleted: no checkpoint meanwhile
    archived_heads: int = 0  # witnessed heads before the live chain's base: `edge verify --archive` checks them

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.records is not None and self.records.ok and not self.changed and not self.unwitnessed

    def problem(self) -> str | None:
        if not self.chain.ok:
            return f"journal broken at entry {self.chain.first_bad_seq}: {self.chain.problem}"
        if self.unwitnessed:  # first: a history rewritten from the genesis holds together otherwise
            return self.unwitnessed[0]
        first = None if self.records is None else self.records.first
        if first is not None:
            return str(first)
        return f"rows changed after they were verified: {self.changed[0]}" if self.changed else None


@dataclass(frozen=True)
class Head:
    """A chain head as it was witnessed outside the station: entry number and its hash."""

    entry: int
    hash: str


def parse_heads(text: str) -> list[Head]:
    """Heads from a witness file: the JSON of `edge report daily --json` (its chain_head), a JSON
    head {"entry": n, "hash": h} or a list of them, or text lines "ENTRY HASH" (as a report prints
    them: "chain head: entry 123 sha256 ab12..."). ValueError when nothing in it is a head."""
    heads: list[Head] = []
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if data is not None:
        items = data if isinstance(data, list) else [data]
        for item in items:
            item = item.get("chain_head", item) if isinstance(item, dict) else item
            if not (isinstance(item, dict) and isinstance(item.get("entry"), int) and isinstance(item.get("hash"), str)):
                raise ValueError(f"not a chain head: {json.dumps(item, ensure_ascii=False)[:80]}")
            heads.append(Head(item["entry"], item["hash"].lower()))
    else:
        for match in re.finditer(r"(\d+)\s+(?:sha256[:\s]+)?([0-9a-fA-F]{64})\b", text):
            heads.append(Head(int(match.group(1)), match.group(2).lower()))
    if not heads:
        raise ValueError("no chain head in it (expected entry numbers with their 64-digit sha256 hashes)")
    return heads


def compare_heads(conn: sqlite3.Connection, audit: Audit, heads: list[Head]) -> None:
    """Each witnessed head against the local chain: a station that rewrote its history, even every
    hash from the genesis on, holds other hashes than the ones it sent out before."""
    for head in heads:
        if head.entry < audit.base:
            audit.archived_heads += 1
            continue
        audit.witnessed += 1
        stored = journal.entry_hash(conn, head.entry)
        if stored is None:
            audit.unwitnessed.append(f"witnessed head entry {head.entry} is not in the journal (removed or archived)")
        elif stored != head.hash:
            audit.unwitnessed.append(f"entry {head.entry} has hash {stored[:16]}… but {head.hash[:16]}… was witnessed:"
                                     " the history was rewritten after it was sent out")


def last_checkpoint(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]] | None:
    row = conn.execute("SELECT seq, data FROM journal WHERE kind = ? AND fill_id IS NULL ORDER BY seq DESC LIMIT 1", (CHECKPOINT,)).fetchone()
    return None if row is None else (row[0], journal.load(row[1]))


def rebase_point(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]] | None:
    """The newest "archived" entry and its data (upto, head, state): None when nothing was archived."""
    row = conn.execute("SELECT seq, data FROM journal WHERE kind = ? AND fill_id IS NULL ORDER BY seq DESC LIMIT 1", (ARCHIVED,)).fetchone()
    return None if row is None else (row[0], journal.load(row[1]))


def run(conn: sqlite3.Connection, fill_columns: frozenset[str], full: bool = False, budget: int = BUDGET_ROWS,
        witness: list[Head] | None = None, fills: tuple[int, int] | None = None) -> Audit:
    """Verify (in the caller's read transaction, so every figure is of one snapshot). `fills`: a
    report's rows (first and last fills rowid): their pieces are re-checked, whatever the budget."""
    audit = _run(conn, fill_columns, full, budget, fills)
    if witness:
        compare_heads(conn, audit, witness)
        if audit.unwitnessed:
            audit.checkpoint = None
    return audit


def _run(conn: sqlite3.Connection, fill_columns: frozenset[str], full: bool, budget: int,
         fills: tuple[int, int] | None = None) -> Audit:
    last = last_checkpoint(conn)
    rebased = rebase_point(conn)
    if rebased is not None and last is not None and last[0] < rebased[0]:
        last = None  # it names rows the archive moved out
    base = None if full or last is None else last[1]
    if base is None and rebased is not None:  # from the archive's head: the chain before it is archived
        base = {**rebased[1], "fills_rowid": 0, "outbox_id": 0}
    after = None if base is None else (base["upto"], base["head"])
    audit = Audit(full, journal.verify(conn, after), since=0 if base is None else base["upto"])
    audit.base = 0 if rebased is None else rebased[1]["upto"]
    audit.applying = conn.execute("SELECT 1 FROM meta WHERE key = ?", (APPLYING,)).fetchone() is not None
    if not audit.chain.ok:
        return audit
    upto = audit.chain.head_seq
    state = None if base is None else replay.State.from_data(base["state"])
    audit.records, reached = replay.replay_check(
        conn, fill_columns, state, audit.since, upto,
        fills_after=0 if base is None else base["fills_rowid"], outbox_after=0 if base is None else base["outbox_id"])
    if last is not None and not full:
        # Also when the replay found a difference: an edited older entry a row still points at
        # (an upload waiting since before the checkpoint) is named by the full replay below.
        _recheck(conn, audit, last, budget, fills, 0 if rebased is None else rebased[0])
        if audit.changed:
            # Name the entry or the row itself: the full replay does (on this, the failure path, only).
            named = _run(conn, fill_columns, True, budget)
            named.changed, named.rechecked_rows, named.older_rows = audit.changed, audit.rechecked_rows, audit.older_rows
            named.checkpoint = None
            return named
    if audit.ok and not audit.applying:
        audit.checkpoint = _checkpoint(conn, audit, last, reached)
    return audit


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _checkpoint(conn: sqlite3.Connection, audit: Audit, last: tuple[int, dict[str, Any]] | None,
                reached: replay.State) -> dict[str, Any]:
    """What the next verify may take as proven: the segment since the last checkpoint, digested."""
    # The first checkpoint after an archive digests every row the live store still holds.
    prev = last[1] if last is not None else {"upto": audit.base, "fills_rowid": 0, "outbox_id": 0}
    # Rows of fills still open change yet: the proven fills end before the first of them.
    open_rowid = conn.execute(
        "SELECT min(rowid) FROM fills WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(reached.open_fills)),)
    ).fetchone()[0]
    fills_rowid = (open_rowid - 1) if open_rowid is not None else conn.execute("SELECT coalesce(max(rowid), 0) FROM fills").fetchone()[0]
    fills_rowid = max(fills_rowid, prev["fills_rowid"])
    # Only rows queued before schema 11 are digested: later ones leave the outbox once delivered,
    # and the replay checks those still in it against their entries (replay.check_queued).
    legacy = " WHERE queued_seq IS NULL" if replay.tracks_queued(conn) else ""
    outbox_id = max(prev["outbox_id"], conn.execute(f"SELECT coalesce(max(id), 0) FROM outbox{legacy}").fetchone()[0])
    columns = {"journal": list(journal.STORED_COLUMNS), "fills": _columns(conn, "fills"), "outbox": list(OUTBOX_COLUMNS)}
    segment = (pieces("journal", prev["upto"], audit.chain.head_seq) + pieces("fills", prev["fills_rowid"], fills_rowid)
               + pieces("outbox", prev["outbox_id"], outbox_id))
    return {
        "upto": audit.chain.head_seq,
        "head": audit.chain.head_hash,
        "full": audit.full,
        "state": reached.as_data(),
        "fills_rowid": fills_rowid,
        "outbox_id": outbox_id,
        "columns": columns,
        "pieces": [[t, lo, hi, digest(conn, t, columns[t], lo, hi)] for t, lo, hi in segment],
        "cursor": audit.cursor,
        "previous": None if last is None else last[0],
    }


def _recheck(conn: sqlite3.Connection, audit: Audit, last: tuple[int, dict[str, Any]], budget: int,
             fills: tuple[int, int] | None, rebased: int = 0) -> None:
    """Re-digest older pieces from the last checkpoint's cursor, round the history, within budget;
    and every piece of the fills a report reads. Only checkpoints after the `rebased` entry (the
    newest archive) count: those before it digest rows that are in the archive files now."""
    audit.cursor = list(last[1].get("cursor", [0, 0]))
    listed: list[tuple[int, int, list[Any], dict[str, list[str]]]] = []  # (checkpoint seq, index, piece, columns)
    for seq, data in conn.execute("SELECT seq, data FROM journal WHERE kind = ? AND fill_id IS NULL AND seq > ? AND seq <= ?"
                                  " ORDER BY seq",
                                  (CHECKPOINT, rebased, audit.chain.head_seq)):
        entry = journal.load(data)
        listed += [(seq, i, piece, entry["columns"]) for i, piece in enumerate(entry.get("pieces", []))]
    audit.older_rows = sum(p[2] - p[1] for _, _, p, _ in listed)
    if fills is not None:
        for seq, _, (table, lo, hi, expected), columns in listed:
            if table == "fills" and lo < fills[1] and hi >= fills[0]:
                _check_piece(conn, audit, seq, table, lo, hi, expected, columns)
    if not listed or budget <= 0:
        return
    cursor = tuple(last[1].get("cursor", [0, 0]))
    start = next((n for n, (seq, i, _, _) in enumerate(listed) if (seq, i) >= cursor), 0)
    n = start
    for _ in range(len(listed)):
        seq, i, (table, lo, hi, expected), columns = listed[n]
        if audit.rechecked_rows and audit.rechecked_rows + (hi - lo) > budget:
            break
        _check_piece(conn, audit, seq, table, lo, hi, expected, columns)
        n = (n + 1) % len(listed)
    audit.cursor = [listed[n][0], listed[n][1]]


def _check_piece(conn: sqlite3.Connection, audit: Audit, seq: int, table: str, lo: int, hi: int, expected: str,
                 columns: dict[str, list[str]]) -> None:
    audit.rechecked_rows += hi - lo
    if digest(conn, table, columns[table], lo, hi) != expected:
        what = {"journal": "journal entries", "fills": "fills rows (by rowid)", "outbox": "outbox rows"}[table]
        audit.changed.append(f"{what} {lo + 1}-{hi}, verified by the checkpoint at entry {seq}, differ from their digest")
