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
        self._open: dict[str, tuple[int, _Block] | None] = {r: None for r in SENSOR_ROLES}
        self._done: dict[str, dict[int, _Block]] = {r: {} for r in SENSOR_ROLES}
        self._last_t: dict[str, float] = {}
        self._next: int | None = None  # first undecided block
        self._run = 0
        self._prev: tuple[_Block | None, _Block | None] | None = None  # previous block
        self._acc: list[float] | None = None  # interior rest blocks not yet reported
        self._span: list[tuple[_Block, _Block]] = []  # interior blocks of the first rest
        self._ref: dict[str, list[float]] = {}
        self._ref_up: dict[str, list[float]] = {}
        self._cos_posture = math.cos(math.radians(params.same_posture_deg))
        self._std2 = params.quiet_std_rad_s ** 2
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
                                np.add.reduceat(gyr * first[:, None], starts,
                                                axis=0))).tolist()
        done = self._done[role]
        cur = self._open[role]
        for k, blk in zip(idx[starts].tolist(), sums):
            if cur is not None and cur[0] == k:
                blk = [a + b for a, b in zip(cur[1], blk)]
            elif cur is not None and (self._next is None or cur[0] >= self._next):
                done[cur[0]] = cur[1]  # complete (late blocks of decided times are dropped)
            cur = (k, blk)
        self._open[role] = cur
        self._last_t[role] = float(time_s[-1])
        k0 = int(idx[0])
        if self._next is None or (not self._decided_any and k0 < self._next):
            self._next = k0

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
        done_u, done_l = self._done["upper"], self._done["lower"]
        for k in range(self._next, k_end):
            event = self._decide_block(k, done_u.pop(k, None), done_l.pop(k, None))
            if event is not None:
                out.append(event)
        if k_end > self._next:
            self._decided_any = True
            self._next = k_end
        return out

    def _quiet(self, role: str, b: _Block | None) -> bool:
        if b is None or b[0] < 3:
            return False
        p = self.params
        n = b[0]
        mx, my, mz = b[1] / n, b[2] / n, b[3] / n
        if b[4] / n - (mx * mx + my * my + mz * mz) > self._std2:
            return False
        ref = self._ref.get(role)
        if ref is None:
            return True
        dx, dy, dz = mx - ref[0], my - ref[1], mz - ref[2]
        if dx * dx + dy * dy + dz * dz >= p.quiet_mean_rad_s ** 2:
            return False
        ax, ay, az = b[5], b[6], b[7]
        na = math.sqrt(ax * ax + ay * ay + az * az)
        ux, uy, uz = self._ref_up[role]
        if (ax * ux + ay * uy + az * uz) / na < self._cos_posture:
            return True
        return abs(dx * ax + dy * ay + dz * az) / na < p.quiet_vertical_rad_s

    def _decide_block(self, k: int, upper: _Block | None,
                      lower: _Block | None) -> RestEvent | None:
        p = self.params
        quiet = self._quiet("upper", upper) and self._quiet("lower", lower)
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
            bias = {r: _first_bias([b[i] for b in self._span], p.block_s)
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
        acc = self._acc
        self._acc = acc = list(prev[0]) + list(prev[1]) if acc is None else \
            [a + b for a, b in zip(acc, prev[0] + prev[1])]
        if (self._run - p.min_quiet_blocks) % p.blocks_per_event:
            return None
        self._acc = None
        gm: dict[str, np.ndarray] = {}
        up: dict[str, np.ndarray] = {}
        g = p.reference_gain
        for r, b in (("upper", acc[:12]), ("lower", acc[12:])):
            n = b[0]
            m = [b[1] / n, b[2] / n, b[3] / n]
            a = np.array(b[5:8])
            u = a / np.linalg.norm(a)
            gm[r] = np.array(m)
            up[r] = u
            ref = self._ref[r]
            self._ref[r] = [ref[i] + g * (m[i] - ref[i]) for i in range(3)]
            self._ref_up[r] = u.tolist()
        self.events += 1
        return RestEvent((k + 1) * p.block_s, gm, up, False)
