"""Movement segmentation: repetitions (out from neutral and back) and holds, in any direction.

A repetition is an excursion of the lumbar angles away from neutral standing:
- it is detected when the excursion |(flexion, lateral bend, axial rotation)| exceeds `start_deg`
  and is over once it is back below `end_deg` and the movement has stopped (or turned into the
  next excursion, whose start is then the least excursion between the two);
- its start and end are where the lumbar angular speed falls below the onset threshold,
  max(`onset_speed_deg_s`, `onset_fraction` × peak speed) — the usual "5 % of peak speed" rule of
  movement segmentation (e.g. Balasubramanian et al. 2015), searched back from the excursion;
- its direction is the largest of the three components at its extreme (flexion/extension,
  lateral right/left, rotation right/left); the peak is that component's extreme;
- a hold is the longest stretch near the peak (within max(`hold_band_deg`, `hold_band_fraction`
  × range) of it) where the speed stays below max(`hold_speed_deg_s`, `hold_fraction` × peak);
- smoothness is computed on the gyroscope-derived lumbar angular speed (norm of the relative
  angular velocity of the two segments; Melendez-Calderon et al. 2021) of the whole repetition:
  SPARC and LDLJ (`processing.smoothness`); velocity peaks are the speed's local maxima with a
  prominence of at least `peak_prominence` × peak speed;
- for flexion repetitions the lumbo-pelvic rhythm: the lumbar share of the trunk's sagittal
  motion at the peak, lumbar / (lumbar + pelvic), and the lumbo-pelvic ratio lumbar / pelvic
  (Laird et al., BMC Musculoskelet Disord 20:48, 2019: about 46 % with low back pain, 51 % without);
- where a target was set for the direction, the repositioning error: the hold's mean angle (the
  peak's, without a hold) minus the target, > 0 past it.

Streaming with bounded memory: `Segmenter.update(angles)` keeps only the samples of the excursion
under way plus `lookback_s`; an excursion longer than `max_rep_s` is dropped, and a gap in the
angles (`gap_before`) ends whatever was under way without a repetition. `segment(angles)` is the
same object over a whole recording.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.signal import find_peaks

try:  # what `find_peaks(x, prominence=p)` runs, without its argument handling (per repetition)
    from scipy.signal._peak_finding_utils import _local_maxima_1d, _peak_prominences
except ImportError:  # pragma: no cover - other SciPy layouts
    _local_maxima_1d = _peak_prominences = None

from processing.angles import AngleBatch
from processing.smoothness import ldlj, sparc

DIRECTIONS = ("flexion", "extension", "lateral_right", "lateral_left", "rotation_right",
              "rotation_left")
_AXES = (("flexion", "extension"), ("lateral_right", "lateral_left"),
         ("rotation_right", "rotation_left"))
# buffer columns
_T, _F, _L, _R, _S, _PT, _UI, _FV, _LV, _RV, _M = range(11)


@dataclass(frozen=True)
class SegmentationParams:
    start_deg: float = 5.0
    """An excursion starts when the lumbar angles are this far from neutral."""
    end_deg: float = 3.0
    """... and has returned when they are back within this."""
    onset_speed_deg_s: float = 1.5
    """Lowest onset/offset speed threshold (above the noise floor of the gyroscope-derived
    relative angular speed, about 0.7 °/s for consumer gyroscopes)."""
    onset_fraction: float = 0.05
    """Onset/offset threshold as a share of the repetition's peak speed."""
    hold_speed_deg_s: float = 3.0
    hold_fraction: float = 0.05
    hold_band_deg: float = 1.5
    hold_band_fraction: float = 0.05
    min_hold_s: float = 0.25
    min_range_deg: float = 5.0
    """Smaller repetitions are not reported."""
    peak_prominence: float = 0.1
    peak_prominence_deg_s: float = 2.0
    """Velocity peaks: prominence at least max(this, `peak_prominence` × peak speed)."""
    peak_band_deg: float = 0.3
    peak_band_fraction: float = 0.01
    """The peak time: the first time the angle comes within max(band, fraction × range) of its
    extreme (the extreme itself wanders along a held plateau with the noise)."""
    max_rep_s: float = 30.0
    """Longer excursions are dropped (memory stays bounded)."""
    return_timeout_s: float = 3.0
    """Back near neutral but still moving this long: the repetition ends anyway."""
    lookback_s: float = 3.0
    """Samples kept before an excursion, to find its start."""
    smoothness_padlevel: int = 4
    smoothness_fc_hz: float = 10.0
    smoothness_amp_threshold: float = 0.05


