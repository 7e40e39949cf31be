"""Simulated Xsens/Movella DOT streaming measurement mode 21 (or 20) on the medium payload.

Protocol: sensors/devices/xsens_dot.py and ble-imu-devices.md §3 (spec XD0506P Rev F).
Behaviour modelled:
- full GATT table of §3.1 (flags as in the spec), manufacturer data with company id 0x0886;
- control 0x2001 `[1, 1|0, mode]` starts/stops; only modes 20/21 are simulated (others raise an
  ATT error: a simulator limit, not device behaviour); wrong lengths are ATT errors;
- device control 0x1002 (32 bytes): visit index bit 4 applies the output rate at bytes 24–25,
  bit 5 the filter profile at byte 26; a rate outside the live set, or any change while
  measuring, is ignored (the spec gives no error path: an assumption);
- one notification per sample, zero-padded to `pad_to` bytes (40 = the medium payload size;
  parse by offset), µs timestamps from a drifting device clock started at an arbitrary offset,
  wrapping at 2^32;
- battery 0x3001 `[level, charging]`, read and notified on `set_battery`.
"""

from __future__ import annotations

import struct

import numpy as np

from sensors.devices import xsens_dot as xd
from sensors.devices.base import Advertisement
from sensors.devices.codec import DEG
from sensors.devices.peripherals.base import (
    ATT_INVALID_ATTRIBUTE_LENGTH,
    ATT_REQUEST_NOT_SUPPORTED,
    CharSpec,
    DeviceClock,
    GattError,
    Notification,
    PeripheralBase,
    ServiceSpec,
)
from sensors.samples import SampleBatch

LIVE_RATES = {1, 4, 10, 12, 15, 20, 30, 60}


def encode_payload(time_us: int, acc: np.ndarray, gyr: np.ndarray, mag: np.ndarray | None,
                   pad_to: int = 40) -> bytes:
    """Mode 21 (mag None) or mode 20 payload for one sample, zero-padded to `pad_to` bytes."""
    out = struct.pack("<I3f3f", time_us % (1 << 32), *acc, *(gyr / DEG))
    if mag is not None:
        raw = np.clip(np.round(np.asarray(mag) / xd.MAG_UT_PER_LSB), -32768, 32767).astype("<i2")
        out += raw.tobytes()
    return out.ljust(pad_to, b"\x00")


