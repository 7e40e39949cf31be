"""Keeping axial rotation right without a magnetometer: the relative heading drift of two 6D filters.

Without a magnetometer each sensor's orientation filter has its own, unobservable heading, which
drifts with the part of the gyroscope bias error that points up. Flexion and lateral bending mostly
depend on the inclinations (observable through gravity); axial rotation — and, at deep flexion,
lateral bending, which the heading error leaks into — depends on the two filters' *relative*
heading, δ. After calibration δ = 0 by construction; it then drifts by the integral of the two
sensors' vertical bias errors (sway corrupts the rest-bias estimates, and every bend re-projects
horizontal bias errors onto the vertical), by degrees over minutes.

What makes δ observable again is the posture people return to between movements: quiet neutral
standing, where the trunk is, by the definition of the calibration, not rotated against the pelvis
(the assumption: axial rotation in relaxed neutral stance scatters by about `posture_sd_deg`, as
repeated standing postures do). So δ and its drift rate r are tracked by a two-state Kalman filter
(constant-rate model; e.g. Bar-Shalom, Li & Kirubarajan, *Estimation with Applications to Tracking
and Navigation*, 2001, ch. 6) whose measurements are the mean axial rotation of blocks of quiet,
neutral stance; every sample's upper-segment orientation is turned about the vertical by the
current estimate, δ̂ + r̂·(t − t_k). A block counts as neutral stance when both segments have been
quiet (angular speed below `quiet_gyr_rad_s`, which postural sway stays far below) for
`min_quiet_blocks` blocks and its flexion and lateral bend are near zero. A twist held still is
not neutral: measurements more than `gate_sigma` standard deviations from the prediction are
rejected (the standard deviation grows while no neutral stance is seen, so the filter recaptures
after long stretches of movement). The same idea — using known postures or joint constraints to
make heading observable — underlies magnetometer-free joint-angle methods such as Laidig, Lehmann,
Bégin & Seel (2019, "Magnetometer-free realtime inertial motion tracking by exploitation of
kinematic constraints in 2-DoF joints", IEEE EMBC) and the re-zeroing of Lumbo's calibration.

Streaming: blocks sit on a fixed grid of the time axis and a block's update takes effect from the
first sample of the next block, so the output does not depend on how the stream is cut into
batches. State: four numbers, a 2×2 covariance and one partial block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


_RAD = np.pi / 180.0


def _norm2(v: np.ndarray) -> np.ndarray:
    """Squared norms of the rows of an (N, 3) array (component-wise: faster than einsum)."""
    x, y, z = v.T
    out = x * x
    out += y * y
    out += z * z
    return out


@dataclass(frozen=True)
class HeadingParams:
    """Tuning of the relative-heading drift correction (see module docstring)."""

    enabled: bool = True
    block_s: float = 0.5
    """Length of the evaluation blocks (fixed grid on the time axis)."""
    quiet_gyr_rad_s: float = 0.1
    """Quiet: both segments' angular speed below this throughout the block (sway: ~0.02 rad/s)."""
    min_quiet_blocks: int = 2
    """Neutral stance needs this many consecutive quiet blocks (the evaluated one included)."""
    neutral_flexion_deg: float = 5.0
    """Neutral stance: |mean flexion| of the block below this."""
    neutral_lateral_deg: float = 4.0
    """Neutral stance: |mean lateral bend| of the block below this."""
    posture_sd_deg: float = 1.0
    """Scatter of axial rotation in relaxed neutral stance (measurement noise per block)."""
    heading_walk_deg_per_sqrt_s: float = 0.1
    """Random walk of δ (bias re-estimates of the filters, drift during bends)."""
    rate_walk_deg_s_per_sqrt_s: float = 0.002
    """Random walk of the drift rate r (gyroscope bias drift and filter bias updates)."""
    initial_rate_sd_deg_s: float = 0.05
    """Uncertainty of r right after calibration."""
    gate_sigma: float = 3.0
    """Measurements further than this many standard deviations from the prediction are rejected."""
    recapture_stances: int = 4
    """This many rejected neutral stances in a row, agreeing with each other ..."""
    recapture_agree_deg: float = 2.0
    """... within this, reset the estimate to them (lost track after a jump)."""


