"""Device tokens: the credential of an edge (`lumbo edge`), bound to ONE patient account.

A therapist makes one for a patient (`lumbo create-device-token PATIENT`, or
`POST /api/patients/{id}/device-tokens`) and puts it on the patient's machine. It is long-lived
(no expiry: a home machine may stay offline for weeks) but revocable at once, and it is good for
nothing but the ingest routes (`/api/ingest/...`, `/ws/ingest/...`): the middleware never turns
it into a sign-in, so it cannot read anything, and what it uploads always lands in its own
patient's records. Only its SHA-256 is stored (as for sign-in tokens: 256 random bits, nothing
to brute-force); a disabled patient's tokens stop working with the patient's sign-ins.

Tokens start with `DEVICE_TOKEN_PREFIX` so the middleware knows which table to look in.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.auth.service import MAX_TOKEN_CHARS, token_hash
from recordings.accounts import Account, AccountNotFound, AccountStore

DEVICE_TOKEN_PREFIX = "lumbo-dev-"
TOUCH_EVERY_S = 60.0
_COLUMNS = "id, patient_id, label, created_at, created_by, last_used_at, revoked_at"


@dataclass(frozen=True)
class DeviceToken:
    id: str  # public: lists and revocation name it; the token itself is shown once
    patient_id: str
    label: str
    created_at: float
    created_by: str | None
    last_used_at: float | None
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Device:
    """Who an ingest request comes from: a device token and the patient it is bound to."""

    token: DeviceToken
    patient: Account

    @property
    def id(self) -> str:
        return self.token.id


def is_device_token(token: str) -> bool:
    return token.startswith(DEVICE_TOKEN_PREFIX)


class DeviceTokens:
    """Device tokens in the accounts database (the table of migration 4)."""

    def __init__(self, store: AccountStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def create(self, patient: Account, label: str = "",
               created_by: str | None = None) -> tuple[str, DeviceToken]:
        """A new token for `patient` (returned once, never stored) and its record."""
        if patient.role != "patient":
            raise ValueError("a device token belongs to a patient account")
        token = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = "d-" + secrets.token_hex(6)
        now = self.clock()
        with self.store._tx("creating a device token") as conn:
            row = conn.execute("SELECT role FROM users WHERE id = ?", (patient.id,)).fetchone()
            if row is None or row[0] != "patient":
                raise AccountNotFound(f"no patient {patient.id}")
            conn.execute(
                "INSERT INTO device_tokens (id, token_hash, patient_id, label, created_at, "
                "created_by, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                (token_id, token_hash(token), patient.id, label[:64], now, created_by))
        return token, self.get(token_id)

    def get(self, token_id: str) -> DeviceToken:
        rows = self.store._rows(f"SELECT {_COLUMNS} FROM device_tokens WHERE id = ?",
                                (token_id,))
        if not rows:
            raise KeyError(token_id)
        return _record(rows[0])

    def of_patient(self, patient_id: str) -> list[DeviceToken]:
        rows = self.store._rows(f"SELECT {_COLUMNS} FROM device_tokens WHERE patient_id = ? "
                                "ORDER BY created_at, id", (patient_id,))
        return [_record(r) for r in rows]

    def revoke(self, patient_id: str, token_id: str) -> bool:
        """End a token of this patient at once; False if it has none of that id (or it was
        revoked already)."""
        with self.store._tx("revoking a device token") as conn:
            cur = conn.execute("UPDATE device_tokens SET revoked_at = ? WHERE id = ? AND "
                               "patient_id = ? AND revoked_at IS NULL",
                               (self.clock(), token_id, patient_id))
            return cur.rowcount > 0

    def resolve(self, token: str) -> Device | None:
        """The device of a valid, unrevoked token whose patient is active, else None."""
        if not token or len(token) > MAX_TOKEN_CHARS or not is_device_token(token):
            return None
        rows = self.store._rows(f"SELECT {_COLUMNS} FROM device_tokens WHERE token_hash = ?",
                                (token_hash(token),))
        if not rows:
            return None
        rec = _record(rows[0])
        if not rec.active:
            return None
        try:
            patient = self.store.get(rec.patient_id)
        except AccountNotFound:
            return None
        if not patient.active or patient.role != "patient":
            return None
        now = self.clock()
        if rec.last_used_at is None or now - rec.last_used_at >= TOUCH_EVERY_S:
            with self.store._tx("noting a device token's use") as conn:
                conn.execute("UPDATE device_tokens SET last_used_at = ? WHERE id = ?",
                             (now, rec.id))
        return Device(rec, patient)


def _record(r: Any) -> DeviceToken:
    id_, patient_id, label, created_at, created_by, last_used_at, revoked_at = r
    return DeviceToken(id_, patient_id, label, float(created_at), created_by,
                       None if last_used_at is None else float(last_used_at),
                       None if revoked_at is None else float(revoked_at))
