"""Graded practice in the live service: a day's program or the baseline assessment per session.

`PracticeService` (one per app, `app.state.practice`, also `SessionManager.practice`) owns the
exercise library, the per-patient records (`api/practice_store.py`) and the current
`PracticeDriver`. A session started with `practice` options (`POST /api/practice/start`, or
`POST /api/session/start` with `practice: {...}`, or `lumbo demo`) gets a driver instead of the
single flexion exercise:

    source → pipeline → (after the calibration) driver → ProgramRunner / BaselineProtocol
                                                        → frame.program + frame.program_events

The driver feeds the runner every angle sample after the calibration bend (as the flexion engine
is fed), keeps the events for the next frame, and writes the patient's record: the session with
its pain ratings and outcome, and, once the program is done and the pain after is in (or the
next session starts), one progression decision per exercise (feedback/progression.py: rule id,
inputs, reason). Targets derive from the patient's latest baseline; without one, from the
calibration's comfortable forward range (forward exercises only). A simulated session performs
the program itself (`practice_script`): the simulated patient knows the program's blocks, rests
and targets, so the demo and the tests run a program end to end.

Everything runs on the event loop (routes are `async def`), so the driver needs no locks.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from api.practice_models import DEFAULT_PATIENT, PracticeStart, ProgramEdit
from api.practice_store import PatientStore, check_patient_id, now_iso, today
from feedback.baseline import Baseline, BaselineError, BaselineParams, BaselineProtocol
from feedback.directions import RANGE_KEYS, direction_for_range
from feedback.library import Library, LibraryError, load_library
from feedback.outcomes import (
    RMDQ_ITEMS,
    RMDQ_WEEKS,
    OutcomeError,
    SessionPain,
    parse_pain,
    pain_trend,
    rmdq_change,
    rmdq_due,
    score_rmdq,
)
from feedback.practice import ESTIMATE_OPTIONS, DEFAULT_OPTIONS
from feedback.program import DayProgram, ProgramError, ProgramItem, ProgramRunner
from feedback.progression import (
    ExerciseProgress,
    ProgressionDecision,
    decide,
    review_baseline,
    therapist_lock,
    therapist_set,
)
from feedback.targets import resolve

log = logging.getLogger(__name__)

# The demo's (and a new patient's) day: the core precision task, then finding neutral; both
# graded on the forward range, which the session's calibration measures when no baseline exists.
DEFAULT_PROGRAM = DayProgram((
    ProgramItem("flexion_to_target", 1, sets=1, rest_after_s=10.0),
    ProgramItem("neutral_hold", 1, sets=1, rest_after_s=10.0),
))
# Nominal forward range used only to check a program before any baseline or calibration exists
# (the simulated patient's calibration measures about this; the real check runs at calibration).
NOMINAL_FLEXION_RANGE_DEG = 40.0
# What the simulated patient can perform (no isolated pelvic tilt in the body model).
SIM_BASELINE_DIRECTIONS = ("flexion", "extension", "lateral_bend_left", "lateral_bend_right",
                           "axial_rotation_left", "axial_rotation_right")
_SIM_DIRECTION = {("flexion_deg", "forward"): "flexion", ("flexion_deg", "backward"): "extension",
                  ("lateral_bend_deg", "right"): "lateral_right",
                  ("lateral_bend_deg", "left"): "lateral_left",
                  ("axial_rotation_deg", "right"): "rotation_right",
                  ("axial_rotation_deg", "left"): "rotation_left"}
_MOVEMENT_ENDS = ("repetition_recorded", "repetition_interrupted")
# trunk amplitude of the simulated patient's "as far as is comfortable" per baseline direction
_SIM_BASELINE_TRUNK_DEG = {"flexion": 80.0, "extension": 25.0, "lateral_bend_left": 30.0,
                           "lateral_bend_right": 30.0, "axial_rotation_left": 20.0,
                           "axial_rotation_right": 20.0}


class PracticeError(ValueError):
    """A practice request that cannot be done as asked (422); the message says why."""


class PracticeConflict(RuntimeError):
    """Not possible in the current state (409): no program running, nothing asked, ..."""


class PracticeNotFound(LookupError):
    """No such exercise (404)."""


# ------------------------------------------------------------------------------------ ranges
@dataclass(frozen=True, slots=True)
class Ranges:
    """What targets derive from: the stored baseline, with the calibration's forward range where
    the baseline has none (`HasRanges`)."""

    baseline: Baseline | None
    calibration_flexion_deg: float | None = None

    def range_deg(self, key: str) -> float:
        if self.baseline is not None and key in self.baseline.directions:
            return self.baseline.range_deg(key)
        if key == "flexion" and self.calibration_flexion_deg is not None:
            return self.calibration_flexion_deg
        have = sorted(self.baseline.directions) if self.baseline is not None else []
        if key == "flexion":
            have.append("(calibration: not yet)")
        raise KeyError(f"no {key} range: the baseline has {have or 'no ranges'}")

    def source(self, key: str) -> str:
        if self.baseline is not None and key in self.baseline.directions:
            return "baseline"
        return "calibration" if key == "flexion" else "none"


def latest_baseline(record: Mapping[str, Any]) -> Baseline | None:
    """The patient's current baseline: per direction its latest measurement (an assessment may
    repeat only some directions; the others keep their earlier ranges)."""
    merged: dict[str, Any] = {}
    repositioning = None
    taken_on = None
    found = False
    for b in record.get("baselines") or []:
        try:
            one = Baseline.from_dict(b["baseline"])
        except (BaselineError, KeyError, TypeError):
            continue
        found = True
        merged.update(one.directions)
        repositioning = one.repositioning or repositioning
        taken_on = one.taken_on or taken_on
    return Baseline(merged, repositioning, taken_on) if found else None


# ------------------------------------------------------------------------------------ driver
@dataclass
class Prepared:
    """A practice session checked and ready before the live session exists."""

    service: PracticeService
    options: PracticeStart
    patient_id: str
    program: DayProgram | None
    baseline: Baseline | None
    baseline_params: BaselineParams | None
    source: tuple[Any, dict[str, Any]] | None = None

    def attach(self, session: Any) -> PracticeDriver:
        driver = PracticeDriver(self, session.session_id)
        session.practice = driver
        self.service.drivers[self.patient_id] = driver
        self.service.latest_driver = driver
        return driver


class PracticeDriver:
    """One session's practice (see module docstring)."""

    def __init__(self, prepared: Prepared, session_id: str) -> None:
        self.service = prepared.service
        self.options = prepared.options
        self.patient_id = prepared.patient_id
        self.mode = prepared.options.mode
        self.program = prepared.program
        self.stored_baseline = prepared.baseline
        self.baseline_params = prepared.baseline_params
        self.session_id = session_id
        self.phase = "calibrating"
        self.message = "Calibrating: stand still, then bend forward slowly once"
        self.runner: ProgramRunner | None = None
        self.protocol: BaselineProtocol | None = None
        self.ranges: Ranges | None = None
        self.finalized = False
        self.decisions: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None
        self._events: list[dict[str, Any]] = []
        self._pain: dict[str, int] = {}
        self._last_t: float | None = None
        self._options: list[str] | None = None
        self._offer: int | None = None
        self._estimates = {"answered": 0, "matched": 0}
        self._instructions: str | None = None
        self._review: dict[str, Any] | None = None
        self._pending_levels: dict[str, int] = {}
        self._items_key: tuple[Any, ...] | None = None  # items() of the last frame, and why
        self._items: list[dict[str, Any]] = []

    # -- live input --------------------------------------------------------------------------
    def on_angles(self, session: Any, angles: Any) -> None:
        """Called by LiveSession for every pipeline output (None or empty before calibration)."""
        if self.phase == "failed":
            return
        pipeline = session.pipeline
        comfortable = getattr(pipeline, "comfortable_flexion_deg", None)
        if comfortable is None:
            return
        try:
            if self.phase == "calibrating":
                self._begin(session, float(comfortable))
            if angles is None or not len(angles) or self.phase not in ("running", "done"):
                return
            rows = self._after_calibration(session, angles)
            if rows is None:
                return
            if self.runner is not None:
                evs = self._take(self.runner.update(rows))
                if self._pending_levels and any(e["type"] in _MOVEMENT_ENDS for e in evs):
                    self._apply_levels(movement_ended=True)
                elif self._pending_levels:
                    self._apply_levels()
            elif self.protocol is not None and not self.protocol.done:
                self._take(self.protocol.update(rows))
        except Exception as exc:  # never let practice break the live stream
            log.exception("practice driver failed in session %s", self.session_id)
            self.phase = "failed"
            self.message = f"Practice stopped because of an error: {type(exc).__name__}: {exc}"
            self._event({"type": "practice_failed", "audience": "therapist",
                         "message": self.message})

    def _after_calibration(self, session: Any, angles: Any) -> Any | None:
        """The samples after the calibration bend (the pipeline re-emits the buffered ones from
        before once calibrated; the calibration bend is not practice) and strictly after the
        last sample fed."""
        t = np.asarray(angles.time_s, dtype=float)
        keep = np.ones(t.shape[0], dtype=bool)
        cal = getattr(session.pipeline, "calibration", None)
        bend_s = getattr(cal, "bend_s", None)
        if bend_s is not None:
            keep &= t > float(bend_s[1])
        if self._last_t is not None:
            keep &= t > self._last_t
        if not keep.any():
            return None
        self._last_t = float(t[keep][-1])
        names = ("flexion_deg", "lateral_bend_deg", "axial_rotation_deg", "pelvic_tilt_deg",
                 "upper_inclination_deg", "lumbar_angular_speed_deg_s")
        cols = {n: np.asarray(getattr(angles, n), dtype=float)[keep] for n in names
                if getattr(angles, n, None) is not None}
        return SimpleNamespace(time_s=t[keep], **cols)

    def _begin(self, session: Any, comfortable_deg: float) -> None:
        self.ranges = Ranges(self.stored_baseline if self.options.baseline_from != "calibration"
                             else None,
                             comfortable_deg if self.options.baseline_from != "stored" else None)
        if self.mode == "baseline":
            assert self.baseline_params is not None
            self.protocol = BaselineProtocol(self.baseline_params, taken_on=today())
            self.phase, self.message = "running", "Baseline assessment"
        else:
            assert self.program is not None
            try:
                self.runner = ProgramRunner(self.program, self.service.library, self.ranges)
            except ProgramError as exc:
                self.phase = "blocked"
                self.message = (f"Today's program cannot run for this patient: {exc}. The "
                                "therapist can change the program or the levels.")
                self._event({"type": "program_blocked", "audience": "therapist",
                             "message": self.message})
                session._set_state("running", self.message)
                return
            for when, value in self._pain.items():  # rated during the calibration
                self.runner.record_pain(when, value)  # (its event was sent then)
            self.phase, self.message = "running", "Today's exercises"
            self.service.record_session_start(self)
        session._set_state("running", "Running")

    # -- events ------------------------------------------------------------------------------
    def _event(self, d: dict[str, Any]) -> None:
        d.setdefault("audience", "patient")
        if "time_s" not in d and self._last_t is not None:
            d["time_s"] = round(self._last_t, 3)
        self._events.append(d)

    def _take(self, events: list[Any]) -> list[dict[str, Any]]:
        out = []
        for ev in events:
            d = ev.as_dict()
            d.setdefault("audience", getattr(ev, "audience", "patient"))
            kind = d.get("type")
            if kind == "self_estimate_prompt":
                self._options = list(d.get("options") or DEFAULT_OPTIONS)
            elif kind == "self_estimate_result":
                self._estimates["answered"] += 1
                self._estimates["matched"] += bool(d.get("matched"))
            elif kind == "feedback_available":
                self._offer = d.get("rep_number")
            elif kind in ("block_started", "exercise_started"):
                self._offer = None
                if d.get("instructions"):
                    self._instructions = d["instructions"]
            elif kind == "baseline_step_started":
                self._instructions = self.protocol.state.get("instructions") if (
                    self.protocol is not None) else None
            self._events.append(d)
            out.append(d)
            if kind == "program_completed":
                self._program_completed()
            elif kind == "baseline_completed":
                self._baseline_completed()
        return out

    def drain_events(self) -> list[dict[str, Any]]:
        out, self._events = self._events, []
        return out

    # -- patient inputs ----------------------------------------------------------------------
    def record_pain(self, when: str, value: Any) -> list[dict[str, Any]]:
        if self.mode != "program":
            raise PracticeConflict("pain is rated around a practice program; this session is "
                                   "a baseline assessment")
        pain = parse_pain(value, f"pain {when}")
        if self.runner is not None:
            out = self._take(self.runner.record_pain(when, pain))
        else:
            self._pain[when] = pain
            out = [{"type": "pain_recorded", "audience": "therapist", "when": when,
                    "value": pain}]
            self._event(dict(out[0]))
        self.service.record_session_pain(self, when, pain)
        if when == "after" and self.phase == "done":
            self.finalize()
        return out

    def submit_self_estimate(self, estimate: str | float) -> list[dict[str, Any]]:
        engine = self.runner.engine if self.runner is not None else None
        if engine is None or not engine.state.awaiting_self_estimate:
            raise PracticeConflict("no self-estimate is being asked for right now (it lapses "
                                   "when the next movement starts)")
        try:
            return self._take(self.runner.submit_self_estimate(estimate))  # type: ignore[union-attr]
        except ValueError as exc:
            raise PracticeError(str(exc)) from None

    def skip_self_estimate(self) -> list[dict[str, Any]]:
        return [] if self.runner is None else self._take(self.runner.skip_self_estimate())

    def request_feedback(self) -> list[dict[str, Any]]:
        if self.runner is None:
            raise PracticeConflict("no program is running")
        out = self._take(self.runner.request_feedback())
        if not out:
            raise PracticeConflict("there is no result to show yet: finish a movement first")
        self._offer = None
        return out

    def skip_rest(self) -> None:
        engine = self.runner.engine if self.runner is not None else None
        if engine is None or engine.state.phase != "rest":
            raise PracticeConflict("there is no rest to skip right now")
        self.runner.skip_rest()  # type: ignore[union-attr]
        self._event({"type": "rest_skipped", "audience": "patient",
                     "exercise_id": engine.exercise.id})

    def change_level(self, exercise_id: str, level: int) -> list[dict[str, Any]]:
        """Apply a therapist's level change to today's program (PracticeError if it cannot run
        for this patient; nothing changes then). The list shows the new level at once; a running
        exercise restarts at it when the movement under way has ended (restarting mid-movement
        would find the "start position" wherever the patient happens to be holding)."""
        if self.mode != "program" or self.program is None:
            return []
        if exercise_id not in {i.exercise_id for i in self.program.items}:
            return []
        if self.runner is not None and not self.runner.done:
            ex = self.service.library[exercise_id]
            try:
                resolve(ex, ex.level(level), self.runner.baseline)
            except (KeyError, ValueError) as exc:
                raise PracticeError(f"{exercise_id}: {exc}") from None
        items = tuple(ProgramItem(i.exercise_id, level, i.sets, i.retention, i.rest_after_s)
                      if i.exercise_id == exercise_id else i for i in self.program.items)
        self.program = DayProgram(items, self.program.retention_at)
        if self.runner is None or self.runner.done:
            return []
        self._pending_levels[exercise_id] = level
        return self._apply_levels()

    def _apply_levels(self, movement_ended: bool = False) -> list[dict[str, Any]]:
        """Pending level changes, between movements: at once when the exercise is resting or
        finding its start position, else just after a movement ended (the patient is back at
        the start, and the pause after it is where the restarted exercise finds its start)."""
        assert self.runner is not None
        eng = self.runner.engine
        wait = eng is not None and not movement_ended and eng.state.phase == "active"
        out: list[dict[str, Any]] = []
        for ex_id, level in list(self._pending_levels.items()):
            if wait and eng is not None and eng.exercise.id == ex_id:
                continue  # it is running: restart it between movements
            del self._pending_levels[ex_id]
            try:
                out += self._take(self.runner.change_level(ex_id, level))
            except ProgramError as exc:  # checked when asked; log if it still fails
                log.error("level change %s -> %s failed: %s", ex_id, level, exc)
        # the runner's program, with the changes still waiting for the movement to end
        self.program = DayProgram(tuple(
            ProgramItem(i.exercise_id, self._pending_levels[i.exercise_id], i.sets, i.retention,
                        i.rest_after_s) if i.exercise_id in self._pending_levels else i
            for i in self.runner.program.items), self.runner.program.retention_at)
        return out

    # -- completion --------------------------------------------------------------------------
    def _program_completed(self) -> None:
        self.phase, self.message = "done", "All done for today"
        self.summary = self._summary()
        self.service.record_session_outcome(self)
        if self.runner is not None and self.runner.outcome().pain_after is not None:
            self.finalize()

    def _baseline_completed(self) -> None:
        assert self.protocol is not None and self.protocol.baseline is not None
        self.phase, self.message = "done", "Assessment complete"
        self._review = self.service.store_baseline(self.patient_id, self.protocol.baseline,
                                                   "assessment", self.session_id)
        self.summary = {"baseline": self.protocol.baseline.as_dict(), "review": self._review,
                        "finalized": True, "decisions": []}
        self.finalized = True
        if self._review is not None:
            self._event({"type": "baseline_reviewed", "audience": "therapist",
                         "decision": self._review})

    def finalize(self) -> list[dict[str, Any]]:
        """Progression decisions for a completed program (once). A program stopped before the
        end gets none: its retention blocks are missing."""
        if self.finalized or self.runner is None or not self.runner.done:
            return self.decisions
        self.finalized = True
        outcome = self.runner.outcome()
        self.decisions = self.service.decide_session(self, outcome)
        self.summary = self._summary()
        for d in self.decisions:
            self._event({"type": "progression_decided", "audience": "therapist", "decision": d})
        msgs = [f"{self.service.exercise_name(d['exercise_id'])}: {d['patient_message']}"
                for d in self.decisions if d.get("patient_message")]
        if msgs:
            text = " ".join(msgs)
            self._event({"type": "progression_message", "audience": "patient",
                         "cue": {"text": text, "audio": text}})
        return self.decisions

    def close(self) -> None:
        """A new session starts for this patient: decide on a finished program now (missing
        pain after counts as missing), and mark an unfinished one incomplete."""
        if self.runner is not None and self.runner.done:
            self.finalize()
        elif self.runner is not None:
            self.service.record_session_outcome(self, completed=False)

    # -- output ------------------------------------------------------------------------------
    def _summary(self) -> dict[str, Any]:
        assert self.runner is not None
        out = self.runner.outcome()
        exercises = []
        for item in self.runner.program.items:
            if any(e["exercise_id"] == item.exercise_id for e in exercises):
                continue
            ret = out.retention.get(item.exercise_id)
            sets = [b for b in out.blocks if b.exercise_id == item.exercise_id and b.kind == "set"]
            exercises.append({
                "exercise_id": item.exercise_id,
                "name": self.service.exercise_name(item.exercise_id), "level": item.level,
                "sets": [b.as_dict(with_results=False) for b in sets],
                "retention": None if ret is None else ret.as_dict(with_results=False),
            })
        pain = out.pain
        return {"pain_before": out.pain_before, "pain_after": out.pain_after,
                "pain_change": None if pain is None else pain.change,
                "exercises": exercises, "self_estimates": dict(self._estimates),
                "decisions": list(self.decisions), "finalized": self.finalized}

    def awaiting(self, st: Any = None) -> list[str]:
        """What the patient is asked for now; `st` the runner's state when already computed."""
        out = []
        pain_before = self._pain.get("before")
        pain_after = self._pain.get("after")
        asked = False
        if self.runner is not None:
            st = st or self.runner.state
            pain_before, pain_after = st.pain_before, st.pain_after
            asked = bool(st.exercise and st.exercise.get("awaiting_self_estimate"))
        if self.mode == "program" and pain_before is None and self.phase in (
                "calibrating", "running"):
            out.append("pain_before")
        if asked and self.phase == "running":
            out.append("self_estimate")
        if self._offer is not None and self.phase == "running":
            out.append("feedback_available")
        if self.mode == "program" and self.phase == "done" and pain_after is None:
            out.append("pain_after")
        return out

    def items(self, stage: int | None = None) -> list[dict[str, Any]]:
        """The program's exercises with their status; `stage` the runner's 1-based stage.
        Every frame asks; the list only changes with the program (a new DayProgram on every
        change), the stage and the runner's start and end, so it is rebuilt only then."""
        if self.program is None:
            return []
        runner = self.runner
        running = runner is not None and not runner.done
        if running and stage is None:
            stage = runner.state.stage  # type: ignore[union-attr]
        last = self._items_key
        if (last is None or last[0] is not self.program or last[1] is not runner
                or last[2:] != (running, stage)):
            self._items = self._build_items(stage)
            self._items_key = (self.program, runner, running, stage)
        return [dict(item) for item in self._items]

    def _build_items(self, stage: int | None) -> list[dict[str, Any]]:
        assert self.program is not None
        lib = self.service.library
        runner = self.runner
        running = runner is not None and not runner.done
        cur_item = None
        left: set[int] = set()
        if running:
            assert runner is not None
            k0 = (runner.state.stage if stage is None else stage) - 1
            if 0 <= k0 < len(runner.stages):
                cur_item = runner.stages[k0].item_index
            left = {s.item_index for k, s in enumerate(runner.stages) if k >= k0}
        out = []
        for n, it in enumerate(self.program.items):
            ex = lib[it.exercise_id]
            if running:
                status = "current" if n == cur_item else ("next" if n in left else "done")
            else:
                status = "done" if runner is not None and runner.done else "next"
            out.append({"index": n, "exercise_id": it.exercise_id, "name": ex.name,
                        "level": it.level, "levels": len(ex.levels), "pattern": ex.pattern,
                        "angle": ex.angle, "direction": ex.direction.name, "status": status,
                        "sets": it.sets if it.sets is not None else ex.level(it.level).sets,
                        "retention": it.retention,
                        "parameters": ex.level(it.level).as_dict()})
        return out

    def frame(self) -> dict[str, Any]:
        """The `program` field of a live frame (ProgramFrame)."""
        st = self.runner.state if self.runner is not None else None
        out: dict[str, Any] = {"patient_id": self.patient_id, "mode": self.mode,
                               "phase": self.phase, "message": self.message,
                               "items": self.items(None if st is None else st.stage),
                               "awaiting": self.awaiting(st),
                               "pain_before": self._pain.get("before"),
                               "pain_after": self._pain.get("after"),
                               "estimates": dict(self._estimates)}
        if st is not None:
            assert self.runner is not None
            out.update(stage=st.stage, stages=st.stages, pain_before=st.pain_before,
                       pain_after=st.pain_after, exercise=st.exercise, patient=st.patient)
            if not self.runner.done and 1 <= st.stage <= len(self.runner.stages):
                out["stage_kind"] = self.runner.stages[st.stage - 1].kind
                out["instructions"] = self._instructions
            eng = self.runner.engine
            if "self_estimate" in out["awaiting"] and eng is not None:
                out["estimate_options"] = self._options or list(
                    ESTIMATE_OPTIONS.get(eng.exercise.pattern, DEFAULT_OPTIONS))
        if self.protocol is not None:
            b = dict(self.protocol.state)
            b["step_name"] = _step_name(b.get("step"))
            out["baseline"] = b
            out["instructions"] = b.get("instructions") or None
            out["stage"], out["stages"] = b["step_number"], b["steps"]
        if self.summary is not None:
            out["summary"] = self.summary
        return out


