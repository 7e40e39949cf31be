"""One engine for every library exercise: angles in, feedback events out.

`PracticeEngine(exercise, level, baseline)` runs a level's session plan on the angle stream:
its sets (with the level's feedback mode, rest between them) and then a retention block without
feedback (clinical.md "Feedback that teaches": judge learning on retention blocks without
feedback). Each block begins by finding the start position (the angles still for
`start_still_s`); targets are measured from it, or from calibrated neutral for exercises whose
`reference` is "neutral". The pattern's task (feedback/task_*.py) turns samples into
repetitions; the schedule (feedback/schedules.py) decides what the patient gets after each; the
cues (feedback/cues.py) say it in words for screen and speech.

Pure and deterministic: time comes with the samples, decisions are taken per sample, so the same
stream gives the same events however it is cut into batches. Patient inputs (a self-estimate, a
request for feedback) come in through methods and take the time of the latest sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from feedback.cues import (
    Cue,
    estimate_cue,
    performance_cue,
    praise_cue,
    result_cue,
    summary_cue,
    task_cue,
)
from feedback.events import FeedbackEvent, plain
from feedback.library import Exercise, Level
from feedback.practice_events import (
    BlockCompleted,
    BlockStarted,
    ExerciseCompleted,
    FeedbackAvailable,
    MovementCue,
    RepetitionBegun,
    RepetitionFeedback,
    RepetitionInterrupted,
    RepetitionRecorded,
    RestStarted,
    SelfEstimateExpired,
    SelfEstimatePrompt,
    SelfEstimateResult,
    StartPositionFound,
    SummaryFeedback,
)
from feedback.quality import SmoothnessFn, default_smoothness
from feedback.repetitions import RepetitionParams
from feedback.results import BlockResult, summarize_block
from feedback.samples import Sample, SampleWindow, samples_of
from feedback.schedules import FeedbackSchedule
from feedback.targets import HasRanges, LevelTargets, resolve
from feedback.task_functional import FunctionalTask
from feedback.task_hold import HoldTask
from feedback.task_reach import ReachTask, ReproduceTask
from feedback.task_track import TrackTask
from feedback.trial import (
    TaskCue,
    TaskEvent,
    TrialEnded,
    TrialInterrupted,
    TrialResult,
    TrialStarted,
)

_TASKS: dict[str, Any] = {
    "to_target": ReachTask, "dissociate": ReachTask, "reproduce": ReproduceTask,
    "hold": HoldTask, "track": TrackTask, "functional": FunctionalTask,
}
ESTIMATE_OPTIONS: dict[str, tuple[str, ...]] = {
    "functional": ("within", "over"),
}
DEFAULT_OPTIONS = ("short", "on_target", "past")


@dataclass(frozen=True, slots=True)
class Block:
    """One part of a session plan."""

    kind: str  # "set" or "retention"
    index: int
    reps: int
    feedback: str  # schedule mode; "none" for retention
    rest_before_s: float = 0.0


def session_plan(exercise: Exercise, level: Level, *, sets: bool = True, retention: bool = True,
                 rest_s: float | None = None) -> tuple[Block, ...]:
    """The level's sets, each after a rest but the first, then the retention block."""
    rest = exercise.rest_between_sets_s if rest_s is None else rest_s
    blocks = [Block("set", i, level.reps_per_set, level.feedback, rest if i > 1 else 0.0)
              for i in range(1, level.sets + 1)] if sets else []
    if retention:
        blocks.append(Block("retention", 1, exercise.retention_reps, "none",
                            rest if blocks else 0.0))
    if not blocks:
        raise ValueError("a session plan needs sets, a retention block, or both")
    return tuple(blocks)


@dataclass(frozen=True, slots=True)
class EngineParams:
    start_still_s: float = 1.2  # still this long = start position (> detector arming, 1.0 s)
    start_still_range_deg: float = 2.5  # below the detector's still range (3 deg)
    idle_prompt_s: float = 20.0
    repetition: RepetitionParams | None = None


