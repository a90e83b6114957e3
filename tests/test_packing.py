"""Journal data packed (edge/store/packing.py): what goes in comes back, the dictionary never
changes, and a packed row that was tampered with is an altered entry for `edge verify`, named."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.store import Store, journal, packing
from tests.test_archive import JAN, _station, edge

ENTRIES = [
    {},
    {"accepted": True, "code": "https://qr.example/trace?code=CQ50011200000248", "cylinder_id": "500112000000248",
     "details": [], "fill_id": "0f8e3c1a-5d2b-4c6e-9a7f-3b1d2e4f5a6b", "raw_hex": None, "reasons": [], "source": "cache"},
    {"name": "张三", "code": "AB\x00CD", "why": "a NUL and \u2028 stay", "n": 1.5e-7, "list": [None, False, 0]},
    {"big": "x" * 100_000},
]


@pytest.mark.parametrize("data", ENTRIES)
def test_a_packed_entry_unpacks_to_its_canonical_text(data: dict[str, object]) -> None:
    text = journal.canonical(data)
    packed = packing.pack(text)
    assert packed[0] == packing.VERSION and packing.unpack(packed) == text
    assert journal.load(packed) == json.loads(text)


def test_a_typical_entry_packs_to_well_under_half() -> None:
    text = journal.canonical(ENTRIES[1])
    assert len(packing.pack(text)) < len(text.encode()) / 2


def test_a_text_row_is_read_as_it_is() -> None:
    assert packing.unpack('{"a":1}') == '{"a":1}'
    assert journal.load('{"a":1}') == {"a": 1}


def test_the_dictionary_is_frozen() -> None:
    """Every row packed as version 1 needs this very dictionary to be read: a different one is a
    version 2, beside it."""
    assert hashlib.sha256(packing.DICTIONARY).hexdigest() == "d254b51008fc4fb64ff7b54646a4da497c5090c7710de76ba7a5535b8155a270"


@pytest.mark.parametrize(("value", "said"), [
    (b"\x02" + packing.pack("{}")[1:], "version 2"),
    (b"", "empty"),
    (b"\x01\xff\xff\xff\xff", "does not decompress"),
    (packing.pack('{"a":1}')[:-2], "truncated"),
    (packing.pack('{"a":1}') + b"\x00", "after its end"),
    (7, "int"),
])
def test_what_is_not_a_packed_entry_is_refused_clearly(value: bytes, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        packing.unpack(value)


def test_text_rows_and_packed_rows_verify_in_one_chain(tmp_path: Path) -> None:
    """Rows written before schema 11 hold the text: the hash is of the text either way."""
    store = Store(tmp_path / "s.db")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        for n in range(6):
            store.journal(now, "note", {"n": n, "text": "第{n}条"})
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        for seq in (1, 2, 4):  # as an earlier release wrote them
            conn.execute("UPDATE journal SET data = ? WHERE seq = ?", (packing.unpack(_data(conn, seq)), seq))
        forms = [r[0] for r in conn.execute("SELECT typeof(data) FROM journal ORDER BY seq")]
    assert forms == ["text", "text", "blob", "text", "blob", "blob"]
    store = Store(tmp_path / "s.db")
    try:
        assert store.verify().ok and store.verify().entries == 6
    finally:
        store.close()


def _data(conn: sqlite3.Connection, seq: int) -> bytes:
    return bytes(conn.execute("SELECT data FROM journal WHERE seq = ?", (seq,)).fetchone()[0])


@pytest.mark.parametrize("where", ["middle", "version"])
def test_a_flipped_byte_in_a_packed_row_is_named_by_edge_verify(tmp_path: Path, where: str) -> None:
    db, config = _station(tmp_path, (JAN,))
    first = edge(config, "verify", "--json")  # its checkpoint digests the row: the incremental verify finds it by that
    assert first.returncode == 0, first.stdout + first.stderr
    with sqlite3.connect(db) as conn:
        seq = conn.execute("SELECT min(seq) FROM journal WHERE kind = 'fill_complete'").fetchone()[0]
        data = bytearray(_data(conn, seq))
        data[len(data) // 2 if where == "middle" else 0] ^= 0x01
        conn.execute("UPDATE journal SET data = ? WHERE seq = ?", (bytes(data), seq))
    for args in (["verify"], ["verify", "--full"]):
        result = edge(config, *args, "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        problem = json.loads(result.stdout)["problem"]
        assert f"entry {seq} was altered" in problem, (args, problem)
        if where == "version":
            assert "version 0" in problem