def _step_name(step: str | None) -> str | None:
    if step is None:
        return None
    if step == "repositioning":
        return "Finding a position again"
    d = direction_for_range(step)
    return d.words[0].upper() + d.words[1:]


# ------------------------------------------------------------------------------------ scripts
def _share(params: Any, sim_direction: str) -> float:
    if sim_direction == "flexion":
        return float(params.lumbar_share)
    if sim_direction == "extension":
        return float(params.extension_lumbar_share)
    if sim_direction.startswith("lateral"):
        return float(params.lateral_lumbar_share)
    return float(params.rotation_lumbar_share)


def program_blocks(runner: ProgramRunner, ranges: Ranges, params: Any) -> list[Any]:
    """The simulated patient's movements for every block of the program: bends to the level's
    target (lumbar degrees turned into trunk degrees with the body model's lumbar share), some
    scatter and undershoot while practising, closer to the target in the retention blocks."""
    from sensors.simulation.sessions import PracticeBlock

    blocks = []
    lib = runner.library
    for st in runner.stages:
        item = runner.program.items[st.item_index]
        ex = lib[item.exercise_id]
        lv = ex.level(item.level)
        sim_dir = _SIM_DIRECTION.get((ex.angle, ex.direction.name))
        for b in st.plan:
            rest = b.rest_before_s
            if sim_dir is None or ex.pattern not in ("to_target", "hold"):
                blocks.append(PracticeBlock("flexion", 0.0, b.reps, rest, kind="stand"))
                continue
            share = _share(params, sim_dir)
            targets = resolve(ex, lv, ranges)
            tol = float(targets.tolerance_deg or 3.0)
            if ex.pattern == "hold":
                away = (tol + 3.0 + 5.0) / share  # leave the band by a clear margin
                blocks.append(PracticeBlock(sim_dir, away, b.reps, rest, kind="hold",
                                            hold_s=targets.hold_s + 1.5))
                continue
            target = float(targets.target_deg or 0.0) / share
            learning = b.kind == "set" and b.index == 1
            spread = 0.35 * tol / share if b.kind == "set" else 0.2 * tol / share
            bias = -0.3 * tol / share if learning else 0.0
            # every movement clearly past the detector's start threshold, so each one counts
            floor = max(0.7 * target, (ex.start_threshold_min_deg + 3.0) / share)
            blocks.append(PracticeBlock(sim_dir, target, b.reps, rest, spread_deg=spread,
                                        bias_deg=bias, hold_s=max(0.8, targets.hold_s + 0.6),
                                        pause_s=3.0 if b.feedback not in ("continuous",) else 2.5,
                                        min_deg=floor))
    return blocks


