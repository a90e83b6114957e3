"""The append-only journal: each entry's hash covers its predecessor's hash and its own columns.

An entry's hash is sha256(predecessor's hash as 64 hex digits + the canonical JSON of its columns),
the definition every release has used, so old chains verify unchanged. How a row stores it changed
with schema 10: rows written since keep their hash as 32 bytes and no copy of the predecessor's
(it is the previous row's hash); older rows keep both as hex text, and are left as they are (the
checkpoints already journalled digest them as stored).

Since schema 11 a row stores its data packed (edge/store/packing.py: a version byte and deflate of
the canonical JSON text, a BLOB); older rows keep the text. The hash is of the text either way, so
packing changed no hash: read the data with load() (or packing.unpack for the text).

Since schema 11, too, a row stores only the first SHORT bytes of its hash, and every ANCHOR_EVERY-th
row the whole of it: each hash follows from the one before and the row, so a whole one is worked
out when needed (entry_hash: from the nearest row that keeps it, a few dozen rows back). A verify works
every hash out from a proven point (the genesis, a checkpoint's or an archive's head) and must arrive
at the head stored whole with every append; what each row keeps of its hash names the entry an edit
is in (a forged edit that matched those bytes by chance would still not reach the head).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from .packing import pack, unpack

GENESIS = "0" * 64
SHORT = 4  # bytes of its hash a row since schema 11 keeps (enough to name an altered entry)
ANCHOR_EVERY = 32  # ... and the whole hash, when its number is a multiple of this
_COLUMNS = ("seq", "ts", "lane", "kind", "fill_id", "cylinder_id", "data")
# Every stored column but the key, as a checkpoint digests them.
STORED_COLUMNS = _COLUMNS[1:] + ("prev_hash", "hash")


def canonical(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def stored_hash(seq: int, digest: str) -> bytes:
    """What a new row keeps of its hash."""
    whole = bytes.fromhex(digest)
    return whole if seq % ANCHOR_EVERY == 0 else whole[:SHORT]


def hex_hash(stored: str | bytes) -> str:
    """A stored hash as hex: 32 bytes in rows since schema 10, hex text before."""
    return stored.hex() if isinstance(stored, bytes) else stored


def load(value: str | bytes) -> Any:
    """An entry's data as it was appended, from the data column as stored (packed or text).
    ValueError when it cannot be unpacked."""
    return json.loads(unpack(value))


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """The entry's hash; row["data"] is the canonical JSON text (unpacked)."""
    body = canonical([row[c] for c in _COLUMNS])
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def payload_digest(payload_text: str) -> str:
    return hashlib.sha256(payload_text.encode("utf-8")).hexdigest()


def queued(row_id: int, kind: str, key: str, payload_text: str) -> dict[str, Any]:
    """An outbox row as the entry that queued it names it: its id, kind, key and the sha256 of the
    payload as the row stores it. The row holds the payload once; the chained digest makes an edit
    to it show, and the id lets a later entry say the row left the outbox once the city had it.
    (Entries before schema 10 carry the payload itself, and before schema 11 no id.)"""
    return {"id": row_id, "kind": kind, "key": key, "sha256": payload_digest(payload_text)}


def next_seq(conn: sqlite3.Connection) -> int:
    """The number the next entry appended in this transaction gets."""
    head = conn.execute("SELECT seq FROM chain_head WHERE id = 1").fetchone()
    return head[0] + 1 if head else 1


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
        "INSERT INTO journal (seq, ts, lane, kind, fill_id, cylinder_id, data, hash)"
        " VALUES (:seq, :ts, :lane, :kind, :fill_id, :cylinder_id, :data, :hash)",
        {**row, "data": pack(row["data"]), "hash": stored_hash(seq, digest)},
    )
    conn.execute(
        "INSERT INTO chain_head (id, seq, hash) VALUES (1, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        (seq, digest),
    )
    return seq


_ROW = "SELECT seq, ts, lane, kind, fill_id, cylinder_id, data, prev_hash, hash FROM journal"


