"""The fleet's tables: the outbox of events owed to the company's broker, and what the company's
commands left behind (blocks, lane locks, every command received).

Events are written by `journal_sink`, inside the transaction of the journal entry they report, so
an event exists exactly when its fill or scan does. Blocks go in the station's own `blocks` table,
so the interlock's BLOCKED_LOCALLY rule enforces them; `fleet_blocks` remembers which blocks the
company made, so a remote unblock can never lift a block the station set itself.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, tzinfo
from typing import Any

from sync.fleet.events import chain_head_event, fill_event, scan_event
from sync.fleet.protocol import encode
from sync.fleet.uplink import PendingEvent

from . import journal
from .audit import CHECKPOINT
from .database import JournalSink, Store, iso, set_meta

FINAL_FILL_KINDS = ("fill_complete", "fill_aborted")
STATION = "*"  # the fleet_locks row that locks every lane


def journal_sink(company: str, station: str, tz: tzinfo) -> JournalSink:
    def sink(conn: sqlite3.Connection, ts: str, kind: str, data: dict[str, Any], where: dict[str, str | None]) -> None:
        moment = datetime.fromisoformat(ts)
        if kind in FINAL_FILL_KINDS:
            cursor = conn.execute("SELECT * FROM fills WHERE id = ?", (where["fill_id"],))
            fill = dict(zip([c[0] for c in cursor.description], cursor.fetchone()))
            event = fill_event(fill, company, station, tz, moment)
            kind, key = "fill", fill["id"]
        elif kind == "scan" and not data.get("accepted"):
            key = f"{station}:scan:{uuid.uuid4().hex}"
            event = scan_event(key, where.get("lane"), data, company, station, tz, moment)
            kind = "scan"
        elif kind == CHECKPOINT:  # a verify's proven head goes upstream, where the station cannot rewrite it
            event = chain_head_event(data["upto"], data["head"], company, station, tz, moment)
            kind, key = "chain_head", event["key"]
        else:
            return
        conn.execute(
            "INSERT INTO fleet_outbox (kind, key, payload, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
            (kind, key, encode(event).decode("utf-8"), ts),
        )

    return sink


DELIVERED_AT = "fleet_delivered_at"  # meta key: when the broker last acknowledged an event


class FleetOutbox:
    """The uplink's side of the outbox (sync.fleet.uplink.EventSource)."""

    def __init__(self, store: Store, now: Any) -> None:
        self.store, self.now = store, now

    def pending(self, after_id: int, limit: int) -> list[PendingEvent]:
        rows = self.store.query(
            "SELECT id, kind, payload FROM fleet_outbox WHERE delivered_at IS NULL AND id > ? ORDER BY id LIMIT ?",
            [after_id, limit],
        )
        return [PendingEvent(r["id"], r["kind"], r["payload"].encode("utf-8")) for r in rows]

    def delivered(self, ids: list[int]) -> None:
        """The broker has them: their rows go (the company has the events; the fill's own row and
        journal entries are the station's record, and the company's consumer drops an event it
        already has, should one for the same fill ever be written again)."""
        with self.store.transaction() as conn:
            gone = conn.executemany("DELETE FROM fleet_outbox WHERE id = ?", [(i,) for i in ids]).rowcount
            if gone:
                set_meta(conn, DELIVERED_AT, iso(self.now()))

    def counts(self) -> dict[str, int]:
        """Events still owed to the broker (the rows the outbox keeps)."""
        return {"pending": self.store.query("SELECT count(*) AS n FROM fleet_outbox WHERE delivered_at IS NULL")[0]["n"]}

    def last_delivered_at(self) -> str | None:
        """When the broker last acknowledged an event (None: never, as far as this store knows)."""
        return self.store.get_meta(DELIVERED_AT)


