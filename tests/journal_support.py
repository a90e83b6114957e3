"""Editing journal entries as a tamperer would: since schema 11 an entry's data is packed (a
BLOB), so SQL's text functions cannot reach into it. edit(data, old, new) does what
replace(data, old, new) did, keeping the row's form (text stays text, a packed row is packed
again); unpack(data) reads it, e.g. in a WHERE."""

from __future__ import annotations

import sqlite3

from edge.store import packing


def _edit(data: str | bytes, old: str, new: str) -> str | bytes:
    text = packing.unpack(data).replace(old, new)
    return text if isinstance(data, str) else packing.pack(text)


def editable(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.create_function("unpack", 1, packing.unpack, deterministic=True)
    conn.create_function("edit", 3, _edit, deterministic=True)
    return conn
