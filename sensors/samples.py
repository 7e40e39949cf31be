"""The one sample type that crosses from sensors/ into the rest of Lumbo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

SensorRole = Literal["upper", "lower"]
SENSOR_ROLES: tuple[SensorRole, ...] = ("upper", "lower")


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """Consecutive samples of one sensor, in SI units and in the sensor's own frame.

    `time_s` is the host monotonic time base shared by both sensors (seconds); sources map each
    sensor's own clock onto it. `device_time_s` and `counter` keep what the device itself said,
    where it says anything, so that loss and drift stay visible downstream and in exports.
    `gap_before` is True when samples are known to be missing just before this batch (link drop,
    counter jump): consumers must not interpolate across it.
    """

    sensor: SensorRole
    time_s: np.ndarray  # (N,) float64, seconds, host time base
    acc: np.ndarray  # (N, 3) float64, m/s^2, specific force (+9.81 along "up" at rest)
    gyr: np.ndarray  # (N, 3) float64, rad/s
    mag: np.ndarray | None = None  # (N, 3) float64, µT
    device_time_s: np.ndarray | None = None  # (N,) the sensor's own clock, seconds
    counter: np.ndarray | None = None  # (N,) int64 packet/sample counter where the device has one
    gap_before: bool = False

    def __post_init__(self) -> None:
        n = self.time_s.shape[0]
        if self.time_s.ndim != 1:
            raise ValueError("time_s must be one-dimensional")
        for name in ("acc", "gyr", "mag"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n, 3):
                raise ValueError(f"{name} must have shape ({n}, 3), got {arr.shape}")
        for name in ("device_time_s", "counter"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")

    def __len__(self) -> int:
        return int(self.time_s.shape[0])


@dataclass(slots=True)
class SensorHealth:
    """What the display shows per sensor: is it there, how fast, how much is lost."""

    sensor: SensorRole
    connected: bool = False
    device_name: str = ""
    address: str = ""
    rate_hz: float = 0.0  # measured over the last few seconds
    nominal_rate_hz: float = 0.0
    loss_pct: float = 0.0  # samples missing over the session, percent
    battery_pct: float | None = None
    last_seen_s: float | None = None  # host time of the latest sample
    silent: bool = False  # no data for longer than the silence threshold
    status: str = "idle"  # idle | connecting | streaming | reconnecting | failed | stopped
    message: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "sensor": self.sensor,
            "connected": self.connected,
            "device_name": self.device_name,
            "address": self.address,
            "rate_hz": round(self.rate_hz, 2),
            "nominal_rate_hz": self.nominal_rate_hz,
            "loss_pct": round(self.loss_pct, 3),
            "battery_pct": self.battery_pct,
            "last_seen_s": self.last_seen_s,
            "silent": self.silent,
            "status": self.status,
            "message": self.message,
        }
