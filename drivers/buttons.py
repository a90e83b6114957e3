"""Push-button debouncing, pure: time is passed in."""

from __future__ import annotations


class Debouncer:
    """Reports a button once per press: when it has been held for debounce_s after being released."""

    def __init__(self, debounce_s: float) -> None:
        self.debounce_s = debounce_s
        self._down_since: dict[str, float] = {}
        self._reported: set[str] = set()

    def update(self, held: set[str], now: float) -> set[str]:
        for name in list(self._down_since):
            if name not in held:
                del self._down_since[name]
                self._reported.discard(name)
        fired = set()
        for name in held:
            since = self._down_since.setdefault(name, now)
            if name not in self._reported and now - since >= self.debounce_s:
                self._reported.add(name)
                fired.add(name)
        return fired
