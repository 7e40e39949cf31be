"""The org.bluez D-Bus interfaces of the simulated bluetoothd, written with dbus-fast.

Deliberately without `from __future__ import annotations`: dbus-fast reads the D-Bus signatures
from the (Annotated) annotations at class creation, and void methods carry no return annotation.
Behaviour lives in `sensors.simbluez.bluez.FakeBluez`; these classes only hold the properties
bleak reads and forward method calls. Never assign `self.name` here (dbus-fast uses it as the
interface name; ble-testing.md point 8).
"""

from typing import Annotated, Any

from dbus_fast import DBusError, PropertyAccess, Variant
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusInt16,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
)
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

StrList = Annotated[list[str], DBusSignature("as")]
MfrDict = Annotated[dict[int, Variant], DBusSignature("a{qv}")]

ADAPTER_IFACE = "org.bluez.Adapter1"
DEVICE_IFACE = "org.bluez.Device1"
SERVICE_IFACE = "org.bluez.GattService1"
CHAR_IFACE = "org.bluez.GattCharacteristic1"

ERR_FAILED = "org.bluez.Error.Failed"
ERR_IN_PROGRESS = "org.bluez.Error.InProgress"
ERR_NOT_READY = "org.bluez.Error.NotReady"
ERR_NOT_PERMITTED = "org.bluez.Error.NotPermitted"
ERR_NOT_SUPPORTED = "org.bluez.Error.NotSupported"
ERR_NOT_CONNECTED = "org.bluez.Error.NotConnected"
ERR_DOES_NOT_EXIST = "org.bluez.Error.DoesNotExist"


class Adapter1(ServiceInterface):
    """`/org/bluez/hci0`: Powered and a `central` role are what bleak checks before anything."""

    def __init__(self, owner: Any, address: str) -> None:
        super().__init__(ADAPTER_IFACE)
        self._owner = owner
        self._address = address
        self.powered = True
        self.discovering = False

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> DBusStr:  # noqa: N802
        return self._address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> DBusStr:  # noqa: N802
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> DBusStr:  # noqa: N802
        return "lumbo-simbluez"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> DBusStr:  # noqa: N802
        return "lumbo-simbluez"

    @dbus_property()
    def Powered(self) -> DBusBool:  # noqa: N802
        return self.powered

    @Powered.setter
    def Powered(self, value: DBusBool):  # noqa: N802
        self._owner.schedule_power(bool(value))

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> DBusBool:  # noqa: N802
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Pairable(self) -> DBusBool:  # noqa: N802
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> DBusBool:  # noqa: N802
        return self.discovering

    @dbus_property(access=PropertyAccess.READ)
    def Roles(self) -> StrList:  # noqa: N802
        return ["central", "peripheral"]

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> StrList:  # noqa: N802
        return []

    @dbus_method()
    def SetDiscoveryFilter(self, properties: DBusDict):  # noqa: N802
        self._owner.check_powered()

    @dbus_method()
    def GetDiscoveryFilters(self) -> StrList:  # noqa: N802
        return ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable"]

    @dbus_method()
    def StartDiscovery(self):  # noqa: N802
        self._owner.start_discovery()

    @dbus_method()
    def StopDiscovery(self):  # noqa: N802
        self._owner.stop_discovery()

    @dbus_method()
    def RemoveDevice(self, device: DBusObjectPath):  # noqa: N802
        self._owner.remove_device_by_path(device)


class Device1(ServiceInterface):
    """`/org/bluez/hci0/dev_XX_..`: advertisement data, connection state, Connect/Disconnect."""

    def __init__(self, dev: Any, adapter_path: str) -> None:
        super().__init__(DEVICE_IFACE)
        self._dev = dev
        self._adapter_path = adapter_path

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> DBusStr:  # noqa: N802
        return self._dev.address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> DBusStr:  # noqa: N802
        return "random"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> DBusStr:  # noqa: N802
        return self._dev.name

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> DBusStr:  # noqa: N802
        return self._dev.name or self._dev.address.replace(":", "-")

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> DBusObjectPath:  # noqa: N802
        return self._adapter_path

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> DBusBool:  # noqa: N802
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Bonded(self) -> DBusBool:  # noqa: N802
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Trusted(self) -> DBusBool:  # noqa: N802
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Blocked(self) -> DBusBool:  # noqa: N802
        return False

    @dbus_property(access=PropertyAccess.READ)
    def LegacyPairing(self) -> DBusBool:  # noqa: N802
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> DBusBool:  # noqa: N802
        return self._dev.connected

    @dbus_property(access=PropertyAccess.READ)
    def ServicesResolved(self) -> DBusBool:  # noqa: N802
        return self._dev.services_resolved

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> DBusInt16:  # noqa: N802
        return self._dev.rssi

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> StrList:  # noqa: N802
        return list(self._dev.uuids)

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> MfrDict:  # noqa: N802
        return {int(k): Variant("ay", bytes(v)) for k, v in self._dev.manufacturer_data.items()}

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> DBusDict:  # noqa: N802
        return {str(k): Variant("ay", bytes(v)) for k, v in self._dev.service_data.items()}

    @dbus_method()
    async def Connect(self):  # noqa: N802
        await self._dev.owner.connect_device(self._dev)

    @dbus_method()
    def Disconnect(self):  # noqa: N802
        self._dev.owner.disconnect_device(self._dev, reason="host")

    @dbus_method()
    def Pair(self):  # noqa: N802
        raise DBusError(ERR_NOT_SUPPORTED, "Pairing is not simulated")


class GattService1(ServiceInterface):
    """`<device>/serviceXXXX`: only UUID and Device matter to bleak."""

    def __init__(self, uuid: str, device_path: str) -> None:
        super().__init__(SERVICE_IFACE)
        self._uuid = uuid
        self._device_path = device_path

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:  # noqa: N802
        return self._uuid

    @dbus_property(access=PropertyAccess.READ)
    def Device(self) -> DBusObjectPath:  # noqa: N802
        return self._device_path

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> DBusBool:  # noqa: N802
        return True


class GattCharacteristic1(ServiceInterface):
    """`<device>/serviceXXXX/charXXXX`: notifications are PropertiesChanged of `Value`."""

    def __init__(self, dev: Any, uuid: str, service_path: str, flags: tuple[str, ...]) -> None:
        super().__init__(CHAR_IFACE)
        self._dev = dev
        self._uuid = uuid
        self._service_path = service_path
        self._flags = list(flags)
        self.value = b""
        self.notifying = False

    @property
    def uuid(self) -> str:
        return self._uuid

    @property
    def flags(self) -> list[str]:
        return self._flags

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:  # noqa: N802
        return self._uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> DBusObjectPath:  # noqa: N802
        return self._service_path

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> StrList:  # noqa: N802
        return self._flags

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> DBusBytes:  # noqa: N802
        return self.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> DBusBool:  # noqa: N802
        return self.notifying

    @dbus_method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:  # noqa: N802
        return self._dev.owner.char_read(self._dev, self)

    @dbus_method()
    def WriteValue(self, value: DBusBytes, options: DBusDict):  # noqa: N802
        kind = options.get("type")
        write_type = kind.value if isinstance(kind, Variant) else "request"
        self._dev.owner.char_write(self._dev, self, bytes(value), write_type)

    @dbus_method()
    def StartNotify(self):  # noqa: N802
        self._dev.owner.char_notify(self._dev, self, True)

    @dbus_method()
    def StopNotify(self):  # noqa: N802
        self._dev.owner.char_notify(self._dev, self, False)
