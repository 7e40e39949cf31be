"""Which `live` sessions still have a writer: one OS file lock per live session.

A writer holds an exclusive `flock` on `locks/<session_id>.lock` for as long as it records. The
kernel drops the lock when the process dies, however it dies (kill -9 included), so at open a
`live` session whose lock can be taken belongs to a dead process and is marked `interrupted`,
while one still locked (another process recording right now, e.g. the service while `lumbo
sessions` runs) is left alone. Where `fcntl` is missing (Windows), the lock file holds the
writer's host and pid and liveness falls back to checking that pid.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

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

    def acquire(self) -> bool:
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
