"""The sensor-source seam: the simulator, BLE sensors and replayed recordings all implement it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from sensors.samples import SampleBatch, SensorHealth, SensorRole


@runtime_checkable
class SensorSource(Protocol):
    """An async stream of timestamped sample batches from the two sensors.

    `batches()` yields batches of either sensor, each sensor's batches in time order, until the
    source ends or `stop()` is called. `health()` may be called at any time from the same event
    loop and must not block.
    """

    def batches(self) -> AsyncIterator[SampleBatch]: ...

    async def stop(self) -> None: ...

    def health(self) -> dict[SensorRole, SensorHealth]: ...
