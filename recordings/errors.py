"""Storage errors the live service can show as they are: what went wrong, where, and what to do.

SQLite reports a full disk as "database or disk is full" and a read-only location as "attempt to
write a readonly database" or "unable to open database file"; PostgreSQL says it with SQLSTATEs
(53100 disk full, 25006 read-only transaction, 42501 no privilege; class 08 the connection).
`classify` turns those into exception types with a message a clinician can act on, keeping the
original as `__cause__`.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path


class StorageError(RuntimeError):
    """Recording storage failed; `path` is the database or directory concerned (for
    PostgreSQL its URL, without password, as text)."""

    kind = "error"

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path: Path | str | None = (
            None if path is None else str(path) if "://" in str(path) else Path(path))


class StorageFullError(StorageError):
    """No space left (disk full, quota, or SQLite's page limit reached)."""

    kind = "full"


class StorageReadOnlyError(StorageError):
    """The data directory or database cannot be written."""

    kind = "read_only"


class SchemaVersionError(StorageError):
    """The database was written by a newer Lumbo (a schema version this code does not know)."""

    kind = "schema"


class SessionNotFound(LookupError):
    """No stored session has this id (or the prefix given matches none or several)."""


def _code(exc: BaseException) -> str:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return str(name)


def _is_driver_error(exc: BaseException) -> bool:
    """sqlite3's or psycopg's (without importing psycopg when it is not in use)."""
    return isinstance(exc, sqlite3.Error) or type(exc).__module__.split(".")[0] == "psycopg"


def classify(exc: BaseException, path: Path | str, doing: str) -> StorageError:
    """A `StorageError` subclass for an exception raised while `doing` something at `path`."""
    if isinstance(exc, StorageError):
        return exc
    text = " ".join(str(exc).split())  # libpq's messages span lines
    code = _code(exc)
    state = str(getattr(exc, "sqlstate", None) or "")
    low = text.lower()
    if state == "53100":
        return StorageFullError(
            f"Recording storage is full while {doing}: {path} ({text}). The PostgreSQL server "
            "is out of disk space; Lumbo keeps the newest samples in memory meanwhile and "
            "retries.", path)
    if state in ("25006", "42501"):
        return StorageReadOnlyError(
            f"Recording storage is read-only while {doing}: {path} ({text}). Give the database "
            "user write access (or use a writable database).", path)
    if state == "3D000":
        return StorageError(f"Recording storage failed while {doing}: {path} ({text}). Create "
                            "the database first (e.g. `createdb`).", path)
    if state.startswith("08") or (not state and _is_driver_error(exc) and type(exc).__name__
                                  in ("OperationalError", "InterfaceError")
                                  and not isinstance(exc, sqlite3.Error)):
        return StorageError(f"Recording storage is unreachable while {doing}: {path} ({text}). "
                            "Is the PostgreSQL server running and the URL right?", path)
    if (code.startswith("SQLITE_FULL") or "disk is full" in low
            or getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)):
        return StorageFullError(
            f"Recording storage is full while {doing}: {path} ({text}). Free disk space; "
            "Lumbo keeps the newest samples in memory meanwhile and retries.", path)
    if (code.startswith("SQLITE_READONLY") or "readonly" in low or "read-only" in low
            or getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS)):
        return StorageReadOnlyError(
            f"Recording storage is read-only while {doing}: {path} ({text}). Choose a writable "
            "data directory (LUMBO_DATA_DIR) or fix its permissions.", path)
    if _is_driver_error(exc) or isinstance(exc, OSError):
        return StorageError(f"Recording storage failed while {doing}: {path} ({text}).", path)
    return StorageError(f"Recording storage failed while {doing}: {path} "
                        f"({type(exc).__name__}: {text}).", path)
