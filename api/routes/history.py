"""A patient's history: `GET /api/patients/{id}/history` (JSON), `.../history.csv` (a table as
CSV) and the printable report page `/therapist/report/{id}`.

Access as everywhere (api/auth/deps.py): a therapist sees their own patients (others: 404), a
patient only themselves; the report page is for therapists (a patient gets 403), and the
progression decisions are in the JSON for therapists only (as `GET .../decisions`). Reading
happens in a worker thread (`api/history_reader.py`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import html
import re
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.requests import HTTPConnection

from api import schema
from api.auth.deps import PATIENT_ID_MAX, current_account, get_auth, invalid, visible_patient
from api.history import history_csv
from api.history_models import HistoryOut
from api.history_reader import HistoryReader
from api.routes.pages import STATIC_DIR
from recordings.accounts import Account

router = APIRouter(tags=["history"])

PatientId = Annotated[str, Path(max_length=PATIENT_ID_MAX, description="the patient's id")]
DateFrom = Annotated[date | None, Query(alias="from", description="first day (ISO date, "
                                        "inclusive); default: the first session")]
DateTo = Annotated[date | None, Query(alias="to", description="last day (ISO date, "
                                      "inclusive); default: the last session")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": schema.ErrorResponse, "description": "No such patient, or not yours"},
    422: {"model": schema.ErrorResponse, "description": "Invalid period"},
}


def get_history(conn: HTTPConnection) -> HistoryReader:
    return conn.app.state.history


def _period(date_from: date | None, date_to: date | None) -> None:
    if date_from is not None and date_to is not None and date_from > date_to:
        raise invalid(("query", "from"), f"the period starts ({date_from}) after it ends "
                                         f"({date_to})")


async def _history(request: Request, account: Account, patient_id: str,
                   date_from: date | None, date_to: date | None) -> dict[str, Any]:
    _period(date_from, date_to)
    patient = visible_patient(get_auth(request), account, patient_id)
    reader = get_history(request)
    return await asyncio.to_thread(reader.history, patient, date_from=date_from,
                                   date_to=date_to,
                                   include_decisions=account.role == "therapist")


@router.get("/api/patients/{patient_id}/history", response_model=HistoryOut,
            summary="A patient's history over sessions and weeks", responses=_ERRORS)
async def patient_history(
    request: Request, patient_id: PatientId,
    account: Annotated[Account, Depends(current_account)],
    date_from: DateFrom = None, date_to: DateTo = None,
) -> dict[str, Any]:
    """Every session (stored recordings and practice records) with its range of motion (the
    furthest reached per direction, the calibration's comfortable forward bend, baseline
    ranges), target error with and without feedback, smoothness (SPARC, LDLJ), pain before and
    after and the levels practised; the same by programme week; RMDQ scores; baselines; and,
    for therapists, the progression decisions. A patient may read their own."""
    return await _history(request, account, patient_id, date_from, date_to)


@router.get("/api/patients/{patient_id}/history.csv", summary="A patient's history as CSV",
            response_class=Response,
            responses={**_ERRORS, 200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                                        "description": "one row per session (or week)"}})
async def patient_history_csv(
    request: Request, patient_id: PatientId,
    account: Annotated[Account, Depends(current_account)],
    table: Annotated[Literal["sessions", "weeks"], Query(
        description="one row per session, or per programme week")] = "sessions",
    date_from: DateFrom = None, date_to: DateTo = None,
) -> Response:
    """The sessions (or weeks) table of the history, units in the column names (`_deg`,
    `_s`, `_nrs_0_10`, `_share` 0–1), for a spreadsheet or a health record."""
    doc = await _history(request, account, patient_id, date_from, date_to)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", doc["patient"]["username"])
    return Response(history_csv(doc, table), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition":
                             f'attachment; filename="lumbo-history-{name}-{table}.csv"'})


def _page_error(status: int, text: str) -> HTMLResponse:
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Lumbo</title>'
            f'<link rel="stylesheet" href="/static/lumbo.css"></head><body><main class="panel" '
            f'style="margin:20px"><h1>{html.escape(text)}</h1><p><a href="/therapist">Back to '
            f'the therapist page</a></p></main></body></html>')
    return HTMLResponse(body, status_code=status)


@router.get("/therapist/report/{patient_id}", response_class=HTMLResponse,
            summary="Printable report of a patient's history")
async def report_page(
    request: Request, patient_id: PatientId,
    account: Annotated[Account, Depends(current_account)],
) -> Response:
    """For the patient's therapist: patient, period (`?from=&to=`), program and levels, plots,
    the sessions with pain and decisions; print it, or save it as PDF from the print dialog."""
    if account.role != "therapist":
        return _page_error(403, "Only a therapist can do this: this report is for the "
                                "patient's therapist.")
    try:
        visible_patient(get_auth(request), account, patient_id)
    except HTTPException:
        return _page_error(404, "No such patient (or not one of yours).")
    return FileResponse(STATIC_DIR / "report.html", media_type="text/html")


def install(app: FastAPI) -> HistoryReader:
    """The reader (`app.state.history`, over the app's recordings and practice records) and
    the routes. Call after the practice and recordings routes are installed."""
    reader = HistoryReader(getattr(app.state, "recordings", None), app.state.practice)
    app.state.history = reader
    app.include_router(router)
    return reader
