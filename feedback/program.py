"""A day's program: exercises at their levels, with sets, retention blocks and rest; its runner.

`DayProgram` lists `ProgramItem`s in order. By default every exercise's retention block (no
feedback) comes at the end of the program, after all the practice: a delayed retention test,
which tells learning from the in-session boost of feedback better than one straight after the
sets (clinical.md "Feedback that teaches": judge learning on retention blocks without feedback,
not on the in-session score). `retention_at="after_sets"` puts it straight after each exercise.
Pain is asked before and after (clinical.md "Grading": part of every session).

`ProgramRunner` drives one `PracticeEngine` per stage over the angle stream:
`runner.update(angles) -> list[event]` (every event has `as_dict()`), `runner.state.as_dict()`
(or `.patient_view()`), patient inputs (`record_pain`, `submit_self_estimate`,
`skip_self_estimate`, `request_feedback`, `skip_rest`), and `runner.outcome()` for progression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from feedback.cues import Cue
from feedback.events import FeedbackEvent
from feedback.exercise import ExerciseError
from feedback.library import Library
from feedback.outcomes import SessionPain, parse_pain
from feedback.practice import Block, EngineParams, PracticeEngine, session_plan
from feedback.quality import SmoothnessFn
from feedback.results import BlockResult
from feedback.samples import Sample, samples_of
from feedback.targets import HasRanges, resolve


class ProgramError(ValueError):
    """A program that cannot run for this patient; lists every problem."""


@dataclass(frozen=True, slots=True)
class ProgramItem:
    exercise_id: str
    level: int
    sets: int | None = None  # None: the level's sets
    retention: bool = True
    rest_after_s: float = 30.0

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class DayProgram:
    items: tuple[ProgramItem, ...]
    retention_at: str = "end"  # or "after_sets"

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        if not self.items:
            raise ProgramError("a program needs at least one exercise")
        if self.retention_at not in ("end", "after_sets"):
            raise ProgramError(f"retention_at must be 'end' or 'after_sets', got "
                               f"{self.retention_at!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"items": [i.as_dict() for i in self.items], "retention_at": self.retention_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DayProgram:
        try:
            items = tuple(ProgramItem(**i) for i in data["items"])
        except (KeyError, TypeError) as exc:
            raise ProgramError(f"malformed program: {exc}") from None
        return cls(items, data.get("retention_at", "end"))

    def validate(self, library: Library, baseline: HasRanges) -> None:
        """Every exercise exists, every level resolves for this baseline; else ProgramError."""
        problems = []
        for n, item in enumerate(self.items, start=1):
            try:
                ex = library[item.exercise_id]
                resolve(ex, ex.level(item.level), baseline)
                if item.sets is not None and not (isinstance(item.sets, int) and
                                                  1 <= item.sets <= 10):
                    raise ExerciseError(f"sets must be 1-10, got {item.sets!r}")
            except (KeyError, ValueError) as exc:
                problems.append(f"item {n} ({item.exercise_id}): {exc}")
        if problems:
            raise ProgramError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Stage:
    item_index: int
    kind: str  # "practice" or "retention"
    plan: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class ProgramEvent(FeedbackEvent):
    audience: ClassVar[str] = "patient"

    def as_dict(self) -> dict[str, Any]:
        out = super(ProgramEvent, self).as_dict()
        out["audience"] = self.audience
        return out


@dataclass(frozen=True, slots=True)
class ProgramStarted(ProgramEvent):
    stages: int
    exercises: tuple[str, ...]
    type: ClassVar[str] = "program_started"


@dataclass(frozen=True, slots=True)
class PainPrompt(ProgramEvent):
    when: str  # "before" / "after"
    cue: Cue
    type: ClassVar[str] = "pain_prompt"


@dataclass(frozen=True, slots=True)
class PainRecorded(ProgramEvent):
    when: str
    value: int
    type: ClassVar[str] = "pain_recorded"
    audience: ClassVar[str] = "therapist"


@dataclass(frozen=True, slots=True)
class ExerciseStarted(ProgramEvent):
    stage: int
    exercise_id: str
    name: str
    level: int
    kind: str
    instructions: str
    cue: Cue
    type: ClassVar[str] = "exercise_started"


@dataclass(frozen=True, slots=True)
class LevelChanged(ProgramEvent):
    """The therapist changed an exercise's level during the session (`change_level`)."""

    exercise_id: str
    from_level: int
    level: int
    restarted: bool  # the exercise was running and starts again at the new level
    cue: Cue
    type: ClassVar[str] = "level_changed"


