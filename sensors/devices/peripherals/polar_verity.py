"""Simulated Polar Verity Sense: PMD control point + delta-compressed ACC and GYRO frames.

Protocol: sensors/devices/polar_verity.py and ble-imu-devices.md §4. Behaviour modelled:
- GATT: HR (0x180D/0x2A37), battery (0x180F/0x2A19 read+notify), PMD CP (read, write, indicate)
  and PMD data (notify). Reading CP gives the feature bitmap `0F <bits>` (ACC, PPG, PPI, GYRO,
  MAG, SDK mode), not the last response (polar-ble-sdk#360).
- CP requests answered with indications `F0 <op> <type> <status> <more> [params]`:
  START ACC/GYRO validates rate (52 Hz only outside SDK mode; 26–416 Hz in SDK mode), resolution
  (16), range (2/4/8/16 g, 250/500/1000/2000 °/s) → INVALID_SAMPLE_RATE/RESOLUTION/RANGE;
  ALREADY_IN_STATE when the stream runs; INVALID_MTU below `min_mtu` (polar-ble-sdk#295; the
  threshold is an assumption); the success response carries FACTOR (setting 5, float32):
  range/32768 g or °/s per LSB (the real factor is not documented: an assumption that only has
  to agree with this simulator). STOP of a stream that is not running answers ALREADY_IN_STATE
  (LOW: the real status is not documented). Unsupported types → NOT_SUPPORTED, unknown op codes
  → INVALID_OP_CODE, short requests → INVALID_LENGTH.
- Data: compressed type 0 (0x80) frames; timestamp = device ns since 2000 of the LAST sample;
  reference sample + blocks of ≤ `block_len` deltas, each block with its own bit width. ACC and
  GYRO are framed independently (`acc_frame_s`, `gyro_frame_s`), so they arrive at different
  times, and frames are shortened to fit `mtu - 3` bytes.
"""

from __future__ import annotations

import struct

import numpy as np

from sensors.devices import polar_verity as pv
from sensors.devices.base import Advertisement
from sensors.devices.codec import DEG, G
from sensors.devices.peripherals.base import (
    ATT_INVALID_ATTRIBUTE_LENGTH,
    CharSpec,
    DeviceClock,
    GattError,
    Notification,
    PeripheralBase,
    ServiceSpec,
)
from sensors.samples import SampleBatch

SDK_RATES = (26, 52, 104, 208, 416)
DEFAULT_RATES = (52,)
RANGES = {pv.TYPE_ACC: (2, 4, 8, 16), pv.TYPE_GYRO: (250, 500, 1000, 2000)}
FEATURES = bytes((pv.FEATURES, 0b0110_1110, 0b0000_0010))  # PPG, ACC, PPI, GYRO, MAG; SDK (9)
SECONDS_2000_TO_2025 = 788_918_400.0  # a plausible "ns since 2000" clock origin (2025-01-01)

# status codes
OK, INVALID_OP, NOT_SUPPORTED, INVALID_LENGTH, INVALID_PARAMETER, ALREADY = 0, 1, 3, 4, 5, 6
INVALID_RESOLUTION, INVALID_RATE, INVALID_RANGE, INVALID_MTU, INVALID_STATE = 7, 8, 9, 10, 12


def _bits_needed(values: np.ndarray) -> int:
    """Smallest signed two's-complement width holding every value (at least 1)."""
    lo, hi = int(values.min(initial=0)), int(values.max(initial=0))
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