@dataclass(frozen=True)
class Repetition:
    """One out-and-back movement; angles in degrees (lumbar, upper relative to pelvis), times in
    s on the samples' time base, speeds in °/s (gyroscope-derived)."""

    index: int
    direction: str
    start_s: float
    peak_s: float
    end_s: float
    duration_s: float
    peak_deg: float
    """Extreme of the direction's angle (signed as in the angle convention)."""
    range_deg: float
    """|peak − value at the start|."""
    peak_flexion_deg: float
    peak_lateral_bend_deg: float
    peak_axial_rotation_deg: float
    """All three lumbar angles at the peak time."""
    peak_speed_deg_s: float
    mean_speed_deg_s: float
    peak_velocity_out_deg_s: float
    """Largest rate of the direction's angle towards the peak (> 0)."""
    peak_velocity_back_deg_s: float
    """Largest rate of the direction's angle back to neutral (> 0)."""
    sparc: float
    ldlj: float
    n_velocity_peaks: int
    hold_start_s: float | None = None
    hold_end_s: float | None = None
    hold_duration_s: float = 0.0
    hold_mean_deg: float | None = None
    pelvic_tilt_range_deg: float | None = None
    upper_inclination_range_deg: float | None = None
    lumbar_share: float | None = None
    """Flexion repetitions: lumbar / (lumbar + pelvic) sagittal range at the peak."""
    lumbo_pelvic_ratio: float | None = None
    """Flexion repetitions: lumbar / pelvic sagittal range at the peak."""
    target_deg: float | None = None
    repositioning_error_deg: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Hold:
    """A still period away from neutral (the hold of a repetition)."""

    direction: str
    start_s: float
    end_s: float
    duration_s: float
    mean_deg: float
    repetition: int


@dataclass
class _State:
    phase: str = "settle"  # settle (wait for neutral) | idle | out | returning
    cross: int = 0  # buffer index where the excursion crossed start_deg
    ret: int = 0  # buffer index where it came back within end_deg
    targets: dict[str, float] = field(default_factory=dict)


