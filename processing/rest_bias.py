"""Gyroscope bias at rest, from both sensors at once: joint rest detection for trunk-worn IMUs.

VQF (Laidig & Seel 2023) estimates the gyroscope bias at rest from the low-passed gyroscope of one
sensor: "rest" is when the rate stays below 2 °/s for 1.5 s. On a standing person that goes wrong
twice: postural sway (about 1 °/s about horizontal axes, 0.1–0.5 Hz) is taken for bias, which
tilts the inclination by up to a degree; and the pelvis turning slowly during a twist (a quarter
of the trunk's rotation, often below 2 °/s) is taken for vertical bias, which the 6D heading then
integrates: 10–25° of relative heading error over ten minutes in the simulated sessions.

Here rest is decided for both sensors together, on blocks of `block_s` on a fixed time grid: both
sensors quiet (block standard deviation of the rate below `quiet_std_rad_s`, block mean within
`quiet_mean_rad_s` of the last rest estimate and its vertical component within
`quiet_vertical_rad_s` of it) for `min_quiet_blocks` blocks in a row, so that a slowly turning
pelvis under a faster moving trunk, or the slow turnaround of a twist, is not rest. The measurement is the mean rate of
the interior blocks of the rest (quiet on both sides), and only its component along gravity is used
(the accelerometer's mean gives the direction): sway has none — but its horizontal rate, up to
3 °/s in a block for a person who sways a lot, would spoil the horizontal components, which are
left to VQF's motion bias estimation, seeing them through the accelerometer
(`restBiasEstEnabled` is turned off). The first rest's vertical rate is taken off the gyroscope
before VQF; later ones correct VQF's estimate.

Streaming: a block is decided once both sensors have a sample after it, and its result applies
from the end of the block on; the caller (`processing.sensor_pair`) holds samples back until the
blocks before them are decided, so the result does not depend on how the streams were cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensors.samples import SENSOR_ROLES


@dataclass(frozen=True)
class RestBiasParams:
    """Joint rest detection and the bias update it drives."""

    enabled: bool = True
    block_s: float = 0.5
    quiet_std_rad_s: float = 0.05
    """Quiet block: standard deviation of the rate vector within the block below this (≈ 3 °/s)."""
    quiet_mean_rad_s: float = 0.05
    """Quiet block: mean rate within this of the last rest estimate (once there is one)."""
    quiet_vertical_rad_s: float = 0.005
    """... and, in the posture of the last rest (up within `same_posture_deg` of it), its vertical
    component within this (0.3 °/s): sway has no vertical part, slow turning (a twist's
    turnaround, turning on the spot) has. (The horizontal part of the rest estimate carries sway,
    so in other postures its projection would not be small.)"""
    same_posture_deg: float = 5.0
    min_quiet_blocks: int = 3
    """Rest: this many quiet blocks in a row on both sensors."""
    first_span_blocks: int = 5
    """The first rest's bias (all three components) is measured over this many interior blocks
    (2 s between the first's and the last's centre)."""
    first_sigma_deg_s: float = 0.1
    """Uncertainty given to VQF's bias estimate after the first rest sets it."""
    blocks_per_event: int = 2
    """Interior rest blocks pooled into one bias update (updates at most every 1 s)."""
    vertical_gain: float = 0.5
    """Share of the vertical disagreement corrected per update (an exponential average over
    about 1/gain updates)."""
    vqf_bias_clip_deg_s: float = 5.0
    """VQF's `biasClip` (2 °/s by default): VQF now estimates the horizontal bias alone, and
    consumer gyroscopes can be off by more than 2 °/s."""
    reference_gain: float = 0.3
    """Update gain of the rest estimate the quiet test compares block means with."""
    max_wait_s: float = 60.0
    """A sensor silent this long (in the other's time) has its blocks decided as not at rest."""


