"""The storage backends the storage tests run against, as fixtures (registered in conftest.py).

- `store_url`, parametrised `[sqlite]` / `[postgresql]`: a fresh storage location per test: a
  new data directory, or a new database on the test session's PostgreSQL server (a file copy of
  one migrated once per session: ~0.1 s instead of migrating each time; `blank_store_url` gives
  an empty one, for the migrations themselves);
- `store`: a `RecordingStore` opened there (closed after the test);
- `pg_cluster`: that server, started once per test session on first use: Debian's PostgreSQL
  binaries (`postgresql` package, /usr/lib/postgresql/N/bin) running a throwaway cluster in a
  temporary directory on 127.0.0.1 and a free port (recordings/pgtemp.py), stopped at the end.

As for the browser: with CI=true a missing PostgreSQL fails the `[postgresql]` tests instead of
skipping them (scripts/test installs the package).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_rule import missing_component

BACKENDS = ("sqlite", "postgresql")
WAIT_S = 30.0  # a bound on waiting for a condition, never a measurement


def unavailable(reason: str) -> None:
    missing_component("PostgreSQL test", reason)


TEMPLATE = "lumbo_template"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """The test session's throwaway PostgreSQL server (started on first use), with a database
    `TEMPLATE` migrated to the latest schema."""
    from recordings import RecordingStore
    from recordings.pgtemp import PgUnavailable, TempCluster

    try:
        cluster = TempCluster.start(fast=True)
    except PgUnavailable as exc:
        unavailable(str(exc))
    try:
        RecordingStore(_template(cluster)).close()  # migrated once, copied per test
        yield cluster
    finally:
        cluster.stop()


def _template(cluster: Any) -> str:
    import psycopg

    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {TEMPLATE} TEMPLATE template0")
    return str(cluster.url(TEMPLATE))


def new_location(request: pytest.FixtureRequest, backend: str, tmp_dir: Path, *,
                 blank: bool = False) -> tuple[str, Callable[[], None]]:
    """(location, cleanup) of a fresh database of `backend` (`blank`: not even migrated)."""
    if backend == "sqlite":
        return str(tmp_dir), lambda: None
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.database(template="template0" if blank else TEMPLATE)
    return url, lambda: cluster.drop(url)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh storage location: a data directory (SQLite) or a new PostgreSQL database."""
    url, cleanup = new_location(request, request.param, tmp_path / "db")
    yield url
    cleanup()


@pytest.fixture(params=BACKENDS)
def blank_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """As `store_url`, but a PostgreSQL database without any table (migrations' tests)."""
    url, cleanup = new_location(request, request.param, tmp_path / "db", blank=True)
    yield url
    cleanup()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database, for what only PostgreSQL has (a shared server's sweep,
    losing the connection to the server)."""
    url, cleanup = new_location(request, "postgresql", tmp_path)
    yield url
    cleanup()


@pytest.fixture
def store(store_url: str) -> Iterator[Any]:
    from recordings import RecordingStore

    s = RecordingStore(store_url)
    yield s
    s.close()


def backend_of(location: str) -> str:
    return "postgresql" if location.startswith("postgresql://") else "sqlite"


def wait_writer_gone(location: str, session_id: str) -> None:
    """PostgreSQL: wait until the server has ended a dead writer's connection (it notices a
    killed client's closed socket at once, but asynchronously), so its advisory lock is free.
    SQLite needs no wait: the kernel drops a dead process's flock before waitpid returns."""
    if backend_of(location) == "sqlite":
        return
    import psycopg

    deadline = time.monotonic() + WAIT_S
    with psycopg.connect(location, autocommit=True) as conn:
        while True:
            (n,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name "
                                "= %s", (f"lumbo writer {session_id}",)).fetchone()
            if n == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the server kept the dead writer of {session_id} for "
                                     f"{WAIT_S} s")
            time.sleep(0.01)  # polling a condition, bounded above
