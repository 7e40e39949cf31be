"""Where the recordings database is (a storage location) and one connection to it.

A storage location is one of:
- a data directory (a path, the default: `$LUMBO_DATA_DIR`, else ~/.local/share/lumbo): SQLite,
  `lumbo.db` in it, writer locks in `locks/` beside it: exactly what Lumbo always did;
- `sqlite:///abs/path/lumbo.db` (or `sqlite://relative/path.db`): that SQLite file;
- `postgresql://user[:password]@host[:port]/dbname[?param=value]` (also `postgres://`): a
  PostgreSQL database (psycopg 3, libpq's URL syntax, e.g. `?sslmode=require`), which several
  service instances may share.

`$LUMBO_DB` names the default location when set (paths.default_location). `Database` wraps one
DB-API connection so the store, the writer and the accounts speak one SQL (`?` placeholders,
mapping rows, `insert` returning the new id, explicit transactions) whatever the backend.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from recordings.dialect import POSTGRESQL, SQLITE, Dialect
from recordings.errors import StorageError
from recordings.paths import DB_FILENAME, LOCK_DIRNAME, default_location

BUSY_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10
# A writer's server-side TCP keepalive (PostgreSQL): when the writer's machine vanishes (power
# cut, network gone) its backend notices within ~idle + interval × count and drops the session's
# advisory lock, so another instance can mark the session interrupted.
PG_KEEPALIVE = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10,
                "tcp_keepalives_count": 3}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
URL_HELP = ("a data directory, sqlite:///PATH/TO/lumbo.db or "
            "postgresql://USER@HOST:PORT/DBNAME")


@dataclass(frozen=True)
class StorageTarget:
    """A parsed storage location. SQLite: `db_path` (+ `data_dir`, `lock_dir`); PostgreSQL:
    `url` (as given, password included: only for connecting; `display` hides it)."""

    dialect: Dialect
    url: str
    db_path: Path | None = None
    data_dir: Path | None = None
    lock_dir: Path | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect.is_sqlite

    @property
    def display(self) -> str:
        """For messages and logs: the SQLite file, or the URL without its password."""
        return str(self.db_path) if self.db_path is not None else redact(self.url)

    def __str__(self) -> str:
        return self.display


def redact(url: str) -> str:
    """The URL with any password replaced by `***` (userinfo and `password=` parameters)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable storage URL>"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def is_url(location: object) -> bool:
    return isinstance(location, str) and _URL.match(location.strip()) is not None


def parse_location(location: str | Path | StorageTarget | None) -> StorageTarget:
    """A data directory, a `sqlite://` or `postgresql://` URL, or None (the default location:
    $LUMBO_DB, else the data directory). ValueError with what is accepted otherwise."""
    if isinstance(location, StorageTarget):
        return location
    if location is None:
        location = default_location()
    if isinstance(location, Path):
        return _data_dir_target(location)
    text = str(location).strip()
    if not text:
        raise ValueError(f"empty storage location: give {URL_HELP}")
    m = _URL.match(text)
    if m is None:
        return _data_dir_target(Path(text))
    scheme = m.group(1).lower()
    rest = text[m.end():]
    if scheme == "sqlite":
        path_text = unquote(rest.split("?", 1)[0])
        if not path_text or path_text in ("/", ":memory:", "/:memory:"):
            raise ValueError(f"{text!r}: a sqlite URL names a database file, e.g. "
                             "sqlite:///var/lib/lumbo/lumbo.db")
        path = Path(path_text).expanduser()
        if path.is_dir():
            raise ValueError(f"{text!r} is a directory: give the database file "
                             f"(sqlite://{quote(str(path / DB_FILENAME))}) or the directory "
                             "itself as the location")
        return sqlite_file_target(path)
    if scheme in ("postgresql", "postgres"):
        try:
            from psycopg.conninfo import conninfo_to_dict

            info = conninfo_to_dict(text)
            ports = str(info.get("port") or "0").split(",")
            if not all(p.isdigit() and 0 <= int(p) < 65536 for p in ports):
                raise ValueError(f"port {info.get('port')!r} is not a number")
        except ImportError as exc:
            raise ValueError("PostgreSQL storage needs the psycopg package "
                             "(pip install 'psycopg[binary]')") from exc
        except Exception as exc:  # psycopg.ProgrammingError: libpq could not parse it
            raise ValueError(f"{redact(text)} is not a valid PostgreSQL URL: {exc}") from None
        return StorageTarget(POSTGRESQL, text)
    raise ValueError(f"unknown storage URL scheme {scheme!r}: give {URL_HELP}")


def sqlite_file_target(path: Path) -> StorageTarget:
    """A SQLite database file; writer locks in `locks/` beside it."""
    path = path.expanduser()
    return StorageTarget(SQLITE, f"sqlite://{quote(str(path))}", db_path=path,
                         data_dir=path.parent, lock_dir=path.parent / LOCK_DIRNAME)


def _data_dir_target(data_dir: Path) -> StorageTarget:
    return sqlite_file_target(data_dir.expanduser() / DB_FILENAME)


