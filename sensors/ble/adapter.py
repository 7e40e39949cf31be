"""One lock per event loop around everything that scans or connects.

BlueZ answers `org.bluez.Error.InProgress` to a connect while another connect or a scan is
running on many adapters (bleak#1036); bleak's maintainers recommend one lock around scans and
connects. Notifications and GATT writes of already-connected sensors run outside it.
"""

from __future__ import annotations

import asyncio
import weakref

_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def adapter_lock() -> asyncio.Lock:
    """The scan/connect lock of the running event loop (bleak keeps one manager per loop)."""
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock
