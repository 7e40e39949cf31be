"""The simulated patient as a live `SensorSource`: paced batches on the host monotonic time base.

Timestamps: SampleBatch.time_s = time_origin_s + simulated time. `time_origin_s` defaults to
time.monotonic() when streaming starts, so at speed 1 a sample's time_s is directly comparable
with time.monotonic() and is delivered as soon as the wall clock passes it. At speed ≠ 1 only the
pacing changes: time_s stays simulated time (origin + t), not wall time, so the processing sees
a normal 100 Hz recording whatever the playback speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np

from sensors.pacing import RateMeter, wait_until
from sensors.samples import SENSOR_ROLES, SampleBatch, SensorHealth, SensorRole
from sensors.simulation.patient import SimulatedPatient

_CHUNK_S = 1.0  # generated ahead in one vectorised call, then sliced into batches
_RATE_WINDOW_S = 2.0


def _take(batch: SampleBatch, k0: int, k1: int) -> SampleBatch:
    """Samples with counter k0 ≤ k < k1 of a batch holding consecutive counters."""
    first = int(batch.counter[0]) if batch.counter is not None and len(batch) else 0
    sl = slice(max(0, k0 - first), max(0, k1 - first))
    return SampleBatch(
        sensor=batch.sensor,
        time_s=batch.time_s[sl],
        acc=batch.acc[sl],
        gyr=batch.gyr[sl],
        mag=None if batch.mag is None else batch.mag[sl],
        device_time_s=None if batch.device_time_s is None else batch.device_time_s[sl],
        counter=None if batch.counter is None else batch.counter[sl],
    )


class SimulatedPatientSource:
    """Streams a `SimulatedPatient` tick by tick: per tick one batch per sensor (if non-empty)
    covering the next `batch_s` of simulated time.

    realtime=True paces with asyncio so each tick is yielded once the wall clock passes its end
    (scaled by `speed`); realtime=False yields as fast as possible, giving the event loop a turn
    between ticks. loop=True sets `patient.loop` and streams forever (the script repeats from its
    `loop_start_s`); otherwise the stream ends with the script. Single use.
    """

    def __init__(self, patient: SimulatedPatient, *, realtime: bool = True, speed: float = 1.0,
                 batch_s: float = 0.02, loop: bool = False,
                 time_origin_s: float | None = None) -> None:
        if speed <= 0 or batch_s <= 0:
            raise ValueError("speed and batch_s must be positive")
        self.patient = patient
        self.realtime = realtime
        self.speed = float(speed)
        self.batch_s = float(batch_s)
        self.loop = loop
        if loop:
            patient.loop = True
        self._origin = time_origin_s
        self._stop = asyncio.Event()
        self._started = False
        self._status = "idle"
        self._last_seen: dict[SensorRole, float | None] = {r: None for r in SENSOR_ROLES}
        self._rates = {r: RateMeter(_RATE_WINDOW_S) for r in SENSOR_ROLES}

    @property
    def time_origin_s(self) -> float | None:
        """Host time of simulated t = 0 (set when streaming starts, unless given)."""
        return self._origin

    async def batches(self) -> AsyncIterator[SampleBatch]:
        if self._started:
            raise RuntimeError("SimulatedPatientSource.batches() can only be consumed once")
        self._started = True
        wall0 = time.monotonic()
        if self._origin is None:
            self._origin = wall0
        origin = self._origin
        end_s = None if self.loop else self.patient.duration_s
        ticks_per_chunk = max(1, int(round(_CHUNK_S / self.batch_s)))
        self._status = "streaming"
        tick = 0
        chunk: dict[SensorRole, SampleBatch] = {}
        try:
            while not self._stop.is_set():
                t0 = tick * self.batch_s
                if end_s is not None and t0 >= end_s - 1e-12:
                    break
                t1 = (tick + 1) * self.batch_s
                if end_s is not None:
                    t1 = min(t1, end_s)
                if tick % ticks_per_chunk == 0:
                    c1 = (tick + ticks_per_chunk) * self.batch_s
                    if end_s is not None:
                        c1 = min(c1, end_s)
                    chunk = self.patient.generate(t0, c1, time_origin_s=origin)
                parts = []
                for role in SENSOR_ROLES:
                    # Slice by sample index, as generate() does, so ticks partition the samples.
                    k0 = self.patient.first_index_at(role, t0)
                    k1 = self.patient.first_index_at(role, t1)
                    part = _take(chunk[role], k0, k1)
                    if len(part):
                        parts.append(part)
                if not self.realtime:
                    await asyncio.sleep(0)
                # A real sensor's sample exists as soon as its time has come: deliver each batch
                # when the wall clock passes its newest sample, not at the end of the tick.
                for part in sorted(parts, key=lambda p: float(p.time_s[-1])):
                    if self.realtime:
                        await wait_until(wall0 + (float(part.time_s[-1]) - origin) / self.speed, self._stop)
                    if self._stop.is_set():
                        break
                    self._note(part.sensor, part)
                    yield part
                if self._stop.is_set():
                    break
                tick += 1
        finally:
            self._status = "stopped"

    def _note(self, role: SensorRole, batch: SampleBatch) -> None:
        last = float(batch.time_s[-1])
        self._last_seen[role] = last
        self._rates[role].note(last, len(batch))

    async def stop(self) -> None:
        """End the stream promptly (the generator returns at its next step)."""
        self._stop.set()
        self._status = "stopped"

    def health(self) -> dict[SensorRole, SensorHealth]:
        """Per-sensor status; rate measured over the last ~2 s of delivered sample times."""
        streaming = self._status == "streaming"
        return {
            role: SensorHealth(
                sensor=role,
                connected=streaming,
                device_name=f"Simulated IMU ({role})",
                address=f"sim:{role}",
                rate_hz=self._rates[role].rate_hz,
                nominal_rate_hz=self.patient.rate_hz,
                loss_pct=0.0,
                last_seen_s=self._last_seen[role],
                status=self._status,
                message="simulated patient",
            )
            for role in SENSOR_ROLES
        }
