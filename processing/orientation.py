"""Orientation of one sensor from its gyroscope and accelerometer (and magnetometer): VQF.

VQF (Laidig & Seel, "VQF: Highly accurate IMU orientation estimation with bias estimation and
magnetic disturbance rejection", Information Fusion 91, 2023) gives sensor-to-earth quaternions
(w, x, y, z), earth z up. Without the magnetometer (6D) the earth frame's heading is arbitrary
(set by the sensor's heading when the filter starts) and drifts slowly with the vertical gyro bias;
with it (9D) the earth frame is East-North-Up. Lumbo uses 6D by default: the lumbar angles need
only the relative heading of the two sensors, which calibration identifies in neutral standing,
and magnetometers near the body and indoors are disturbed more often than not.

VQF needs one fixed sample time. `OrientationFilter` takes it from `OrientationParams.rate_hz`
or, when that is None, from the median step of the first `rate_estimation_samples` time stamps
(buffering those first samples), so every way of cutting a stream into batches gives the same
filter. `VQF.updateBatch` keeps the filter state between calls, so a stream of batches gives the
same quaternions bit for bit as one call over the whole recording.

Missing samples: a step of k nominal sample times (k = floor(step/T + 0.25)) with k >= 2 and at
most `max_fill_gap_s` is filled with k-1 samples linearly interpolated between the neighbours, so
the rotation during the loss is integrated instead of dropped (outputs at the filled samples are
discarded). Longer gaps are not filled: the filter keeps going from its last state; the inclination
re-converges through the accelerometer within a few `tau_acc_s`, but a heading change during the
gap stays (6D), and the calibration's heading alignment may then be off: recalibrate after long
drop-outs. Samples after a time step above `gap_factor` nominal steps, or at the start of a batch
with `gap_before`, are flagged so that nothing downstream interpolates across the gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import vqf

from sensors.samples import SampleBatch


@dataclass(frozen=True)
class OrientationParams:
    """What can be tuned per sensor; defaults suit trunk-worn IMUs at 25–400 Hz."""

    rate_hz: float | None = None
    """Nominal sample rate; None: the median step of the first samples' time stamps."""
    rate_estimation_samples: int = 25
    """How many first samples the rate estimate uses (buffered until then)."""
    use_magnetometer: bool = False
    """9D (East-North-Up) when the sensor sends magnetometer data; else 6D."""
    tau_acc_s: float = 2.0
    """VQF accelerometer time constant. VQF's default is 3 s; trunk movements accelerate the
    sensors little, so a shorter one costs little and halves the inclination error left by a not
    yet converged gyroscope bias (≈ bias × tau): in the simulated sessions flexion RMSE fell from
    0.2–0.4° to 0.2–0.3° and pelvic tilt from 0.3–0.45° to 0.2–0.3°."""
    max_fill_gap_s: float = 0.5
    """Missing samples spanning at most this long are filled by interpolation for VQF."""
    gap_factor: float = 3.5
    """A time step longer than this many nominal steps marks a gap (no interpolation across)."""
    vqf_options: dict[str, Any] = field(default_factory=dict)
    """Further VQF parameters by their VQF names (e.g. {"restThGyr": 2.0})."""


@dataclass(frozen=True)
class OrientationBatch:
    """Filter output for consecutive samples of one sensor."""

    time_s: np.ndarray  # (N,)
    quat: np.ndarray  # (N, 4) sensor-to-earth, (w, x, y, z)
    gyr: np.ndarray  # (N, 3) rad/s, sensor frame, VQF's bias estimate removed
    acc: np.ndarray  # (N, 3) m/s², sensor frame
    gap_before: np.ndarray  # (N,) bool: samples missing just before this one

    def __len__(self) -> int:
        return int(self.time_s.shape[0])

    @staticmethod
    def empty() -> OrientationBatch:
        return OrientationBatch(
            np.empty(0), np.empty((0, 4)), np.empty((0, 3)), np.empty((0, 3)),
            np.empty(0, dtype=bool),
        )


def _vqf(ts: float, params: OrientationParams) -> vqf.VQF:
    options = {"tauAcc": params.tau_acc_s, **params.vqf_options}
    return vqf.VQF(ts, **options)


def estimate_orientation(
    gyr: np.ndarray,
    acc: np.ndarray,
    mag: np.ndarray | None = None,
    *,
    rate_hz: float,
    params: OrientationParams = OrientationParams(),
) -> np.ndarray:
    """Sensor-to-earth quaternions (N, 4), (w, x, y, z), of uniformly sampled data.

    ENU when `mag` is given, otherwise (6D) with an arbitrary heading.
    """
    f = _vqf(1.0 / rate_hz, params)
    gyr = np.ascontiguousarray(gyr, dtype=float)
    acc = np.ascontiguousarray(acc, dtype=float)
    if mag is None:
        return f.updateBatch(gyr, acc)["quat6D"]
    return f.updateBatch(gyr, acc, np.ascontiguousarray(mag, dtype=float))["quat9D"]


