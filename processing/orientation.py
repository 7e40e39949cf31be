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

Parameters (`OrientationParams`): VQF's defaults except two, chosen on the BROAD benchmark
(Laidig, Caruso, Cereatti & Seel, Data 6(7), 2021; bench/processing.py) by leave-one-trial-out
selection over the eight trials in ../shared/data/broad (the same values won in 6 of 8 folds):
- `tau_mag_s` 30 s instead of 9 s: the magnetometer's heading carries the field's local
  inhomogeneity as the sensor moves about; a slower correction averages it out while VQF's bias
  estimate keeps the gyroscope's heading drift far below that (9D total error 3.07° → 2.37° on the
  eight trials, 2.64° held out);
- `bias_sigma_motion_deg_s` 0.05 °/s instead of 0.1 °/s: motion bias estimation trusts the
  accelerometer-based bias evidence more (inclination 0.789° → 0.770°, better or equal on every
  trial, 0.758° held out).
On the trunk (simulated sessions) they are as good as VQF's defaults and the former
`tau_acc_s` = 2 s; one set of parameters serves both.

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
    tau_acc_s: float = 3.0
    """VQF `tauAcc`: time constant of the accelerometer (inclination) correction (VQF default)."""
    tau_mag_s: float = 30.0
    """VQF `tauMag`: time constant of the magnetometer (heading) correction (VQF: 9 s)."""
    bias_sigma_motion_deg_s: float = 0.05
    """VQF `biasSigmaMotion`: converged uncertainty of the motion bias estimate (VQF: 0.1)."""
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
    options = {"tauAcc": params.tau_acc_s, "tauMag": params.tau_mag_s,
               "biasSigmaMotion": params.bias_sigma_motion_deg_s, **params.vqf_options}
    return vqf.VQF(ts, **options)


