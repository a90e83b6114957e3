"""Schema migrations, registered in code and applied in order; PRAGMA user_version is the marker."""

from __future__ import annotations

import sqlite3
from typing import Callable

# The city spec's 20 cylinder fields (English column names; Chinese labels in CITY_FIELDS),
# plus station data: tare and fill mass, model, traceable number, RFID tag, service life.
CITY_FIELDS: dict[str, str] = {
    "id": "ID",
    "owner_unit": "使用单位名称",
    "region": "设备区域",
    "variety": "设备品种",
    "product_no": "产品编号",
    "medium": "充装介质",
    "manufacturer": "制造单位",
    "manufacture_month": "制造年月",
    "working_pressure_mpa": "公称工作压力",
    "volume_l": "容积",
    "last_inspection": "最近一次检验日期",
    "next_inspection": "下次检验日期",
    "unit_no": "单位内编号",
    "status": "使用状态",
    "tag_kind": "信息化管理情况",
    "info_code": "信息化编码",
    "qr_content": "二维码",
    "registration_no": "使用登记证编号",
    "registration_date": "使用登记日期",
    "registration_authority": "使用登记机关",
}
STATION_FIELDS: dict[str, str] = {
    "tare_kg": "皮重",
    "fill_mass_kg": "充装量",
    "model": "型号",
    "traceable_code": "可追溯编号",
    "rfid": "RFID",
    "service_life_years": "设计使用年限",
}


def _v1(conn: sqlite3.Connection) -> None:
    city_columns = ",\n".join(
        f"{name} {'REAL' if name in ('working_pressure_mpa', 'volume_l') else 'TEXT'}"
        for name in CITY_FIELDS
        if name != "id"
    )
    _run_script(
        conn,
        f"""
        CREATE TABLE cylinders (
            id TEXT PRIMARY KEY,
            {city_columns},
            tare_kg REAL, fill_mass_kg REAL, model TEXT, traceable_code TEXT, rfid TEXT,
            service_life_years INTEGER,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE identifiers (
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            cylinder_id TEXT NOT NULL REFERENCES cylinders(id),
            PRIMARY KEY (kind, value)
        ) WITHOUT ROWID;
        CREATE INDEX identifiers_cylinder ON identifiers(cylinder_id);
        CREATE TABLE blocks (
            cylinder_id TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE fills (
            id TEXT PRIMARY KEY,
            lane TEXT NOT NULL,
            cylinder_id TEXT NOT NULL,
            code TEXT,
            medium TEXT,
            operator TEXT,
            checker TEXT,
            status TEXT NOT NULL,
            tare_kg REAL, target_net_kg REAL, start_gross_kg REAL, residual_kg REAL,
            cutoff_gross_kg REAL, final_gross_kg REAL, net_kg REAL,
            outcome TEXT, cause TEXT, detail TEXT, tripped INTEGER NOT NULL DEFAULT 0,
            authorised_at TEXT, started_at TEXT, cutoff_at TEXT, finished_at TEXT
        );
        CREATE INDEX fills_lane_time ON fills(lane, authorised_at);
        CREATE INDEX fills_cylinder ON fills(cylinder_id);
        CREATE TABLE journal (
            seq INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            lane TEXT,
            kind TEXT NOT NULL,
            fill_id TEXT,
            cylinder_id TEXT,
            data TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX journal_kind ON journal(kind);
        -- The chain's head, updated in the same transaction as every append: removing the newest
        -- journal rows leaves a head that no longer matches.
        CREATE TABLE chain_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER, hash TEXT);
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            fill_id TEXT NOT NULL UNIQUE REFERENCES fills(id),
            idempotency_key TEXT NOT NULL UNIQUE,
            payload TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            last_error TEXT
        );
        CREATE INDEX outbox_status ON outbox(status, id);
        """,
    )


