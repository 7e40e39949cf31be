"""The exercise library: one TOML file per exercise in feedback/library/, loaded and validated.

Why data files: therapists read and adjust the exercises (clinical.md, "What comparable systems
offer": an editable exercise library is what therapists expect). A file gives the angle, the
direction(s), the movement pattern, patient instructions, and an ordered ladder of levels; the
first level lists every parameter, each later level only what it changes. Every error names the
file, the field and what is allowed, so a therapist can fix a file without reading code.

Grading rules enforced here (clinical.md, "Grading"): levels are ordered; each level changes
exactly ONE parameter relative to the level before ("grade one thing at a time"), and never makes
the task easier. Which way is harder: larger amplitude (share of the person's own comfortable
range measured at baseline), narrower tolerance / still limit / lumbar limit, longer hold, more
repetitions or sets, a harder position (supported sitting -> unsupported sitting -> standing ->
functional), less external feedback (continuous -> terminal -> bandwidth -> faded -> summary ->
self-controlled; concurrent feedback creates dependence, clinical.md "Feedback that teaches").
Tempo may change either way: the sources do not say whether slower or faster is harder (people
with LBP move slower, clinical.md "Speed").

Note the names: this module is `feedback/library.py`; the data sit in the folder
`feedback/library/` (no `__init__.py`, so the module wins the import).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from feedback.directions import ANGLES, DIRECTIONS, Direction, direction
from feedback.exercise import (
    HOLD_MAX_S,
    REPS_PER_SET_MAX,
    START_THRESHOLD_FLOOR_MIN_DEG,
    START_THRESHOLD_MIN_DEG,
    TOLERANCE_MAX_DEG,
    TOLERANCE_MIN_DEG,
)

LIBRARY_DIR = Path(__file__).with_name("library")

PATTERNS: tuple[str, ...] = ("to_target", "hold", "track", "reproduce", "dissociate", "functional")
POSITIONS: tuple[str, ...] = ("supported_sitting", "unsupported_sitting", "standing", "functional")
# Ordered from most to least external guidance (see module docstring).
FEEDBACK_MODES: tuple[str, ...] = (
    "continuous", "terminal", "bandwidth", "faded", "summary", "self_controlled",
)
REFERENCES: tuple[str, ...] = ("start_position", "neutral")


class LibraryError(ValueError):
    """A bad exercise file: `source` (file), `field` and the message say what and where."""

    def __init__(self, source: str, field_name: str, problem: str) -> None:
        self.source, self.field = source, field_name
        super().__init__(f"{source}: {field_name}: {problem}" if field_name else
                         f"{source}: {problem}")


# -- parameters of a level -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Param:
    lo: float
    hi: float
    harder: int  # +1 larger is harder, -1 smaller is harder, 0 either way
    integer: bool = False
    lo_open: bool = False
    doc: str = ""


_NUMERIC: dict[str, _Param] = {
    "amplitude": _Param(0.0, 1.0, +1, doc="share of the baseline range in this direction"),
    "tolerance_deg": _Param(TOLERANCE_MIN_DEG, TOLERANCE_MAX_DEG, -1,
                            doc="half-width of the target band, degrees"),
    "still_limit_deg": _Param(2.0, 20.0, -1, doc="how far the still segment may move, degrees"),
    "lumbar_limit": _Param(0.0, 1.0, -1, lo_open=True,
                           doc="lumbar flexion limit as a share of the baseline flexion range"),
    "hold_s": _Param(0.0, HOLD_MAX_S, +1, doc="seconds to hold"),
    "tempo_s": _Param(0.5, 10.0, 0, doc="seconds for the movement out to the target"),
    "reps_per_set": _Param(1, REPS_PER_SET_MAX, +1, integer=True),
    "sets": _Param(1, 10, +1, integer=True),
}
_ORDERED: dict[str, tuple[str, ...]] = {"position": POSITIONS, "feedback": FEEDBACK_MODES}
_COMMON = ("position", "feedback", "reps_per_set", "sets")
PATTERN_FIELDS: dict[str, tuple[str, ...]] = {
    "to_target": _COMMON + ("amplitude", "tolerance_deg", "hold_s", "tempo_s"),
    "hold": _COMMON + ("amplitude", "tolerance_deg", "hold_s"),
    "track": _COMMON + ("amplitude", "tolerance_deg", "hold_s", "tempo_s"),
    "reproduce": _COMMON + ("amplitude", "tolerance_deg", "hold_s"),
    "dissociate": _COMMON + ("amplitude", "tolerance_deg", "hold_s", "tempo_s", "still_limit_deg"),
    "functional": _COMMON + ("lumbar_limit",),
}


@dataclass(frozen=True, slots=True)
class Level:
    """One rung of an exercise's ladder; fields a pattern does not use are None."""

    number: int
    position: str
    feedback: str
    reps_per_set: int
    sets: int
    amplitude: float | None = None
    tolerance_deg: float | None = None
    hold_s: float | None = None
    tempo_s: float | None = None
    still_limit_deg: float | None = None
    lumbar_limit: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """Feedback-schedule settings of an exercise (see feedback/schedules.py)."""

    summary_every: int = 3
    fade_from: float = 1.0
    fade_to: float = 0.25
    self_estimate: bool = True


