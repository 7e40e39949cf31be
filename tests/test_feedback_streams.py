"""Scripted angle streams for the feedback tests: min-jerk movements, holds, gaps.

Helpers (imported by the other feedback tests) plus tests of the helpers themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from processing.pipeline import AngleBatch

CHANNELS = ("flexion_deg", "lateral_bend_deg", "axial_rotation_deg", "pelvic_tilt_deg")


def min_jerk(u: np.ndarray) -> np.ndarray:
    """Flash & Hogan 1985 minimum-jerk profile, 0 -> 1 for u in [0, 1]."""
    u = np.clip(u, 0.0, 1.0)
    return 10 * u**3 - 15 * u**4 + 6 * u**5


@dataclass
class Script:
    """Builds a stream piece by piece; upper_inclination = pelvic_tilt + flexion (sagittal)."""

    rate_hz: float = 50.0
    t0: float = 0.0
    pose: dict[str, float] = field(default_factory=lambda: {c: 0.0 for c in CHANNELS})
    parts: list[tuple[np.ndarray, dict[str, np.ndarray]]] = field(default_factory=list)
    gaps: list[tuple[float, float]] = field(default_factory=list)

    @property
    def end_s(self) -> float:
        return self.t0 + sum(len(p[0]) for p in self.parts) / self.rate_hz

    def _times(self, duration_s: float) -> np.ndarray:
        n = max(1, int(round(duration_s * self.rate_hz)))
        start = sum(len(p[0]) for p in self.parts)
        return self.t0 + (start + 1 + np.arange(n)) / self.rate_hz

    def still(self, duration_s: float) -> Script:
        t = self._times(duration_s)
        self.parts.append((t, {c: np.full(len(t), self.pose[c]) for c in CHANNELS}))
        return self

    def move(self, duration_s: float, **to: float) -> Script:
        t = self._times(duration_s)
        u = min_jerk((t - t[0] + 1 / self.rate_hz) / duration_s)
        vals = {}
        for c in CHANNELS:
            a, b = self.pose[c], to.get(c, self.pose[c])
            vals[c] = a + (b - a) * u
            self.pose[c] = b
        self.parts.append((t, vals))
        return self

    def rep(self, out_s: float = 1.5, hold_s: float = 1.5, back_s: float = 1.5,
            rest_s: float = 1.5, **to: float) -> Script:
        """Out to `to`, hold, back to where it started, rest."""
        start = {c: self.pose[c] for c in to}
        return self.move(out_s, **to).still(hold_s).move(back_s, **start).still(rest_s)

    def gap(self, t0: float, t1: float) -> Script:
        self.gaps.append((t0, t1))
        return self

    def batch(self) -> AngleBatch:
        t = np.concatenate([p[0] for p in self.parts])
        ch = {c: np.concatenate([p[1][c] for p in self.parts]) for c in CHANNELS}
        for g0, g1 in self.gaps:
            sel = (t >= g0) & (t <= g1)
            for c in CHANNELS:
                ch[c][sel] = np.nan
        upper = ch["pelvic_tilt_deg"] + ch["flexion_deg"]
        vel = np.gradient(ch["flexion_deg"], t) if len(t) > 1 else np.zeros(len(t))
        zeros = np.zeros(len(t))
        return AngleBatch(
            time_s=t, flexion_deg=ch["flexion_deg"], lateral_bend_deg=ch["lateral_bend_deg"],
            axial_rotation_deg=ch["axial_rotation_deg"], pelvic_tilt_deg=ch["pelvic_tilt_deg"],
            upper_inclination_deg=upper, flexion_velocity_deg_s=vel,
            lateral_bend_velocity_deg_s=zeros, axial_rotation_velocity_deg_s=zeros,
            lumbar_angular_speed_deg_s=np.abs(vel), gap_before=np.zeros(len(t), dtype=bool))


def chunks(batch: AngleBatch, sizes: list[int]) -> list[AngleBatch]:
    """Cut a batch into consecutive pieces of the given sizes (cycled), covering all of it."""
    out, i, k = [], 0, 0
    n = len(batch)
    while i < n:
        size = max(1, sizes[k % len(sizes)])
        out.append(batch.take(slice(i, i + size)))
        i += size
        k += 1
    return out


def test_script_builds_contiguous_increasing_times() -> None:
    b = Script().still(1.0).rep(flexion_deg=30).batch()
    assert np.all(np.diff(b.time_s) > 0)
    assert abs(b.flexion_deg.max() - 30.0) < 1e-9
    assert abs(b.flexion_deg[-1]) < 1e-9
    assert np.allclose(b.upper_inclination_deg, b.flexion_deg + b.pelvic_tilt_deg)


def test_min_jerk_ends_at_rest() -> None:
    u = np.linspace(0, 1, 101)
    x = min_jerk(u)
    assert x[0] == 0 and x[-1] == 1 and np.all(np.diff(x) >= 0)