def _v2(conn: sqlite3.Connection) -> None:
    """The outbox holds several record kinds per fill (filling record, trace node), each with its
    own idempotency key, and keeps delivered rows (status 'sent') with the city's reply."""
    _run_script(
        conn,
        """
        CREATE TABLE outbox_v2 (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            fill_id TEXT REFERENCES fills(id),
            idempotency_key TEXT NOT NULL UNIQUE,
            payload TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            last_attempt_at TEXT,
            last_error TEXT,
            sent_at TEXT,
            reply TEXT
        );
        INSERT INTO outbox_v2 (id, kind, fill_id, idempotency_key, payload, status, attempts, created_at, last_error)
            SELECT id, 'filling', fill_id, idempotency_key, payload, status, attempts, created_at, last_error FROM outbox;
        DROP TABLE outbox;
        ALTER TABLE outbox_v2 RENAME TO outbox;
        CREATE UNIQUE INDEX outbox_fill_kind ON outbox(fill_id, kind);
        CREATE INDEX outbox_status ON outbox(status, id);
        """,
    )


def _v3(conn: sqlite3.Connection) -> None:
    """Staff registered by config or by command, and who is on each lane's shift: a fill records
    the operator and checker on shift when it is authorised."""
    _run_script(
        conn,
        """
        CREATE TABLE staff (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('config', 'command')),
            active INTEGER NOT NULL DEFAULT 1,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE shifts (
            lane TEXT PRIMARY KEY,
            operator TEXT NOT NULL REFERENCES staff(id),
            checker TEXT NOT NULL REFERENCES staff(id),
            since TEXT NOT NULL,
            CHECK (operator <> checker)
        );
        CREATE INDEX journal_lane_time ON journal(lane, ts);
        CREATE INDEX fills_time ON fills(authorised_at)
        """,
    )


def _v4(conn: sqlite3.Connection) -> None:
    """The company fleet: events owed to the company's broker (written in the transaction of the
    fill or scan they report), blocks and lane locks received from the company, and every command
    received (its id is what refuses a replay)."""
    _run_script(
        conn,
        """
        CREATE TABLE fleet_outbox (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            key TEXT NOT NULL UNIQUE,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            delivered_at TEXT
        );
        CREATE INDEX fleet_outbox_pending ON fleet_outbox(id) WHERE delivered_at IS NULL;
        CREATE TABLE fleet_blocks (
            identifier TEXT PRIMARY KEY,
            cylinder_id TEXT,
            reason TEXT NOT NULL,
            sender TEXT NOT NULL,
            command_id TEXT NOT NULL,
            at TEXT NOT NULL,
            owns_block INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE fleet_locks (
            lane TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            sender TEXT NOT NULL,
            command_id TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE TABLE fleet_commands (
            id TEXT PRIMARY KEY,
            received_at TEXT NOT NULL,
            sent_at TEXT,
            sender TEXT,
            kind TEXT,
            outcome TEXT NOT NULL,
            detail TEXT
        )
        """,
    )


def _v5(conn: sqlite3.Connection) -> None:
    """The staff's LAN app: PIN hashes and roles, the checkers' pre- and post-fill checks (a fill
    names the pre-fill check it relied on), tag bindings with their stamp photos, and dispatches."""
    _run_script(
        conn,
        """
        ALTER TABLE staff ADD COLUMN role TEXT;
        ALTER TABLE staff ADD COLUMN secret_hash TEXT;
        ALTER TABLE fills ADD COLUMN precheck_id TEXT;
        CREATE TABLE checks (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('prefill', 'postfill')),
            cylinder_id TEXT NOT NULL,
            code TEXT,
            medium TEXT,
            checker TEXT NOT NULL REFERENCES staff(id),
            checker_name TEXT NOT NULL,
            passed INTEGER NOT NULL,
            items TEXT NOT NULL,
            failed TEXT NOT NULL,
            fill_id TEXT REFERENCES fills(id),
            reweigh_kg REAL,
            reweigh_source TEXT,
            flag TEXT,
            at TEXT NOT NULL
        );
        CREATE INDEX checks_cylinder ON checks(cylinder_id, kind, at);
        CREATE TABLE tag_bindings (
            id TEXT PRIMARY KEY,
            cylinder_id TEXT NOT NULL REFERENCES cylinders(id),
            tag_kind TEXT NOT NULL,
            tag_value TEXT NOT NULL,
            stamp_code TEXT NOT NULL,
            photos TEXT NOT NULL,
            by_staff TEXT NOT NULL REFERENCES staff(id),
            at TEXT NOT NULL
        );
        CREATE TABLE dispatches (
            id TEXT PRIMARY KEY,
            cylinder_id TEXT NOT NULL,
            fill_id TEXT REFERENCES fills(id),
            plate TEXT NOT NULL,
            courier TEXT NOT NULL,
            dispatcher TEXT NOT NULL REFERENCES staff(id),
            at TEXT NOT NULL
        );
        CREATE INDEX dispatches_time ON dispatches(at)
        """,
    )