class Segmenter:
    """Streaming repetition detector over `AngleBatch`es (see module docstring)."""

    def __init__(self, params: SegmentationParams = SegmentationParams()) -> None:
        self.params = params
        self._cols = np.empty((11, 0))  # the buffer's columns _T … _M, each contiguous
        self._st = _State()
        self._count = 0
        self.holds: list[Hold] = []
        """Holds of the repetitions found so far (trim it in long live sessions)."""

    @property
    def _buf(self) -> np.ndarray:
        """The buffered frames, (N, 11) (a view of the columns)."""
        return self._cols.T

    def set_target(self, direction: str, target_deg: float | None) -> None:
        """Target angle (magnitude, degrees) for repetitions in `direction`, or None to clear."""
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}; expected one of {DIRECTIONS}")
        if target_deg is None:
            self._st.targets.pop(direction, None)
        else:
            self._st.targets[direction] = abs(float(target_deg))

    def update(self, angles: AngleBatch) -> list[Repetition]:
        """Feed angles (time order); the repetitions completed by them."""
        n = len(angles)
        if n == 0:
            return []
        gaps = np.flatnonzero(angles.gap_before)
        if gaps.size and not (gaps.size == 1 and gaps[0] == 0):
            out: list[Repetition] = []
            bounds = [0, *[int(g) for g in gaps if g > 0], n]
            for i0, i1 in zip(bounds[:-1], bounds[1:]):
                out += self.update(angles.take(slice(i0, i1)))
            return out
        if angles.gap_before[0]:
            self._reset()
        a = angles
        m = np.sqrt(a.flexion_deg**2 + a.lateral_bend_deg**2 + a.axial_rotation_deg**2)
        new = np.vstack((a.time_s, a.flexion_deg, a.lateral_bend_deg, a.axial_rotation_deg,
                         a.lumbar_angular_speed_deg_s, a.pelvic_tilt_deg,
                         a.upper_inclination_deg, a.flexion_velocity_deg_s,
                         a.lateral_bend_velocity_deg_s, a.axial_rotation_velocity_deg_s, m))
        pos = self._cols.shape[1]
        self._cols = new if pos == 0 else np.concatenate((self._cols, new), axis=1)
        return self._scan(pos)

    def finish(self) -> list[Repetition]:
        """End of the recording: a repetition back near neutral but not yet still is reported."""
        out = []
        st = self._st
        if st.phase == "returning":
            rep = self._emit(self._cols.shape[1] - 1)  # the buffer starts at the last end
            if rep is not None:
                out.append(rep)
        self._reset()
        return out

    def _reset(self) -> None:
        """Forget the excursion under way; wait for neutral before the next one."""
        self._cols = np.empty((11, 0))
        self._st.phase = "settle"

    # -- the state machine, event by event (vectorised searches between events) -------------
    def _scan(self, pos: int) -> list[Repetition]:
        p = self.params
        st = self._st
        b = self._cols
        out: list[Repetition] = []
        # every threshold crossing from `pos` on, once; the state machine then only looks up
        lo = max(0, pos - 1)
        m, speed = b[_M, lo:], b[_S, lo:]
        above = np.flatnonzero(m > p.start_deg) + lo
        back = np.flatnonzero(m < p.end_deg) + lo
        stop = np.flatnonzero((speed < p.onset_speed_deg_s) | (m > p.end_deg)) + lo
        last = b.shape[1] - 1
        cut = 0  # samples before this are no longer needed

        def after(idx: np.ndarray, i: int) -> int:
            j = int(np.searchsorted(idx, i, side="left"))
            return int(idx[j]) if j < idx.shape[0] else -1

        while True:
            if st.phase == "settle":
                k = after(back, pos)
                if k < 0:
                    cut = last  # nothing to keep while away from neutral
                    break
                st.phase, pos = "idle", k
            elif st.phase == "idle":
                k = after(above, pos)
                if k < 0:
                    break
                st.phase, st.cross, pos = "out", k, k
            elif st.phase == "out":
                k = after(back, pos)
                if k < 0:
                    if b[_T, last] - b[_T, st.cross] > p.max_rep_s:
                        st.phase = "settle"  # too long for a repetition: drop it
                        cut = last
                    break
                st.phase, st.ret, pos = "returning", k, k
            else:  # returning: wait until it stops or the next excursion begins
                end = after(stop, pos)
                if end < 0:
                    if b[_T, last] - b[_T, st.ret] <= p.return_timeout_s:
                        break
                    end = last
                if b[_M, end] > p.end_deg:  # turned straight into the next excursion
                    end = st.ret + int(np.argmin(b[_M, st.ret:end + 1]))
                rep = self._emit(end, cut)
                if rep is not None:
                    out.append(rep)
                cut = end
                st.phase, pos = "idle", end + 1
        # keep what is still needed: the excursion under way, or the look-back when idle
        if st.phase == "idle":
            keep = int(np.searchsorted(b[_T], b[_T, last] - p.lookback_s, "left"))
            cut = max(cut, keep)
        cut = min(cut, last)
        if cut:
            self._cols = b[:, cut:]
            st.cross -= cut
            st.ret -= cut
        return out

    def _emit(self, end: int, first: int = 0) -> Repetition | None:
        """The repetition that crossed at `st.cross` and ends by `end` (buffer indices); its
        start is searched back to `first` at the earliest."""
        p = self.params
        st = self._st
        b = self._cols
        cross = st.cross
        peak_speed = float(b[_S, cross:end + 1].max())
        th = max(p.onset_speed_deg_s, p.onset_fraction * peak_speed)
        below = np.flatnonzero(b[_S, first:cross] < th)
        start = first + (int(below[-1]) if below.size else 0)
        after = np.flatnonzero(b[_S, st.ret:end + 1] < th)
        if after.size:
            end = st.ret + int(after[0])
        if end - start < 2:
            return None
        seg = b[:, start:end + 1]  # rows: the columns, contiguous
        # direction: the component furthest from its start value
        ang = seg[_F:_R + 1]
        dev = ang - ang[:, :1]
        adev = np.abs(dev)
        ext = adev.max(axis=1)
        axis = int(np.argmax(ext))
        if ext[axis] < p.min_range_deg:
            return None
        col = _F + axis
        d_ax = dev[axis]
        iext = int(np.argmax(adev[axis]))
        sign = 1.0 if d_ax[iext] >= 0 else -1.0
        e = float(ext[axis])
        near = max(p.peak_band_deg, p.peak_band_fraction * e)
        ipk = int(np.argmax(adev[axis, :iext + 1] >= e - near))
        direction = _AXES[axis][0 if sign > 0 else 1]
        t = seg[_T]
        speed = seg[_S]
        nseg = t.shape[0]
        fs = (nseg - 1) / (t[-1] - t[0]) if t[-1] > t[0] else float("nan")
        rate = seg[_FV + axis]
        # hold near the peak
        band = max(p.hold_band_deg, p.hold_band_fraction * e)
        still = (speed < max(p.hold_speed_deg_s, p.hold_fraction * peak_speed)) & (
            np.abs(d_ax - d_ax[iext]) < band)
        h0, h1 = _longest_run(still)
        hold = None
        if h1 > h0 and t[h1 - 1] - t[h0] >= p.min_hold_s:
            hold = (float(t[h0]), float(t[h1 - 1]), float(seg[col, h0:h1].sum() / (h1 - h0)))
        padded = np.zeros(nseg + 2)
        padded[1:-1] = speed
        n_peaks = _count_peaks(padded, max(p.peak_prominence_deg_s,
                                           p.peak_prominence * peak_speed))
        row = seg[:, iext]
        pelvic = float(row[_PT] - seg[_PT, 0])
        upper = float(row[_UI] - seg[_UI, 0])
        lumbar = float(dev[0, iext])
        share = ratio = None
        if direction == "flexion":
            total = lumbar + pelvic
            share = lumbar / total if abs(total) > 1e-9 else None
            ratio = lumbar / pelvic if abs(pelvic) > 1e-9 else None
        target = st.targets.get(direction)
        reposition = None
        if target is not None:
            reached = abs(hold[2]) if hold is not None else abs(float(row[col]))
            reposition = reached - target
        out_v = float(rate[:iext + 1].max() if sign > 0 else -rate[:iext + 1].min())
        back_v = float(-rate[iext:].min() if sign > 0 else rate[iext:].max())
        self._count += 1
        rep = Repetition(
            index=self._count, direction=direction, start_s=float(t[0]), peak_s=float(t[ipk]),
            end_s=float(t[-1]), duration_s=float(t[-1] - t[0]), peak_deg=float(row[col]),
            range_deg=float(ext[axis]), peak_flexion_deg=float(row[_F]),
            peak_lateral_bend_deg=float(row[_L]), peak_axial_rotation_deg=float(row[_R]),
            peak_speed_deg_s=peak_speed, mean_speed_deg_s=float(speed.sum() / nseg),
            peak_velocity_out_deg_s=max(0.0, out_v),
            peak_velocity_back_deg_s=max(0.0, back_v),
            sparc=sparc(speed, fs, padlevel=p.smoothness_padlevel, fc_hz=p.smoothness_fc_hz,
                        amp_threshold=p.smoothness_amp_threshold),
            ldlj=ldlj(speed, fs), n_velocity_peaks=n_peaks,
            hold_start_s=None if hold is None else hold[0],
            hold_end_s=None if hold is None else hold[1],
            hold_duration_s=0.0 if hold is None else hold[1] - hold[0],
            hold_mean_deg=None if hold is None else hold[2],
            pelvic_tilt_range_deg=pelvic, upper_inclination_range_deg=upper,
            lumbar_share=share, lumbo_pelvic_ratio=ratio,
            target_deg=target, repositioning_error_deg=reposition,
        )
        if hold is not None:
            self.holds.append(Hold(direction, hold[0], hold[1], hold[1] - hold[0], hold[2],
                                   rep.index))
        return rep


