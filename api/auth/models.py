"""Request and response models of `/api/auth` and `/api/patients` (they are the OpenAPI doc)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.auth.passwords import MAX_LENGTH, MIN_LENGTH, check_password
from api.auth.service import USERNAME_PATTERN, AuthError, check_display_name
from recordings.accounts import Account

Password = Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH,
                 description=f"{MIN_LENGTH}–{MAX_LENGTH} characters, not the username")


def _display_name(v: str) -> str:
    try:
        return check_display_name(v)
    except AuthError as exc:
        raise ValueError(str(exc)) from None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_LENGTH)
    next: str = Field("/", max_length=512, description="page to open after signing in (a path "
                      "on this site; anything else becomes `/`)")


class TokenRequest(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_LENGTH)
    label: str = Field("", max_length=64, description="what the token is for (shown nowhere "
                       "yet; kept with it)")


class AccountOut(BaseModel):
    id: str
    username: str
    role: Literal["therapist", "patient"]
    display_name: str
    therapist_id: str | None = Field(None, description="a patient's therapist")
    active: bool = Field(description="false: cannot sign in")
    has_password: bool = Field(description="false: signs in only by a one-time login link")
    created_at: str

    @classmethod
    def of(cls, a: Account) -> AccountOut:
        return cls(id=a.id, username=a.username, role=a.role, display_name=a.display_name,
                   therapist_id=a.therapist_id, active=a.active, has_password=a.has_password,
                   created_at=a.created_at)


class SignInInfo(BaseModel):
    kind: Literal["cookie", "bearer"]
    expires_at: str = Field(description="UTC, ISO 8601: the sign-in ends then at the latest")


class Me(BaseModel):
    account: AccountOut
    sign_in: SignInInfo
    next: str = Field("/", description="where a page should go now (after signing in)")


class TokenOut(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>`; shown only once")
    token_type: Literal["bearer"] = "bearer"
    expires_at: str


class SignedOut(BaseModel):
    signed_out: bool


class PatientCreate(Strict):
    username: str = Field(pattern=USERNAME_PATTERN, description="3–64 letters, digits, . _ @ -")
    display_name: str = Field("", max_length=100, description="how the pages name the "
                              "patient (default: the username)")
    password: str | None = Field(None, min_length=MIN_LENGTH, max_length=MAX_LENGTH,
                                 description="optional: without one the patient signs in by "
                                 "one-time login links the therapist makes")

    @field_validator("display_name")
    @classmethod
    def _printable(cls, v: str) -> str:
        return _display_name(v)

    @model_validator(mode="after")
    def _defaults(self) -> PatientCreate:
        if self.password is not None:
            check_password(self.password, self.username)  # ValueError: a 422 on the body
        if not self.display_name:
            self.display_name = self.username
        return self


class PatientUpdate(Strict):
    display_name: str | None = Field(None, max_length=100)
    active: bool | None = Field(None, description="false: the patient cannot sign in (their "
                                "data stays)")
    password: str | None = Field(None, min_length=MIN_LENGTH, max_length=MAX_LENGTH,
                                 description="a new password; ends the patient's sign-ins")

    @field_validator("display_name")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        return None if v is None else _display_name(v)

    @model_validator(mode="after")
    def _something(self) -> PatientUpdate:
        if self.display_name is None and self.active is None and self.password is None:
            raise ValueError("give at least one of display_name, active, password")
        return self


class LoginLinkRequest(Strict):
    next: str = Field("/", max_length=512, description="page the link opens (a path here)")


class LoginLinkOut(BaseModel):
    url: str = Field(description="path of the one-time link on this server "
                     "(`/login/link?token=...`): single use, valid for minutes")
    expires_at: str