class OrientationFilter:
    """Streaming orientation of one sensor: one VQF instance, updated per batch."""

    def __init__(self, params: OrientationParams = OrientationParams()) -> None:
        self.params = params
        self.ts: float | None = None if params.rate_hz is None else 1.0 / params.rate_hz
        self._vqf: vqf.VQF | None = None
        self._use_mag = False
        self._pending: list[SampleBatch] = []  # until the rate is known
        self._last: tuple[float, np.ndarray, np.ndarray] | None = None  # time, gyr, acc

    @property
    def rate_hz(self) -> float | None:
        return None if self.ts is None else 1.0 / self.ts

    @property
    def vqf(self) -> vqf.VQF | None:
        """The VQF instance (state, bias estimate) once started."""
        return self._vqf

    def update(self, batch: SampleBatch) -> OrientationBatch:
        """Process one batch; returns its samples' orientation (empty while estimating the rate)."""
        if len(batch) == 0:
            return OrientationBatch.empty()
        if self._vqf is None:
            self._pending.append(batch)
            n = sum(len(b) for b in self._pending)
            if self.ts is None and n < self.params.rate_estimation_samples:
                return OrientationBatch.empty()
            batches, self._pending = self._pending, []
            if self.ts is None:
                t = np.concatenate([b.time_s for b in batches])
                dt = np.diff(t[: self.params.rate_estimation_samples])
                dt = dt[dt > 0]
                if dt.size == 0:
                    raise ValueError("cannot estimate the sample rate: time stamps do not advance")
                self.ts = float(np.median(dt))
            self._use_mag = self.params.use_magnetometer and batches[0].mag is not None
            self._vqf = _vqf(self.ts, self.params)
            outs = [self._process(b) for b in batches]
            return OrientationBatch(*(np.concatenate(x) for x in zip(*(
                (o.time_s, o.quat, o.gyr, o.acc, o.gap_before) for o in outs))))
        return self._process(batch)

    def _process(self, batch: SampleBatch) -> OrientationBatch:
        assert self._vqf is not None and self.ts is not None
        ts = self.ts
        t = np.asarray(batch.time_s, dtype=float)
        gyr = np.ascontiguousarray(batch.gyr, dtype=float)
        acc = np.ascontiguousarray(batch.acc, dtype=float)
        mag = None
        if self._use_mag:
            mag = (np.zeros_like(acc) if batch.mag is None  # VQF skips all-zero samples
                   else np.ascontiguousarray(batch.mag, dtype=float))
        n = t.shape[0]

        if self._last is None:
            dt = np.concatenate(([ts], np.diff(t)))
            first = True
        else:
            dt = np.diff(t, prepend=self._last[0])
            first = False
        gap = dt > self.params.gap_factor * ts
        gap[0] |= batch.gap_before or first

        # fill short losses so that VQF integrates the rotation during them
        # samples missing before each one: a step of at least 1.75 nominal steps counts as one
        # lost sample (time-stamp jitter below that does not add rotation)
        k = np.floor(dt / ts + 0.25).astype(np.int64)
        k[(k < 1) | (dt > self.params.max_fill_gap_s)] = 1
        if self._last is not None and np.any(k > 1):
            idx = np.cumsum(k) - 1  # where the real samples land in the filled arrays
            group = np.repeat(np.arange(n), k)
            frac = ((np.arange(idx[-1] + 1) - (idx - k)[group]) / k[group])[:, None]

            def fill(x: np.ndarray, x_prev: np.ndarray) -> np.ndarray:
                prev = np.vstack((x_prev[None, :], x[:-1]))
                return np.ascontiguousarray(prev[group] + frac * (x[group] - prev[group]))

            gyr_f = fill(gyr, self._last[1])
            acc_f = fill(acc, self._last[2])
            mag_f = None
            if mag is not None:
                mag_f = np.zeros_like(acc_f)
                mag_f[idx] = mag
        else:
            idx = None
            gyr_f, acc_f, mag_f = gyr, acc, mag

        if mag_f is None:
            out = self._vqf.updateBatch(gyr_f, acc_f)
            quat = out["quat6D"]
        else:
            out = self._vqf.updateBatch(gyr_f, acc_f, mag_f)
            quat = out["quat9D"]
        bias = out["bias"]
        if idx is not None:
            quat, bias = quat[idx], bias[idx]
        self._last = (float(t[-1]), gyr[-1].copy(), acc[-1].copy())
        return OrientationBatch(t, quat, gyr - bias, acc, gap)
