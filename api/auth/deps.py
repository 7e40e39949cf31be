"""FastAPI dependencies that authorise: who is signed in, therapist only, which patient.

Rules (the access tests in tests/test_access.py try every route against them):
- a patient sees and acts on their own data only; naming another patient is answered 404, the
  same as a patient that does not exist, so ids cannot be probed;
- a therapist sees and edits their own patients only (others: 404); routes that take a
  `patient_id` may omit it when the therapist has exactly one patient;
- therapist-only routes answer a patient 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.requests import HTTPConnection

from api import schema
from api.auth.middleware import PRINCIPAL
from api.auth.service import AuthService, Principal
from api.live import LiveSession, NoSession, SessionConflict, SessionManager
from recordings.accounts import Account

PATIENT_ID_MAX = 64


def get_auth(conn: HTTPConnection) -> AuthService:
    return conn.app.state.auth


def get_principal(conn: HTTPConnection) -> Principal:
    principal = conn.scope.get(PRINCIPAL)
    if principal is None:  # the middleware lets only public routes through without one
        raise HTTPException(401, "Sign in first.")
    return principal


def current_account(principal: Annotated[Principal, Depends(get_principal)]) -> Account:
    return principal.account


def require_therapist(account: Annotated[Account, Depends(current_account)]) -> Account:
    if account.role != "therapist":
        raise HTTPException(403, "Only a therapist can do this.")
    return account


def invalid(loc: tuple[str, ...], message: str) -> RequestValidationError:
    """A 422 in the app's validation-error shape (`detail` list + `message`), as documented."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message,
                                    "input": None}])


def not_found() -> HTTPException:
    return HTTPException(404, "No such patient (or not one of yours).")


def visible_patient(auth: AuthService, account: Account, patient_id: str | None) -> Account:
    """The patient `account` may see: themselves, or one of the therapist's patients."""
    if account.role == "patient":
        if patient_id not in (None, account.id):
            raise not_found()
        return account
    if patient_id is None:
        patients = auth.patients_of(account)
        if len(patients) == 1:
            return patients[0]
        if not patients:
            raise HTTPException(409, "You have no patients yet: add one first "
                                     "(POST /api/patients).")
        raise invalid(("query", "patient_id"), f"choose a patient: patient_id is required "
                                               f"(you have {len(patients)} patients)")
    patient = auth.account(patient_id) if len(patient_id) <= PATIENT_ID_MAX else None
    if patient is None or patient.role != "patient" or patient.therapist_id != account.id:
        raise not_found()
    return patient


PatientQuery = Annotated[
    str | None,
    Query(max_length=PATIENT_ID_MAX, description="the patient (a therapist with one patient may "
          "omit it; a patient may omit it or give their own id)"),
]


def patient_in_scope(
    conn: HTTPConnection,
    account: Annotated[Account, Depends(current_account)],
    patient_id: PatientQuery = None,
) -> Account:
    return visible_patient(get_auth(conn), account, patient_id)


class PatientSessions:
    """One patient's view of the SessionManager, with the methods the session routes use:
    `status`, `start`, `stop`, `get`, `get_active`. Another patient's session is never
    returned, stopped or changed through it."""

    def __init__(self, manager: SessionManager, patient: Account) -> None:
        self.manager = manager
        self.patient = patient

    def status(self) -> schema.SessionStatus:
        return self.manager.status_for(self.patient.id)

    async def start(self, req: schema.StartSessionRequest) -> LiveSession:
        return await self.manager.start(req, patient_id=self.patient.id)

    async def stop(self) -> LiveSession:
        session = self.get()
        await session.stop()
        return session

    def get(self, session_id: str | None = None) -> LiveSession:
        session = self.manager.by_patient.get(self.patient.id)
        if session is None or (session_id is not None and session.session_id != session_id):
            raise NoSession("no session has been started for this patient"
                            if session_id is None else f"no session {session_id}")
        return session

    def get_active(self) -> LiveSession:
        session = self.get()
        if not session.active:
            raise SessionConflict(
                f"session {session.session_id} has {session.state}; start a new session first")
        return session

    def levels(self) -> dict:
        return self.manager.levels()


def patient_sessions(
    request: Request, patient: Annotated[Account, Depends(patient_in_scope)]
) -> PatientSessions:
    return PatientSessions(request.app.state.manager, patient)
