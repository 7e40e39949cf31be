"""Xsens DOT / Movella DOT: measurement mode 21 "rate quantities" (acc + gyro), or 20 (+ mag).

Byte-level reference: /work/shared/docs/ble-imu-devices.md §3 (primary source: "Xsens DOT BLE
Services Specifications" XD0506P Rev F, cross-checked with xsens/xsens_dot_server and
adamkewley/xdc). Confidence HIGH unless said otherwise.

- GATT (§3.1): base 1517xxxx-4947-11e9-8646-d663bd873d93. Advertises company id 0x0886.
- Start (§3.2): start_notify on the *medium* payload (0x2003) first, then write
  `01 01 <mode>` to control 0x2001 (`01 01 15` for mode 21); stop is `01 00 <mode>`.
- Payload (§3.2, spec tables 13–17): uint32 µs timestamp, acc 3×float32 m/s², gyro 3×float32
  °/s (→ rad/s here), mode 20 adds mag 3×int16 fixed point. Notifications may be zero-padded to
  40 bytes, so fields are read by offset and anything beyond them is ignored.
- Mag (mode 20): the official server divides by 2^12 to get "a.u."; the manual says 1 a.u. is
  about 40 µT. µT = raw / 4096 × 40 — LOW confidence (one footnote, "≈").
- Time (§3.4): 1 MHz clock from power-on, wraps at 2^32 µs (~71.6 min): unwrapped here. No
  packet counter: loss shows as timestamp steps ≠ 1e6/fs (done by the host time base).
- Battery (§3.4): 0x3001 = [level %, charging 0/1]; read it, and it also notifies on change.
- Output rate (§3.3): lives in the 32-byte device-control structure (0x1002). The spec says to
  read it, set visit index (byte 0) to 0x10 ("output rate" bit) and put the uint16 rate at bytes
  24–25. `start_commands` does exactly that read-modify-write with a "read" GattCommand whose
  `then` hook returns the write. Because the visit index tells the device to apply only the
  output-rate field, a zero-filled structure would be equivalent; it is used as the fallback if
  the read returns something that is not 32 bytes. The rate cannot change while measuring, so a
  stop is sent first (harmless when idle). Allowed live rates: 1, 4, 10, 12, 15, 20, 30, 60 Hz.
"""

from __future__ import annotations

import struct
from collections.abc import Collection

import numpy as np

from sensors.devices.base import (
    Advertisement,
    DecodeResult,
    DeviceFamily,
    DeviceSamples,
    GattCommand,
)
from sensors.devices.codec import DEG, DecoderBase, TickUnwrapper, all_finite


def dot_uuid(short: int) -> str:
    return f"1517{short:04x}-4947-11e9-8646-d663bd873d93"


CONFIG_SERVICE = dot_uuid(0x1000)
DEVICE_INFO = dot_uuid(0x1001)
DEVICE_CONTROL = dot_uuid(0x1002)
DEVICE_REPORT = dot_uuid(0x1004)
MEASUREMENT_SERVICE = dot_uuid(0x2000)
CONTROL = dot_uuid(0x2001)
LONG_PAYLOAD = dot_uuid(0x2002)
MEDIUM_PAYLOAD = dot_uuid(0x2003)
SHORT_PAYLOAD = dot_uuid(0x2004)
ORIENTATION_RESET_CONTROL = dot_uuid(0x2006)
ORIENTATION_RESET_STATUS = dot_uuid(0x2007)
BATTERY_SERVICE = dot_uuid(0x3000)
BATTERY = dot_uuid(0x3001)
MESSAGE_SERVICE = dot_uuid(0x7000)
MESSAGE_CONTROL = dot_uuid(0x7001)
MESSAGE_ACK = dot_uuid(0x7002)
MESSAGE_NOTIFY = dot_uuid(0x7003)
KNOWN_CHARS = frozenset({
    DEVICE_INFO, DEVICE_CONTROL, DEVICE_REPORT, CONTROL, LONG_PAYLOAD, MEDIUM_PAYLOAD,
    SHORT_PAYLOAD, ORIENTATION_RESET_CONTROL, ORIENTATION_RESET_STATUS, BATTERY,
    MESSAGE_CONTROL, MESSAGE_ACK, MESSAGE_NOTIFY,
})

MANUFACTURER_ID = 0x0886  # Xsens company identifier (spec §1.2)
MODE_RATE_QUANTITIES_MAG = 20  # acc + gyro + mag, 34 bytes
MODE_RATE_QUANTITIES = 21  # acc + gyro, 28 bytes (0x15)
MODE_LENGTH = {MODE_RATE_QUANTITIES: 28, MODE_RATE_QUANTITIES_MAG: 34}
MEDIUM_MAX = 40
OUTPUT_RATES_HZ: tuple[float, ...] = (1.0, 4.0, 10.0, 12.0, 15.0, 20.0, 30.0, 60.0)
CONTROL_LEN = 32
VISIT_OUTPUT_RATE = 0x10
RATE_OFFSET = 24
MAG_UT_PER_LSB = 40.0 / 4096.0  # LOW: 2^-12 a.u. per LSB, 1 a.u. ≈ 40 µT
REORDER_US = 2_000_000


def control_command(start: bool, mode: int) -> bytes:
    """`[Type=1 measurement, Action=1 start / 0 stop, PayloadMode]` for 0x2001 (§3.2)."""
    return bytes((0x01, 0x01 if start else 0x00, mode))


def with_output_rate(structure: bytes, rate_hz: float) -> bytes:
    """Device-control structure with visit index 0x10 and the output rate at bytes 24–25."""
    buf = bytearray(structure) if len(structure) == CONTROL_LEN else bytearray(CONTROL_LEN)
    buf[0] = VISIT_OUTPUT_RATE
    buf[RATE_OFFSET:RATE_OFFSET + 2] = struct.pack("<H", int(rate_hz))
    return bytes(buf)