def _count_peaks(x: np.ndarray, prominence: float) -> int:
    """How many peaks `find_peaks(x, prominence=prominence)` finds (x: float64, contiguous,
    non-negative)."""
    if _local_maxima_1d is None:
        return int(find_peaks(x, prominence=prominence)[0].size)
    peaks = _local_maxima_1d(x)[0]
    # x >= 0 (a speed, zero-padded), so a peak's prominence is at most its height: lower ones
    # cannot count (each peak's prominence depends on x alone, not on the other peaks)
    peaks = peaks[x[peaks] >= prominence]
    if peaks.size == 0:
        return 0
    prom = _peak_prominences(x, peaks, -1)[0]
    return int(np.count_nonzero(prom >= prominence))


def _first(mask: np.ndarray) -> int:
    """Index of the first True, or −1."""
    k = int(np.argmax(mask)) if mask.size else 0
    return k if mask.size and mask[k] else -1


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """[start, end) of the longest run of True (0, 0 if none)."""
    m = np.zeros(mask.shape[0] + 2, dtype=np.int8)
    m[1:-1] = mask
    d = np.flatnonzero(np.diff(m))  # alternating run starts and ends
    if d.size == 0:
        return 0, 0
    lengths = d[1::2] - d[::2]
    i = int(np.argmax(lengths))
    return int(d[2 * i]), int(d[2 * i + 1])


def segment(angles: AngleBatch, params: SegmentationParams = SegmentationParams(),
            targets: dict[str, float] | None = None) -> list[Repetition]:
    """Repetitions of a whole recording's angles (the streaming `Segmenter` in one go)."""
    s = Segmenter(params)
    for d, v in (targets or {}).items():
        s.set_target(d, v)
    return s.update(angles) + s.finish()
