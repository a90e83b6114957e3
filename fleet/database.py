"""The company's event database: SQLite by default, PostgreSQL when the config names one.

Each event is stored once, keyed on (station, key): the stations deliver at least once, so a
repeat is expected and dropped here, and several collectors may write the same event at once (the
primary key and ON CONFLICT DO NOTHING settle it in the database). A message that cannot be
stored, because it fails the schema or the database refuses it, goes to the quarantine table with
its raw bytes and why, and collection goes on. The same SQL runs on both (placeholders aside).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

from sync.fleet.validation import EVENT_TYPES, STATE_TYPES, PayloadError, check_message

log = logging.getLogger(__name__)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS events (
        station TEXT NOT NULL,
        key TEXT NOT NULL,
        type TEXT NOT NULL,
        lane TEXT,
        day TEXT NOT NULL,
        ts TEXT NOT NULL,
        cylinder_id TEXT,
        outcome TEXT,
        valve_opened INTEGER,
        overfilled INTEGER,
        reasons TEXT,
        payload TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (station, key)
    )""",
    "CREATE INDEX IF NOT EXISTS events_day ON events (type, day, station)",
    "CREATE INDEX IF NOT EXISTS events_cylinder ON events (cylinder_id, type)",
    # since: when the station went online or offline, as the collector saw it (a last will carries
    # the time its station connected, not the time it was lost).
    """CREATE TABLE IF NOT EXISTS stations (
        station TEXT PRIMARY KEY,
        online INTEGER NOT NULL,
        payload TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        since TEXT
    )""",
    # What could not be stored, byte for byte, with why. The digest (of topic and payload) keeps a
    # redelivered bad message once.
    """CREATE TABLE IF NOT EXISTS quarantine (
        digest TEXT PRIMARY KEY,
        topic TEXT NOT NULL,
        payload {bytes} NOT NULL,
        reason TEXT NOT NULL,
        received_at TEXT NOT NULL
    )""",
)


