"""Sessions with an idle timeout, CSRF tokens, and the login rate limit. All in memory: a restart
logs everyone out, which is the safe direction."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..scanpoints.common import Actor

Monotonic = Callable[[], float]


@dataclass
class Session:
    actor: Actor
    csrf: str
    last_seen: float
    # Per-page state that must not come from the form (the dispatcher's current vehicle).
    data: dict[str, Any] = field(default_factory=dict)


class Sessions:
    def __init__(self, idle_s: float, clock: Monotonic = time.monotonic, limit: int = 1000) -> None:
        self.idle_s, self.clock, self.limit = idle_s, clock, limit
        self._lock = threading.Lock()
        self._by_token: dict[str, Session] = {}

    def open(self, actor: Actor) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._expire()
            if len(self._by_token) >= self.limit:
                # Never unbounded: the stalest session makes room.
                del self._by_token[min(self._by_token, key=lambda t: self._by_token[t].last_seen)]
            self._by_token[token] = Session(actor, secrets.token_urlsafe(32), self.clock())
        return token

    def get(self, token: str | None) -> Session | None:
        """The live session for a cookie's token, its idle clock restarted; None if none or expired."""
        if not token:
            return None
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            now = self.clock()
            if now - session.last_seen > self.idle_s:
                del self._by_token[token]
                return None
            session.last_seen = now
            return session

    def close(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)

    def count(self) -> int:
        with self._lock:
            self._expire()
            return len(self._by_token)

    def _expire(self) -> None:
        now = self.clock()
        for token in [t for t, s in self._by_token.items() if now - s.last_seen > self.idle_s]:
            del self._by_token[token]


class LoginLimiter:
    """After `limit` wrong PINs for one account, or from one address, within `window_s`, refuse
    that account (or address) until `window_s` has passed since its last failure."""

    def __init__(self, limit: int, window_s: float, clock: Monotonic = time.monotonic, max_keys: int = 10_000) -> None:
        self.limit, self.window_s, self.clock, self.max_keys = limit, window_s, clock, max_keys
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def locked(self, *keys: str) -> bool:
        with self._lock:
            return any(self._recent(key) >= self.limit for key in keys)

    def failed(self, *keys: str) -> None:
        with self._lock:
            if len(self._failures) >= self.max_keys:
                self._prune()
            for key in keys:
                self._failures.setdefault(key, deque(maxlen=self.limit)).append(self.clock())

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: str) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        if self.clock() - times[-1] > self.window_s:
            del self._failures[key]
            return 0
        return len(times)

    def _prune(self) -> None:
        now = self.clock()
        for key in [k for k, t in self._failures.items() if now - t[-1] > self.window_s]:
            del self._failures[key]


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and secrets.compare_digest(str(a), str(b))
