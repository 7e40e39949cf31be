"""What every source that replays samples in (scaled) real time needs: waiting for a wall-clock
instant that a stop can cut short, and the delivered rate over the last few seconds."""

from __future__ import annotations

import asyncio
import collections
import time


async def wait_until(wall_s: float, stop: asyncio.Event) -> None:
    """Return at monotonic time `wall_s`, or at once when `stop` is set; always yields once."""
    delay = wall_s - time.monotonic()
    if delay <= 0:
        await asyncio.sleep(0)
        return
    try:
        await asyncio.wait_for(stop.wait(), timeout=delay)
    except asyncio.TimeoutError:
        pass


class RateMeter:
    """Samples per second over the last `window_s` of sample time (not wall time), so a source
    played faster than real time still reports the sensor's own rate."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._recent: collections.deque[tuple[float, int]] = collections.deque()
        self._total = 0  # sum of the counts in `_recent`: read on every frame, kept, not summed

    def note(self, last_time_s: float, count: int) -> None:
        self._recent.append((last_time_s, count))
        self._total += count
        while len(self._recent) > 2 and self._recent[0][0] < last_time_s - self.window_s:
            self._total -= self._recent.popleft()[1]

    @property
    def rate_hz(self) -> float:
        if len(self._recent) < 2:
            return 0.0
        span = self._recent[-1][0] - self._recent[0][0]
        n = self._total - self._recent[0][1]  # the first entry's samples precede the span
        return n / span if span > 0 else 0.0
