"""The simulated bluetoothd: object tree, connection state machine, faults, and streaming.

Signal orders follow real BlueZ because bleak depends on them (docs/ble-testing.md):
connect = Connected true, InterfacesAdded for the GATT objects, ServicesResolved true;
disconnect = ServicesResolved false, Connected false, InterfacesRemoved of the GATT objects.
Paths have BlueZ's exact shape (`/org/bluez/hci0/dev_XX_XX/serviceXXXX/charXXXX`) because bleak
cuts them apart to route notifications and reads handles from the last four hex digits.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from dbus_fast import DBusError, Message, NameFlag, RequestNameReply
from dbus_fast.aio import MessageBus

from sensors.samples import SampleBatch
from sensors.simbluez.interfaces import (
    ERR_FAILED,
    ERR_IN_PROGRESS,
    ERR_NOT_CONNECTED,
    ERR_NOT_PERMITTED,
    ERR_NOT_READY,
    ERR_NOT_SUPPORTED,
    Adapter1,
    Device1,
    GattCharacteristic1,
    GattService1,
)
from sensors.simbluez.device import ABORT_BY_LOCAL, ADAPTER_PATH, SimDevice, att_error
from sensors.simbluez.peripheral import SimPeripheral, normalise_gatt_table
from sensors.simbluez.streaming import Pacer, StreamSource

log = logging.getLogger("sensors.simbluez")

BLUEZ_NAME = "org.bluez"

EventSink = Callable[[dict[str, Any]], None]


class FakeBluez:
    """Owns `org.bluez` on a bus and simulates one adapter (hci0) with its devices."""

    def __init__(
        self,
        bus_address: str,
        emit: EventSink | None = None,
        *,
        connect_delay_s: float = 0.02,
        adv_interval_s: float = 0.1,
        tick_s: float = 0.02,
    ) -> None:
        self.bus_address = bus_address
        self._emit = emit or (lambda event: None)
        self.connect_delay_s = connect_delay_s
        self.adv_interval_s = adv_interval_s
        self.tick_s = tick_s
        self.bus: MessageBus | None = None
        self.adapter: Adapter1 | None = None
        self.adapter_present = True
        self.powered = True
        self.devices: dict[str, SimDevice] = {}
        self._discovery_sessions = 0
        self._adv_task: asyncio.Task[None] | None = None
        self._connecting: SimDevice | None = None
        self.pacer = Pacer(self, tick_s)
        self._rssi_wobble = itertools.cycle((0, -1, 1, -2, 2))

    # ---- bus lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, own `org.bluez` and publish the adapter and known devices."""
        bus = await MessageBus(bus_address=self.bus_address).connect()
        reply = await bus.request_name(BLUEZ_NAME, NameFlag.DO_NOT_QUEUE)
        if reply != RequestNameReply.PRIMARY_OWNER:
            bus.disconnect()
            raise RuntimeError(f"could not own {BLUEZ_NAME}: {reply!r}")
        self.bus = bus
        if self.adapter_present:
            self._export_adapter()
        self._emit({"event": "bluetoothd", "state": "up"})

    async def stop(self, *, crash: bool = False, final: bool = False) -> None:
        """Leave the bus like bluetoothd does: devices disconnected with signals, objects removed.

        bleak does not watch the name owner, so a graceful stop must signal the disconnects
        first (ble-testing.md point 5). `crash=True` just drops the connection (no signals), as
        a killed bluetoothd would; only a NameOwnerChanged watcher notices that. The simulated
        sensors keep sampling meanwhile (their data are lost), unless `final`.
        """
        if final:
            self.pacer.stop()
        if self._adv_task is not None:
            self._adv_task.cancel()
            self._adv_task = None
        self._discovery_sessions = 0
        if self.bus is None:
            return
        if not crash:
            for dev in self.devices.values():
                self._teardown(dev, "bluetoothd-stop")
            self._unexport_adapter()
            await self._flush()
        else:
            for dev in self.devices.values():
                self._forget_connection(dev)
        self.bus.disconnect()
        await self.bus.wait_for_disconnect()
        self.bus = None
        self.adapter = None
        for dev in self.devices.values():
            dev.iface = None
        self._emit({"event": "bluetoothd", "state": "down", "crash": crash})

    async def _flush(self) -> None:
        """Let queued signals reach the daemon before the next step (a round trip to it)."""
        if self.bus is not None and self.bus.connected:
            await self.bus.call(
            Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus.Peer", member="Ping")
        )

    # ---- adapter -----------------------------------------------------------------------------

    def _export_adapter(self) -> None:
        assert self.bus is not None
        self.adapter = Adapter1(self, "00:1A:7D:DA:71:13")
        self.adapter.powered = self.powered
        self.bus.export(ADAPTER_PATH, self.adapter)
        for dev in self.devices.values():
            self._export_device(dev)

    def _unexport_adapter(self) -> None:
        if self.bus is None or self.adapter is None:
            return
        for dev in self.devices.values():
            self._teardown(dev, "adapter-removed")
            if dev.iface is not None:
                self.bus.unexport(dev.path, dev.iface)
                dev.iface = None
        self.bus.unexport(ADAPTER_PATH, self.adapter)
        self.adapter = None

    def add_adapter(self) -> None:
        self.adapter_present = True
        if self.bus is not None and self.adapter is None:
            self._export_adapter()

    def remove_adapter(self) -> None:
        """Unplug the dongle: devices disconnect, then all objects leave the bus."""
        self.adapter_present = False
        self._discovery_sessions = 0
        self._set_discovering(False)
        self._unexport_adapter()

    def check_powered(self) -> None:
        if not self.powered:
            raise DBusError(ERR_NOT_READY, "Resource Not Ready")

    def schedule_power(self, on: bool) -> None:
        asyncio.get_running_loop().call_soon(self.set_power, on)

    def set_power(self, on: bool) -> None:
        """Power the radio off/on; off drops every link (with signals) and ends discovery."""
        if on == self.powered:
            return
        if not on:
            for dev in self.devices.values():
                self._teardown(dev, "adapter-off")
            self._discovery_sessions = 0
            self._set_discovering(False)
        self.powered = on
        if self.adapter is not None:
            self.adapter.powered = on
            self.adapter.emit_properties_changed({"Powered": on})
        self._emit({"event": "power", "on": on})

    # ---- discovery ---------------------------------------------------------------------------

    def start_discovery(self) -> None:
        self.check_powered()
        self._discovery_sessions += 1
        self._set_discovering(True)

    def stop_discovery(self) -> None:
        if self._discovery_sessions == 0:
            raise DBusError(ERR_FAILED, "No discovery started")
        self._discovery_sessions -= 1
        if self._discovery_sessions == 0:
            self._set_discovering(False)

    def _set_discovering(self, on: bool) -> None:
        if self.adapter is not None and self.adapter.discovering != on:
            self.adapter.discovering = on
            self.adapter.emit_properties_changed({"Discovering": on})
            self._emit({"event": "discovery", "on": on})
        if on and self._adv_task is None:
            self._adv_task = asyncio.get_running_loop().create_task(self._advertise())
        elif not on and self._adv_task is not None:
            self._adv_task.cancel()
            self._adv_task = None

    async def _advertise(self) -> None:
        """While discovering, 'receive' an advertisement of every idle device now and then.

        bleak reports a device only on InterfacesAdded or a Device1 PropertiesChanged during
        discovery (ble-testing.md point 4), so RSSI updates keep repeated scans working.
        """
        while True:
            wobble = next(self._rssi_wobble)
            for dev in list(self.devices.values()):
                if dev.iface is not None and not dev.connected:
                    dev.iface.emit_properties_changed({"RSSI": dev.rssi + wobble})
            await asyncio.sleep(self.adv_interval_s)

    # ---- devices -----------------------------------------------------------------------------

    def add_device(self, address: str, name: str, peripheral: SimPeripheral, **kw: Any
                   ) -> SimDevice:
        address = address.upper()
        if address in self.devices:
            raise ValueError(f"device {address} already exists")
        dev = SimDevice(
            owner=self, address=address, name=name, peripheral=peripheral,
            services=normalise_gatt_table(peripheral.gatt_table()), **kw,
        )
        self.devices[address] = dev
        self._export_device(dev)
        return dev

    def _export_device(self, dev: SimDevice) -> None:
        if self.bus is None or self.adapter is None or dev.iface is not None:
            return
        dev.iface = Device1(dev, ADAPTER_PATH)
        self.bus.export(dev.path, dev.iface)

    def remove_device(self, address: str) -> None:
        dev = self.device(address)
        self._teardown(dev, "removed")
        if self.bus is not None and dev.iface is not None:
            self.bus.unexport(dev.path, dev.iface)
        dev.iface = None
        del self.devices[dev.address]

    def remove_device_by_path(self, path: str) -> None:
        for dev in list(self.devices.values()):
            if dev.path == path:
                self.remove_device(dev.address)
                return
        raise DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")

    def device(self, address: str) -> SimDevice:
        try:
            return self.devices[address.upper()]
        except KeyError:
            raise KeyError(f"no simulated device {address}") from None

    # ---- connections -------------------------------------------------------------------------

    async def connect_device(self, dev: SimDevice) -> None:
        """Device1.Connect: one connect at a time per adapter, like many real controllers."""
        self.check_powered()
        if dev.connected:
            return
        if self._connecting is not None:
            self._emit({"event": "connect_busy", "address": dev.address})
            raise DBusError(ERR_IN_PROGRESS, "In Progress")
        self._connecting = dev
        try:
            await asyncio.sleep(self.connect_delay_s)  # the radio's connection set-up time
            if not self.powered or dev.iface is None:
                raise DBusError(ERR_FAILED, "Software caused connection abort")
            if dev.connect_faults:
                fault = dev.connect_faults.popleft()
                self._emit({"event": "connect_failed", "address": dev.address,
                            "error": fault.error, "message": fault.message})
                if fault.message == ABORT_BY_LOCAL:
                    # BlueZ really connected before aborting: bleak waits for Connected=false.
                    dev.iface.emit_properties_changed({"Connected": True})
                    dev.iface.emit_properties_changed({"Connected": False})
                raise DBusError(fault.error, fault.message)
            dev.connected = True
            dev.connections += 1
            dev.iface.emit_properties_changed({"Connected": True})
            self._export_gatt(dev)
            dev.services_resolved = True
            dev.iface.emit_properties_changed({"ServicesResolved": True})
            hook = getattr(dev.peripheral, "on_connect", None)
            if callable(hook):
                hook()
            dev.ops.append(["connect"])
            self._emit({"event": "connected", "address": dev.address})
        finally:
            self._connecting = None

    def disconnect_device(self, dev: SimDevice, reason: str) -> None:
        """Device1.Disconnect: BlueZ answers NotConnected when there is no link (bleak relies on
        an error here: on success it waits up to 10 s for a Connected=false that never comes)."""
        if not dev.connected:
            raise DBusError(ERR_NOT_CONNECTED, "Not Connected")
        self._teardown(dev, reason)

    def drop_link(self, address: str) -> None:
        """Simulated link loss (supervision timeout): same signals as a disconnect."""
        self._teardown(self.device(address), "link-loss")

    def _export_gatt(self, dev: SimDevice) -> None:
        assert self.bus is not None
        handle = 0x000A
        for spec in dev.services:
            spath = f"{dev.path}/service{handle:04x}"
            service = GattService1(spec.uuid, dev.path)
            self.bus.export(spath, service)
            dev.gatt.append((spath, service))
            handle += 1
            for cspec in spec.characteristics:
                cpath = f"{spath}/char{handle:04x}"
                char = GattCharacteristic1(dev, cspec.uuid, spath, cspec.flags)
                self.bus.export(cpath, char)
                dev.gatt.append((cpath, char))
                dev.chars.setdefault(cspec.uuid, char)
                handle += 3  # declaration, value, CCCD

    def _teardown(self, dev: SimDevice, reason: str) -> None:
        if not dev.connected:
            return
        if dev.iface is not None:
            dev.services_resolved = False
            dev.iface.emit_properties_changed({"ServicesResolved": False})
            dev.connected = False
            dev.iface.emit_properties_changed({"Connected": False})
        if self.bus is not None:
            for path, obj in reversed(dev.gatt):
                self.bus.unexport(path, obj)
        self._forget_connection(dev)
        dev.ops.append(["disconnect", reason])
        self._emit({"event": "disconnected", "address": dev.address, "reason": reason})

    def _forget_connection(self, dev: SimDevice) -> None:
        was_connected = dev.connected or bool(dev.gatt)
        dev.connected = False
        dev.services_resolved = False
        dev.gatt = []
        dev.chars = {}
        hook = getattr(dev.peripheral, "on_disconnect", None)
        if was_connected and callable(hook):
            hook()

    # ---- GATT operations -----------------------------------------------------------------------

    def _require_connected(self, dev: SimDevice) -> None:
        if not dev.connected:
            raise DBusError(ERR_NOT_CONNECTED, "Not Connected")

    def char_read(self, dev: SimDevice, char: GattCharacteristic1) -> bytes:
        self._require_connected(dev)
        if "read" not in char.flags:
            raise DBusError(ERR_NOT_PERMITTED, "Read not permitted")
        try:
            value = bytes(dev.peripheral.on_read(char.uuid))
        except Exception as exc:  # the peripheral refusing is an ATT error, not a crash
            raise att_error(exc, 0x0E) from exc
        char.value = value
        dev.ops.append(["read", char.uuid])
        self._emit({"event": "read", "address": dev.address, "char": char.uuid})
        return value

    def char_write(self, dev: SimDevice, char: GattCharacteristic1, data: bytes, kind: str) -> None:
        self._require_connected(dev)
        if not {"write", "write-without-response"} & set(char.flags):
            raise DBusError(ERR_NOT_PERMITTED, "Write not permitted")
        for fault in list(dev.write_faults):
            if fault.char_uuid in (None, char.uuid):
                dev.write_faults.remove(fault)
                dev.ops.append(["write_rejected", char.uuid, data.hex()])
                self._emit({"event": "write_rejected", "address": dev.address,
                            "char": char.uuid, "data": data.hex()})
                raise DBusError(fault.error, fault.message)
        try:
            if dev.write_takes_response:
                responses = dev.peripheral.on_write(char.uuid, data, response=kind != "command")
            else:
                responses = dev.peripheral.on_write(char.uuid, data)
        except Exception as exc:
            dev.ops.append(["write_rejected", char.uuid, data.hex()])
            self._emit({"event": "write_rejected", "address": dev.address,
                        "char": char.uuid, "data": data.hex()})
            raise att_error(exc, 0x80) from exc
        dev.ops.append(["write", char.uuid, data.hex(), kind])
        self._emit({"event": "write", "address": dev.address, "char": char.uuid,
                    "data": data.hex(), "type": kind})
        for uuid, payload in responses or ():
            self.notify(dev, uuid, payload)

    def char_notify(self, dev: SimDevice, char: GattCharacteristic1, on: bool) -> None:
        self._require_connected(dev)
        if on and not {"notify", "indicate"} & set(char.flags):
            raise DBusError(ERR_NOT_SUPPORTED, "Operation is not supported")
        if char.notifying != on:
            char.notifying = on
            char.emit_properties_changed({"Notifying": on})
        op = "start_notify" if on else "stop_notify"
        dev.ops.append([op, char.uuid])
        self._emit({"event": op, "address": dev.address, "char": char.uuid})
        hook = getattr(dev.peripheral, "on_notify", None)  # the CCCD write, as the device sees it
        if callable(hook):
            for uuid, payload in hook(char.uuid, on) or ():
                self.notify(dev, uuid, payload)

    def notify(self, dev: SimDevice, char_uuid: str, data: bytes) -> bool:
        """Send one notification if the central subscribed (else it is lost, as on air)."""
        char = dev.chars.get(char_uuid.lower())
        if char is None or not char.notifying or not dev.connected:
            dev.notifications_dropped += 1
            return False
        char.value = bytes(data)
        char.emit_properties_changed({"Value": char.value})
        dev.notifications_sent += 1
        if dev.send_log is not None:
            dev.send_log.append((time.monotonic(), char.value))
        return True

    # ---- streaming -----------------------------------------------------------------------------

    def start_streaming(self, make_source: Callable[[float], StreamSource],
                        default_rate_hz: float) -> None:
        self.pacer.start(make_source, default_rate_hz)

    def stop_streaming(self) -> None:
        self.pacer.stop()

    def deliver(self, dev: SimDevice, batch: SampleBatch) -> None:
        """New samples of one sensor: its peripheral decides what to send; a device without a
        link, or muted, loses them (its counters and clock have moved on regardless)."""
        notes = dev.peripheral.notifications_for(batch)
        if dev.muted or not dev.connected:
            dev.notifications_dropped += len(notes)
            return
        dev.sent.append(batch)
        for uuid, payload in notes:
            dev.stream_counter += 1
            if dev.drop_every_n and dev.stream_counter % dev.drop_every_n == 0:
                dev.notifications_dropped += 1
                continue
            self.notify(dev, uuid, payload)
