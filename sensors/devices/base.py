"""What every device family module provides: one small protocol, so nothing above sensors/ knows
which brand is strapped on.

A family module holds its GATT UUIDs, advertisement matching, the command sequences that
configure/start/stop streaming, and a pure, stateful `StreamDecoder` from notification bytes to
samples in SI units. It imports nothing from bleak: the connection manager (sensors/ble/) is the
only place that talks to radios, and it drives these modules through `GattCommand`s.

How the connection manager uses a family (the whole contract):

1. `identify(adv)` (sensors/devices/__init__.py) picks the family from an advertisement.
2. After connect and service discovery: `family = family.for_gatt(discovered_char_uuids)` (lets a
   family pick between UUID generations, e.g. Movesense GSP v1 vs 0xFDF3, WitMotion …9a34fb vs
   …9b34fb), then `decoder = family.new_decoder(rate_hz)`.
3. Run `family.start_commands(rate_hz)` in order (see `GattCommand`), with every notification of
   `family.notify_uuids()` handed to `decoder.feed(char_uuid, data)`.
4. Run any `DecodeResult.commands` the decoder returns (e.g. Polar: STOP then START again after
   ERROR_ALREADY_IN_STATE), `battery_commands()` now and then, `stop_commands()` at the end.

Refinements over the first sketch (kept small on purpose):
- `GattCommand.then`: continuation for "read" (read-modify-write, Xsens device control), and
  "wait" with a `char_uuid` = wait for the next notification/indication on it (CP responses).
- `DecodeResult.commands` (follow-up commands), `DecodeResult.charging`.
- `StreamDecoder.error_counts` (errors counted per kind) and `rate_hz`.
- `DeviceFamily.for_gatt(char_uuids)`.
- `DecodeError` kinds are the stable labels in `ERROR_KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

# Stable labels of DecodeError.kind (used in counters, health pages and tests).
ERROR_KINDS: tuple[str, ...] = (
    "truncated",  # shorter than its layout needs
    "bad_header",  # framing byte/flag wrong, garbage skipped while resynchronising
    "unknown_type",  # a frame/record/measurement type this decoder does not handle
    "unknown_char",  # bytes from a characteristic this family does not use
    "bad_value",  # parsed but unusable: NaN/inf floats, impossible lengths or widths
    "duplicate",  # same device timestamp as the previous packet: dropped
    "out_of_order",  # device timestamp went (slightly) backwards: dropped
    "clock_reset",  # device timestamp jumped far back (reboot): samples kept, time restarts
    "incomplete_message",  # a multi-part message was cut short (lost DATA_PART2, orphan part)
    "command_rejected",  # the device answered a command with an error status
    "unsupported",  # the device says it cannot do what we need (feature bitmap)
    "unpaired",  # samples of one stream that had no partner in the other (Polar ACC/GYRO)
    "internal",  # a decoder bug caught by the never-raise guard; tests assert it never happens
)


@dataclass(frozen=True, slots=True)
class Advertisement:
    """The parts of a BLE advertisement that identify a device family."""

    name: str | None
    address: str
    service_uuids: tuple[str, ...] = ()
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    rssi: int | None = None


@dataclass(frozen=True, slots=True)
class GattCommand:
    """One GATT operation of a configure/start/stop sequence, executed in order.

    `kind`:
    - "write": write `data` to `char_uuid` (`response` = write-with-response).
    - "start_notify" / "stop_notify": on `char_uuid` (notify or indicate, whichever it has).
    - "read": read `char_uuid`. If `then` is set, call `then(value)` and run the commands it
      returns right after this one (read-modify-write); otherwise hand the value to the decoder as
      `decoder.feed(char_uuid, value)` (battery levels, feature bitmaps).
    - "wait": sleep `delay_s`; if `char_uuid` is set, stop waiting early when the next
      notification/indication on that characteristic has arrived (command responses). Treating it
      as a plain sleep is always correct, only slower.
    """

    kind: str
    char_uuid: str = ""
    data: bytes = b""
    response: bool = True
    delay_s: float = 0.0
    then: Callable[[bytes], list[GattCommand]] | None = field(default=None, compare=False)


@dataclass(slots=True)
class DeviceSamples:
    """Decoded samples of one sensor in SI units in the sensor's own frame.

    `device_time_s` is the device's own clock where the packet carries one (None where it does
    not, e.g. WitMotion), unwrapped but otherwise as the device said it; `counter` a packet/sample
    counter where there is one.
    """

    acc: np.ndarray  # (N, 3) m/s^2
    gyr: np.ndarray  # (N, 3) rad/s
    mag: np.ndarray | None = None  # (N, 3) µT
    device_time_s: np.ndarray | None = None  # (N,)
    counter: np.ndarray | None = None  # (N,)

    def __len__(self) -> int:
        return int(self.acc.shape[0])


class DecodeError(Exception):
    """A notification that could not be (fully) decoded; `kind` is one of `ERROR_KINDS`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __repr__(self) -> str:
        return f"DecodeError({self.kind!r}, {str(self)!r})"


@dataclass(slots=True)
class DecodeResult:
    samples: list[DeviceSamples] = field(default_factory=list)
    errors: list[DecodeError] = field(default_factory=list)
    battery_pct: float | None = None
    charging: bool | None = None
    # Commands the connection manager should run next (e.g. STOP + START after the device said
    # the stream was already running). Never more than a handful; families cap their retries.
    commands: list[GattCommand] = field(default_factory=list)


class StreamDecoder(Protocol):
    """Stateful decoder for one connected sensor (reassembly buffers, delta state, clock unwrap).

    `feed` never raises: anything it cannot use comes back as a typed `DecodeError` in the result,
    and is counted in `error_counts` (kind -> count since the decoder was made). Duplicate or
    out-of-order device timestamps are dropped with an error, never emitted twice.
    """

    rate_hz: float

    @property
    def error_counts(self) -> Mapping[str, int]: ...

    def feed(self, char_uuid: str, data: bytes) -> DecodeResult: ...


class DeviceFamily(Protocol):
    """One supported sensor family (WitMotion, Movesense, Xsens DOT, Polar Verity Sense, ...)."""

    family: str  # short stable id, e.g. "witmotion"
    display_name: str
    supported_rates_hz: tuple[float, ...]

    def matches(self, adv: Advertisement) -> bool: ...

    def for_gatt(self, char_uuids: Collection[str]) -> DeviceFamily: ...

    def notify_uuids(self) -> tuple[str, ...]: ...

    def start_commands(self, rate_hz: float) -> list[GattCommand]: ...

    def stop_commands(self) -> list[GattCommand]: ...

    def battery_commands(self) -> list[GattCommand]: ...

    def new_decoder(self, rate_hz: float) -> StreamDecoder: ...
