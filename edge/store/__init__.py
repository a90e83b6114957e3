"""One SQLite file: the cylinder cache, fills, the hash-chained journal and the upload outbox."""

from .database import Store, StoreError
from .journal import ChainReport

__all__ = ["ChainReport", "Store", "StoreError"]
