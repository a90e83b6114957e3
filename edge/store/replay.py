"""Replay the journal and check the rows people read against it.

The hash chain proves the journal was not altered; this proves the tables were not either: every
fills row, every outbox payload (what the city receives) and every staff and shift row must be
exactly what the journal's entries imply. The first difference is named by table, key and field.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from . import journal

BASELINE = "records_baseline"
DELIVERED = "outbox_delivered"  # rows that left the outbox delivered (edge.store.delivered)
# The fills columns a journalled milestone can set; anything else keeps its schema default.
FILL_CONTEXT = ("operator", "checker", "medium")
STAFF_COLUMNS = ("name", "source", "active")
FINAL_STATUSES = ("complete", "aborted")
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
class State:
    """What the replay knows at a point of the journal: the staff and shift rows as they stand, the
    fills still open (their rows may change yet), how many fills exist, the outbox rows queued
    since schema 11 that no entry has said left (by id), and how many earlier ones exist. A
    checkpoint carries it, so a later replay starts there instead of at the genesis entry."""

    staff: dict[str, dict[str, Any]] = field(default_factory=dict)
    shifts: dict[str, dict[str, Any]] = field(default_factory=dict)
    open_fills: dict[str, dict[str, Any]] = field(default_factory=dict)  # in order of authorisation
    legacy: list[str] = field(default_factory=list)  # open fills journalled without their shift context
    fills: int = 0
    outbox: int = 0  # rows queued before schema 11 (named by kind and key, not by id)
    queued: list[list[int]] = field(default_factory=list)  # ids of rows in the outbox since, as [first, last] runs

    def as_data(self) -> dict[str, Any]:
        data = {"staff": self.staff, "shifts": self.shifts, "open_fills": self.open_fills, "legacy": self.legacy,
                "fills": self.fills, "outbox": self.outbox}
        # Absent when empty: states journalled before schema 11 (checkpoints, archives) have no such key.
        return {**data, "queued": self.queued} if self.queued else data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> State:
        return cls(**{k: data[k] for k in ("staff", "shifts", "open_fills", "legacy", "fills", "outbox")},
                   queued=data.get("queued", []))


def runs(ids: set[int]) -> list[list[int]]:
    """Ids as [first, last] runs: a backlog of consecutive rows takes a few numbers, not thousands."""
    out: list[list[int]] = []
    for i in sorted(ids):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def ids_of(ranges: list[list[int]]) -> set[int]:
    return {i for first, last in ranges for i in range(first, last + 1)}


class _Checker:
    """Replays journal entries in order and holds each row to them as soon as it is final: memory
    holds only the fills in progress and the (small) staff and shift tables, whatever the history."""

    def __init__(self, conn: sqlite3.Connection, fill_columns: frozenset[str], state: State, report: RecordsReport) -> None:
        self.conn, self.fill_columns, self.state, self.out = conn, fill_columns, state, report.mismatches
        self.legacy = set(state.legacy)
        self.queued = ids_of(state.queued)
        self.report = report

    def compare(self, table: str, key: str, stored: dict[str, Any] | None, expected: dict[str, Any] | None,
                columns: Any) -> None:
        if stored is None or expected is None:
            self.out.append(Mismatch(table, key, "(row)", "missing" if stored is None else "present",
                                     "missing" if expected is None else "present"))
            return
        for column in columns:
            if column in stored and stored[column] != expected.get(column):
                self.out.append(Mismatch(table, key, column, stored[column], expected.get(column)))
                return

    def entry(self, kind: str, lane: str | None, fill_id: str | None, data: dict[str, Any]) -> None:
        s = self.state
        if kind.startswith("fill_") and fill_id is not None:
            status = kind.removeprefix("fill_")
            fields = {k: v for k, v in data.items() if k in self.fill_columns}
            if status == "authorised":
                context = {k: v for k, v in (data.get("context") or {}).items() if k in FILL_CONTEXT}
                s.open_fills[fill_id] = {"id": fill_id, "lane": lane, **{c: None for c in self.fill_columns}, "tripped": 0,
                                         **{c: None for c in FILL_CONTEXT}, **context, "status": status, **fields}
                s.fills += 1
                if "context" not in data:
                    self.legacy.add(fill_id)
            elif fill_id in s.open_fills:
                s.open_fills[fill_id].update({"status": status, **fields})
                if status in FINAL_STATUSES:
                    self.fill_final(fill_id)
            # Since schema 11 a fill's final entry names the rows it queued (by id).
            self.queued.update(row["id"] for row in data.get("queued", ()))
        elif kind == "outbox_queued":
            for row in data["rows"]:
                if "id" in row:  # schema 11 on: checked as the rows in the outbox are (check_queued)
                    self.queued.add(row["id"])
                    continue
                # Since schema 10 an entry names the payload by its digest; before, it carried it.
                expected = row["sha256"] if "sha256" in row else journal.payload_digest(journal.canonical(row["payload"]))
                self.legacy_queued(fill_id, row["kind"], row["key"], expected)
        elif kind == DELIVERED:
            # Those rows left the outbox, delivered. One queued before the replay's start state (an
            # archive's cut) is not in the set: nothing to take out.
            self.queued.difference_update(row[0] for row in data["rows"])
        elif kind in ("staff_registered", "staff_configured"):
            person = s.staff.setdefault(data["id"], {"source": "command" if kind == "staff_registered" else "config", "active": 1})
            person["name"] = data["name"]
            if kind == "staff_configured":
                # The config names a person again: one `edge staff remove` retired stays retired.
                person["source"] = "config"
            else:
                person["active"] = 1
        elif kind == "staff_removed" and data["id"] in s.staff:
            s.staff[data["id"]]["active"] = 0
        elif kind == "shift_configured" and lane is not None:
            s.shifts.setdefault(lane, {"operator": data["operator"], "checker": data["checker"]})
        elif kind == "shift_changed" and lane is not None:
            s.shifts[lane] = {"operator": data["operator"], "checker": data["checker"]}
        elif kind == BASELINE:
            self.baseline(data)

    def baseline(self, data: dict[str, Any]) -> None:
        """Rows written before their changes were journalled, as they stood at the upgrade."""
        s = self.state
        s.staff.update({p["id"]: {k: p[k] for k in STAFF_COLUMNS} for p in data.get("staff", [])})
        s.shifts.update({x["lane"]: {k: x[k] for k in SHIFT_COLUMNS} for x in data.get("shifts", [])})
        for fill_id, context in data.get("fill_context", {}).items():
            if not context:
                continue
            if fill_id in s.open_fills:
                s.open_fills[fill_id].update(dict(zip(FILL_CONTEXT, context)))
                self.legacy.discard(fill_id)
                continue
            stored = _row(self.conn, "SELECT * FROM fills WHERE id = ?", (fill_id,))
            if stored is not None:  # a missing row was named when the fill was final
                self.compare("fills", fill_id, stored, dict(zip(FILL_CONTEXT, context)), FILL_CONTEXT)
        for outbox_id, digest in data.get("outbox", {}).items():
            row = _row(self.conn, "SELECT id, kind, fill_id, idempotency_key, payload FROM outbox WHERE id = ?", (int(outbox_id),))
            s.outbox += 1
            if row is None:
                self.out.append(Mismatch("outbox", outbox_id, "(row)", "missing", "present"))
            elif digest != outbox_digest(row["kind"], row["fill_id"], row["idempotency_key"], row["payload"]):
                self.out.append(Mismatch("outbox", outbox_id, "payload", "changed since the upgrade baseline", digest))

    def fill_final(self, fill_id: str) -> None:
        expected = self.state.open_fills.pop(fill_id)
        self.check_fill(fill_id, expected)

    def check_fill(self, fill_id: str, expected: dict[str, Any]) -> None:
        legacy = fill_id in self.legacy
        self.legacy.discard(fill_id)
        columns = [c for c in expected if c != "id" and not (legacy and c in FILL_CONTEXT)]
        self.compare("fills", fill_id, _row(self.conn, "SELECT * FROM fills WHERE id = ?", (fill_id,)), expected, columns)

    def legacy_queued(self, fill_id: str | None, kind: str, key: str, payload_sha256: str) -> None:
        self.state.outbox += 1
        if fill_id:
            # A fill owes one row of each kind: found by (fill, kind), an edited key shows as that field.
            row = _row(self.conn, "SELECT id, kind, fill_id, idempotency_key, payload FROM outbox WHERE fill_id = ? AND kind = ?",
                       (fill_id, kind))
        else:
            # A scan point's row has no fill, and a cylinder has many: found by its key.
            row = _row(self.conn, "SELECT id, kind, fill_id, idempotency_key, payload FROM outbox"
                       " WHERE idempotency_key = ? AND kind = ? AND fill_id IS NULL", (key, kind))
        name = f"(fill {fill_id or None}, {kind}{'' if fill_id else ', ' + key})" if row is None else \
            f"{row['id']} (fill {row['fill_id']}, {row['kind']})"
        if row is not None:
            row = {**row, "payload": "sha256 " + journal.payload_digest(row["payload"])}
        self.compare("outbox", name, row, {"idempotency_key": key, "payload": "sha256 " + payload_sha256},
                     ("idempotency_key", "payload"))

    def finish(self, fills_after: int, outbox_after: int) -> None:
        """The rows no entry has closed yet, the staff and shift tables, and rows no entry made.
        fills_after / outbox_after: where the rows this replay did not see end (their count was
        carried by the checkpoint)."""
        s = self.state
        for fill_id, expected in s.open_fills.items():
            self.check_fill(fill_id, expected)
        self.legacy = set()
        for table, key_column, columns, expected_rows in (
            ("staff", "id", STAFF_COLUMNS, s.staff),
            ("shifts", "lane", SHIFT_COLUMNS, s.shifts),
        ):
            stored_rows = {row[key_column]: row for row in _rows(self.conn, f"SELECT * FROM {table}")}
            for key in sorted(set(stored_rows) | set(expected_rows)):
                self.compare(table, key, stored_rows.get(key), expected_rows.get(key), columns)
            self.report.checked[table] = len(stored_rows)
        stored_fills = self.conn.execute("SELECT count(*) FROM fills").fetchone()[0]
        self.report.checked["fills"] = stored_fills
        self.report.checked["outbox"] = self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        if stored_fills > s.fills:
            self.extra_fills(fills_after)
        if legacy_outbox(self.conn) > s.outbox:
            self.extra_outbox(outbox_after)
        self.check_queued(strict=True)

    def check_queued(self, strict: bool) -> None:
        """The rows in the outbox since schema 11 are exactly the ones queued and not journalled as
        gone, each as the entry that queued it names it (found by the row's queued_seq), however
        long ago: a row edited, removed or added is named. Reads the outbox (a backlog) and one entry
        per row. strict=False (an archive's month): a row queued and not in the file may have left
        after the month's end, in an entry of the next."""
        if not tracks_queued(self.conn):
            return
        expected = sorted(self.queued)
        present = self.conn.execute("SELECT id, kind, fill_id, idempotency_key, payload, queued_seq FROM outbox"
                                    " WHERE queued_seq IS NOT NULL ORDER BY id")
        names = ("id", "kind", "fill_id", "idempotency_key", "payload", "queued_seq")
        i = 0
        for values in present:
            row = dict(zip(names, values))
            while i < len(expected) and expected[i] < row["id"]:
                if strict:
                    self.out.append(Mismatch("outbox", str(expected[i]), "(row)", "missing", "present"))
                i += 1
            if i < len(expected) and expected[i] == row["id"]:
                i += 1
                self.check_row(row)
            else:
                name = f"{row['id']} (fill {row['fill_id']}, {row['kind']})"
                self.out.append(Mismatch("outbox", name, "(row)", "present", "missing: not queued, or journalled as delivered"))
        if strict:
            self.out.extend(Mismatch("outbox", str(gone), "(row)", "missing", "present") for gone in expected[i:])

    def check_row(self, row: dict[str, Any]) -> None:
        """One row against the entry that queued it."""
        name = f"{row['id']} (fill {row['fill_id']}, {row['kind']})"
        entry = self.conn.execute("SELECT fill_id, data FROM journal WHERE seq = ?", (row["queued_seq"],)).fetchone()
        try:
            data = {} if entry is None else journal.load(entry[1])
        except ValueError as exc:  # older than the proof's start: its digest's turn may not have come yet
            self.out.append(Mismatch("outbox", name, "queued_seq", row["queued_seq"],
                                     f"entry {row['queued_seq']} was altered ({exc})"))
            return
        listed = next((r for r in data.get("queued", data.get("rows", ())) if r.get("id") == row["id"]), None)
        if listed is None:
            self.out.append(Mismatch("outbox", name, "queued_seq", row["queued_seq"], "the entry that queued the row"))
            return
        stored = {**row, "payload": "sha256 " + journal.payload_digest(row["payload"])}
        self.compare("outbox", name, stored, {"kind": listed["kind"], "fill_id": entry[0], "idempotency_key": listed["key"],
                                              "payload": "sha256 " + listed["sha256"]},
                     ("kind", "fill_id", "idempotency_key", "payload"))

    def extra_fills(self, after_rowid: int) -> None:
        # Only when some row has no entry: name it (the ids are gathered here, not on every verify).
        journalled = {r[0] for r in self.conn.execute("SELECT fill_id FROM journal WHERE kind = 'fill_authorised'")}
        for (fill_id,) in self.conn.execute("SELECT id FROM fills WHERE rowid > ? ORDER BY rowid", (after_rowid,)):
            if fill_id not in journalled:
                self.out.append(Mismatch("fills", fill_id, "(row)", "present", "missing"))

    def extra_outbox(self, after_id: int) -> None:
        slots = set()
        for fill_id, data in self.conn.execute("SELECT fill_id, data FROM journal WHERE kind = 'outbox_queued'"):
            slots.update(outbox_slot(fill_id, row["kind"], row["key"]) for row in journal.load(data)["rows"])
        legacy = set()
        for (data,) in self.conn.execute("SELECT data FROM journal WHERE kind = ? AND fill_id IS NULL", (BASELINE,)):
            legacy.update(int(k) for k in journal.load(data).get("outbox", {}))
        tracked = " AND queued_seq IS NULL" if tracks_queued(self.conn) else ""  # the newer rows: check_queued
        for row in _rows(self.conn, f"SELECT id, kind, fill_id, idempotency_key FROM outbox WHERE id > {int(after_id)}{tracked} ORDER BY id"):
            if row["id"] not in legacy and outbox_slot(row["fill_id"], row["kind"], row["idempotency_key"]) not in slots:
                self.out.append(Mismatch("outbox", f"{row['id']} (fill {row['fill_id']}, {row['kind']})", "(row)", "present", "missing"))


def replay_check(conn: sqlite3.Connection, fill_columns: frozenset[str], state: State | None = None, after_seq: int = 0,
                 upto_seq: int | None = None, fills_after: int = 0, outbox_after: int = 0,
                 limit: int = 20, finish: bool = True, segment_rows: bool = False) -> tuple[RecordsReport, State]:
    """Replay the entries after `after_seq` (up to `upto_seq`) from `state` (the genesis when None),
    holding every row they imply to them; returns the report and the state reached. finish=False:
    a segment of the chain only (an archive's month): the fills still open at its end, the staff
    and shift tables and the row counts are the next segment's to check, not this one's;
    segment_rows: the outbox holds the segment's rows only (an archive file), each checked."""
    report = RecordsReport()
    checker = _Checker(conn, fill_columns, state or State(), report)
    sql = "SELECT kind, lane, fill_id, data FROM journal WHERE seq > ?" + ("" if upto_seq is None else " AND seq <= ?")
    params = (after_seq,) if upto_seq is None else (after_seq, upto_seq)
    for kind, lane, fill_id, data in conn.execute(sql + " ORDER BY seq", params):
        checker.entry(kind, lane, fill_id, journal.load(data))
    reached = State(**{**checker.state.__dict__, "open_fills": dict(checker.state.open_fills),
                       "legacy": sorted(checker.legacy), "queued": runs(checker.queued)})
    if finish:
        checker.finish(fills_after, outbox_after)
    elif segment_rows:
        checker.check_queued(strict=False)
    del report.mismatches[limit:]
    return report, reached


def check(conn: sqlite3.Connection, fill_columns: frozenset[str], limit: int = 20) -> RecordsReport:
    """Every fills, outbox, staff and shifts row against the journal's replay from the genesis."""
    return replay_check(conn, fill_columns, limit=limit)[0]


def tracks_queued(conn: sqlite3.Connection) -> bool:
    """Whether the outbox names each row's queuing entry (schema 11 on; an archive file has the
    format of the store it was cut from)."""
    return any(r[1] == "queued_seq" for r in conn.execute("PRAGMA table_info(outbox)"))


def legacy_outbox(conn: sqlite3.Connection) -> int:
    """Rows queued before schema 11: counted, since they are not tracked by id."""
    where = " WHERE queued_seq IS NULL" if tracks_queued(conn) else ""
    return int(conn.execute(f"SELECT count(*) FROM outbox{where}").fetchone()[0])


def _row(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    cursor = conn.execute(sql, params)
    values = cursor.fetchone()
    return None if values is None else dict(zip([d[0] for d in cursor.description], values))


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
