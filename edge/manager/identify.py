"""Any identifier a person has at hand -> the cylinder's cached record: the record ID that
`edge records` prints, or whatever a scanner reads (URL, info code, traceable or product number,
RFID UID/EPC)."""

from __future__ import annotations

import re
from typing import Any

from interlock import codes
from interlock.codes import Source

from ..config import Config
from ..store import Store


def find_cylinder(store: Store, config: Config, text: str, rfid: bool = False) -> tuple[dict[str, Any] | None, str]:
    """(cached record or None, how the text was read); ValueError for text that cannot be either."""
    text = text.strip()
    rows = store.query("SELECT c.*, b.reason AS blocked_reason FROM cylinders c LEFT JOIN blocks b ON b.cylinder_id = c.id"
                       " WHERE c.id = ?", [text])
    if rows and not rfid:
        return rows[0], f"record ID {text}"
    patterns = [codes.UrlPattern(re.compile(p.regex), p.kind) for p in config.codes.url_patterns]
    parsed = codes.parse(text.encode("utf-8"), Source.RFID if rfid else Source.OPTICAL, patterns)
    if isinstance(parsed, codes.Invalid):
        raise ValueError(f"{text!r} is neither a record ID in the cache nor a code the station can read: {parsed.detail}")
    return store.cylinder_record(parsed), f"{parsed.kind.value} {parsed.value}"


def cylinder_id(store: Store, config: Config, text: str) -> str:
    """The record ID for a filter: the cylinder a scanned code resolves to, else the text as given
    (a fill can name a cylinder that has since left the cache)."""
    try:
        record, _ = find_cylinder(store, config, text)
    except ValueError:
        return text.strip()
    return record["id"] if record else text.strip()
