"""WitMotion BWT901BLECL / WT901BLE (BLE 5.0): 0x55-framed records on FFE4, `FF AA` commands on FFE9.

Byte-level reference: /work/shared/docs/ble-imu-devices.md §1 (sources there: the official
WITMOTION/WitBluetooth_BWT901BLE5_0 SDKs and rubenmuehlhans/esphome-witmotion).

- GATT (§1.1, HIGH): the vendor UUIDs use the non-standard base …-8000-00805f9**a**34fb. One
  third-party note (LOW) says some firmware uses the SIG base …9b34fb; `for_gatt` picks whichever
  the device exposes, and the decoder accepts both.
- Stream (§1.2, HIGH): 20-byte 0x61 records, acc ×16/32768 g, gyro ×2000/32768 °/s, angles
  ×180/32768 ° (angles are not passed on: Lumbo fuses on the host). Several records may share a
  notification and a record may straddle two, so the decoder keeps a rolling buffer and
  resynchronises on 0x55 followed by 0x61/0x71 (as the official Python and Java parsers do).
- No timestamp and no counter: samples carry neither; the host time base counts samples and
  detects gaps from arrival times (sensors/timebase.py).
- Register replies (§1.3): 0x55 0x71 <reg lo> <reg hi> + 8 int16 registers. Battery is reg 0x64,
  volts ×100; it is mapped to percent with the official Android SDK's table
  (`Bwt901bleProcessor.getEqPercent`, single Li-ion cell: 3.40 V → 0 %, 3.99 V → 100 %,
  piecewise linear; a second table above 5.5 V for two-cell packs).
- Commands (§1.4): unlock `FF AA 69 88 B5`, wait ~100 ms, rate `FF AA 03 <code> 00`, wait, save
  `FF AA 00 00 00`. Rate codes MED-HIGH. There is no stop command: the module streams while
  connected, so stopping means stop_notify.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from sensors.devices.base import (
    Advertisement,
    DecodeResult,
    DeviceFamily,
    DeviceSamples,
    GattCommand,
)
from sensors.devices.codec import DEG, G, DecoderBase

BASE_9A = "-0000-1000-8000-00805f9a34fb"  # WitMotion's own base (HIGH)
BASE_9B = "-0000-1000-8000-00805f9b34fb"  # SIG base, reported for some firmware (LOW)


def wit_uuid(short: int, base: str = BASE_9A) -> str:
    return f"0000{short:04x}{base}"


SERVICE = wit_uuid(0xFFE5)
NOTIFY = wit_uuid(0xFFE4)
WRITE = wit_uuid(0xFFE9)
ALL_NOTIFY = (wit_uuid(0xFFE4, BASE_9A), wit_uuid(0xFFE4, BASE_9B))

HEADER = 0x55
FLAG_DATA = 0x61
FLAG_REG = 0x71
RECORD_LEN = 20

REG_SAVE = 0x00
REG_RATE = 0x03
REG_READ = 0x27
REG_BATTERY = 0x64
REG_UNLOCK = 0x69
UNLOCK_KEY = 0xB588

ACC_SCALE_G = 16.0 / 32768.0
GYRO_SCALE_DPS = 2000.0 / 32768.0
ANGLE_SCALE_DEG = 180.0 / 32768.0

# §1.4: RATE register codes (esphome-witmotion RateArg; 0x06 and 0x08 confirmed by Form1.cs).
RATE_CODES: dict[float, int] = {
    0.2: 0x01, 0.5: 0x02, 1.0: 0x03, 2.0: 0x04, 5.0: 0x05,
    10.0: 0x06, 20.0: 0x07, 50.0: 0x08, 100.0: 0x09, 200.0: 0x0A,
}

# Official Android SDK, Bwt901bleProcessor.getEqPercent (volts -> percent).
_BATT_1CELL_V = (3.40, 3.50, 3.68, 3.70, 3.73, 3.77, 3.79, 3.82, 3.87, 3.93, 3.96, 3.99)
_BATT_1CELL_PCT = (0, 5, 10, 15, 20, 30, 40, 50, 60, 75, 90, 100)
_BATT_2CELL_V = (6.5, 6.8, 7.35, 7.75, 8.5, 8.8)
_BATT_2CELL_PCT = (0, 10, 30, 60, 90, 100)

SETTLE_S = 0.1  # "wait ~100 ms" between unlock, rate and save (§1.4)


def command(reg: int, value: int) -> bytes:
    """`FF AA <reg> <valueLo> <valueHi>` (§1.4)."""
    return bytes((0xFF, 0xAA, reg & 0xFF, value & 0xFF, (value >> 8) & 0xFF))


UNLOCK = command(REG_UNLOCK, UNLOCK_KEY)  # FF AA 69 88 B5
SAVE = command(REG_SAVE, 0x0000)  # FF AA 00 00 00


def read_register(reg: int) -> bytes:
    """`FF AA 27 <reg> 00`: the module answers with a 0x71 record on FFE4."""
    return command(REG_READ, reg)


def battery_percent(volts: float) -> float:
    """Battery volts (reg 0x64 / 100) to percent, official SDK table, clamped to 0–100."""
    if volts > 5.5:
        return float(np.interp(volts, _BATT_2CELL_V, _BATT_2CELL_PCT))
    return float(np.interp(volts, _BATT_1CELL_V, _BATT_1CELL_PCT))


class WitMotionDecoder(DecoderBase):
    """Rolling-buffer decoder of 0x61 data and 0x71 register records (§1.2, §1.3)."""

    def __init__(self, rate_hz: float) -> None:
        super().__init__(rate_hz)
        self._buf = bytearray()
        self.registers: dict[int, int] = {}  # last value of each register read (0x00–0xFF)

    def _feed(self, result: DecodeResult, char_uuid: str, data: bytes) -> None:
        if char_uuid not in ALL_NOTIFY:
            self._error(result, "unknown_char", f"WitMotion sends nothing on {char_uuid}")
            return
        if not data:
            return
        if (
            self._buf
            and len(data) >= 2
            and data[0] == HEADER
            and data[1] in (FLAG_DATA, FLAG_REG)
            and len(data) % RECORD_LEN == 0
        ):
            # A whole number of records starting with a header while a partial record waits:
            # the partial lost its tail (dropped notification). Do not glue the two.
            self._error(result, "truncated", f"record cut after {len(self._buf)} bytes")
            self._buf.clear()
        self._buf += data
        data_records: list[bytes] = []
        self._scan(result, data_records)
        if data_records:
            raw = np.frombuffer(b"".join(data_records), dtype="<i2").reshape(-1, 10)
            acc = raw[:, 1:4].astype(np.float64) * (ACC_SCALE_G * G)
            gyr = raw[:, 4:7].astype(np.float64) * (GYRO_SCALE_DPS * DEG)
            result.samples.append(DeviceSamples(acc=acc, gyr=gyr))

    def _scan(self, result: DecodeResult, data_records: list[bytes]) -> None:
        buf = self._buf
        while buf:
            start = _find_sync(buf)
            if start < 0:
                keep = 1 if buf[-1] == HEADER else 0  # may be the first byte of a header
                if len(buf) > keep:
                    self._error(result, "bad_header", f"{len(buf) - keep} bytes without 0x55 0x61/0x71")
                del buf[: len(buf) - keep]
                return
            if start > 0:
                self._error(result, "bad_header", f"skipped {start} bytes to resynchronise")
                del buf[:start]
            if len(buf) < RECORD_LEN:
                return  # record continues in the next notification
            record = bytes(buf[:RECORD_LEN])
            del buf[:RECORD_LEN]
            if record[1] == FLAG_DATA:
                data_records.append(record)
            else:
                self._register_reply(result, record)

    def _register_reply(self, result: DecodeResult, record: bytes) -> None:
        reg = record[2] | (record[3] << 8)
        values = np.frombuffer(record, dtype="<i2", offset=4)
        for k, value in enumerate(values):
            if reg + k < 0x100:
                self.registers[reg + k] = int(value)
        if reg <= REG_BATTERY < reg + 8:
            volts = self.registers[REG_BATTERY] / 100.0
            result.battery_pct = battery_percent(volts)


def _find_sync(buf: bytearray) -> int:
    """Index of the first 0x55 followed by 0x61 or 0x71, or -1."""
    i = buf.find(HEADER)
    while 0 <= i < len(buf) - 1:
        if buf[i + 1] in (FLAG_DATA, FLAG_REG):
            return i
        i = buf.find(HEADER, i + 1)
    return -1


class WitMotionFamily:
    """WT901BLE-type modules (advertised name starts with "WT", official test.py)."""

    family = "witmotion"
    display_name = "WitMotion WT901BLE"
    supported_rates_hz: tuple[float, ...] = tuple(RATE_CODES)

    def __init__(self, base: str = BASE_9A) -> None:
        self._base = base
        self.service_uuid = wit_uuid(0xFFE5, base)
        self.notify_uuid = wit_uuid(0xFFE4, base)
        self.write_uuid = wit_uuid(0xFFE9, base)

    def matches(self, adv: Advertisement) -> bool:
        # Name prefix "WT" (official test.py filters on it); the 9a-base FFE5 service is unique
        # to WitMotion, so it identifies renamed modules too.
        if adv.name and adv.name.startswith("WT"):
            return True
        return wit_uuid(0xFFE5, BASE_9A) in (u.lower() for u in adv.service_uuids)

    def for_gatt(self, char_uuids: Collection[str]) -> DeviceFamily:
        found = {u.lower() for u in char_uuids}
        if wit_uuid(0xFFE4, BASE_9A) in found:
            return WitMotionFamily(BASE_9A)
        if wit_uuid(0xFFE4, BASE_9B) in found:
            return WitMotionFamily(BASE_9B)
        return self

    def notify_uuids(self) -> tuple[str, ...]:
        return (self.notify_uuid,)

    def start_commands(self, rate_hz: float) -> list[GattCommand]:
        code = RATE_CODES.get(float(rate_hz))
        if code is None:
            raise ValueError(f"WitMotion has no rate {rate_hz} Hz; choose from {self.supported_rates_hz}")
        return [
            GattCommand("start_notify", self.notify_uuid),
            GattCommand("write", self.write_uuid, UNLOCK),
            GattCommand("wait", delay_s=SETTLE_S),
            GattCommand("write", self.write_uuid, command(REG_RATE, code)),
            GattCommand("wait", delay_s=SETTLE_S),
            GattCommand("write", self.write_uuid, SAVE),
            GattCommand("wait", delay_s=SETTLE_S),
        ]

    def stop_commands(self) -> list[GattCommand]:
        return [GattCommand("stop_notify", self.notify_uuid)]

    def battery_commands(self) -> list[GattCommand]:
        # The reply is a 0x71 record on the notify characteristic: the decoder reports it.
        return [GattCommand("write", self.write_uuid, read_register(REG_BATTERY))]

    def new_decoder(self, rate_hz: float) -> WitMotionDecoder:
        return WitMotionDecoder(rate_hz)
