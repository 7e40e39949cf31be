"""Messages of graded practice: the frame fields, the start options and the REST models.

Kept apart from `api/schema.py` (which imports the frame and start parts from here) so that the
practice wiring stays in its own modules; everything here is additive to schema_version 1: a
frame without a program has `program: null` and `program_events: []`, and a page that does not
know the fields ignores them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PATIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PATIENT_ID_RE = re.compile(PATIENT_ID_PATTERN)
DEFAULT_PATIENT = "demo"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------- start options


class PracticeStart(_Strict):
    """Run graded practice in the session instead of the single flexion exercise: the patient's
    day's program (`mode: program`) or the guided baseline assessment (`mode: baseline`)."""

    patient_id: str = Field(DEFAULT_PATIENT, pattern=PATIENT_ID_PATTERN,
                            description="whose program, levels and baseline")
    mode: Literal["program", "baseline"] = "program"
    baseline_from: Literal["auto", "stored", "calibration"] = Field(
        "auto", description="program targets from: `stored` the patient's latest baseline; "
        "`calibration` the session's calibration bend (forward range only); `auto` the stored "
        "baseline, with the calibration's forward range where the baseline has none",
    )
    directions: list[str] | None = Field(
        None, description="baseline: the ranges to measure (default: every direction; with the "
        "simulated patient's own script, the directions it can perform)",
    )
    repositioning_trials: int | None = Field(
        None, ge=0, le=10, description="baseline: repositioning trials (default 3; 0 with the "
        "simulated patient's own script)",
    )
    simulated_script: Literal["auto", "as_requested"] = Field(
        "auto", description="simulated source: `auto` the simulated patient performs this "
        "program (or baseline); `as_requested` it runs the request's `script`",
    )


# ---------------------------------------------------------------------------- frame fields


class ProgramItemView(BaseModel):
    """One exercise of the day's program as the pages list it."""

    model_config = ConfigDict(extra="allow")

    index: int = Field(description="0-based position in the program")
    exercise_id: str
    name: str
    level: int
    levels: int = Field(description="number of levels of the exercise")
    pattern: str
    angle: str = Field(description="the AngleBatch field the exercise moves")
    direction: str
    status: Literal["next", "current", "done"] = "next"


class ProgramFrame(BaseModel):
    """Graded practice in this session (null when the session runs the single flexion exercise).

    `exercise` is the running engine's full state (therapist); `patient` is what the patient may
    see: the own position, zone and band are null in blocks without concurrent feedback
    (terminal, bandwidth, ... and retention blocks), so a page shows them only when not null."""

    model_config = ConfigDict(extra="allow")

    patient_id: str
    mode: Literal["program", "baseline"]
    phase: Literal["calibrating", "running", "done", "blocked", "failed"] = Field(
        description="calibrating: waiting for the calibration; blocked: the program cannot run "
        "for this patient (see message); failed: an internal error (see message)")
    message: str = ""
    stage: int = Field(0, description="1-based stage of the program (0 before the start)")
    stages: int = 0
    stage_kind: Literal["practice", "retention"] | None = None
    items: list[ProgramItemView] = Field(default_factory=list)
    instructions: str | None = Field(None, description="the running exercise's instructions")
    exercise: dict[str, Any] | None = Field(None, description="PracticeState.as_dict()")
    patient: dict[str, Any] | None = Field(None, description="PracticeState.patient_view()")
    pain_before: int | None = Field(None, description="NRS 0-10; null: not entered")
    pain_after: int | None = None
    awaiting: list[str] = Field(
        default_factory=list, description="what the patient is asked for now: pain_before, "
        "self_estimate, pain_after, feedback_available")
    estimate_options: list[str] | None = Field(None, description="self-estimate answers")
    estimates: dict[str, int] = Field(
        default_factory=dict, description="self-estimates this session: answered, matched")
    baseline: dict[str, Any] | None = Field(None, description="baseline mode: protocol state")
    summary: dict[str, Any] | None = Field(
        None, description="once done: outcome per exercise, pain and progression decisions")


class ProgramEventModel(BaseModel):
    """A practice event (`as_dict()` of a feedback/ event): `type`, `time_s`, `audience`
    (`patient`: feedback, prompts and cues with `cue.text` and `cue.audio`; `therapist`:
    records such as every repetition's full result), plus its own fields."""

    model_config = ConfigDict(extra="allow")

    type: str
    audience: Literal["patient", "therapist"] = "patient"


# ---------------------------------------------------------------------------- REST requests


class PracticeStartRequest(PracticeStart):
    """`POST /api/practice/start`: practice options plus the session's source options
    (anything `POST /api/session/start` takes, in `session`)."""

    session: dict[str, Any] = Field(default_factory=dict,
                                    description="StartSessionRequest fields (source, speed, ...)")


class PainRequest(_Strict):
    when: Literal["before", "after"] = Field(description="before or after today's practice")
    value: Any = Field(description="NRS: a whole number from 0 (no pain) to 10 (worst pain "
                       "imaginable)", examples=[3])


class SelfEstimateRequest(_Strict):
    estimate: str | float = Field(
        description="`short`, `on_target` or `past` (functional tasks: `within`, `over`), or "
        "signed degrees (> 0 past the target)", examples=["on_target"])


class ProgramItemEdit(_Strict):
    exercise_id: str
    level: int | None = Field(None, ge=1, description="default: the patient's current level")
    sets: int | None = Field(None, ge=1, le=10, description="default: the level's sets")
    retention: bool = True
    rest_after_s: float = Field(30.0, ge=0.0, le=600.0)


class ProgramEdit(_Strict):
    """The day's program: exercises in order, each at a level."""

    items: list[ProgramItemEdit] = Field(min_length=1, max_length=12)
    retention_at: Literal["end", "after_sets"] = "end"
    reason: str = Field("", max_length=500, description="why (kept with the level decisions)")


class LevelRequest(_Strict):
    level: int | None = Field(None, ge=1, description="set this level")
    locked: bool | None = Field(None, description="lock (no automatic progression) or unlock")
    reason: str = Field("", max_length=500)
    therapist: str | None = Field(None, max_length=100)


class RmdqRequest(_Strict):
    answers: list[Any] = Field(description="24 answers, yes/no (true/false), in item order")


class BaselineRangesRequest(_Strict):
    """A baseline entered by hand (ranges in degrees), e.g. measured with a goniometer."""

    ranges_deg: dict[str, float] = Field(min_length=1, examples=[{"flexion": 40.0}])
    taken_on: str | None = Field(None, description="ISO date; default today")

    @field_validator("ranges_deg")
    @classmethod
    def _keys(cls, v: dict[str, float]) -> dict[str, float]:
        from feedback.directions import RANGE_KEYS

        bad = sorted(set(v) - set(RANGE_KEYS))
        if bad:
            raise ValueError(f"unknown range {bad[0]!r}; allowed: {list(RANGE_KEYS)}")
        return v
