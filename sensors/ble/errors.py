"""Turn whatever bleak/BlueZ raised into a status a person can act on.

Faults must give a clear message and never crash or stall the session: the supervisor retries
everything (with backoff), but what it says differs: a powered-off adapter needs the user, a
lost link does not.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakDeviceNotFoundError,
    BleakGATTProtocolError,
)


class SensorNotFound(Exception):
    """The sensor did not advertise within the scan timeout (off, out of range, or connected
    to another host)."""


class UnknownFamily(Exception):
    """The advertisement matches no supported device family."""


class CommandRejected(Exception):
    """The sensor refused a configure/start command (GATT error or an error status)."""


class UnsupportedRate(Exception):
    """The family cannot stream at any rate near the requested one."""


class LinkLost(Exception):
    """The link dropped while configuring the sensor."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # adapter_off | no_adapter | bluez_down | not_found | unknown_family |
    #            connect_failed | busy | rejected | link_lost | timeout | error
    message: str
    needs_user: bool = False


def classify(exc: BaseException) -> Fault:
    """Map an exception from a scan/connect/start attempt to a `Fault`."""
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if isinstance(exc, SensorNotFound | BleakDeviceNotFoundError):
        return Fault("not_found", f"sensor not found (off, out of range or in use): {text}", True)
    if isinstance(exc, UnknownFamily):
        return Fault("unknown_family", text, True)
    if isinstance(exc, CommandRejected | BleakGATTProtocolError):
        return Fault("rejected", f"sensor rejected a command: {text}", True)
    if isinstance(exc, UnsupportedRate):
        return Fault("unsupported_rate", text, True)
    if isinstance(exc, LinkLost):
        return Fault("link_lost", text if text.startswith("link lost") else f"link lost: {text}")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return Fault("timeout", "timed out talking to the sensor")
    if isinstance(exc, BleakBluetoothNotAvailableError):
        if exc.reason == BleakBluetoothNotAvailableReason.POWERED_OFF:
            return Fault("adapter_off", "Bluetooth adapter is powered off: turn Bluetooth on", True)
        if exc.reason == BleakBluetoothNotAvailableReason.NO_BLUETOOTH:
            return Fault("no_adapter", "no Bluetooth adapter found (unplugged or missing)", True)
        return Fault("no_adapter", f"Bluetooth is not available: {exc.args[0]}", True)
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError | PermissionError):
        # bleak could not open the system D-Bus socket: no dbus/BlueZ on this machine (a
        # container, a minimal install), or DBUS_SYSTEM_BUS_ADDRESS points nowhere
        return Fault("bluez_down", "cannot reach the system D-Bus, so Bluetooth (BlueZ) is not "
                     f"available on this machine: {text}", True)
    dbus_error = exc.dbus_error if isinstance(exc, BleakDBusError) else ""
    if "no bluetooth adapters" in low or ("adapter" in low and "not found" in low):
        return Fault("no_adapter", "no Bluetooth adapter found (unplugged or missing)", True)
    if dbus_error.endswith(".NotReady") or "not powered" in low:
        return Fault("adapter_off", "Bluetooth adapter is powered off: turn Bluetooth on", True)
    if dbus_error.endswith((".ServiceUnknown", ".NameHasNoOwner")) or "serviceunknown" in low:
        return Fault("bluez_down", "the Bluetooth service (bluetoothd) is not running")
    if dbus_error.endswith(".InProgress"):
        return Fault("busy", "the adapter is busy with another connection")
    if dbus_error.endswith(".UnknownObject"):
        return Fault("link_lost", "the sensor vanished from BlueZ")
    if "le-connection-abort-by-local" in low or dbus_error.endswith(".Failed"):
        return Fault("connect_failed", f"connection failed: {text}")
    if "not connected" in low or "disconnected" in low:
        return Fault("link_lost", f"link lost: {text}")
    return Fault("error", f"{type(exc).__name__}: {text}")