@dataclass(frozen=True, slots=True)
class ProgramCompleted(ProgramEvent):
    outcome: SessionOutcome
    cue: Cue
    type: ClassVar[str] = "program_completed"


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """What progression needs: pain, and each exercise's retention block."""

    pain_before: int | None
    pain_after: int | None
    retention: dict[str, BlockResult] = field(default_factory=dict)
    blocks: tuple[BlockResult, ...] = ()

    @property
    def pain(self) -> SessionPain | None:
        if self.pain_before is None or self.pain_after is None:
            return None
        return SessionPain(self.pain_before, self.pain_after)

    def as_dict(self) -> dict[str, Any]:
        return {"pain_before": self.pain_before, "pain_after": self.pain_after,
                "retention": {k: v.as_dict(with_results=False) for k, v in self.retention.items()},
                "blocks": [b.as_dict(with_results=False) for b in self.blocks]}


@dataclass(slots=True)
class ProgramState:
    stage: int  # 1-based; 0 before the start
    stages: int
    done: bool
    exercise: dict[str, Any] | None  # PracticeState.as_dict() of the running engine
    patient: dict[str, Any] | None  # PracticeState.patient_view()
    pain_before: int | None
    pain_after: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "stages": self.stages, "done": self.done,
                "exercise": self.exercise, "pain_before": self.pain_before,
                "pain_after": self.pain_after}

    def patient_view(self) -> dict[str, Any]:
        out = self.as_dict()
        out["exercise"] = self.patient
        return out


