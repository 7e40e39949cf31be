"""`/api/practice`: graded practice. Start a program or the baseline assessment, the patient's
inputs (pain, self-estimates, feedback on request, skipping a rest), and per patient: the day's
program, levels and locks, progression decisions, baselines, RMDQ and trends.

`install(app)` wires it in: the service (`app.state.practice`, also the session manager's
practice hook), the error handlers (422 with a readable message for anything a patient or
therapist got wrong, 409 for "not now", 404 for an unknown exercise) and the router.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection

from api import schema, sources
from api.practice import (
    PracticeConflict,
    PracticeError,
    PracticeNotFound,
    PracticeService,
    latest_baseline,
)
from api.practice_models import (
    DEFAULT_PATIENT,
    BaselineRangesRequest,
    LevelRequest,
    PainRequest,
    PracticeStart,
    PracticeStartRequest,
    ProgramEdit,
    RmdqRequest,
    SelfEstimateRequest,
)
from api.practice_store import PatientIdError, check_patient_id
from feedback.baseline import compare_baselines
from feedback.outcomes import RMDQ_ITEMS, OutcomeError

router = APIRouter(prefix="/api/practice", tags=["practice"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": schema.ErrorResponse, "description": "Not possible now (see detail)"},
    422: {"model": schema.ErrorResponse, "description": "Invalid input (see message/detail)"},
}
RMDQ_NOTE = ("The Roland-Morris Disability Questionnaire's item wording is copyrighted and is not "
             "included in Lumbo. Items are numbered 1-24; a deployment that holds a licence "
             "supplies the wording in <data dir>/practice/rmdq_items.json (a list of 24 texts). "
             "Each item is a statement about the back today: answer yes if it describes you.")


def get_practice(request: Request) -> PracticeService:
    return request.app.state.practice


Practice = Annotated[PracticeService, Depends(get_practice)]


def _account(conn: HTTPConnection) -> Any | None:
    """The signed-in account when accounts are installed (api/auth), else None."""
    if getattr(conn.app.state, "auth", None) is None:
        return None
    from api.auth.deps import get_principal

    return get_principal(conn).account


def resolve_patient(conn: HTTPConnection, patient_id: str | None) -> str:
    """Whose practice record: with accounts, the signed-in patient or one of the signed-in
    therapist's patients (api/auth/deps.visible_patient: others are 404); without accounts,
    `patient_id` or the default patient."""
    account = _account(conn)
    if account is None:
        return check_patient_id(patient_id or DEFAULT_PATIENT)
    from api.auth.deps import get_auth, visible_patient

    return visible_patient(get_auth(conn), account, patient_id).id


def query_patient(conn: HTTPConnection, patient_id: Annotated[str | None, Query(
        max_length=64, description="the patient (default: the signed-in patient, or the "
        "therapist's only patient; without accounts the demo patient)")] = None) -> str:
    return resolve_patient(conn, patient_id)


def path_patient(conn: HTTPConnection, patient_id: str) -> str:
    return resolve_patient(conn, patient_id)


def therapist_only(conn: HTTPConnection) -> None:
    account = _account(conn)
    if account is not None and account.role != "therapist":
        raise HTTPException(403, "Only a therapist can do this.")


QueryPatient = Annotated[str, Depends(query_patient)]
PathPatient = Annotated[str, Depends(path_patient)]
Therapist = [Depends(therapist_only)]


# ---------------------------------------------------------------------------- live session
@router.post("/start", summary="Start today's exercises (or the baseline assessment)",
             responses=_ERRORS)
async def start(request: Request, svc: Practice,
                req: Annotated[PracticeStartRequest, Body()] = PracticeStartRequest(),
                patient_id: Annotated[str | None, Query(max_length=64)] = None
                ) -> dict[str, Any]:
    """Starts a live session that runs the patient's day's program (`mode: program`) or the
    guided baseline assessment (`mode: baseline`) after the calibration. `session` takes the
    options of `POST /api/session/start` (source, speed, seed, ...); with the simulated patient
    (`simulated_script: auto`) the patient performs this very program. The patient: the query's
    `patient_id`, else the body's, else as for every practice route."""
    body_pid = req.patient_id if "patient_id" in req.model_fields_set else None
    pid = resolve_patient(request, patient_id or body_pid)
    manager = request.app.state.manager
    options = PracticeStart(**{**req.model_dump(exclude={"session"}), "patient_id": pid})
    try:
        start_req = schema.StartSessionRequest(**{**req.session, "practice": options})
    except ValueError as exc:
        raise PracticeError(f"session options: {exc}") from None
    resolve = getattr(sources, "resolve_request", None)  # BLE: sensors remembered on this host
    roles = getattr(request.app.state, "sensor_roles", None)
    if resolve is not None and roles is not None:
        start_req = resolve(start_req, request.app.state.settings, roles)
    if _account(request) is None:
        session = await manager.start(start_req)
    else:
        session = await manager.start(start_req, patient_id=pid)
    return {"session": session.status().model_dump() if session is not None else None,
            "practice": svc.state(pid)}


