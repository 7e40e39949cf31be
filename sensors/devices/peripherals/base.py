"""The transport-free shape of a simulated sensor, shared by every family's peripheral.

A peripheral is a pure object: the fake BlueZ (sensors/simbluez/) owns sockets and timing and
calls in; the peripheral answers with bytes exactly as the real device would.

- `gatt_table()`: services and characteristics with BlueZ flag strings ("read", "write",
  "write-without-response", "notify", "indicate").
- `on_write(char_uuid, data)` / `on_read(char_uuid)`: command handling. Returns the
  notifications/indications the write causes, as `(char_uuid, bytes)`. A write or read the device
  refuses at the ATT level raises `GattError` (the fake answers the D-Bus call with an error);
  a command the device refuses at the protocol level is answered in-band, as the device does.
- `notifications_for(batch)`: turns newly simulated samples (SampleBatch in SI units; `time_s`
  is the true time, which the device stamps with its own drifting clock) into notifications,
  nothing while the device is not streaming.
- Optional hooks for a faithful fake: `on_notify(char_uuid, enabled)` (CCCD writes: with
  `require_cccd=True` nothing is sent on a characteristic whose notifications are off, like the
  real GATT server) and `on_disconnect()` (e.g. Movesense drops all subscriptions).

Constructor arguments are plain JSON values, so the fake can build peripherals from
"module:Class" + kwargs in a subprocess.
"""

from __future__ import annotations

from dataclasses import dataclass

from sensors.devices.base import Advertisement
from sensors.samples import SampleBatch

Notification = tuple[str, bytes]

ATT_READ_NOT_PERMITTED = 0x02
ATT_WRITE_NOT_PERMITTED = 0x03
ATT_REQUEST_NOT_SUPPORTED = 0x06
ATT_INVALID_ATTRIBUTE_LENGTH = 0x0D
ATT_UNLIKELY_ERROR = 0x0E


class GattError(Exception):
    """An ATT error response (Core spec Vol 3 Part F §3.4.1.1 error codes)."""

    def __init__(self, att_code: int, message: str) -> None:
        super().__init__(message)
        self.att_code = att_code


@dataclass(frozen=True, slots=True)
class CharSpec:
    uuid: str
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    uuid: str
    characteristics: tuple[CharSpec, ...]


class DeviceClock:
    """A device's own clock: device_s = offset_s + t·(1 + drift_ppm·1e-6), t the true time.

    `reboot(t)` restarts it from zero at true time t (Movesense/DOT clocks count from power-on).
    """

    def __init__(self, offset_s: float = 0.0, drift_ppm: float = 0.0) -> None:
        self.offset_s = float(offset_s)
        self.rate = 1.0 + float(drift_ppm) * 1e-6

    def at(self, t):  # float or ndarray -> same
        return self.offset_s + t * self.rate

    def reboot(self, t: float, restart_s: float = 0.0) -> None:
        self.offset_s = restart_s - t * self.rate


class PeripheralBase:
    """Subscription bookkeeping and advertisement; subclasses add the protocol."""

    family = ""

    def __init__(self, *, name: str, address: str, require_cccd: bool = False) -> None:
        self.name = name
        self.address = address
        self.require_cccd = require_cccd
        self._subscribed: set[str] = set()

    # -- to be provided by each family ---------------------------------------------------------
    def gatt_table(self) -> tuple[ServiceSpec, ...]:
        raise NotImplementedError

    def on_write(self, char_uuid: str, data: bytes, response: bool = True) -> list[Notification]:
        raise GattError(ATT_WRITE_NOT_PERMITTED, f"{char_uuid} is not writable")

    def on_read(self, char_uuid: str) -> bytes:
        raise GattError(ATT_READ_NOT_PERMITTED, f"{char_uuid} is not readable")

    def notifications_for(self, batch: SampleBatch) -> list[Notification]:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, address=self.address)

    def on_notify(self, char_uuid: str, enabled: bool) -> list[Notification]:
        uuid = char_uuid.lower()
        if enabled:
            self._subscribed.add(uuid)
        else:
            self._subscribed.discard(uuid)
        return []

    def on_disconnect(self) -> None:
        self._subscribed.clear()

    def _flags(self, char_uuid: str) -> tuple[str, ...]:
        for service in self.gatt_table():
            for char in service.characteristics:
                if char.uuid == char_uuid:
                    return char.flags
        raise GattError(ATT_REQUEST_NOT_SUPPORTED, f"no characteristic {char_uuid}")

    def _check(self, char_uuid: str, flag: str) -> str:
        uuid = char_uuid.lower()
        flags = self._flags(uuid)
        if flag == "write" and not ({"write", "write-without-response"} & set(flags)):
            raise GattError(ATT_WRITE_NOT_PERMITTED, f"{uuid} is not writable")
        if flag == "read" and "read" not in flags:
            raise GattError(ATT_READ_NOT_PERMITTED, f"{uuid} is not readable")
        return uuid

    def _out(self, items: list[Notification]) -> list[Notification]:
        if not self.require_cccd:
            return items
        return [(u, d) for u, d in items if u in self._subscribed]
