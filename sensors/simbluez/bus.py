"""A private `dbus-daemon` to host the simulated BlueZ, so tests never touch the real system bus.

bleak's BlueZ backend talks to whatever `DBUS_SYSTEM_BUS_ADDRESS` points at. Starting our own daemon
on a unix socket in a temp dir (permissive policy, `--nofork --print-address`) gives every test
run an isolated "system bus" on which the fake `bluetoothd` can own `org.bluez` without root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow send_destination="*"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


class DBusDaemonMissing(RuntimeError):
    """`dbus-daemon` is not installed (Debian package `dbus-daemon`; no pip-only way to get it)."""


def find_dbus_daemon() -> str | None:
    """Path of the `dbus-daemon` binary, or None when it is not installed."""
    found = shutil.which("dbus-daemon")
    if found:
        return found
    for candidate in ("/usr/bin/dbus-daemon", "/bin/dbus-daemon"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM the daemon when the process that started it dies, however it dies (a
    killed test run or demo must not leave dbus-daemons behind)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class PrivateBus:
    """Owns one `dbus-daemon` process and its temp dir; use as a context manager or start/stop."""

    def __init__(self) -> None:
        self.address: str = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the daemon and return its address (`unix:path=...,guid=...`)."""
        binary = find_dbus_daemon()
        if binary is None:
            raise DBusDaemonMissing(
                "dbus-daemon not found: install the 'dbus-daemon' package (Debian/Ubuntu)"
            )
        self._tmp = tempfile.TemporaryDirectory(prefix="lumbo-dbus-")
        tmp = Path(self._tmp.name)
        config = tmp / "bus.conf"
        config.write_text(_CONFIG.format(socket=tmp / "system_bus_socket"))
        self._log = (tmp / "dbus-daemon.log").open("wb")
        # The death signal follows the thread that forked: only tie it to the main thread.
        tie = sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()
        self._proc = subprocess.Popen(
            [binary, f"--config-file={config}", "--nofork", "--nopidfile", "--print-address"],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            stderr=self._log,  # e.g. "Failed to set fd limit" noise, kept for debugging
            preexec_fn=_die_with_parent if tie else None,  # noqa: PLW1509
            start_new_session=True,  # a terminal's Ctrl+C is for the parent, which stops it
        )
        assert self._proc.stdout is not None
        # --print-address writes exactly one line once the socket listens; reading it is the
        # readiness signal (no sleeping).
        line = self._proc.stdout.readline().decode().strip()
        if not line:
            code = self._proc.wait(timeout=timeout_s)
            self.stop()
            raise RuntimeError(f"dbus-daemon exited ({code}) without printing an address")
        self.address = line
        return line

    def stop(self) -> None:
        """Terminate the daemon and remove the temp dir; safe to call twice."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> PrivateBus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
