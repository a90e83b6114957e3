"""Replay the journal and check the rows people read against it.

The hash chain proves the journal was not altered; this proves the tables were not either: every
fills row, every outbox payload (what the city receives) and every staff and shift row must be
exactly what the journal's entries imply. The first difference is named by table, key and field.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import journal

BASELINE = "records_baseline"
# The fills columns a journalled milestone can set; anything else keeps its schema default.
FILL_CONTEXT = ("operator", "checker", "medium")
STAFF_COLUMNS = ("name", "source", "active")
SHIFT_COLUMNS = ("operator", "checker")


@dataclass(frozen=True)
class Mismatch:
    table: str  # fills, outbox, staff or shifts
    key: str  # the fill id, outbox id, staff id or lane
    field: str
    stored: Any
    journalled: Any

    def __str__(self) -> str:
        what = {"fills": "fill", "outbox": "outbox row", "staff": "staff", "shifts": "shift of lane"}[self.table]
        return f"{what} {self.key}: {self.field} is {self.stored!r} but the journal implies {self.journalled!r}"


@dataclass
class RecordsReport:
    checked: dict[str, int] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def first(self) -> Mismatch | None:
        return self.mismatches[0] if self.mismatches else None


def outbox_slot(fill_id: str | None, kind: str, key: str) -> tuple[str, str, str]:
    """Where a queued outbox row is expected. A fill owes one row of each kind, so its rows are
    found by (fill, kind) and an edited key shows as that field; a row of the staff's scan points
    (check, dispatch, binding) has no fill, and a cylinder has many of them: found by its key."""
    return (fill_id, kind, "") if fill_id else ("", kind, key)


def outbox_digest(kind: str, fill_id: str | None, key: str, payload: str) -> str:
    return hashlib.sha256(journal.canonical([kind, fill_id, key, payload]).encode()).hexdigest()


@dataclass
class _Replay:
    fills: dict[str, dict[str, Any]] = field(default_factory=dict)  # in order of authorisation
    legacy_context: dict[str, list[Any]] = field(default_factory=dict)
    outbox: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)  # outbox_slot -> key, payload
    legacy_outbox: dict[int, str] = field(default_factory=dict)  # outbox id -> digest
    staff: dict[str, dict[str, Any]] = field(default_factory=dict)
    shifts: dict[str, dict[str, Any]] = field(default_factory=dict)


def _entries(conn: sqlite3.Connection) -> Iterator[tuple[str, str | None, str | None, dict[str, Any]]]:
    for kind, lane, fill_id, data in conn.execute("SELECT kind, lane, fill_id, data FROM journal ORDER BY seq"):
        yield kind, lane, fill_id, json.loads(data)


def _replay(conn: sqlite3.Connection, fill_columns: frozenset[str]) -> _Replay:
    r = _Replay()
    for kind, lane, fill_id, data in _entries(conn):
        if kind.startswith("fill_") and fill_id is not None:
            status = kind.removeprefix("fill_")
            fields = {k: v for k, v in data.items() if k in fill_columns}
            if status == "authorised":
                context = {k: v for k, v in (data.get("context") or {}).items() if k in FILL_CONTEXT}
                r.fills[fill_id] = {"id": fill_id, "lane": lane, **{c: None for c in fill_columns}, "tripped": 0,
                                    **{c: None for c in FILL_CONTEXT}, **context, "status": status, **fields}
                if "context" not in data:
                    r.legacy_context[fill_id] = []
            elif fill_id in r.fills:
                r.fills[fill_id].update({"status": status, **fields})
        elif kind == "outbox_queued":
            for row in data["rows"]:
                r.outbox[outbox_slot(fill_id, row["kind"], row["key"])] = (row["key"], journal.canonical(row["payload"]))
        elif kind in ("staff_registered", "staff_configured"):
            person = r.staff.setdefault(data["id"], {"source": "command" if kind == "staff_registered" else "config", "active": 1})
            person["name"] = data["name"]
            if kind == "staff_configured":
                # The config names a person again: one `edge staff remove` retired stays retired.
                person["source"] = "config"
            else:
                person["active"] = 1
        elif kind == "staff_removed" and data["id"] in r.staff:
            r.staff[data["id"]]["active"] = 0
        elif kind == "shift_configured" and lane is not None:
            r.shifts.setdefault(lane, {"operator": data["operator"], "checker": data["checker"]})
        elif kind == "shift_changed" and lane is not None:
            r.shifts[lane] = {"operator": data["operator"], "checker": data["checker"]}
        elif kind == BASELINE:
            # Rows written before their changes were journalled, as they stood at the upgrade.
            r.staff.update({p["id"]: {k: p[k] for k in STAFF_COLUMNS} for p in data.get("staff", [])})
            r.shifts.update({s["lane"]: {k: s[k] for k in SHIFT_COLUMNS} for s in data.get("shifts", [])})
            r.legacy_context.update(data.get("fill_context", {}))
            r.legacy_outbox.update({int(k): v for k, v in data.get("outbox", {}).items()})
    for fill_id, context in r.legacy_context.items():
        if fill_id in r.fills and context:
            r.fills[fill_id].update(dict(zip(FILL_CONTEXT, context)))
    return r


def check(conn: sqlite3.Connection, fill_columns: frozenset[str], limit: int = 20) -> RecordsReport:
    """Every fills, outbox, staff and shifts row against the journal's replay."""
    r = _replay(conn, fill_columns)
    report = RecordsReport()
    out = report.mismatches

    def compare(table: str, key: str, stored: dict[str, Any] | None, expected: dict[str, Any] | None, columns: Any) -> None:
        if stored is None or expected is None:
            out.append(Mismatch(table, key, "(row)", "missing" if stored is None else "present",
                                "missing" if expected is None else "present"))
            return
        for column in columns:
            if column in stored and stored[column] != expected.get(column):
                out.append(Mismatch(table, key, column, stored[column], expected.get(column)))
                return

    stored_fills = {row["id"]: row for row in _rows(conn, "SELECT * FROM fills")}
    unchecked_context = {k for k, v in r.legacy_context.items() if not v}
    for fill_id, expected in r.fills.items():
        columns = [c for c in expected if c != "id" and not (fill_id in unchecked_context and c in FILL_CONTEXT)]
        compare("fills", fill_id, stored_fills.pop(fill_id, None), expected, columns)
    for fill_id in stored_fills:
        compare("fills", fill_id, stored_fills[fill_id], None, ())
    report.checked["fills"] = len(r.fills)

    outbox = _rows(conn, "SELECT id, kind, fill_id, idempotency_key, payload FROM outbox ORDER BY id")
    for row in outbox:
        digest = r.legacy_outbox.get(row["id"])
        if digest is not None:
            if digest != outbox_digest(row["kind"], row["fill_id"], row["idempotency_key"], row["payload"]):
                out.append(Mismatch("outbox", str(row["id"]), "payload", "changed since the upgrade baseline", digest))
            continue
        queued = r.outbox.pop(outbox_slot(row["fill_id"], row["kind"], row["idempotency_key"]), None)
        expected = None if queued is None else {"idempotency_key": queued[0], "payload": queued[1]}
        compare("outbox", f"{row['id']} (fill {row['fill_id']}, {row['kind']})", row, expected, ("idempotency_key", "payload"))
    for (fill_id, kind, key), _ in r.outbox.items():
        compare("outbox", f"(fill {fill_id or None}, {kind}{'' if fill_id else ', ' + key})", None, {}, ())
    report.checked["outbox"] = len(outbox)

    for table, key_column, columns, expected_rows in (
        ("staff", "id", STAFF_COLUMNS, r.staff),
        ("shifts", "lane", SHIFT_COLUMNS, r.shifts),
    ):
        stored_rows = {row[key_column]: row for row in _rows(conn, f"SELECT * FROM {table}")}
        for key in sorted(set(stored_rows) | set(expected_rows)):
            compare(table, key, stored_rows.get(key), expected_rows.get(key), columns)
        report.checked[table] = len(stored_rows)
    del out[limit:]
    return report


def _rows(conn: sqlite3.Connection, sql: str) -> list[dict[str, Any]]:
    cursor = conn.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor]


def baseline(conn: sqlite3.Connection, ts: str) -> None:
    """Journal the rows that earlier versions wrote without journalling them (staff and shifts,
    each fill's shift context, the outbox rows), so `edge verify` can hold them to what they were
    at the upgrade. Nothing is journalled for an empty store."""
    staff = _rows(conn, "SELECT id, name, source, active FROM staff ORDER BY id")
    shifts = _rows(conn, "SELECT lane, operator, checker FROM shifts ORDER BY lane")
    contexts = {r["id"]: [r[c] for c in FILL_CONTEXT] for r in _rows(conn, "SELECT id, operator, checker, medium FROM fills")}
    outbox = {
        str(r["id"]): outbox_digest(r["kind"], r["fill_id"], r["idempotency_key"], r["payload"])
        for r in _rows(conn, "SELECT id, kind, fill_id, idempotency_key, payload FROM outbox")
    }
    if staff or shifts or contexts or outbox:
        data = {"staff": staff, "shifts": shifts, "fill_context": contexts, "outbox": outbox}
        journal.append(conn, ts, BASELINE, data)