@dataclass(slots=True)
class PracticeState:
    """The live state. `as_dict()` is everything (therapist); `patient_view()` hides the
    patient's own position and zone when the block gives no concurrent feedback."""

    exercise_id: str
    level: int
    pattern: str
    phase: str  # rest, finding_start, active, done
    block_kind: str
    block_index: int
    sets: int
    rep_count: int
    reps_in_block: int
    feedback: str
    concurrent: bool
    time_s: float | None
    rest_remaining_s: float | None
    awaiting_self_estimate: bool
    task: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {k: plain(getattr(self, k)) for k in self.__dataclass_fields__ if k != "task"}
        out.update(plain(self.task))
        return out

    def patient_view(self) -> dict[str, Any]:
        out = self.as_dict()
        guided = self.concurrent or bool(self.task.get("guide_on"))
        if not guided:
            for key in ("value_deg", "zone", "hold_progress", "still_deviation_deg",
                        "limit_value_deg"):
                out[key] = None
            if self.pattern != "track":  # a moving target is the task, not feedback
                for key in ("target_deg", "low_deg", "high_deg"):
                    out[key] = None
        return out


class PracticeEngine:
    """Runs one exercise at one level (see module docstring)."""

    def __init__(self, exercise: Exercise, level: int | Level, baseline: HasRanges, *,
                 plan: Sequence[Block] | None = None, params: EngineParams = EngineParams(),
                 smoothness: SmoothnessFn | None | str = "default") -> None:
        self.exercise = exercise
        self.level = level if isinstance(level, Level) else exercise.level(level)
        self.targets: LevelTargets = resolve(exercise, self.level, baseline)
        self.plan = tuple(plan) if plan is not None else session_plan(exercise, self.level)
        self.params = params
        self.smoothness = default_smoothness() if smoothness == "default" else smoothness
        self.window = SampleWindow()
        self.blocks: list[BlockResult] = []
        self._block_i = -1
        self._phase = "idle"
        self._time_s: float | None = None
        self._rest_until: float | None = None
        self._task: Any = None
        self._schedule: FeedbackSchedule | None = None
        self._results: list[TrialResult] = []
        self._interrupted = 0
        self._pending: tuple[int, TrialResult] | None = None
        self._unshown: tuple[int, TrialResult] | None = None
        self._last_activity_s: float | None = None
        self._idle_flagged = False
        self._still_start: float | None = None
        self._still_stats: dict[str, list[float]] = {}
        self._started = False

    # -- inputs -------------------------------------------------------------------------------
    def update(self, angles: Any) -> list[FeedbackEvent]:
        """Feed an AngleBatch (any length; NaN = missing); events in time order."""
        out: list[FeedbackEvent] = []
        for sample in samples_of(angles):
            out += self.step(sample)
        return out

    def step(self, sample: Sample) -> list[FeedbackEvent]:
        if self._time_s is not None and not sample.time_s > self._time_s:
            raise ValueError("time_s must increase strictly, also across batches")
        out: list[FeedbackEvent] = []
        t = sample.time_s
        self._time_s = t
        self.window.append(sample)
        if not self._started:
            self._started = True
            self._next_block(t, out)
        if self._phase == "rest":
            assert self._rest_until is not None
            if t < self._rest_until:
                return out
            self._begin_block(t, out)
        if self._phase == "finding_start":
            self._find_start(sample, out)
        elif self._phase == "active":
            self._handle(self._task.step(sample), out)
            self._check_idle(t, out)
        return out

    def submit_self_estimate(self, estimate: str | float) -> list[FeedbackEvent]:
        """The patient's estimate of the last repetition: a category (`options` of the prompt)
        or signed degrees (> 0 past the target / over the limit). Then the result is shown."""
        if self._pending is None:
            raise ValueError("no self-estimate is being asked for")
        rep, result = self._pending
        options = ESTIMATE_OPTIONS.get(result.pattern, DEFAULT_OPTIONS)
        estimate_deg: float | None = None
        if isinstance(estimate, str):
            if estimate not in options:
                raise ValueError(f"estimate must be one of {list(options)} or a number of "
                                 f"degrees, got {estimate!r}")
            category = estimate
        elif isinstance(estimate, (int, float)) and not isinstance(estimate, bool) and (
                math.isfinite(estimate) and abs(estimate) <= 90):
            estimate_deg = float(estimate)
            category = _category(result, estimate_deg)
        else:
            raise ValueError(f"estimate must be one of {list(options)} or a number of degrees "
                             f"within +-90, got {estimate!r}")
        self._pending = None
        t = self._time_s or 0.0
        actual = result.category
        diff = None if estimate_deg is None else estimate_deg - result.error_deg
        out: list[FeedbackEvent] = [SelfEstimateResult(
            t, self.exercise.id, rep, category, estimate_deg, actual, result.error_deg,
            category == actual, diff, estimate_cue(category, actual))]
        out.append(self._feedback(t, rep, result))
        return out

    def skip_self_estimate(self) -> list[FeedbackEvent]:
        """The patient declines to guess: show the result straight away."""
        if self._pending is None:
            return []
        rep, result = self._pending
        self._pending = None
        return [self._feedback(self._time_s or 0.0, rep, result)]

    def request_feedback(self) -> list[FeedbackEvent]:
        """Self-controlled feedback: the patient asks for the last repetition's result."""
        if self._unshown is None or self._pending is not None:
            return []
        rep, result = self._unshown
        self._unshown = None
        assert self._schedule is not None
        self._schedule.results_shown += 1
        return self._show(self._time_s or 0.0, rep, result)

    def skip_rest(self) -> None:
        """End the current rest now (the next sample starts the next block)."""
        if self._phase == "rest" and self._time_s is not None:
            self._rest_until = self._time_s

    # -- outputs ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._phase == "done"

    @property
    def block(self) -> Block | None:
        return self.plan[self._block_i] if 0 <= self._block_i < len(self.plan) else None

    @property
    def state(self) -> PracticeState:
        b = self.block or self.plan[-1]
        task = self._task
        live: dict[str, Any] = {}
        if task is not None and self._phase == "active":
            live = {k: getattr(task.live, k) for k in task.live.__dataclass_fields__}
        rest = None
        if self._phase == "rest" and self._rest_until is not None and self._time_s is not None:
            rest = max(0.0, self._rest_until - self._time_s)
        sched = self._schedule
        return PracticeState(
            exercise_id=self.exercise.id, level=self.level.number, pattern=self.exercise.pattern,
            phase=self._phase if self._phase != "idle" else "finding_start",
            block_kind=b.kind, block_index=b.index, sets=self.level.sets,
            rep_count=len(self._results), reps_in_block=b.reps, feedback=b.feedback,
            concurrent=bool(sched and sched.concurrent and self._phase == "active"),
            time_s=self._time_s, rest_remaining_s=rest,
            awaiting_self_estimate=self._pending is not None, task=live,
        )

    # -- blocks -------------------------------------------------------------------------------
    def _next_block(self, t: float, out: list[FeedbackEvent]) -> None:
        self._block_i += 1
        self._task = None
        if self._block_i >= len(self.plan):
            self._phase = "done"
            out.append(ExerciseCompleted(t, self.exercise.id, self.level.number,
                                         tuple(self.blocks)))
            return
        b = self.plan[self._block_i]
        if b.rest_before_s > 0:
            self._phase, self._rest_until = "rest", t + b.rest_before_s
            out.append(RestStarted(t, self.exercise.id, b.rest_before_s, Cue(
                f"Rest for {b.rest_before_s:g} seconds",
                f"Rest for {b.rest_before_s:g} seconds")))
        else:
            self._begin_block(t, out)

    def _begin_block(self, t: float, out: list[FeedbackEvent]) -> None:
        b = self.plan[self._block_i]
        self._phase, self._rest_until = "finding_start", None
        self._schedule = FeedbackSchedule(b.feedback, self.exercise.schedule, b.reps)
        self._results, self._interrupted = [], 0
        self._unshown = None
        self._still_start, self._still_stats = None, {}
        what = "Practice" if b.kind == "set" else "Now without feedback, to see what has stuck"
        label = f"set {b.index} of {self.level.sets}" if b.kind == "set" else "the test block"
        out.append(BlockStarted(
            t, self.exercise.id, self.level.number, b.kind, b.index, b.reps, b.feedback,
            self._schedule.concurrent, self.exercise.instructions,
            Cue(f"{what}: {label}, {b.reps} repetitions. Get into your start position and stay "
                "still for a moment",
                f"{what}: {label}, {b.reps} repetitions. Get into your start position and stay "
                "still for a moment")))

    def _angles(self) -> list[str]:
        ex = self.exercise
        names = [ex.angle]
        if ex.still_angle:
            names.append(ex.still_angle)
        if ex.task is not None:
            names += [ex.task.angle, ex.task.limit_angle]
        return list(dict.fromkeys(names))

    def _find_start(self, sample: Sample, out: list[FeedbackEvent]) -> None:
        """Wait until every angle the exercise uses stays within `start_still_range_deg` for
        `start_still_s`; their means are the anchors. Then replay that stretch into the task so
        its detector is armed at once."""
        p, t = self.params, sample.time_s
        values = {a: getattr(sample, a) for a in self._angles()}
        if not all(math.isfinite(v) for v in values.values()):
            self._still_start = None
            return
        stats = self._still_stats
        fresh = self._still_start is None or any(
            max(stats[a][1], v) - min(stats[a][0], v) > p.start_still_range_deg
            for a, v in values.items())
        if fresh:
            self._still_start = t
            self._still_stats = {a: [v, v, 0.0, 0] for a, v in values.items()}
            stats = self._still_stats
        for a, v in values.items():
            st = stats[a]
            st[0], st[1], st[2], st[3] = min(st[0], v), max(st[1], v), st[2] + v, st[3] + 1
        assert self._still_start is not None
        if t - self._still_start < p.start_still_s:
            return
        anchors = {a: st[2] / st[3] for a, st in stats.items()}
        if self.exercise.reference == "neutral":
            anchors[self.exercise.angle] = 0.0
        cls = _TASKS[self.exercise.pattern]
        self._task = cls(self.exercise, self.targets, anchors, self.window,
                         params=self.params.repetition, smoothness=self.smoothness)
        self._phase = "active"
        self._last_activity_s, self._idle_flagged = t, False
        out.append(StartPositionFound(t, self.exercise.id, anchors,
                                      task_cue("start_found", self.exercise)))
        # Replay the still stretch so a detector is armed at once; a moving target (track)
        # instead starts now, not in the past.
        replay = getattr(self._task, "replay", True)
        for row in self.window.between(self._still_start, t) if replay else [sample]:
            self._handle(self._task.step(row), out)

    def _check_idle(self, t: float, out: list[FeedbackEvent]) -> None:
        if self._phase != "active" or self.exercise.pattern == "track" or (
                self._last_activity_s is None):
            return
        if self._task.live.in_trial:
            self._last_activity_s = t
            self._idle_flagged = False
        elif not self._idle_flagged and t - self._last_activity_s >= self.params.idle_prompt_s:
            self._idle_flagged = True
            out.append(MovementCue(t, self.exercise.id, "idle", task_cue("idle", self.exercise)))

    # -- task events --------------------------------------------------------------------------
    def _handle(self, events: list[TaskEvent], out: list[FeedbackEvent]) -> None:
        b = self.plan[self._block_i]
        sched = self._schedule
        assert sched is not None
        for ev in events:
            if self._phase != "active":
                return
            rep = len(self._results) + 1
            ex_id = self.exercise.id
            if isinstance(ev, TrialStarted):
                if self._pending is not None:
                    out.append(SelfEstimateExpired(ev.time_s, ex_id, self._pending[0]))
                    self._pending = None
                self._last_activity_s = ev.time_s
                out.append(RepetitionBegun(ev.time_s, ex_id, b.kind, b.index, rep,
                                           ev.start_time_s))
            elif isinstance(ev, TrialInterrupted):
                self._interrupted += 1
                self._last_activity_s = ev.time_s
                out.append(RepetitionInterrupted(ev.time_s, ex_id, rep, ev.start_time_s,
                                                 ev.reason, task_cue(ev.reason, self.exercise)))
            elif isinstance(ev, TaskCue):
                if not ev.concurrent or sched.concurrent:
                    out.append(MovementCue(ev.time_s, ex_id, ev.kind,
                                           task_cue(ev.kind, self.exercise)))
            elif isinstance(ev, TrialEnded):
                self._trial_ended(ev, rep, out)

    def _trial_ended(self, ev: TrialEnded, rep: int, out: list[FeedbackEvent]) -> None:
        b, sched, result, t = self.plan[self._block_i], self._schedule, ev.result, ev.time_s
        assert sched is not None
        self._results.append(result)
        self._last_activity_s = t
        out.append(RepetitionRecorded(t, self.exercise.id, self.level.number, b.kind, b.index,
                                      rep, result))
        decision = sched.after_repetition(result.in_tolerance)
        if decision.show_result:
            out += self._show(t, rep, result)
        elif decision.praise_only:
            out.append(RepetitionFeedback(t, self.exercise.id, rep, True, None,
                                          praise_cue(result), None))
        if decision.offer:
            self._unshown = (rep, result)
            out.append(FeedbackAvailable(t, self.exercise.id, rep, Cue(
                "Tap to hear how that one went", "Ask if you want to hear how that one went")))
        if decision.summary_due:
            last = self._results[-self.exercise.schedule.summary_every:]
            out.append(SummaryFeedback(
                t, self.exercise.id, rep - len(last) + 1, rep,
                sum(r.in_tolerance for r in last),
                sum(r.abs_error_deg for r in last) / len(last),
                summary_cue(last, f"Last {len(last)}")))
        if len(self._results) >= b.reps:
            self._complete_block(t, out)

    def _show(self, t: float, rep: int, result: TrialResult) -> list[FeedbackEvent]:
        """The result, after a self-estimate prompt when the exercise asks for one and the
        patient did not just watch the live band (an estimate after concurrent feedback would
        estimate nothing)."""
        sched = self._schedule
        if self.exercise.schedule.self_estimate and not (sched and sched.concurrent):
            self._pending = (rep, result)
            options = ESTIMATE_OPTIONS.get(result.pattern, DEFAULT_OPTIONS)
            q = ("Before you hear it: did your lower back stay within its limit?"
                 if result.pattern == "functional" else
                 "Before you hear it: were you short of the target, on it, or past it?")
            return [SelfEstimatePrompt(t, self.exercise.id, rep, options, Cue(q, q))]
        return [self._feedback(t, rep, result)]

    def _feedback(self, t: float, rep: int, result: TrialResult) -> RepetitionFeedback:
        return RepetitionFeedback(t, self.exercise.id, rep, False, result,
                                  result_cue(result, self.exercise), performance_cue(result))

    def _complete_block(self, t: float, out: list[FeedbackEvent]) -> None:
        b, sched = self.plan[self._block_i], self._schedule
        assert sched is not None
        res = summarize_block(self.exercise.id, self.level.number, b.kind, b.index, b.feedback,
                              b.reps, self._results, self._interrupted, sched.results_shown)
        self.blocks.append(res)
        label = f"Set {b.index} done" if b.kind == "set" else "Test block done"
        out.append(BlockCompleted(t, self.exercise.id, res, summary_cue(self._results, label)))
        self._next_block(t, out)


def _category(result: TrialResult, error_deg: float) -> str:
    if result.pattern == "functional":
        return "over" if error_deg > 0 else "within"
    tol = result.tolerance_deg or 0.0
    return "short" if error_deg < -tol else "past" if error_deg > tol else "on_target"
