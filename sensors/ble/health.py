"""Per-sensor quality bookkeeping behind `SensorHealth`: rate, loss, silence.

Pure: every method takes the host time it should use, so tests can drive it without clocks.
Loss counts samples known to be missing (counter/timestamp gaps reported by the time base,
link downtime at the nominal rate, notifications dropped by a full queue) over the session.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class LinkStats:
    received: int = 0  # samples delivered
    missing: float = 0.0  # samples known lost
    notifications: int = 0
    queue_overflow: int = 0
    decode_errors: Counter[str] = field(default_factory=Counter)
    connects: int = 0
    link_losses: int = 0
    gaps: int = 0


class RateMeter:
    """Samples per second over the last `window_s` of arrivals."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._events: deque[tuple[float, int]] = deque()
        self._since: float | None = None

    def start(self, now_s: float) -> None:
        """Streaming (re)started: the window never reaches back before this."""
        self._since = now_s
        self._events.clear()

    def add(self, now_s: float, n: int) -> None:
        self._events.append((now_s, n))
        self._trim(now_s)

    def _trim(self, now_s: float) -> None:
        while self._events and self._events[0][0] < now_s - self.window_s:
            self._events.popleft()

    def rate_hz(self, now_s: float) -> float:
        if self._since is None:
            return 0.0
        self._trim(now_s)
        span = min(self.window_s, now_s - self._since)
        if span <= 0.05:
            return 0.0
        return sum(n for _, n in self._events) / span


class SilenceDetector:
    """Flags a streaming sensor that sent nothing for longer than `threshold_s`.

    Checked on a timer by the manager (not only when data arrive: a silent sensor produces no
    arrivals to trigger anything).
    """

    def __init__(self, threshold_s: float = 1.0) -> None:
        self.threshold_s = threshold_s
        self.reference_s: float | None = None  # last arrival, or when streaming started
        self.silent_since_s: float | None = None

    def arm(self, now_s: float) -> None:
        self.reference_s = now_s
        self.silent_since_s = None

    def disarm(self) -> None:
        self.reference_s = None
        self.silent_since_s = None

    def arrival(self, now_s: float) -> bool:
        """Returns True when this arrival ended a silence."""
        was = self.silent_since_s is not None
        if self.reference_s is not None:
            self.reference_s = now_s
        self.silent_since_s = None
        return was

    def check(self, now_s: float) -> bool:
        """Returns True when the sensor has just become silent."""
        if self.reference_s is None or self.silent_since_s is not None:
            return False
        if now_s - self.reference_s > self.threshold_s:
            self.silent_since_s = now_s
            return True
        return False

    @property
    def silent(self) -> bool:
        return self.silent_since_s is not None


def loss_pct(stats: LinkStats) -> float:
    total = stats.received + stats.missing
    return 100.0 * stats.missing / total if total > 0 else 0.0