@dataclass(frozen=True)
class RestEvent:
    """Apply to both filters before their first sample at or after `time_s`."""

    time_s: float
    gyr_mean: dict[str, np.ndarray]
    """Mean raw rate (rad/s, sensor frame) of the measured block, per sensor."""
    up: dict[str, np.ndarray]
    """Unit gravity-reaction direction (sensor frame) in that block, per sensor."""
    first: bool
    bias: dict[str, np.ndarray] | None = None
    """The first rest only: the whole bias (rad/s), its horizontal part corrected for the sway
    rotation seen by the accelerometer."""


# a block's sums as plain floats: n, Σgx, Σgy, Σgz, Σ|g|², Σax, Σay, Σaz, and n, Σgx, Σgy, Σgz
# of its first half (scalar Python is faster than numpy on 3-vectors, and there are two blocks
# per second and sensor)
_Block = list


def _first_bias(span: list[_Block], block_s: float) -> np.ndarray:
    """Bias from interior rest blocks: the mean rate between the first and the last block's
    centres, minus the rotation the accelerometer saw in that time. A body turning by a small θ
    turns gravity in its frame by −θ: â₂ = â₁ − θ × â₁, so θ⊥ = −â₁ × â₂ and
    b = mean rate + (â₁ × â₂) / T (postural sway, up to a few °/s, cancels; the vertical part,
    which gravity cannot see, is the mean rate: nothing turns about the vertical at rest)."""
    f, last = span[0], span[-1]
    n = (f[0] - f[8]) + last[8]
    g = np.array(f[1:4]) - np.array(f[9:12]) + np.array(last[9:12])
    for b in span[1:-1]:
        n += b[0]
        g += np.array(b[1:4])
    a1 = np.array(f[5:8])
    a2 = np.array(last[5:8])
    a1 /= np.linalg.norm(a1)
    a2 /= np.linalg.norm(a2)
    return g / n + np.cross(a1, a2) / ((len(span) - 1) * block_s)


def _norm2(v: np.ndarray) -> np.ndarray:
    """Squared norms of the rows of an (N, 3) array (component-wise: faster than einsum)."""
    x, y, z = v.T
    out = x * x
    out += y * y
    out += z * z
    return out