class EventDatabase:
    def __init__(self, url: str, base: Path | None = None) -> None:
        if url.startswith(("postgresql://", "postgres://")):
            try:
                import psycopg
            except ImportError as exc:
                raise RuntimeError("a PostgreSQL database needs psycopg: pip install 'station-edge[fleet-pg]'") from exc
            self.conn: Any = psycopg.connect(url, autocommit=False)
            self.placeholder, bytes_type, module = "%s", "BYTEA", psycopg
        elif url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///"):])
            if not path.is_absolute() and base is not None:
                path = base / path
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(path), check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.placeholder, bytes_type, module = "?", "BLOB", sqlite3
        else:
            raise ValueError(f"database {url!r}: expected sqlite:///PATH or postgresql://...")
        # What the database says about one row it cannot take (a NUL in a PostgreSQL text, say),
        # as against being unreachable: the first is quarantined, the second retried.
        self.refusals: tuple[type[Exception], ...] = (module.DataError, module.IntegrityError)
        for statement in SCHEMA:
            self.conn.execute(statement.replace("{bytes}", bytes_type))
        self._add_column("stations", "since", "TEXT")  # a database the previous release made
        self.conn.commit()

    def _add_column(self, table: str, column: str, kind: str) -> None:
        if self.placeholder == "%s":  # PostgreSQL: safe when several collectors start at once
            self.conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
            return
        columns = {d[0] for d in self.conn.execute(f"SELECT * FROM {table} LIMIT 0").description}
        if column not in columns:
            self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self.conn.close()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    def add_batch(self, messages: list[tuple[str, bytes]], received_at: str) -> dict[str, int]:
        """Store what arrived on the fleet topics in one transaction: events once each (a repeat is
        counted, not stored), station health as the latest, and whatever fails its checks in the
        quarantine. Raises only when the database itself fails (nothing is then committed)."""
        checked: list[tuple[str, bytes, dict[str, Any] | str]] = []
        for topic, raw in messages:
            if not raw and topic.rsplit("/", 1)[-1] in STATE_TYPES:
                continue  # a retained state cleared at the broker: nothing to keep
            try:
                checked.append((topic, raw, check_message(topic, raw)))
            except PayloadError as exc:
                checked.append((topic, raw, str(exc)))
        try:
            counts = self._store(checked, received_at, one_by_one=False)
        except self.refusals:
            # One row the database would not take spoilt the batch: store it again row by row,
            # each in a savepoint, and quarantine the rows it refuses.
            self.conn.rollback()
            counts = self._store(checked, received_at, one_by_one=True)
        return counts

    def _store(self, checked: list[tuple[str, bytes, dict[str, Any] | str]], received_at: str, one_by_one: bool) -> dict[str, int]:
        counts = {"stored": 0, "duplicates": 0, "quarantined": 0}
        try:
            for topic, raw, payload in checked:
                if isinstance(payload, str):
                    counts["quarantined"] += self._quarantine(topic, raw, payload, received_at)
                    continue
                if one_by_one:
                    self.conn.execute("SAVEPOINT one")
                try:
                    if payload["type"] in EVENT_TYPES:
                        counts["stored" if self._add_event(payload, received_at) else "duplicates"] += 1
                    else:
                        self._set_station(payload["station"], payload["online"], payload, received_at)
                except self.refusals as exc:
                    if not one_by_one:
                        raise
                    self.conn.execute("ROLLBACK TO SAVEPOINT one")
                    counts["quarantined"] += self._quarantine(topic, raw, f"the database refused it: {_first_line(exc)}", received_at)
                else:
                    if one_by_one:
                        self.conn.execute("RELEASE SAVEPOINT one")
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()
        return counts

    def _quarantine(self, topic: str, raw: bytes, reason: str, received_at: str) -> int:
        log.warning("quarantined a message on %s: %s", topic, reason)
        digest = hashlib.sha256(topic.encode("utf-8", "backslashreplace") + b"\0" + raw).hexdigest()
        cursor = self.conn.execute(
            self._sql("INSERT INTO quarantine (digest, topic, payload, reason, received_at) VALUES (?, ?, ?, ?, ?)"
                      " ON CONFLICT (digest) DO NOTHING"),
            (digest, topic, raw, reason, received_at),
        )
        return 1 if cursor.rowcount == 1 else 0

    def add_event(self, event: dict[str, Any], received_at: str) -> bool:
        """Store one event; False when it was already there (a redelivery). Commits."""
        stored = self._add_event(event, received_at)
        self.conn.commit()
        return stored

    def _add_event(self, event: dict[str, Any], received_at: str) -> bool:
        row = (
            event["station"], event["key"], event["type"], event.get("lane"), event["day"], event["ts"],
            event.get("cylinder_id"), event.get("outcome"),
            None if "valve_opened" not in event else int(event["valve_opened"]),
            None if "overfilled" not in event else int(event["overfilled"]),
            json.dumps(event.get("reasons")) if "reasons" in event else None,
            json.dumps(event, ensure_ascii=False, sort_keys=True), received_at,
        )
        cursor = self.conn.execute(
            self._sql(
                "INSERT INTO events (station, key, type, lane, day, ts, cylinder_id, outcome, valve_opened, overfilled,"
                " reasons, payload, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (station, key) DO NOTHING"
            ),
            row,
        )
        return cursor.rowcount == 1

    def _set_station(self, station: str, online: bool, payload: dict[str, Any], updated_at: str) -> None:
        self.conn.execute(
            self._sql(
                "INSERT INTO stations (station, online, payload, updated_at, since) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (station) DO UPDATE SET online = excluded.online, payload = excluded.payload,"
                " updated_at = excluded.updated_at, since = CASE WHEN stations.online = excluded.online"
                " AND stations.since IS NOT NULL THEN stations.since ELSE excluded.since END"
            ),
            (station, int(online), json.dumps(payload, ensure_ascii=False), updated_at, updated_at),
        )

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(self._sql(sql), params)
        rows = cursor.fetchall()
        self.conn.commit()  # PostgreSQL opened a transaction for the read
        return rows

    # What the reports read ---------------------------------------------------------------------

    def quarantine_count(self) -> int:
        return int(self.query("SELECT count(*) FROM quarantine")[0][0])

    def quarantined_messages(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The latest quarantined messages, raw payload included, newest first."""
        rows = self.query("SELECT topic, payload, reason, received_at FROM quarantine ORDER BY received_at DESC LIMIT ?", (limit,))
        return [{"topic": t, "payload": bytes(p), "reason": r, "received_at": at} for t, p, r, at in rows]

    def stations(self) -> list[dict[str, Any]]:
        """Every station's latest health, as the collector last stored it."""
        rows = self.query("SELECT station, online, payload, updated_at, since FROM stations ORDER BY station")
        return [{"station": s, "online": bool(o), "health": json.loads(p), "updated_at": at, "since": since}
                for s, o, p, at, since in rows]

    def count(self, kind: str | None = None) -> int:
        where, params = (" WHERE type = ?", (kind,)) if kind else ("", ())
        return int(self.query("SELECT count(*) FROM events" + where, params)[0][0])

    def keys(self, station: str | None = None) -> list[tuple[str, str]]:
        where, params = (" WHERE station = ?", (station,)) if station else ("", ())
        return [(s, k) for s, k in self.query("SELECT station, key FROM events" + where, params)]


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