def baseline_blocks(params: BaselineParams) -> list[Any]:
    from sensors.simulation.sessions import PracticeBlock

    out = []
    for key in params.directions:
        d = direction_for_range(key)
        sim_dir = _SIM_DIRECTION.get((d.angle, d.name))
        if sim_dir is None:
            out.append(PracticeBlock("flexion", 0.0, params.moves_per_direction, kind="stand"))
        else:
            out.append(PracticeBlock(sim_dir, _SIM_BASELINE_TRUNK_DEG[key],
                                     params.moves_per_direction, 0.0, hold_s=0.6, pause_s=2.0,
                                     out_s=2.0, back_s=2.0))
    return out


# ------------------------------------------------------------------------------------ service
class PracticeService:
    """Library, patient records and the current driver (see module docstring)."""

    def __init__(self, data_dir: Any = None, *, library: Library | None = None,
                 default_source: str = "simulated") -> None:
        self.library = library or load_library()
        self.store = PatientStore(data_dir)
        # each patient's latest practice driver (sessions of several patients run at once)
        self.drivers: dict[str, PracticeDriver] = {}
        self.latest_driver: PracticeDriver | None = None
        self.default_source = default_source

    @property
    def driver(self) -> PracticeDriver | None:
        """The most recently started practice driver, whoever's (a single-patient view)."""
        return self.latest_driver

    def driver_of(self, patient_id: str | None) -> PracticeDriver | None:
        """The patient's latest driver (`None`: the most recent one, whoever's)."""
        return self.latest_driver if patient_id is None else self.drivers.get(patient_id)

    # -- helpers -----------------------------------------------------------------------------
    def exercise_name(self, exercise_id: str) -> str:
        return self.library[exercise_id].name if exercise_id in self.library else exercise_id

    def exercise(self, exercise_id: str) -> Any:
        if exercise_id not in self.library:
            raise PracticeNotFound(f"no exercise {exercise_id!r}; known: {self.library.ids()}")
        return self.library[exercise_id]

    def record(self, patient_id: str) -> dict[str, Any]:
        return self.store.load(check_patient_id(patient_id))

    def program_of(self, record: Mapping[str, Any]) -> DayProgram:
        """The patient's day's program with every level from the patient's progress."""
        raw = record.get("program")
        prog = DEFAULT_PROGRAM
        if raw:
            try:
                prog = DayProgram.from_dict(raw)
            except (ProgramError, TypeError, ValueError):
                log.error("stored program of %s unreadable; using the default",
                          record.get("patient_id"))
        progress = record.get("progress") or {}
        items = []
        for it in prog.items:
            p = progress.get(it.exercise_id)
            level = int(p["level"]) if p else it.level
            items.append(ProgramItem(it.exercise_id, level, it.sets, it.retention,
                                     it.rest_after_s))
        return DayProgram(tuple(items), prog.retention_at)

    def progress_of(self, record: Mapping[str, Any], exercise_id: str,
                    default_level: int = 1) -> ExerciseProgress:
        p = (record.get("progress") or {}).get(exercise_id)
        return ExerciseProgress.from_dict(p) if p else ExerciseProgress(exercise_id,
                                                                          default_level)

    def active_driver(self, patient_id: str | None = None) -> PracticeDriver:
        d = self.driver_of(patient_id)
        if d is None:
            raise PracticeConflict("no practice session for this patient: start today's "
                                   "exercises first")
        return d

    # -- session start -----------------------------------------------------------------------
    def prepare(self, req: Any, patient_id: str | None = None) -> Prepared | None:
        """SessionManager hook, before the source is made: check the practice options of a start
        request (PracticeError: the start is refused with its message) and, for the simulated
        patient, build the source that performs this program. The record is the session's
        patient's (`patient_id`, an account id) or, without accounts, `practice.patient_id`."""
        opts: PracticeStart | None = getattr(req, "practice", None)
        if opts is None:
            return None
        pid = check_patient_id(patient_id or opts.patient_id)
        record = self.record(pid)
        baseline = latest_baseline(record) if opts.baseline_from != "calibration" else None
        if opts.baseline_from == "stored" and baseline is None:
            raise PracticeError(f"patient {pid} has no stored baseline: run the "
                                "baseline assessment first, or use baseline_from 'auto'")
        simulated = self._simulated(req) and opts.simulated_script == "auto"
        prepared = Prepared(self, opts, pid, None, baseline, None)
        if opts.mode == "program":
            program = self.program_of(record)
            provisional = Ranges(baseline, None if opts.baseline_from == "stored"
                                 else NOMINAL_FLEXION_RANGE_DEG)
            try:
                runner = ProgramRunner(program, self.library, provisional, smoothness=None)
            except ProgramError as exc:
                raise PracticeError(f"today's program cannot run for patient "
                                    f"{pid}: {exc}") from None
            prepared.program = program
            if simulated:
                prepared.source = self._sim_source(req, program_blocks(
                    runner, provisional, self._sim_params(req)))
        else:
            directions = opts.directions
            if directions is None:
                directions = list(SIM_BASELINE_DIRECTIONS if simulated else RANGE_KEYS)
            bad = [d for d in directions if d not in RANGE_KEYS]
            if bad or not directions:
                raise PracticeError(f"baseline directions must come from {list(RANGE_KEYS)}, "
                                    f"got {bad or directions}")
            trials = opts.repositioning_trials
            if trials is None:
                trials = 0 if simulated else 3
            try:
                params = BaselineParams(directions=tuple(directions),
                                        repositioning_trials=trials)
            except BaselineError as exc:
                raise PracticeError(str(exc)) from None
            prepared.baseline_params = params
            if simulated:
                if trials:
                    raise PracticeError("the simulated patient cannot do the repositioning "
                                        "test; set repositioning_trials to 0")
                prepared.source = self._sim_source(req, baseline_blocks(params))
        previous = self.drivers.get(pid)
        if previous is not None:
            previous.close()
        return prepared

    def _simulated(self, req: Any) -> bool:
        source = getattr(req, "source", "simulated")
        fields_set = getattr(req, "model_fields_set", set())
        if "source" not in fields_set and self.default_source != "simulated":
            return False
        return source == "simulated"

    @staticmethod
    def _sim_params(req: Any) -> Any:
        from sensors import simulation as sim

        return sim.PatientParams(seed=int(getattr(req, "seed", 0)))

    def _sim_source(self, req: Any, blocks: list[Any]) -> tuple[Any, dict[str, Any]]:
        from sensors import simulation as sim
        from sensors.simulation.sessions import practice_script

        script = practice_script(blocks, seed=int(getattr(req, "seed", 0)),
                                 calibration_deg=float(getattr(req, "calibration_deg", 80.0)))
        patient = sim.SimulatedPatient(script, self._sim_params(req))
        source = sim.SimulatedPatientSource(patient, realtime=bool(getattr(req, "realtime", True)),
                                            speed=float(getattr(req, "speed", 1.0)), loop=False)
        return source, {"patient": patient, "script": script, "source": source}

    # -- records -----------------------------------------------------------------------------
    def record_session_start(self, driver: PracticeDriver) -> None:
        rec = self.record(driver.patient_id)
        rec["sessions"].append({
            "session_id": driver.session_id, "started_at": now_iso(), "date": today(),
            "completed": False, "pain_before": driver._pain.get("before"),
            "pain_after": driver._pain.get("after"),
            "exercises": [i.as_dict() for i in (driver.program.items if driver.program else ())],
        })
        self.store.save(rec)

    def _session_entry(self, rec: dict[str, Any], session_id: str) -> dict[str, Any] | None:
        for s in reversed(rec["sessions"]):
            if s.get("session_id") == session_id:
                return s
        return None

    def record_session_pain(self, driver: PracticeDriver, when: str, value: int) -> None:
        rec = self.record(driver.patient_id)
        entry = self._session_entry(rec, driver.session_id)
        if entry is None:  # rated during the calibration: the entry comes at its end
            return
        entry[f"pain_{when}"] = value
        self.store.save(rec)

    def record_session_outcome(self, driver: PracticeDriver, completed: bool = True) -> None:
        assert driver.runner is not None
        rec = self.record(driver.patient_id)
        entry = self._session_entry(rec, driver.session_id)
        if entry is None:
            return
        out = driver.runner.outcome()
        entry.update(completed=completed, ended_at=now_iso(), pain_before=out.pain_before,
                     pain_after=out.pain_after, outcome=out.as_dict(),
                     self_estimates=dict(driver._estimates))
        self.store.save(rec)

    def decide_session(self, driver: PracticeDriver, outcome: Any) -> list[dict[str, Any]]:
        assert driver.program is not None
        rec = self.record(driver.patient_id)
        decisions = []
        seen: set[str] = set()
        for item in driver.program.items:
            if item.exercise_id in seen:
                continue
            seen.add(item.exercise_id)
            ex = self.library[item.exercise_id]
            progress = self.progress_of(rec, item.exercise_id, item.level)
            if progress.level != item.level:  # today's level is what was practised
                progress = ExerciseProgress(item.exercise_id, item.level, progress.locked,
                                            progress.failures)
            d, p = decide(progress, ex, outcome.retention.get(item.exercise_id), outcome.pain)
            rec["progress"][item.exercise_id] = p.as_dict()
            decisions.append(self._log_decision(rec, d, driver.session_id))
        entry = self._session_entry(rec, driver.session_id)
        if entry is not None:
            entry.update(pain_before=outcome.pain_before, pain_after=outcome.pain_after,
                         decided=True)
        self._sync_program_levels(rec)
        self.store.save(rec)
        return decisions

    @staticmethod
    def _log_decision(rec: dict[str, Any], d: ProgressionDecision,
                      session_id: str | None = None) -> dict[str, Any]:
        entry = {**d.as_dict(), "at": now_iso(), "session_id": session_id}
        rec["decisions"].append(entry)
        return entry

    def _sync_program_levels(self, rec: dict[str, Any]) -> None:
        if rec.get("program"):
            prog = self.program_of(rec)
            rec["program"] = prog.as_dict()

    def store_baseline(self, patient_id: str, baseline: Baseline, source: str,
                       session_id: str | None = None) -> dict[str, Any] | None:
        rec = self.record(patient_id)
        previous = latest_baseline(rec)
        rec["baselines"].append({"recorded_at": now_iso(), "source": source,
                                 "session_id": session_id, "baseline": baseline.as_dict()})
        review = None
        if previous is not None:
            review = self._log_decision(rec, review_baseline(previous, baseline), session_id)
        self.store.save(rec)
        return review

    # -- therapist ---------------------------------------------------------------------------
    def set_level(self, patient_id: str, exercise_id: str, level: int | None,
                  locked: bool | None, reason: str, therapist: str | None
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Set and/or lock an exercise's level; returns (decisions, live events). A running
        program of this patient follows at once; a level that cannot run for the patient's
        baseline is refused (PracticeError) before anything is stored."""
        ex = self.exercise(exercise_id)
        if level is None and locked is None:
            raise PracticeError("give level, locked, or both")
        rec = self.record(patient_id)
        prog_levels = {i.exercise_id: i.level for i in self.program_of(rec).items}
        progress = self.progress_of(rec, exercise_id, prog_levels.get(exercise_id, 1))
        decisions, events = [], []
        why = reason.strip() or "no reason given"
        if level is not None:
            try:
                ex.level(level)
            except LibraryError as exc:
                raise PracticeError(str(exc).split(": ", 2)[-1]) from None
            driver = self.drivers.get(patient_id)
            live = driver is not None and driver.runner is not None and not driver.runner.done
            if not live:
                self._check_level_fits(rec, exercise_id, level)
            if driver is not None:
                events = driver.change_level(exercise_id, level)  # the runner checks its own
            d, progress = therapist_set(progress, ex, level, why, therapist)
            decisions.append(self._log_decision(rec, d))
        if locked is not None and locked != progress.locked:
            d, progress = therapist_lock(progress, why, therapist, lock=locked)
            decisions.append(self._log_decision(rec, d))
        rec["progress"][exercise_id] = progress.as_dict()
        self._sync_program_levels(rec)
        self.store.save(rec)
        live_driver = self.drivers.get(patient_id)
        if live_driver is not None:
            for d in decisions:
                live_driver._event({"type": "progression_decided", "audience": "therapist",
                                    "decision": d})
        return decisions, events

    def _check_level_fits(self, rec: Mapping[str, Any], exercise_id: str, level: int) -> None:
        ex = self.library[exercise_id]
        ranges = Ranges(latest_baseline(rec), NOMINAL_FLEXION_RANGE_DEG)
        try:
            resolve(ex, ex.level(level), ranges)
        except KeyError:
            return  # no range yet: checked when the baseline exists
        except ValueError as exc:
            raise PracticeError(str(exc)) from None

    def edit_program(self, patient_id: str, edit: ProgramEdit, therapist: str | None = None
                     ) -> tuple[DayProgram, list[dict[str, Any]]]:
        rec = self.record(patient_id)
        problems = []
        items = []
        for n, it in enumerate(edit.items, start=1):
            if it.exercise_id not in self.library:
                problems.append(f"item {n}: no exercise {it.exercise_id!r}; known: "
                                f"{self.library.ids()}")
                continue
            ex = self.library[it.exercise_id]
            level = it.level if it.level is not None else self.progress_of(
                rec, it.exercise_id).level
            if not 1 <= level <= len(ex.levels):
                problems.append(f"item {n} ({it.exercise_id}): has levels 1-{len(ex.levels)}, "
                                f"got {level}")
                continue
            items.append(ProgramItem(it.exercise_id, level, it.sets, it.retention,
                                     it.rest_after_s))
        if problems:
            raise PracticeError("; ".join(problems))
        program = DayProgram(tuple(items), edit.retention_at)
        ranges = Ranges(latest_baseline(rec), NOMINAL_FLEXION_RANGE_DEG)
        try:
            program.validate(self.library, ranges)
        except ProgramError as exc:
            raise PracticeError(str(exc).replace(
                "measure it first", "measure it first (baseline assessment, or enter it)")
            ) from None
        decisions = []
        why = edit.reason.strip() or "program edited"
        for it in items:
            progress = self.progress_of(rec, it.exercise_id, it.level)
            if it.exercise_id in rec["progress"] and progress.level == it.level:
                continue
            if it.exercise_id not in rec["progress"]:
                rec["progress"][it.exercise_id] = ExerciseProgress(it.exercise_id,
                                                                   it.level).as_dict()
                continue
            d, progress = therapist_set(progress, self.library[it.exercise_id], it.level, why,
                                        therapist)
            rec["progress"][it.exercise_id] = progress.as_dict()
            decisions.append(self._log_decision(rec, d))
        rec["program"] = program.as_dict()
        self.store.save(rec)
        return program, decisions

    def add_manual_baseline(self, patient_id: str, ranges: Mapping[str, float],
                            taken_on: str | None) -> dict[str, Any]:
        try:
            b = Baseline.from_ranges(taken_on=taken_on or today(), **ranges)
        except BaselineError as exc:
            raise PracticeError(str(exc)) from None
        review = self.store_baseline(patient_id, b, "manual")
        return {"baseline": b.as_dict(), "review": review}

    # -- outcomes ----------------------------------------------------------------------------
    def rmdq_status(self, rec: Mapping[str, Any], on: dt.date | None = None) -> dict[str, Any]:
        start = dt.date.fromisoformat(rec.get("start_date") or today())
        week = max(0, ((on or dt.date.today()) - start).days // 7)
        done = [int(r["week"]) for r in rec.get("rmdq") or []]
        nxt = next((w for w in RMDQ_WEEKS if w >= week and w not in done), None)
        return {"week": week, "due": rmdq_due(week, done), "done_weeks": done,
                "schedule_weeks": list(RMDQ_WEEKS), "next_due_week": nxt, "items": RMDQ_ITEMS}

    def submit_rmdq(self, patient_id: str, answers: list[Any]) -> dict[str, Any]:
        rec = self.record(patient_id)
        score = score_rmdq(answers)  # OutcomeError -> 422
        status = self.rmdq_status(rec)
        norm = [a if isinstance(a, bool) else str(a).strip().lower() == "yes" for a in answers]
        entry = {"at": now_iso(), "date": today(), "week": status["week"], "score": score,
                 "answers": norm, "scheduled": status["due"]}
        rec["rmdq"] = [r for r in rec["rmdq"] if int(r["week"]) != status["week"]] + [entry]
        self.store.save(rec)
        return entry

    def trends(self, patient_id: str) -> dict[str, Any]:
        rec = self.record(patient_id)
        pain = []
        both = []
        for s in rec.get("sessions") or []:
            b, a = s.get("pain_before"), s.get("pain_after")
            if b is None and a is None:
                continue
            pain.append({"session_id": s.get("session_id"), "date": s.get("date"),
                         "before": b, "after": a,
                         "change": None if b is None or a is None else a - b,
                         "completed": bool(s.get("completed"))})
            if b is not None and a is not None:
                both.append(SessionPain(b, a))
        rmdq = [{"date": r["date"], "week": r["week"], "score": r["score"]}
                for r in sorted(rec.get("rmdq") or [], key=lambda r: r["at"])]
        change = None
        if len(rmdq) >= 2:
            change = rmdq_change(rmdq[0]["score"], rmdq[-1]["score"]).as_dict()
        return {"patient_id": patient_id, "pain": pain,
                "pain_trend": pain_trend(both).as_dict() if both else None,
                "rmdq": rmdq, "rmdq_change": change, "rmdq_status": self.rmdq_status(rec)}

    def patient_view(self, patient_id: str) -> dict[str, Any]:
        """What both pages show about a patient outside the live session."""
        rec = self.record(patient_id)
        program = self.program_of(rec)
        baseline = latest_baseline(rec)
        ranges = Ranges(baseline, None)
        levels = []
        ids = list(dict.fromkeys([i.exercise_id for i in program.items]
                                 + sorted(rec.get("progress") or {})))
        for ex_id in ids:
            if ex_id not in self.library:
                continue
            ex = self.library[ex_id]
            p = self.progress_of(rec, ex_id, next((i.level for i in program.items
                                                   if i.exercise_id == ex_id), 1))
            lv = ex.level(p.level)
            key = ex.direction.range_key if ex.pattern != "functional" else None
            levels.append({**p.as_dict(), "name": ex.name, "levels": len(ex.levels),
                           "in_program": any(i.exercise_id == ex_id for i in program.items),
                           "parameters": lv.as_dict(),
                           "changed_parameter": ex.changed_parameter(p.level),
                           "range_from": ranges.source(key) if key else None})
        items = []
        for it in program.items:
            ex = self.library[it.exercise_id]
            items.append({**it.as_dict(), "name": ex.name, "instructions": ex.instructions,
                          "levels": len(ex.levels), "pattern": ex.pattern, "angle": ex.angle,
                          "direction": ex.direction.name,
                          "parameters": ex.level(it.level).as_dict()})
        return {"patient_id": patient_id, "program": {"items": items,
                                                      "retention_at": program.retention_at},
                "levels": levels, "baseline": None if baseline is None else baseline.as_dict(),
                "baselines": len(rec.get("baselines") or []),
                "decisions": len(rec.get("decisions") or []),
                "sessions": len(rec.get("sessions") or []),
                "rmdq_status": self.rmdq_status(rec)}

    def state(self, patient_id: str | None = None) -> dict[str, Any]:
        d = self.driver_of(patient_id)
        if d is None:
            return {"active": False, "patient_id": patient_id or DEFAULT_PATIENT,
                    "program": None}
        return {"active": True, "patient_id": d.patient_id, "session_id": d.session_id,
                "program": d.frame()}


__all__ = ["DEFAULT_PROGRAM", "OutcomeError", "PracticeConflict", "PracticeDriver",
           "PracticeError", "PracticeNotFound", "PracticeService", "Prepared", "Ranges"]
