"""Operators and checkers: registered in the config or by command, and on shift at a lane.

Every fill records the operator and the checker on shift when it was authorised (TSG 07-2019
asks for both, and they must be different people). Names must fit the city's fields, so a name
the city would refuse is refused here, when it is registered, not months later at upload.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import journal
from .database import Store, iso

if TYPE_CHECKING:
    from ..config import Config


class StaffError(ValueError):
    pass


def check_name(name: str, limit: int) -> str:
    name = name.strip()
    if not name:
        raise StaffError("a name is required")
    if len(name) > limit:
        raise StaffError(f"name {name!r} is {len(name)} characters; the city accepts at most {limit}")
    return name


def register_config(store: Store, config: Config, now: datetime) -> None:
    """Bring the config's staff into the register, and give each lane its configured shift unless a
    command has set one since (the command is the later word)."""
    with store.transaction() as conn:
        for person in config.operators:
            # A person retired by `edge staff remove` stays retired although the config still lists
            # them: the command is the later word (as for shifts), until `edge staff add`.
            changed = conn.execute(
                "INSERT INTO staff (id, name, source, active, updated_at) VALUES (?, ?, 'config', 1, ?)"
                " ON CONFLICT(id) DO UPDATE SET name = excluded.name, source = 'config',"
                " updated_at = excluded.updated_at WHERE staff.name <> excluded.name OR staff.source <> 'config'",
                (person.id, person.name, iso(now)),
            ).rowcount
            if changed:  # journalled like a command's change: `edge verify` replays the register
                journal.append(conn, iso(now), "staff_configured", {"id": person.id, "name": person.name})
        for lane in config.lanes:
            added = conn.execute(
                "INSERT OR IGNORE INTO shifts (lane, operator, checker, since) VALUES (?, ?, ?, ?)",
                (lane.id, lane.operator, lane.checker, iso(now)),
            ).rowcount
            if added:
                journal.append(conn, iso(now), "shift_configured", {"operator": lane.operator, "checker": lane.checker}, lane=lane.id)


def add(store: Store, person_id: str, name: str, limit: int, now: datetime) -> None:
    from ..config.model import STAFF_ID_PATTERN  # the config's rule for ids; loaded here, not at import

    if not STAFF_ID_PATTERN.fullmatch(person_id):
        raise StaffError(f"id {person_id!r}: 1 to 20 letters, digits, '-' or '_'")
    name = check_name(name, limit)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO staff (id, name, source, active, updated_at) VALUES (?, ?, 'command', 1, ?)"
            " ON CONFLICT(id) DO UPDATE SET name = excluded.name, active = 1, updated_at = excluded.updated_at",
            (person_id, name, iso(now)),
        )
        journal.append(conn, iso(now), "staff_registered", {"id": person_id, "name": name})


def remove(store: Store, person_id: str, now: datetime) -> None:
    with store.transaction() as conn:
        _require_active(conn, person_id)
        on_shift = [r[0] for r in conn.execute("SELECT lane FROM shifts WHERE ? IN (operator, checker)", (person_id,))]
        if on_shift:
            raise StaffError(f"{person_id} is on shift at lane {', '.join(on_shift)}; assign someone else first")
        conn.execute("UPDATE staff SET active = 0, updated_at = ? WHERE id = ?", (iso(now), person_id))
        journal.append(conn, iso(now), "staff_removed", {"id": person_id})


def assign(store: Store, config: Config, lane: str, operator: str, checker: str, now: datetime) -> None:
    if lane not in {l.id for l in config.lanes}:
        raise StaffError(f"no lane {lane!r} in the config (lanes: {', '.join(l.id for l in config.lanes)})")
    if operator == checker:
        raise StaffError("the checker must be someone other than the operator (TSG 07-2019)")
    with store.transaction() as conn:
        for person in (operator, checker):
            _require_active(conn, person)
        conn.execute(
            "INSERT INTO shifts (lane, operator, checker, since) VALUES (?, ?, ?, ?) ON CONFLICT(lane) DO UPDATE"
            " SET operator = excluded.operator, checker = excluded.checker, since = excluded.since",
            (lane, operator, checker, iso(now)),
        )
        journal.append(conn, iso(now), "shift_changed", {"operator": operator, "checker": checker}, lane=lane)


def on_shift(store: Store, lane: str) -> dict[str, str | None]:
    """The names a fill authorised now at this lane records."""
    rows = store.query(
        "SELECT o.name AS operator, c.name AS checker FROM shifts s"
        " JOIN staff o ON o.id = s.operator JOIN staff c ON c.id = s.checker WHERE s.lane = ?",
        [lane],
    )
    return rows[0] if rows else {"operator": None, "checker": None}


def listing(store: Store) -> dict[str, Any]:
    return {
        "staff": store.query("SELECT id, name, source, active, updated_at FROM staff ORDER BY active DESC, id"),
        "shifts": store.query(
            "SELECT s.lane, s.operator, o.name AS operator_name, s.checker, c.name AS checker_name, s.since"
            " FROM shifts s JOIN staff o ON o.id = s.operator JOIN staff c ON c.id = s.checker ORDER BY s.lane"
        ),
    }


def _require_active(conn: Any, person_id: str) -> None:
    row = conn.execute("SELECT active FROM staff WHERE id = ?", (person_id,)).fetchone()
    if row is None or not row[0]:
        raise StaffError(f"{person_id!r} is not registered (edge staff add ID NAME)")
