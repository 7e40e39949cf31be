"""Response models of `GET /api/patients/{id}/history` (they are its OpenAPI description; the
document itself is built by `api/history.py`). Degrees in `_deg`, seconds in `_s`, pain on the
0–10 numeric rating scale, RMDQ 0–24, shares 0–1; SPARC and LDLJ are dimensionless (closer to 0
is smoother)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RangeDeg = dict[str, float]
RANGE_DOC = ("per baseline direction (flexion, extension, lateral_bend_left/right, "
             "axial_rotation_left/right, pelvic_tilt_anterior/posterior), degrees")


class HistoryPatient(BaseModel):
    id: str
    username: str
    display_name: str


class Period(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: str | None = Field(None, alias="from", description="first day (ISO date)")
    to: str | None = Field(None, description="last day (ISO date)")


class HistoryExercise(BaseModel):
    exercise_id: str
    name: str
    level: int | None = None
    repetitions: int = Field(description="counted repetitions")
    mean_abs_error_deg: float | None = None
    in_tolerance_share: float | None = None
    retention_repetitions: int = Field(0, description="repetitions in blocks without feedback")
    retention_mean_abs_error_deg: float | None = None
    retention_in_tolerance_share: float | None = None
    sparc: float | None = Field(None, description="median SPARC of the repetitions")
    ldlj: float | None = Field(None, description="median LDLJ of the repetitions")


class HistoryDecision(BaseModel):
    at: str | None = None
    session_id: str | None = None
    exercise_id: str | None = None
    rule_id: str | None = None
    outcome: str | None = None
    from_level: int | None = None
    to_level: int | None = None
    actor: str | None = None
    reason: str | None = None


class HistorySession(BaseModel):
    session_id: str
    number: int = Field(description="1 for the first session of the period")
    date: str
    week: int = Field(description="programme week (0 = the week the programme started)")
    started_at: str
    ended_at: str | None = None
    status: str
    source: str
    kind: Literal["program", "baseline", "flexion", "recording"]
    recorded: bool = Field(description="false: known from the practice record only")
    duration_s: float | None = None
    completed: bool
    exercises: list[HistoryExercise]
    levels: dict[str, int | None] = Field(description="exercise id -> level practised")
    repetitions: int
    comfortable_flexion_deg: float | None = Field(
        None, description="forward range measured by the session's calibration bend")
    peak_deg: RangeDeg = Field(description="furthest reached in the session, " + RANGE_DOC)
    practised: list[str] = Field(description="directions the session's exercises moved in")
    baseline_ranges_deg: dict[str, float | None] | None = Field(
        None, description="ranges a baseline assessment in this session measured")
    mean_abs_error_deg: float | None = Field(None, description="target or repositioning error")
    in_tolerance_share: float | None = None
    retention_mean_abs_error_deg: float | None = Field(
        None, description="the same, in the blocks without feedback")
    retention_in_tolerance_share: float | None = None
    sparc: float | None = None
    ldlj: float | None = None
    pain_before: int | None = None
    pain_after: int | None = None
    decisions: list[HistoryDecision] = Field(description="progression decisions on the session")


class HistoryWeek(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    week: int
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    sessions: int
    repetitions: int
    peak_deg: RangeDeg = Field(description="the week's furthest, directions practised only")
    comfortable_flexion_deg: float | None = None
    mean_abs_error_deg: float | None = None
    retention_mean_abs_error_deg: float | None = None
    sparc: float | None = None
    ldlj: float | None = None
    pain_before: float | None = None
    pain_after: float | None = None
    rmdq_score: int | None = None


class HistoryRmdq(BaseModel):
    date: str
    week: int | None = None
    score: int | None = None


class HistoryBaseline(BaseModel):
    date: str
    source: str | None = None
    session_id: str | None = None
    ranges_deg: dict[str, float | None]


class Change(BaseModel):
    first: float = Field(description="the first week's value")
    last: float = Field(description="the last week's value")
    change: float = Field(description="last - first")
    values: int = Field(description="weeks with a value")


class HistorySummary(BaseModel):
    sessions: int
    weeks: int
    repetitions: int
    first_date: str | None = None
    last_date: str | None = None
    peak_flexion_deg: Change | None = None
    retention_mean_abs_error_deg: Change | None = None
    mean_abs_error_deg: Change | None = None
    pain_before: Change | None = None
    rmdq_score: Change | None = None


class RecordingsNote(BaseModel):
    available: bool
    note: str | None = None


class HistoryOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    version: int
    patient: HistoryPatient
    period: Period
    programme_start: str | None = None
    directions_practised: list[str]
    sessions: list[HistorySession]
    weeks: list[HistoryWeek]
    rmdq: list[HistoryRmdq]
    baselines: list[HistoryBaseline]
    decisions: list[HistoryDecision] = Field(description="every decision (therapists only)")
    summary: HistorySummary
    recordings: RecordingsNote
