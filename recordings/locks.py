"""Which `live` sessions still have a writer: a lock per live session, held by its writer.

SQLite (a data directory): a writer holds an exclusive `flock` on `locks/<session_id>.lock` for
as long as it records. The kernel drops the lock when the process dies, however it dies (kill -9
included), so at open a `live` session whose lock can be taken belongs to a dead process and is
marked `interrupted`, while one still locked (another process recording right now, e.g. the
service while `lumbo sessions` runs) is left alone. Where `fcntl` is missing (Windows), the lock
file holds the writer's host and pid and liveness falls back to checking that pid.

PostgreSQL (shared by several instances, maybe on several machines): a file lock would not be
seen across machines, so the lock is server-side: the writer's own connection holds a
session-level advisory lock on a 64-bit key derived from the session id (`AdvisoryLock`, taken
before the session's row is first committed). PostgreSQL drops it when that connection ends, and
it ends when the process dies (the kernel closes its socket) or, for a machine that vanished, when
the server's TCP keepalive gives up (database.PG_KEEPALIVE: about a minute). Recovery claims the
key with a transaction-scoped try-lock inside the transaction that marks the session
`interrupted` (`claim_dead`), so another instance's live writer, which holds its lock, is never
marked, and a writer reconnecting meanwhile cannot slip in between the check and the update.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from recordings.dialect import advisory_key

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def owner_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class SessionLock:
    """An exclusive, non-blocking lock file; `acquire()` says whether it was free."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, db: Any = None) -> bool:
        """Take the lock (`db` is not needed: the lock is a file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
        elif _pid_alive(_read_owner(fd)):  # pragma: no cover - Windows
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, owner_tag().encode())
        self._fd = fd
        return True

    def release(self, *, delete: bool = True) -> None:
        if self._fd is None:
            return
        if delete:
            try:
                self.path.unlink()
            except OSError:
                pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_owner(fd: int) -> str:  # pragma: no cover - Windows
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 256).decode(errors="replace")


def _pid_alive(owner: str) -> bool:  # pragma: no cover - Windows
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except OSError:
        return False
    return True


def writer_alive(lock_dir: Path, session_id: str) -> bool:
    """True when some process still holds the session's lock (it is really recording)."""
    lock = SessionLock(lock_dir / f"{session_id}.lock")
    try:
        if not lock.acquire():
            return True
    except OSError:
        return False  # cannot even look (read-only directory): treat as dead
    lock.release(delete=True)
    return False


class AdvisoryLock:
    """PostgreSQL: the session-level advisory lock of one session's writer, held by the writer's
    own connection (`acquire(db)`) until `release()` or until that connection ends."""

    def __init__(self, session_id: str) -> None:
        self.key = advisory_key(session_id)
        self._db: Any = None

    def acquire(self, db: Any) -> bool:
        got = bool(db.execute("SELECT pg_try_advisory_lock(?)", (self.key,)).fetchone()[0])
        self._db = db if got else None
        return got

    def release(self, *, delete: bool = True) -> None:
        db, self._db = self._db, None
        if db is not None and not db.broken:
            try:
                db.execute("SELECT pg_advisory_unlock(?)", (self.key,))
            except db.Error:
                pass  # the connection's end drops it anyway

    @property
    def held(self) -> bool:
        """False once the connection that held it is lost (the server dropped the lock)."""
        return self._db is not None and not self._db.broken


def writer_lock(target: Any, session_id: str) -> SessionLock | AdvisoryLock:
    """The lock a writer of `session_id` holds while it records into `target`."""
    if target.is_sqlite:
        return SessionLock(target.lock_dir / f"{session_id}.lock")
    return AdvisoryLock(session_id)


def claim_dead(conn: Any, session_ids: Iterable[str]) -> list[str]:
    """PostgreSQL, inside a transaction: the sessions whose writer lock is free, each claimed
    until that transaction ends (pg_try_advisory_xact_lock), so marking them is race-free."""
    return [sid for sid in session_ids if conn.execute(
        "SELECT pg_try_advisory_xact_lock(?)", (advisory_key(sid),)).fetchone()[0]]
