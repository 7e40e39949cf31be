"""A throwaway PostgreSQL server on loopback, for the tests and the benchmark.

`TempCluster.start()` runs the PostgreSQL package's own binaries (Debian: `postgresql`, i.e.
/usr/lib/postgresql/N/bin/initdb and pg_ctl; `$LUMBO_PG_BIN` names another bin directory): a new
cluster in a temporary directory, listening on 127.0.0.1 at a free port, its unix socket in that
directory, trust authentication for the loopback only. No system service is involved and
nothing outside the directory is touched. initdb refuses to run as root, so as root the cluster
runs as the `postgres` user the package creates (else `nobody`). `database()` makes a fresh,
empty database (a file copy of template0, ~30 ms). `fast=True` (tests) turns fsync off: a
crash of the machine may corrupt the throwaway cluster, which nobody keeps; the benchmark uses
PostgreSQL's durable defaults.

A run killed before `stop()` leaves its server behind; the next `start()` stops such leftovers
(their owner process is gone) and removes their directories.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

PREFIX = "lumbo-pgtemp-"
USER = "lumbo"
_FAST = ("-c fsync=off -c full_page_writes=off -c synchronous_commit=off")


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or the cluster did not start; the message says why."""


def find_bindir() -> Path | None:
    """`$LUMBO_PG_BIN`, else the newest /usr/lib/postgresql/*/bin with initdb and pg_ctl."""
    env = os.environ.get("LUMBO_PG_BIN")
    candidates = [Path(env)] if env else sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0], reverse=True)
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """Whom to run the server as: ourselves, or (as root) an ordinary system user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PgUnavailable("running as root and neither a 'postgres' nor a 'nobody' user exists "
                        "to run PostgreSQL as (initdb refuses root)")


class TempCluster:
    """One running throwaway cluster; `url(dbname)` reaches it over TCP on 127.0.0.1."""

    def __init__(self, root: Path, bindir: Path, port: int,
                 user: pwd.struct_passwd | None) -> None:
        self.root = root
        self.bindir = bindir
        self.port = port
        self._user = user
        self._dbs = 0

    # --- life ------------------------------------------------------------------------------
    @classmethod
    def start(cls, *, fast: bool = True, bindir: Path | None = None,
              base: str | None = None) -> TempCluster:
        """initdb + pg_ctl start -w; raises PgUnavailable with the reason when it cannot."""
        bindir = bindir or find_bindir()
        if bindir is None:
            raise PgUnavailable("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin"
                                "/initdb: Debian package 'postgresql'; or set LUMBO_PG_BIN)")
        stop_leftovers(bindir, base)
        user = _run_as()
        root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
        (root / "owner.pid").write_text(str(os.getpid()))
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        cluster = cls(root, bindir, 0, user)
        try:
            cluster._run("initdb", "-D", str(root / "data"), "-U", USER, "--auth=trust",
                         "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
            last = ""
            for _ in range(5):  # another process may take the free port before the server
                cluster.port = _free_port()
                opts = (f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 "
                        f"-c max_connections=200 " + (_FAST if fast else ""))
                done = cluster._run("pg_ctl", "-D", str(root / "data"), "-l",
                                    str(root / "server.log"), "-w", "-t", "60", "-o", opts,
                                    "start", check=False)
                if done.returncode == 0:
                    return cluster
                last = done.stdout + done.stderr + _tail(root / "server.log")
            raise PgUnavailable(f"PostgreSQL did not start: {last.strip()[-2000:]}")
        except BaseException:
            cluster.stop()
            raise

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kw: dict[str, object] = {}
        if self._user is not None:
            kw = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C",
               "HOME": str(self.root), "TZ": "UTC"}
        done = subprocess.run(  # type: ignore[call-overload]
            [str(self.bindir / tool), *args], capture_output=True, text=True, env=env,
            cwd=self.root, timeout=120, **kw)
        if check and done.returncode != 0:
            raise PgUnavailable(f"{tool} failed ({done.returncode}): "
                                f"{(done.stdout + done.stderr).strip()[-2000:]}")
        return done

    def stop(self) -> None:
        """Stop the server (immediately: nothing is kept) and remove its directory."""
        if (self.root / "data" / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w",
                          "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TempCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- databases -------------------------------------------------------------------------
    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def database(self, prefix: str = "lumbo_test", template: str = "template0") -> str:
        """A new database, a copy of `template` (default: empty); returns its URL. A template
        is any database of this cluster nobody is connected to (e.g. one migrated once)."""
        import psycopg

        if not re.fullmatch(r"[a-z0-9_]+", template + prefix):
            raise ValueError(f"bad database name: {prefix!r} / {template!r}")
        self._dbs += 1
        name = f"{prefix}_{self._dbs}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop a database made by `database()`, closing whatever is still connected to it."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise ValueError(f"not a database of this cluster: {url}")
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def stop_leftovers(bindir: Path, base: str | None = None) -> None:
    """Stop and remove clusters of earlier runs whose owner process is gone."""
    for d in Path(base or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            owner = int((d / "owner.pid").read_text())
            os.kill(owner, 0)
            continue  # its owner still runs: not ours to stop
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue
        TempCluster(d, bindir, 0, _run_as()).stop()
