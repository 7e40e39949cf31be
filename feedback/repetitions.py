"""Streaming detection of out-and-back forward bends in the lumbar flexion angle.

Pure and sample-driven: every decision is taken per sample from the sample times, so the result is
the same however the stream is cut into batches. Rules, and why:

- Armed only from rest: before the first repetition, and again after a signal gap, the angle must
  stay still (range <= `still_range_deg`) for `arm_still_s` + `baseline_lag_s`, below the end
  threshold of the baseline it gives; a stream that begins mid-bend yields no half repetition.
- Resting baseline: the mean of that still stretch, then followed slowly while standing still, so
  a slightly flexed standing posture does not eat into the start threshold. Calibration already
  puts neutral standing at 0, so the baseline may move only +-`baseline_limit_deg` from it: a
  backward lean or a sway held for a moment cannot lower the threshold much. Scores stay in
  absolute calibrated degrees; the baseline only decides when a repetition starts and ends.
- Start: flexion rises more than `start_threshold_deg(target)` = max(5 deg, 25 % of target) above
  the baseline. End: it falls below that minus `hysteresis_deg` (hysteresis, so noise near the
  threshold does not split or chain repetitions).
- A repetition only counts ("confirmed", `RepetitionBegan` emitted) once it has gone at least
  `min_excursion_deg` past the start threshold and stayed above it for `min_duration_s`: sway that
  grazes the threshold and sensor glitches never count. Unconfirmed movements vanish silently.
- Gaps: NaN samples are skipped; if no valid sample arrives for more than `max_gap_s` (NaNs or
  missing time), a repetition in progress is aborted as `signal_gap` (not scored, not an error)
  and the detector must re-arm. A repetition longer than `max_duration_s` is aborted as
  `too_long` (the person stayed bent; it is not a bend-and-return).
- Return to neutral: after the end crossing the angle must settle within +-`return_tolerance_deg`
  of the baseline for `settle_s`. Settling gives `returned_to_neutral=True`; not settling within
  `return_timeout_s`, or bending again first, gives False; a gap gives None (unknown).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import numpy as np

from feedback.exercise import TargetSpec


@dataclass(frozen=True, slots=True)
class RepetitionParams:
    """Detector tuning, with defaults chosen for 50-200 Hz flexion angles from two IMUs."""

    hysteresis_deg: float = 2.0
    min_excursion_deg: float = 3.0
    min_duration_s: float = 0.3
    max_duration_s: float = 30.0
    max_gap_s: float = 0.2
    arm_still_s: float = 0.5
    baseline_lag_s: float = 0.5
    baseline_tau_s: float = 3.0
    still_range_deg: float = 3.0
    baseline_limit_deg: float = 3.0
    return_tolerance_deg: float = 4.0
    settle_s: float = 0.3
    return_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"RepetitionParams.{name} must be positive, got {value!r}")


@dataclass(frozen=True, slots=True)
class Repetition:
    """What was measured in one confirmed repetition (absolute calibrated degrees)."""

    target: TargetSpec  # the target in force when the repetition started
    baseline_deg: float
    start_time_s: float  # crossing of the start threshold (interpolated)
    confirm_time_s: float
    first_in_band_time_s: float | None  # first entry into the target band (interpolated)
    peak_time_s: float
    peak_deg: float
    end_time_s: float  # crossing of the end threshold on the way back (interpolated)
    in_band_time_s: float  # total time inside the band
    longest_hold_s: float  # longest continuous stay inside the band
    returned_to_neutral: bool | None
    settled_time_s: float | None  # when the return to neutral was judged (settled or not)


@dataclass(frozen=True, slots=True)
class RepetitionBegan:
    time_s: float  # when the repetition was confirmed
    start_time_s: float
    target: TargetSpec


@dataclass(frozen=True, slots=True)
class RepetitionEnded:
    time_s: float  # when the return to neutral was judged
    repetition: Repetition


AbortReason = Literal["signal_gap", "too_long"]


@dataclass(frozen=True, slots=True)
class RepetitionAborted:
    time_s: float
    start_time_s: float
    reason: AbortReason
    peak_deg: float
    target: TargetSpec


DetectorEvent = RepetitionBegan | RepetitionEnded | RepetitionAborted
_Events = list[DetectorEvent]
_Sample = tuple[float, float]  # (time_s, flexion_deg)


class _Phase(Enum):
    UNARMED = "unarmed"  # waiting for a still, near-neutral stretch
    IDLE = "idle"  # armed, at rest
    ACTIVE = "active"  # above the start threshold
    RETURNING = "returning"  # back below the end threshold, judging the return to neutral


@dataclass(slots=True)
class _Active:
    """Mutable bookkeeping of the repetition in progress."""

    target: TargetSpec
    baseline_deg: float
    start_time_s: float
    peak_deg: float
    peak_time_s: float
    confirm_time_s: float | None = None
    first_in_band_time_s: float | None = None
    in_band_time_s: float = 0.0
    run_start_s: float | None = None  # entry time of the current stay in the band
    longest_hold_s: float = 0.0
    end_time_s: float | None = None
    settle_start_s: float | None = None


def _crossing(x0: float, x1: float, level: float) -> float:
    """Fraction of the way from sample 0 to sample 1 at which the line reaches `level`."""
    return 1.0 if x1 == x0 else min(1.0, max(0.0, (level - x0) / (x1 - x0)))


def _band_overlap(x0: float, x1: float, low: float, high: float) -> tuple[float, float] | None:
    """Fraction interval of the segment x0 -> x1 (linear) that lies inside [low, high]."""
    if x1 == x0:
        return (0.0, 1.0) if low <= x0 <= high else None
    sa, sb = (low - x0) / (x1 - x0), (high - x0) / (x1 - x0)
    s0, s1 = max(0.0, min(sa, sb)), min(1.0, max(sa, sb))
    return (s0, s1) if s0 <= s1 else None


class RepetitionDetector:
    """Finds flexion repetitions in a stream of (time_s, flexion_deg) samples."""

    def __init__(self, target: TargetSpec, params: RepetitionParams | None = None) -> None:
        self.params = params or RepetitionParams()
        self._target = target
        self._phase = _Phase.UNARMED
        self._baseline_deg = 0.0
        self._rep: _Active | None = None
        self._last_time_s: float | None = None
        self._last_valid: _Sample | None = None  # previous valid sample; None after a gap
        self._last_valid_time_s: float | None = None
        self._in_gap = False
        self._latest_finite = False
        self._reset_still()

    # -- public view -------------------------------------------------------------------------
    @property
    def target(self) -> TargetSpec:
        return self._target

    def set_target(self, target: TargetSpec) -> None:
        """Use `target` from the next repetition on; one in progress keeps its own target."""
        self._target = target

    @property
    def baseline_deg(self) -> float:
        return self._baseline_deg

    @property
    def in_repetition(self) -> bool:
        """Above the start threshold right now (confirmed or not yet)."""
        return self._phase is _Phase.ACTIVE

    @property
    def armed(self) -> bool:
        return self._phase is not _Phase.UNARMED

    @property
    def latest_deg(self) -> float | None:
        return self._last_valid[1] if self._last_valid is not None else None

    @property
    def signal_ok(self) -> bool:
        """The latest sample was valid and no gap is open."""
        return self._latest_finite and not self._in_gap

    def hold_progress(self) -> float:
        """0..1 towards the hold of the repetition in progress; stays 1 once the hold is done."""
        rep = self._rep
        if rep is None or self._phase is not _Phase.ACTIVE or self._last_valid is None:
            return 0.0
        current = self._last_valid[0] - rep.run_start_s if rep.run_start_s is not None else 0.0
        best = max(rep.longest_hold_s, current)
        hold_s = rep.target.hold_s
        if hold_s <= 0.0:
            return 1.0 if rep.first_in_band_time_s is not None else 0.0
        if best >= hold_s:
            return 1.0
        return min(1.0, current / hold_s)

    # -- streaming -----------------------------------------------------------------------------
    def update(self, time_s: np.ndarray, flexion_deg: np.ndarray) -> list[DetectorEvent]:
        time_s = np.asarray(time_s, dtype=float)
        flexion_deg = np.asarray(flexion_deg, dtype=float)
        if time_s.ndim != 1 or time_s.shape != flexion_deg.shape:
            raise ValueError(
                f"time_s and flexion_deg must be 1-D and equal length, got {time_s.shape} "
                f"and {flexion_deg.shape}"
            )
        if time_s.size == 0:
            return []
        if not np.all(np.isfinite(time_s)):
            raise ValueError("time_s must be finite")
        previous = -math.inf if self._last_time_s is None else self._last_time_s
        if time_s[0] <= previous or np.any(np.diff(time_s) <= 0):
            raise ValueError("time_s must increase strictly, also across batches")
        events: list[DetectorEvent] = []
        for t, x in zip(time_s.tolist(), flexion_deg.tolist()):
            self._step(t, x, events)
        self._last_time_s = float(time_s[-1])
        return events

    def step(self, time_s: float, value_deg: float) -> list[DetectorEvent]:
        """Feed one sample (NaN = missing); the same as `update` with a one-sample batch.

        For callers that change their own state between samples (the practice engine ends a set
        at the sample a repetition ends on), so that batch boundaries cannot matter.
        """
        t, x = float(time_s), float(value_deg)
        if not math.isfinite(t):
            raise ValueError("time_s must be finite")
        if self._last_time_s is not None and t <= self._last_time_s:
            raise ValueError("time_s must increase strictly, also across batches")
        events: list[DetectorEvent] = []
        self._step(t, x, events)
        self._last_time_s = t
        return events

    @property
    def resting(self) -> bool:
        """Not in a repetition: unarmed or armed at rest (not above the start threshold, not
        judging the return)."""
        return self._phase in (_Phase.UNARMED, _Phase.IDLE)

    def _step(self, t: float, x: float, out: _Events) -> None:
        p = self.params
        last_t = self._last_valid_time_s
        if last_t is not None and not self._in_gap and t - last_t > p.max_gap_s:
            self._on_gap(t, out)
        self._latest_finite = math.isfinite(x)
        if not self._latest_finite:
            return
        self._in_gap = False
        prev = self._last_valid
        self._last_valid = (t, x)
        self._last_valid_time_s = t
        if self._phase is _Phase.RETURNING:
            self._step_returning(t, x, prev, out)
        elif self._phase is _Phase.ACTIVE:
            self._step_active(t, x, prev, out)
        elif self._phase is _Phase.IDLE:
            self._step_idle(t, x, prev, out)
        else:
            self._track_still(t, x)

    def _on_gap(self, t: float, out: _Events) -> None:
        rep = self._rep
        if self._phase is _Phase.ACTIVE and rep is not None and rep.confirm_time_s is not None:
            out.append(
                RepetitionAborted(t, rep.start_time_s, "signal_gap", rep.peak_deg, rep.target)
            )
        elif self._phase is _Phase.RETURNING:
            self._finish(t, None, out)
        self._rep = None
        self._phase = _Phase.UNARMED
        self._in_gap = True
        self._last_valid = None
        self._reset_still()

    # -- rest and baseline ---------------------------------------------------------------------
    def _reset_still(self) -> None:
        self._still_start_s: float | None = None
        self._still_min = math.inf
        self._still_max = -math.inf
        self._still_recent: deque[_Sample] = deque()  # younger than baseline_lag_s
        self._still_sum = 0.0  # over the older samples of the stretch
        self._still_n = 0
        self._still_last_s: float | None = None  # time of the latest sample older than the lag

    def _track_still(self, t: float, x: float) -> None:
        """Grow the current still stretch (or restart it); arm, and keep the baseline current.

        Only samples older than `baseline_lag_s` count, so the slow first part of a bend (still
        inside the still range) does not pull the baseline towards the movement. Once armed, the
        baseline follows still samples with time constant `baseline_tau_s`, so a slow sway, still
        for a moment at each end, averages out instead of dragging the baseline to one side.
        """
        p = self.params
        lo, hi = min(self._still_min, x), max(self._still_max, x)
        if self._still_start_s is None or hi - lo > p.still_range_deg:
            self._reset_still()
            self._still_start_s, lo, hi = t, x, x
        self._still_min, self._still_max = lo, hi
        self._still_recent.append((t, x))
        armed = self._phase is not _Phase.UNARMED
        while self._still_recent[0][0] <= t - p.baseline_lag_s:
            tc, xc = self._still_recent.popleft()
            self._still_sum += xc
            self._still_n += 1
            still_long = tc - self._still_start_s >= p.arm_still_s
            if armed and still_long and self._still_last_s is not None:
                alpha = 1.0 - math.exp(-(tc - self._still_last_s) / p.baseline_tau_s)
                limit = p.baseline_limit_deg
                baseline = self._baseline_deg + alpha * (xc - self._baseline_deg)
                self._baseline_deg = min(limit, max(-limit, baseline))
            self._still_last_s = tc
        if armed or self._still_n == 0:
            return
        mean = self._still_sum / self._still_n
        still_long = self._still_last_s is not None and (
            self._still_last_s - self._still_start_s >= p.arm_still_s
        )
        baseline = min(p.baseline_limit_deg, max(-p.baseline_limit_deg, mean))
        # At rest = still, and where a repetition would count as ended from that baseline.
        if still_long and mean - baseline < self._target.start_threshold_deg - p.hysteresis_deg:
            self._baseline_deg = baseline
            self._phase = _Phase.IDLE

    # -- phases --------------------------------------------------------------------------------
    def _step_idle(self, t: float, x: float, prev: _Sample | None, out: _Events) -> None:
        start_level = self._baseline_deg + self._target.start_threshold_deg
        if x <= start_level:
            self._track_still(t, x)
            return
        if prev is None:  # cannot happen (arming needs samples), kept for safety
            prev = (t, x)
        s = _crossing(prev[1], x, start_level)
        t0 = prev[0] + s * (t - prev[0])
        self._rep = _Active(self._target, self._baseline_deg, t0, peak_deg=x, peak_time_s=t)
        self._phase = _Phase.ACTIVE
        self._reset_still()
        self._account_band(prev, (t, x), s_min=s, s_max=1.0)
        self._check_confirm_and_duration(t, out)

    def _step_active(self, t: float, x: float, prev: _Sample | None, out: _Events) -> None:
        rep = self._rep
        assert rep is not None
        end_level = rep.baseline_deg + rep.target.start_threshold_deg - self.params.hysteresis_deg
        if prev is None:  # cannot happen (gaps disarm), kept for safety
            return
        if x >= end_level:
            if x > rep.peak_deg:
                rep.peak_deg, rep.peak_time_s = x, t
            self._account_band(prev, (t, x), 0.0, 1.0)
            self._check_confirm_and_duration(t, out)
            return
        s_end = _crossing(prev[1], x, end_level)
        self._account_band(prev, (t, x), 0.0, s_end)
        if rep.confirm_time_s is None:  # too small or too short to be a repetition
            self._rep = None
            self._phase = _Phase.IDLE
            self._track_still(t, x)
            return
        rep.end_time_s = prev[0] + s_end * (t - prev[0])
        self._phase = _Phase.RETURNING
        self._step_returning(t, x, prev, out)

    def _step_returning(self, t: float, x: float, prev: _Sample | None, out: _Events) -> None:
        rep = self._rep
        assert rep is not None and rep.end_time_s is not None
        p = self.params
        rel = x - rep.baseline_deg
        if x > self._baseline_deg + self._target.start_threshold_deg:
            self._finish(t, False, out)  # bending again before settling
            self._step_idle(t, x, prev, out)
            return
        if abs(rel) <= p.return_tolerance_deg:
            if rep.settle_start_s is None:
                rep.settle_start_s = t
            if t - rep.settle_start_s >= p.settle_s:
                self._finish(t, True, out)
                self._track_still(t, x)
        else:
            rep.settle_start_s = None
            if t - rep.end_time_s > p.return_timeout_s:
                self._finish(t, False, out)
                self._track_still(t, x)

    def _check_confirm_and_duration(self, t: float, out: _Events) -> None:
        rep = self._rep
        assert rep is not None
        p = self.params
        if rep.confirm_time_s is None:
            excursion = rep.peak_deg - rep.baseline_deg - rep.target.start_threshold_deg
            if excursion >= p.min_excursion_deg and t - rep.start_time_s >= p.min_duration_s:
                rep.confirm_time_s = t
                out.append(RepetitionBegan(t, rep.start_time_s, rep.target))
        if t - rep.start_time_s > p.max_duration_s:
            if rep.confirm_time_s is not None:
                out.append(
                    RepetitionAborted(t, rep.start_time_s, "too_long", rep.peak_deg, rep.target)
                )
            self._rep = None
            self._phase = _Phase.UNARMED
            self._reset_still()

    def _account_band(self, a: _Sample, b: _Sample, s_min: float, s_max: float) -> None:
        """Add the part of segment a -> b (between fractions s_min and s_max) spent in the band."""
        rep = self._rep
        assert rep is not None
        (t0, x0), (t1, x1) = a, b
        dt = t1 - t0
        overlap = _band_overlap(x0, x1, rep.target.low_deg, rep.target.high_deg)
        if overlap is not None:
            s0, s1 = max(overlap[0], s_min), min(overlap[1], s_max)
            if s0 > s1:
                overlap = None
        if overlap is None:
            if rep.run_start_s is not None:  # left exactly at a sample
                rep.longest_hold_s = max(rep.longest_hold_s, t0 - rep.run_start_s)
                rep.run_start_s = None
            return
        enter_s, leave_s = t0 + s0 * dt, t0 + s1 * dt
        rep.in_band_time_s += leave_s - enter_s
        if rep.first_in_band_time_s is None:
            rep.first_in_band_time_s = enter_s
        if rep.run_start_s is None:
            rep.run_start_s = enter_s
        if s1 < s_max or s_max < 1.0:  # left the band within this segment, or the repetition ended
            rep.longest_hold_s = max(rep.longest_hold_s, leave_s - rep.run_start_s)
            rep.run_start_s = None

    def _finish(self, t: float, returned: bool | None, out: _Events) -> None:
        rep = self._rep
        assert rep is not None and rep.end_time_s is not None and rep.confirm_time_s is not None
        if rep.run_start_s is not None:
            rep.longest_hold_s = max(rep.longest_hold_s, rep.end_time_s - rep.run_start_s)
        out.append(RepetitionEnded(t, Repetition(
            target=rep.target,
            baseline_deg=rep.baseline_deg,
            start_time_s=rep.start_time_s,
            confirm_time_s=rep.confirm_time_s,
            first_in_band_time_s=rep.first_in_band_time_s,
            peak_time_s=rep.peak_time_s,
            peak_deg=rep.peak_deg,
            end_time_s=rep.end_time_s,
            in_band_time_s=rep.in_band_time_s,
            longest_hold_s=rep.longest_hold_s,
            returned_to_neutral=returned,
            settled_time_s=t,
        )))
        self._rep = None
        self._phase = _Phase.IDLE
