"""Exercise definitions as data: graded levels, and the target a level gives one patient.

Why data: therapists will edit these (a JSON or TOML file later). Every field is a plain number
with its unit in its name, `from_dict`/`as_dict` map 1:1 onto such a file, and validation raises
`ExerciseError` with a message a therapist can act on.

Grading follows docs/clinical.md ("Grading"): within a task change one thing at a time, amplitude
(a share of the person's own comfortable range measured at baseline), precision (tolerance band),
tempo, hold time, repetitions. `ExerciseDefinition` enforces that each level differs from the one
below it in exactly one of these, and never gets easier in amplitude, precision, hold or reps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any


class ExerciseError(ValueError):
    """A bad exercise definition, level or target; the message names the field and the limit."""


# A comfortable lumbar flexion range outside this is more likely a failed calibration than a
# person: instrument means run 24-75 deg, about 46 deg in chronic LBP (clinical.md, Laird 2019).
COMFORTABLE_FLEXION_MIN_DEG = 10.0
COMFORTABLE_FLEXION_MAX_DEG = 100.0
TARGET_MAX_DEG = 100.0
# Skin-mounted IMUs reach 0.7-1.8 deg RMSE in the sagittal plane (Mjosund 2017); a narrower band
# would score sensor noise. Wider than 15 deg stops being a precision task.
TOLERANCE_MIN_DEG = 2.0
TOLERANCE_MAX_DEG = 15.0
HOLD_MAX_S = 30.0
REPS_PER_SET_MAX = 50
TIME_TO_TARGET_MAX_S = 30.0
# A repetition starts when flexion rises this far above the resting baseline (see
# `start_threshold_deg`): far enough that standing sway (a few degrees) and sensor noise do not.
START_THRESHOLD_MIN_DEG = 5.0
START_THRESHOLD_SHARE = 0.25


# Smallest floor an exercise may ask for: small-range movements (pelvic tilt, lumbar rotation) need
# a lower floor than 5 deg, but below 2 deg sensor noise (0.7-1.8 deg RMSE, Mjosund 2017) and
# sitting sway would start repetitions.
START_THRESHOLD_FLOOR_MIN_DEG = 2.0


def start_threshold_deg(target_deg: float, floor_deg: float = START_THRESHOLD_MIN_DEG) -> float:
    """Angle above the resting baseline that starts a repetition: max(floor, 25 % of target).

    Relative to the target so that a big bend is not started by a small wobble, with a floor (5 deg
    by default) so that small targets stay clear of standing sway.
    """
    return max(floor_deg, START_THRESHOLD_SHARE * target_deg)


def _check_number(
    value: Any, name: str, lo: float, hi: float, *, lo_open: bool = False, integer: bool = False
) -> float:
    """Return `value` as float (int when `integer`) if finite and within the limits, else raise."""
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExerciseError(f"{name} must be {kind}, got {value!r}")
    if integer and not float(value).is_integer():
        raise ExerciseError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise ExerciseError(f"{name} must be finite, got {value!r}")
    too_low = value <= lo if lo_open else value < lo
    if too_low or value > hi:
        bracket = "(" if lo_open else "["
        raise ExerciseError(f"{name} must be in {bracket}{lo:g}, {hi:g}], got {value!r}")
    return int(value) if integer else float(value)


def _check_keys(data: Mapping[str, Any], cls: type, where: str) -> None:
    """Reject unknown and missing keys so a typo in a therapist's file is never silently ignored."""
    if not isinstance(data, Mapping):
        raise ExerciseError(f"{where} must be a table/object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    required = {
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    }
    unknown = sorted(set(data) - names)
    missing = sorted(required - set(data))
    if unknown:
        raise ExerciseError(f"{where}: unknown field(s) {unknown}; expected {sorted(names)}")
    if missing:
        raise ExerciseError(f"{where}: missing field(s) {missing}")


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One repetition's task: reach `target_deg` lumbar flexion within +-`tolerance_deg`, hold.

    Angles are absolute calibrated flexion (0 = neutral standing). The optional tempo window is
    guidance for time from movement start to first entering the band; None means no guidance.
    """

    target_deg: float
    tolerance_deg: float
    hold_s: float = 0.0
    min_time_to_target_s: float | None = None
    max_time_to_target_s: float | None = None
    start_threshold_min_deg: float = START_THRESHOLD_MIN_DEG

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_threshold_min_deg", _check_number(
            self.start_threshold_min_deg, "start_threshold_min_deg",
            START_THRESHOLD_FLOOR_MIN_DEG, START_THRESHOLD_MIN_DEG))
        limits = {
            "target_deg": (0.0, TARGET_MAX_DEG, True),
            "tolerance_deg": (TOLERANCE_MIN_DEG, TOLERANCE_MAX_DEG, False),
            "hold_s": (0.0, HOLD_MAX_S, False),
            "min_time_to_target_s": (0.0, TIME_TO_TARGET_MAX_S, False),
            "max_time_to_target_s": (0.0, TIME_TO_TARGET_MAX_S, False),
        }
        for name, (lo, hi, lo_open) in limits.items():
            value = getattr(self, name)
            if value is not None or not name.endswith("time_to_target_s"):
                object.__setattr__(self, name, _check_number(value, name, lo, hi, lo_open=lo_open))
        lo_s, hi_s = self.min_time_to_target_s, self.max_time_to_target_s
        if lo_s is not None and hi_s is not None and lo_s >= hi_s:
            raise ExerciseError(
                f"min_time_to_target_s ({lo_s:g}) must be below max_time_to_target_s ({hi_s:g})"
            )
        # The band must sit clearly above the rest zone, or standing still would count as "in".
        if self.low_deg <= self.start_threshold_deg:
            raise ExerciseError(
                f"target {self.target_deg:.1f}° ±{self.tolerance_deg:g}° reaches down to "
                f"{self.low_deg:.1f}°, into the rest zone (below "
                f"{self.start_threshold_deg:.1f}°); use a larger target or a narrower tolerance"
            )

    @property
    def low_deg(self) -> float:
        return self.target_deg - self.tolerance_deg

    @property
    def high_deg(self) -> float:
        return self.target_deg + self.tolerance_deg

    @property
    def start_threshold_deg(self) -> float:
        return start_threshold_deg(self.target_deg, self.start_threshold_min_deg)

    def contains(self, flexion_deg: float) -> bool:
        return self.low_deg <= flexion_deg <= self.high_deg

    def as_dict(self) -> dict[str, float | None]:
        out: dict[str, float | None] = asdict(self)
        out["low_deg"] = self.low_deg
        out["high_deg"] = self.high_deg
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetSpec:
        data = {k: v for k, v in data.items() if k not in ("low_deg", "high_deg")}
        _check_keys(data, cls, "target")
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ExerciseLevel:
    """One rung of the ladder. Field names are the keys of the therapist-editable file."""

    level: int
    amplitude_share: float  # of the patient's calibrated comfortable flexion range, (0, 1]
    tolerance_deg: float  # half-width of the target band
    hold_s: float  # continuous time inside the band asked for
    reps_per_set: int
    min_time_to_target_s: float  # tempo guidance: faster than this is rushing
    max_time_to_target_s: float  # slower than this: encourage a freer movement

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", _check_number(self.level, "level", 1, 1000, integer=True))
        where = f"level {self.level}: "
        limits = {
            "amplitude_share": (0.0, 1.0, True, False),
            "tolerance_deg": (TOLERANCE_MIN_DEG, TOLERANCE_MAX_DEG, False, False),
            "hold_s": (0.0, HOLD_MAX_S, False, False),
            "reps_per_set": (1, REPS_PER_SET_MAX, False, True),
            "min_time_to_target_s": (0.0, TIME_TO_TARGET_MAX_S, False, False),
            "max_time_to_target_s": (0.0, TIME_TO_TARGET_MAX_S, False, False),
        }
        for name, (lo, hi, lo_open, integer) in limits.items():
            value = _check_number(getattr(self, name), where + name, lo, hi,
                                  lo_open=lo_open, integer=integer)
            object.__setattr__(self, name, value)
        if self.min_time_to_target_s >= self.max_time_to_target_s:
            raise ExerciseError(where + "min_time_to_target_s must be below max_time_to_target_s")

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "level") -> ExerciseLevel:
        _check_keys(data, cls, where)
        return cls(**data)


# What changes between levels, and which way is harder (+1 up, -1 down, 0 either way: for tempo
# the literature does not say whether slower or faster is the harder step; people with LBP move
# slower, clinical.md "Speed").
_GRADED: dict[str, tuple[tuple[str, ...], int]] = {
    "amplitude": (("amplitude_share",), +1),
    "precision": (("tolerance_deg",), -1),
    "hold": (("hold_s",), +1),
    "repetitions": (("reps_per_set",), +1),
    "tempo": (("min_time_to_target_s", "max_time_to_target_s"), 0),
}


def _changed_dimensions(lower: ExerciseLevel, upper: ExerciseLevel) -> list[str]:
    """Names of the graded dimensions that differ between two levels; raise if one gets easier."""
    changed = []
    for dim, (names, harder) in _GRADED.items():
        deltas = [getattr(upper, n) - getattr(lower, n) for n in names]
        if not any(abs(d) > 1e-9 for d in deltas):
            continue
        changed.append(dim)
        if harder and any(d * harder < 0 for d in deltas):
            raise ExerciseError(
                f"level {upper.level} makes {dim} ({', '.join(names)}) easier than level "
                f"{lower.level}; levels must get harder as they go up"
            )
    return changed


@dataclass(frozen=True, slots=True)
class ExerciseDefinition:
    """A graded exercise: an identifier, a name for people, the movement, and its ladder."""

    id: str
    name: str
    movement: str
    levels: tuple[ExerciseLevel, ...]

    def __post_init__(self) -> None:
        for key in ("id", "name", "movement"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key).strip():
                raise ExerciseError(f"exercise {key} must be a non-empty string")
        if self.movement != "flexion":
            raise ExerciseError(f"movement {self.movement!r} is not supported yet; only 'flexion'")
        levels = tuple(self.levels)
        object.__setattr__(self, "levels", levels)
        if not levels:
            raise ExerciseError(f"exercise {self.id!r} has no levels")
        for i, lvl in enumerate(levels, start=1):
            if not isinstance(lvl, ExerciseLevel):
                raise ExerciseError(f"levels[{i - 1}] must be an ExerciseLevel")
            if lvl.level != i:
                raise ExerciseError(
                    f"levels must be numbered 1, 2, 3, ... in order; "
                    f"position {i} has level {lvl.level}"
                )
        for lower, upper in zip(levels, levels[1:]):
            changed = _changed_dimensions(lower, upper)
            if len(changed) != 1:
                what = ", ".join(changed) if changed else "nothing"
                raise ExerciseError(
                    f"level {upper.level} changes {what} relative to level {lower.level}; "
                    "grade exactly one thing at a time "
                    "(amplitude, precision, hold, repetitions or tempo)"
                )

    def level(self, number: int) -> ExerciseLevel:
        n = len(self.levels)
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= n:
            raise ExerciseError(f"{self.id}: level must be a whole number 1-{n}, got {number!r}")
        return self.levels[number - 1]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "movement": self.movement,
                "levels": [lvl.as_dict() for lvl in self.levels]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExerciseDefinition:
        _check_keys(data, cls, "exercise")
        raw_levels = data["levels"]
        if not isinstance(raw_levels, (list, tuple)):
            raise ExerciseError("exercise levels must be a list")
        levels = tuple(ExerciseLevel.from_dict(d, f"levels[{i}]") for i, d in enumerate(raw_levels))
        return cls(id=data["id"], name=data["name"], movement=data["movement"], levels=levels)


def _flexion_levels() -> list[dict[str, float | int]]:
    """The default ladder, written out as the rows a therapist's file would hold.

    Amplitude 40 -> 80 % of the comfortable range and tolerance +-8 -> +-3 deg alternate, then the
    hold lengthens. +-8 deg at the start covers the ~7 deg repositioning error of people with LBP;
    +-3 deg at the top is about the error of people without (clinical.md, "Repositioning error").
    """
    steps = [(0.4, 8), (0.5, 8), (0.5, 6), (0.6, 6), (0.6, 5),
             (0.7, 5), (0.7, 4), (0.8, 4), (0.8, 3)]
    rows = [dict(amplitude_share=a, tolerance_deg=float(t), hold_s=1.0) for a, t in steps]
    rows += [dict(amplitude_share=0.8, tolerance_deg=3.0, hold_s=h) for h in (2.0, 3.0)]
    # Tempo is measured from leaving rest to entering the band, the middle ~40 % of a smooth
    # outward bend: 0.4 s flags bends faster than about 1.1 s out (rushing a precision task);
    # 4 s is far slower than the 3.2 s per bend typical of LBP (clinical.md, Laird 2019).
    return [dict(level=i, **row, reps_per_set=8, min_time_to_target_s=0.4, max_time_to_target_s=4.0)
            for i, row in enumerate(rows, start=1)]


FLEXION_EXERCISE = ExerciseDefinition.from_dict({
    "id": "flexion_to_target",
    "name": "Bend forward to the target and back",
    "movement": "flexion",
    "levels": _flexion_levels(),
})
FLEXION_LEVELS: tuple[ExerciseLevel, ...] = FLEXION_EXERCISE.levels


def target_for(
    level: int | ExerciseLevel,
    comfortable_flexion_deg: float | None = None,
    *,
    target_deg: float | None = None,
    exercise: ExerciseDefinition = FLEXION_EXERCISE,
) -> TargetSpec:
    """The target a level gives this patient: a share of their own comfortable range.

    `target_deg`, when given, is the therapist's explicit target and replaces the share; the
    level still sets tolerance, hold and tempo. Raises `ExerciseError` for an unknown level, an
    implausible range, or a band that would reach into the rest zone.
    """
    lvl = level if isinstance(level, ExerciseLevel) else exercise.level(level)
    if comfortable_flexion_deg is not None or target_deg is None:
        if comfortable_flexion_deg is None:
            raise ExerciseError(
                "comfortable_flexion_deg is needed (from calibration) unless target_deg is given"
            )
        comfortable_flexion_deg = _check_number(
            comfortable_flexion_deg, "comfortable_flexion_deg",
            COMFORTABLE_FLEXION_MIN_DEG, COMFORTABLE_FLEXION_MAX_DEG,
        )
    if target_deg is None:
        assert comfortable_flexion_deg is not None
        target_deg = lvl.amplitude_share * comfortable_flexion_deg
        share = f"{lvl.amplitude_share:.0%} of {comfortable_flexion_deg:.1f}°"
        origin = f"level {lvl.level} ({share})"
    else:
        origin = f"explicit target for level {lvl.level}"
    try:
        return TargetSpec(
            target_deg=target_deg,
            tolerance_deg=lvl.tolerance_deg,
            hold_s=lvl.hold_s,
            min_time_to_target_s=lvl.min_time_to_target_s,
            max_time_to_target_s=lvl.max_time_to_target_s,
        )
    except ExerciseError as err:
        raise ExerciseError(f"{origin}: {err}") from None
