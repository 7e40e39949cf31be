"""Movesense with the GATT SensorData Protocol (GSP): `/Meas/IMU6` or `/Meas/IMU9` streams.

Byte-level reference: /work/shared/docs/ble-imu-devices.md §2 (sources: movesense.com GSP spec
GD-77, `GATTSensorDataClient.cpp` and the official python_client, imu.yaml).

- GATT (§2.1): two generations. GSP v1 service 34802252-…, command 34800001-…, data 34800002-…
  (HIGH); newer firmware service 0xFDF3 with 6b200001-/6b200002-… (MED). `for_gatt` picks the one
  the device has; the decoder accepts both data characteristics.
- Commands (§2.2, HIGH): `00 <ref>` HELLO, `01 <ref> <path>` SUBSCRIBE, `02 <ref>` UNSUBSCRIBE,
  write-with-response; ref must not be 0.
- Notifications (§2.3): `01 <ref> …` COMMAND_RESULT (HELLO → ASCII "Hello"; errors as a
  big-endian HTTP status, e.g. 501 unsupported rate, 507 table full; a successful SUBSCRIBE may
  send nothing), `02 <ref> …` DATA, `03`/`04` DATA_PART2/PART3 continuations (header dropped,
  payload concatenated).
- IMU payload (HIGH): uint32 ms timestamp of the *first* sample, then sequential float32 arrays
  acc (m/s²), gyro (°/s → rad/s here), mag (µT, IMU9). N = (len − 4) / (12 × arrays) (MED: N at
  rates other than 104 Hz is inferred, so it is never hard-coded). t_i = ts + i·1000/fs ms.
- When a multi-part message is complete is an inference (§2.3): the decoder finishes a message
  when (a) its length equals the length learned from earlier messages of this stream, or (b) a
  part shorter than the longest part seen arrived (the firmware fills parts up to the MTU), or
  (c) the next DATA arrives. A message that then has an impossible length is reported as
  "incomplete_message" (a lost continuation) and dropped.
- Battery: not available through GSP v1 (§2.4), so `battery_commands()` is empty.
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
from sensors.devices.codec import DEG, DecoderBase, TickUnwrapper, all_finite, sig_uuid

V1_SERVICE = "34802252-7185-4d5d-b431-630e7050e8f0"
V1_COMMAND = "34800001-7185-4d5d-b431-630e7050e8f0"
V1_DATA = "34800002-7185-4d5d-b431-630e7050e8f0"
FDF3_SERVICE = sig_uuid(0xFDF3)
FDF3_COMMAND = "6b200001-ff4e-4979-8186-fb7ba486fcd7"
FDF3_DATA = "6b200002-ff4e-4979-8186-fb7ba486fcd7"
GENERATIONS: dict[str, tuple[str, str, str]] = {
    "v1": (V1_SERVICE, V1_COMMAND, V1_DATA),
    "fdf3": (FDF3_SERVICE, FDF3_COMMAND, FDF3_DATA),
}
DATA_UUIDS = (V1_DATA, FDF3_DATA)

CMD_HELLO, CMD_SUBSCRIBE, CMD_UNSUBSCRIBE = 0x00, 0x01, 0x02
RESP_COMMAND_RESULT, RESP_DATA, RESP_DATA_PART2, RESP_DATA_PART3 = 0x01, 0x02, 0x03, 0x04

STREAM_REF = 99  # the official python_client's reference; anything 1–255 works
HELLO_REF = 1
# §2.3: IMU rates (MED, third-party lists); the resource answers 501 for anything else.
IMU_RATES_HZ: tuple[int, ...] = (13, 26, 52, 104, 208, 416, 833, 1666)
HTTP_MEANING = {
    400: "bad request",
    404: "resource not found",
    501: "not implemented (unsupported sample rate or resource)",
    507: "subscription table full",
}
REORDER_MS = 2000  # a backward step larger than this is a device reboot, not reordering


def imu_path(rate_hz: float, with_mag: bool) -> str:
    return f"/Meas/{'IMU9' if with_mag else 'IMU6'}/{int(round(rate_hz))}"


def subscribe_command(ref: int, path: str) -> bytes:
    if not 1 <= ref <= 255:
        raise ValueError("GSP client reference must be 1..255 (0 is invalid)")
    return bytes((CMD_SUBSCRIBE, ref)) + path.encode("utf-8")


class MovesenseDecoder(DecoderBase):
    """Reassembles DATA (+PART2, +PART3) per client reference and decodes IMU6/IMU9 arrays."""

    def __init__(self, rate_hz: float, with_mag: bool = False, ref: int = STREAM_REF) -> None:
        super().__init__(rate_hz)
        self._arrays = 3 if with_mag else 2
        self._ref = ref
        self._pending: bytearray | None = None
        self._parts = 0
        self._longest_part = 0
        self._msg_len: int | None = None
        self._candidate: tuple[int, int] | None = None  # (other valid length, times seen)
        self._ticks = TickUnwrapper(bits=32, reorder_ticks=REORDER_MS)
        self.hello_seen = False

    def _feed(self, result: DecodeResult, char_uuid: str, data: bytes) -> None:
        if char_uuid not in DATA_UUIDS:
            self._error(result, "unknown_char", f"GSP sends nothing on {char_uuid}")
            return
        if len(data) < 2:
            self._error(result, "truncated", f"{len(data)}-byte GSP notification")
            return
        kind, ref = data[0], data[1]
        if kind == RESP_COMMAND_RESULT:
            self._command_result(result, ref, data[2:])
            return
        if kind not in (RESP_DATA, RESP_DATA_PART2, RESP_DATA_PART3):
            self._error(result, "unknown_type", f"GSP response type {kind}")
            return
        if ref != self._ref:
            self._error(result, "bad_header", f"data for reference {ref}, subscribed as {self._ref}")
            return
        if kind == RESP_DATA:
            if self._pending is not None:
                self._finish(result, flushed=True)
            self._pending = bytearray(data[2:])
            self._parts = 1
        else:
            # PART2 (3) must follow DATA, PART3 (4) must follow PART2.
            if self._pending is None or kind != RESP_DATA + self._parts:
                self._error(result, "incomplete_message", f"GSP part type {kind} without its predecessor")
                self._pending = None
                return
            self._pending += data[2:]
            self._parts += 1
        short_part = len(data) < self._longest_part
        self._longest_part = max(self._longest_part, len(data))
        if self._msg_len is not None:
            if len(self._pending) >= self._msg_len:
                self._finish(result, flushed=False)
        elif short_part or self._parts == 3:
            self._finish(result, flushed=False)

    def _command_result(self, result: DecodeResult, ref: int, body: bytes) -> None:
        if body == b"Hello":
            self.hello_seen = True
            return
        if len(body) < 2:
            self._error(result, "truncated", "GSP command result without a status")
            return
        status = int.from_bytes(body[:2], "big")  # big-endian in the v1 source (01 FB = 507)
        if not 200 <= status < 300:
            meaning = HTTP_MEANING.get(status, "error")
            self._error(result, "command_rejected", f"Movesense ref {ref}: {status} {meaning}")

    def _finish(self, result: DecodeResult, flushed: bool) -> None:
        payload, self._pending, self._parts = bytes(self._pending or b""), None, 0
        block = 12 * self._arrays
        n_bytes = len(payload)
        valid = n_bytes > 4 and (n_bytes - 4) % block == 0
        if self._msg_len is not None and n_bytes != self._msg_len:
            if valid and flushed:
                self._relearn(n_bytes)
            if n_bytes != self._msg_len:
                self._error(result, "incomplete_message", f"GSP message of {n_bytes} bytes, expected {self._msg_len}")
                return
        if not valid:
            self._error(result, "incomplete_message", f"GSP message of {n_bytes} bytes is no whole IMU packet")
            return
        if self._msg_len is None:
            self._msg_len = n_bytes
        self._decode(result, payload)

    def _relearn(self, n_bytes: int) -> None:
        """Adopt a new message length after it was seen complete three times in a row."""
        seen = self._candidate[1] + 1 if self._candidate and self._candidate[0] == n_bytes else 1
        self._candidate = (n_bytes, seen)
        if seen >= 3:
            self._msg_len, self._candidate = n_bytes, None

    def _decode(self, result: DecodeResult, payload: bytes) -> None:
        n = (len(payload) - 4) // (12 * self._arrays)
        raw_ts = int.from_bytes(payload[:4], "little")
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf are reported just below
            arrays = np.frombuffer(payload, dtype="<f4", offset=4).astype(np.float64)
            arrays = arrays.reshape(self._arrays, n, 3)
            acc, gyr = arrays[0], arrays[1] * DEG
        mag = arrays[2] if self._arrays == 3 else None
        if not all_finite(acc, gyr, mag):
            self._error(result, "bad_value", "non-finite IMU value")
            return
        status, ticks = self._ticks.peek(raw_ts)
        if status in ("duplicate", "out_of_order"):
            self._error(result, status, f"GSP timestamp {raw_ts} ms after {self._ticks.last} ms")
            return
        if status == "reset":
            self._clock_reset(result, f"GSP timestamp fell back to {raw_ts} ms (reboot)")
        self._ticks.accept(raw_ts, ticks)
        t = ticks / 1000.0 + np.arange(n) / self.rate_hz
        self._emit(result, DeviceSamples(acc=acc, gyr=gyr, mag=mag, device_time_s=t))


class MovesenseFamily:
    """Movesense sensors running a firmware with the GSP module (`gatt_sensordata_app`)."""

    family = "movesense"
    display_name = "Movesense (GSP)"
    supported_rates_hz: tuple[float, ...] = (13.0, 26.0, 52.0, 104.0, 208.0)

    def __init__(self, generation: str = "v1", with_mag: bool = False, ref: int = STREAM_REF) -> None:
        if generation not in GENERATIONS:
            raise ValueError(f"unknown GSP generation {generation!r}")
        self.generation = generation
        self.with_mag = with_mag
        self.ref = ref
        self.service_uuid, self.command_uuid, self.data_uuid = GENERATIONS[generation]

    def matches(self, adv: Advertisement) -> bool:
        if adv.name and adv.name.startswith("Movesense"):
            return True
        advertised = {u.lower() for u in adv.service_uuids}
        return bool(advertised & {V1_SERVICE, FDF3_SERVICE})

    def for_gatt(self, char_uuids: Collection[str]) -> DeviceFamily:
        found = {u.lower() for u in char_uuids}
        for generation, (_, command_uuid, data_uuid) in GENERATIONS.items():
            if command_uuid in found and data_uuid in found:
                return MovesenseFamily(generation, self.with_mag, self.ref)
        return self

    def notify_uuids(self) -> tuple[str, ...]:
        return (self.data_uuid,)

    def start_commands(self, rate_hz: float) -> list[GattCommand]:
        if float(rate_hz) not in self.supported_rates_hz:
            raise ValueError(f"Movesense IMU rate {rate_hz} Hz not in {self.supported_rates_hz}")
        return [
            GattCommand("start_notify", self.data_uuid),
            GattCommand("write", self.command_uuid, bytes((CMD_HELLO, HELLO_REF))),
            GattCommand("wait", self.data_uuid, delay_s=0.5),
            GattCommand("write", self.command_uuid, subscribe_command(self.ref, imu_path(rate_hz, self.with_mag))),
        ]

    def stop_commands(self) -> list[GattCommand]:
        return [
            GattCommand("write", self.command_uuid, bytes((CMD_UNSUBSCRIBE, self.ref))),
            GattCommand("stop_notify", self.data_uuid),
        ]

    def battery_commands(self) -> list[GattCommand]:
        return []  # GSP v1 has no battery resource (§2.4)

    def new_decoder(self, rate_hz: float) -> MovesenseDecoder:
        return MovesenseDecoder(rate_hz, self.with_mag, self.ref)
