"""Settings of accounts and access; `Settings.auth` in api/settings.py."""

from __future__ import annotations

from pydantic import BaseModel, Field

HOUR_S = 3600.0


class AuthSettings(BaseModel):
    session_lifetime_s: float = Field(
        12 * HOUR_S, gt=0, description="a browser sign-in ends after this long (a clinic day)")
    session_idle_s: float = Field(
        2 * HOUR_S, gt=0, description="... or after this long without a request; an open live "
        "page counts as activity")
    bearer_lifetime_s: float = Field(
        24 * HOUR_S, gt=0, description="bearer tokens for scripts (POST /api/auth/token) end after "
        "this long")
    link_lifetime_s: float = Field(
        600.0, gt=0, le=HOUR_S, description="one-time login links (demo, therapist-issued) expire "
        "after this long unless used first")
    login_max_failures: int = Field(
        5, ge=1, description="failed sign-ins per username and address within the window")
    login_max_failures_per_address: int = Field(
        50, ge=1, description="failed sign-ins per address (any username) within the window")
    login_window_s: float = Field(900.0, gt=0, description="failed sign-in window")
    login_limiter_keys: int = Field(
        10_000, ge=16, description="bound on the counters kept in memory (oldest forgotten)")
    cookie_secure: bool | None = Field(
        None, description="Secure flag of the session cookie; None: when the request came over "
        "https (uvicorn honours X-Forwarded-Proto from a proxy on this host)")
    live_recheck_s: float = Field(
        60.0, gt=0, description="an open /ws/live re-checks its sign-in this often (and at once "
        "on sign-out)")
    demo_accounts: bool = Field(
        False, description="lumbo demo: create demo-therapist and demo-patient (idempotent); "
        "the autostarted session is demo-patient's and the banner prints login links")
    autostart_patient: str | None = Field(
        None, description="username of the patient the autostarted session belongs to (demo)")
