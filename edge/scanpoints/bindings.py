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


def photo_dir(config: Config) -> Path:
    return config.checks.photo_dir or config.store.path.parent / "photos"


def bind(
    store: Store,
    config: Config,
    actor: Actor,
    stamp_code: str,
    tag: str,
    rfid: bool,
    photos: list[bytes],
    now: datetime,
) -> dict[str, Any]:
    """Bind `tag` (a QR code's text, or an RFID UID/EPC in hex) to the cylinder whose steel stamp
    (product number) is `stamp_code`."""
    stamp = text_field(stamp_code, "stamp code", STAMP_MAX).upper()
    rows = store.query("SELECT id, product_no FROM cylinders WHERE upper(product_no) = ?", [stamp])
    if not rows:
        raise Refused.one(Reason.UNKNOWN_CYLINDER, f"no cylinder with stamp {stamp}")
    cylinder_id = rows[0]["id"]
    patterns = [codes.UrlPattern(re.compile(p.regex), p.kind) for p in config.codes.url_patterns]
    identifier = codes.parse(tag.encode("utf-8", "replace"), codes.Source.RFID if rfid else codes.Source.OPTICAL, patterns)
    if isinstance(identifier, codes.Invalid):
        raise Refused.one(Reason.INVALID_CODE, identifier.detail)
    taken = store.cylinder_record(identifier)
    if taken is not None and taken["id"] != cylinder_id:
        raise Refused.one(Reason.INVALID_CODE, f"tag already bound to cylinder {taken['id']}")
    if not 1 <= len(photos) <= MAX_PHOTOS:
        raise ValueError(f"1 to {MAX_PHOTOS} photos of the steel stamp")
    # Every photo decoded before anything is kept: one that is not an image refuses the binding.
    images = [prepare(p, config.checks.max_photo_bytes, config.checks.max_photo_pixels).jpeg for p in photos]
    saved = [_save(photo_dir(config), image, now) for image in images]
    binding_id = str(uuid.uuid4())
    record = {"cylinder_id": cylinder_id, "tag_kind": "RFID" if rfid else "二维码"}
    record["rfid" if rfid else "qr_content"] = identifier.value if rfid else tag.strip()
    # The profile carries one stamp image: the first photo goes to the city, all stay here.
    payload = {**record, "photo": base64.b64encode(images[0]).decode("ascii"), "photo_name": Path(saved[0]["file"]).name}
    entry = {"id": binding_id, "cylinder_id": cylinder_id, "tag_kind": identifier.kind.value, "tag_value": identifier.value,
             "stamp_code": stamp, "photos": json.dumps(saved), "by_staff": actor.id, "at": iso(now)}
    with store.transaction() as conn:
        store.db["tag_bindings"].insert(entry)
        conn.execute("DELETE FROM identifiers WHERE kind = ? AND cylinder_id = ?", (identifier.kind.value, cylinder_id))
        conn.execute(
            "INSERT OR REPLACE INTO identifiers (kind, value, cylinder_id) VALUES (?, ?, ?)",
            (identifier.kind.value, identifier.value, cylinder_id),
        )
        journal.append(conn, iso(now), "tag_bound", {**entry, "photos": saved, "by": actor.id}, cylinder_id=cylinder_id)
        queue_upload(conn, "tag_binding", f"binding:{binding_id}", payload, now)
    log.info("tag %s bound to %s by %s (%d photos)", identifier.kind.value, cylinder_id, actor.id, len(photos))
    prune_photos(photo_dir(config), config.checks.photo_retention_days)
    return {**entry, "photos": saved}


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
