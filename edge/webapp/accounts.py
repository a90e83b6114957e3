"""Staff PINs and roles. A PIN is kept only as a salted scrypt hash (hashlib, OpenSSL's scrypt):
slow and memory-hard, so a copied database does not give the PINs away cheaply."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

from ..scanpoints.common import ROLES, Actor
from ..store import Store, journal
from ..store.database import iso
from ..store.staff import StaffError

# 16 MiB and ~50 ms per try on a Raspberry Pi 4: slow for a guesser, quick enough for a login.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_SECRET = 6
MAX_SECRET = 128
# Which roles may use which scan point; a manager may use every one.
PERMISSIONS = {
    "check": frozenset({"checker", "manager"}),
    "bind": frozenset({"checker", "manager"}),
    "dispatch": frozenset({"dispatcher", "manager"}),
}


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt)}${b64(digest)}"


def check_secret(secret: str, stored: str | None) -> bool:
    if not stored:
        # Burn the same time as a real check: an unknown account must not answer faster.
        hash_secret(secret)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            secret.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def set_secret(store: Store, person_id: str, secret: str, role: str | None, now: datetime) -> str:
    """Set a registered person's PIN or password (and role); returns the role in force."""
    if not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise StaffError(f"a PIN or password of {MIN_SECRET} to {MAX_SECRET} characters")
    if role is not None and role not in ROLES:
        raise StaffError(f"role {role!r}: one of {', '.join(ROLES)}")
    hashed = hash_secret(secret)
    with store.transaction() as conn:
        row = conn.execute("SELECT active, role FROM staff WHERE id = ?", (person_id,)).fetchone()
        if row is None or not row[0]:
            raise StaffError(f"{person_id!r} is not registered (edge staff add ID NAME)")
        role = role or row[1]
        if role is None:
            raise StaffError(f"{person_id} has no role yet: give one with --role ({', '.join(ROLES)})")
        conn.execute("UPDATE staff SET secret_hash = ?, role = ?, updated_at = ? WHERE id = ?", (hashed, role, iso(now), person_id))
        # The journal says that it changed and who may now do what; the hash stays in its row.
        journal.append(conn, iso(now), "staff_secret_set", {"id": person_id, "role": role})
    return role


def authenticate(store: Store, person_id: str, secret: str) -> Actor | None:
    rows = store.query("SELECT id, name, role, secret_hash, active FROM staff WHERE id = ?", [person_id[:40]])
    row = rows[0] if rows and rows[0]["active"] and rows[0]["role"] else None
    if not check_secret(secret[:MAX_SECRET], row["secret_hash"] if row else None) or row is None:
        return None
    return Actor(row["id"], row["name"], row["role"])


def may(actor: Actor, action: str) -> bool:
    return actor.role in PERMISSIONS[action]
