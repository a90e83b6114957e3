"""Tag binding (信息化标签绑定): a new or replaced QR/RFID tag bound to a cylinder's record, with
photos of its steel stamp. The local cache binds the tag at once so the cylinder can be filled;
the binding goes to the city through the outbox like every upload."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from interlock import codes
from interlock.reasons import Reason

from ..config import Config
from ..store import Store, journal
from ..store.database import iso
from .common import Actor, Refused, queue_upload, text_field
from .photos import prepare

log = logging.getLogger(__name__)

MAX_PHOTOS = 4
STAMP_MAX = 50
REASON_MAX = 200
# The city spec's words for a tag's kind (信息化管理情况), keyed by the form's value.
TAG_KINDS = {"qr": "二维码", "rfid": "RFID标签"}
# Identifiers stamped into the steel: they are the cylinder, no binding moves them.
STAMPED = frozenset({codes.Kind.PRODUCT.value, codes.Kind.TRACEABLE.value})


def photo_dir(config: Config) -> Path:
    return config.checks.photo_dir or config.store.path.parent / "photos"


def tag_kind(value: str) -> bool:
    """The form's tag kind, from the documented vocabulary only: True for an RFID tag."""
    if value not in TAG_KINDS:
        raise ValueError(f"标签类型只能是 {'、'.join(TAG_KINDS.values())} / tag kind: {' or '.join(TAG_KINDS)}")
    return value == "rfid"


def bind(
    store: Store,
    config: Config,
    actor: Actor,
    stamp_code: str,
    tag: str,
    rfid: bool,
    photos: list[bytes],
    now: datetime,
    rebind_reason: str = "",
) -> dict[str, Any]:
    """Bind `tag` (a QR code's text, or an RFID UID/EPC in hex) to the cylinder whose steel stamp
    (product number) is `stamp_code`. A binding only adds the tag to that cylinder: an identifier
    of another cylinder is never removed or re-pointed, except a tag a manager rebinds, with a
    reason, from the cylinder it was on (journalled, and bound at the city like any binding). A
    stamp or traceable number is the cylinder's steel and is never rebound."""
    stamp = text_field(stamp_code, "stamp code", STAMP_MAX).upper()
    reason = rebind_reason.strip()
    if reason:
        reason = text_field(reason, "rebinding reason", REASON_MAX)
    rows = store.query("SELECT id, product_no FROM cylinders WHERE upper(product_no) = ?", [stamp])
    if not rows:
        raise Refused.one(Reason.UNKNOWN_CYLINDER, f"no cylinder with stamp {stamp}")
    cylinder_id = rows[0]["id"]
    patterns = [codes.UrlPattern(re.compile(p.regex), p.kind) for p in config.codes.url_patterns]
    identifier = codes.parse(tag.encode("utf-8", "replace"), codes.Source.RFID if rfid else codes.Source.OPTICAL, patterns)
    if isinstance(identifier, codes.Invalid):
        raise Refused.one(Reason.INVALID_CODE, identifier.detail)
    # A QR tag carrying a bare code is bound as a code, never as a stamp number: a scan of it is
    # looked up as either, and a stamp number is the city's record of the steel, not a tag.
    bound = codes.Identifier(codes.Kind.INFO_CODE, identifier.value) if identifier.kind is codes.Kind.PRODUCT else identifier
    rebound_from = _rebinding(store, actor, identifier, bound, cylinder_id, reason)
    if not 1 <= len(photos) <= MAX_PHOTOS:
        raise ValueError(f"1 to {MAX_PHOTOS} photos of the steel stamp")
    # Every photo decoded before anything is kept: one that is not an image refuses the binding.
    images = [prepare(p, config.checks.max_photo_bytes, config.checks.max_photo_pixels).jpeg for p in photos]
    saved = [_save(photo_dir(config), image, now) for image in images]
    binding_id = str(uuid.uuid4())
    record = {"cylinder_id": cylinder_id, "tag_kind": TAG_KINDS["rfid" if rfid else "qr"]}
    record["rfid" if rfid else "qr_content"] = identifier.value if rfid else tag.strip()
    # The profile carries one stamp image: the first photo goes to the city, all stay here.
    payload = {**record, "photo": base64.b64encode(images[0]).decode("ascii"), "photo_name": Path(saved[0]["file"]).name}
    entry = {"id": binding_id, "cylinder_id": cylinder_id, "tag_kind": bound.kind.value, "tag_value": bound.value,
             "stamp_code": stamp, "photos": json.dumps(saved), "by_staff": actor.id, "at": iso(now)}
    with store.transaction() as conn:
        store.db["tag_bindings"].insert(entry)
        if rebound_from is None:
            conn.execute(
                "INSERT OR IGNORE INTO identifiers (kind, value, cylinder_id) VALUES (?, ?, ?)",
                (bound.kind.value, bound.value, cylinder_id),
            )
        else:
            conn.execute(
                "UPDATE identifiers SET cylinder_id = ? WHERE kind = ? AND value = ? AND cylinder_id = ?",
                (cylinder_id, bound.kind.value, bound.value, rebound_from),
            )
        data = {**entry, "photos": saved, "by": actor.id}
        if rebound_from is not None:
            data |= {"rebound_from": rebound_from, "reason": reason}
        kind = "tag_bound" if rebound_from is None else "tag_rebound"
        journal.append(conn, iso(now), kind, data, cylinder_id=cylinder_id)
        queue_upload(conn, "tag_binding", f"binding:{binding_id}", payload, now)
    log.info("tag %s %s to %s by %s (%d photos)", bound.kind.value, "bound" if rebound_from is None else f"rebound from {rebound_from}",
             cylinder_id, actor.id, len(photos))
    prune_photos(photo_dir(config), config.checks.photo_retention_days)
    return {**entry, "photos": saved, "rebound_from": rebound_from}