def _v6(conn: sqlite3.Connection) -> None:
    """The in-flight time each lane (and cylinder model) has learned from its fills; every change
    is also journalled, so the table is what the journal implies."""
    _run_script(
        conn,
        """
        CREATE TABLE IF NOT EXISTS inflight (
            lane TEXT NOT NULL,
            model TEXT NOT NULL,
            seconds TEXT NOT NULL,  -- JSON: {"seconds": [...], "fills": n}
            updated_at TEXT NOT NULL,
            PRIMARY KEY (lane, model)
        )
        """,
    )


def _v7(conn: sqlite3.Connection) -> None:
    """`edge verify` checks fills, outbox, staff and shift rows against the journal; rows that
    earlier versions wrote without a journal entry are journalled once, as they stand."""
    from datetime import datetime, timezone

    from .replay import baseline

    baseline(conn, datetime.now(timezone.utc).isoformat(timespec="milliseconds"))


def _v8(conn: sqlite3.Connection) -> None:
    """Cylinders the city's registry no longer lists: swept by a complete full pull, or named by
    an incremental pull. Kept beside the cache (not deleted from it) so the lane can say why it
    refuses, and cleared when the city lists the cylinder again."""
    _run_script(
        conn,
        """
        CREATE TABLE removals (
            cylinder_id TEXT PRIMARY KEY,
            removed_at TEXT NOT NULL,
            how TEXT NOT NULL
        )
        """,
    )


def _v9(conn: sqlite3.Connection) -> None:
    """Reports that cost what they show: a day's scans found by time (a partial index: scans only,
    a fraction of the journal's size), fills counted by status from an index, not the table."""
    _run_script(
        conn,
        """
        CREATE INDEX journal_scans ON journal(ts) WHERE kind = 'scan';
        CREATE INDEX fills_status ON fills(status)
        """,
    )


def _v10(conn: sqlite3.Connection) -> None:
    """A store that stays small. New journal rows keep their hash as 32 bytes and no copy of the
    previous row's (edge/store/journal.py), so prev_hash may now be NULL: only that NOT NULL is
    dropped, by editing the table's declaration in place, which SQLite documents for constraints
    that do not change how rows are stored (no row is rewritten). The status's "last entry on a
    lane" reads an index of (lane) by entry number instead of (lane, ts) over every entry. Events
    the broker already has give up their bodies, as deliveries from now on do (deleted and inserted
    again, so their pages are freed for new rows; schema 11 deletes them).

    Nothing older is rewritten otherwise: the checkpoints already journalled digest those rows as
    they are stored. One transaction, linear in the history: measured 2.2 s on a store of 100,000
    fills (810,000 entries, 110,000 delivered events) and 8.5 s on one of 300,000, on a loaded
    2-core PC; about half a minute at a million fills."""
    _relax(conn, "prev_hash TEXT NOT NULL", "prev_hash TEXT")
    _run_script(
        conn,
        """
        DROP INDEX journal_lane_time;
        CREATE INDEX journal_lane ON journal(lane) WHERE lane IS NOT NULL;
        CREATE TEMP TABLE delivered AS
            SELECT id, kind, key, created_at, attempts, delivered_at FROM fleet_outbox WHERE delivered_at IS NOT NULL;
        DELETE FROM fleet_outbox WHERE delivered_at IS NOT NULL;
        INSERT INTO fleet_outbox (id, kind, key, payload, created_at, attempts, delivered_at)
            SELECT id, kind, key, '', created_at, attempts, delivered_at FROM temp.delivered;
        DROP TABLE temp.delivered
        """,
    )


