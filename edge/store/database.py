"""The station's SQLite store. Every write is a short IMMEDIATE transaction under one lock."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from interlock.codes import Identifier, Kind
from interlock.inflight import Learned
from interlock.rules import Cylinder

from . import access, journal, replay
from . import audit as auditing
from .schema import MIGRATIONS, migrate

if TYPE_CHECKING:
    from interlock.fill import Record

log = logging.getLogger(__name__)

FINAL_STATUSES = ("complete", "aborted")
_FILL_COLUMNS = frozenset(
    "cylinder_id code tare_kg target_net_kg start_gross_kg residual_kg cutoff_gross_kg final_gross_kg"
    " net_kg outcome cause detail tripped authorised_at started_at cutoff_at finished_at".split()
)
# Which cached fields give a scanned code its cylinder, and how each is normalised.
_IDENTIFIER_FIELDS = {
    "qr_content": (Kind.QR_URL, str.strip),
    "info_code": (Kind.INFO_CODE, lambda v: v.strip().upper()),
    "product_no": (Kind.PRODUCT, lambda v: v.strip().upper()),
    "traceable_code": (Kind.TRACEABLE, str.strip),
    "rfid": (Kind.RFID, lambda v: v.strip().upper()),
}
CACHE_REFRESHED = "cache_refreshed_at"

# A finished fill -> (kind, idempotency key, payload) for each record it owes the city.
OutboxEntries = Callable[[dict[str, Any]], list[tuple[str, str, dict[str, Any]]]]
# Sees every journal entry inside its transaction (conn, ts, kind, data, where): the fleet outbox
# writes the events it owes the company there, so an event exists exactly when its record does.
JournalSink = Callable[[sqlite3.Connection, str, str, dict[str, Any], dict[str, str | None]], None]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


# SQLite's primary result codes that mean "the store cannot take writes now" (a full or read-only
# disk, an I/O error, a database another process holds locked), as opposed to a bug in a query.
_OUTAGE_CODES = frozenset({
    sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_PERM, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
})


class StoreUnavailable(Exception):
    """The store cannot be opened or written: an outage to wait out, not a fault of the caller."""


def is_outage(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.OperationalError) and (code is None or (code & 0xFF) in _OUTAGE_CODES)


@dataclass(frozen=True)
class Outage:
    since: datetime
    error: str


class StoreError(Exception):
    """The store a command names is missing, or is of another schema version than this edge's."""


