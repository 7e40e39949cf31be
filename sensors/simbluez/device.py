"""One simulated device as the fake BlueZ sees it: identity, advertisement, link state,
injected faults, and the logs tests read back (GATT operations in order, samples sent)."""

from __future__ import annotations

import inspect
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbus_fast import DBusError

from sensors.samples import SampleBatch
from sensors.simbluez.interfaces import ERR_FAILED, Device1, GattCharacteristic1
from sensors.simbluez.peripheral import ServiceSpec, SimPeripheral

if TYPE_CHECKING:
    from sensors.simbluez.bluez import FakeBluez

ADAPTER_PATH = "/org/bluez/hci0"
ABORT_BY_LOCAL = "le-connection-abort-by-local"


def att_error(exc: Exception, default_code: int) -> DBusError:
    """BlueZ's text for an ATT error response; bleak turns it into BleakGATTProtocolError."""
    code = getattr(exc, "att_code", default_code)
    return DBusError(ERR_FAILED, f"Operation failed with ATT error: 0x{int(code):02x} ({exc})")


@dataclass(slots=True)
class Fault:
    """A D-Bus error the fake answers with instead of doing the operation."""

    error: str = ERR_FAILED
    message: str = "Software caused connection abort"
    char_uuid: str | None = None  # for write faults: only writes to this characteristic


@dataclass(eq=False)
class SimDevice:
    """One simulated peripheral as BlueZ sees it, plus its fault and streaming state."""

    owner: FakeBluez
    address: str
    name: str
    peripheral: SimPeripheral
    services: tuple[ServiceSpec, ...]
    role: str | None = None
    rssi: int = -60
    uuids: list[str] = field(default_factory=list)
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    connected: bool = False
    services_resolved: bool = False
    muted: bool = False
    drop_every_n: int = 0  # drop every n-th streamed notification (0: none)
    connect_faults: deque[Fault] = field(default_factory=deque)
    write_faults: deque[Fault] = field(default_factory=deque)
    iface: Device1 | None = None
    gatt: list[tuple[str, Any]] = field(default_factory=list)
    chars: dict[str, GattCharacteristic1] = field(default_factory=dict)
    ops: deque[list[Any]] = field(default_factory=lambda: deque(maxlen=500))
    sent: deque[SampleBatch] = field(default_factory=lambda: deque(maxlen=3000))
    notifications_sent: int = 0
    notifications_dropped: int = 0
    stream_counter: int = 0
    connections: int = 0
    write_takes_response: bool = False
    send_log: deque[tuple[float, bytes]] | None = None  # (host monotonic time, data) per send

    def __post_init__(self) -> None:
        try:
            params = inspect.signature(self.peripheral.on_write).parameters
        except (TypeError, ValueError):
            return
        self.write_takes_response = "response" in params

    @property
    def path(self) -> str:
        return f"{ADAPTER_PATH}/dev_{self.address.replace(':', '_')}"

    def status(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "name": self.name,
            "role": self.role,
            "connected": self.connected,
            "notifying": sorted(u for u, c in self.chars.items() if c.notifying),
            "muted": self.muted,
            "notifications_sent": self.notifications_sent,
            "notifications_dropped": self.notifications_dropped,
            "connections": self.connections,
            "ops": [list(op) for op in self.ops],
        }
