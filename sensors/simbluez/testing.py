"""pytest helpers for suites that run bleak against the simulated BlueZ.

A missing dbus-daemon is an environment problem: CI must install it (it is the `dbus-daemon`
Debian package; pip cannot provide it), so with CI=true the tests fail loudly instead of being
skipped into a green run that tested nothing.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sensors.simbluez.bus import PrivateBus, find_dbus_daemon

MISSING = (
    "dbus-daemon is not installed: the BLE tests run bleak against a simulated BlueZ on a "
    "private bus and need it (Debian/Ubuntu: apt-get install dbus-daemon)"
)


def require_dbus_daemon() -> str:
    """The dbus-daemon path; otherwise pytest.fail under CI=true, else pytest.skip."""
    import pytest

    path = find_dbus_daemon()
    if path is None:
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)
    return path


@contextmanager
def private_system_bus() -> Iterator[PrivateBus]:
    """A private dbus-daemon exported as the system bus (DBUS_SYSTEM_BUS_ADDRESS) meanwhile.

    Must be entered before bleak first connects on an event loop: bleak keeps one BlueZ manager
    (one bus connection) per loop.
    """
    require_dbus_daemon()
    bus = PrivateBus()
    bus.start()
    old = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
    try:
        yield bus
    finally:
        if old is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = old
        bus.stop()


_shared: PrivateBus | None = None


def shared_system_bus() -> PrivateBus:
    """One private system bus per test process, however many modules ask for it.

    Test modules that share fixtures by import get one fixture definition each, so a
    session-scoped fixture alone would start a daemon per module. Stopped at interpreter exit.
    """
    global _shared
    if _shared is None:
        require_dbus_daemon()
        bus = PrivateBus()
        bus.start()
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        atexit.register(bus.stop)
        _shared = bus
    return _shared
