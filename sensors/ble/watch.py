"""Notice bluetoothd leaving and coming back (NameOwnerChanged of `org.bluez`).

bleak does not watch the name owner: after a bluetoothd restart or crash its clients may believe
they are still connected and simply receive nothing. The manager uses this watcher to treat a
vanished bluetoothd as a link loss and to retry at once when it is back, instead of waiting for
the next backoff step. Linux only; elsewhere (and if the system bus is unreachable) it is inert.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

BLUEZ = "org.bluez"


class BluezWatcher:
    """Calls `on_change(present)` whenever `org.bluez` gets or loses an owner."""

    def __init__(self, on_change: Callable[[bool], None]) -> None:
        self._on_change = on_change
        self._bus: object | None = None
        self.present: bool | None = None

    async def start(self) -> None:
        if not sys.platform.startswith("linux"):
            return
        try:
            from dbus_fast import BusType, Message, MessageType
            from dbus_fast.aio import MessageBus
        except ImportError:  # pragma: no cover - dbus-fast is a Linux dependency
            return
        try:
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        except Exception as exc:  # no system bus: bleak will report the real problem
            log.debug("cannot watch %s: %s", BLUEZ, exc)
            return

        def handler(msg: Message) -> None:
            if (
                msg.message_type == MessageType.SIGNAL
                and msg.member == "NameOwnerChanged"
                and msg.body
                and msg.body[0] == BLUEZ
            ):
                present = bool(msg.body[2])
                if present != self.present:
                    self.present = present
                    self._on_change(present)

        bus.add_message_handler(handler)
        rule = ("type='signal',interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                f"arg0='{BLUEZ}'")
        await bus.call(
            Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                    body=[rule])
        )
        reply = await bus.call(
            Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus", member="NameHasOwner", signature="s",
                    body=[BLUEZ])
        )
        if reply.message_type == MessageType.METHOD_RETURN and self.present is None:
            self.present = bool(reply.body[0])
        self._bus = bus

    def stop(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            with contextlib.suppress(Exception):
                bus.disconnect()  # type: ignore[attr-defined]
