"""One host time base for every sensor: device clock (or sample count) → host monotonic seconds.

Why: each sensor has its own clock (Movesense ms, DOT µs, Polar ns since 2000) or none at all
(WitMotion), clocks drift by tens of ppm (two sensors 100 ppm apart disagree by 180 ms after 30
minutes), and host arrival times are late by a variable, non-negative amount (connection-interval
batching 7.5–50 ms, stack jitter), so neither clock can be used as is.

Model: host = a0 + α + (1 + s)·(d − d0) per clock segment, where d is device time, s the skew.
Each notification gives one pair (d_last, arrival): the packet cannot arrive before its last
sample was taken, so every pair lies on or above the true line, and the line is estimated as the
*lower envelope* of the pairs (Moon, Skelly & Towsley, "Estimation and removal of clock skew from
network delay measurements", IEEE INFOCOM 1999: the line must stay below every point).
- Streaming and bounded: only the minimum of each `bucket_s` of device time is kept, over a
  sliding `window_s` (≤ window/bucket points).
- Skew: median of pairwise slopes (Theil–Sen) of those minima, grouped down to ≤ 64 points —
  Paxson's minima-then-robust-line estimator (SIGMETRICS 1998). Moon's LP optimum (the hull edge
  at the mean x) was tried first: on windows under a few minutes it jumps between hull edges and
  moved mapped times by 3–5 ms; the median slope does not.
- Offset: the highest line of that slope that stays below every minimum in the window (Moon's
  constraint). Refitted when a bucket closes; between refits α drops at once whenever a new point
  falls below the line.
Mapped times therefore carry the *minimum* transport latency as a constant bias (about the same
for similar links, so it cancels between the two sensors), not the mean latency.

Limits (documented, not hidden): the estimate is only as good as the lowest-latency packets in
the window. If a sensor's packet period is commensurate with the connection interval, every
packet can wait about the same time for a while, and that wait is indistinguishable from offset
until the clocks' relative drift sweeps the phase.

Events handled:
- device clock reset (Movesense/DOT reboot): device time goes backwards, or jumps so far forward
  that samples would be mapped after they arrived → new segment (skew kept, offset re-learnt);
- 2³² wraps: decoders unwrap; `wrap_period_s` unwraps raw device times here too;
- gaps: a device-time step > `gap_factor`/rate marks `gap_before` and counts missing samples;
- no-timestamp devices: device time = sample index / nominal rate. Loss shows only in arrival
  times: an arrival later than the envelope by more than `late_tolerance_s` adds the estimated
  missing samples to the index, marks `gap_before` and starts a new segment. Shorter losses are
  indistinguishable from the normal wander of the lateness floor (see Limits) and go uncounted;
  so that they cannot shift mapped times for long, the offset of an untimed clock comes from the
  envelope of the last `untimed_offset_s` only (a lost sample then costs one sample period of
  error for at most that long), and no skew is fitted (a staircase of unseen losses would be
  taken for drift; over 5 s, 100 ppm of real drift is only 0.5 ms).

Pure: no clock calls; the caller passes each notification's host arrival time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from sensors.samples import SampleBatch, SensorRole


@dataclass(frozen=True, slots=True)
class TimebaseParams:
    nominal_rate_hz: float
    bucket_s: float = 1.0  # one envelope point (the minimum) per this much device time
    window_s: float = 600.0  # skew/offset fitted over the latest this much device time
    min_skew_span_s: float = 20.0  # shorter envelopes keep the prior skew (0, or the last one)
    skew_points: int = 64  # envelope minima are grouped down to this many for the slope
    max_skew_ppm: float = 1000.0  # clamp: crystals are ±20–100 ppm, anything beyond is noise
    gap_factor: float = 1.5  # device-time step > gap_factor / rate: samples were lost
    future_tolerance_s: float = 0.5  # mapped later than arrival by more: device clock jumped
    late_tolerance_s: float = 0.15  # (no timestamps) lateness beyond this: samples were lost
    untimed_offset_s: float = 5.0  # (no timestamps) offset from the envelope of this recent span
    wrap_period_s: float | None = None  # unwrap raw device times with this period (e.g. 2**32 µs)


@dataclass(frozen=True, slots=True)
class MappedTimes:
    time_s: np.ndarray  # (N,) host seconds
    gap_before: bool  # samples are missing just before this batch
    missing: int  # how many (estimated)
    reset: bool  # the device clock restarted (new segment)


class _Segment:
    """One stretch of a continuous device clock: anchor, envelope buckets and the fitted line."""

    def __init__(self, d0: float, a0: float, skew: float, offset_window_s: float | None) -> None:
        self.d0, self.a0 = d0, a0
        self.skew = skew
        self.offset_window_s = offset_window_s
        self.alpha = math.inf
        self.buckets: deque[list[float]] = deque()  # [bucket index, x, y]

    def host(self, d: np.ndarray | float) -> np.ndarray | float:
        x = d - self.d0
        return self.a0 + self.alpha + x * (1.0 + self.skew)

    def add(self, d: float, arrival: float, p: TimebaseParams, prior_skew: float) -> None:
        x = d - self.d0
        y = arrival - self.a0 - x
        k = math.floor(x / p.bucket_s)
        closed = False
        if self.buckets and self.buckets[-1][0] == k:
            if y < self.buckets[-1][2]:
                self.buckets[-1][1:] = [x, y]
        else:
            self.buckets.append([k, x, y])
            closed = len(self.buckets) > 1
            while self.buckets[-1][1] - self.buckets[0][1] > p.window_s:
                self.buckets.popleft()
        if closed or not math.isfinite(self.alpha):
            self._refit(p, prior_skew)
        if y < self.alpha + self.skew * x:  # the line must stay below every point
            self.alpha = y - self.skew * x

    def _refit(self, p: TimebaseParams, prior_skew: float) -> None:
        """Skew: median of pairwise slopes of the envelope minima; offset: line below them all."""
        pts = np.array([(b[1], b[2]) for b in self.buckets])
        xs, ys = pts[:, 0], pts[:, 1]
        skew = prior_skew
        if self.offset_window_s is None and xs[-1] - xs[0] >= p.min_skew_span_s:
            skew = _median_slope(xs, ys, p.skew_points)
        limit = p.max_skew_ppm * 1e-6
        self.skew = min(max(skew, -limit), limit)
        if self.offset_window_s is not None:  # untimed: let the offset follow unseen losses
            recent = xs >= xs[-1] - self.offset_window_s
            xs, ys = xs[recent], ys[recent]
        self.alpha = float(np.min(ys - self.skew * xs))


def _median_slope(xs: np.ndarray, ys: np.ndarray, max_points: int) -> float:
    """Theil–Sen slope of the lowest point of each of ≤ `max_points` consecutive groups.

    Minima of segments, then a median-of-slopes line: Paxson's skew estimator ("On calibrating
    measurements of packet transit times", SIGMETRICS 1998). Compared with the LP optimum alone
    (one hull edge), it does not jump when the lowest two points change, which on short windows
    moved the mapped times by several ms.
    """
    n = len(xs)
    if n > max_points:
        g = -(-n // max_points)
        m = (n // g) * g
        idx = np.argmin(ys[n - m:].reshape(-1, g), axis=1) + np.arange(0, m, g) + (n - m)
        xs, ys = xs[idx], ys[idx]
    i, j = np.triu_indices(len(xs), 1)
    dx = xs[j] - xs[i]
    keep = dx > 0
    if not keep.any():
        return 0.0
    return float(np.median((ys[j] - ys[i])[keep] / dx[keep]))


class SensorTimebase:
    """Maps one sensor's batches onto host time; feed batches in arrival order."""

    def __init__(self, params: TimebaseParams) -> None:
        self.params = params
        self._period = 1.0 / params.nominal_rate_hz
        self._segment: _Segment | None = None
        self._skew = 0.0  # carried across segments: the crystal does not change on a reboot
        self._last_d: float | None = None
        self._last_raw: float | None = None
        self._wraps = 0
        self._index = 0  # no-timestamp devices: index of the next sample
        self._last_out = -math.inf
        self._lateness: deque[float] = deque(maxlen=32)
        self.samples = 0  # samples mapped
        self.missing = 0  # samples known or estimated to be lost
        self.clock_resets = 0  # device clock restarts (reboots, jumps)
        self.segments = 0  # fits started (first data, resets, untimed gaps)

    @property
    def skew_ppm(self) -> float:
        return (self._segment.skew if self._segment else self._skew) * 1e6

    @property
    def loss_pct(self) -> float:
        total = self.samples + self.missing
        return 100.0 * self.missing / total if total else 0.0

    def map(self, arrival_s: float, device_time_s: np.ndarray | None = None, n: int | None = None) -> MappedTimes:
        """Host times of a batch that arrived at `arrival_s` (device times, or `n` untimed samples)."""
        if device_time_s is None:
            if n is None:
                raise ValueError("give device_time_s, or n for a device without timestamps")
            d, gap, missing, reset = self._count_clock(arrival_s, int(n))
        else:
            d, gap, missing, reset = self._device_clock(arrival_s, np.asarray(device_time_s, dtype=np.float64))
        if len(d) == 0:
            return MappedTimes(np.zeros(0), gap, missing, reset)
        seg = self._segment
        if seg is None:
            window = self.params.untimed_offset_s if device_time_s is None else None
            seg = self._segment = _Segment(float(d[-1]), arrival_s, self._skew, window)
            self.segments += 1
        seg.add(float(d[-1]), arrival_s, self.params, self._skew)
        times = np.asarray(seg.host(d), dtype=np.float64)
        # Keep each sensor's output strictly increasing across refits of the line.
        times = np.maximum(times, self._last_out + 1e-6 * np.arange(1, len(times) + 1))
        self._last_out = float(times[-1])
        self.samples += len(d)
        self.missing += missing
        return MappedTimes(times, gap, missing, reset)

    def batch(self, sensor: SensorRole, arrival_s: float, acc: np.ndarray, gyr: np.ndarray,
              mag: np.ndarray | None = None, device_time_s: np.ndarray | None = None,
              counter: np.ndarray | None = None) -> SampleBatch:
        """Convenience: map and wrap decoded samples into the SampleBatch that leaves sensors/."""
        mapped = self.map(arrival_s, device_time_s, n=len(acc))
        return SampleBatch(sensor=sensor, time_s=mapped.time_s, acc=acc, gyr=gyr, mag=mag,
                           device_time_s=device_time_s, counter=counter, gap_before=mapped.gap_before)

    # -- device clocks ------------------------------------------------------------------------------
    def _unwrap(self, raw: np.ndarray) -> np.ndarray:
        period = self.params.wrap_period_s
        if period is None or len(raw) == 0:
            return raw
        prev = self._last_raw if self._last_raw is not None else raw[0]
        steps = np.diff(np.concatenate(([prev], raw)))
        wraps = self._wraps + np.cumsum(steps < -period / 2)
        self._wraps = int(wraps[-1])
        self._last_raw = float(raw[-1])
        return raw + wraps * period

    def _device_clock(self, arrival: float, raw: np.ndarray) -> tuple[np.ndarray, bool, int, bool]:
        d = self._unwrap(raw)
        if len(d) == 0:
            return d, False, 0, False
        gap, missing, reset = False, 0, False
        if self._last_d is not None:
            step = float(d[0]) - self._last_d
            if step <= 0:
                reset = True
            elif step > self.params.gap_factor * self._period:
                gap, missing = True, max(int(round(step / self._period)) - 1, 1)
        seg = self._segment
        if not reset and seg is not None and seg.host(float(d[-1])) > arrival + self.params.future_tolerance_s:
            reset = True
        if reset:
            gap, missing = True, 0
            self.clock_resets += 1
            self._new_segment()
        self._last_d = float(d[-1])
        return d, gap, missing, reset

    def _count_clock(self, arrival: float, n: int) -> tuple[np.ndarray, bool, int, bool]:
        if n <= 0:
            return np.zeros(0), False, 0, False
        d = (self._index + np.arange(n)) * self._period
        missing = 0
        seg = self._segment
        if seg is not None:
            lateness = arrival - float(seg.host(float(d[-1])))
            if lateness > self.params.late_tolerance_s:
                typical = float(np.median(self._lateness)) if self._lateness else 0.0
                missing = max(1, int(round((lateness - typical) / self._period)))
            else:
                self._lateness.append(lateness)
        if missing:
            d = d + missing * self._period
            self._index += missing
            self._new_segment()
        self._index += n
        return d, missing > 0, missing, False

    def _new_segment(self) -> None:
        if self._segment is not None:
            self._skew = self._segment.skew
        self._segment = None
        self._lateness.clear()