@router.get("/state", summary="The running practice (program or baseline) as the frames carry it")
async def state(request: Request, svc: Practice, pid: QueryPatient) -> dict[str, Any]:
    """`program` is the frames' `program` field (null when no practice runs for this patient);
    `patient_id` says whose it is (pages use it for the per-patient routes), `patient_name`
    how to call them."""
    out = svc.state(pid)
    out["patient_name"] = pid
    auth = getattr(request.app.state, "auth", None)
    account = auth.account(pid) if auth is not None else None
    if account is not None:
        out["patient_name"] = account.display_name or account.username
    return out


@router.post("/pain", summary="Pain rating before or after today's practice", responses=_ERRORS)
async def pain(svc: Practice, pid: QueryPatient, req: PainRequest) -> dict[str, Any]:
    """NRS 0-10 (a whole number; `"7"` as typed in a form is fine, `7.5`, `11`, `"a lot"` are
    refused with 422). Rating the pain after a finished program settles the progression
    decisions, which the answer includes (`practice.program.summary.decisions`)."""
    events = svc.active_driver(pid).record_pain(req.when, req.value)
    return {"events": events, "practice": svc.state(pid)}


@router.post("/self-estimate", summary="Answer the self-estimate prompt", responses=_ERRORS)
async def self_estimate(svc: Practice, pid: QueryPatient, req: SelfEstimateRequest
                        ) -> dict[str, Any]:
    """Before the result of a repetition is shown the patient guesses it: `short`, `on_target`
    or `past` (functional tasks: `within`, `over`), or signed degrees. 409 when nothing is
    asked (the question lapses when the next movement starts)."""
    events = svc.active_driver(pid).submit_self_estimate(req.estimate)
    return {"events": events, "practice": svc.state(pid)}


@router.post("/self-estimate/skip", summary="Skip the self-estimate and show the result",
             responses=_ERRORS)
async def self_estimate_skip(svc: Practice, pid: QueryPatient) -> dict[str, Any]:
    return {"events": svc.active_driver(pid).skip_self_estimate(), "practice": svc.state(pid)}


@router.post("/request-feedback", summary="Show the last repetition's result (self-controlled)",
             responses=_ERRORS)
async def request_feedback(svc: Practice, pid: QueryPatient) -> dict[str, Any]:
    """In self-controlled blocks nothing is shown unless the patient asks; 409 when there is no
    result to show yet."""
    return {"events": svc.active_driver(pid).request_feedback(), "practice": svc.state(pid)}


@router.post("/skip-rest", summary="End the current rest now", responses=_ERRORS)
async def skip_rest(svc: Practice, pid: QueryPatient) -> dict[str, Any]:
    svc.active_driver(pid).skip_rest()
    return {"practice": svc.state(pid)}


@router.post("/finish", summary="Settle the progression decisions of a finished program now",
             responses=_ERRORS, dependencies=Therapist)
async def finish(svc: Practice, pid: QueryPatient) -> dict[str, Any]:
    """Normally the pain rating after the program settles them; this does it without (the
    rules then hold every level: no progression without pain before and after)."""
    d = svc.active_driver(pid)
    if d.runner is None or not d.runner.done:
        raise PracticeConflict("the program has not finished: its retention blocks decide")
    return {"decisions": d.finalize(), "practice": svc.state(pid)}


# ---------------------------------------------------------------------------- library
@router.get("/library", summary="The exercise library with every level")
async def library(svc: Practice) -> list[dict[str, Any]]:
    """Every exercise (one per direction) with its ladder of levels; each level changes one
    parameter relative to the level below (`changed`)."""
    out = []
    for ex in sorted(svc.library, key=lambda e: e.id):
        d = ex.as_dict()
        for n, lv in enumerate(d["levels"], start=1):
            lv["changed"] = ex.changed_parameter(n)
        out.append(d)
    return out


# ---------------------------------------------------------------------------- patients
@router.get("/patients/{patient_id}", summary="A patient's program, levels and baseline")
async def patient(svc: Practice, pid: PathPatient) -> dict[str, Any]:
    return svc.patient_view(pid)


@router.put("/patients/{patient_id}/program", summary="Edit the day's program",
            responses=_ERRORS, dependencies=Therapist)
async def put_program(svc: Practice, pid: PathPatient, req: ProgramEdit) -> dict[str, Any]:
    """Exercises in order, each at a level (default: the patient's current level). Every
    exercise must exist and every level must fit the patient's baseline; otherwise 422 names
    each problem. A changed level is logged as a therapist decision. A program that is running
    now keeps going; the edit applies from the next session."""
    _, decisions = svc.edit_program(pid, req)
    driver = svc.drivers.get(pid)
    running = driver is not None and driver.phase in ("calibrating", "running")
    return {"patient": svc.patient_view(pid), "decisions": decisions,
            "applies": "next session" if running else "now"}


@router.put("/patients/{patient_id}/levels/{exercise_id}",
            summary="Set or lock an exercise's level", dependencies=Therapist,
            responses={**_ERRORS, 404: {"model": schema.ErrorResponse,
                                        "description": "No such exercise"}})