def entry_hash(conn: sqlite3.Connection, seq: int) -> str | None:
    """The hash of entry `seq` (None: no such entry, or the rows to work it out from are gone):
    stored whole, or worked out from the nearest row before it that stores it whole."""
    anchor = _anchor(conn, seq)
    if anchor is None:
        return None
    start, prev = anchor
    expected = start + 1
    for values in conn.execute(f"{_ROW} WHERE seq > ? AND seq <= ? ORDER BY seq", (start, seq)):
        row = dict(zip(_COLUMNS + ("prev_hash", "hash"), values))
        if row["seq"] != expected:
            return None
        try:
            row["data"] = unpack(row["data"])
        except ValueError:
            return None
        prev, expected = row_hash(prev, row), expected + 1
    return prev if expected == seq + 1 else None


def _anchor(conn: sqlite3.Connection, seq: int) -> tuple[int, str] | None:
    """The newest entry at or before `seq` whose row keeps its whole hash (the genesis when the
    chain begins with entry 1); None when the rows to start from are gone (an archive's cut)."""
    row = conn.execute("SELECT seq, hash FROM journal WHERE seq <= ? AND length(hash) >= 32 ORDER BY seq DESC LIMIT 1",
                       (seq,)).fetchone()
    if row is not None:
        return row[0], hex_hash(row[1])
    first = conn.execute("SELECT min(seq) FROM journal").fetchone()[0]
    return (0, GENESIS) if first in (None, 1) else None


def _holds(stored: str | bytes | None, digest: str) -> bool:
    """Whether a row's stored hash is its hash: whole (hex text before schema 10, 32 bytes), or its
    first SHORT bytes."""
    if isinstance(stored, str):
        return stored == digest
    return stored is not None and len(stored) in (SHORT, 32) and digest.startswith(stored.hex())


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
    altered, removed, inserted or reordered rows all break it. Streams: constant memory. From a
    proven entry whose row keeps only part of its hash, the walk starts at the row before it that
    keeps the whole (a few dozen rows) and must arrive at that entry's proven hash."""
    start_seq, start_hash = after or (0, GENESIS)
    anchor = (0, GENESIS) if after is None else _anchor(conn, start_seq)
    if anchor is None:
        return _start_lost(start_seq)
    walked, prev = anchor
    expected_seq = walked + 1
    count = 0
    for values in conn.execute(f"{_ROW} WHERE seq > ? ORDER BY seq", (walked,)):
        if expected_seq == start_seq + 1 and prev != start_hash:
            return _start_lost(start_seq)
        row = dict(zip(_COLUMNS + ("prev_hash", "hash"), values))
        seq = row["seq"]
        if seq != expected_seq:
            return ChainReport(False, count, expected_seq, f"entry {expected_seq} is missing")
        # Rows before schema 10 (hex hashes) also name their predecessor's hash, and must still name
        # it; newer ones (bytes) leave it to the row before, and must not name any.
        legacy = isinstance(row["hash"], str)
        if (row["prev_hash"] != prev) if legacy else (row["prev_hash"] is not None):
            return ChainReport(False, count, seq, f"entry {seq} does not link to entry {seq - 1}")
        try:
            row["data"] = unpack(row["data"])
        except ValueError as exc:
            return ChainReport(False, count, seq, f"entry {seq} was altered (its data: {exc})")
        prev = row_hash(prev, row)
        if not _holds(row["hash"], prev):
            return ChainReport(False, count, seq, f"entry {seq} was altered")
        expected_seq += 1
        count += seq > start_seq
    last = expected_seq - 1
    if last <= start_seq and (last < start_seq or prev != start_hash):
        return _start_lost(start_seq)
    head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
    head_seq, head_hash = head if head else (0, GENESIS)
    if head_seq != last:
        return ChainReport(False, count, last + 1, f"entries after {last} were removed (head is {head_seq})")
    if head_hash != prev:
        return ChainReport(False, count, last, f"entry {last} was altered, or entries after it removed:"
                           " the chain does not reach the stored head")
    return ChainReport(True, count, head_seq=last, head_hash=prev)


def _start_lost(start_seq: int) -> ChainReport:
    return ChainReport(False, 0, start_seq, f"entry {start_seq}, where the proof starts (the last checkpoint's"
                       " or the archive's head), was altered or removed")
