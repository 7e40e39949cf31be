"""`/api/recordings`: stored sessions, their analyses, exports, imports and patient reports.

`install(app)` opens the service's recordings (api/recording.py), hooks them into the session
manager (every live session is stored) and the `replay` source, and adds these routes. Reading
and writing the store happen in worker threads, never on the event loop.

Access: therapists only (patient reports: the patient too). A therapist sees the recordings of
their own patients and those that belong to no patient (imports, command-line sessions);
another therapist's patient's recording is answered 404, as if it did not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import lzma
import os
import tempfile
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from api.recording import Recordings
from api.schema import ErrorResponse
from api.recording_models import (
    AnalysisInfo,
    ImportResult,
    PatientReport,
    RecordingDetails,
    RecordingSummary,
    ReportStored,
)
from recordings.errors import SessionNotFound, StorageError
from recordings.interchange import InterchangeError
from recordings.models import SessionRecord
from recordings.store import RecordingStore
from recordings.transfer import (
    EXPORT_FORMATS,
    ExportError,
    export_filename,
    export_session,
    import_interchange,
)

router = APIRouter(prefix="/api/recordings", tags=["recordings"])
MAX_IMPORT_BYTES = 1 << 30  # 1 GiB: about 8 hours of 2 × 100 Hz interchange CSV
CHUNK = 1 << 16
MEDIA_TYPES = {"sto": "text/plain; charset=utf-8"}


# --- access ----------------------------------------------------------------------------------

def _principal_account(request: Request) -> Any | None:
    from api.auth.middleware import PRINCIPAL

    principal = request.scope.get(PRINCIPAL)
    return None if principal is None else principal.account


def _visible_patients(request: Request) -> set[str] | None:
    """Patient ids the caller may see (None: no access control, e.g. an app without auth)."""
    account = _principal_account(request)
    if account is None:
        if getattr(request.app.state, "auth", None) is None:
            return None
        raise HTTPException(401, "Sign in first.")
    if account.role == "patient":
        return {account.id}
    return {p.id for p in request.app.state.auth.patients_of(account)}


def require_therapist(request: Request) -> None:
    account = _principal_account(request)
    if account is None and getattr(request.app.state, "auth", None) is None:
        return
    if account is None:
        raise HTTPException(401, "Sign in first.")
    if account.role != "therapist":
        raise HTTPException(403, "Only a therapist can do this.")


def _allowed(rec: SessionRecord, visible: set[str] | None, *, unassigned: bool = True) -> bool:
    if visible is None:
        return True
    return (rec.patient_id is None and unassigned) or rec.patient_id in visible


def _recordings(request: Request) -> Recordings:
    return request.app.state.recordings


def _reader(request: Request) -> RecordingStore:
    store = _recordings(request).reader()
    if store is None:
        rec = _recordings(request)
        why = "recording is off on this server" if not rec.enabled else (
            f"no recordings database in {rec.location}" if rec.error is None else str(rec.error))
        raise HTTPException(503, f"Recordings are not available: {why}.")
    return store


def _find(store: RecordingStore, session_id: str, visible: set[str] | None) -> SessionRecord:
    try:
        rec = store.session(session_id)
    except SessionNotFound:
        raise HTTPException(404, f"No recording {session_id!r} (GET /api/recordings lists "
                                 "them).") from None
    if not _allowed(rec, visible):
        raise HTTPException(404, f"No recording {session_id!r} (GET /api/recordings lists "
                                 "them).")
    return rec


Therapist = [Depends(require_therapist)]


# --- reading ---------------------------------------------------------------------------------

def _summary(rec: SessionRecord) -> RecordingSummary:
    d = rec.as_dict()
    for s, sd in zip(rec.sensors, d["sensors"]):
        sd.update(t_first=s.t_first, t_last=s.t_last)
    return RecordingSummary.model_validate(d)


@router.get("", response_model=list[RecordingSummary], dependencies=Therapist,
            summary="Stored sessions, newest first")
async def list_recordings(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[RecordingSummary]:
    """Every stored session this therapist may see (live ones included: `status: live`),
    newest first, with per-sensor sample counts and duration."""
    store = _reader(request)
    visible = _visible_patients(request)

    def work() -> list[RecordingSummary]:
        out = []
        for rec in store.sessions():
            if not _allowed(rec, visible) or (patient_id is not None
                                              and rec.patient_id != patient_id):
                continue
            out.append(_summary(rec))
            if len(out) >= limit:
                break
        return out

    return await asyncio.to_thread(work)


@router.get("/{session_id}", response_model=RecordingDetails, dependencies=Therapist,
            summary="One stored session with its analyses")
async def get_recording(request: Request, session_id: str) -> RecordingDetails:
    """The session (id or a unique prefix), its sensors, its own event counts, patient
    reports and every analysis (the live one, re-analyses and replays) with its event counts."""
    from recordings.commands import session_details

    store = _reader(request)
    visible = _visible_patients(request)

    def work() -> RecordingDetails:
        rec = _find(store, session_id, visible)
        d = session_details(store, rec.id)
        d["analyses"] = [AnalysisInfo.model_validate(a) for a in d["analyses"]]
        return RecordingDetails.model_validate(d)

    return await asyncio.to_thread(work)


@router.post("/{session_id}/analyses", response_model=AnalysisInfo, status_code=201,
             dependencies=Therapist, summary="Re-analyse a stored session (offline)")
async def reanalyze_recording(request: Request, session_id: str) -> AnalysisInfo:
    """Run the offline analysis over the stored raw samples and store angles, calibration and
    repetitions as a NEW analysis (kind `offline`); the original data and analyses are never
    changed. 422 when no calibration movement is found."""
    from api.recording import reanalyze
    from processing.calibration import CalibrationError
    from recordings.commands import session_details

    recs = _recordings(request)
    visible = _visible_patients(request)

    def work() -> AnalysisInfo:
        store = recs.open()
        if store is None:
            raise HTTPException(503, f"The recordings store cannot be written: {recs.error}")
        rec = _find(store, session_id, visible)
        try:
            aid, _ = reanalyze(store, rec.id)
        except CalibrationError as exc:
            raise HTTPException(422, f"Cannot analyse session {rec.id}: {exc}") from None
        a = next(x for x in session_details(store, rec.id)["analyses"] if x["id"] == aid)
        return AnalysisInfo.model_validate(a)

    return await asyncio.to_thread(work)


# --- export ----------------------------------------------------------------------------------

async def _stream_file(path: Path) -> AsyncIterator[bytes]:
    try:
        with open(path, "rb") as f:
            while True:
                chunk = await asyncio.to_thread(f.read, CHUNK)
                if not chunk:
                    break
                yield chunk
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


@router.get("/{session_id}/export", dependencies=Therapist,
            summary="Download a stored session as CSV or OpenSim .sto",
            responses={200: {"content": {"text/csv": {}, "text/plain": {}},
                             "description": "the file, streamed"},
                       404: {"description": "no such recording, or nothing to export"}})
async def export_recording(
    request: Request, session_id: str,
    format: Annotated[Literal["raw-csv", "angles-csv", "repetitions-csv", "events-csv", "sto"],
                      Query(description="raw-csv: samples as stored (interchange CSV with "
                            "device time and counter); angles-csv: lumbar angles; "
                            "repetitions-csv / events-csv: events; sto: OpenSim orientations"
                            )] = "raw-csv",
    analysis: Annotated[int | None, Query(ge=1, description="angles or events of this "
                                          "analysis (default: newest angles; own events)")] = None,
) -> StreamingResponse:
    """The export is written to a temporary file in a worker thread and then streamed back
    (so a problem is a clear 4xx, not a broken download); warnings are in `X-Lumbo-Warning`."""
    assert format in EXPORT_FORMATS
    store = _reader(request)
    visible = _visible_patients(request)

    def work() -> tuple[Path, SessionRecord, list[str]]:
        rec = _find(store, session_id, visible)
        fd, name = tempfile.mkstemp(prefix="lumbo-export-", suffix=".tmp")
        os.close(fd)
        path = Path(name)
        try:
            res = export_session(store, rec, format, path, analysis=analysis)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, rec, res.warnings

    try:
        path, rec, warnings = await asyncio.to_thread(work)
    except ExportError as exc:
        raise HTTPException(404, str(exc.args[0] if exc.args else exc)) from None
    except StorageError as exc:
        raise HTTPException(503, str(exc)) from None
    headers = {"Content-Disposition": f'attachment; filename="{export_filename(rec, format)}"',
               "Content-Length": str(path.stat().st_size)}
    if warnings:
        headers["X-Lumbo-Warning"] = " | ".join(warnings).encode("ascii", "replace").decode()
    return StreamingResponse(_stream_file(path), headers=headers,
                             media_type=MEDIA_TYPES.get(format, "text/csv; charset=utf-8"))


# --- import ----------------------------------------------------------------------------------

@router.post("/import", response_model=ImportResult, status_code=201, dependencies=Therapist,
             summary="Import a raw interchange CSV as a stored session",
             responses={422: {"model": ErrorResponse,
                               "description": "the file is invalid: `detail` names the line; "
                                              "nothing was stored"}})
async def import_recording(
    request: Request,
    name: Annotated[str, Query(max_length=200, description="file name, for the session's "
                               "source")] = "upload.csv",
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    check_units: bool = True,
) -> ImportResult:
    """The request body is the interchange CSV itself (`text/csv`; gzip or xz compressed
    bodies are recognised by their magic bytes). It is validated line by line while it is
    stored in one transaction: on any error the answer is 422 with the line number, and
    nothing of it is stored."""
    recs = _recordings(request)
    visible = _visible_patients(request)
    if patient_id is not None and visible is not None and patient_id not in visible:
        raise HTTPException(404, "No such patient (or not one of yours).")
    fd, tmp = tempfile.mkstemp(prefix="lumbo-import-")
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_IMPORT_BYTES:
                    raise HTTPException(413, f"The file is larger than {MAX_IMPORT_BYTES} bytes.")
                await asyncio.to_thread(f.write, chunk)
        with open(tmp, "rb") as f:
            magic = f.read(6)
        suffix = ".gz" if magic[:2] == b"\x1f\x8b" else ".xz" if magic == b"\xfd7zXZ\x00" else ""
        path = Path(tmp + suffix)
        os.replace(tmp, path)
        tmp = str(path)

        def work() -> ImportResult:
            store = recs.open()
            if store is None:
                raise HTTPException(503, f"The recordings store cannot be written: {recs.error}")
            res = import_interchange(store, path, name=name, patient_id=patient_id,
                                     check_units=check_units)
            return ImportResult(session_id=res.session_id, recording=_summary(res.record),
                                notes=res.notes)

        try:
            return await asyncio.to_thread(work)
        except InterchangeError as exc:
            return JSONResponse(status_code=422, content={
                "detail": f"{exc} Nothing was imported.", "line": exc.line,
                "message": f"{exc} Nothing was imported."})  # type: ignore[return-value]
        except StorageError as exc:
            raise HTTPException(503, f"{exc} Nothing was imported.") from None
        except (EOFError, OSError, ValueError, lzma.LZMAError, zlib.error) as exc:
            # truncated gzip/xz, bytes that are not UTF-8 text
            return JSONResponse(status_code=422, content={
                "detail": f"{name}: {exc}. Nothing was imported."})  # type: ignore[return-value]
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# --- patient reports ---------------------------------------------------------------------------

@router.post("/{session_id}/reports", response_model=ReportStored, status_code=201,
             summary="A patient report about a session (pain before/after, comments)")
async def add_report(request: Request, session_id: str, report: PatientReport) -> ReportStored:
    """For the live session it joins the recording at the current stream time; for a stored
    session it is written at once. The patient may report on their own sessions, the
    therapist on their patients'."""
    payload = report.model_dump(exclude_none=True, exclude={"kind"})
    visible = _visible_patients(request)
    manager = request.app.state.manager
    for live in list(getattr(manager, "sessions", {}).values()):
        rec = getattr(live, "recorder", None)
        if live.session_id == session_id and rec is not None and hasattr(rec, "add_report"):
            pid = getattr(live, "patient_id", None)
            if visible is not None and pid is not None and pid not in visible:
                break
            if rec.add_report(report.kind, payload):
                return ReportStored(session_id=session_id, kind=report.kind, stored="live")
            break
    recs = _recordings(request)

    def work() -> ReportStored:
        store = recs.open()
        if store is None:
            raise HTTPException(503, f"The recordings store cannot be written: {recs.error}")
        rec = _find(store, session_id, visible)
        store.add_report(rec.id, report.kind, payload)
        return ReportStored(session_id=rec.id, kind=report.kind, stored="stored")

    return await asyncio.to_thread(work)


# --- installation ----------------------------------------------------------------------------

def install(app: FastAPI) -> Recordings:
    """Open the recordings of `app.state.settings.database()` (`db`, else `data_dir`) and wire
    them in (see the module docstring); `app.state.recordings`. Both None (tests): nothing is
    stored."""
    settings = app.state.settings
    recs = Recordings(settings.database() if hasattr(settings, "database")
                      else getattr(settings, "data_dir", None))
    auto = getattr(settings, "autostart", None)
    if auto is not None and auto.source == "replay":
        recs.trusted_replay = auto.session_id  # chosen by whoever started the service
    app.state.recordings = recs
    app.state.manager.recordings = recs
    context = getattr(app.state, "source_context", None)
    if isinstance(context, dict):
        context["recordings"] = recs

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc.args[0] if exc.args
                                                                    else exc)})

    app.add_exception_handler(SessionNotFound, not_found)
    app.include_router(router)
    return recs
