"""Reconnection delays: exponential, capped, with jitter.

Jitter keeps two sensors that dropped together (a bluetoothd restart, the patient walking away
from the laptop) from retrying in lock-step and colliding on the adapter, which answers
concurrent connects with InProgress.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0
    jitter: float = 0.25  # fraction of the delay, drawn uniformly in ±jitter

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before retry number `attempt` (0 = first retry after a failure)."""
        base = min(self.max_s, self.initial_s * self.factor ** max(0, attempt))
        r = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, min(self.max_s, base * (1.0 + r)))
