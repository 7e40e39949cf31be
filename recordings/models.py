"""What the store says about sessions: plain dataclasses, so callers never see SQL rows."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from sensors.samples import SensorHealth

SessionStatus = Literal["live", "completed", "interrupted"]


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_session_id(now: datetime | None = None) -> str:
    """Sortable, readable and unique enough across machines: 20250131-142301-3fa2c1 (UTC)."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """One sensor of a session: which role it played and what device it was."""

    role: str
    family: str = ""
    device_name: str = ""
    address: str = ""
    nominal_rate_hz: float | None = None

    @staticmethod
    def from_health(health: SensorHealth, family: str = "") -> SensorInfo:
        return SensorInfo(health.sensor, family, health.device_name, health.address,
                          health.nominal_rate_hz or None)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What is known when a session starts."""

    source: str = ""
    sensors: tuple[SensorInfo, ...] = ()
    patient_id: str | None = None
    notes: str = ""
    time_origin_s: float | None = None  # host monotonic time at `started_at`
    started_at: str | None = None  # UTC ISO 8601; None: now


@dataclass(frozen=True, slots=True)
class SensorRecord:
    id: int
    role: str
    family: str
    device_name: str
    address: str
    nominal_rate_hz: float | None
    samples: int = 0
    t_first: float | None = None
    t_last: float | None = None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    patient_id: str | None
    started_at: str
    ended_at: str | None
    time_origin_s: float | None
    status: SessionStatus
    source: str
    notes: str
    sensors: tuple[SensorRecord, ...] = ()

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.sensors)

    @property
    def duration_s(self) -> float | None:
        """Span of the stored samples (host time), None without samples."""
        firsts = [s.t_first for s in self.sensors if s.t_first is not None]
        lasts = [s.t_last for s in self.sensors if s.t_last is not None]
        return (max(lasts) - min(firsts)) if firsts and lasts else None

    def sensor(self, role: str) -> SensorRecord | None:
        return next((s for s in self.sensors if s.role == role), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "patient_id": self.patient_id, "started_at": self.started_at,
            "ended_at": self.ended_at, "status": self.status, "source": self.source,
            "notes": self.notes, "duration_s": self.duration_s, "samples": self.samples,
            "sensors": [{"role": s.role, "family": s.family, "device_name": s.device_name,
                         "address": s.address, "nominal_rate_hz": s.nominal_rate_hz,
                         "samples": s.samples} for s in self.sensors],
        }


@dataclass(frozen=True, slots=True)
class EventRecord:
    time_s: float | None
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    analysis_id: int | None = None


@dataclass(frozen=True, slots=True)
class AnalysisRecord:
    id: int
    session_id: str
    created_at: str
    kind: str  # "live" (computed during the session) or "offline" (a re-analysis)
    description: str
    params: dict[str, Any]
    samples: int = 0


@dataclass(frozen=True, slots=True)
class ReportRecord:
    time_s: float | None
    reported_at: str
    kind: str  # e.g. "pain_nrs"
    payload: dict[str, Any]
