"""The append-only journal: each row carries the hash of its predecessor."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
_COLUMNS = ("seq", "ts", "lane", "kind", "fill_id", "cylinder_id", "data")
# Every stored column but the key, as a checkpoint digests them.
STORED_COLUMNS = _COLUMNS[1:] + ("prev_hash", "hash")


def canonical(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    body = canonical([row[c] for c in _COLUMNS])
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def append(
    conn: sqlite3.Connection,
    ts: str,
    kind: str,
    data: dict[str, Any],
    lane: str | None = None,
    fill_id: str | None = None,
    cylinder_id: str | None = None,
) -> int:
    """Append one entry. The caller holds a write transaction."""
    head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    row = {
        "seq": seq,
        "ts": ts,
        "lane": lane,
        "kind": kind,
        "fill_id": fill_id,
        "cylinder_id": cylinder_id,
        "data": canonical(data),
    }
    digest = row_hash(prev, row)
    conn.execute(
        "INSERT INTO journal (seq, ts, lane, kind, fill_id, cylinder_id, data, prev_hash, hash)"
        " VALUES (:seq, :ts, :lane, :kind, :fill_id, :cylinder_id, :data, :prev_hash, :hash)",
        {**row, "prev_hash": prev, "hash": digest},
    )
    conn.execute(
        "INSERT INTO chain_head (id, seq, hash) VALUES (1, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        (seq, digest),
    )
    return seq


def entry_hash(conn: sqlite3.Connection, seq: int) -> str | None:
    """The hash entry `seq` carries (None: no such entry), as verify() reports hashes."""
    row = conn.execute("SELECT hash FROM journal WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else row[0]


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head_seq: int = 0  # the last entry proven, and its hash (when ok)
    head_hash: str = GENESIS


def verify(conn: sqlite3.Connection, after: tuple[int, str] | None = None) -> ChainReport:
    """Walk the chain (from the entry `after` = (seq, hash), already proven, else from the genesis):
    altered, removed, inserted or reordered rows all break it. Streams: constant memory."""
    start_seq, prev = after or (0, GENESIS)
    if after is not None:
        row = conn.execute("SELECT hash FROM journal WHERE seq = ?", (start_seq,)).fetchone()
        if row is None or row[0] != prev:
            return ChainReport(False, 0, start_seq, f"entry {start_seq}, where the proof starts (the last checkpoint's"
                               " or the archive's head), was altered or removed")
    expected_seq = start_seq + 1
    count = 0
    cursor = conn.execute(
        "SELECT seq, ts, lane, kind, fill_id, cylinder_id, data, prev_hash, hash FROM journal WHERE seq > ? ORDER BY seq",
        (start_seq,),
    )
    for values in cursor:
        row = dict(zip(_COLUMNS + ("prev_hash", "hash"), values))
        seq = row["seq"]
        if seq != expected_seq:
            return ChainReport(False, count, expected_seq, f"entry {expected_seq} is missing")
        if row["prev_hash"] != prev:
            return ChainReport(False, count, seq, f"entry {seq} does not link to entry {seq - 1}")
        if row_hash(prev, row) != row["hash"]:
            return ChainReport(False, count, seq, f"entry {seq} was altered")
        prev = row["hash"]
        expected_seq += 1
        count += 1
    last = expected_seq - 1
    head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
    head_seq, head_hash = head if head else (0, GENESIS)
    if head_seq != last or head_hash != prev:
        return ChainReport(False, count, last + 1, f"entries after {last} were removed (head is {head_seq})")
    return ChainReport(True, count, head_seq=last, head_hash=prev)
