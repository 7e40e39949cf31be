"""What a live writer holds between commits, bounded so a broken disk cannot exhaust memory.

While storage works the buffer holds well under a second. While it fails (disk full, read-only)
everything waits here until a retry succeeds; past `max_samples` the OLDEST batches go (the
newest are what a clinician most likely still needs), the count is reported, and the next kept
batch of that sensor is flagged `gap_before` so no consumer interpolates across the hole.
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensors.samples import SampleBatch


@dataclass
class PendingRecord:
    """An event, calibration or patient report waiting for the next commit."""

    table: str  # "event" | "calibration" | "report"
    time_s: float | None
    kind: str
    payload_json: str
    live_analysis: bool = False  # belongs to the writer's live analysis


@dataclass
class PendingBuffer:
    max_samples: int = 60_000
    max_angle_frames: int = 60_000
    max_records: int = 50_000
    batches: collections.deque[tuple[SampleBatch, int]] = field(
        default_factory=collections.deque)
    angles: collections.deque[dict[str, np.ndarray]] = field(default_factory=collections.deque)
    records: collections.deque[PendingRecord] = field(default_factory=collections.deque)
    samples: int = 0
    angle_frames: int = 0
    dropped_samples: int = 0
    dropped_angle_frames: int = 0
    dropped_records: int = 0
    since_s: float | None = None  # monotonic time the oldest pending item arrived

    @property
    def empty(self) -> bool:
        return not (self.batches or self.angles or self.records)

    def _touch(self, now_s: float) -> None:
        if self.since_s is None:
            self.since_s = now_s

    def add_batch(self, batch: SampleBatch, arrival: int, now_s: float) -> None:
        if len(batch) == 0:
            return
        self._touch(now_s)
        self.batches.append((batch, arrival))
        self.samples += len(batch)
        while self.samples > self.max_samples and len(self.batches) > 1:
            old, _ = self.batches.popleft()
            self.samples -= len(old)
            self.dropped_samples += len(old)
            self._flag_next_gap(old.sensor)

    def _flag_next_gap(self, role: str) -> None:
        for i, (b, arrival) in enumerate(self.batches):
            if b.sensor == role:
                if not b.gap_before:
                    self.batches[i] = (dataclasses.replace(b, gap_before=True), arrival)
                return

    def add_angles(self, cols: dict[str, np.ndarray], now_s: float) -> None:
        n = int(cols["time_s"].shape[0])
        if n == 0:
            return
        self._touch(now_s)
        self.angles.append(cols)
        self.angle_frames += n
        while self.angle_frames > self.max_angle_frames and len(self.angles) > 1:
            old = self.angles.popleft()
            k = int(old["time_s"].shape[0])
            self.angle_frames -= k
            self.dropped_angle_frames += k
            nxt = self.angles[0]
            if "gap_before" in nxt and nxt["gap_before"].shape[0]:
                flagged = np.array(nxt["gap_before"], copy=True)
                flagged[0] = True
                self.angles[0] = {**nxt, "gap_before": flagged}

    def add_record(self, record: PendingRecord, now_s: float) -> None:
        self._touch(now_s)
        self.records.append(record)
        while len(self.records) > self.max_records:
            self.records.popleft()
            self.dropped_records += 1

    def take(self) -> tuple[list[tuple[SampleBatch, int]], list[dict[str, np.ndarray]],
                            list[PendingRecord]]:
        """Everything pending, for a commit attempt (cleared only once the commit succeeded)."""
        return list(self.batches), list(self.angles), list(self.records)

    def clear(self) -> None:
        self.batches.clear()
        self.angles.clear()
        self.records.clear()
        self.samples = self.angle_frames = 0
        self.since_s = None

    def counts(self) -> dict[str, Any]:
        return {"pending_samples": self.samples, "pending_angle_frames": self.angle_frames,
                "pending_records": len(self.records), "dropped_samples": self.dropped_samples,
                "dropped_angle_frames": self.dropped_angle_frames,
                "dropped_records": self.dropped_records}
