"""`BleSensorSource`: the two BLE sensors behind the `SensorSource` seam."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from sensors.ble.manager import BleManager, ManagerConfig
from sensors.ble.link import SensorSpec
from sensors.devices.base import DeviceFamily
from sensors.samples import SampleBatch, SensorHealth, SensorRole


class BleSensorSource:
    """Streams `upper` and `lower` over BLE; batches are on the host monotonic time base.

    The connection manager starts with the first `batches()` iteration (or `start()`), keeps
    reconnecting on its own, and marks data after an outage with `gap_before=True`.
    """

    def __init__(
        self,
        upper_address: str,
        lower_address: str,
        rate_hz: float = 100.0,
        *,
        upper_family: DeviceFamily | None = None,
        lower_family: DeviceFamily | None = None,
        families: Sequence[DeviceFamily] | None = None,
        config: ManagerConfig | None = None,
    ) -> None:
        self.manager = BleManager(
            {
                "upper": SensorSpec("upper", upper_address, upper_family),
                "lower": SensorSpec("lower", lower_address, lower_family),
            },
            rate_hz,
            config=config,
            families=families,
        )

    async def start(self) -> None:
        await self.manager.start()

    async def batches(self) -> AsyncIterator[SampleBatch]:
        await self.manager.start()
        async for batch in self.manager.batches():
            yield batch

    async def stop(self) -> None:
        await self.manager.stop()

    def health(self) -> dict[SensorRole, SensorHealth]:
        return self.manager.health()