class FleetLedger:
    """Commands received, and the blocks and locks they left."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def seen(self, command_id: str) -> bool:
        return bool(self.store.query("SELECT 1 FROM fleet_commands WHERE id = ?", [command_id]))

    def record(self, now: datetime, command_id: str, fields: dict[str, Any], outcome: str, detail: str) -> bool:
        """Journal a command with who sent it; False if its id was already recorded (a replay)."""
        with self.store.transaction() as conn:
            inserted = conn.execute(
                "INSERT INTO fleet_commands (id, received_at, sent_at, sender, kind, outcome, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
                (command_id, iso(now), fields.get("sent_at"), fields.get("sender"), fields.get("action"), outcome, detail),
            ).rowcount
            journal.append(conn, iso(now), "fleet_command", {"id": command_id, **fields, "outcome": outcome, "detail": detail})
        return inserted == 1

    # Blocks ----------------------------------------------------------------------------------

    def block(self, now: datetime, identifier: str, cylinder_id: str | None, reason: str, sender: str, command_id: str) -> None:
        with self.store.transaction() as conn:
            owns = False
            if cylinder_id is not None:
                # A block the station set itself stays as it is (and stays the station's to lift).
                owns = conn.execute(
                    "INSERT INTO blocks (cylinder_id, reason, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (cylinder_id, f"fleet: {reason}", iso(now)),
                ).rowcount == 1
                previous = conn.execute("SELECT owns_block FROM fleet_blocks WHERE identifier = ?", (identifier,)).fetchone()
                owns = owns or bool(previous and previous[0])
            conn.execute(
                "INSERT OR REPLACE INTO fleet_blocks (identifier, cylinder_id, reason, sender, command_id, at, owns_block)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (identifier, cylinder_id, reason, sender, command_id, iso(now), int(owns)),
            )
            if owns:
                journal.append(conn, iso(now), "cylinder_blocked", {"reason": f"fleet: {reason}", "by": sender}, cylinder_id=cylinder_id)

    def unblock(self, now: datetime, identifier: str, sender: str) -> str:
        """Lift a block the company made; returns what happened, for the acknowledgement."""
        with self.store.transaction() as conn:
            row = conn.execute("SELECT cylinder_id, owns_block FROM fleet_blocks WHERE identifier = ?", (identifier,)).fetchone()
            if row is None:
                return "no fleet block on this identifier"
            conn.execute("DELETE FROM fleet_blocks WHERE identifier = ?", (identifier,))
            cylinder_id, owns = row
            others = conn.execute(
                "SELECT count(*) FROM fleet_blocks WHERE cylinder_id = ? AND owns_block = 1", (cylinder_id,)
            ).fetchone()[0]
            if not owns or cylinder_id is None:
                return "fleet block removed; the station's own block (if any) stays"
            if others:
                return "fleet block removed; another fleet block on this cylinder stays"
            conn.execute("DELETE FROM blocks WHERE cylinder_id = ?", (cylinder_id,))
            journal.append(conn, iso(now), "cylinder_unblocked", {"by": sender}, cylinder_id=cylinder_id)
            return "unblocked"

    def unresolved_blocks(self) -> list[dict[str, Any]]:
        return self.store.query("SELECT * FROM fleet_blocks WHERE cylinder_id IS NULL")

    # Locks -----------------------------------------------------------------------------------

    def lock(self, now: datetime, lane: str, reason: str, sender: str, command_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO fleet_locks (lane, reason, sender, command_id, at) VALUES (?, ?, ?, ?, ?)",
                (lane, reason, sender, command_id, iso(now)),
            )

    def unlock(self, lane: str) -> bool:
        with self.store.transaction() as conn:
            return conn.execute("DELETE FROM fleet_locks WHERE lane = ?", (lane,)).rowcount == 1

    def locks(self) -> dict[str, str]:
        """Lane id (or "*" for the whole station) -> the reason it is locked."""
        return {r["lane"]: f"{r['reason']} ({r['sender']})" for r in self.store.query("SELECT * FROM fleet_locks")}