def encode_delta_frame(raw: np.ndarray, block_len: int = 255) -> bytes:
    """(n, 3) int samples → reference + delta blocks, LSB-first bit packing (PMD spec p. 6)."""
    raw = np.asarray(raw, dtype=np.int64)
    out = bytearray(raw[0].astype("<i2").tobytes())
    deltas = np.diff(raw, axis=0)
    for start in range(0, len(deltas), block_len):
        block = deltas[start:start + block_len]
        width = _bits_needed(block)
        acc, pos = 0, 0
        for value in block.reshape(-1).tolist():
            acc |= (value & ((1 << width) - 1)) << pos
            pos += width
        out += bytes((width, len(block))) + acc.to_bytes((pos + 7) // 8, "little")
    return bytes(out)


def encode_data_frame(mtype: int, last_ns: int, raw: np.ndarray, block_len: int = 255) -> bytes:
    """`<type> <uint64 ns of last sample> 0x80 <delta-compressed samples>` (§4.3)."""
    return bytes((mtype,)) + struct.pack("<Q", last_ns) + b"\x80" + encode_delta_frame(raw, block_len)


class _Stream:
    def __init__(self, rate: int, range_: int, frame_s: float) -> None:
        self.rate = rate
        self.factor = float(np.float32(range_ / 32768.0))
        self.frame_n = max(1, int(round(rate * frame_s)))
        self.pending = np.zeros((0, 4))  # time_s, x, y, z (SI)


class PolarVerityPeripheral(PeripheralBase):
    family = "polar_verity"

    def __init__(
        self,
        name: str = "Polar Sense B5A3B12C",
        address: str = "A0:9E:1A:B5:A3:12",
        clock_offset_s: float = SECONDS_2000_TO_2025,
        drift_ppm: float = 0.0,
        battery_pct: int = 76,
        mtu: int = 232,
        min_mtu: int = 70,
        acc_frame_s: float = 0.25,
        gyro_frame_s: float = 0.3,
        gyro_time_offset_s: float = 0.0,
        block_len: int = 255,
        require_cccd: bool = False,
    ) -> None:
        super().__init__(name=name, address=address, require_cccd=require_cccd)
        self.clock = DeviceClock(clock_offset_s, drift_ppm)
        self.battery_pct = int(battery_pct)
        self.mtu, self.min_mtu = int(mtu), int(min_mtu)
        self.frame_s = {pv.TYPE_ACC: float(acc_frame_s), pv.TYPE_GYRO: float(gyro_frame_s)}
        self.gyro_time_offset_s = float(gyro_time_offset_s)
        self.block_len = int(block_len)
        self.sdk_mode = False
        self.streams: dict[int, _Stream] = {}

    @property
    def streaming(self) -> bool:
        return bool(self.streams)

    @property
    def rate_hz(self) -> float:
        return float(max((s.rate for s in self.streams.values()), default=0))

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, address=self.address, service_uuids=(pv.HR_SERVICE,))

    def gatt_table(self) -> tuple[ServiceSpec, ...]:
        c = CharSpec
        return (
            ServiceSpec(pv.HR_SERVICE, (c(pv.HR_MEASUREMENT, ("notify",)),)),
            ServiceSpec(pv.BATTERY_SERVICE, (c(pv.BATTERY_LEVEL, ("read", "notify")),)),
            ServiceSpec(pv.PMD_SERVICE, (
                c(pv.PMD_CP, ("read", "write", "indicate")),
                c(pv.PMD_DATA, ("notify",)),
            )),
        )

    def on_read(self, char_uuid: str) -> bytes:
        uuid = self._check(char_uuid, "read")
        if uuid == pv.PMD_CP:
            return FEATURES
        return bytes((self.battery_pct,))

    def set_battery(self, pct: int) -> list[Notification]:
        self.battery_pct = int(pct)
        return self._out([(pv.BATTERY_LEVEL, bytes((self.battery_pct,)))])

    def on_disconnect(self) -> None:
        super().on_disconnect()
        # Streams keep running on the device (that is why ALREADY_IN_STATE exists), but the
        # frames in flight are lost.
        for s in self.streams.values():
            s.pending = np.zeros((0, 4))

    # -- control point ----------------------------------------------------------------------------
    def on_write(self, char_uuid: str, data: bytes, response: bool = True) -> list[Notification]:
        uuid = self._check(char_uuid, "write")
        data = bytes(data)
        if uuid != pv.PMD_CP or not data:
            raise GattError(ATT_INVALID_ATTRIBUTE_LENGTH, "empty control-point write")
        op = data[0]
        mtype = data[1] if len(data) > 1 else 0
        status, params = self._handle(op, mtype, data)
        reply = bytes((pv.RESPONSE, op, mtype, status))
        if status == OK:
            reply += b"\x00" + params
        return self._out([(pv.PMD_CP, reply)])

    def _handle(self, op: int, mtype: int, data: bytes) -> tuple[int, bytes]:
        if op not in (pv.OP_GET_SETTINGS, pv.OP_START, pv.OP_STOP):
            return INVALID_OP, b""
        if len(data) < 2:
            return INVALID_LENGTH, b""
        if mtype & 0x80 or mtype not in (pv.TYPE_ACC, pv.TYPE_GYRO, pv.TYPE_SDK):
            return NOT_SUPPORTED, b""  # offline recording, PPG/PPI/MAG: not simulated
        if op == pv.OP_GET_SETTINGS:
            return OK, self._available(mtype)
        if op == pv.OP_STOP:
            return self._stop(mtype), b""
        return self._start(mtype, data[2:])

    def _available(self, mtype: int) -> bytes:
        if mtype == pv.TYPE_SDK:
            return b""
        rates = SDK_RATES if self.sdk_mode else DEFAULT_RATES
        out = bytearray((pv.SET_RATE, len(rates)))
        for r in rates:
            out += r.to_bytes(2, "little")
        out += bytes((pv.SET_RESOLUTION, 1)) + (16).to_bytes(2, "little")
        out += bytes((pv.SET_RANGE, len(RANGES[mtype]))) + b"".join(r.to_bytes(2, "little") for r in RANGES[mtype])
        return bytes(out)

    def _stop(self, mtype: int) -> int:
        if mtype == pv.TYPE_SDK:
            if not self.sdk_mode:
                return ALREADY
            self.sdk_mode = False
            self.streams.clear()
            return OK
        if mtype not in self.streams:
            return ALREADY
        del self.streams[mtype]
        return OK

    def _start(self, mtype: int, body: bytes) -> tuple[int, bytes]:
        if mtype == pv.TYPE_SDK:
            if self.sdk_mode:
                return ALREADY, b""
            if self.streams:
                return INVALID_STATE, b""
            self.sdk_mode = True
            return OK, b""
        if mtype in self.streams:
            return ALREADY, b""
        if self.mtu < self.min_mtu:
            return INVALID_MTU, b""
        settings = pv.parse_settings(body)
        if settings is None:
            return INVALID_LENGTH, b""
        if any(len(v) != 1 for v in settings.values()) or pv.SET_RATE not in settings:
            return INVALID_PARAMETER, b""
        rate = settings[pv.SET_RATE][0]
        resolution = settings.get(pv.SET_RESOLUTION, [16])[0]
        range_ = settings.get(pv.SET_RANGE, [RANGES[mtype][2] if mtype == pv.TYPE_ACC else 2000])[0]
        if rate not in (SDK_RATES if self.sdk_mode else DEFAULT_RATES):
            return INVALID_RATE, b""
        if resolution != 16:
            return INVALID_RESOLUTION, b""
        if range_ not in RANGES[mtype]:
            return INVALID_RANGE, b""
        stream = _Stream(rate, range_, self.frame_s[mtype])
        self.streams[mtype] = stream
        return OK, bytes((pv.SET_FACTOR, 1)) + struct.pack("<f", stream.factor)

    # -- data ---------------------------------------------------------------------------------------
    def notifications_for(self, batch: SampleBatch) -> list[Notification]:
        if len(batch) == 0 or not self.streams:
            return []
        frames: list[tuple[float, bytes]] = []  # (true time of the frame's last sample, frame)
        for mtype in (pv.TYPE_ACC, pv.TYPE_GYRO):
            stream = self.streams.get(mtype)
            if stream is None:
                continue
            if mtype == pv.TYPE_ACC:
                values, times = batch.acc / G, batch.time_s
            else:
                values, times = batch.gyr / DEG, batch.time_s + self.gyro_time_offset_s
            stream.pending = np.vstack((stream.pending, np.column_stack((times, values))))
            while len(stream.pending) >= stream.frame_n:
                frames.append(self._frame(mtype, stream))
        frames.sort(key=lambda f: f[0])  # each stream's frames leave when they fill up
        return self._out([(pv.PMD_DATA, frame) for _, frame in frames])

    def _frame(self, mtype: int, stream: _Stream) -> tuple[float, bytes]:
        n = stream.frame_n
        while True:
            chunk = stream.pending[:n]
            raw = np.clip(np.round(chunk[:, 1:] / stream.factor), -32768, 32767).astype(np.int64)
            last_ns = int(round(self.clock.at(chunk[-1, 0]) * 1e9))
            frame = encode_data_frame(mtype, last_ns, raw, self.block_len)
            if len(frame) <= self.mtu - 3 or n == 1:
                stream.pending = stream.pending[n:]
                return float(chunk[-1, 0]), frame
            n = max(1, n * 3 // 4)