def _v11(conn: sqlite3.Connection) -> None:
    """A store that stays small, continued: journal data packed, a narrower kind index, fleet
    events and city records deleted once delivered. No row is rewritten."""
    # -- Journal data packed, a narrower kind index, delivered fleet events deleted ------------
    # New entries store their data packed (edge/store/packing.py); older rows keep their text and
    # are read as they are, so nothing is rewritten for that. The kind index held every entry;
    # entries are found by kind only for the rare events that name no fill (checkpoints, archives,
    # baselines, shifts, a lane's acknowledgements and resets), so it holds only those now, and a
    # query by kind says `AND fill_id IS NULL` to use it. A lane's hold names its fill: its own
    # small index. Events the broker acknowledged are deleted on acknowledgement from now on
    # (edge/store/fleet.py): the ones kept until now go, the last acknowledgement's time kept in
    # meta for `edge fleet outbox`. The uplink reads the events after the last id it sent, so an
    # id must never be given again once its row is deleted: the table is made again with
    # AUTOINCREMENT, its sequence starting after every id used so far.
    _run_script(
        conn,
        """
        DROP INDEX journal_kind;
        CREATE INDEX journal_kind ON journal(kind) WHERE fill_id IS NULL;
        CREATE INDEX journal_held ON journal(lane) WHERE kind = 'lane_held';
        INSERT OR REPLACE INTO meta (key, value)
            SELECT 'fleet_delivered_at', max(delivered_at) FROM fleet_outbox WHERE delivered_at IS NOT NULL HAVING count(*) > 0;
        CREATE TABLE fleet_outbox_v11 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            key TEXT NOT NULL UNIQUE,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            delivered_at TEXT
        );
        INSERT INTO sqlite_sequence (name, seq) SELECT 'fleet_outbox_v11', coalesce(max(id), 0) FROM fleet_outbox;
        INSERT INTO fleet_outbox_v11 (id, kind, key, payload, created_at, attempts, delivered_at)
            SELECT id, kind, key, payload, created_at, attempts, delivered_at FROM fleet_outbox WHERE delivered_at IS NULL;
        DROP TABLE fleet_outbox;
        ALTER TABLE fleet_outbox_v11 RENAME TO fleet_outbox;
        CREATE INDEX fleet_outbox_pending ON fleet_outbox(id) WHERE delivered_at IS NULL
        """,
    )
    # -- The city outbox becomes a queue ------------------------------------------------------
    # A row the city acknowledged leaves it, a hundred at a time, with one journal entry naming what
    # left (edge/store/delivered.py). Each row queued from now on names the entry that queued it
    # (queued_seq), so `edge verify` checks a row still waiting against that entry directly,
    # whatever its age. Rows of earlier releases (queued_seq NULL) stay as they are: the
    # checkpoints already journalled digest them.
    conn.execute("ALTER TABLE outbox ADD COLUMN queued_seq INTEGER")
    # The delivered rows waiting to leave (a hundred at most), found without walking every row an
    # earlier release kept as sent.
    conn.execute("CREATE INDEX outbox_delivered ON outbox(id) WHERE status = 'sent' AND queued_seq IS NOT NULL")


def _relax(conn: sqlite3.Connection, declared: str, relaxed: str) -> None:
    """Drop a NOT NULL from the journal table's declaration in place, which SQLite documents for
    constraints that do not change how rows are stored: no row is rewritten."""
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    conn.execute("PRAGMA writable_schema = ON")
    try:
        edited = conn.execute(
            "UPDATE sqlite_schema SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'journal' AND instr(sql, ?)",
            (declared, relaxed, declared),
        ).rowcount
        if edited != 1:  # the migration is rolled back whole: the store stays as it was
            raise sqlite3.DatabaseError(f"the journal table does not declare {declared!r} as expected")
        # Other connections re-read the declaration when the schema's version moves on.
        conn.execute(f"PRAGMA schema_version = {version + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would commit first; statements run one by one stay inside the migration.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9, _v10, _v11]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; returns the version now in force."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            migration(conn)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
