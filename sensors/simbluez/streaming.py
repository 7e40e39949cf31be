"""Where the fake sensors' samples come from (the simulated patient, or a synthetic signal),
and the real-time pacer that feeds them to the peripherals.

Both are `generate(t0_s, t1_s) -> dict[role, SampleBatch]` over contiguous intervals, called by
the fake's real-time pacer. The synthetic source needs nothing but numpy and gives every sample
distinct, smooth values well inside every family's range, so a test can align decoded samples
with what was sent and compare them within quantisation.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sensors.samples import SENSOR_ROLES, SampleBatch, SensorRole

if TYPE_CHECKING:
    from sensors.simbluez.bluez import FakeBluez
    from sensors.simbluez.device import SimDevice

G = 9.81


class StreamSource(Protocol):
    rate_hz: float

    def generate(self, t0_s: float, t1_s: float) -> dict[SensorRole, SampleBatch]: ...


def sample_indices(t0_s: float, t1_s: float, rate_hz: float) -> np.ndarray:
    """Indices k with t0 <= k/rate < t1: contiguous calls cover every sample exactly once."""
    k0 = math.ceil(t0_s * rate_hz - 1e-9)
    k1 = math.ceil(t1_s * rate_hz - 1e-9)
    return np.arange(k0, max(k0, k1), dtype=np.int64)


class SyntheticMotion:
    """Slow tilt plus small oscillations, different per role; values depend only on the index."""

    def __init__(self, rate_hz: float = 100.0, with_mag: bool = True) -> None:
        self.rate_hz = float(rate_hz)
        self.with_mag = with_mag

    def generate(self, t0_s: float, t1_s: float) -> dict[SensorRole, SampleBatch]:
        k = sample_indices(t0_s, t1_s, self.rate_hz)
        t = k / self.rate_hz
        out: dict[SensorRole, SampleBatch] = {}
        for i, role in enumerate(SENSOR_ROLES):
            phase = 0.7 * i
            tilt = 0.5 * np.sin(2 * np.pi * 0.23 * t + phase)  # rad, sagittal tilt
            acc = np.stack(
                [
                    G * np.sin(tilt) + 0.3 * np.sin(2 * np.pi * 1.7 * t + phase),
                    0.4 * np.cos(2 * np.pi * 0.9 * t + phase),
                    G * np.cos(tilt) + 0.2 * np.sin(2 * np.pi * 2.3 * t),
                ],
                axis=1,
            )
            gyr = np.stack(
                [
                    0.3 * np.sin(2 * np.pi * 1.1 * t + phase),
                    0.5 * 2 * np.pi * 0.23 * np.cos(2 * np.pi * 0.23 * t + phase),
                    0.2 * np.cos(2 * np.pi * 0.6 * t),
                ],
                axis=1,
            )
            mag = None
            if self.with_mag:
                mag = np.stack(
                    [20 * np.cos(tilt), 5 * np.sin(t + phase), -40 + 3 * np.sin(tilt)], axis=1
                )
            out[role] = SampleBatch(
                sensor=role, time_s=t.astype(np.float64), acc=acc, gyr=gyr, mag=mag,
                device_time_s=t.astype(np.float64), counter=k.copy(),
            )
        return out


def patient_source(
    rate_hz: float = 100.0, seed: int = 0, script: str = "demo_script", **script_kwargs: Any
) -> StreamSource:
    """The simulated patient (sensors.simulation), imported only when asked for.

    `script` names a builder of `MovementScript` in sensors.simulation ("demo_script",
    "calibration_then_flexion_reps", "mixed_session"; keyword arguments passed through). The
    patient loops the script so a demo can run for as long as it is left on.
    """
    from sensors import simulation  # local: the fake must run without it for generic tests

    params = simulation.PatientParams(rate_hz=rate_hz, seed=seed)
    movement = getattr(simulation, script)(**script_kwargs)
    return simulation.SimulatedPatient(movement, params, loop=True)


def make_source(kind: str, **kwargs: Any) -> StreamSource:
    if kind == "synthetic":
        return SyntheticMotion(**kwargs)
    if kind == "patient":
        return patient_source(**kwargs)
    raise ValueError(f"unknown stream source {kind!r} (synthetic | patient)")


class Pacer:
    """Generates samples in real time and hands each device's batch to its peripheral.

    Each device samples at the rate its peripheral reports (`rate_hz`, as configured by the
    central's commands), else at the default rate: one source per rate in use, all on the same
    simulated timeline. Sensors keep sampling (clocks and counters run on) whether or not anyone
    listens; what a device sends without a link, or while muted, is lost.
    """

    def __init__(self, fake: FakeBluez, tick_s: float = 0.02) -> None:
        self._fake = fake
        self.tick_s = tick_s
        self._make_source: Callable[[float], StreamSource] | None = None
        self._sources: dict[float, StreamSource] = {}
        self._default_rate_hz = 100.0
        self._sim_t = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self, make_source: Callable[[float], StreamSource], default_rate_hz: float) -> None:
        self._make_source = make_source
        self._default_rate_hz = float(default_rate_hz)
        self._sources = {}
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _rate(self, dev: SimDevice) -> float:
        rate = getattr(dev.peripheral, "rate_hz", None)
        try:
            value = float(rate) if rate is not None else 0.0
        except (TypeError, ValueError):
            value = 0.0
        return value if value > 0 else self._default_rate_hz

    def _source(self, rate_hz: float) -> StreamSource:
        source = self._sources.get(rate_hz)
        if source is None:
            assert self._make_source is not None
            source = self._sources[rate_hz] = self._make_source(rate_hz)
        return source

    async def _run(self) -> None:
        wall0 = time.monotonic()
        sim0 = self._sim_t
        # Simulated time s is sampled at host monotonic time wall0 + (s - sim0) (CLOCK_MONOTONIC
        # is system-wide on Linux): tests compare what the central timestamps with the truth.
        self._fake._emit({"event": "streaming", "monotonic_s": wall0, "sim_t_s": sim0})
        while True:
            await asyncio.sleep(self.tick_s)
            t0, t1 = self._sim_t, sim0 + (time.monotonic() - wall0)
            self._sim_t = t1
            generated: dict[float, dict[SensorRole, SampleBatch]] = {}
            for dev in list(self._fake.devices.values()):
                if dev.role not in SENSOR_ROLES:
                    continue
                rate = self._rate(dev)
                if rate not in generated:
                    generated[rate] = self._source(rate).generate(t0, t1)
                batch = generated[rate].get(dev.role)  # type: ignore[call-overload]
                if batch is not None and len(batch) > 0:
                    self._fake.deliver(dev, batch)
