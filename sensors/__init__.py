"""Sensor transports and device protocols.

Everything upstream of this package sees the same thing whether the data come from a real BLE
sensor, the simulated patient, or a replayed recording: `SampleBatch` objects in SI units on one
host time base, delivered through the `SensorSource` protocol.
"""

from sensors.samples import SENSOR_ROLES, SampleBatch, SensorHealth
from sensors.source import SensorSource

__all__ = ["SENSOR_ROLES", "SampleBatch", "SensorHealth", "SensorSource"]