@dataclass(frozen=True, slots=True)
class TaskConfig:
    """Functional tasks: the movement that makes one repetition, and the angle kept in limits."""

    angle: str
    direction: str
    amplitude_deg: float  # a movement this big on `angle` counts as one task repetition
    limit_angle: str = "flexion_deg"
    limit_direction: str = "forward"


@dataclass(frozen=True, slots=True)
class Exercise:
    """A graded exercise in one direction (files listing two directions give two exercises)."""

    id: str
    name: str
    pattern: str
    direction: Direction
    reference: str
    instructions: str
    levels: tuple[Level, ...]
    retention_reps: int = 5
    rest_between_sets_s: float = 30.0
    start_threshold_min_deg: float = START_THRESHOLD_MIN_DEG
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    still_angle: str | None = None  # dissociate: the angle of the segment that stays still
    task: TaskConfig | None = None  # functional
    source: str = "<text>"

    @property
    def angle(self) -> str:
        return self.direction.angle

    def level(self, number: int) -> Level:
        n = len(self.levels)
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= n:
            raise LibraryError(self.source, "level", f"{self.id} has levels 1-{n}, got {number!r}")
        return self.levels[number - 1]

    def changed_parameter(self, number: int) -> str | None:
        """The one parameter level `number` changed relative to the level below (None for 1)."""
        if number <= 1:
            return None
        changed = _changes(self.level(number - 1), self.level(number))
        return changed[0] if changed else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "pattern": self.pattern, "angle": self.angle,
            "direction": self.direction.name, "reference": self.reference,
            "instructions": self.instructions, "retention_reps": self.retention_reps,
            "rest_between_sets_s": self.rest_between_sets_s,
            "levels": [lv.as_dict() for lv in self.levels],
            "still_angle": self.still_angle,
            "task": None if self.task is None else asdict(self.task),
            "schedule": asdict(self.schedule),
        }


class Library:
    """Exercises by id."""

    def __init__(self, exercises: Iterable[Exercise]) -> None:
        self._by_id: dict[str, Exercise] = {}
        for ex in exercises:
            if ex.id in self._by_id:
                raise LibraryError(ex.source, "id", f"{ex.id!r} is also defined in "
                                   f"{self._by_id[ex.id].source}; ids must be unique")
            self._by_id[ex.id] = ex

    def __getitem__(self, exercise_id: str) -> Exercise:
        try:
            return self._by_id[exercise_id]
        except KeyError:
            raise KeyError(f"no exercise {exercise_id!r}; known: {sorted(self._by_id)}") from None

    def __contains__(self, exercise_id: object) -> bool:
        return exercise_id in self._by_id

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def ids(self) -> list[str]:
        return sorted(self._by_id)