class JointRestDetector:
    """Block features of both sensors' raw samples and the rest decisions (module docstring)."""

    def __init__(self, params: RestBiasParams = RestBiasParams()) -> None:
        self.params = params
        # per sensor, the sums of its blocks from block `_base` on (rows of _Block), all zero
        # where it sent nothing; its block `_open` (that of its latest sample) is incomplete
        self._tab: dict[str, np.ndarray] = {r: np.zeros((0, 12)) for r in SENSOR_ROLES}
        self._base: dict[str, int] = {}
        self._open: dict[str, int] = {}
        self._last_t: dict[str, float] = {}
        self._next: int | None = None  # first undecided block
        self._run = 0
        self._prev: tuple[np.ndarray, np.ndarray] | None = None  # previous block, if quiet
        self._acc: np.ndarray | None = None  # Σ of interior rest blocks not yet reported (24)
        self._span: list[tuple[np.ndarray, np.ndarray]] = []  # interior blocks, first rest
        self._ref: dict[str, list[float]] = {}
        self._ref_up: dict[str, list[float]] = {}
        self._cos_posture = math.cos(math.radians(params.same_posture_deg))
        self._std2 = params.quiet_std_rad_s ** 2
        self._mean2 = params.quiet_mean_rad_s ** 2
        self._decided_any = False
        self.events = 0

    @property
    def decided_until_s(self) -> float | None:
        """Samples before this time may be processed (the blocks before theirs are decided)."""
        if self._next is None:
            return None
        return (self._next + 1) * self.params.block_s

    def add(self, role: str, time_s: np.ndarray, gyr: np.ndarray, acc: np.ndarray) -> None:
        """Raw samples of one sensor (time order); blocks before the last sample complete."""
        if time_s.shape[0] == 0:
            return
        bs = self.params.block_s
        half = np.floor(time_s / (0.5 * bs)).astype(np.int64)
        idx = half >> 1
        first = (half & 1) == 0
        starts = np.flatnonzero(np.concatenate(([True], idx[1:] != idx[:-1])))
        counts = np.diff(np.append(starts, idx.shape[0]))
        sums = np.column_stack((counts, np.add.reduceat(gyr, starts, axis=0),
                                np.add.reduceat(_norm2(gyr), starts),
                                np.add.reduceat(acc, starts, axis=0),
                                np.add.reduceat(first.astype(float), starts),
                                np.add.reduceat(gyr * first[:, None], starts, axis=0)))
        keys = idx[starts]
        base = self._base.setdefault(role, int(keys[0]))
        if self._decided_any:  # blocks of decided times come too late: dropped
            base = self._base[role] = max(base, self._next)
        if keys[0] < base:
            keep = keys >= base
            keys, sums = keys[keep], sums[keep]
        if keys.size:
            tab = self._tab[role]
            size = int(keys[-1]) - base + 1
            if size > tab.shape[0]:
                grown = np.zeros((size, 12))
                grown[:tab.shape[0]] = tab
                self._tab[role] = tab = grown
            tab[keys - base] += sums
        self._open[role] = int(idx[-1])
        self._last_t[role] = float(time_s[-1])
        k0 = int(idx[0])
        if self._next is None or (not self._decided_any and k0 < self._next):
            self._next = k0

    def _blocks(self, role: str, k0: int, k1: int) -> np.ndarray:
        """Sums of the role's complete blocks k0 ≤ k < k1, rows of zeros where none."""
        out = np.zeros((k1 - k0, 12))
        base = self._base.get(role)
        if base is None:
            return out
        tab = self._tab[role]
        a, b = max(k0, base), min(k1, base + tab.shape[0], self._open[role])
        if b > a:
            out[a - k0:b - k0] = tab[a - base:b - base]
        return out

    def decide(self) -> list[RestEvent]:
        """Decide every block both sensors have completed; the rest events that result."""
        out: list[RestEvent] = []
        if self._next is None:
            return out
        p = self.params
        bs = p.block_s
        lt = self._last_t
        if len(lt) == len(SENSOR_ROLES):
            k_end = int(np.floor(min(lt.values()) / bs))  # blocks before this are complete
        else:
            k_end = self._next
        lead = max(lt.values(), default=-np.inf)
        # a silent sensor: its blocks are decided (as not at rest) once the other is far ahead
        k_end = max(k_end, int(np.floor((lead - p.max_wait_s) / bs)))
        k0 = self._next
        if k_end <= k0:
            return out
        up, lo = self._blocks("upper", k0, k_end), self._blocks("lower", k0, k_end)
        # the part of the quiet test that does not depend on the state, for all blocks at once
        # (the same arithmetic as `_quiet`): enough samples, small spread of the rate
        cand = np.ones(k_end - k0, dtype=bool)
        feats = []
        for b in (up, lo):
            n = b[:, 0]
            cand &= n >= 3
            f = np.empty((k_end - k0, 7))  # mean rate, Σacc, |Σacc|: for the rest of the test
            with np.errstate(divide="ignore", invalid="ignore"):
                np.divide(b[:, 1:4], n[:, None], out=f[:, :3])
                mx, my, mz = f[:, :3].T
                cand &= ~(b[:, 4] / n - (mx * mx + my * my + mz * mz) > self._std2)
            f[:, 3:6] = b[:, 5:8]
            ax, ay, az = f[:, 3:6].T
            np.sqrt(ax * ax + ay * ay + az * az, out=f[:, 6])
            feats.append(f)
        ci = np.flatnonzero(cand)
        f_u, f_l = feats[0][ci].tolist(), feats[1][ci].tolist()
        done = 0  # blocks before this (relative to k0) are decided
        for j, fu, fl in zip(ci.tolist(), f_u, f_l):
            if j > done:  # blocks that are not quiet in between
                self._not_quiet()
            event = self._decide_block(k0 + j, up[j], lo[j], fu, fl)
            if event is not None:
                out.append(event)
            done = j + 1
        if done < k_end - k0:
            self._not_quiet()
        self._decided_any = True
        self._next = k_end
        for r in SENSOR_ROLES:  # forget the decided blocks
            base = self._base.get(r)
            if base is not None and base < k_end:
                self._tab[r] = self._tab[r][k_end - base:]
                self._base[r] = k_end
        return out

    def _quiet(self, role: str, f: list[float]) -> bool:
        """The rest of the quiet test for a block that has passed its first part (`decide`),
        from its mean rate, Σacc and |Σacc| (`f`): the mean rate near the last rest's, and its
        vertical part even nearer."""
        ref = self._ref.get(role)
        if ref is None:
            return True
        mx, my, mz, ax, ay, az, na = f
        dx, dy, dz = mx - ref[0], my - ref[1], mz - ref[2]
        if dx * dx + dy * dy + dz * dz >= self._mean2:
            return False
        ux, uy, uz = self._ref_up[role]
        if (ax * ux + ay * uy + az * uz) / na < self._cos_posture:
            return True
        return abs(dx * ax + dy * ay + dz * az) / na < self.params.quiet_vertical_rad_s

    def _not_quiet(self) -> None:
        """A block that is not quiet: the rest ends (and its sums will not be needed)."""
        self._prev = None
        if self._run:
            self._run = 0
            self._acc = None
            self._span = []

    def _decide_block(self, k: int, upper: np.ndarray, lower: np.ndarray, f_upper: list[float],
                      f_lower: list[float]) -> RestEvent | None:
        """Block k, whose sums (a row of 12 each) have passed the first part of the quiet
        test."""
        p = self.params
        quiet = self._quiet("upper", f_upper) and self._quiet("lower", f_lower)
        prev, self._prev = self._prev, (upper, lower)
        if not quiet:
            if self._run:
                self._run = 0
                self._acc = None
                self._span = []
            return None
        self._run += 1
        if self._run < p.min_quiet_blocks or prev is None:
            self._acc = None
            self._span = []
            return None
        if not self._ref:  # the first rest: the whole bias, over a longer span
            self._span.append(prev)
            if len(self._span) < p.first_span_blocks:
                return None
            bias = {r: _first_bias([b[i].tolist() for b in self._span], p.block_s)
                    for i, r in enumerate(SENSOR_ROLES)}
            last = self._span[-1]
            up = {}
            for i, r in enumerate(SENSOR_ROLES):
                a = np.array(last[i][5:8])
                up[r] = a / np.linalg.norm(a)
                self._ref[r] = bias[r].tolist()
                self._ref_up[r] = up[r].tolist()
            self._span = []
            self.events += 1
            return RestEvent((k + 1) * p.block_s, bias, up, True, bias)
        # interior blocks of the rest (quiet on both sides) accumulate into one measurement
        both = np.concatenate(prev)
        self._acc = both if self._acc is None else self._acc + both
        if (self._run - p.min_quiet_blocks) % p.blocks_per_event:
            return None
        acc = self._acc.tolist()
        self._acc = None
        gm: dict[str, np.ndarray] = {}
        up: dict[str, np.ndarray] = {}
        g = p.reference_gain
        for r, b in (("upper", acc[:12]), ("lower", acc[12:])):
            n = b[0]
            m = [b[1] / n, b[2] / n, b[3] / n]
            ax, ay, az = b[5], b[6], b[7]
            na = math.sqrt(ax * ax + ay * ay + az * az)  # as np.linalg.norm, in plain floats
            u = [ax / na, ay / na, az / na]
            gm[r] = np.array(m)
            up[r] = np.array(u)
            ref = self._ref[r]
            self._ref[r] = [ref[i] + g * (m[i] - ref[i]) for i in range(3)]
            self._ref_up[r] = u
        self.events += 1
        return RestEvent((k + 1) * p.block_s, gm, up, False)