def driver_errors() -> tuple[type[BaseException], ...]:
    """What a storage call can raise besides StorageError: sqlite3's and OS errors, and
    psycopg's once it is in use (it is imported by the first PostgreSQL connection)."""
    pg = sys.modules.get("psycopg")
    return (sqlite3.Error, OSError) + ((pg.Error,) if pg is not None else ())


class Database:
    """One connection, SQLite or PostgreSQL, in autocommit mode with explicit transactions
    (`begin`, `commit`, `rollback`). Not thread-safe: one owner thread, or a lock around it."""

    def __init__(self, raw: Any, target: StorageTarget) -> None:
        self.raw = raw
        self.target = target
        self.dialect = target.dialect
        self._reopen: Callable[[], Any] | None = None  # a new raw connection, same settings
        if self.dialect.is_sqlite:
            self.Error: type[Exception] = sqlite3.Error
            self.IntegrityError: type[Exception] = sqlite3.IntegrityError
        else:
            import psycopg

            self.Error = psycopg.Error
            self.IntegrityError = psycopg.IntegrityError

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """Run one `?`-placeholder statement; the cursor's rows are tuples."""
        return self.raw.execute(self.dialect.sql(statement), tuple(params))

    def rows(self, statement: str, params: Iterable[Any] = ()) -> list[Mapping[str, Any]]:
        """All rows of a query, each readable by column name (and, on SQLite, by index)."""
        if self.dialect.is_sqlite:
            cur = self.raw.execute(statement, tuple(params))
            cur.row_factory = sqlite3.Row
            return cur.fetchall()  # type: ignore[no-any-return]
        from psycopg.rows import dict_row

        with self.raw.cursor(row_factory=dict_row) as cur:
            cur.execute(self.dialect.sql(statement), tuple(params))
            return cur.fetchall()  # type: ignore[no-any-return]

    def insert(self, statement: str, params: Sequence[Any]) -> int:
        """An INSERT into a table with an `{id}` key; returns the new row's id."""
        if self.dialect.is_sqlite:
            return int(self.raw.execute(statement, tuple(params)).lastrowid)
        row = self.raw.execute(self.dialect.sql(self.dialect.returning_id(statement)),
                               tuple(params)).fetchone()
        return int(row[0])

    def begin(self) -> None:
        self.raw.execute(self.dialect.begin_write)

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        """Roll back if a transaction is open; never raises (the connection may be gone)."""
        try:
            self.raw.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - nothing to roll back, or the connection is broken
            pass

    def table_names(self) -> list[str]:
        return [r[0] for r in self.execute(self.dialect.tables()).fetchall()]

    def ensure_open(self) -> None:
        """PostgreSQL: after the connection was lost (server restart, network), connect again
        with the same settings (call between transactions; raises the driver's error if the
        server is still unreachable)."""
        if self.broken and self._reopen is not None:
            self.close()
            self.raw = self._reopen()

    @property
    def broken(self) -> bool:
        """PostgreSQL: the connection is lost (server restart, network); reconnect."""
        return False if self.dialect.is_sqlite else bool(self.raw.closed or self.raw.broken)

    def close(self) -> None:
        try:
            self.raw.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass


def connect(target: StorageTarget | str | Path, *, read_only: bool = False,
            synchronous: str = "NORMAL", busy_timeout_s: float = BUSY_TIMEOUT_S,
            application_name: str = "lumbo", keepalive: bool = False) -> Database:
    """A connection with Lumbo's settings; raises the driver's errors for the caller to classify
    (errors.classify). `synchronous` is SQLite's (PostgreSQL commits durably, its default);
    `keepalive`: a writer's connection (see PG_KEEPALIVE)."""
    target = parse_location(target)
    if target.is_sqlite:
        assert target.db_path is not None
        conn = _connect_sqlite(target.db_path, read_only=read_only, synchronous=synchronous,
                               busy_timeout_s=busy_timeout_s)
        return Database(conn, target)
    def open_pg() -> Any:
        import psycopg

        pg = psycopg.connect(target.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                             application_name=application_name[:63])
        try:
            if read_only:
                pg.execute("SET default_transaction_read_only = on")
            if keepalive:
                for name, value in PG_KEEPALIVE.items():
                    pg.execute(f"SET {name} = {int(value)}")
        except BaseException:
            pg.close()
            raise
        return pg

    db = Database(open_pg(), target)
    db._reopen = open_pg
    return db


def _connect_sqlite(path: Path, *, read_only: bool, synchronous: str,
                    busy_timeout_s: float) -> sqlite3.Connection:
    """SQLite with Lumbo's pragmas: WAL (readers never block the writer), foreign keys on,
    `synchronous` NORMAL by default (see writer.py for what that guarantees)."""
    if read_only:
        return _connect_read_only(path, busy_timeout_s)
    conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        if mode != "wal":
            raise StorageError(f"{path}: SQLite refused WAL mode (got {mode!r}); is the data "
                               "directory on a network file system?", path)
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_read_only(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Read-only; in a read-only directory, where WAL's shared-memory file cannot be created,
    fall back to `immutable=1` (safe there: nobody can be writing that directory either)."""
    last: sqlite3.Error | None = None
    for extra in ("", "&immutable=1"):
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro{extra}", uri=True,
                               timeout=busy_timeout_s, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            last = exc
    assert last is not None
    raise last