def _rebinding(
    store: Store, actor: Actor, scanned: codes.Identifier, bound: codes.Identifier, cylinder_id: str, reason: str,
) -> str | None:
    """The cylinder the tag is taken from when a manager rebinds it (None: the tag is free, or
    already this cylinder's), or Refused: another cylinder's stamp or traceable number, or a tag
    bound elsewhere without a manager's reason."""
    owners = {
        (r["kind"], r["cylinder_id"]) for r in store.query(
            "SELECT kind, cylinder_id FROM identifiers WHERE value = ? AND kind IN (SELECT value FROM json_each(?))",
            [bound.value, json.dumps(sorted({k.value for k in (*scanned.lookup_kinds, bound.kind)}))],
        )
    }
    others = {(kind, owner) for kind, owner in owners if owner != cylinder_id}
    if not others:
        return None
    stamped = sorted(owner for kind, owner in others if kind in STAMPED)
    if stamped:
        raise Refused.one(Reason.TAG_TAKEN, f"the stamp or traceable number of cylinder {stamped[0]}; never rebound")
    (kind, owner), = others  # (kind, value) is a key: one owner of the bound kind
    if actor.role != "manager" or not reason:
        raise Refused.one(Reason.TAG_TAKEN, f"bound to cylinder {owner}; a manager may rebind it, giving a reason")
    return owner


def _save(folder: Path, data: bytes, now: datetime) -> dict[str, str]:
    digest = hashlib.sha256(data).hexdigest()
    target = folder / now.strftime("%Y-%m") / f"{digest}.jpg"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(target)
    return {"file": str(target.relative_to(folder)), "sha256": digest}


def prune_photos(folder: Path, retention_days: int) -> int:
    """Delete photos older than the retention limit; their hashes stay in the journal."""
    cutoff = time.time() - retention_days * 86400
    removed = 0
    for path in folder.glob("*/*.*"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
