"""Request and response models of edge mode's REST routes (they are the OpenAPI document):
the ingest routes an edge calls (api/routes/ingest.py) and the device-token routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recordings.chunks import STREAM_PATTERN, valid_stream

ROLE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
SESSION_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
MAX_STREAMS = 32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _iso(v: str | None) -> str | None:
    if v is None:
        return v
    try:
        datetime.fromisoformat(v)
    except ValueError:
        raise ValueError("must be an ISO 8601 date and time") from None
    return v


class SensorIn(_Strict):
    role: str = Field(pattern=ROLE_PATTERN, description="upper, lower, ...")
    family: str = Field("", max_length=64)
    device_name: str = Field("", max_length=128)
    address: str = Field("", max_length=64)
    nominal_rate_hz: float | None = Field(None, gt=0, le=10_000)


class SessionAnnounce(_Strict):
    """What the edge knows of a session when it announces it (`PUT`, repeated freely)."""

    started_at: str = Field(max_length=64, description="UTC, ISO 8601 (the edge's clock)")
    time_origin_s: float | None = Field(None, description="the edge's host monotonic time at "
                                        "`started_at` (the time base of the samples)")
    source: str = Field("", max_length=32, description="simulated, ble, import, ...")
    notes: str = Field("", max_length=4096)
    sensors: list[SensorIn] = Field(default_factory=list, max_length=8)

    _started = field_validator("started_at")(_iso)


class EndRequest(_Strict):
    """The edge's session ended: its status and how many chunks it sent of each stream."""

    status: Literal["completed", "interrupted"]
    ended_at: str | None = Field(None, max_length=64, description="UTC, ISO 8601")
    streams: dict[str, int] = Field(
        default_factory=dict, description="stream -> chunks sent (its next sequence number)")

    _ended = field_validator("ended_at")(_iso)

    @field_validator("streams")
    @classmethod
    def _streams(cls, v: dict[str, int]) -> dict[str, int]:
        if len(v) > MAX_STREAMS:
            raise ValueError(f"at most {MAX_STREAMS} streams")
        for k, n in v.items():
            if not valid_stream(k):
                raise ValueError(f"{k[:40]!r} is not a stream ({STREAM_PATTERN})")
            if not 0 <= n < 2**31:
                raise ValueError("a chunk count is a non-negative integer")
        return v


class StreamOut(BaseModel):
    next_seq: int = Field(description="the sequence number the next chunk of this stream needs")
    last_item_id: int = Field(description="the edge's id of the last item stored (0: none)")
    items: int = Field(description="items (blocks, events, ...) stored")


class UploadState(BaseModel):
    """An uploaded session on the central service: the edge's cursor."""

    session_id: str
    state: Literal["uploading", "ended"] = Field(
        description="`uploading` until the edge says the session ended")
    status: Literal["live", "completed", "interrupted"] = Field(
        description="the stored session's status (`live` while uploading)")
    edge_status: str = Field(description="the final status the edge reported ('' before)")
    streams: dict[str, StreamOut]


class ChunkAck(BaseModel):
    stream: str
    seq: int
    duplicate: bool = Field(description="already stored before: nothing was stored now")
    next_seq: int
    last_item_id: int
    items: int


class IngestConflictOut(BaseModel):
    detail: str
    stream: str | None = None
    expected_seq: int | None = Field(None, description="the sequence number the central service "
                                     "expects next on `stream`")


class DeviceInfo(BaseModel):
    """The device token's patient (what an edge checks it was configured for)."""

    device_id: str
    patient_id: str
    username: str
    display_name: str


class DeviceTokenRequest(_Strict):
    label: str = Field("", max_length=64, description="which machine it is for")


class DeviceTokenOut(BaseModel):
    id: str
    patient_id: str
    label: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None
    active: bool


class DeviceTokenCreated(DeviceTokenOut):
    token: str = Field(description="for `lumbo edge --token-file`; shown only once")


class RevokeRequest(_Strict):
    id: str = Field(min_length=1, max_length=32, description="the device token's id")


class Revoked(BaseModel):
    revoked: bool
