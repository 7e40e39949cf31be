"""One sensor's life over BLE: find, connect, configure, stream, supervise, reconnect, stop.

The notification callback only appends (char, bytes, host arrival time) to a queue; decoding,
time mapping and batching happen in a consumer task (ble-imu-devices.md §9.1: keep callbacks
cheap). A supervisor loop reacts to `disconnected_callback` (bleak never reconnects by itself),
reconnects with capped, jittered exponential backoff, re-subscribes and re-sends the start
commands, and marks the first batch after the outage with `gap_before=True`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sensors.ble.backoff import Backoff
from sensors.ble.errors import Fault, LinkLost, SensorNotFound, UnknownFamily, classify
from sensors.ble.health import LinkStats, RateMeter, SilenceDetector, loss_pct
from sensors.ble.scanner import Identify, find_sensor
from sensors.ble.session import Session
from sensors.devices.base import DecodeResult, DeviceFamily, DeviceSamples
from sensors.samples import SampleBatch, SensorHealth, SensorRole
from sensors.timebase import SensorTimebase, TimebaseParams

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """Which sensor plays which role; `family` None means: identify it from its advertisement."""

    role: SensorRole
    address: str
    family: DeviceFamily | None = None


@dataclass(frozen=True, slots=True)
class LinkConfig:
    silence_s: float = 1.0  # no notification for longer than this while streaming: silent
    rate_window_s: float = 2.0
    scan_timeout_s: float = 5.0
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 5.0
    stop_timeout_s: float = 5.0
    battery_interval_s: float = 60.0
    stall_reconnect_s: float | None = 8.0  # silent this long while connected: reconnect
    queue_max: int = 50_000
    backoff: Backoff = field(default_factory=Backoff)
    # Instrumentation (bench/ble.py): called in the notification callback with the role, the
    # bytes and the host arrival time the samples will be mapped from. Keep it cheap.
    notify_probe: Callable[[SensorRole, bytes, float], None] | None = None


class _Stopping(Exception):
    pass


def _batch(role: SensorRole, parts: list[tuple[np.ndarray, DeviceSamples]], gap: bool
           ) -> SampleBatch:
    samples = [s for _, s in parts]

    def cat(name: str) -> np.ndarray | None:
        arrays = [getattr(s, name) for s in samples]
        if any(a is None for a in arrays):
            return None
        return np.concatenate(arrays)

    counter = cat("counter")
    return SampleBatch(
        sensor=role,
        time_s=np.concatenate([t for t, _ in parts]).astype(np.float64),
        acc=np.concatenate([s.acc for s in samples]).astype(np.float64),
        gyr=np.concatenate([s.gyr for s in samples]).astype(np.float64),
        mag=None if (m := cat("mag")) is None else m.astype(np.float64),
        device_time_s=None if (d := cat("device_time_s")) is None else d.astype(np.float64),
        counter=None if counter is None else counter.astype(np.int64),
        gap_before=gap,
    )


class SensorLink:
    """Supervises one sensor; `run()` lives until `stop()`, whatever the radio does."""

    def __init__(
        self,
        spec: SensorSpec,
        rate_hz: float,
        config: LinkConfig,
        lock: asyncio.Lock,
        emit: Callable[[SampleBatch], None],
        on_change: Callable[[], None],
        identify: Identify | None = None,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.spec = spec
        self.requested_rate_hz = float(rate_hz)
        self.rate_hz = float(rate_hz)  # what the sensor was configured to (see use_rate)
        self.config = config
        self._lock = lock
        self._emit = emit
        self._on_change = on_change
        self._identify = identify
        self._clock = clock
        self._rng = rng or random.Random()
        self.family: DeviceFamily | None = spec.family
        self.stats = LinkStats()
        self.rate = RateMeter(config.rate_window_s)
        self.silence = SilenceDetector(config.silence_s)
        self.timebase = SensorTimebase(TimebaseParams(nominal_rate_hz=self.rate_hz))
        self.last_fault: Fault | None = None
        self.retry_delays_s: list[float] = []
        self._health = SensorHealth(sensor=spec.role, address=spec.address,
                                    nominal_rate_hz=self.rate_hz)
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self.history: deque[tuple[float, str, str]] = deque(maxlen=64)  # (t, status, message)
        self._session: Session | None = None
        self._gap_pending = False
        self._streamed = False

    # ---- public ------------------------------------------------------------------------------

    def health(self) -> SensorHealth:
        now = self._clock()
        h = replace(self._health, extra=dict(self._health.extra))
        h.rate_hz = self.rate.rate_hz(now) if h.status == "streaming" else 0.0
        h.loss_pct = loss_pct(self.stats)
        h.silent = self.silence.silent
        errors = sum(self.stats.decode_errors.values())
        h.extra.update({
            "family": self.family.family if self.family is not None else "",
            "decode_errors": str(errors),
            "link_losses": str(self.stats.link_losses),
            "received": str(self.stats.received),
        })
        return h

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._session is not None:
            self._session.closing.set()

    def wake(self) -> None:
        """Retry now (bluetoothd came back, adapter powered on) instead of after the backoff."""
        self._wake.set()

    def bluez_vanished(self) -> None:
        """bluetoothd left the bus: bleak will not notice, so treat it as a link loss."""
        if self._session is not None:
            self._session.lost("bluetoothd stopped")

    def check_silence(self) -> None:
        """Called on a timer: a silent sensor produces no arrivals that could flag it."""
        now = self._clock()
        if self.silence.check(now):
            self._health.message = f"no data for more than {self.config.silence_s:g} s"
            self._on_change()
        since = self.silence.silent_since_s
        stall = self.config.stall_reconnect_s
        if (since is not None and stall is not None and self._session is not None
                and now - since > stall - self.config.silence_s):
            # Connected but mute for long: a zombie link (or a bluetoothd we cannot watch).
            self._session.lost(f"no data for {stall:g} s")

    # ---- supervisor --------------------------------------------------------------------------

    async def run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self._set(status="reconnecting" if self.stats.connects else "connecting",
                      connected=False)
            session: Session | None = None
            self._wake.clear()  # a wake-up during this attempt cuts the next backoff short
            try:
                session = await self._unless_stopped(self._open())
                attempt = 0
                self.last_fault = None
                await session.run_until_closed()
                if not self._stop.is_set():
                    raise LinkLost(session.lost_reason or "disconnected")
            except asyncio.CancelledError:
                raise
            except _Stopping:
                break
            except Exception as exc:  # every fault is reported and retried, never raised
                fault = classify(exc)
                self.last_fault = fault
                if fault.kind == "link_lost" and session is not None and session.streaming:
                    self.stats.link_losses += 1
                log.info("%s: %s", self.spec.role, fault.message)
                self._set(status="failed" if fault.needs_user else "reconnecting",
                          connected=False, message=fault.message)
            finally:
                if session is not None:
                    await session.close(graceful=self._stop.is_set())
                    self._session = None
                self.silence.disarm()
            if self._stop.is_set():
                break
            if self._streamed:
                self._gap_pending = True
            delay = self.config.backoff.delay_s(attempt, self._rng)
            self.retry_delays_s.append(delay)
            attempt += 1
            self._health.extra["retry_in_s"] = f"{delay:.2f}"
            self._on_change()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if self._wake.is_set() and not self._stop.is_set():
                attempt = 0
        self._set(status="stopped", connected=False)

    async def _unless_stopped(self, coro: Any) -> Session:
        """Run a scan/connect/configure attempt, abandoning it at once if `stop()` comes."""
        task = asyncio.ensure_future(coro)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise _Stopping
        return task.result()

    async def _open(self) -> Session:
        async with self._lock:  # one scan/connect at a time on the adapter
            if self._stop.is_set():
                raise _Stopping
            found = await find_sensor(self.spec.address, self.config.scan_timeout_s,
                                      self._identify)
            if found is None:
                raise SensorNotFound(f"{self.spec.address} did not advertise within "
                                     f"{self.config.scan_timeout_s:g} s")
            device, adv, identified = found
            family = self.spec.family or identified
            if family is None:
                raise UnknownFamily(f"{adv.name or '?'} ({self.spec.address}) is not a "
                                    "supported sensor")
            self._health.device_name = adv.name or self._health.device_name
            session = Session(self, family)
            self._session = session
            try:
                await session.connect(device)
            except BaseException:
                await session.close(graceful=False)
                self._session = None
                raise
        try:
            await session.start()
        except BaseException:
            # A connected sensor stops advertising: leave nothing half-configured behind.
            await session.close(graceful=False)
            self._session = None
            raise
        return session

    # ---- called by the session ---------------------------------------------------------------

    def _set(self, **fields: Any) -> None:
        for k, v in fields.items():
            setattr(self._health, k, v)
        entry = (self._health.status, self._health.message)
        if not self.history or self.history[-1][1:] != entry:
            self.history.append((self._clock(), *entry))
        self._on_change()

    def clock(self) -> float:
        return self._clock()

    def note(self, key: str, value: str) -> None:
        """Show something in the health record ("message", or an `extra` entry)."""
        if key == "message":
            self._health.message = value
        else:
            self._health.extra[key] = value
        self._on_change()

    def use_rate(self, rate_hz: float) -> None:
        """The family's nearest supported rate; the time base follows it."""
        if rate_hz != self.rate_hz:
            self.rate_hz = rate_hz
            self.timebase = SensorTimebase(TimebaseParams(nominal_rate_hz=rate_hz))
            self._health.nominal_rate_hz = rate_hz

    def on_streaming(self) -> None:
        self.stats.connects += 1
        now = self._clock()
        self.rate.start(now)
        self.silence.arm(now)
        self._health.extra.pop("retry_in_s", None)
        self._set(status="streaming", connected=True, message="")

    def on_arrival(self, now_s: float) -> None:
        if self.silence.arrival(now_s):
            self._health.message = ""
            self._on_change()

    def deliver(self, role: SensorRole, chunks: list[tuple[DeviceSamples, float]]) -> None:
        """Map decoded samples onto host time and emit batches (split at gaps)."""
        pending: list[tuple[np.ndarray, DeviceSamples]] = []
        gap = False

        def flush() -> None:
            nonlocal pending, gap
            if pending:
                self._emit(_batch(role, pending, gap))
            pending, gap = [], False

        for samples, arrival in chunks:
            n = len(samples)
            if n == 0:
                continue
            device_time = samples.device_time_s
            if device_time is None and samples.counter is not None:
                device_time = np.asarray(samples.counter, dtype=np.float64) / self.rate_hz
            mapped = self.timebase.map(arrival, device_time, n=n)
            self.stats.missing += mapped.missing
            if mapped.gap_before or self._gap_pending:
                # an outage always breaks continuity, even when the device clock cannot show it
                self._gap_pending = False
                self.stats.gaps += 1
                flush()
                gap = True
            pending.append((mapped.time_s, samples))
            self.stats.received += n
            self.rate.add(arrival, n)
            self._streamed = True
            self._health.last_seen_s = float(mapped.time_s[-1])
        flush()
        self._on_change()

    def on_result(self, result: DecodeResult) -> None:
        for err in result.errors:
            self.stats.decode_errors[err.kind] += 1
        if result.battery_pct is not None:
            self._health.battery_pct = float(result.battery_pct)
        if result.charging is not None:
            self._health.extra["charging"] = str(bool(result.charging)).lower()