# -- loading --------------------------------------------------------------------------------------
def load_library(directory: str | Path = LIBRARY_DIR) -> Library:
    """Read every `*.toml` in `directory` (the only file access in feedback/)."""
    directory = Path(directory)
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise LibraryError(str(directory), "", "no exercise files (*.toml) found")
    exercises: list[Exercise] = []
    for path in files:
        exercises += parse_exercises(path.read_text(encoding="utf-8"), source=path.name)
    return Library(exercises)


def parse_exercises(text: str, source: str = "<text>") -> list[Exercise]:
    """Parse one exercise file's text; a file with N directions gives N exercises."""
    if not isinstance(text, str) or not text.strip():
        raise LibraryError(source, "", "the file is empty")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LibraryError(source, "", f"not valid TOML ({exc})") from None
    return _exercises_from_dict(data, source)


_TOP_KEYS = {
    "id", "name", "pattern", "angle", "directions", "reference", "instructions", "levels",
    "retention_reps", "rest_between_sets_s", "start_threshold_min_deg", "schedule", "still",
    "task",
}


def _exercises_from_dict(data: Mapping[str, Any], source: str) -> list[Exercise]:
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise LibraryError(source, unknown[0], f"unknown field; allowed: {sorted(_TOP_KEYS)}")
    ex_id = _text(data, "id", source)
    if not ex_id.replace("_", "").isalnum() or not ex_id.islower():
        raise LibraryError(source, "id", f"use lower-case letters, digits and _, got {ex_id!r}")
    name = _text(data, "name", source)
    pattern = _choice(data, "pattern", PATTERNS, source)
    angle = _choice(data, "angle", ANGLES, source)
    reference = _choice(data, "reference", REFERENCES, source, default="start_position")
    instructions = _instructions(data, source)
    raw_dirs = data.get("directions")
    allowed_dirs = sorted(n for a, n in DIRECTIONS if a == angle)
    if not isinstance(raw_dirs, list) or not raw_dirs or len(set(map(str, raw_dirs))) != len(
            raw_dirs):
        raise LibraryError(source, "directions",
                           f"a list of distinct directions from {allowed_dirs}, got {raw_dirs!r}")
    dirs = []
    for d in raw_dirs:
        if d not in allowed_dirs:
            raise LibraryError(source, "directions", f"{angle} moves {allowed_dirs}, got {d!r}")
        dirs.append(direction(angle, d))
    if pattern != "functional" and any(d.range_key is None for d in dirs):
        raise LibraryError(source, "angle", f"{angle} has no baseline range to grade amplitude "
                           "against; use it only in functional tasks or as the still segment")
    retention = int(_number(data, "retention_reps", source, 3, 20, integer=True, default=5))
    rest = _number(data, "rest_between_sets_s", source, 0.0, 600.0, default=30.0)
    floor = _number(data, "start_threshold_min_deg", source, START_THRESHOLD_FLOOR_MIN_DEG,
                    START_THRESHOLD_MIN_DEG, default=START_THRESHOLD_MIN_DEG)
    schedule = _schedule(data.get("schedule", {}), source)
    still = _still(data, pattern, angle, source)
    task = _task(data, pattern, source)
    levels = _levels(data.get("levels"), pattern, source)
    out = []
    for d in dirs:
        suffix = len(dirs) > 1
        out.append(Exercise(
            id=f"{ex_id}_{d.name}" if suffix else ex_id,
            name=f"{name} ({d.name})" if suffix else name,
            pattern=pattern, direction=d, reference=reference,
            instructions=instructions.replace("{move}", d.words),
            levels=levels, retention_reps=retention, rest_between_sets_s=rest,
            start_threshold_min_deg=floor, schedule=schedule, still_angle=still, task=task,
            source=source,
        ))
    return out


