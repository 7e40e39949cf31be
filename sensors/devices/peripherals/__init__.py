"""Simulated peripherals that speak each family's protocol byte for byte (transport-free).

For the fake BlueZ: build one with `PERIPHERALS[family](**json_kwargs)` or by import spec, e.g.
"sensors.devices.peripherals.movesense:MovesensePeripheral". See `base.py` for the interface.
"""

from __future__ import annotations

from sensors.devices.peripherals.base import (
    CharSpec,
    DeviceClock,
    GattError,
    Notification,
    PeripheralBase,
    ServiceSpec,
)
from sensors.devices.peripherals.movesense import MovesensePeripheral
from sensors.devices.peripherals.polar_verity import PolarVerityPeripheral
from sensors.devices.peripherals.witmotion import WitMotionPeripheral
from sensors.devices.peripherals.xsens_dot import XsensDotPeripheral

PERIPHERALS: dict[str, type[PeripheralBase]] = {
    "witmotion": WitMotionPeripheral,
    "movesense": MovesensePeripheral,
    "xsens_dot": XsensDotPeripheral,
    "polar_verity": PolarVerityPeripheral,
}

__all__ = [
    "PERIPHERALS",
    "CharSpec",
    "DeviceClock",
    "GattError",
    "MovesensePeripheral",
    "Notification",
    "PeripheralBase",
    "PolarVerityPeripheral",
    "ServiceSpec",
    "WitMotionPeripheral",
    "XsensDotPeripheral",
]
