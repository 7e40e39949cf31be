"""Ordered schema migrations: version k of the database is what migrations 1..k made.

`schema_version` has one row per applied migration; the current version is its maximum; the
table is the same on SQLite and PostgreSQL. Each migration is the portable DDL of schema.py
rendered for the database's dialect, run in its own transaction together with its
`schema_version` row (DDL is transactional on both), so a crash mid-upgrade leaves the previous
version intact. Two processes upgrading at once take turns: SQLite's BEGIN IMMEDIATE, a
transaction-scoped advisory lock on PostgreSQL. A database newer than this code is refused
(`SchemaVersionError`) rather than written by code that does not know its tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from recordings import schema, sync_schema
from recordings.database import Database
from recordings.errors import SchemaVersionError


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Database], None]


def _script(portable_ddl: str) -> Callable[[Database], None]:
    def apply(conn: Database) -> None:
        # executescript would COMMIT first; run statement by statement inside our transaction
        for statement in (*conn.dialect.prelude, *conn.dialect.render(portable_ddl).split(";")):
            if statement.strip():
                conn.raw.execute(statement)
    return apply


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "sessions, sensors, raw sample blocks, events", _script(schema.V1)),
    Migration(2, "analyses with angle blocks, calibrations, patient reports", _script(schema.V2)),
    Migration(3, "accounts (therapists, patients), sign-in sessions, login links",
              _script(schema.ACCOUNTS)),
    Migration(4, "edge mode: device tokens, uploaded sessions and streams (central), upload "
              "cursors (edge)", _script(sync_schema.EDGE_SYNC)),
)
LATEST_VERSION = MIGRATIONS[-1].version


def _ensure_version_table(conn: Database) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                 "applied_at TEXT NOT NULL, description TEXT NOT NULL)")


def current_version(conn: Database) -> int:
    """Schema version of the database (0: empty)."""
    row = conn.execute(conn.dialect.table_exists(), ("schema_version",)).fetchone()
    if row is None:
        return 0
    (version,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(version)


def migrate(conn: Database, target: int = LATEST_VERSION,
            migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply the missing migrations up to `target`; returns the resulting version.

    `conn` must be in autocommit mode (database.connect's are): transactions are explicit here.
    """
    known = max((m.version for m in migrations), default=0)
    for m in migrations:
        if m.version <= current_version(conn) or m.version > target:
            continue
        conn.begin()
        try:
            lock = conn.dialect.migration_lock()
            if lock is not None:
                conn.execute(lock)
            _ensure_version_table(conn)
            if m.version <= current_version(conn):  # another process upgraded meanwhile
                conn.rollback()
                continue
            if m.version != current_version(conn) + 1:
                raise SchemaVersionError(f"migration {m.version} cannot follow version "
                                         f"{current_version(conn)}")
            m.apply(conn)
            conn.execute("INSERT INTO schema_version (version, applied_at, description) "
                         "VALUES (?, ?, ?)",
                         (m.version, datetime.now(timezone.utc).isoformat(), m.description))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    version = current_version(conn)
    if version > known:
        raise SchemaVersionError(
            f"The recordings database has schema version {version}, newer than this Lumbo knows "
            f"({known}). Update Lumbo, or use a different database (--db, LUMBO_DB or "
            "LUMBO_DATA_DIR).")
    return version
