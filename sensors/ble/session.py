"""One BLE connection of a sensor: client, decoder, notification queue, consumer, commands.

The notification callback only appends (char, bytes, host arrival time) to a queue and counts
arrivals; decoding and batching run in the consumer task (ble-imu-devices.md §9.1). Commands
(GattCommand sequences from the device family) are executed in order, every write awaited,
waits done with asyncio.sleep or on the next notification of a characteristic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from bleak import BleakClient
from bleak.exc import BleakDBusError, BleakError, BleakGATTProtocolError

from sensors.ble.errors import CommandRejected, LinkLost, UnsupportedRate, classify
from sensors.devices.base import DeviceFamily, DeviceSamples, GattCommand, StreamDecoder

if TYPE_CHECKING:
    from sensors.ble.link import SensorLink

_SENTINEL: Any = object()


def choose_rate(supported: tuple[float, ...], requested: float) -> float:
    """The requested rate if the family has it, else the next faster one (else the fastest):
    downstream works on timestamps, and a faster stream never starves a feature."""
    rates = sorted(float(r) for r in supported)
    if not rates or float(requested) in rates:
        return float(requested)
    faster = [r for r in rates if r >= requested]
    return faster[0] if faster else rates[-1]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BleakGATTProtocolError):
        return str(exc.args[-1])
    if isinstance(exc, BleakDBusError):
        return exc.dbus_error_details or exc.dbus_error
    return str(exc)


class Session:
    """One connection: client, decoder, notification queue and consumer, command runner."""

    def __init__(self, link: SensorLink, family: DeviceFamily) -> None:
        self.link = link
        self.family = family
        self.client: BleakClient | None = None
        self.decoder: StreamDecoder | None = None
        self.queue: asyncio.Queue[Any] = asyncio.Queue(link.config.queue_max)
        self.closing = asyncio.Event()
        self.lost_reason = ""
        self.streaming = False
        self.streaming_since = float("inf")  # host time the start sequence completed
        self.subscribed: set[str] = set()
        self._connected = False
        self._arrivals: defaultdict[str, int] = defaultdict(int)
        self._arrival_events: dict[str, asyncio.Event] = {}
        self._commands = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._consumer: asyncio.Task[None] | None = None

    # -- radio callbacks (cheap: no decoding here) --
    def _on_disconnect(self, _client: BleakClient) -> None:
        # bleak also calls this for the Connected=true/false blip of an aborted attempt it
        # retries by itself; only a disconnect after connect() returned ends the session.
        if self._connected:
            self.lost("link lost")

    def lost(self, reason: str) -> None:
        if not self.lost_reason:
            self.lost_reason = reason
        self.closing.set()

    def _on_notify(self, char: Any, data: bytearray) -> None:
        uuid = char.uuid
        raw, arrival = bytes(data), self.link.clock()
        try:
            self.queue.put_nowait((uuid, raw, arrival))
        except asyncio.QueueFull:
            self.link.stats.queue_overflow += 1
        probe = self.link.config.notify_probe
        if probe is not None:
            probe(self.link.spec.role, raw, arrival)
        self._arrivals[uuid] += 1
        event = self._arrival_events.get(uuid)
        if event is not None:
            event.set()

    # -- lifecycle --
    async def connect(self, device: Any) -> None:
        self.client = BleakClient(device, disconnected_callback=self._on_disconnect,
                                  timeout=self.link.config.connect_timeout_s)
        await self.client.connect()
        self._connected = True
        if not self.client.is_connected:
            raise LinkLost("disconnected during connect")

    async def start(self) -> None:
        assert self.client is not None
        uuids = [c.uuid for s in self.client.services for c in s.characteristics]
        for_gatt = getattr(self.family, "for_gatt", None)
        if callable(for_gatt):
            self.family = for_gatt(uuids)
        self.link.family = self.family
        rate = choose_rate(tuple(self.family.supported_rates_hz), self.link.requested_rate_hz)
        try:
            start = self.family.start_commands(rate)
        except ValueError as exc:
            raise UnsupportedRate(str(exc)) from exc
        self.link.use_rate(rate)
        self.decoder = self.family.new_decoder(rate)
        self._consumer = asyncio.create_task(self._consume())
        await self.run_commands(start, start=True)
        if self.closing.is_set():
            raise LinkLost(self.lost_reason or "disconnected")
        self.streaming_since = self.link.clock()
        self.streaming = True
        self.link.on_streaming()
        self._spawn(self._battery_loop())

    async def run_until_closed(self) -> None:
        await self.closing.wait()

    async def close(self, graceful: bool) -> None:
        """Stop streaming (graceful: stop commands, stop_notify), disconnect, drain, finish."""
        self.closing.set()
        for task in list(self._tasks):
            task.cancel()
        client = self.client
        timeout = self.link.config.stop_timeout_s
        if client is not None and client.is_connected and graceful:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await self.run_commands(self.family.stop_commands())
            for uuid in list(self.subscribed):
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(timeout):
                        await client.stop_notify(uuid)
                self.subscribed.discard(uuid)
        if client is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await client.disconnect()
        self._connected = False
        if self._consumer is not None:
            await self.queue.put(_SENTINEL)
            with contextlib.suppress(Exception):
                await self._consumer

    # -- consumer --
    async def _consume(self) -> None:
        link = self.link
        while True:
            items = [await self.queue.get()]
            while not self.queue.empty():
                items.append(self.queue.get_nowait())
            done = any(item is _SENTINEL for item in items)
            chunks: list[tuple[DeviceSamples, float]] = []
            last_arrival = None
            for item in items:
                if item is _SENTINEL:
                    continue
                uuid, data, arrival = item
                last_arrival = arrival
                link.stats.notifications += 1
                assert self.decoder is not None
                result = self.decoder.feed(uuid, data)
                link.on_result(result)
                if self.streaming and arrival >= self.streaming_since:
                    chunks.extend((s, arrival) for s in result.samples)
                # else: samples before the start sequence completed are dropped. A WitMotion
                # streams from connection on at its saved rate (10 Hz) until the rate command
                # lands; mapped at the configured rate they would read as lost samples and a gap.
                if result.commands:
                    self._spawn(self.run_commands(result.commands))
            if last_arrival is not None:
                link.on_arrival(last_arrival)
            if chunks:
                link.deliver(link.spec.role, chunks)
            if done:
                return

    # -- commands --
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # follow-up/battery failures: report, end the session
            self.link.note("message", classify(exc).message)
            self.lost(f"command failed: {exc}")

    async def _battery_loop(self) -> None:
        """Battery now and then; a sensor that will not tell is no reason to drop the stream."""
        cmds = self.family.battery_commands()
        if not cmds:
            return
        while not self.closing.is_set():
            try:
                await self.run_commands(cmds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.closing.is_set():
                    return
                self.link.note("battery_error", classify(exc).message)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.closing.wait(), self.link.config.battery_interval_s)

    async def _subscribe(self, uuid: str) -> None:
        assert self.client is not None
        if uuid.lower() in self.subscribed:
            return
        await self.client.start_notify(uuid, self._on_notify)
        self.subscribed.add(uuid.lower())

    async def run_commands(self, commands: list[GattCommand], *, start: bool = False) -> None:
        """Execute a GattCommand sequence in order; every write is awaited.

        For start sequences, every notify characteristic is subscribed before the first write
        (early notifications are lost otherwise: bleak#374; Xsens and Polar need it to answer).
        """
        async with self._commands:
            todo = list(commands)
            while todo:
                if self.closing.is_set() and start:
                    raise LinkLost(self.lost_reason or "disconnected")
                cmd = todo.pop(0)
                follow = await self._run_one(cmd, start)
                todo[0:0] = follow

    async def _run_one(self, cmd: GattCommand, start: bool) -> list[GattCommand]:
        client = self.client
        assert client is not None and self.decoder is not None
        uuid = cmd.char_uuid.lower()
        timeout = self.link.config.command_timeout_s
        try:
            async with asyncio.timeout(timeout + cmd.delay_s):
                if cmd.kind == "start_notify":
                    await self._subscribe(uuid)
                elif cmd.kind == "stop_notify":
                    if uuid in self.subscribed:
                        await client.stop_notify(uuid)
                        self.subscribed.discard(uuid)
                elif cmd.kind == "write":
                    if start:
                        for n_uuid in self.family.notify_uuids():
                            await self._subscribe(n_uuid)
                    self._baseline = dict(self._arrivals)
                    await client.write_gatt_char(uuid, cmd.data, response=cmd.response)
                elif cmd.kind == "read":
                    value = bytes(await client.read_gatt_char(uuid))
                    if cmd.then is not None:
                        return list(cmd.then(value))
                    self.link.on_result(self.decoder.feed(uuid, value))
                elif cmd.kind == "wait":
                    await self._wait(uuid, cmd.delay_s)
                else:
                    raise ValueError(f"unknown GattCommand kind {cmd.kind!r}")
        except (BleakGATTProtocolError, BleakDBusError, BleakError) as exc:
            if self.closing.is_set() or (self.client is not None and not self.client.is_connected):
                raise LinkLost(str(exc)) from exc
            raise CommandRejected(f"{cmd.kind} {uuid[:8]} {cmd.data.hex()}: {_describe(exc)}"
                                  ) from exc
        return []

    async def _wait(self, uuid: str, delay_s: float) -> None:
        """Plain sleep, or until the next notification on `uuid` since the last write."""
        if not uuid:
            await asyncio.sleep(delay_s)
            return
        baseline = getattr(self, "_baseline", {}).get(uuid, 0)
        event = self._arrival_events.setdefault(uuid, asyncio.Event())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay_s
        while self._arrivals[uuid] <= baseline:
            event.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
