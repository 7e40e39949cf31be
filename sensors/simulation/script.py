"""Movement scripts: what the simulated patient does, as a timeline of neutral holds and bends.

A script is a sequence of steps. `Stand` holds neutral; `Bend` is one out-and-back excursion of
the trunk from neutral to a peak posture (any mix of flexion/extension, lateral bend and axial
rotation), a hold at the peak, and back to neutral; `Repeat` is n bends with rest between them.
Out and back follow the minimum-jerk profile s(τ) = 10τ³ − 15τ⁴ + 6τ⁵ (Flash & Hogan 1985,
J Neurosci 5(7):1688), which starts and ends with zero velocity and acceleration, so every step
joins the next smoothly and the body's accelerations stay continuous.

Amplitudes are trunk angles (the upper segment at T12 relative to neutral standing, pelvic and
lumbar parts together); how they split between pelvis and lumbar spine is the body model's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np

Direction = Literal[
    "flexion", "extension", "lateral_right", "lateral_left", "rotation_right", "rotation_left"
]
DIRECTIONS: tuple[Direction, ...] = (
    "flexion",
    "extension",
    "lateral_right",
    "lateral_left",
    "rotation_right",
    "rotation_left",
)
# (axis index into (flexion, lateral, rotation), sign) for each direction.
_DIRECTION_AXIS: dict[str, tuple[int, float]] = {
    "flexion": (0, 1.0),
    "extension": (0, -1.0),
    "lateral_right": (1, 1.0),
    "lateral_left": (1, -1.0),
    "rotation_right": (2, 1.0),
    "rotation_left": (2, -1.0),
}


def min_jerk(tau: np.ndarray | float) -> np.ndarray:
    """Minimum-jerk position profile 10τ³ − 15τ⁴ + 6τ⁵ on τ ∈ [0, 1] (Flash & Hogan 1985)."""
    t = np.clip(np.asarray(tau, dtype=float), 0.0, 1.0)
    return t**3 * (10.0 + t * (-15.0 + 6.0 * t))


@dataclass(frozen=True, slots=True)
class Stand:
    """Quiet neutral standing (also used as a pause or rest)."""

    duration_s: float
    label: str = "stand"


@dataclass(frozen=True, slots=True)
class Bend:
    """One out-and-back trunk excursion from neutral to a peak posture and back.

    Trunk peak components: `flexion_deg` > 0 forward (< 0 extension), `lateral_deg` > 0 to the
    right, `rotation_deg` > 0 shoulders turning right. Several non-zero components make a combined
    movement; all follow the same time profile.
    """

    flexion_deg: float = 0.0
    lateral_deg: float = 0.0
    rotation_deg: float = 0.0
    out_s: float = 1.5
    hold_s: float = 0.5
    back_s: float = 1.5
    label: str = "exercise"

    def __post_init__(self) -> None:
        if self.out_s <= 0 or self.back_s <= 0 or self.hold_s < 0:
            raise ValueError("out_s and back_s must be > 0 and hold_s >= 0")

    @property
    def duration_s(self) -> float:
        return self.out_s + self.hold_s + self.back_s

    @property
    def peak_deg(self) -> np.ndarray:
        return np.array([self.flexion_deg, self.lateral_deg, self.rotation_deg])

    @property
    def direction(self) -> Direction:
        """The dominant direction (largest component)."""
        peak = self.peak_deg
        axis = int(np.argmax(np.abs(peak)))
        positive = peak[axis] >= 0
        return (
            ("flexion", "extension"),
            ("lateral_right", "lateral_left"),
            ("rotation_right", "rotation_left"),
        )[axis][0 if positive else 1]

    @property
    def amplitude_deg(self) -> float:
        """Size of the dominant component (positive)."""
        return float(np.max(np.abs(self.peak_deg)))


def bend(
    direction: Direction,
    amplitude_deg: float,
    *,
    out_s: float = 1.5,
    hold_s: float = 0.5,
    back_s: float = 1.5,
    label: str = "exercise",
) -> Bend:
    """A single-direction bend of `amplitude_deg` (positive) trunk angle."""
    if direction not in _DIRECTION_AXIS:
        raise ValueError(f"unknown direction {direction!r}; expected one of {DIRECTIONS}")
    axis, sign = _DIRECTION_AXIS[direction]
    peak = [0.0, 0.0, 0.0]
    peak[axis] = sign * abs(amplitude_deg)
    return Bend(*peak, out_s=out_s, hold_s=hold_s, back_s=back_s, label=label)


@dataclass(frozen=True, slots=True)
class Repeat:
    """`n` repetitions of `step` with `rest_s` of neutral standing between them (not after)."""

    step: Bend
    n: int
    rest_s: float = 1.5

    def expand(self) -> list[Step]:
        out: list[Step] = []
        for i in range(self.n):
            if i:
                out.append(Stand(self.rest_s, label="rest"))
            out.append(self.step)
        return out


Step = Union[Stand, Bend, Repeat]


@dataclass(frozen=True, slots=True)
class Repetition:
    """One out-and-back bend as the script performs it (times in script seconds)."""

    direction: Direction
    start_s: float  # leaves neutral
    peak_s: float  # reaches the peak posture
    hold_end_s: float  # starts returning
    end_s: float  # back at neutral
    amplitude_deg: float  # trunk amplitude of the dominant component
    label: str


@dataclass(frozen=True, slots=True)
class ScriptState:
    """Where the script is at each time: progress s ∈ [0, 1] of the current bend and its peak."""

    progress: np.ndarray  # (N,) 0 at neutral, 1 at the peak
    peak_deg: np.ndarray  # (N, 3) trunk peak (flexion, lateral, rotation) of the current bend

    @property
    def trunk_deg(self) -> np.ndarray:
        return self.peak_deg * self.progress[:, None]


def _flatten(steps: Iterable[Step]) -> list[Stand | Bend]:
    flat: list[Stand | Bend] = []
    for step in steps:
        if isinstance(step, Repeat):
            flat.extend(_flatten(step.expand()))
        elif isinstance(step, (Stand, Bend)):
            flat.append(step)
        else:
            raise TypeError(f"not a script step: {step!r}")
    return flat


class MovementScript:
    """An immutable, compiled timeline of steps, evaluated on time arrays.

    `loop_start_s` marks where an endless (looping) replay restarts after the first pass,
    typically just after the calibration block; it must fall on neutral standing.
    """

    def __init__(self, steps: Sequence[Step], *, loop_start_s: float = 0.0) -> None:
        self.steps: tuple[Stand | Bend, ...] = tuple(_flatten(steps))
        starts, bends, t = [], [], 0.0
        for step in self.steps:
            if isinstance(step, Bend):
                starts.append(t)
                bends.append(step)
            t += step.duration_s
        self.duration_s: float = t
        self._bends: tuple[Bend, ...] = tuple(bends)
        self._start = np.array(starts, dtype=float)
        self._out = np.array([b.out_s for b in bends], dtype=float)
        self._hold = np.array([b.hold_s for b in bends], dtype=float)
        self._back = np.array([b.back_s for b in bends], dtype=float)
        self._peak = np.array([b.peak_deg for b in bends], dtype=float).reshape(-1, 3)
        if not 0.0 <= loop_start_s < self.duration_s and self.duration_s > 0:
            raise ValueError("loop_start_s must lie inside the script")
        if self._in_bend(loop_start_s):
            raise ValueError("loop_start_s must fall on neutral standing, not inside a bend")
        self.loop_start_s = float(loop_start_s)

    def _in_bend(self, t: float) -> bool:
        ends = self._start + self._out + self._hold + self._back
        return bool(np.any((self._start < t) & (t < ends)))

    def script_time(self, time_s: np.ndarray, loop: bool = False) -> np.ndarray:
        """Map simulated time to script time; with `loop`, repeat [loop_start_s, duration_s)."""
        t = np.asarray(time_s, dtype=float)
        if not loop:
            return t
        ls, period = self.loop_start_s, self.duration_s - self.loop_start_s
        return np.where(t >= ls, ls + np.mod(t - ls, period), t)

    def state(self, time_s: np.ndarray, loop: bool = False) -> ScriptState:
        """Progress and peak of the bend under way at each time (neutral outside bends)."""
        t = np.atleast_1d(self.script_time(time_s, loop))
        progress = np.zeros(t.shape)
        peak = np.zeros(t.shape + (3,))
        if self._start.size == 0:
            return ScriptState(progress, peak)
        i = np.searchsorted(self._start, t, side="right") - 1
        valid = i >= 0
        ii = np.where(valid, i, 0)
        u = t - self._start[ii]
        out, hold, back = self._out[ii], self._hold[ii], self._back[ii]
        rising = min_jerk(u / out)
        falling = 1.0 - min_jerk((u - out - hold) / back)
        s = np.where(u < out, rising, np.where(u < out + hold, 1.0, falling))
        s = np.where(valid & (u < out + hold + back), s, 0.0)
        active = s > 0.0
        progress[:] = s
        peak[active] = self._peak[ii[active]]
        return ScriptState(progress, peak)

    def repetitions(self, label: str | None = None) -> list[Repetition]:
        """Every out-and-back bend of one pass, optionally only those with `label`."""
        reps = []
        for start, b in zip(self._start, self._bends):
            if label is not None and b.label != label:
                continue
            reps.append(
                Repetition(
                    direction=b.direction,
                    start_s=float(start),
                    peak_s=float(start + b.out_s),
                    hold_end_s=float(start + b.out_s + b.hold_s),
                    end_s=float(start + b.duration_s),
                    amplitude_deg=b.amplitude_deg,
                    label=b.label,
                )
            )
        return reps

    def repetitions_until(
        self, until_s: float, *, loop: bool = False, label: str | None = None
    ) -> list[Repetition]:
        """Repetitions that start before `until_s`, unrolling loop passes when `loop` is set."""
        first = [r for r in self.repetitions(label) if r.start_s < until_s]
        if not loop or until_s <= self.duration_s:
            return first
        period = self.duration_s - self.loop_start_s
        looped = [r for r in self.repetitions(label) if r.start_s >= self.loop_start_s]
        out, k = list(first), 1
        while looped and self.duration_s + (k - 1) * period < until_s:
            shift = k * period
            for r in looped:
                if r.start_s + shift >= until_s:
                    break
                out.append(
                    Repetition(
                        r.direction,
                        r.start_s + shift,
                        r.peak_s + shift,
                        r.hold_end_s + shift,
                        r.end_s + shift,
                        r.amplitude_deg,
                        r.label,
                    )
                )
            k += 1
        return out

    def __repr__(self) -> str:
        return (
            f"MovementScript({len(self.steps)} steps, {len(self._bends)} bends, "
            f"{self.duration_s:.1f} s)"
        )