class XsensDotPeripheral(PeripheralBase):
    family = "xsens_dot"

    def __init__(
        self,
        name: str = "Xsens DOT",
        address: str = "D4:22:CD:00:12:34",
        clock_offset_s: float = 3217.000123,
        drift_ppm: float = 0.0,
        battery_pct: int = 87,
        charging: bool = False,
        pad_to: int = 40,
        tag: str = "Lumbo DOT",
        require_cccd: bool = False,
    ) -> None:
        super().__init__(name=name, address=address, require_cccd=require_cccd)
        self.clock = DeviceClock(clock_offset_s, drift_ppm)
        self.battery_pct = int(battery_pct)
        self.charging = bool(charging)
        self.pad_to = int(pad_to)
        self.output_rate_hz = 60
        self.filter_profile = 0
        self.tag = tag.encode()[:16]
        self.measuring = False
        self.mode = xd.MODE_RATE_QUANTITIES

    @property
    def streaming(self) -> bool:
        return self.measuring

    @property
    def rate_hz(self) -> float:
        return float(self.output_rate_hz)

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, address=self.address,
                             manufacturer_data={xd.MANUFACTURER_ID: bytes.fromhex("0100")})

    def gatt_table(self) -> tuple[ServiceSpec, ...]:
        c = CharSpec
        return (
            ServiceSpec(xd.CONFIG_SERVICE, (
                c(xd.DEVICE_INFO, ("read",)), c(xd.DEVICE_CONTROL, ("read", "write")),
                c(xd.DEVICE_REPORT, ("notify",)))),
            ServiceSpec(xd.MEASUREMENT_SERVICE, (
                c(xd.CONTROL, ("read", "write")), c(xd.LONG_PAYLOAD, ("notify",)),
                c(xd.MEDIUM_PAYLOAD, ("notify",)), c(xd.SHORT_PAYLOAD, ("notify",)),
                c(xd.ORIENTATION_RESET_CONTROL, ("read", "write")),
                c(xd.ORIENTATION_RESET_STATUS, ("read",)))),
            ServiceSpec(xd.BATTERY_SERVICE, (c(xd.BATTERY, ("read", "notify")),)),
            ServiceSpec(xd.MESSAGE_SERVICE, (
                c(xd.MESSAGE_CONTROL, ("write",)), c(xd.MESSAGE_ACK, ("read",)),
                c(xd.MESSAGE_NOTIFY, ("notify",)))),
        )

    def device_control(self) -> bytes:
        buf = bytearray(xd.CONTROL_LEN)
        buf[7] = len(self.tag)
        buf[8:8 + len(self.tag)] = self.tag
        buf[24:26] = struct.pack("<H", self.output_rate_hz)
        buf[26] = self.filter_profile
        return bytes(buf)

    def on_read(self, char_uuid: str) -> bytes:
        uuid = self._check(char_uuid, "read")
        if uuid == xd.DEVICE_CONTROL:
            return self.device_control()
        if uuid == xd.DEVICE_INFO:
            mac = bytes(int(p, 16) for p in reversed(self.address.split(":")))
            return (mac + bytes((2, 0, 0)) + b"\x00" * 25)[:34]  # MAC + firmware 2.0.0
        if uuid == xd.CONTROL:
            return bytes((0x01, 0x01 if self.measuring else 0x00, self.mode))
        if uuid == xd.BATTERY:
            return bytes((self.battery_pct, int(self.charging)))
        if uuid == xd.ORIENTATION_RESET_CONTROL:
            return b"\x00\x00"
        if uuid in (xd.ORIENTATION_RESET_STATUS, xd.MESSAGE_ACK):
            return b"\x00"
        raise GattError(ATT_REQUEST_NOT_SUPPORTED, f"read of {uuid} not simulated")

    def on_write(self, char_uuid: str, data: bytes, response: bool = True) -> list[Notification]:
        uuid = self._check(char_uuid, "write")
        data = bytes(data)
        if uuid == xd.CONTROL:
            return self._control(data)
        if uuid == xd.DEVICE_CONTROL:
            self._device_control(data)
            return []
        if uuid == xd.ORIENTATION_RESET_CONTROL:
            if len(data) != 2:
                raise GattError(ATT_INVALID_ATTRIBUTE_LENGTH, "orientation reset is 2 bytes")
            return []
        return []  # message service (sync) not simulated: accepted and ignored

    def _control(self, data: bytes) -> list[Notification]:
        if len(data) != 3:
            raise GattError(ATT_INVALID_ATTRIBUTE_LENGTH, "measurement control is 3 bytes")
        kind, action, mode = data
        if kind != 0x01 or action not in (0, 1):
            return []
        if action == 0:
            self.measuring = False
            return []
        if mode not in xd.MODE_LENGTH:
            raise GattError(ATT_REQUEST_NOT_SUPPORTED, f"simulator streams modes 20/21 only, not {mode}")
        self.measuring, self.mode = True, mode
        return []

    def _device_control(self, data: bytes) -> None:
        if len(data) != xd.CONTROL_LEN:
            raise GattError(ATT_INVALID_ATTRIBUTE_LENGTH, "device control is 32 bytes")
        if self.measuring:
            return  # output rate and filter cannot change while measuring (§3.3)
        visit = data[0]
        if visit & xd.VISIT_OUTPUT_RATE:
            rate = struct.unpack_from("<H", data, 24)[0]
            if rate in LIVE_RATES:
                self.output_rate_hz = rate
        if visit & 0x20 and data[26] in (0, 1):
            self.filter_profile = data[26]

    def set_battery(self, pct: int, charging: bool) -> list[Notification]:
        self.battery_pct, self.charging = int(pct), bool(charging)
        return self._out([(xd.BATTERY, bytes((self.battery_pct, int(self.charging))))])

    def reboot(self, t: float) -> None:
        self.clock.reboot(t)
        self.measuring = False

    def on_disconnect(self) -> None:
        super().on_disconnect()
        self.measuring = False  # assumption: a link loss ends real-time streaming

    def notifications_for(self, batch: SampleBatch) -> list[Notification]:
        if not self.measuring or len(batch) == 0:
            return []
        t_us = np.floor(self.clock.at(batch.time_s) * 1e6).astype(np.int64)
        with_mag = self.mode == xd.MODE_RATE_QUANTITIES_MAG
        mag = batch.mag if batch.mag is not None else np.zeros_like(batch.acc)
        out = [
            (xd.MEDIUM_PAYLOAD,
             encode_payload(int(t_us[i]), batch.acc[i], batch.gyr[i], mag[i] if with_mag else None, self.pad_to))
            for i in range(len(batch))
        ]
        return self._out(out)
