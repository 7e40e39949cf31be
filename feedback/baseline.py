"""Baseline assessment: the patient's own comfortable ranges, speed, smoothness, repositioning.

Why: amplitude is graded as a share of the person's comfortable range measured at baseline
(clinical.md "Grading"), and progress is judged against the baseline, never below the minimal
detectable change (clinical.md "Measurement noise": 5-15 deg for most range-of-motion measures,
8-15 % for the lumbar share; "smaller changes must not be sold to a patient as progress").

`BaselineProtocol` is a state machine over the angle stream. For each direction (forward,
backward, side bending left and right, rotation left and right, pelvic tilt forward and back):
find the start position (still for a moment), then `moves_per_direction` slow movements to a
comfortable end and back; the range is the median of their peaks (the median resists one
unusually deep or shallow movement). Each movement also gives its peak and mean angular speed
(clinical.md "Speed"), SPARC/LDLJ when processing/smoothness.py is there, and for forward
bending the lumbar share. Last, repositioning (clinical.md "Repositioning error": about 3 deg
healthy versus 7 deg with LBP, clearest in sitting): reach a target of
`repositioning_share` x the forward range with the guide on, come back, reproduce it without
the guide; the absolute error is the measure. No result is shown during the assessment.

`Baseline` is versioned and round-trips through `as_dict`/`from_dict`; `compare_baselines`
labels every difference below its MDC "no measurable change (within measurement noise)".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from feedback.cues import Cue, whole_deg
from feedback.directions import RANGE_KEYS, direction, direction_for_range
from feedback.events import FeedbackEvent, plain
from feedback.exercise import ExerciseError, TargetSpec
from feedback.library import Exercise, Level, ScheduleConfig
from feedback.quality import SmoothnessFn, default_smoothness, lumbar_share, movement_quality
from feedback.repetitions import (
    RepetitionAborted,
    RepetitionDetector,
    RepetitionEnded,
    RepetitionParams,
)
from feedback.samples import Sample, SampleWindow, samples_of
from feedback.targets import LevelTargets
from feedback.task_reach import ReproduceTask
from feedback.trial import TaskCue, TrialEnded, TrialInterrupted

BASELINE_VERSION = 1

# Minimal detectable change (clinical.md "Measurement noise": 5-15 deg for most ROM measures).
# 10 deg, the middle of that span, for the sagittal and frontal planes; 15 deg for axial
# rotation, the angle IMUs measure worst (heading drift, clinical.md "Sensor accuracy").
MDC_ROM_DEG: dict[str, float] = {k: (15.0 if k.startswith("axial") else 10.0) for k in RANGE_KEYS}
# Lumbar share: the conservative end of 8-15 % (clinical.md).
MDC_LUMBAR_SHARE = 0.15
# Repositioning error: clinical.md gives no MDC. 3 deg is an assumption (about twice the
# sagittal sensor RMSE of 0.7-1.8 deg, Mjosund 2017); treat as provisional.
MDC_REPOSITIONING_DEG = 3.0

_INSTRUCTIONS: dict[str, str] = {
    "flexion": "Stand tall. Slowly bend forward as far as is comfortable, then come back up",
    "extension": "Stand tall with your hands on your hips. Slowly lean back as far as is "
                 "comfortable, then come back up",
    "lateral_bend_left": "Stand tall. Slowly bend to the left as far as is comfortable, then "
                         "come back to the middle",
    "lateral_bend_right": "Stand tall. Slowly bend to the right as far as is comfortable, then "
                          "come back to the middle",
    "axial_rotation_left": "Sit tall with your arms crossed. Slowly turn to the left as far as "
                           "is comfortable, then come back to the middle",
    "axial_rotation_right": "Sit tall with your arms crossed. Slowly turn to the right as far "
                            "as is comfortable, then come back to the middle",
    "pelvic_tilt_anterior": "Sit tall. Slowly tip your pelvis forward as far as is "
                            "comfortable, then come back to the middle",
    "pelvic_tilt_posterior": "Sit tall. Slowly tuck your pelvis under as far as is "
                             "comfortable, then come back to the middle",
    "repositioning": "Sit tall at the front of the chair. First bend forward to the target with "
                     "the guide on and hold it, then come back up. Then find the same spot "
                     "without the guide, hold still there, and come back up",
}


class BaselineError(ValueError):
    """A baseline that cannot be read or used."""


@dataclass(frozen=True, slots=True)
class DirectionMeasure:
    range_deg: float  # median of the peaks
    peaks_deg: tuple[float, ...]
    peak_speed_deg_s: float | None = None  # medians over the movements
    mean_speed_deg_s: float | None = None
    sparc: float | None = None
    ldlj: float | None = None
    lumbar_share: float | None = None  # forward bending only


@dataclass(frozen=True, slots=True)
class RepositioningMeasure:
    target_deg: float
    errors_deg: tuple[float, ...]  # signed, > 0 past the target

    @property
    def mean_abs_error_deg(self) -> float:
        return sum(abs(e) for e in self.errors_deg) / len(self.errors_deg)


@dataclass(frozen=True, slots=True)
class Baseline:
    """A patient's baseline; `range_deg(key)` is what targets derive from."""

    directions: Mapping[str, DirectionMeasure]
    repositioning: RepositioningMeasure | None = None
    taken_on: str | None = None  # ISO date, given by the caller (feedback/ has no clock)
    version: int = BASELINE_VERSION

    def range_deg(self, key: str) -> float:
        try:
            return self.directions[key].range_deg
        except KeyError:
            raise KeyError(f"the baseline has no {key!r} range; it has "
                           f"{sorted(self.directions)}") from None

    @classmethod
    def from_ranges(cls, taken_on: str | None = None, **ranges_deg: float) -> Baseline:
        """A baseline from ranges alone (entered by a therapist, or for tests)."""
        for key, value in ranges_deg.items():
            if key not in RANGE_KEYS:
                raise BaselineError(f"unknown range {key!r}; allowed: {list(RANGE_KEYS)}")
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= 120):
                raise BaselineError(f"{key} must be a number of degrees in (0, 120], got "
                                    f"{value!r}")
        return cls({k: DirectionMeasure(float(v), (float(v),)) for k, v in ranges_deg.items()},
                   taken_on=taken_on)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version, "taken_on": self.taken_on,
            "directions": {k: {**plain(m), "peaks_deg": list(plain(m.peaks_deg))}
                           for k, m in self.directions.items()},
            "repositioning": None if self.repositioning is None else {
                "target_deg": plain(self.repositioning.target_deg),
                "errors_deg": plain(list(self.repositioning.errors_deg)),
                "mean_abs_error_deg": plain(self.repositioning.mean_abs_error_deg)},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        if not isinstance(data, Mapping):
            raise BaselineError("a baseline must be a mapping")
        version = data.get("version")
        if version != BASELINE_VERSION:
            raise BaselineError(f"baseline version {version!r} is not supported (this Lumbo "
                                f"reads version {BASELINE_VERSION})")
        try:
            dirs = {}
            for key, m in data["directions"].items():
                if key not in RANGE_KEYS:
                    raise BaselineError(f"unknown range {key!r}")
                dirs[key] = DirectionMeasure(
                    float(m["range_deg"]), tuple(float(p) for p in m["peaks_deg"]),
                    *(None if m.get(k) is None else float(m[k]) for k in (
                        "peak_speed_deg_s", "mean_speed_deg_s", "sparc", "ldlj",
                        "lumbar_share")))
            rep = data.get("repositioning")
            reposition = None if rep is None else RepositioningMeasure(
                float(rep["target_deg"]), tuple(float(e) for e in rep["errors_deg"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, BaselineError):
                raise
            raise BaselineError(f"malformed baseline: {exc!r}") from None
        return cls(dirs, reposition, data.get("taken_on"), BASELINE_VERSION)


# -- comparison ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Change:
    measure: str
    old: float
    new: float
    mdc: float | None  # None: no MDC known, so the change is never called measurable
    unit: str

    @property
    def change(self) -> float:
        return self.new - self.old

    @property
    def measurable(self) -> bool:
        return self.mdc is not None and abs(self.change) >= self.mdc

    @property
    def label(self) -> str:
        if not self.measurable:
            return "no measurable change (within measurement noise)"
        return "increased" if self.change > 0 else "decreased"

    def as_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "old": plain(self.old), "new": plain(self.new),
                "change": plain(self.change), "mdc": plain(self.mdc), "unit": self.unit,
                "measurable": self.measurable, "label": self.label}


def compare_baselines(old: Baseline, new: Baseline, *,
                      mdc_rom_deg: Mapping[str, float] = MDC_ROM_DEG) -> list[Change]:
    """Differences between two baselines, each labelled against its MDC (module docstring).

    Speeds and smoothness have no MDC in clinical.md, so they are listed but never measurable.
    """
    out: list[Change] = []
    for key in RANGE_KEYS:
        a, b = old.directions.get(key), new.directions.get(key)
        if a is None or b is None:
            continue
        out.append(Change(f"{key}_range", a.range_deg, b.range_deg, mdc_rom_deg.get(key), "deg"))
        for name, unit in (("peak_speed_deg_s", "deg/s"), ("sparc", "")):
            va, vb = getattr(a, name), getattr(b, name)
            if va is not None and vb is not None:
                out.append(Change(f"{key}_{name}", va, vb, None, unit))
        if a.lumbar_share is not None and b.lumbar_share is not None:
            out.append(Change(f"{key}_lumbar_share", a.lumbar_share, b.lumbar_share,
                              MDC_LUMBAR_SHARE, "share"))
    if old.repositioning is not None and new.repositioning is not None:
        out.append(Change("repositioning_error", old.repositioning.mean_abs_error_deg,
                          new.repositioning.mean_abs_error_deg, MDC_REPOSITIONING_DEG, "deg"))
    return out


# -- the protocol -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BaselineParams:
    directions: tuple[str, ...] = RANGE_KEYS
    moves_per_direction: int = 3
    repositioning_trials: int = 3  # 0 = skip
    repositioning_share: float = 0.5
    repositioning_tolerance_deg: float = 5.0
    repositioning_hold_s: float = 2.0
    start_still_s: float = 1.2
    start_still_range_deg: float = 2.5
    small_range_keys: tuple[str, ...] = ("axial_rotation_left", "axial_rotation_right",
                                         "pelvic_tilt_anterior", "pelvic_tilt_posterior",
                                         "extension")
    start_threshold_deg: float = 5.0  # a movement starts this far from the start position ...
    small_start_threshold_deg: float = 3.0  # ... or this far for small ranges
    repetition: RepetitionParams | None = None

    def __post_init__(self) -> None:
        bad = [d for d in self.directions if d not in RANGE_KEYS]
        if bad or not self.directions:
            raise BaselineError(f"directions must come from {list(RANGE_KEYS)}, got {bad}")
        if self.moves_per_direction < 1 or self.repositioning_trials < 0:
            raise BaselineError("moves_per_direction >= 1 and repositioning_trials >= 0")


@dataclass(frozen=True, slots=True)
class BaselineEvent(FeedbackEvent):
    """One event of the protocol; `kind` is its message type (baseline_step_started,
    baseline_movement_measured, baseline_movement_interrupted, baseline_prompt,
    baseline_step_completed, baseline_completed)."""

    step: str
    cue: Cue | None
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:  # type: ignore[override]
        return self.kind

    def as_dict(self) -> dict[str, Any]:
        out = {"type": self.kind, "time_s": round(self.time_s, 3), "step": self.step,
               "cue": None if self.cue is None else self.cue.as_dict()}
        out.update(self.detail)
        return out


def _detection_spec(start_threshold_deg: float) -> TargetSpec:
    """The detector needs a target only for its start threshold (max(floor, 25 % of target));
    a target of floor + 3 deg keeps it at the floor. The band is not used here."""
    return TargetSpec(target_deg=start_threshold_deg + 3.0, tolerance_deg=2.0,
                      start_threshold_min_deg=start_threshold_deg)


class BaselineProtocol:
    """The guided assessment (see module docstring): `update(angles) -> events`, `state`,
    `baseline` once done."""

    def __init__(self, params: BaselineParams = BaselineParams(), *,
                 smoothness: SmoothnessFn | None | str = "default",
                 taken_on: str | None = None) -> None:
        self.params = params
        self.smoothness = default_smoothness() if smoothness == "default" else smoothness
        self.taken_on = taken_on
        steps = list(params.directions)
        if params.repositioning_trials and "flexion" in steps:
            steps.append("repositioning")
        self.steps = tuple(steps)
        self.window = SampleWindow()
        self.measures: dict[str, DirectionMeasure] = {}
        self.repositioning: RepositioningMeasure | None = None
        self.baseline: Baseline | None = None
        self._step_i = -1
        self._phase = "idle"
        self._time_s: float | None = None
        self._movements: list[dict[str, Any]] = []
        self._errors: list[float] = []
        self._detector: RepetitionDetector | None = None
        self._task: ReproduceTask | None = None
        self._anchor = 0.0
        self._still: tuple[float, float, float, float, int] | None = None
        self._value: float | None = None

    @property
    def step(self) -> str | None:
        return self.steps[self._step_i] if 0 <= self._step_i < len(self.steps) else None

    @property
    def done(self) -> bool:
        return self._phase == "done"

    @property
    def state(self) -> dict[str, Any]:
        step = self.step
        guide = self._task.live.guide_on if self._task is not None else None
        target = self._task.live.target_deg if self._task is not None and guide else None
        return {"step": step, "step_number": self._step_i + 1, "steps": len(self.steps),
                "phase": "finding_start" if self._phase == "idle" else self._phase,
                "count": len(self._errors) if step == "repositioning" else len(self._movements),
                "of": (self.params.repositioning_trials if step == "repositioning"
                       else self.params.moves_per_direction),
                "value_deg": plain(self._value), "guide_on": guide, "target_deg": plain(target),
                "instructions": _INSTRUCTIONS.get(step or "", "")}

    def update(self, angles: Any) -> list[BaselineEvent]:
        out: list[BaselineEvent] = []
        for sample in samples_of(angles):
            out += self.step_sample(sample)
        return out

    def step_sample(self, sample: Sample) -> list[BaselineEvent]:
        if self._time_s is not None and not sample.time_s > self._time_s:
            raise ValueError("time_s must increase strictly, also across batches")
        self._time_s = t = sample.time_s
        self.window.append(sample)
        out: list[BaselineEvent] = []
        if self._phase == "idle":
            self._next_step(t, out)
        if self._phase == "finding_start":
            self._find_start(sample, out)
        elif self._phase == "measuring":
            if self.step == "repositioning":
                self._step_repositioning(sample, out)
            else:
                self._step_direction(sample, out)
        return out

    # -- steps ------------------------------------------------------------------------------
    def _key_dir(self) -> Any:
        return direction_for_range(self.step or "flexion")

    def _next_step(self, t: float, out: list[BaselineEvent]) -> None:
        self._step_i += 1
        self._movements, self._errors = [], []
        self._detector, self._task, self._still = None, None, None
        if self._step_i >= len(self.steps):
            self._phase = "done"
            self.baseline = Baseline(dict(self.measures), self.repositioning, self.taken_on)
            out.append(BaselineEvent(t, "done", Cue("Assessment complete. Well done",
                                                     "Assessment complete. Well done"),
                                     "baseline_completed", {"baseline": self.baseline.as_dict()}))
            return
        step = self.step
        assert step is not None
        self._phase = "finding_start"
        text = _INSTRUCTIONS[step] + ". Start still for a moment"
        out.append(BaselineEvent(t, step, Cue(text, text), "baseline_step_started",
                                 {"step_number": self._step_i + 1, "steps": len(self.steps)}))

    def _angle(self) -> str:
        return "flexion_deg" if self.step == "repositioning" else self._key_dir().angle

    def _find_start(self, sample: Sample, out: list[BaselineEvent]) -> None:
        p, t = self.params, sample.time_s
        v = getattr(sample, self._angle())
        if not math.isfinite(v):
            self._still = None
            return
        st = self._still
        if st is None or max(st[2], v) - min(st[1], v) > p.start_still_range_deg:
            st = (t, v, v, 0.0, 0)
        st = (st[0], min(st[1], v), max(st[2], v), st[3] + v, st[4] + 1)
        self._still = st
        if t - st[0] < p.start_still_s:
            return
        self._anchor = st[3] / st[4]
        self._phase = "measuring"
        if self.step == "repositioning":
            self._start_repositioning()
        else:
            key = self.step or ""
            threshold = (p.small_start_threshold_deg if key in p.small_range_keys
                         else p.start_threshold_deg)
            self._detector = RepetitionDetector(_detection_spec(threshold), p.repetition)
        for row in self.window.between(st[0], t):
            if self.step == "repositioning":
                self._step_repositioning(row, out)
            else:
                self._step_direction(row, out)

    def _signed(self, sample: Sample) -> float:
        d = self._key_dir()
        return d.sign * (getattr(sample, d.angle) - self._anchor)

    def _step_direction(self, sample: Sample, out: list[BaselineEvent]) -> None:
        assert self._detector is not None
        s = self._signed(sample)
        self._value = s if math.isfinite(s) else None
        step = self.step or ""
        for ev in self._detector.step(sample.time_s, s):
            if isinstance(ev, RepetitionAborted):
                out.append(BaselineEvent(ev.time_s, step, Cue(
                    "That one didn't count. Go back to the start", "That one didn't count. "
                    "Go back to the start"), "baseline_movement_interrupted",
                    {"reason": ev.reason}))
            elif isinstance(ev, RepetitionEnded):
                rep = ev.repetition
                rows = self.window.between(rep.start_time_s, rep.end_time_s)
                q = movement_quality(rows, [self._signed(r) for r in rows], self.smoothness)
                share = None
                if step == "flexion":
                    before = self.window.between(rep.start_time_s - 0.5, rep.peak_time_s)
                    if before:
                        share = lumbar_share(before[0], before[-1])
                self._movements.append({"peak": rep.peak_deg, "q": q, "share": share})
                n = len(self._movements)
                text = f"Movement {n} of {self.params.moves_per_direction}"
                out.append(BaselineEvent(ev.time_s, step, Cue(text, text),
                                         "baseline_movement_measured",
                                         {"number": n, "peak_deg": plain(rep.peak_deg),
                                          "peak_speed_deg_s": plain(q.peak_speed_deg_s)}))
                if n >= self.params.moves_per_direction:
                    self._finish_direction(ev.time_s, out)
                    return

    def _finish_direction(self, t: float, out: list[BaselineEvent]) -> None:
        mv = self._movements

        def med(values: Sequence[float | None]) -> float | None:
            vals = [v for v in values if v is not None]
            return float(statistics.median(vals)) if vals else None

        peaks = tuple(m["peak"] for m in mv)
        measure = DirectionMeasure(
            range_deg=float(statistics.median(peaks)), peaks_deg=peaks,
            peak_speed_deg_s=med([m["q"].peak_speed_deg_s for m in mv]),
            mean_speed_deg_s=med([m["q"].mean_speed_deg_s for m in mv]),
            sparc=med([m["q"].sparc for m in mv]), ldlj=med([m["q"].ldlj for m in mv]),
            lumbar_share=med([m["share"] for m in mv]))
        step = self.step or ""
        self.measures[step] = measure
        n = whole_deg(measure.range_deg)
        out.append(BaselineEvent(t, step, Cue(f"Done. Your comfortable range: {n}°",
                                              f"Done. Your comfortable range: {n} degrees"),
                                 "baseline_step_completed", {"measure": plain(measure)}))
        self._next_step(t, out)

    # -- repositioning ------------------------------------------------------------------------
    def _start_repositioning(self) -> None:
        p = self.params
        target = p.repositioning_share * self.measures["flexion"].range_deg
        level = Level(1, "unsupported_sitting", "terminal", p.repositioning_trials, 1,
                      amplitude=p.repositioning_share, tolerance_deg=p.repositioning_tolerance_deg,
                      hold_s=p.repositioning_hold_s)
        exercise = _REPOSITIONING_EXERCISE
        exercise = replace(exercise, levels=(level,))
        try:
            spec = TargetSpec(target_deg=target, tolerance_deg=p.repositioning_tolerance_deg,
                              hold_s=p.repositioning_hold_s)
        except ExerciseError as exc:
            raise BaselineError(f"repositioning target from the forward range: {exc}") from None
        targets = LevelTargets(exercise.id, 1, self.measures["flexion"].range_deg, target,
                               p.repositioning_tolerance_deg, p.repositioning_hold_s, None,
                               None, None, spec, None)
        self._task = ReproduceTask(exercise, targets, {"flexion_deg": self._anchor}, self.window,
                                   params=p.repetition, smoothness=None)

    def _step_repositioning(self, sample: Sample, out: list[BaselineEvent]) -> None:
        assert self._task is not None
        for ev in self._task.step(sample):
            if isinstance(ev, TaskCue):
                text = {"present_again": "Let's find the target again. Reach it and hold it",
                        "reproduce_now": "Now without the guide: find the same spot and hold "
                                         "still there"}.get(ev.kind)
                if text:
                    out.append(BaselineEvent(ev.time_s, "repositioning", Cue(text, text),
                                             "baseline_prompt", {"kind": ev.kind}))
            elif isinstance(ev, TrialInterrupted):
                out.append(BaselineEvent(ev.time_s, "repositioning", None,
                                         "baseline_movement_interrupted", {"reason": ev.reason}))
            elif isinstance(ev, TrialEnded):
                self._errors.append(ev.result.error_deg)
                n = len(self._errors)
                text = f"Trial {n} of {self.params.repositioning_trials}"
                out.append(BaselineEvent(ev.time_s, "repositioning", Cue(text, text),
                                         "baseline_movement_measured", {"number": n}))
                if n >= self.params.repositioning_trials:
                    assert self._task.targets.target_deg is not None
                    self.repositioning = RepositioningMeasure(self._task.targets.target_deg,
                                                              tuple(self._errors))
                    out.append(BaselineEvent(ev.time_s, "repositioning", None,
                                             "baseline_step_completed",
                                             {"mean_abs_error_deg": plain(
                                                 self.repositioning.mean_abs_error_deg)}))
                    self._next_step(ev.time_s, out)
                    return
        self._value = self._task.live.value_deg


_REPOSITIONING_EXERCISE = Exercise(
    id="baseline_repositioning", name="Repositioning (baseline)", pattern="reproduce",
    direction=direction("flexion_deg", "forward"), reference="start_position",
    instructions=_INSTRUCTIONS["repositioning"], levels=(), schedule=ScheduleConfig(
        self_estimate=False))
