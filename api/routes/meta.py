"""Message schemas, exercise levels and liveness."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends

from api import schema
from api.live import SessionManager
from api.routes.deps import get_manager

router = APIRouter(prefix="/api", tags=["meta"])


@router.get("/schema/{name}", summary="JSON Schema of a live message")
async def get_schema(name: Literal["frame", "heartbeat", "status"]) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a WebSocket message: `frame`, `heartbeat` or `status`.
    The pages and the tests validate against these; `schema_version` is at the top level."""
    return schema.json_schema(name)


@router.get("/levels", response_model=list[schema.LevelInfo], summary="Exercise levels")
async def get_levels(manager: Annotated[SessionManager, Depends(get_manager)]) -> list[schema.LevelInfo]:
    """The flexion exercise levels a therapist can choose from."""
    out = []
    for number, lv in sorted(manager.levels().items()):
        out.append(
            schema.LevelInfo(
                level=number,
                share=lv.amplitude_share,
                tolerance_deg=lv.tolerance_deg,
                hold_s=lv.hold_s,
                reps_per_set=lv.reps_per_set,
                min_time_to_target_s=getattr(lv, "min_time_to_target_s", None),
                max_time_to_target_s=getattr(lv, "max_time_to_target_s", None),
            )
        )
    return out


@router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    return {"status": "ok", "schema_version": str(schema.SCHEMA_VERSION)}