def _text(data: Mapping[str, Any], key: str, source: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise LibraryError(source, key, f"a non-empty text is required, got {value!r}")
    return value.strip()


def _instructions(data: Mapping[str, Any], source: str) -> str:
    """Patient-facing text that is also read aloud: plain words, no symbols speech would mangle."""
    text = " ".join(_text(data, "instructions", source).split())
    for symbol in ("°", "±", "%", "<", ">", "="):
        if symbol in text:
            raise LibraryError(source, "instructions", f"write {symbol!r} out in words: the "
                               "instructions are also spoken aloud")
    leftover = text.replace("{move}", "")
    if "{" in leftover or "}" in leftover:
        raise LibraryError(source, "instructions", "the only placeholder allowed is {move}")
    return text


def _choice(data: Mapping[str, Any], key: str, allowed: tuple[str, ...], source: str,
            default: str | None = None) -> str:
    value = data.get(key, default)
    if value not in allowed:
        raise LibraryError(source, key, f"must be one of {list(allowed)}, got {value!r}")
    return str(value)


def _number(data: Mapping[str, Any], key: str, source: str, lo: float, hi: float, *,
            integer: bool = False, lo_open: bool = False, default: float | None = None) -> float:
    value = data.get(key, default)
    kind = "a whole number" if integer else "a number"
    bracket = "(" if lo_open else "["
    allowed = f"{kind} in {bracket}{lo:g}, {hi:g}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LibraryError(source, key, f"must be {allowed}, got {value!r}")
    if not math.isfinite(value) or (integer and not float(value).is_integer()):
        raise LibraryError(source, key, f"must be {allowed}, got {value!r}")
    if (value <= lo if lo_open else value < lo) or value > hi:
        raise LibraryError(source, key, f"must be {allowed}, got {value!r}")
    return int(value) if integer else float(value)


def _table(value: Any, key: str, source: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise LibraryError(source, key, f"must be a table, got {value!r}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise LibraryError(source, f"{key}.{unknown[0]}", f"unknown field; allowed: "
                           f"{sorted(allowed)}")
    return value


def _schedule(raw: Any, source: str) -> ScheduleConfig:
    t = _table(raw, "schedule", source, {"summary_every", "fade_from", "fade_to", "self_estimate"})
    where = "schedule."
    every = int(_number({where + "summary_every": t.get("summary_every", 3)},
                        where + "summary_every", source, 2, 20, integer=True))
    fade_from = _number({where + "fade_from": t.get("fade_from", 1.0)}, where + "fade_from",
                        source, 0.0, 1.0, lo_open=True)
    fade_to = _number({where + "fade_to": t.get("fade_to", 0.25)}, where + "fade_to", source,
                      0.0, fade_from, lo_open=True)
    self_estimate = t.get("self_estimate", True)
    if not isinstance(self_estimate, bool):
        raise LibraryError(source, where + "self_estimate", f"true or false, got {self_estimate!r}")
    return ScheduleConfig(every, fade_from, fade_to, self_estimate)


def _still(data: Mapping[str, Any], pattern: str, angle: str, source: str) -> str | None:
    raw = data.get("still")
    if pattern != "dissociate":
        if raw is not None:
            raise LibraryError(source, "still", f"only dissociate exercises have one ({pattern})")
        return None
    t = _table(raw, "still", source, {"angle"})
    still_angle = _choice(t, "angle", ANGLES, source + " [still]")
    if still_angle == angle:
        raise LibraryError(source, "still.angle", "must differ from the moving angle")
    return still_angle


def _task(data: Mapping[str, Any], pattern: str, source: str) -> TaskConfig | None:
    raw = data.get("task")
    if pattern != "functional":
        if raw is not None:
            raise LibraryError(source, "task", f"only functional exercises have one ({pattern})")
        return None
    t = _table(raw, "task", source, {"angle", "direction", "amplitude_deg", "limit_angle",
                                     "limit_direction"})
    where = source + " [task]"
    angle = _choice(t, "angle", ANGLES, where)
    try:
        direction(angle, str(t.get("direction")))
        direction(str(t.get("limit_angle", "flexion_deg")), str(t.get("limit_direction",
                                                                      "forward")))
    except KeyError as exc:
        raise LibraryError(source, "task", str(exc.args[0])) from None
    amp = _number(t, "amplitude_deg", where, 5.0, 90.0)
    limit_angle = str(t.get("limit_angle", "flexion_deg"))
    limit_dir = direction(limit_angle, str(t.get("limit_direction", "forward")))
    if limit_dir.range_key is None:
        raise LibraryError(source, "task.limit_angle", "needs a baseline range; use flexion_deg")
    return TaskConfig(angle, str(t["direction"]), amp, limit_angle, limit_dir.name)


def _levels(raw: Any, pattern: str, source: str) -> tuple[Level, ...]:
    if not isinstance(raw, list) or not raw:
        raise LibraryError(source, "levels", "at least one [[levels]] table is required")
    used = PATTERN_FIELDS[pattern]
    levels: list[Level] = []
    current: dict[str, Any] = {}
    for i, row in enumerate(raw, start=1):
        where = f"levels[{i}]"
        if not isinstance(row, Mapping):
            raise LibraryError(source, where, "must be a table")
        extra = sorted(set(row) - set(used) - {"note"})
        if extra:
            raise LibraryError(source, f"{where}.{extra[0]}",
                               f"not used by {pattern} exercises; allowed: {sorted(used)}")
        for key, value in row.items():
            if key == "note":
                continue
            if key in _ORDERED:
                current[key] = _choice(row, key, _ORDERED[key], source + f" {where}")
            else:
                p = _NUMERIC[key]
                lo = 0.0 if key == "amplitude" and pattern == "hold" else p.lo
                lo_open = p.lo_open or (key == "amplitude" and pattern != "hold")
                current[key] = _number(row, key, source + f" {where}", lo, p.hi,
                                       integer=p.integer, lo_open=lo_open)
        missing = [k for k in used if k not in current]
        if missing:
            raise LibraryError(source, f"{where}.{missing[0]}",
                               "missing; the first level must give every parameter of a "
                               f"{pattern} exercise: {sorted(used)}")
        if pattern == "reproduce" and current["feedback"] == "continuous":
            raise LibraryError(source, f"{where}.feedback", "reproduce exercises test the "
                               "position without live feedback; use terminal or later modes")
        level = Level(number=i, **current)
        if levels:
            changed = _changes(levels[-1], level, source)
            if len(changed) != 1:
                what = ", ".join(changed) if changed else "nothing"
                raise LibraryError(source, where, f"changes {what} relative to level {i - 1}; "
                                   "grade exactly one thing at a time (clinical.md, Grading)")
        levels.append(level)
    return tuple(levels)


def _rank(name: str, value: Any) -> float:
    return float(_ORDERED[name].index(value)) if name in _ORDERED else float(value)


def _changes(lower: Level, upper: Level, source: str = "") -> list[str]:
    """Parameters that differ between two levels; LibraryError if one got easier."""
    changed = []
    for name in (*_ORDERED, *_NUMERIC):
        a, b = getattr(lower, name), getattr(upper, name)
        if a is None or b is None or abs(_rank(name, b) - _rank(name, a)) < 1e-9:
            continue
        changed.append(name)
        harder = +1 if name in _ORDERED else _NUMERIC[name].harder
        if harder and (_rank(name, b) - _rank(name, a)) * harder < 0:
            raise LibraryError(source, f"levels[{upper.number}].{name}",
                               f"makes the exercise easier than level {lower.number} "
                               f"({a} -> {b}); levels must never get easier")
    return changed


def with_level_overrides(level: Level, **changes: Any) -> Level:
    """A copy of `level` with some parameters replaced (for the therapist's one-off tweaks)."""
    return replace(level, **changes)
