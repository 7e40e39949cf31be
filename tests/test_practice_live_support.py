"""Helpers for the graded-practice tests (no tests here): accounts when the app has them, and
the request headers / cookies of a therapist and their patient."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASSWORD = "correct-horse-battery-staple-9"


@dataclass
class Access:
    patient_id: str
    patient_headers: dict[str, str] = field(default_factory=dict)
    therapist_headers: dict[str, str] = field(default_factory=dict)
    patient_cookie: str | None = None  # value of the session cookie, for a browser
    therapist_cookie: str | None = None
    cookie_name: str = "lumbo_session"


def sign_in(app: Any, suffix: str = "") -> Access:
    """A therapist and one patient of theirs, signed in (bearer for HTTP and WebSocket clients,
    cookies for browsers), when the app has accounts (api/auth); else the demo patient, open."""
    auth = getattr(app.state, "auth", None)
    if auth is None:
        return Access("demo")
    therapist = auth.create_therapist(f"therapist{suffix}", PASSWORD)
    patient = auth.create_patient(f"patient{suffix}", therapist.id)
    access = Access(patient.id)
    tok, _ = auth.open_session(therapist, "bearer")
    access.therapist_headers = {"Authorization": f"Bearer {tok}"}
    tok, _ = auth.open_session(patient, "bearer")
    access.patient_headers = {"Authorization": f"Bearer {tok}"}
    access.therapist_cookie, _ = auth.open_session(therapist, "cookie")
    access.patient_cookie, _ = auth.open_session(patient, "cookie")
    try:
        from api.auth.middleware import COOKIE_NAME

        access.cookie_name = COOKIE_NAME
    except ImportError:  # pragma: no cover
        pass
    return access


def browser_context(browser: Any, url: str, cookie: str | None, name: str, **kw: Any) -> Any:
    ctx = browser.new_context(**kw)
    if cookie is not None:
        ctx.add_cookies([{"name": name, "value": cookie, "url": url}])
    return ctx