def _write_output_rate(rate_hz: float):  # -> Callable[[bytes], list[GattCommand]]
    def then(current: bytes) -> list[GattCommand]:
        return [GattCommand("write", DEVICE_CONTROL, with_output_rate(bytes(current), rate_hz))]

    return then


class XsensDotDecoder(DecoderBase):
    """Decodes mode 20/21 medium payloads and battery notifications/reads."""

    def __init__(self, rate_hz: float, mode: int = MODE_RATE_QUANTITIES) -> None:
        super().__init__(rate_hz)
        if mode not in MODE_LENGTH:
            raise ValueError(f"decoder implements modes 20 and 21, not {mode}")
        self._mode = mode
        self._need = MODE_LENGTH[mode]
        self._ticks = TickUnwrapper(bits=32, reorder_ticks=REORDER_US)

    def _feed(self, result: DecodeResult, char_uuid: str, data: bytes) -> None:
        if char_uuid == MEDIUM_PAYLOAD:
            self._payload(result, data)
        elif char_uuid == BATTERY:
            self._battery(result, data)
        elif char_uuid in (SHORT_PAYLOAD, LONG_PAYLOAD):
            self._error(result, "unknown_type", f"payload on {char_uuid}: not the configured mode {self._mode}")
        elif char_uuid in KNOWN_CHARS:
            return  # reads/notifications of config characteristics carry no samples
        else:
            self._error(result, "unknown_char", f"Xsens DOT sends nothing on {char_uuid}")

    def _payload(self, result: DecodeResult, data: bytes) -> None:
        if len(data) < self._need:
            self._error(result, "truncated", f"{len(data)} bytes, mode {self._mode} needs {self._need}")
            return
        if len(data) > MEDIUM_MAX:
            self._error(result, "bad_value", f"{len(data)} bytes on the 40-byte medium payload")
            return
        raw_ts = int.from_bytes(data[0:4], "little")
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf are reported just below
            values = np.frombuffer(data, dtype="<f4", count=6, offset=4).astype(np.float64)
            acc = values[0:3].reshape(1, 3)
            gyr = values[3:6].reshape(1, 3) * DEG
        mag = None
        if self._mode == MODE_RATE_QUANTITIES_MAG:
            mag = np.frombuffer(data, dtype="<i2", count=3, offset=28).astype(np.float64)
            mag = mag.reshape(1, 3) * MAG_UT_PER_LSB
        if not all_finite(acc, gyr):
            self._error(result, "bad_value", "non-finite acc/gyro value")
            return
        status, ticks = self._ticks.peek(raw_ts)
        if status in ("duplicate", "out_of_order"):
            self._error(result, status, f"DOT timestamp {raw_ts} µs after {self._ticks.last} µs")
            return
        if status == "reset":
            self._clock_reset(result, f"DOT timestamp fell back to {raw_ts} µs (power cycle)")
        self._ticks.accept(raw_ts, ticks)
        self._emit(result, DeviceSamples(acc=acc, gyr=gyr, mag=mag, device_time_s=np.array([ticks * 1e-6])))

    def _battery(self, result: DecodeResult, data: bytes) -> None:
        if len(data) < 2:
            self._error(result, "truncated", f"{len(data)}-byte battery value, need 2")
            return
        if data[0] > 100 or data[1] > 1:
            self._error(result, "bad_value", f"battery {data[0]} %, charging {data[1]}")
            return
        result.battery_pct = float(data[0])
        result.charging = bool(data[1])


class XsensDotFamily:
    """Xsens/Movella DOT streaming calibrated acc + gyro (mode 21) or + mag (mode 20)."""

    family = "xsens_dot"
    display_name = "Movella/Xsens DOT"
    supported_rates_hz = OUTPUT_RATES_HZ

    def __init__(self, with_mag: bool = False) -> None:
        self.with_mag = with_mag
        self.mode = MODE_RATE_QUANTITIES_MAG if with_mag else MODE_RATE_QUANTITIES

    def matches(self, adv: Advertisement) -> bool:
        if MANUFACTURER_ID in adv.manufacturer_data:
            return True
        return bool(adv.name) and adv.name.startswith(("Xsens DOT", "Movella DOT"))

    def for_gatt(self, char_uuids: Collection[str]) -> DeviceFamily:
        return self

    def notify_uuids(self) -> tuple[str, ...]:
        return (MEDIUM_PAYLOAD, BATTERY)

    def start_commands(self, rate_hz: float) -> list[GattCommand]:
        if float(rate_hz) not in OUTPUT_RATES_HZ:
            raise ValueError(f"Xsens DOT live rate {rate_hz} Hz not in {OUTPUT_RATES_HZ}")
        return [
            GattCommand("write", CONTROL, control_command(False, self.mode)),
            GattCommand("read", DEVICE_CONTROL, then=_write_output_rate(rate_hz)),
            GattCommand("wait", delay_s=0.1),
            GattCommand("start_notify", MEDIUM_PAYLOAD),
            GattCommand("start_notify", BATTERY),
            GattCommand("write", CONTROL, control_command(True, self.mode)),
        ]

    def stop_commands(self) -> list[GattCommand]:
        return [
            GattCommand("write", CONTROL, control_command(False, self.mode)),
            GattCommand("stop_notify", MEDIUM_PAYLOAD),
            GattCommand("stop_notify", BATTERY),
        ]

    def battery_commands(self) -> list[GattCommand]:
        return [GattCommand("read", BATTERY)]

    def new_decoder(self, rate_hz: float) -> XsensDotDecoder:
        return XsensDotDecoder(rate_hz, self.mode)
