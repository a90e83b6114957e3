"""One SQLite file: the cylinder cache, fills, the hash-chained journal and the upload outbox."""

from .database import Outage, Store, StoreError, StoreUnavailable
from .journal import ChainReport

__all__ = ["ChainReport", "Outage", "Store", "StoreError", "StoreUnavailable"]