class ProgramRunner:
    """Runs a DayProgram on the angle stream (see module docstring)."""

    def __init__(self, program: DayProgram, library: Library, baseline: HasRanges, *,
                 params: EngineParams = EngineParams(),
                 smoothness: SmoothnessFn | None | str = "default") -> None:
        program.validate(library, baseline)
        self.program, self.library, self.baseline = program, library, baseline
        self.params, self.smoothness = params, smoothness
        self.stages = self._stages()
        self._stage_i = -1
        self._engine: PracticeEngine | None = None
        self._blocks: list[BlockResult] = []
        self._pain: dict[str, int] = {}
        self._time_s: float | None = None
        self._done = False

    def _stages(self) -> tuple[Stage, ...]:
        stages: list[Stage] = []
        late: list[Stage] = []
        rest = 0.0
        for i, item in enumerate(self.program.items):
            ex = self.library[item.exercise_id]
            lv = ex.level(item.level)
            if item.sets is not None:
                lv = replace(lv, sets=item.sets)
            after = self.program.retention_at == "after_sets"
            plan = session_plan(ex, lv, retention=item.retention and after)
            stages.append(Stage(i, "practice", _with_first_rest(plan, rest)))
            rest = item.rest_after_s
            if item.retention and not after:
                late.append(Stage(i, "retention", session_plan(ex, lv, sets=False)))
        for st in late:
            stages.append(Stage(st.item_index, "retention", _with_first_rest(st.plan, rest)))
            rest = self.program.items[st.item_index].rest_after_s
        return tuple(stages)

    # -- inputs -------------------------------------------------------------------------------
    def update(self, angles: Any) -> list[FeedbackEvent]:
        out: list[FeedbackEvent] = []
        for sample in samples_of(angles):
            out += self.step(sample)
        return out

    def step(self, sample: Sample) -> list[FeedbackEvent]:
        out: list[FeedbackEvent] = []
        if self._done:
            self._time_s = sample.time_s
            return out
        t = sample.time_s
        if self._stage_i < 0:
            self._time_s = t
            out.append(ProgramStarted(t, len(self.stages), tuple(
                i.exercise_id for i in self.program.items)))
            if "before" not in self._pain:
                q = "Before we start: how much pain do you have right now, from 0 to 10?"
                out.append(PainPrompt(t, "before", Cue(q, q)))
            self._start_stage(0, t, out)
        assert self._engine is not None
        out += self._engine.step(sample)
        self._time_s = t
        if self._engine.done:
            self._blocks += self._engine.blocks
            if self._stage_i + 1 < len(self.stages):
                self._start_stage(self._stage_i + 1, t, out)
            else:
                self._finish(t, out)
        return out

    def record_pain(self, when: str, value: Any) -> list[FeedbackEvent]:
        """Pain NRS before or after; OutcomeError for anything but a whole number 0-10."""
        if when not in ("before", "after"):
            raise ValueError(f"when must be 'before' or 'after', got {when!r}")
        self._pain[when] = parse_pain(value, f"pain {when}")
        return [PainRecorded(self._time_s or 0.0, when, self._pain[when])]

    def submit_self_estimate(self, estimate: str | float) -> list[FeedbackEvent]:
        if self._engine is None:
            raise ValueError("no self-estimate is being asked for")
        return self._engine.submit_self_estimate(estimate)

    def skip_self_estimate(self) -> list[FeedbackEvent]:
        return [] if self._engine is None else self._engine.skip_self_estimate()

    def request_feedback(self) -> list[FeedbackEvent]:
        return [] if self._engine is None else self._engine.request_feedback()

    def skip_rest(self) -> None:
        if self._engine is not None:
            self._engine.skip_rest()

    def change_level(self, exercise_id: str, level: int) -> list[FeedbackEvent]:
        """The therapist sets `exercise_id` to `level` mid-session. Stages not started yet use the
        new level; a running stage of that exercise starts again at the new level (its finished
        blocks are kept for the record, its first block without the rest); finished stages stay
        as they were. ProgramError (nothing changed) if the exercise is not in the program or the
        level does not resolve for this baseline."""
        where = [i for i, it in enumerate(self.program.items) if it.exercise_id == exercise_id]
        if not where:
            raise ProgramError(f"{exercise_id!r} is not in today's program")
        ex = self.library[exercise_id]
        try:
            resolve(ex, ex.level(level), self.baseline)
        except (KeyError, ValueError) as exc:
            raise ProgramError(f"{exercise_id}: {exc}") from None
        old = self.program.items[where[0]].level
        items = list(self.program.items)
        for i in where:
            items[i] = replace(items[i], level=level)
        self.program = replace(self.program, items=tuple(items))
        fresh = self._stages()
        cur = self._stage_i
        stages = list(self.stages)
        for j in range(max(cur + 1, 0), len(stages)):
            stages[j] = fresh[j]
        restarted = False
        t = self._time_s or 0.0
        out: list[FeedbackEvent] = []
        running = (not self._done and self._engine is not None and 0 <= cur < len(stages)
                   and self.program.items[stages[cur].item_index].exercise_id == exercise_id)
        if running:
            first = fresh[cur].plan
            stages[cur] = replace(fresh[cur], plan=_with_first_rest(first, 0.0))
        self.stages = tuple(stages)
        text = f"Your therapist set {ex.name} to level {level}"
        out.append(LevelChanged(t, exercise_id, old, level, running, Cue(text, text)))
        if running:
            assert self._engine is not None
            self._blocks += self._engine.blocks
            self._start_stage(cur, t, out)
            restarted = True
        assert restarted == running
        return out

    # -- outputs ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done

    @property
    def engine(self) -> PracticeEngine | None:
        return self._engine

    @property
    def state(self) -> ProgramState:
        eng = self._engine
        st = eng.state if eng is not None and not self._done else None
        return ProgramState(self._stage_i + 1, len(self.stages), self._done,
                            None if st is None else st.as_dict(),
                            None if st is None else st.patient_view(),
                            self._pain.get("before"), self._pain.get("after"))

    def outcome(self) -> SessionOutcome:
        blocks = list(self._blocks)
        if self._engine is not None and not self._engine.done:
            blocks += self._engine.blocks
        retention = {b.exercise_id: b for b in blocks if b.kind == "retention"}
        return SessionOutcome(self._pain.get("before"), self._pain.get("after"), retention,
                              tuple(blocks))

    # -- stages -------------------------------------------------------------------------------
    def _start_stage(self, i: int, t: float, out: list[FeedbackEvent]) -> None:
        self._stage_i = i
        st = self.stages[i]
        item = self.program.items[st.item_index]
        ex = self.library[item.exercise_id]
        self._engine = PracticeEngine(ex, item.level, self.baseline, plan=st.plan,
                                      params=self.params, smoothness=self.smoothness)
        if item.sets is not None:
            self._engine.level = replace(self._engine.level, sets=item.sets)
        words = "Next" if st.kind == "practice" else "Test without feedback"
        text = f"{words}: {ex.name}, level {item.level}"
        out.append(ExerciseStarted(t, i + 1, ex.id, ex.name, item.level, st.kind,
                                   ex.instructions, Cue(text, text)))

    def _finish(self, t: float, out: list[FeedbackEvent]) -> None:
        self._done = True
        q = "All done for today. How much pain do you have now, from 0 to 10?"
        out.append(ProgramCompleted(t, self.outcome(), Cue("All done for today. Well done",
                                                           "All done for today. Well done")))
        if "after" not in self._pain:
            out.append(PainPrompt(t, "after", Cue(q, q)))


def _with_first_rest(plan: Sequence[Block], rest_s: float) -> tuple[Block, ...]:
    if not plan:
        return tuple(plan)
    return (replace(plan[0], rest_before_s=rest_s), *plan[1:])

