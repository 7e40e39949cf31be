"""`/api/auth`: sign in, sign out, who am I, bearer tokens; the login page and login links."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from api import schema
from api.auth.deps import get_auth, get_principal
from api.auth.middleware import COOKIE_NAME, PRINCIPAL
from api.auth.models import (
    AccountOut,
    LoginRequest,
    Me,
    SignedOut,
    SignInInfo,
    TokenOut,
    TokenRequest,
)
from api.auth.service import AuthError, AuthService, Principal, safe_next
from api.routes.pages import STATIC_DIR
from recordings.accounts import Account

router = APIRouter(tags=["auth"])

Auth = Annotated[AuthService, Depends(get_auth)]

_login_errors: dict[int | str, dict[str, Any]] = {
    401: {"model": schema.ErrorResponse, "description": "Wrong username or password"},
    429: {"model": schema.ErrorResponse, "description": "Too many failed sign-ins (Retry-After)"},
}


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def set_session_cookie(request: Request, response: Response, auth: AuthService,
                       token: str) -> None:
    secure = auth.settings.cookie_secure
    if secure is None:
        secure = request.url.scheme in ("https", "wss")
    response.set_cookie(COOKIE_NAME, token, max_age=int(auth.settings.session_lifetime_s),
                        path="/", secure=secure, httponly=True, samesite="strict")


def _refusal(exc: AuthError) -> JSONResponse:
    headers = {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)


def _me(account: Account, kind: str, expires_at: float, next_path: str = "/") -> Me:
    return Me(account=AccountOut.of(account),
              sign_in=SignInInfo(kind=kind, expires_at=iso(expires_at)),  # type: ignore[arg-type]
              next=next_path)


@router.post("/api/auth/login", response_model=Me, summary="Sign in (sets the session cookie)",
             responses=_login_errors)
async def login(req: LoginRequest, request: Request, auth: Auth) -> Any:
    """Check the password and start a browser sign-in: an HttpOnly, SameSite=Strict cookie
    holding a new random session token (any session the browser had is ended). After 5 failed
    attempts for one username from one address within 15 minutes the answer is 429."""
    try:
        account = await auth.authenticate(req.username, req.password, client_address(request))
    except AuthError as exc:
        return _refusal(exc)
    old: Principal | None = request.scope.get(PRINCIPAL)
    if old is not None and old.kind == "cookie":
        auth.sign_out(old.token_hash)  # rotation: never keep a session across a sign-in
    token, rec = auth.open_session(account, "cookie")
    response = JSONResponse(_me(account, "cookie", rec.expires_at, safe_next(req.next))
                            .model_dump(mode="json"))
    set_session_cookie(request, response, auth, token)
    return response


@router.post("/api/auth/token", response_model=TokenOut, summary="Bearer token for scripts",
             responses=_login_errors)
async def make_token(req: TokenRequest, request: Request, auth: Auth) -> Any:
    """Check the password and return a bearer token (`Authorization: Bearer ...`), valid for
    24 hours; `POST /api/auth/logout` with it ends it. Same rate limit as sign-in."""
    try:
        account = await auth.authenticate(req.username, req.password, client_address(request))
    except AuthError as exc:
        return _refusal(exc)
    token, rec = auth.open_session(account, "bearer", label=req.label)
    return TokenOut(token=token, expires_at=iso(rec.expires_at))


@router.post("/api/auth/logout", response_model=SignedOut, summary="Sign out")
async def logout(request: Request, auth: Auth) -> Any:
    """End this sign-in (cookie or bearer token) everywhere it is used: open live pages are
    disconnected at once. Without a sign-in it does nothing."""
    principal: Principal | None = request.scope.get(PRINCIPAL)
    if principal is not None:
        auth.sign_out(principal.token_hash)
    response = JSONResponse({"signed_out": principal is not None})
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response


@router.get("/api/auth/me", response_model=Me, summary="Who is signed in")
async def me(principal: Annotated[Principal, Depends(get_principal)]) -> Me:
    """The signed-in account (401 if none: the pages then go to the login page)."""
    return _me(principal.account, principal.kind, principal.expires_at)


@router.get("/login", response_class=FileResponse, summary="Login page")
async def login_page() -> FileResponse:
    """Username and password form; `?next=/path` is where it goes after signing in."""
    return FileResponse(STATIC_DIR / "login.html", media_type="text/html")


def _with_patient(path: str, patient_id: str) -> str:
    parts = urlsplit(path)
    if "patient_id=" in parts.query:
        return path
    query = f"{parts.query}&patient_id={patient_id}" if parts.query else f"patient_id={patient_id}"
    return urlunsplit(("", "", parts.path, query, parts.fragment))


@router.get("/login/link", summary="Sign in with a one-time login link",
            responses={303: {"description": "Signed in: on to the page; or back to /login"}},
            response_class=RedirectResponse, status_code=303)
async def login_link(
    request: Request, auth: Auth,
    token: Annotated[str, Query(max_length=128, description="the link's single-use token")],
) -> Any:
    """Exchange a single-use token (valid for minutes; `lumbo demo` prints such links, and a
    therapist makes them with `POST /api/patients/{id}/login-link`) for a session cookie, then
    go to the link's page. A used, expired or unknown token goes to the login page. A browser
    already signed in as this patient's therapist stays signed in as the therapist (the
    therapist sees everything the patient does)."""
    found = auth.redeem_link(token)
    if found is None:
        response = RedirectResponse("/login?link=invalid", status_code=303)
    else:
        account, next_path = found
        current: Principal | None = request.scope.get(PRINCIPAL)
        keep = current is not None and current.kind == "cookie" and (
            current.id == account.id or current.id == account.therapist_id)
        if keep:
            assert current is not None
            if current.id != account.id:
                next_path = _with_patient(next_path, account.id)
            response = RedirectResponse(next_path, status_code=303)
        else:
            if current is not None and current.kind == "cookie":
                auth.sign_out(current.token_hash)
            new_token, _ = auth.open_session(account, "cookie")
            response = RedirectResponse(next_path, status_code=303)
            set_session_cookie(request, response, auth, new_token)
    response.headers["Referrer-Policy"] = "no-referrer"  # the token must not leak onwards
    response.headers["Cache-Control"] = "no-store"
    return response
