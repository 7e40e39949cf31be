"""Accounts, sign-in sessions and one-time login links, in the recordings database.

Storage only: no password hashing and no policy here (api/auth/ decides who may do what). The
tables come from the migration `schema.ACCOUNTS` (recordings/migrations.py), so accounts live in
the same database (SQLite file or PostgreSQL), with the same schema version, as the recordings
they own (`sessions.patient_id` is an account id).

Secrets are never stored: sign-in sessions and login links are kept under the SHA-256 of their
token (a 256-bit random value, so a plain hash is enough: there is nothing to brute-force), and
passwords only as the hash string the caller gives. Times are Unix seconds (REAL) from the
caller's clock, so expiry is testable without waiting.

`AccountStore(None)` keeps everything in memory (one connection, guarded by a lock): that is
what an app without a data directory (`Settings(data_dir=None)`, the tests) uses. Otherwise
`AccountStore(location)` takes what `RecordingStore` takes: a data directory or a storage URL.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from recordings.database import (
    Database,
    StorageTarget,
    connect,
    driver_errors,
    parse_location,
    sqlite_file_target,
)
from recordings.errors import StorageError, StorageReadOnlyError, classify
from recordings.migrations import migrate
from recordings.models import utc_now_iso

Role = Literal["therapist", "patient"]
TokenKind = Literal["cookie", "bearer"]


class AccountExists(ValueError):
    """The username is taken (usernames compare case-insensitively)."""


class AccountNotFound(LookupError):
    """No account has this id or username."""


@dataclass(frozen=True)
class Account:
    id: str
    username: str
    role: Role
    display_name: str
    therapist_id: str | None  # the treating therapist of a patient; None for therapists
    active: bool
    has_password: bool
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class AuthSessionRecord:
    token_hash: str
    user_id: str
    kind: TokenKind
    created_at: float
    last_seen_at: float
    expires_at: float
    idle_timeout_s: float
    label: str


def new_account_id(role: Role) -> str:
    """`t-` or `p-` and 64 random bits: unguessable, so an id in a URL reveals nothing."""
    return ("t-" if role == "therapist" else "p-") + secrets.token_hex(8)


_ACCOUNT_COLUMNS = ("id, username, role, display_name, therapist_id, active, "
                    "password_hash IS NOT NULL AS has_password, created_at, updated_at")


def _account(row: tuple[Any, ...]) -> Account:
    (id_, username, role, display_name, therapist_id, active, has_pw, created, updated) = row
    return Account(id=id_, username=username, role=role, display_name=display_name,
                   therapist_id=therapist_id, active=bool(active), has_password=bool(has_pw),
                   created_at=created, updated_at=updated)


class AccountStore:
    """Accounts in the database at `data_dir` (a data directory or storage URL, as
    `RecordingStore` takes; created and migrated if needed), or in memory (None)."""

    def __init__(self, data_dir: Path | str | StorageTarget | None) -> None:
        self._mutex = threading.RLock()
        try:
            target = None if data_dir is None else parse_location(data_dir)
        except ValueError as exc:
            raise StorageError(f"Cannot open the accounts database: {exc}") from None
        self.target = target
        self.data_dir = None if target is None else target.data_dir
        self.db_path = None if target is None else target.db_path
        where = ":memory:" if target is None else target.display
        self.location = where
        try:
            if target is None:
                raw = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                raw.execute("PRAGMA foreign_keys=ON")
                conn = Database(raw, sqlite_file_target(Path(":memory:")))
            else:
                if target.data_dir is not None:
                    target.data_dir.mkdir(parents=True, exist_ok=True)
                conn = connect(target, application_name="lumbo accounts")
        except driver_errors() as exc:
            raise classify(exc, where, "opening the accounts database") from exc
        try:
            migrate(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, driver_errors()):
                raise classify(exc, where, "upgrading the accounts database") from exc
            raise
        self._conn = conn
        self._where = where

    def close(self) -> None:
        with self._mutex:
            self._conn.close()

    # --- plumbing -------------------------------------------------------------------------
    @contextmanager
    def _tx(self, doing: str) -> Iterator[Database]:
        with self._mutex:
            try:
                self._conn.ensure_open()
                self._conn.begin()
            except driver_errors() as exc:
                raise classify(exc, self._where, doing) from exc
            try:
                yield self._conn
                self._conn.commit()
            except BaseException as exc:
                self._conn.rollback()
                if isinstance(exc, self._conn.IntegrityError) and "username" in str(exc):
                    raise AccountExists("that username is taken") from None
                if isinstance(exc, driver_errors()):
                    raise classify(exc, self._where, doing) from exc
                raise

    def _rows(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._mutex:
            try:
                self._conn.ensure_open()
                return list(self._conn.execute(statement, params).fetchall())
            except driver_errors() as exc:
                raise classify(exc, self._where, "reading accounts") from exc

    # --- accounts -------------------------------------------------------------------------
    def create(self, username: str, role: Role, *, display_name: str = "",
               password_hash: str | None = None, therapist_id: str | None = None) -> Account:
        if (role == "patient") != (therapist_id is not None):
            raise ValueError("a patient needs a therapist; a therapist has none")
        now = utc_now_iso()
        account_id = new_account_id(role)
        with self._tx("creating an account") as conn:
            if therapist_id is not None:
                row = conn.execute("SELECT role FROM users WHERE id = ?",
                                   (therapist_id,)).fetchone()
                if row is None or row[0] != "therapist":
                    raise AccountNotFound(f"no therapist {therapist_id}")
            conn.execute(
                "INSERT INTO users (id, username, role, display_name, password_hash, "
                "therapist_id, active, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (account_id, username, role, display_name, password_hash, therapist_id, now, now))
        return self.get(account_id)

    def get(self, account_id: str) -> Account:
        rows = self._rows(f"SELECT {_ACCOUNT_COLUMNS} FROM users WHERE id = ?", (account_id,))
        if not rows:
            raise AccountNotFound(f"no account {account_id}")
        return _account(rows[0])

    def by_username(self, username: str) -> Account | None:
        rows = self._rows(f"SELECT {_ACCOUNT_COLUMNS} FROM users WHERE username = ?", (username,))
        return _account(rows[0]) if rows else None

    def password_hash(self, account_id: str) -> str | None:
        rows = self._rows("SELECT password_hash FROM users WHERE id = ?", (account_id,))
        return rows[0][0] if rows else None

    def patients_of(self, therapist_id: str) -> list[Account]:
        rows = self._rows(f"SELECT {_ACCOUNT_COLUMNS} FROM users WHERE therapist_id = ? "
                          "ORDER BY username", (therapist_id,))  # the column's NOCASE order
        return [_account(r) for r in rows]

    def count(self, role: Role | None = None) -> int:
        if role is None:
            return int(self._rows("SELECT COUNT(*) FROM users")[0][0])
        return int(self._rows("SELECT COUNT(*) FROM users WHERE role = ?", (role,))[0][0])

    def update(self, account_id: str, *, display_name: str | None = None,
               active: bool | None = None, password_hash: str | None = None,
               clear_password: bool = False) -> Account:
        sets: list[str] = []
        params: list[Any] = []
        if display_name is not None:
            sets.append("display_name = ?")
            params.append(display_name)
        if active is not None:
            sets.append("active = ?")
            params.append(1 if active else 0)
        if password_hash is not None:
            sets.append("password_hash = ?")
            params.append(password_hash)
        elif clear_password:
            sets.append("password_hash = NULL")
        if sets:
            sets.append("updated_at = ?")
            params.append(utc_now_iso())
            with self._tx("updating an account") as conn:
                cur = conn.execute(f"UPDATE users SET {', '.join(sets)} WHERE id = ?",
                                   (*params, account_id))
                if cur.rowcount == 0:
                    raise AccountNotFound(f"no account {account_id}")
        return self.get(account_id)

    # --- sign-in sessions -----------------------------------------------------------------
    def add_session(self, rec: AuthSessionRecord) -> None:
        with self._tx("signing in") as conn:
            conn.execute(
                "INSERT INTO auth_sessions (token_hash, user_id, kind, created_at, last_seen_at, "
                "expires_at, idle_timeout_s, label) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.token_hash, rec.user_id, rec.kind, rec.created_at, rec.last_seen_at,
                 rec.expires_at, rec.idle_timeout_s, rec.label))

    def session(self, token_hash: str) -> AuthSessionRecord | None:
        rows = self._rows("SELECT token_hash, user_id, kind, created_at, last_seen_at, expires_at, "
                          "idle_timeout_s, label FROM auth_sessions WHERE token_hash = ?",
                          (token_hash,))
        return AuthSessionRecord(*rows[0]) if rows else None

    def touch_session(self, token_hash: str, now: float) -> None:
        with self._tx("refreshing a sign-in session") as conn:
            conn.execute("UPDATE auth_sessions SET last_seen_at = ? WHERE token_hash = ?",
                         (now, token_hash))

    def delete_session(self, token_hash: str) -> bool:
        with self._tx("signing out") as conn:
            return conn.execute("DELETE FROM auth_sessions WHERE token_hash = ?",
                                (token_hash,)).rowcount > 0

    def delete_sessions_of(self, user_id: str) -> list[str]:
        """Sign the account out everywhere; returns the token hashes that were removed."""
        with self._tx("signing out everywhere") as conn:
            hashes = [r[0] for r in conn.execute(
                "SELECT token_hash FROM auth_sessions WHERE user_id = ?", (user_id,))]
            conn.execute("DELETE FROM auth_sessions WHERE user_id = ?", (user_id,))
        return hashes

    def purge_expired(self, now: float) -> int:
        """Forget sessions past their absolute or idle expiry and spent or expired links."""
        with self._tx("forgetting expired sign-ins") as conn:
            n = conn.execute("DELETE FROM auth_sessions WHERE expires_at <= ? OR "
                             "last_seen_at + idle_timeout_s <= ?", (now, now)).rowcount
            n += conn.execute("DELETE FROM login_links WHERE expires_at <= ?", (now,)).rowcount
        return n

    # --- one-time login links -------------------------------------------------------------
    def add_link(self, token_hash: str, user_id: str, next_path: str, created_at: float,
                 expires_at: float, created_by: str | None = None) -> None:
        with self._tx("creating a login link") as conn:
            conn.execute(
                "INSERT INTO login_links (token_hash, user_id, next_path, created_at, expires_at, "
                "created_by) VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash, user_id, next_path, created_at, expires_at, created_by))

    def consume_link(self, token_hash: str, now: float) -> tuple[str, str] | None:
        """(user_id, next_path) of a valid link, deleting it in the same transaction (single
        use even with two servers on one database); None if unknown, spent or expired."""
        with self._tx("using a login link") as conn:
            row = conn.execute("DELETE FROM login_links WHERE token_hash = ? RETURNING user_id, "
                               "next_path, expires_at", (token_hash,)).fetchone()
        if row is None or row[2] <= now:
            return None
        return row[0], row[1]


__all__ = ["Account", "AccountExists", "AccountNotFound", "AccountStore", "AuthSessionRecord",
           "Role", "StorageError", "StorageReadOnlyError", "TokenKind", "new_account_id"]