def estimate_orientation(
    gyr: np.ndarray,
    acc: np.ndarray,
    mag: np.ndarray | None = None,
    *,
    rate_hz: float,
    params: OrientationParams = OrientationParams(),
) -> np.ndarray:
    """Orientation of one IMU: sensor-to-earth quaternions (N, 4), scalar first (w, x, y, z).

    Real time (each output uses only the samples up to it): VQF (Laidig & Seel 2023) with the
    parameters in `params` (see the module docstring for the two that differ from VQF's own).

    Args:
        gyr: (N, 3) angular rate, rad/s, sensor frame.
        acc: (N, 3) specific force, m/s² (+9.81 along up at rest), sensor frame.
        mag: (N, 3) magnetic field, µT, sensor frame, or None. With it (9D) the earth frame is
            East-North-Up and magnetic disturbances are detected and rejected (VQF); without it
            (6D) earth z is up and the heading is arbitrary (that of the sensor at the start,
            drifting slowly).
        rate_hz: the (uniform) sample rate.
        params: filter parameters.

    Returns:
        (N, 4) unit quaternions rotating sensor-frame vectors into the earth frame.
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
        self._scheduled: list[tuple[Any, ...]] = []

    @property
    def rate_hz(self) -> float | None:
        return None if self.ts is None else 1.0 / self.ts

    @property
    def vqf(self) -> vqf.VQF | None:
        """The VQF instance (state, bias estimate) once started."""
        return self._vqf

    def schedule_rest(self, time_s: float, gyr_mean: np.ndarray, up: np.ndarray, first: bool,
                      vertical_gain: float, bias: np.ndarray | None = None,
                      bias_sigma_rad_s: float = -1.0) -> None:
        """A rest measurement (`processing.rest_bias`) to apply before the first sample at or after
        `time_s`: the mean raw rate at rest and the unit up direction, sensor frame.

        Only the vertical component of VQF's bias estimate is corrected, by `vertical_gain` of the
        disagreement: postural sway has no vertical part, and the horizontal part is what VQF's
        motion bias estimation sees through the accelerometer. A change along the sensor's
        vertical leaves that estimator's low-passed, earth-horizontal state untouched (VQF,
        Laidig & Seel 2023, sec. 3.3), so nothing jumps. The `first` rest gives the whole `bias`
        (uncertainty `bias_sigma_rad_s`) and restarts the motion bias estimator's low-pass
        state, which would otherwise still hold the old estimate."""
        self._scheduled.append((float(time_s), np.asarray(gyr_mean, dtype=float).tolist(),
                                np.asarray(up, dtype=float).tolist(), bool(first),
                                float(vertical_gain),
                                None if bias is None else np.asarray(bias, dtype=float),
                                float(bias_sigma_rad_s)))

    def _apply_rest(self, gyr_mean: list[float], up: list[float], first: bool, gain: float,
                    bias: np.ndarray | None, sigma: float) -> None:
        assert self._vqf is not None
        if first and bias is not None:
            self._vqf.setBiasEstimate(bias, sigma)
            if self._vqf.params["motionBiasEstEnabled"]:
                self._vqf.setMotionBiasEstEnabled(False)
                self._vqf.setMotionBiasEstEnabled(True)
            return
        # on three numbers plain floats are faster than numpy (and sum in the same order)
        bx, by, bz = self._vqf.getBiasEstimate()[0].tolist()
        gx, gy, gz = gyr_mean
        ux, uy, uz = up
        k = (1.0 if first else gain) * ((gx - bx) * ux + (gy - by) * uy + (gz - bz) * uz)
        self._vqf.setBiasEstimate(np.array([bx + k * ux, by + k * uy, bz + k * uz]), -1.0)

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
        gyr = np.array(batch.gyr, dtype=float)  # a copy: the output is made in place
        acc = np.ascontiguousarray(batch.acc, dtype=float)
        mag = None
        if self._use_mag:
            mag = (np.zeros_like(acc) if batch.mag is None  # VQF skips all-zero samples
                   else np.ascontiguousarray(batch.mag, dtype=float))
        n = t.shape[0]

        dt = np.empty(n)
        np.subtract(t[1:], t[:-1], out=dt[1:])
        if self._last is None:
            dt[0] = ts
            first = True
        else:
            dt[0] = t[0] - self._last[0]
            first = False
        gap = dt > self.params.gap_factor * ts
        gap[0] |= batch.gap_before or first

        # rest events inside this batch: (sample index, event), applied before that sample
        events = []
        while self._scheduled and self._scheduled[0][0] <= t[-1]:
            ev = self._scheduled.pop(0)
            events.append((int(np.searchsorted(t, ev[0], side="left")), ev))
        # fill short losses so that VQF integrates the rotation during them
        # samples missing before each one: a step of at least 1.75 nominal steps counts as one
        # lost sample (time-stamp jitter below that does not add rotation)
        idx = None
        gyr_f, acc_f, mag_f = gyr, acc, mag
        if self._last is not None and dt.max() > 1.75 * ts:
            k = np.floor(dt / ts + 0.25).astype(np.int64)
            k[(k < 1) | (dt > self.params.max_fill_gap_s)] = 1
            if np.any(k > 1):
                idx = np.cumsum(k) - 1  # where the real samples land in the filled arrays
                group = np.repeat(np.arange(n), k)
                frac = ((np.arange(idx[-1] + 1) - (idx - k)[group]) / k[group])[:, None]

                def fill(x: np.ndarray, x_prev: np.ndarray) -> np.ndarray:
                    prev = np.vstack((x_prev[None, :], x[:-1]))
                    return np.ascontiguousarray(prev[group] + frac * (x[group] - prev[group]))

                gyr_f = fill(gyr, self._last[1])
                acc_f = fill(acc, self._last[2])
                if mag is not None:
                    mag_f = np.zeros_like(acc_f)
                    mag_f[idx] = mag

        # VQF over the (filled) samples, stopping where rest events apply
        cuts = [0]
        for i, _ in events:
            # before the fill samples that lead up to real sample i
            cuts.append(0 if i == 0 else (int(idx[i - 1]) + 1 if idx is not None else i))
        cuts.append(gyr_f.shape[0])
        quats, biases = [], []
        key = "quat6D" if mag_f is None else "quat9D"
        for j in range(len(cuts) - 1):
            if j:
                ev = events[j - 1][1]
                self._apply_rest(*ev[1:])
            a, b = cuts[j], cuts[j + 1]
            if b > a:
                out = (self._vqf.updateBatch(gyr_f[a:b], acc_f[a:b]) if mag_f is None else
                       self._vqf.updateBatch(gyr_f[a:b], acc_f[a:b], mag_f[a:b]))
                quats.append(out[key])
                biases.append(out["bias"])
        quat = quats[0] if len(quats) == 1 else np.concatenate(quats)
        bias = biases[0] if len(biases) == 1 else np.concatenate(biases)
        if idx is not None:
            quat, bias = quat[idx], bias[idx]
        self._last = (float(t[-1]), gyr[-1].copy(), acc[-1].copy())
        gyr -= bias
        return OrientationBatch(t, quat, gyr, acc, gap)
