"""The BLE transport: the only package that imports bleak.

- `scanner.scan(timeout_s)`: nearby supported sensors (`FoundSensor`).
- `manager.BleManager`: connects `upper`/`lower`, supervises, reconnects, reports health.
- `source.BleSensorSource`: the same behind the `SensorSource` seam.
Device protocols live in sensors/devices (pure, no bleak); this package drives them.
"""

from sensors.ble.link import LinkConfig, SensorSpec
from sensors.ble.manager import BleManager, ManagerConfig
from sensors.ble.scanner import FoundSensor, scan
from sensors.ble.source import BleSensorSource

__all__ = ["BleManager", "BleSensorSource", "FoundSensor", "LinkConfig", "ManagerConfig",
           "SensorSpec", "scan"]