@dataclass(frozen=True)
class HeadingState:
    """δ̂ (rad) and r̂ (rad/s) valid from `time_s`, their covariance, and bookkeeping."""

    time_s: float
    delta: float
    rate: float
    cov: tuple[float, float, float]  # P00, P01, P11
    accepted: int = 0
    rejected: int = 0


class HeadingDriftCorrector:
    """Streaming relative-heading correction of the upper segment (see module docstring).

    The Kalman filter is only predicted when a measurement comes (the constant-rate model's
    prediction over any interval is exact), so between measurements the correction is one linear
    function of time, δ̂ + r̂·(t − t_k); which blocks are neutral stance is found for all blocks of a
    batch at once, and the filter steps through those only.
    """

    def __init__(self, params: HeadingParams = HeadingParams(),
                 start_s: float = -np.inf) -> None:
        self.params = params
        self.start_s = start_s
        """Frames before this time (the calibration's neutral window) are passed unchanged."""
        p = params
        self._q_d = (p.heading_walk_deg_per_sqrt_s * _RAD) ** 2
        self._q_r = (p.rate_walk_deg_s_per_sqrt_s * _RAD) ** 2
        self._r = (p.posture_sd_deg * _RAD) ** 2
        self._gate2 = p.gate_sigma ** 2
        self._quiet2 = p.quiet_gyr_rad_s ** 2
        self._t: float | None = None  # time the state refers to
        self._d = 0.0
        self._rate = 0.0
        self._p = [0.0, 0.0, (p.initial_rate_sd_deg_s * _RAD) ** 2]  # P00, P01, P11
        self._open: list[float] | None = None  # block index, Σq_rel (4), Σt, count, max speed²
        self._quiet_run = 0
        self._last_block: int | None = None
        self._stance: list[float] = []  # innovations of the current candidate stance
        self._rejected_stances: list[float] = []  # mean innovations since the last acceptance
        self.accepted = 0
        self.rejected = 0
        self.recaptured = 0

    @property
    def state(self) -> HeadingState:
        p = self._p
        return HeadingState(self._t if self._t is not None else float("nan"), self._d, self._rate,
                            (p[0], p[1], p[2]), self.accepted, self.rejected)

    def delta_deg(self, time_s: float) -> float:
        """Current estimate of the relative heading drift at `time_s` (degrees)."""
        t = self._t if self._t is not None else time_s
        return float(np.degrees(self._d + self._rate * (time_s - t)))

    def update(self, time_s: np.ndarray, q_lower: np.ndarray, q_upper: np.ndarray,
               w_lower: np.ndarray, w_upper: np.ndarray) -> np.ndarray:
        """Corrected upper-segment quaternions for these frames (segment-to-earth, both segments
        in the common, calibrated earth frame; angular velocities in rad/s)."""
        n = time_s.shape[0]
        if n == 0 or not self.params.enabled or time_s[-1] < self.start_s:
            return q_upper
        if time_s[0] < self.start_s:
            i = int(np.searchsorted(time_s, self.start_s, side="left"))
            out = q_upper.copy()
            out[i:] = self.update(time_s[i:], q_lower[i:], q_upper[i:], w_lower[i:], w_upper[i:])
            return out
        bs = self.params.block_s
        blocks = np.floor(time_s / bs).astype(np.int64)
        if self._t is None:
            self._t = float(blocks[0] * bs)
        # block features of the uncorrected relative orientation (the correction is a rotation
        # about the vertical, so near neutral it adds to axial rotation and nothing else)
        lw, lx, ly, lz = q_lower.T
        uw, ux, uy, uz = q_upper.T
        feats = np.empty((5, n))  # rows (contiguous): w, x, y, z of q_rel, time
        w, x, y, z = feats[0], feats[1], feats[2], feats[3]
        np.multiply(lw, uw, out=w)
        w += lx * ux + ly * uy + lz * uz
        sign = np.where(w < 0.0, -1.0, 1.0)
        w *= sign
        np.multiply(lw * ux - lx * uw - ly * uz + lz * uy, sign, out=x)
        np.multiply(lw * uy + lx * uz - ly * uw - lz * ux, sign, out=y)
        np.multiply(lw * uz - lx * uy + ly * ux - lz * uw, sign, out=z)
        feats[4] = time_s
        speed = np.maximum(_norm2(w_lower), _norm2(w_upper))
        starts = np.flatnonzero(np.concatenate(([True], blocks[1:] != blocks[:-1])))
        table = np.empty((8, starts.size))  # block, Σw, Σx, Σy, Σz, Σt, count, max speed²
        table[0] = blocks[starts]
        np.add.reduceat(feats, starts, axis=1, out=table[1:6])
        table[6, :-1] = np.diff(starts)
        table[6, -1] = n - starts[-1]
        np.maximum.reduceat(speed, starts, out=table[7])
        # the state in force from each change on: (from time, δ̂, r̂, t_k)
        changes = [(-np.inf, self._d, self._rate, self._t)]
        o = self._open
        if o is not None and o[0] == table[0, 0]:  # the block left open by the last call
            row = table[:, 0].tolist()
            table[:, 0] = [o[0], o[1] + row[1], o[2] + row[2], o[3] + row[3], o[4] + row[4],
                           o[5] + row[5], o[6] + row[6], max(o[7], row[7])]
            o = None
        # every block but the last is complete (the last is left open for the next call)
        done = table[:, :-1]
        if o is not None:
            done = np.concatenate((np.array(o)[:, None], done), axis=1)
        self._open = table[:, -1].tolist()
        if done.shape[1]:
            self._finish_blocks(done, changes)
        if len(changes) == 1:
            d = self._d + self._rate * (time_s - self._t)
        else:
            # k: the last change at or before each frame (as np.searchsorted(from_t, time_s,
            # side="right") - 1, by the few changes' places among the many frames)
            at = np.searchsorted(time_s, [c[0] for c in changes], side="left")
            k = np.repeat(np.arange(len(changes)), np.diff(at, append=n))
            d0, r, tk = (np.array([c[i] for c in changes]) for i in (1, 2, 3))
            d = d0[k] + r[k] * (time_s - tk[k])
        d *= -0.5
        c, s = np.cos(d), np.sin(d)
        # Rz(−δ) ⊗ q without building the (w, 0, 0, z) quaternions; (N, 4) with contiguous
        # components, as the next stage reads them
        out = np.empty((4, n))
        np.subtract(c * uw, s * uz, out=out[0])
        np.subtract(c * ux, s * uy, out=out[1])
        np.add(c * uy, s * ux, out=out[2])
        np.add(c * uz, s * uw, out=out[3])
        return out.T

    # -- complete blocks ---------------------------------------------------------------------
    def _finish_blocks(self, done: np.ndarray, changes: list[tuple[float, float, float, float]]
                       ) -> None:
        """Complete blocks (columns of `done`: block, Σw, Σx, Σy, Σz, Σt, count, max speed²), in
        order; appends the state from the end of each block that changed it to `changes`.

        Which blocks are neutral stance does not depend on the estimate, so that is found for
        all blocks at once; the filter then steps through those only (and through the first
        other block after a rejected stance, which ends it)."""
        p = self.params
        bs = p.block_s
        blk = done[0]
        m = blk.shape[0]
        quiet = done[7] < self._quiet2
        # consecutive quiet blocks so far (`_quiet_run` after each block)
        contig = np.empty(m, dtype=bool)
        contig[0] = self._last_block is not None and blk[0] == self._last_block + 1
        np.equal(blk[1:], blk[:-1] + 1, out=contig[1:])
        restart = ~(quiet & contig)  # the run is broken here (and starts anew if quiet)
        idx = np.arange(m)
        last = np.maximum.accumulate(np.where(restart, idx, -1))
        run = np.where(last >= 0, idx - last + quiet[np.maximum(last, 0)],
                       idx + 1 + self._quiet_run)
        run[~quiet] = 0
        self._quiet_run = int(run[-1])
        self._last_block = int(blk[-1])
        # the blocks' mean relative orientation, decomposed as in `decompose_yxz`
        cand = (run >= p.min_quiet_blocks) & (done[6] > 0)
        ci = np.flatnonzero(cand)
        if ci.size:
            w, x, y, z = done[1:5, ci]
            norm = np.sqrt(w * w + x * x + y * y + z * z)
            w, x, y, z = w / norm, x / norm, y / norm, z / norm
            flex = np.arctan2(2.0 * (x * z + w * y), 1.0 - 2.0 * (x * x + y * y))
            lat = np.arcsin(np.clip(-2.0 * (y * z - w * x), -1.0, 1.0))
            neutral = ((np.abs(flex) < p.neutral_flexion_deg * _RAD)
                       & (np.abs(lat) < p.neutral_lateral_deg * _RAD))
            ci = ci[neutral]
            rot = (-np.arctan2(2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z)))[neutral]
            t_mean = done[5, ci] / done[6, ci]
        nxt = 0  # blocks before this are done
        for i, r, tm in zip(ci.tolist(), rot.tolist() if ci.size else [],
                            t_mean.tolist() if ci.size else []):
            if i > nxt and self._stance and self._end_stance():
                changes.append(((blk[nxt] + 1) * bs, self._d, self._rate, self._t))
            assert self._t is not None
            applied = self._d + self._rate * (tm - self._t)  # mean in the block
            self._predict((blk[i] + 1) * bs)
            self._measure(-(r + applied))  # residual heading of the corrected upper
            changes.append(((blk[i] + 1) * bs, self._d, self._rate, self._t))
            nxt = i + 1
        if nxt < m and self._stance and self._end_stance():
            changes.append(((blk[nxt] + 1) * bs, self._d, self._rate, self._t))

    # -- the Kalman filter ------------------------------------------------------------------
    def _predict(self, t_new: float) -> None:
        assert self._t is not None
        dt = t_new - self._t
        if dt <= 0.0:
            return
        self._d += self._rate * dt
        p00, p01, p11 = self._p
        qd, qr = self._q_d, self._q_r
        self._p = [p00 + 2.0 * dt * p01 + dt * dt * p11 + qd * dt + qr * dt**3 / 3.0,
                   p01 + dt * p11 + qr * dt**2 / 2.0,
                   p11 + qr * dt]
        self._t = t_new

    def _measure(self, innovation: float) -> bool:
        p00, p01, p11 = self._p
        s = p00 + self._r
        if innovation * innovation > self._gate2 * s:
            self.rejected += 1
            self._stance.append(innovation)
            return True  # predicted: a new linear piece (same function, fresh reference time)
        k0, k1 = p00 / s, p01 / s
        self._d += k0 * innovation
        self._rate += k1 * innovation
        self._p = [p00 - k0 * p00, p01 - k0 * p01, p11 - k1 * p01]
        self.accepted += 1
        self._stance.clear()
        self._rejected_stances.clear()
        return True

    def _end_stance(self) -> bool:
        """A candidate stance ended: if the last few were all rejected but agree with each other,
        the estimate has lost track (a jump larger than the gate): take their mean."""
        if not self._stance:
            return False
        self._rejected_stances.append(sum(self._stance) / len(self._stance))
        self._stance.clear()
        p = self.params
        r = self._rejected_stances[-p.recapture_stances:]
        if len(r) == p.recapture_stances and max(r) - min(r) <= p.recapture_agree_deg * _RAD:
            self._d += sum(r) / len(r)
            self._p[0] += self._r
            self._rejected_stances.clear()
            self.recaptured += 1
            return True
        return False
