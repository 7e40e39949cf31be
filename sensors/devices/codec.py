"""Small helpers shared by the family decoders: units, UUIDs, error counting, timestamp unwrap.

Nothing here knows a device; each family module cites its own layout.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

import numpy as np

from sensors.devices.base import DecodeError, DecodeResult, DeviceSamples

G = 9.80665  # m/s^2 per g (standard gravity)
DEG = math.pi / 180.0  # rad per degree

SIG_BASE = "-0000-1000-8000-00805f9b34fb"


def sig_uuid(short: int) -> str:
    """Expand a 16-bit Bluetooth SIG UUID to the 128-bit string bleak reports."""
    return f"0000{short:04x}{SIG_BASE}"


def norm_uuid(uuid: str) -> str:
    """Lower-case 128-bit form; accepts 16-bit short forms ("2a19") too."""
    u = uuid.strip().lower()
    if len(u) == 4:
        return sig_uuid(int(u, 16))
    return u


class DecoderBase:
    """Error bookkeeping common to all decoders: every error is returned *and* counted.

    Subclasses implement `_feed`; `feed` wraps it so that nothing escapes (the protocol promises
    `feed` never raises). A caught exception is a decoder bug, reported as kind "internal".
    """

    def __init__(self, rate_hz: float) -> None:
        self.rate_hz = float(rate_hz)
        self._counts: Counter[str] = Counter()
        self._last_emitted: float | None = None  # device time of the last sample handed out

    @property
    def error_counts(self) -> Mapping[str, int]:
        return dict(self._counts)

    def feed(self, char_uuid: str, data: bytes) -> DecodeResult:
        result = DecodeResult()
        try:
            self._feed(result, norm_uuid(char_uuid), bytes(data))
        except Exception as exc:  # noqa: BLE001 - the never-raise guard
            result.samples.clear()
            self._error(result, "internal", f"decoder error: {exc!r}")
        return result

    def _feed(self, result: DecodeResult, char_uuid: str, data: bytes) -> None:
        raise NotImplementedError

    def _error(self, result: DecodeResult, kind: str, message: str) -> None:
        self._counts[kind] += 1
        result.errors.append(DecodeError(kind, message))

    def _clock_reset(self, result: DecodeResult, message: str) -> None:
        self._error(result, "clock_reset", message)
        self._last_emitted = None

    def _emit(self, result: DecodeResult, samples: DeviceSamples) -> None:
        """Hand out samples, never one whose device time is not after the last one handed out.

        Packet-level checks catch repeated packets; this catches overlap between packets (e.g. a
        corrupted timestamp that moved a packet into its predecessor's time span).
        """
        t = samples.device_time_s
        if t is not None and self._last_emitted is not None and t[0] <= self._last_emitted:
            keep = t > self._last_emitted
            self._error(result, "out_of_order", f"{int(np.count_nonzero(~keep))} samples overlap earlier ones")
            if not keep.any():
                return
            samples = DeviceSamples(
                acc=samples.acc[keep], gyr=samples.gyr[keep],
                mag=None if samples.mag is None else samples.mag[keep], device_time_s=t[keep],
                counter=None if samples.counter is None else samples.counter[keep],
            )
        if samples.device_time_s is not None:
            self._last_emitted = float(samples.device_time_s[-1])
        result.samples.append(samples)


def all_finite(*arrays: np.ndarray | None) -> bool:
    return all(a is None or bool(np.all(np.isfinite(a))) for a in arrays)


class TickUnwrapper:
    """Unwraps an N-bit device tick counter and classifies each new value.

    The step from the previous accepted value is taken modulo 2^bits as a signed number, so a
    wrap (…FFFF → 0000) is a small forward step. A step of 0 is a duplicate; a small backward
    step (≤ `reorder_ticks`) is out of order; a larger backward step is a clock reset (reboot):
    the value is accepted and the unwrapped clock restarts from the raw value, so the device time
    stays what the device said and the host time base (sensors/timebase.py) re-anchors.
    """

    def __init__(self, bits: int, reorder_ticks: int) -> None:
        self._mod = 1 << bits
        self._half = 1 << (bits - 1)
        self._reorder = reorder_ticks
        self._last_raw: int | None = None
        self._last: int = 0

    @property
    def last(self) -> int | None:
        return None if self._last_raw is None else self._last

    def peek(self, raw: int) -> tuple[str, int]:
        """(status, unwrapped) for `raw` without accepting it; status ok|duplicate|out_of_order|reset."""
        if self._last_raw is None:
            return "ok", raw
        step = ((raw - self._last_raw + self._half) % self._mod) - self._half
        if step > 0:
            return "ok", self._last + step
        if step == 0:
            return "duplicate", self._last
        if -step <= self._reorder:
            return "out_of_order", self._last + step
        return "reset", raw

    def accept(self, raw: int, unwrapped: int) -> None:
        self._last_raw = raw
        self._last = unwrapped
