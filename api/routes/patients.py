"""`/api/patients`: a therapist's patients (list, add, see, edit, sign a display in)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path

from api import schema
from api.auth.deps import (
    PATIENT_ID_MAX,
    current_account,
    get_auth,
    invalid,
    require_therapist,
    visible_patient,
)
from api.auth.models import AccountOut, LoginLinkOut, LoginLinkRequest, PatientCreate, PatientUpdate
from api.auth.service import AuthError, AuthService, check_display_name
from api.routes.auth import iso
from recordings.accounts import Account

router = APIRouter(prefix="/api/patients", tags=["patients"])

Auth = Annotated[AuthService, Depends(get_auth)]
Therapist = Annotated[Account, Depends(require_therapist)]
PatientId = Annotated[str, Path(max_length=PATIENT_ID_MAX, description="the patient's id")]

_errors: dict[int | str, dict[str, Any]] = {
    403: {"model": schema.ErrorResponse, "description": "Only a therapist can do this"},
    404: {"model": schema.ErrorResponse, "description": "No such patient, or not yours"},
}


def _own_patient(auth: AuthService, therapist: Account, patient_id: str) -> Account:
    return visible_patient(auth, therapist, patient_id)


@router.get("", response_model=list[AccountOut], summary="Your patients", responses=_errors)
async def list_patients(auth: Auth, therapist: Therapist) -> list[AccountOut]:
    """The signed-in therapist's patients, by username."""
    return [AccountOut.of(p) for p in auth.patients_of(therapist)]


@router.post("", response_model=AccountOut, status_code=201, summary="Add a patient",
             responses={**_errors, 409: {"model": schema.ErrorResponse,
                                         "description": "The username is taken"}})
async def create_patient(req: PatientCreate, auth: Auth, therapist: Therapist) -> AccountOut:
    """A new patient of the signed-in therapist. Without `password` the patient signs in by
    one-time login links (`POST /api/patients/{id}/login-link`)."""
    try:
        patient = await auth.acreate_patient(req.username, therapist.id, req.password,
                                             req.display_name)
    except AuthError as exc:
        raise _http(exc, "username") from None
    return AccountOut.of(patient)


def _http(exc: AuthError, field: str) -> Exception:
    if exc.status == 422:
        return invalid(("body", field), str(exc))
    return HTTPException(exc.status, str(exc))


@router.get("/{patient_id}", response_model=AccountOut, summary="One patient",
            responses=_errors)
async def get_patient(
    patient_id: PatientId, auth: Auth, account: Annotated[Account, Depends(current_account)]
) -> AccountOut:
    """A therapist's own patient, or a patient's own account."""
    return AccountOut.of(visible_patient(auth, account, patient_id))


@router.patch("/{patient_id}", response_model=AccountOut, summary="Edit a patient",
              responses=_errors)
async def update_patient(
    patient_id: PatientId, req: PatientUpdate, auth: Auth, therapist: Therapist
) -> AccountOut:
    """Change the display name, disable or re-enable sign-in (`active`), or set a new
    password; disabling or a new password ends the patient's sign-ins at once."""
    patient = _own_patient(auth, therapist, patient_id)
    try:
        if req.password is not None:
            patient = await auth.aset_password(patient, req.password)
        if req.display_name is not None:
            name = check_display_name(req.display_name)
            patient = auth.store.update(patient.id, display_name=name)
        if req.active is not None:
            patient = auth.set_active(patient, req.active)
    except AuthError as exc:
        raise _http(exc, "password") from None
    return AccountOut.of(patient)


@router.post("/{patient_id}/login-link", response_model=LoginLinkOut,
             summary="One-time login link for a patient's display", responses=_errors)
async def make_login_link(
    patient_id: PatientId, auth: Auth, therapist: Therapist,
    req: Annotated[LoginLinkRequest, Body()] = LoginLinkRequest(),
) -> LoginLinkOut:
    """A single-use link, valid for 10 minutes, that signs the patient in on the device that
    opens it (a clinic display, the patient's tablet) without a password."""
    patient = _own_patient(auth, therapist, patient_id)
    if not patient.active:
        raise HTTPException(409, "This patient's sign-in is disabled; enable it first.")
    token, expires = auth.make_link(patient, req.next, created_by=therapist.id)
    return LoginLinkOut(url=f"/login/link?token={token}", expires_at=iso(expires))
