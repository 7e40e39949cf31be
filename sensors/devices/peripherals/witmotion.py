"""Simulated WitMotion WT901BLE: FFE5 service (…9a34fb base), 0x61 records, FF AA register commands.

Layouts and commands: sensors/devices/witmotion.py and ble-imu-devices.md §1. Behaviour modelled:
- streams 0x61 records from connection on (no start command exists), one or several records per
  notification (`records_per_notification`), optionally re-chunked into `chunk_size`-byte
  notifications so records straddle notifications;
- configuration writes need the unlock key first (`FF AA 69 88 B5`) and are silently ignored
  otherwise — the module has no error reply; `FF AA 27 <reg> 00` answers with a 0x71 record of
  8 registers, unlocked or not; malformed commands are ignored;
- no timestamp: the clock parameters do not exist for this device.
"""

from __future__ import annotations

import numpy as np

from sensors.devices import witmotion as wm
from sensors.devices.base import Advertisement
from sensors.devices.codec import DEG, G
from sensors.devices.peripherals.base import CharSpec, Notification, PeripheralBase, ServiceSpec
from sensors.samples import SampleBatch

_CODE_TO_RATE = {code: rate for rate, code in wm.RATE_CODES.items()}


def _i16(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), -32768, 32767).astype("<i2")


def encode_records(acc: np.ndarray, gyr: np.ndarray) -> bytes:
    """0x61 records for (N,3) acc m/s² and gyro rad/s (§1.2 scaling); angles from gravity."""
    n = acc.shape[0]
    acc_g = acc / G
    roll = np.degrees(np.arctan2(acc_g[:, 1], acc_g[:, 2]))
    pitch = np.degrees(np.arctan2(-acc_g[:, 0], np.hypot(acc_g[:, 1], acc_g[:, 2])))
    angles = np.column_stack((roll, pitch, np.zeros(n)))
    body = np.empty((n, 10), dtype="<i2")
    body[:, 0] = np.frombuffer(bytes((wm.HEADER, wm.FLAG_DATA)), dtype="<i2")[0]
    body[:, 1:4] = _i16(acc_g / wm.ACC_SCALE_G)
    body[:, 4:7] = _i16(gyr / DEG / wm.GYRO_SCALE_DPS)
    body[:, 7:10] = _i16(angles / wm.ANGLE_SCALE_DEG)
    return body.tobytes()


class WitMotionPeripheral(PeripheralBase):
    family = "witmotion"

    def __init__(
        self,
        name: str = "WT901BLE68",
        address: str = "C1:2D:3E:4F:50:61",
        rate_hz: float = 10.0,
        battery_v: float = 3.85,
        records_per_notification: int = 1,
        chunk_size: int | None = None,
        uuid_base: str = "9a",
        require_cccd: bool = False,
    ) -> None:
        super().__init__(name=name, address=address, require_cccd=require_cccd)
        base = wm.BASE_9A if uuid_base == "9a" else wm.BASE_9B
        self.service_uuid = wm.wit_uuid(0xFFE5, base)
        self.notify_uuid = wm.wit_uuid(0xFFE4, base)
        self.write_uuid = wm.wit_uuid(0xFFE9, base)
        self.records_per_notification = max(1, int(records_per_notification))
        self.chunk_size = chunk_size
        self.unlocked = False
        self.registers: dict[int, int] = {
            wm.REG_RATE: wm.RATE_CODES[float(rate_hz)],
            wm.REG_BATTERY: int(round(battery_v * 100)),
            0x2E: 0x0101, 0x2F: 0x0000,  # firmware version words
            0x40: 2500,  # 25.00 °C
            0x3A: 360, 0x3B: 105, 0x3C: 122,  # mag, the datasheet example
        }
        self.saved = dict(self.registers)
        self._pending = b""  # bytes waiting for the next chunk (chunk_size mode)

    @property
    def rate_hz(self) -> float:
        return _CODE_TO_RATE[self.registers[wm.REG_RATE]]

    @property
    def streaming(self) -> bool:
        return True  # the module streams 0x61 records whenever it is connected

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, address=self.address, service_uuids=(self.service_uuid,))

    def gatt_table(self) -> tuple[ServiceSpec, ...]:
        return (
            ServiceSpec(self.service_uuid, (
                CharSpec(self.notify_uuid, ("notify",)),
                CharSpec(self.write_uuid, ("write", "write-without-response")),
            )),
        )

    def set_battery(self, volts: float) -> None:
        self.registers[wm.REG_BATTERY] = int(round(volts * 100))

    def on_write(self, char_uuid: str, data: bytes, response: bool = True) -> list[Notification]:
        self._check(char_uuid, "write")
        data = bytes(data)
        if len(data) != 5 or data[:2] != b"\xff\xaa":
            return []  # not a command: the module ignores it
        reg, value = data[2], data[3] | (data[4] << 8)
        if reg == wm.REG_READ:
            return self._out([(self.notify_uuid, self._register_record(value & 0xFF))])
        if reg == wm.REG_UNLOCK:
            self.unlocked = value == wm.UNLOCK_KEY
            return []
        if not self.unlocked:
            return []  # locked: configuration writes are ignored
        if reg == wm.REG_SAVE:
            if value == 0x0000:
                self.saved = dict(self.registers)
            elif value == 0x0001:  # restore defaults (esphome, MED)
                self.registers[wm.REG_RATE] = wm.RATE_CODES[10.0]
        elif reg == wm.REG_RATE:
            if value in _CODE_TO_RATE:
                self.registers[wm.REG_RATE] = value
        else:
            self.registers[reg] = value
        return []

    def _register_record(self, reg: int) -> bytes:
        values = [self.registers.get(reg + k, 0) for k in range(8)]
        words = np.array([(v + 0x8000) % 0x10000 - 0x8000 for v in values], dtype="<i2")
        return bytes((wm.HEADER, wm.FLAG_REG, reg, 0x00)) + words.tobytes()

    def notifications_for(self, batch: SampleBatch) -> list[Notification]:
        if len(batch) == 0:
            return []
        stream = encode_records(batch.acc, batch.gyr)
        if self.chunk_size:
            stream = self._pending + stream
            size = int(self.chunk_size)
            cut = len(stream) - len(stream) % size
            chunks = [stream[i:i + size] for i in range(0, cut, size)]
            self._pending = stream[cut:]
        else:
            step = wm.RECORD_LEN * self.records_per_notification
            chunks = [stream[i:i + step] for i in range(0, len(stream), step)]
        return self._out([(self.notify_uuid, c) for c in chunks])

    def on_disconnect(self) -> None:
        super().on_disconnect()
        self.unlocked = False
        self._pending = b""

    def power_cycle(self) -> None:
        """Unsaved settings are lost; saved ones (`FF AA 00 00 00`) come back."""
        self.on_disconnect()
        self.registers = dict(self.saved)
