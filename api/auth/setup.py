"""Wiring of accounts and access into the app (called from `api.app.create_app`)."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from api.auth.middleware import AuthMiddleware
from api.auth.service import AuthService
from api.settings import Settings
from recordings.accounts import AccountStore

log = logging.getLogger(__name__)


def install_auth(app: FastAPI, settings: Settings) -> AuthService:
    """Open the accounts (in `settings.database()`: `db`, else `data_dir`'s database; or in
    memory), authenticate every request and WebSocket (AuthMiddleware) and add the `/api/auth`,
    `/api/patients` and login routes. The service is `app.state.auth`."""
    from api.routes import auth as auth_routes
    from api.routes import patients as patient_routes

    auth = AuthService(AccountStore(settings.database()), settings.auth)
    auth.purge_expired()
    if settings.auth.demo_accounts:
        from api.auth.cli import ensure_demo_accounts

        ensure_demo_accounts(auth)
    elif settings.database() is not None and auth.store.count("therapist") == 0:
        log.warning("No accounts yet: create the first with `lumbo create-therapist NAME`, "
                    "then sign in at /login.")
    app.state.auth = auth
    app.add_middleware(AuthMiddleware, auth=auth, allowed_origins=settings.allowed_origins)
    app.include_router(auth_routes.router)
    app.include_router(patient_routes.router)
    return auth


def autostart_patient_id(app: FastAPI) -> str | None:
    """The patient an autostarted session (`lumbo demo`) belongs to: `Settings.auth.
    autostart_patient`. Without one the session belongs to nobody and nobody can see it."""
    auth: AuthService = app.state.auth
    username = auth.settings.autostart_patient
    if username is None and auth.settings.demo_accounts:
        from api.auth.cli import DEMO_PATIENT

        username = DEMO_PATIENT
    if username is None:
        log.warning("autostarted session without a patient: no one can see it")
        return None
    account = auth.store.by_username(username)
    if account is None or account.role != "patient":
        raise RuntimeError(f"autostart patient {username!r} is not a patient account")
    return account.id
