"""A simulated BlueZ (`org.bluez` on a private dbus-daemon) for running bleak's real Linux backend
without radios: tests, CI, and `lumbo demo --ble`.

The fake bluetoothd runs as a subprocess (`python -m sensors.simbluez`) controlled over a JSON line
protocol (see `control.py`); `SimBluez` is the parent-side handle. Peripherals are generic objects
with `gatt_table()`, `on_write`, `on_read` and `notifications_for` (see `peripheral.py`).
This package must not import bleak: it plays the other side of the bus.
"""

from sensors.simbluez.bus import DBusDaemonMissing, PrivateBus, find_dbus_daemon
from sensors.simbluez.client import SimBluez, SimBluezError

__all__ = ["DBusDaemonMissing", "PrivateBus", "SimBluez", "SimBluezError", "find_dbus_daemon"]
