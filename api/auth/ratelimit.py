"""Bounded counters of failed sign-ins, so passwords cannot be guessed at speed.

Two limits within a sliding window: `max_failures` per (username, client address), which stops
guessing one account's password without letting a stranger lock the real user out from their own
address, and `max_per_address` per address over all usernames, which stops trying one common
password on many accounts. Memory is bounded: at most `max_keys` counters of each kind, the least
recently failed forgotten first, and each keeps only its last `limit` failure times. A success
clears the (username, address) counter. Per process: several server processes (not a shape Lumbo
runs in yet) would each count on their own.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable


class _Window:
    def __init__(self, limit: int, window_s: float, max_keys: int) -> None:
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self.hits: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def retry_after(self, key: Hashable, now: float) -> float | None:
        times = self.hits.get(key)
        if times is None or len(times) < self.limit:
            return None
        wait = times[0] + self.window_s - now
        return wait if wait > 0 else None

    def add(self, key: Hashable, now: float) -> None:
        times = self.hits.pop(key, None)
        if times is None:
            times = deque(maxlen=self.limit)
        times.append(now)
        self.hits[key] = times  # most recent last
        while len(self.hits) > self.max_keys:
            self.hits.popitem(last=False)

    def clear(self, key: Hashable) -> None:
        self.hits.pop(key, None)


class LoginLimiter:
    def __init__(self, *, max_failures: int = 5, max_per_address: int = 50,
                 window_s: float = 900.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._pair = _Window(max_failures, window_s, max_keys)
        self._address = _Window(max_per_address, window_s, max_keys)
        self._clock = clock

    @staticmethod
    def _key(username: str, address: str) -> tuple[str, str]:
        return (username.strip().casefold()[:128], address)

    def retry_after(self, username: str, address: str) -> float | None:
        """Seconds until this sign-in may be tried again, or None if it may be tried now."""
        now = self._clock()
        waits = [w for w in (self._pair.retry_after(self._key(username, address), now),
                             self._address.retry_after(address, now)) if w is not None]
        return max(waits) if waits else None

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        self._pair.add(self._key(username, address), now)
        self._address.add(address, now)

    def succeeded(self, username: str, address: str) -> None:
        self._pair.clear(self._key(username, address))

    def __len__(self) -> int:
        return len(self._pair.hits) + len(self._address.hits)
