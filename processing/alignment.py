"""Bring the two sensors onto one time base: the lower sensor's sample times.

The sensors sample on their own clocks (a few ms apart, rates may differ), so the upper sensor's
orientation is interpolated at each lower sample time: slerp of the quaternions, linear
interpolation of the gyroscope and accelerometer vectors. Interpolating sensor-to-earth
quaternions is enough: calibration later multiplies them by constant rotations on both sides,
and slerp commutes with that.

Streaming: `Aligner` keeps the upper samples not yet needed and the lower samples still waiting for
an upper sample after them; a lower sample is emitted once upper samples bracket it. Never across a
gap: a lower sample whose upper bracket spans an upper gap (see `OrientationBatch.gap_before`), or
that lies before the first upper sample, is dropped and the next emitted frame is flagged
`gap_before`. Memory is bounded: samples waiting longer than `max_wait_s` of their own sensor's
time (the other sensor silent) are dropped. The output depends only on the data, not on how it was
cut into batches, as long as neither sensor runs more than `max_wait_s` ahead of the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from processing.orientation import OrientationBatch


@dataclass(frozen=True)
class AlignmentParams:
    max_wait_s: float = 60.0
    """How far (in its own time) one sensor may run ahead of the other before old samples drop."""


@dataclass(frozen=True)
class AlignedFrames:
    """Both sensors at the lower sensor's sample times (sensor frames, before calibration)."""

    time_s: np.ndarray  # (N,)
    q_lower: np.ndarray  # (N, 4) sensor-to-earth (the lower sensor's own earth frame)
    q_upper: np.ndarray  # (N, 4) sensor-to-earth (the upper sensor's own earth frame)
    gyr_lower: np.ndarray  # (N, 3) rad/s, bias removed
    gyr_upper: np.ndarray  # (N, 3)
    acc_lower: np.ndarray  # (N, 3) m/s²
    acc_upper: np.ndarray  # (N, 3)
    gap_before: np.ndarray  # (N,) bool

    def __len__(self) -> int:
        return int(self.time_s.shape[0])

    @staticmethod
    def empty() -> AlignedFrames:
        v = np.empty((0, 3))
        return AlignedFrames(np.empty(0), np.empty((0, 4)), np.empty((0, 4)), v, v, v, v,
                             np.empty(0, dtype=bool))

    @staticmethod
    def concat(parts: list[AlignedFrames]) -> AlignedFrames:
        parts = [p for p in parts if len(p)]
        if not parts:
            return AlignedFrames.empty()
        if len(parts) == 1:
            return parts[0]
        return AlignedFrames(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    def take(self, sel: slice | np.ndarray) -> AlignedFrames:
        return AlignedFrames(*(getattr(self, f)[sel] for f in _FIELDS))

    def window(self, t0: float, t1: float) -> AlignedFrames:
        """Frames with t0 <= time_s <= t1."""
        i0 = int(np.searchsorted(self.time_s, t0, side="left"))
        i1 = int(np.searchsorted(self.time_s, t1, side="right"))
        return self.take(slice(i0, i1))


_FIELDS = ("time_s", "q_lower", "q_upper", "gyr_lower", "gyr_upper", "acc_lower", "acc_upper",
           "gap_before")


def _count_at_or_before(a: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """`np.searchsorted(a, keys, side="right")` for sorted `a` and sorted `keys`: by one merge
    (a stable sort of the two runs, which timsort merges in linear time) instead of a binary
    search per key, several times faster for the thousands of samples of a chunk."""
    if keys.shape[0] < 64:
        return np.searchsorted(a, keys, side="right")
    # stable: a's elements come before equal keys, so each key counts the equal ones of a
    order = np.argsort(np.concatenate((a, keys)), kind="stable")
    return np.flatnonzero(order >= a.shape[0]) - np.arange(keys.shape[0])


class _Buffer:
    """Samples of one sensor: time, the rows [quaternion, gyr, acc] of one (10, N) array (each
    component contiguous), gap flag."""

    def __init__(self) -> None:
        self.t = np.empty(0)
        self.x = np.empty((10, 0))
        self.g = np.empty(0, dtype=bool)

    def push(self, ob: OrientationBatch) -> None:
        old = self.x.shape[1]
        x = np.empty((10, old + len(ob)))
        x[:, :old] = self.x
        x[:4, old:] = ob.quat.T
        x[4:7, old:] = ob.gyr.T
        x[7:, old:] = ob.acc.T
        self.x = x
        if old == 0:
            self.t, self.g = ob.time_s, ob.gap_before
        else:
            self.t = np.concatenate((self.t, ob.time_s))
            self.g = np.concatenate((self.g, ob.gap_before))

    def drop_first(self, n: int) -> None:
        if n > 0:
            self.t, self.x, self.g = self.t[n:], self.x[:, n:], self.g[n:]

    def __len__(self) -> int:
        return int(self.t.size)


class Aligner:
    """Streaming interpolation of the upper sensor at the lower sensor's sample times."""

    def __init__(self, params: AlignmentParams = AlignmentParams()) -> None:
        self.params = params
        self._upper = _Buffer()
        self._lower = _Buffer()
        self._dropped = False  # a lower sample was dropped since the last emitted frame

    def push(self, role: str, ob: OrientationBatch) -> None:
        if len(ob):
            (self._upper if role == "upper" else self._lower).push(ob)

    def pop(self) -> AlignedFrames:
        """All lower samples that can be aligned now, as frames (possibly none)."""
        up, lo = self._upper, self._lower
        out = AlignedFrames.empty()
        if len(up) and len(lo):
            m = int(np.searchsorted(lo.t, up.t[-1], side="right"))
            if m:
                out = self._align(m)
        self._cap()
        return out

    def _align(self, m: int) -> AlignedFrames:
        up, lo = self._upper, self._lower
        tl = lo.t[:m]
        n_u = len(up)
        i_raw = _count_at_or_before(up.t, tl) - 1
        if n_u >= 2:
            i = np.clip(i_raw, 0, n_u - 2)
            j = i + 1
            span = up.t[j] - up.t[i]
            u = np.clip((tl - up.t[i]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
        else:
            i = j = np.zeros(m, dtype=np.int64)
            u = np.zeros(m)
        valid = (i_raw >= 0) & (~up.g[j] | (tl == up.t[i]) | (tl == up.t[j]))
        # nlerp of the quaternions (as `quaternion.nlerp`), linear interpolation of the vectors,
        # in one pass over the rows [q, gyr, acc]
        i0 = int(i[0])
        if n_u >= 2 and int(i[-1]) - i0 == m - 1 and (m < 2 or not (np.diff(i) - 1).any()):
            # the usual case (same rates, nothing lost): the brackets are consecutive columns
            xi, xj = up.x[:, i0:i0 + m], up.x[:, i0 + 1:i0 + 1 + m].copy()
        else:
            xi, xj = up.x[:, i], up.x[:, j]
        qi, qj = xi[:4], xj[:4]
        dot = qi[0] * qj[0]
        dot += qi[1] * qj[1]
        dot += qi[2] * qj[2]
        dot += qi[3] * qj[3]
        neg = dot < 0.0
        if neg.any():
            qj[:, neg] *= -1.0
        xj -= xi
        xj *= u
        xj += xi
        norm = np.multiply(qj[0], qj[0], out=dot)
        norm += qj[1] * qj[1]
        norm += qj[2] * qj[2]
        norm += qj[3] * qj[3]
        qj /= np.sqrt(norm, out=norm)
        xl, xu = lo.x[:, :m].T, xj.T  # (m, 10) views
        if valid.all():  # the usual case: no copies
            gap = lo.g[:m].copy()
            gap[0] |= self._dropped
            self._dropped = False
            frames = AlignedFrames(tl, xl[:, :4], xu[:, :4], xl[:, 4:7], xu[:, 4:7], xl[:, 7:],
                                   xu[:, 7:], gap)
            up.drop_first(int(max(i_raw[-1], 0)))
            lo.drop_first(m)
            return frames

        # flag the first frame after dropped ones
        inv_before = np.cumsum(~valid) - (~valid)  # invalid candidates strictly before each one
        vi = np.flatnonzero(valid)
        gap = lo.g[:m][vi].copy()
        if vi.size:
            c = inv_before[vi]
            prev = np.concatenate(([0], c[:-1]))
            gap |= c > prev
            gap[0] |= self._dropped
            self._dropped = bool(not valid[-1])
        else:
            self._dropped = self._dropped or m > 0
        xl, xu = xl[vi], xu[vi]
        frames = AlignedFrames(tl[vi], xl[:, :4], xu[:, :4], xl[:, 4:7], xu[:, 4:7], xl[:, 7:],
                               xu[:, 7:], gap)
        # keep the left bracket of the last aligned lower sample: later ones cannot need older
        up.drop_first(int(max(i_raw[-1], 0)))
        lo.drop_first(m)
        return frames

    def _cap(self) -> None:
        w = self.params.max_wait_s
        for buf, is_lower in ((self._lower, True), (self._upper, False)):
            if len(buf):
                n = int(np.searchsorted(buf.t, buf.t[-1] - w, side="left"))
                if n:
                    buf.drop_first(n)
                    if is_lower:
                        self._dropped = True
