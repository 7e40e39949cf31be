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

try:  # what `find_peaks(x, prominence=p)` runs, without its argument handling
    from scipy.signal._peak_finding_utils import _local_maxima_1d, _peak_prominences
except ImportError:  # pragma: no cover - other SciPy layouts
    _local_maxima_1d = _peak_prominences = None

from processing.angles import AngleBatch
from processing.smoothness import ldlj_many, sparc_many

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
        if st.phase == "returning":  # the buffer starts at the last end
            out += self._emit_all([(st.cross, st.ret, self._cols.shape[1] - 1, 0)])
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
        found: list[tuple[int, int, int, int]] = []  # (cross, ret, end, first) of each

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
                found.append((st.cross, st.ret, end, cut))
                cut = end
                st.phase, pos = "idle", end + 1
        # the repetitions' measures, all at once (nothing above depends on them)
        out = self._emit_all(found) if found else out
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

    def _emit_all(self, found: list[tuple[int, int, int, int]]) -> list[Repetition]:
        """The repetitions that crossed at `cross`, came back at `ret` and end by `end` (buffer
        indices, in time order); each start is searched back to `first` at the earliest.

        All of them at once: every measure is a reduction over each repetition's frames, done
        for all repetitions together on their frames side by side (`np.ufunc.reduceat`), a fixed
        number of numpy calls however many repetitions a batch completes (an offline analysis
        finds dozens per chunk)."""
        p = self.params
        b = self._cols
        cross, ret, end, first = (np.array(x, dtype=np.int64) for x in zip(*found))
        speed = np.append(b[_S], 0.0)  # reduceat needs an index past each range's end
        peak = np.maximum.reduceat(speed, _pairs(cross, end + 1))[0::2]
        th = np.maximum(p.onset_speed_deg_s, p.onset_fraction * peak)
        # start: the last frame below the threshold before the crossing (else `first`)
        idx, own = _ranges(first, cross)
        below = np.where(speed[idx] < th[own], idx, -1)
        start = first.copy()
        some = cross > first
        if below.size:
            last = np.maximum.reduceat(below, _starts(cross - first)[some])
            start[some] = np.where(last >= 0, last, first[some])
        # end: the first frame below it after the return (else `end`)
        idx, own = _ranges(ret, end + 1)
        hit = np.minimum.reduceat(np.where(speed[idx] < th[own], idx, _BIG),
                                  _starts(end + 1 - ret))
        end = np.where(hit < _BIG, hit, end)
        use = np.flatnonzero(end - start >= 2)
        if use.size == 0:
            return []
        start, end, peak = start[use], end[use], peak[use]
        k = use.size
        n = end - start + 1
        frames, own = _ranges(start, end + 1)
        g = b[:, frames]  # the repetitions' frames side by side: rows the columns
        offs = _starts(n)
        cols = np.arange(frames.shape[0])
        # direction: the component furthest from its start value
        dev = g[_F:_R + 1] - b[_F:_R + 1, start][:, own]
        adev = np.abs(dev)
        ext = np.maximum.reduceat(adev, offs, axis=1)
        axis = np.argmax(ext, axis=0)  # the first of equal ones
        e = ext[axis, np.arange(k)]
        ax_own = axis[own]
        a_ax, d_ax = adev[ax_own, cols], dev[ax_own, cols]
        # the extreme (its first frame) and the peak time: the first frame near the extreme
        iext = np.minimum.reduceat(np.where(a_ax == e[own], cols, _BIG), offs)
        near = np.maximum(p.peak_band_deg, p.peak_band_fraction * e)
        ipk = np.minimum.reduceat(np.where(a_ax >= (e - near)[own], cols, _BIG), offs)
        sign = np.where(d_ax[iext] >= 0.0, 1.0, -1.0)
        # hold near the peak: the longest still run within the band around the extreme
        band = np.maximum(p.hold_band_deg, p.hold_band_fraction * e)
        still = np.abs(d_ax - d_ax[iext][own]) < band[own]
        still &= g[_S] < np.maximum(p.hold_speed_deg_s, p.hold_fraction * peak)[own]
        h0, h1 = _longest_runs(still, offs, n)
        t = g[_T]
        vals = np.append(g[_F + ax_own, cols], 0.0)
        hold_sum = np.add.reduceat(vals, _pairs(offs + h0, offs + np.maximum(h1, h0 + 1)))[0::2]
        # the direction's rate: its largest towards the peak and back
        rate = np.append(g[_FV + ax_own, cols], 0.0)
        up_out, up_back = _pairs(offs, iext + 1), _pairs(iext, offs + n)
        v_out = np.where(sign > 0, np.maximum.reduceat(rate, up_out)[0::2],
                         -np.minimum.reduceat(rate, up_out)[0::2])
        v_back = np.where(sign > 0, -np.minimum.reduceat(rate, up_back)[0::2],
                          np.maximum.reduceat(rate, up_back)[0::2])
        mean_speed = np.add.reduceat(g[_S], offs) / n
        t0, t1 = t[offs], t[offs + n - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            fs = np.where(t1 > t0, (n - 1) / (t1 - t0), np.nan)
        speeds = [g[_S, o:o + m] for o, m in zip(offs.tolist(), n.tolist())]
        sparcs = sparc_many(speeds, fs.tolist(), padlevel=p.smoothness_padlevel,
                            fc_hz=p.smoothness_fc_hz, amp_threshold=p.smoothness_amp_threshold)
        ldljs = ldlj_many(speeds, fs.tolist())
        n_peaks = _count_peaks_many(speeds, np.maximum(p.peak_prominence_deg_s,
                                                       p.peak_prominence * peak).tolist())
        out = []
        rows, firsts = g[:, iext].T.tolist(), g[:, offs].T.tolist()
        for r in zip(axis.tolist(), sign.tolist(), e.tolist(), (iext - offs).tolist(),
                     t[ipk].tolist(), t0.tolist(), t1.tolist(), peak.tolist(),
                     mean_speed.tolist(), v_out.tolist(), v_back.tolist(), sparcs.tolist(),
                     ldljs.tolist(), n_peaks, rows, firsts, (offs + h0).tolist(),
                     (h1 - h0).tolist(), hold_sum.tolist()):
            rep = self._repetition(r, t)
            if rep is not None:
                out.append(rep)
        return out

    def _repetition(self, r: tuple[Any, ...], t: np.ndarray) -> Repetition | None:
        """One repetition from its measures (`_emit_all`; `t` the times of the repetitions'
        frames side by side); None if its range is too small."""
        p = self.params
        (axis, sign, e, iext, t_peak, t0, t1, peak_speed, mean_speed, out_v, back_v, sparc,
         ldlj, n_peaks, row, first, h0, h_len, hold_sum) = r
        if e < p.min_range_deg:
            return None
        col = _F + axis
        direction = _AXES[axis][0 if sign > 0 else 1]
        hold = None
        if h_len > 0 and t[h0 + h_len - 1] - t[h0] >= p.min_hold_s:
            hold = (float(t[h0]), float(t[h0 + h_len - 1]), hold_sum / h_len)
        pelvic = row[_PT] - first[_PT]
        upper = row[_UI] - first[_UI]
        lumbar = row[_F] - first[_F]
        share = ratio = None
        if direction == "flexion":
            total = lumbar + pelvic
            share = lumbar / total if abs(total) > 1e-9 else None
            ratio = lumbar / pelvic if abs(pelvic) > 1e-9 else None
        target = self._st.targets.get(direction)
        reposition = None
        if target is not None:
            reached = abs(hold[2]) if hold is not None else abs(row[col])
            reposition = reached - target
        self._count += 1
        rep = Repetition(
            index=self._count, direction=direction, start_s=t0, peak_s=t_peak,
            end_s=t1, duration_s=t1 - t0, peak_deg=row[col],
            range_deg=e, peak_flexion_deg=row[_F],
            peak_lateral_bend_deg=row[_L], peak_axial_rotation_deg=row[_R],
            peak_speed_deg_s=peak_speed, mean_speed_deg_s=mean_speed,
            peak_velocity_out_deg_s=max(0.0, out_v),
            peak_velocity_back_deg_s=max(0.0, back_v),
            sparc=sparc, ldlj=ldlj, n_velocity_peaks=n_peaks,
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


_BIG = np.iinfo(np.int64).max


def _starts(lengths: np.ndarray) -> np.ndarray:
    """Where each of consecutive ranges of these lengths starts."""
    out = np.zeros(lengths.shape[0], dtype=np.int64)
    np.cumsum(lengths[:-1], out=out[1:])
    return out


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The indices lo[k] ≤ i < hi[k] of all ranges k side by side, and each one's range."""
    lengths = hi - lo
    own = np.repeat(np.arange(lengths.shape[0]), lengths)
    return np.arange(own.shape[0]) + (lo - _starts(lengths))[own], own


def _pairs(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Indices for `ufunc.reduceat` whose even results reduce over [lo[k], hi[k])."""
    out = np.empty(2 * lo.shape[0], dtype=np.int64)
    out[0::2], out[1::2] = lo, hi
    return out


def _count_peaks_many(speeds: list[np.ndarray], prominence: list[float]) -> list[int]:
    """For each speed profile (non-negative), how many peaks `find_peaks` finds in it, zero-padded
    at both ends, with at least its `prominence`.

    All profiles in one signal, each zero-padded and followed by an infinite wall: the walls
    stop every peak's base search (a peak's bases never reach past a higher point), and a base
    search that reaches a padding zero has found the least value it could (the speeds are
    non-negative), so each peak's prominence is the one in its own padded profile."""
    k = len(speeds)
    if _local_maxima_1d is None:
        out = []
        for v, prom in zip(speeds, prominence):
            out.append(int(find_peaks(np.concatenate(([0.0], v, [0.0])),
                                      prominence=prom)[0].size))
        return out
    lengths = np.array([v.shape[0] for v in speeds], dtype=np.int64)
    starts = np.zeros(k, dtype=np.int64)  # where each padded profile's leading zero is
    np.cumsum(lengths[:-1] + 3, out=starts[1:])
    x = np.zeros(int(starts[-1] + lengths[-1] + 2))
    for v, s0 in zip(speeds, starts.tolist()):
        x[s0 + 1:s0 + 1 + v.shape[0]] = v
    x[starts[1:] - 1] = np.inf
    peaks = _local_maxima_1d(x)[0]  # the walls among them
    owner = np.searchsorted(starts, peaks, side="right") - 1
    th = np.asarray(prominence, dtype=float)[owner]
    h = x[peaks]
    # Which peaks cannot reach the prominence, cheaply (each peak's prominence depends on x
    # alone, so leaving some out changes nothing for the others): a peak's prominence is at
    # most its height (the profiles are non-negative); and when the next (previous) local
    # maximum is higher, the base search on that side stops by it, so the prominence is at most
    # the drop to the lowest point between the two. Most local maxima of a noisy speed profile
    # are ripples on a flank, which the second test rejects; without it the base search of each
    # ripple runs down the whole flank.
    valley = np.minimum.reduceat(x, peaks)[:-1]  # lowest point from each one to the next
    drop_ok = np.ones(peaks.shape[0], dtype=bool)
    drop_ok[:-1] &= ~((h[1:] > h[:-1]) & (h[:-1] - valley < th[:-1]))
    drop_ok[1:] &= ~((h[:-1] > h[1:]) & (h[1:] - valley < th[1:]))
    keep = (h >= th) & (h < np.inf) & drop_ok
    peaks, owner, th = peaks[keep], owner[keep], th[keep]
    if peaks.size == 0:
        return [0] * k
    prom = _peak_prominences(x, peaks, -1)[0]
    return np.bincount(owner[prom >= th], minlength=k).tolist()


def _longest_runs(mask: np.ndarray, offs: np.ndarray,
                  lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of the masks side by side in `mask` (starting at `offs`), [start, end) of its
    longest run of True, relative to its start (the first of equally long ones; (0, 0) if
    none)."""
    k = offs.shape[0]
    # each mask after one False, so that no run reaches from one into the next
    base = offs + np.arange(1, k + 1)
    cat = np.zeros(mask.shape[0] + k + 1, dtype=np.int8)
    cat[np.arange(mask.shape[0]) + np.repeat(np.arange(1, k + 1), lengths)] = mask
    d = np.flatnonzero(np.diff(cat)) + 1  # alternating run starts and ends
    h0 = np.zeros(k, dtype=np.int64)
    h1 = np.zeros(k, dtype=np.int64)
    if d.size == 0:
        return h0, h1
    run0, run1 = d[0::2], d[1::2]
    owner = np.searchsorted(base, run0, side="right") - 1
    # per mask the longest run, the earliest of equal ones: sort by (mask, −length, start)
    order = np.lexsort((run0, run0 - run1, owner))
    owner = owner[order]
    first = np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1])))
    best, owner = order[first], owner[first]
    h0[owner] = run0[best] - base[owner]
    h1[owner] = run1[best] - base[owner]
    return h0, h1


def segment(angles: AngleBatch, params: SegmentationParams = SegmentationParams(),
            targets: dict[str, float] | None = None) -> list[Repetition]:
    """Repetitions of a whole recording's angles (the streaming `Segmenter` in one go)."""
    s = Segmenter(params)
    for d, v in (targets or {}).items():
        s.set_target(d, v)
    return s.update(angles) + s.finish()
