"""The patient page at `/`, the therapist page at `/therapist`; assets under `/static`."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["pages"])


@router.get("/", response_class=FileResponse, summary="Patient page", include_in_schema=True)
async def patient_page() -> FileResponse:
    """Live gauge of lumbar flexion with the target zone, repetitions and calibration guide."""
    return FileResponse(STATIC_DIR / "patient.html", media_type="text/html")


@router.get("/therapist", response_class=FileResponse, summary="Therapist page")
async def therapist_page() -> FileResponse:
    """Live trace, session metrics, set summaries, sensor health and target controls."""
    return FileResponse(STATIC_DIR / "therapist.html", media_type="text/html")
