"""Copy the live store, check the copy as `edge verify --full` does, compress it; and the reverse.

The copy is made with SQLite's online backup API over a read-only connection: it is one read
snapshot of the database, taken while the daemon goes on writing (in WAL mode readers and the
writer do not wait for each other), and the live store is never written by it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..store import Store, StoreError, StoreUnavailable
from ..store.schema import MIGRATIONS

GZIP_LEVEL = 6  # zlib's default: most of level 9's ratio on a store's pages, at a fraction of its time


class BackupError(Exception):
    """A backup or a restore could not be made; the message says what and where."""


@dataclass(frozen=True)
class Checked:
    """What the full replay proved of a copy."""

    entries: int  # journal entries, up to the head
    head: str  # the head's hash
    fills: int
    schema: int


def copy_live(store_path: Path, dest: Path) -> None:
    """A consistent copy of the store at `store_path` into the new file `dest`."""
    if not store_path.exists():
        raise BackupError(f"{store_path}: no station store there")
    uri = f"file:{quote(str(store_path.resolve()))}?mode=ro"
    try:
        source = sqlite3.connect(uri, uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise BackupError(f"{store_path}: cannot be opened to copy it: {exc}") from exc
    try:
        target = sqlite3.connect(str(dest))
        try:
            source.backup(target)  # every page in one step: one snapshot, however long it takes
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise BackupError(f"copying {store_path} to {dest} failed: {exc}") from exc
    finally:
        source.close()


def check(path: Path) -> Checked:
    """The page structure (integrity_check), then every journal entry and row against the journal
    from the genesis (the full replay of `edge verify --full`). A copy of an older schema is
    upgraded first, as the daemon would upgrade it. Raises BackupError naming the first problem."""
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}", uri=True)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check(5)")]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"not a station store: {exc}") from None
    if problems != ["ok"]:
        raise BackupError("the database is damaged: " + "; ".join(problems))
    if version > len(MIGRATIONS):
        raise BackupError(f"made by a newer edge (store schema {version}, this edge {len(MIGRATIONS)}): use that edge")
    try:
        store = Store(path, existing=version == len(MIGRATIONS))  # older: migrated here, as the daemon would
    except (StoreError, StoreUnavailable) as exc:
        raise BackupError(str(exc)) from None
    try:
        audit = store.audit(full=True, checkpoint=False)
        if not audit.ok:
            raise BackupError(f"it does not verify: {audit.problem()}")
        fills = store.query("SELECT count(*) AS n FROM fills")[0]["n"]
    finally:
        store.close()
    return Checked(audit.chain.head_seq, audit.chain.head_hash, fills, len(MIGRATIONS))


def compress(source: Path, dest: Path) -> None:
    """gzip `source` into `dest` (written whole, then renamed: never a half file under the name)."""
    partial = dest.with_name(dest.name + ".partial")
    with source.open("rb") as raw, partial.open("wb") as out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=GZIP_LEVEL, mtime=0) as packed:
            shutil.copyfileobj(raw, packed, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(dest)


def decompress(source: Path, dest: Path) -> None:
    """gunzip `source` into `dest`; a truncated or altered file (gzip's CRC and length) is refused."""
    try:
        with gzip.open(source, "rb") as packed, dest.open("wb") as out:
            shutil.copyfileobj(packed, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        dest.unlink(missing_ok=True)
        raise BackupError(f"{source.name} is truncated or damaged ({exc})") from None