class Store:
    def __init__(
        self,
        path: str | Path,
        outbox_entries: OutboxEntries | None = None,
        durable: bool = True,
        journal_sink: JournalSink | None = None,
        existing: bool = False,
        readonly: bool = False,
    ) -> None:
        """existing=True: for the manager's commands, which never create a store (a wrong path would
        otherwise leave an empty database behind and report an empty station) nor migrate one
        (that is the daemon's job, on its own schedule). readonly=True (implies existing): for the
        commands that only read, so a manager in the service user's group can run them; nothing is
        written, not even a verify's checkpoint."""
        self.path = Path(path)
        self.readonly = readonly
        existing = existing or readonly
        # Opened with no -wal file and no write access to create one (the daemon is stopped):
        # SQLite reads such a store only as immutable (see _connect_readonly); the file's stamp
        # then tells whether a writer changed it meanwhile.
        self.immutable = False
        self._stamp: tuple[int, int] | None = None
        on_disk = str(path) != ":memory:"
        problem = access.read_problem(self.path) if on_disk and existing else None
        if problem is None and on_disk and not readonly:
            problem = access.write_problem(self.path)
        if problem is not None:
            raise StoreUnavailable(problem)
        if existing and not self.path.exists():
            raise StoreError(f"{path}: no station store there (the daemon creates it on its first start)")
        try:
            if on_disk and not existing:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            if readonly:
                self._conn = self._connect_readonly()
            else:
                self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
            if existing:
                self._check_version()
            if readonly:
                self._conn.execute("PRAGMA query_only = ON")
            else:
                self._conn.execute("PRAGMA journal_mode = WAL")
            # synchronous is per connection: FULL so a committed fill survives power loss. Sync's
            # own connections may pass durable=False: what they write (a row marked sent, a page of
            # the cache) is safely redone after a power cut, and skipping the fsync keeps them from
            # holding the write lock a lane is waiting for.
            self._conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            if not existing:
                migrate(self._conn)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"the store {path} cannot be opened: {exc}") from exc
        self._lock = threading.RLock()
        self._db: Any = None
        self._outbox_entries = outbox_entries
        self._journal_sink = journal_sink
        # Set while writes fail for want of space or permission; cleared by the next commit.
        self.outage: Outage | None = None
        if not existing:
            # The daemon loads sqlite-utils now: imported later, from the first cache refresh, its
            # import (with numpy where that is installed) would hold the interpreter for a second
            # while the lanes poll their scales.
            _ = self.db

    @property
    def db(self) -> Any:
        """sqlite-utils over our connection, for the writes that use it. A manager's command
        (existing=True) loads it only if it writes: the import would double a read-only command's
        start time."""
        if self._db is None:
            from sqlite_utils import Database

            self._db = Database(self._conn)
        return self._db

    def _connect_readonly(self) -> sqlite3.Connection:
        """A read-only connection (SQLite's mode=ro URI). A WAL store is read through its -shm
        file, which exists (group-readable) while the daemon runs; with the daemon stopped there is
        none, and a reader who may not create one in the store's directory gets SQLITE_READONLY
        or SQLITE_CANTOPEN. Then no process has the store open for writing (the last connection
        to close removed the -wal), and SQLite's documented way to read it is `immutable`; a
        writer that starts meanwhile is noticed by audit() (its -wal appears, or the file changes)."""
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=10)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.DatabaseError as exc:
            conn.close()
            if not isinstance(exc, sqlite3.OperationalError):
                raise StoreError(f"{self.path}: not a station store ({exc})") from None
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code not in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN) or Path(f"{self.path}-wal").exists():
                raise
        self.immutable = True
        self._stamp = self._file_stamp()
        return sqlite3.connect(f"{uri}&immutable=1", uri=True, check_same_thread=False, isolation_level=None)

    def _file_stamp(self) -> tuple[int, int]:
        info = self.path.stat()
        return info.st_mtime_ns, info.st_size

    def _written_meanwhile(self) -> bool:
        """Read as immutable: did a writer open the store (its -wal is there) or change the file?"""
        return self.immutable and (Path(f"{self.path}-wal").exists() or self._file_stamp() != self._stamp)

    def _check_version(self) -> None:
        try:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(f"{self.path}: not a station store ({exc})") from None
        if version != len(MIGRATIONS):
            self._conn.close()
            raise StoreError(
                f"{self.path}: store schema version {version}, this edge {len(MIGRATIONS)}"
                + ("; start the daemon once to upgrade it" if version < len(MIGRATIONS) else "; use the newer edge"))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn  # nested: part of the caller's transaction
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                # SQLite may have rolled back already (SQLITE_FULL does); a failed COMMIT has not.
                # Either way no transaction may stay open: the next one would nest into it.
                if self._conn.in_transaction:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.debug("rollback after a failed write failed too", exc_info=True)
                if is_outage(exc):
                    if self.outage is None:
                        log.error("store %s cannot be written: %s", self.path, exc)
                    since = datetime.now(timezone.utc) if self.outage is None else self.outage.since
                    self.outage = Outage(since, str(exc))
                    raise StoreUnavailable(f"the store cannot be written: {exc}") from exc
                raise
            if self.outage is not None:
                log.warning("store %s writable again (unavailable since %s)", self.path, iso(self.outage.since))
                self.outage = None

    def free_bytes(self) -> int | None:
        """Free space on the store's filesystem (None for an in-memory store)."""
        if str(self.path) == ":memory:":
            return None
        return shutil.disk_usage(self.path.parent).free

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._conn.execute(sql, params if isinstance(params, dict) else tuple(params))
            columns = [d[0] for d in cursor.description or ()]
            return [dict(zip(columns, row)) for row in cursor]

    def count_by_status(self, table: str, bulk: str) -> dict[str, int]:
        """Rows of `table` (fills or outbox) per status, in a time that does not grow with the years:
        GROUP BY walks every row. The statuses are found one index seek each, the rows of every
        status but `bulk` (the final state nearly every row reaches: a few open or waiting) counted
        through the status index, and `bulk` is the table's row count (a b-tree count) less those."""
        assert table in ("fills", "outbox")  # names, not values: never from input
        counts: dict[str, int] = {}
        with self._lock:
            status = self._conn.execute(f"SELECT min(status) FROM {table}").fetchone()[0]
            while status is not None:
                if status != bulk:
                    counts[status] = self._conn.execute(f"SELECT count(*) FROM {table} WHERE status = ?", (status,)).fetchone()[0]
                status = self._conn.execute(f"SELECT min(status) FROM {table} WHERE status > ?", (status,)).fetchone()[0]
            rest = self._conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - sum(counts.values())
        return {**counts, bulk: rest} if rest else counts

    def stream(self, sql: str, params: Iterable[Any] = ()) -> Iterator[dict[str, Any]]:
        """Like query(), a row at a time: for results as long as the history (a month's ledger)."""
        with self._lock:
            cursor = self._conn.execute(sql, tuple(params))
            columns = [d[0] for d in cursor.description or ()]
            for row in cursor:
                yield dict(zip(columns, row))

    # Journal ---------------------------------------------------------------------------------

    def journal(self, now: datetime, kind: str, data: dict[str, Any], **where: str | None) -> int:
        with self.transaction() as conn:
            return self._append(conn, iso(now), kind, data, **where)

    def _append(self, conn: sqlite3.Connection, ts: str, kind: str, data: dict[str, Any], **where: str | None) -> int:
        seq = journal.append(conn, ts, kind, data, **where)
        if self._journal_sink is not None:
            self._journal_sink(conn, ts, kind, data, where)
        return seq

    def verify(self) -> journal.ChainReport:
        with self._lock:
            return journal.verify(self._conn)

    def verify_records(self) -> replay.RecordsReport:
        """Fills, outbox, staff and shift rows against what the journal implies."""
        with self._lock:
            return replay.check(self._conn, _FILL_COLUMNS)

    def audit(self, full: bool = False, checkpoint: bool = True, budget: int = auditing.BUDGET_ROWS,
              witness: list[auditing.Head] | None = None, fills: tuple[int, int] | None = None) -> auditing.Audit:
        """Verify the chain and the rows (from the last checkpoint; from the genesis with full=True)
        in one snapshot, then journal a checkpoint of what was proven, so the next run starts there."""
        with self._lock:
            self._conn.execute("BEGIN")  # one read snapshot: the daemon's writes meanwhile wait for the next run
            try:
                result = auditing.run(self._conn, _FILL_COLUMNS, full, budget, witness, fills)
            finally:
                self._conn.execute("COMMIT")
            if self._written_meanwhile():
                # Read as immutable (no daemon was running), a store a writer opened meanwhile may
                # have changed under the replay: its verdict would be of no single moment.
                raise StoreUnavailable(f"{self.path}: a daemon or command began writing the store during the check; run it again")
            if result.checkpoint is not None and checkpoint and self.readonly:
                result.unrecorded = (f"opened read-only as {access.me()}; the next verify run as {access.SERVICE_USER}"
                                     " records one")
            elif result.checkpoint is not None and checkpoint:
                try:
                    with self.transaction() as conn:
                        self._append(conn, iso(datetime.now(timezone.utc)), auditing.CHECKPOINT, result.checkpoint)
                except (StoreUnavailable, sqlite3.Error) as exc:  # a read-only store still verifies
                    log.warning("verified, but the checkpoint could not be journalled: %s", exc)
                    result.unrecorded = str(exc)
        return result

    def chain_head(self) -> dict[str, Any]:
        """The newest entry and its hash: what a report prints and the fleet is sent, to witness."""
        rows = self.query("SELECT c.seq AS entry, c.hash, j.ts AS at FROM chain_head c JOIN journal j ON j.seq = c.seq")
        return rows[0] if rows else {"entry": 0, "hash": journal.GENESIS, "at": None}

    def audit_problem(self, fills: tuple[int, int] | None = None) -> str | None:
        """None when the chain holds and every row is what the journal implies; else the first problem.
        For a report: what is new since the last checkpoint, and the pieces holding the fills it
        reads (`fills`: their first and last rowid); the round of older rows is `edge verify`'s."""
        return self.audit(budget=0, fills=fills).problem()

    # Cylinder cache --------------------------------------------------------------------------

    def upsert_cylinders(self, rows: Iterable[dict[str, Any]], now: datetime, batch: int = 2000,
                         from_city: bool = False) -> int:
        """Insert or replace cylinder records with their identifiers, one transaction per batch.
        Rows `from_city` are the registry's word that the cylinder is listed: any removal ends."""
        count = 0
        pending: list[dict[str, Any]] = []
        for row in rows:
            pending.append({**row, "updated_at": iso(now)})
            if len(pending) >= batch:
                count += self._upsert_batch(pending, from_city)
                pending = []
        if pending:
            count += self._upsert_batch(pending, from_city)
        return count

    def identifier_owners(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The cylinder each cached (kind, value) identifier belongs to, for those the cache holds."""
        rows = self.query(
            "SELECT i.kind, i.value, i.cylinder_id FROM json_each(?) j JOIN identifiers i"
            " ON i.kind = json_extract(j.value, '$[0]') AND i.value = json_extract(j.value, '$[1]')",
            [json.dumps(list(pairs))],
        )
        return {(r["kind"], r["value"]): r["cylinder_id"] for r in rows}

    def _upsert_batch(self, rows: list[dict[str, Any]], from_city: bool = False) -> int:
        identifiers = [(kind, value, row["id"]) for row in rows for kind, value in identifier_pairs(row)]
        # Only the kinds a row carries are replaced: a city record has no RFID or traceable
        # number, and refreshing it must not unbind the station's own tags.
        carried = [(row["id"], kind.value) for row in rows for field, (kind, _) in _IDENTIFIER_FIELDS.items() if field in row]
        with self.transaction() as conn:
            self.db["cylinders"].upsert_all(rows, pk="id", alter=False)
            # An identifier re-bound upstream (a replaced tag) must stop finding the old record.
            conn.executemany("DELETE FROM identifiers WHERE cylinder_id = ? AND kind = ?", carried)
            conn.executemany("INSERT OR REPLACE INTO identifiers (kind, value, cylinder_id) VALUES (?, ?, ?)", identifiers)
            if from_city:
                conn.executemany("DELETE FROM removals WHERE cylinder_id = ?", [(row["id"],) for row in rows])
        return len(rows)

    def mark_removed(self, cylinder_ids: Iterable[str], now: datetime, how: str) -> int:
        """Record cylinders the registry no longer lists (those the cache holds); returns how many
        were newly marked."""
        with self.transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO removals (cylinder_id, removed_at, how)"
                " SELECT id, ?, ? FROM cylinders WHERE id = ?",
                [(iso(now), how, cylinder_id) for cylinder_id in cylinder_ids],
            )
            marked = conn.total_changes - before
            if marked:
                journal.append(conn, iso(now), "cylinders_removed", {"count": marked, "how": how})
        return marked

    def sweep_cylinders(self, seen: set[str], now: datetime, batch: int = 500) -> int:
        """After a complete full pull: every cached cylinder the registry did not list is removed.
        The comparison is a read; the marks are written in short transactions, so a lane waiting
        to commit a fill never waits for a whole registry's worth of them."""
        cached = self.query("SELECT id FROM cylinders WHERE id NOT IN (SELECT cylinder_id FROM removals)")
        missing = [row["id"] for row in cached if row["id"] not in seen]
        return sum(self.mark_removed(missing[i:i + batch], now, "full pull") for i in range(0, len(missing), batch))

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            set_meta(conn, key, value)

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", [key])
        return rows[0]["value"] if rows else None

    def mark_cache_refreshed(self, moment: datetime) -> None:
        self.set_meta(CACHE_REFRESHED, iso(moment))

    def cache_refreshed_at(self) -> datetime | None:
        value = self.get_meta(CACHE_REFRESHED)
        return None if value is None else datetime.fromisoformat(value)

    def cache_age_s(self, now: datetime) -> float | None:
        refreshed = self.cache_refreshed_at()
        return None if refreshed is None else (now - refreshed).total_seconds()

    def cylinder_age_s(self, cylinder_id: str, now: datetime) -> float | None:
        """Seconds since this cylinder's cached record was last written (None: not cached)."""
        rows = self.query("SELECT updated_at FROM cylinders WHERE id = ?", [cylinder_id])
        return None if not rows else (now - datetime.fromisoformat(rows[0]["updated_at"])).total_seconds()

    def find_cylinder(self, identifier: Identifier) -> Cylinder | None:
        row = self.cylinder_record(identifier)
        return None if row is None else _cylinder(row)

    def cylinder_record(self, identifier: Identifier) -> dict[str, Any] | None:
        """The cached row (with any local block) that a scanned identifier resolves to."""
        for kind in identifier.lookup_kinds:
            rows = self.query(
                "SELECT c.*, b.reason AS blocked_reason, r.removed_at FROM identifiers i"
                " JOIN cylinders c ON c.id = i.cylinder_id"
                " LEFT JOIN blocks b ON b.cylinder_id = c.id"
                " LEFT JOIN removals r ON r.cylinder_id = c.id"
                " WHERE i.kind = ? AND i.value = ?",
                [kind.value, identifier.value],
            )
            if rows:
                return rows[0]
        return None

    def block(self, cylinder_id: str, reason: str, now: datetime) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO blocks (cylinder_id, reason, created_at) VALUES (?, ?, ?)",
                (cylinder_id, reason, iso(now)),
            )
            journal.append(conn, iso(now), "cylinder_blocked", {"reason": reason}, cylinder_id=cylinder_id)

    # Fills -----------------------------------------------------------------------------------

    def apply_record(self, lane: str, record: Record, now: datetime, context: dict[str, Any],
                     learned: dict[str, Learned] | None = None) -> None:
        """Commit one fill milestone: fills row, journal entry and, when final, the outbox rows;
        `learned`: what the fill taught the lane's in-flight estimates (its own and its cylinder
        model's), kept and journalled with its final milestone."""
        fields = {k: _db_value(v) for k, v in record.fields.items() if k in _FILL_COLUMNS}
        with self.transaction() as conn:
            # Plain statements, not sqlite-utils: its insert/update/get read the table's schema on
            # every call, which was most of a milestone's cost (columns are ours, never input).
            if record.status == "authorised":
                row = {"id": record.fill_id, "lane": lane, "status": record.status, **context, **fields}
                conn.execute(f"INSERT INTO fills ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
            else:
                row = {"status": record.status, **fields}
                conn.execute(f"UPDATE fills SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?", [*row.values(), record.fill_id])
            cursor = conn.execute("SELECT * FROM fills WHERE id = ?", (record.fill_id,))
            fill = dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
            entry = {k: _db_value(v) for k, v in record.fields.items()}
            if record.status == "authorised":
                # Who was on shift goes in the journal too: `edge verify` rebuilds the row from it.
                entry["context"] = {k: _db_value(v) for k, v in context.items()}
            if not record.report:
                entry["reported"] = False  # a final record kept from the city says so, so a replay knows
            if record.final and record.report and (queued := self._queue_upload(conn, fill, now)):
                entry["queued"] = queued  # the final entry names what it queued: one entry, not two
            if learned:
                entry["inflight"] = _save_inflight(conn, lane, learned, now)
            # The fill's first entry names its cylinder; the later ones name the fill (since
            # schema 11: the column was a copy on every milestone before).
            self._append(
                conn,
                iso(now),
                f"fill_{record.status}",
                entry,
                lane=lane,
                fill_id=record.fill_id,
                cylinder_id=fill["cylinder_id"] if record.status == "authorised" else None,
            )

    def _queue_upload(self, conn: sqlite3.Connection, fill: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
        """Queue the fill's records for the city, as the entry appended next in this transaction
        (the fill's final one) will name them: by id, kind, key and payload digest (the row holds
        the payload once), so `edge verify` can tell an edited or a vanished row."""
        # Gas went into the cylinder only if the relay was ever energised: those fills are
        # reported upstream whatever their outcome; a fill that never started is local only.
        if fill["started_at"] is None or self._outbox_entries is None:
            return []
        seq = journal.next_seq(conn)
        rows = []
        for kind, key, payload in self._outbox_entries(fill):
            text = journal.canonical(payload)
            cursor = conn.execute(
                "INSERT INTO outbox (kind, fill_id, idempotency_key, payload, created_at, queued_seq) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, fill["id"], key, text, iso(now), seq),
            )
            assert cursor.lastrowid is not None
            rows.append(journal.queued(cursor.lastrowid, kind, key, text))
        return rows

    def open_fills(self) -> list[dict[str, Any]]:
        """Fills a crash left open (oldest first): the next start judges and closes each."""
        return self.query(
            "SELECT * FROM fills WHERE status NOT IN (?, ?) ORDER BY authorised_at", list(FINAL_STATUSES)
        )

    def held_lanes(self) -> dict[str, dict[str, Any]]:
        """Lanes held for an acknowledgement that has not come yet (it outlives a restart)."""
        rows = self.query(f"SELECT lane, kind, data FROM journal WHERE seq IN ({NEWEST_HOLDS})")
        return {row["lane"]: journal.load(row["data"]) for row in rows if row["kind"] == "lane_held"}

    def fills(self, limit: int = 50, lane: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE lane = ?", [lane]) if lane else ("", [])
        return self.query(f"SELECT * FROM fills {where} ORDER BY authorised_at DESC, id LIMIT ?", [*params, limit])


    # Learned in-flight ------------------------------------------------------------------------

    def inflight(self, lane: str) -> dict[str, Learned]:
        """The lane's learned in-flight estimates by cylinder model ("*" for the whole lane)."""
        rows = self.query("SELECT model, seconds FROM inflight WHERE lane = ?", [lane])
        found = {row["model"]: json.loads(row["seconds"]) for row in rows}
        return {model: Learned(tuple(kept["seconds"]), kept["fills"]) for model, kept in found.items()}

    def reset_inflight(self, lane: str, now: datetime, by: str | None = None) -> int:
        """Forget what the lane learned: its next fills start again from the configured preact_kg."""
        with self.transaction() as conn:
            removed = conn.execute("DELETE FROM inflight WHERE lane = ?", (lane,)).rowcount
            journal.append(conn, iso(now), "inflight_reset", {"by": by, "estimates": removed}, lane=lane)
        return int(removed)


def _save_inflight(conn: sqlite3.Connection, lane: str, estimates: dict[str, Learned], now: datetime) -> dict[str, Any]:
    """Keep what one fill taught the lane; returns it as its final entry records it (entries of
    kind inflight_learned, one per fill, did before schema 11)."""
    conn.executemany(
        "INSERT OR REPLACE INTO inflight (lane, model, seconds, updated_at) VALUES (?, ?, ?, ?)",
        [(lane, model, json.dumps({"seconds": l.seconds, "fills": l.fills}), iso(now)) for model, l in estimates.items()],
    )
    return {model: {"seconds": list(l.seconds), "fills": l.fills, "inflight_s": l.inflight_s} for model, l in estimates.items()}


# The entry numbers of each lane's newest hold, acknowledgement or reset. A hold names the fill it
# holds for, so the kind index (entries that name no fill) does not have it: journal_held does.
NEWEST_HOLDS = (
    "SELECT max(seq) FROM (SELECT lane, seq FROM journal WHERE kind IN ('lane_ack', 'lane_reset') AND fill_id IS NULL"
    " UNION ALL SELECT lane, seq FROM journal WHERE kind = 'lane_held') WHERE lane IS NOT NULL GROUP BY lane"
)


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)
    )


def identifier_pairs(row: dict[str, Any]) -> list[tuple[str, str]]:
    """The (kind, value) identifiers a cylinder row gives, normalised as the cache keeps them."""
    return [(kind.value, normalise(str(row[field]))) for field, (kind, normalise) in _IDENTIFIER_FIELDS.items() if row.get(field)]


def _db_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return json.dumps({k: _db_value(v) for k, v in value.items()}, ensure_ascii=False)
    if isinstance(value, bool):
        return int(value)
    return value


def _cylinder(row: dict[str, Any]) -> Cylinder:
    return Cylinder(
        id=row["id"],
        owner_unit=row["owner_unit"] or "",
        medium=row["medium"] or "",
        status=row["status"] or "",
        manufacture_month=row["manufacture_month"],
        next_inspection=row["next_inspection"],
        registration_no=row["registration_no"],
        volume_l=row["volume_l"],
        tare_kg=row["tare_kg"],
        fill_mass_kg=row["fill_mass_kg"],
        model=row["model"],
        service_life_years=row["service_life_years"],
        blocked_reason=row["blocked_reason"],
        removed_at=row["removed_at"],
    )
