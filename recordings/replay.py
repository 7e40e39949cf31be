"""A stored session as a `SensorSource`, so it runs through the live pipeline again.

Batches come out exactly as stored, each sensor's in order, interleaved across sensors by their
first sample time (`order="arrival"`: as they reached the live loop). `realtime=True` paces
them by their sample times (divided by `speed`); otherwise as fast as possible, with a turn of the
event loop between batches. Times stay on the recording's host time base unless `time_origin_s`
is given: then time_s is shifted so the session's start (its stored host time origin, or its first
sample) maps onto it, as the simulator does with its own origin. Blocks are read from the store a
page at a time, so memory does not grow with the session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import numpy as np

from recordings.store import RecordingStore
from sensors.pacing import RateMeter, wait_until
from sensors.samples import SampleBatch, SensorHealth, SensorRole

_RATE_WINDOW_S = 2.0


class ReplaySource:
    """Single use, like the other sources."""

    def __init__(self, store: RecordingStore, session_id: str, *, realtime: bool = False,
                 speed: float = 1.0, order: str = "time",
                 time_origin_s: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.store = store
        self.session = store.session(session_id)  # SessionNotFound early, not mid-stream
        self.realtime = realtime
        self.speed = float(speed)
        self.order = order
        self._origin = time_origin_s
        self._stop = asyncio.Event()
        self._started = False
        self._status = "idle"
        self._last_seen: dict[str, float | None] = {s.role: None for s in self.session.sensors}
        self._rates = {s.role: RateMeter(_RATE_WINDOW_S) for s in self.session.sensors}
        self._received: dict[str, int] = {s.role: 0 for s in self.session.sensors}
        self._expected: dict[str, int] = {s.role: 0 for s in self.session.sensors}
        self._last_counter: dict[str, int | None] = {s.role: None for s in self.session.sensors}

    def _shift_s(self) -> float:
        if self._origin is None:
            return 0.0
        starts = [s.t_first for s in self.session.sensors if s.t_first is not None]
        base = self.session.time_origin_s
        if base is None:
            base = min(starts) if starts else 0.0
        return self._origin - base

    async def batches(self) -> AsyncIterator[SampleBatch]:
        if self._started:
            raise RuntimeError("ReplaySource.batches() can only be consumed once")
        self._started = True
        self._status = "streaming"
        shift = self._shift_s()
        wall0 = time.monotonic()
        t0: float | None = None
        try:
            for batch in self.store.iter_batches(self.session.id, order=self.order):
                if self._stop.is_set():
                    break
                if t0 is None:
                    t0 = float(batch.time_s[0])
                if self.realtime:
                    await wait_until(wall0 + (float(batch.time_s[-1]) - t0) / self.speed, self._stop)
                else:
                    await asyncio.sleep(0)
                if self._stop.is_set():
                    break
                if shift:
                    batch = dataclasses.replace(batch, time_s=batch.time_s + shift)
                self._note(batch)
                yield batch
        finally:
            self._status = "stopped"

    def _note(self, batch: SampleBatch) -> None:
        role = batch.sensor
        last = float(batch.time_s[-1])
        self._last_seen[role] = last
        self._rates.setdefault(role, RateMeter(_RATE_WINDOW_S)).note(last, len(batch))
        self._received[role] = self._received.get(role, 0) + len(batch)
        if batch.counter is not None and len(batch):
            prev = self._last_counter.get(role)
            first = int(batch.counter[0])
            span = int(batch.counter[-1]) - first + 1
            jump = 0 if prev is None else max(0, first - prev - 1)
            self._expected[role] = self._expected.get(role, 0) + span + jump
            self._last_counter[role] = int(batch.counter[-1])
        else:
            self._expected[role] = self._expected.get(role, 0) + len(batch)

    async def stop(self) -> None:
        self._stop.set()
        self._status = "stopped"

    def health(self) -> dict[SensorRole, SensorHealth]:
        """Per stored sensor: its device as recorded, rate over the last ~2 s of replayed sample
        time, loss from counter jumps in what was replayed so far."""
        out: dict[SensorRole, SensorHealth] = {}
        streaming = self._status == "streaming"
        for s in self.session.sensors:
            expected = self._expected.get(s.role, 0)
            loss = 100.0 * (1.0 - self._received.get(s.role, 0) / expected) if expected else 0.0
            out[s.role] = SensorHealth(  # type: ignore[index]
                sensor=s.role,  # type: ignore[arg-type]
                connected=streaming,
                device_name=s.device_name or f"Replay ({s.role})",
                address=s.address or f"replay:{self.session.id}",
                rate_hz=self._rates[s.role].rate_hz,
                nominal_rate_hz=s.nominal_rate_hz or 0.0,
                loss_pct=float(np.clip(loss, 0.0, 100.0)),
                last_seen_s=self._last_seen.get(s.role),
                status=self._status,
                message=f"replay of session {self.session.id}",
            )
        return out
