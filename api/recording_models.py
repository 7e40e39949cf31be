"""REST models of `/api/recordings` (stored sessions, analyses, imports, patient reports)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordedSensor(_Strict):
    role: str
    family: str = ""
    device_name: str = ""
    address: str = ""
    nominal_rate_hz: float | None = None
    samples: int = 0
    t_first: float | None = Field(None, description="first sample, host time base (s)")
    t_last: float | None = Field(None, description="last sample, host time base (s)")


class RecordingSummary(_Strict):
    id: str
    patient_id: str | None = None
    started_at: str = Field(description="UTC ISO 8601")
    ended_at: str | None = None
    status: Literal["live", "completed", "interrupted"] = Field(
        description="live: being recorded now; interrupted: the recording process ended without "
        "closing it (crash, power cut): everything committed before is kept")
    source: str = ""
    notes: str = ""
    duration_s: float | None = None
    samples: int = 0
    sensors: list[RecordedSensor] = Field(default_factory=list)


class AnalysisInfo(_Strict):
    id: int
    created_at: str
    kind: str = Field(description="live (computed during the session), offline (`lumbo "
                      "reanalyze`) or replay (the live pipeline over a replay)")
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    angle_frames: int = 0
    events: dict[str, int] = Field(default_factory=dict, description="event counts by type")
    calibrations: int = 0


class RecordingDetails(RecordingSummary):
    time_origin_s: float | None = Field(None, description="host time at started_at")
    events: dict[str, int] = Field(default_factory=dict,
                                   description="the session's own events, counts by type")
    reports: int = Field(0, description="patient reports")
    analyses: list[AnalysisInfo] = Field(default_factory=list)


class ImportResult(_Strict):
    session_id: str
    recording: RecordingSummary
    notes: list[str] = Field(default_factory=list, description="what was skipped or assumed")


class PatientReport(_Strict):
    """A patient's report about a session, e.g. pain on the 0–10 numeric rating scale before
    and after practice (`{"kind": "pain_nrs_before", "value": 4}`) or a comment."""

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", examples=["pain_nrs_before"])
    value: float | None = Field(None, ge=0, le=10, description="e.g. pain NRS 0–10")
    text: str | None = Field(None, max_length=2000)


class ReportStored(_Strict):
    session_id: str
    kind: str
    stored: Literal["live", "stored"] = Field(
        description="live: queued with the live recording (committed within a second); stored: "
        "written to the stored session")