async def put_level(svc: Practice, pid: PathPatient, exercise_id: str,
                    req: LevelRequest) -> dict[str, Any]:
    """`{"level": 5}`, `{"locked": true}` or both, with a `reason`. A running program of this
    patient follows at once (a running exercise starts again at the new level). Every change is
    a decision in the log (rule `therapist_set`, `therapist_lock`, `therapist_unlock`)."""
    decisions, events = svc.set_level(pid, exercise_id, req.level, req.locked, req.reason,
                                      req.therapist)
    return {"decisions": decisions, "events": events, "patient": svc.patient_view(pid)}


@router.get("/patients/{patient_id}/decisions", summary="Every progression decision",
            dependencies=Therapist)
async def decisions(svc: Practice, pid: PathPatient) -> list[dict[str, Any]]:
    """Oldest first: rule id, outcome, from and to level, the reason in words, the inputs
    (retention block, pain) and who decided (rules or therapist)."""
    return list(svc.record(pid).get("decisions") or [])


@router.get("/patients/{patient_id}/baselines", summary="Baselines, oldest first")
async def baselines(svc: Practice, pid: PathPatient) -> dict[str, Any]:
    """Each baseline, and how the latest differs from the first: changes below the minimal
    detectable change are labelled 'no measurable change'."""
    rec = svc.record(pid)
    items = list(rec.get("baselines") or [])
    comparison = None
    if len(items) >= 2:
        from feedback.baseline import Baseline

        first = Baseline.from_dict(items[0]["baseline"])
        comparison = [c.as_dict() for c in compare_baselines(first, latest_baseline(rec)
                                                             or first)]
    return {"baselines": items, "comparison_with_first": comparison}


@router.post("/patients/{patient_id}/baselines", summary="Enter a baseline by hand",
             responses=_ERRORS, dependencies=Therapist)
async def post_baseline(svc: Practice, pid: PathPatient,
                        req: BaselineRangesRequest) -> dict[str, Any]:
    """Ranges in degrees (e.g. from a goniometer); the assessment in a live session
    (`POST /api/practice/start` with `mode: baseline`) measures them instead."""
    return svc.add_manual_baseline(pid, req.ranges_deg, req.taken_on)


def _rmdq_items(request: Request) -> tuple[list[str], bool]:
    data_dir = getattr(request.app.state.settings, "data_dir", None)
    if data_dir is not None:
        path = Path(data_dir) / "practice" / "rmdq_items.json"
        try:
            texts = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(texts, list) and len(texts) == RMDQ_ITEMS and all(
                    isinstance(t, str) and t.strip() for t in texts):
                return [t.strip() for t in texts], True
        except (OSError, ValueError):
            pass
    return [f"Statement {i} of the RMDQ" for i in range(1, RMDQ_ITEMS + 1)], False


@router.get("/patients/{patient_id}/rmdq", summary="RMDQ schedule, items and answers")
async def get_rmdq(request: Request, svc: Practice, pid: PathPatient) -> dict[str, Any]:
    rec = svc.record(pid)
    texts, licensed = _rmdq_items(request)
    return {"status": svc.rmdq_status(rec), "items": texts, "wording_included": licensed,
            "note": RMDQ_NOTE,
            "history": [{k: r[k] for k in ("date", "week", "score")} for r in rec["rmdq"]]}


@router.post("/patients/{patient_id}/rmdq", summary="Submit the RMDQ", responses=_ERRORS)
async def post_rmdq(svc: Practice, pid: PathPatient, req: RmdqRequest) -> dict[str, Any]:
    """24 yes/no answers in item order; the score is the number of yes (0-24, higher is more
    disability). One questionnaire per programme week (a second replaces the first)."""
    entry = svc.submit_rmdq(pid, req.answers)
    return {"score": entry["score"], "week": entry["week"], "scheduled": entry["scheduled"],
            "trends": svc.trends(pid)}


@router.get("/patients/{patient_id}/trends", summary="Pain per session and RMDQ over time")
async def trends(svc: Practice, pid: PathPatient) -> dict[str, Any]:
    """`pain`: one point per session with a rating (before, after, change); `pain_trend`:
    rolling mean and first-vs-last change (important: a fall of 30 % or more); `rmdq`: scores
    by week, `rmdq_change` first vs latest (important: 3 points or 30 %)."""
    return svc.trends(pid)


# ---------------------------------------------------------------------------- wiring
def _handler(status: int):  # type: ignore[no-untyped-def]
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=status, content={"detail": str(exc),
                                                         "message": str(exc)})

    return handle


def install(app: FastAPI) -> PracticeService:
    settings = app.state.settings
    svc = PracticeService(getattr(settings, "data_dir", None),
                          default_source=str(getattr(settings, "default_source", "simulated")))
    app.state.practice = svc
    app.state.manager.practice = svc
    for exc, status in ((PracticeError, 422), (OutcomeError, 422), (PatientIdError, 422),
                        (PracticeConflict, 409), (PracticeNotFound, 404)):
        app.add_exception_handler(exc, _handler(status))
    app.include_router(router)
    return svc
