"""A throwaway `redis-server` on a loopback port, for the broker tests and the load bench.

Not used by the service itself (it connects to an existing broker, `lumbo serve --broker URL`).
The server persists nothing (`--save '' --appendonly no`), lives in a temporary directory, and can
be killed and restarted on the same port to exercise reconnection.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REDIS_SERVER = "redis-server"


def redis_server_path() -> str | None:
    """Where Debian's `redis-server` is, or None when it is not installed."""
    return shutil.which(REDIS_SERVER) or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int, timeout_s: float = 0.5) -> bool:
    """A raw RESP PING: True once the server answers +PONG (no client library needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """`start()`, `kill()` (SIGKILL: a crash), `start()` again on the same port, `stop()`."""

    def __init__(self, port: int | None = None, workdir: Path | None = None) -> None:
        exe = redis_server_path()
        if exe is None:
            raise FileNotFoundError("redis-server not found (Debian package 'redis-server')")
        self.exe = exe
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="lumbo-redis-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self, timeout_s: float = 20.0) -> RedisServer:
        """Start and return once it answers PING (bounded by `timeout_s`)."""
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - kept for the process' life
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
             "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {tail}")
            if _ping(self.port):
                return self
            time.sleep(0.02)  # polling a condition (the server answers), bounded above
        self.kill()
        raise TimeoutError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        """SIGKILL, as a crash: clients see their connections reset."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if self._own_dir:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.workdir)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
