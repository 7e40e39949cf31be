"""Connection manager for the two sensors: roles, one adapter lock, supervision, health.

`BleManager` connects the `upper` and `lower` sensors one at a time (one asyncio.Lock around
scans and connects: BlueZ answers InProgress to concurrent connects), then lets them stream in
parallel. Each sensor has a supervisor (`SensorLink`) that survives link loss, adapter faults and
bluetoothd restarts; batches of both sensors come out of one queue on the host time base.

Reconnection is a small hand-written loop rather than bleak-retry-connector: we need an
indefinite supervisor that shares the scan/connect lock, marks gaps, re-runs the family's start
commands and reports status per attempt; bleak-retry-connector only retries the connect itself
(a bounded number of times, tuned for Home Assistant's adapter bookkeeping) and would still need
this loop around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sensors.ble.adapter import adapter_lock
from sensors.ble.link import Clock, LinkConfig, SensorLink, SensorSpec
from sensors.ble.scanner import FoundSensor, identify_with, scan
from sensors.ble.watch import BluezWatcher
from sensors.devices.base import DeviceFamily
from sensors.samples import SENSOR_ROLES, SampleBatch, SensorHealth, SensorRole

log = logging.getLogger(__name__)

HealthMap = dict[SensorRole, SensorHealth]


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    link: LinkConfig = field(default_factory=LinkConfig)
    silence_check_s: float = 0.2  # silence flagged at most this long after the threshold
    max_batches: int = 2000  # output queue bound; oldest batches dropped (and counted) beyond
    watch_bluez: bool = True


class BleManager:
    """Owns the BLE side of a session: `start()`, `batches()`, `health()`, `stop()`."""

    def __init__(
        self,
        sensors: Mapping[SensorRole, str | SensorSpec],
        rate_hz: float,
        *,
        config: ManagerConfig | None = None,
        families: Sequence[DeviceFamily] | None = None,
        clock: Clock = time.monotonic,
        seed: int | None = None,
    ) -> None:
        self.rate_hz = float(rate_hz)
        self.config = config or ManagerConfig()
        self._families = families
        self._clock = clock
        self._rng = random.Random(seed)
        self.specs: dict[SensorRole, SensorSpec] = {}
        for role, spec in sensors.items():
            if role not in SENSOR_ROLES:
                raise ValueError(f"unknown sensor role {role!r}")
            self.specs[role] = spec if isinstance(spec, SensorSpec) else SensorSpec(role, spec)
        self.links: dict[SensorRole, SensorLink] = {}
        self._out: asyncio.Queue[SampleBatch | None] | None = None
        self.dropped_batches = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._watcher: BluezWatcher | None = None
        self._changed = asyncio.Event()
        self._started = False
        self._stopped = False

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start supervising both sensors; returns at once (watch `health()` for progress)."""
        if self._started:
            return
        self._started = True
        self._out = asyncio.Queue()
        lock = adapter_lock()
        identify = identify_with(self._families) if self._families is not None else None
        if identify is None and any(s.family is None for s in self.specs.values()):
            identify = identify_with(None)
        for role, spec in self.specs.items():
            link = SensorLink(
                spec, self.rate_hz, self.config.link, lock, self._emit, self._notify,
                identify=identify, clock=self._clock, rng=random.Random(self._rng.random()),
            )
            self.links[role] = link
        if self.config.watch_bluez:
            self._watcher = BluezWatcher(self._bluez_changed)
            with contextlib.suppress(Exception):
                await self._watcher.start()
        for role, link in self.links.items():
            self._tasks.append(asyncio.create_task(link.run(), name=f"ble-link-{role}"))
        self._tasks.append(asyncio.create_task(self._silence_timer(), name="ble-silence"))

    async def stop(self) -> None:
        """Stop commands, stop_notify and disconnect for every sensor; ends `batches()`."""
        if self._stopped:
            return
        self._stopped = True
        for link in self.links.values():
            link.stop()
        runs = [t for t in self._tasks if t.get_name().startswith("ble-link-")]
        timeout = self.config.link.stop_timeout_s * 3 + 1
        if runs:
            _, pending = await asyncio.wait(runs, timeout=timeout)
            for task in pending:
                task.cancel()
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._watcher is not None:
            self._watcher.stop()
        if self._out is not None:
            self._out.put_nowait(None)
        self._notify()

    async def __aenter__(self) -> BleManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- data and status -------------------------------------------------------------------

    async def batches(self) -> AsyncIterator[SampleBatch]:
        """Batches of both sensors as they are decoded, until `stop()`."""
        if self._out is None:
            await self.start()
        assert self._out is not None
        while True:
            batch = await self._out.get()
            if batch is None:
                self._out.put_nowait(None)  # let other iterators end too
                return
            yield batch

    def health(self) -> HealthMap:
        out: HealthMap = {}
        for role, spec in self.specs.items():
            link = self.links.get(role)
            out[role] = (
                link.health() if link is not None
                else SensorHealth(sensor=role, address=spec.address, nominal_rate_hz=self.rate_hz)
            )
        return out

    async def wait_for(self, predicate: Callable[[HealthMap], bool], timeout_s: float = 10.0
                       ) -> HealthMap:
        """Wait until `predicate(health())` holds; re-checked on every status/data change."""
        async with asyncio.timeout(timeout_s):
            while True:
                health = self.health()
                if predicate(health):
                    return health
                event = self._changed
                await event.wait()

    async def scan(self, timeout_s: float = 5.0) -> list[FoundSensor]:
        """Scan through the same adapter lock as the connects."""
        return await scan(timeout_s, families=self._families)

    # ---- internals ---------------------------------------------------------------------------

    def _emit(self, batch: SampleBatch) -> None:
        assert self._out is not None
        if self._out.qsize() >= self.config.max_batches:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._out.get_nowait()
                self.dropped_batches += 1
        self._out.put_nowait(batch)

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _bluez_changed(self, present: bool) -> None:
        log.info("bluetoothd %s", "is back" if present else "left the bus")
        for link in self.links.values():
            if present:
                link.wake()
            else:
                link.bluez_vanished()

    async def _silence_timer(self) -> None:
        while True:
            await asyncio.sleep(self.config.silence_check_s)
            for link in self.links.values():
                link.check_silence()
