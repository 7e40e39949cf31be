"""Parent-side handle on the fake bluetoothd subprocess: start it, send commands, await events.

Used by the tests and by `lumbo demo --ble`. Waiting on events the fake reports (connected,
write, start_notify, ...) lets tests synchronise on what happened instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sensors.simbluez.bus import PrivateBus

REPO_ROOT = Path(__file__).resolve().parents[2]

EventPredicate = Callable[[dict[str, Any]], bool]


class SimBluezError(RuntimeError):
    """The fake answered a control command with an error."""


class SimBluez:
    """A running `python -m sensors.simbluez` process on a (possibly own) private bus."""

    def __init__(self, proc: asyncio.subprocess.Process, bus_address: str,
                 own_bus: PrivateBus | None) -> None:
        self.proc = proc
        self.bus_address = bus_address
        self._own_bus = own_bus
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._waiters: list[tuple[EventPredicate, asyncio.Future[dict[str, Any]]]] = []
        self._ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(
        cls,
        bus_address: str | None = None,
        *,
        extra_paths: Iterable[str | os.PathLike[str]] = (),
        connect_delay_s: float = 0.02,
        adv_interval_s: float = 0.1,
        tick_s: float = 0.02,
        timeout_s: float = 15.0,
        verbose: bool = False,
    ) -> SimBluez:
        """Start the fake (and a private dbus-daemon when no address is given)."""
        own_bus = None
        if bus_address is None:
            own_bus = PrivateBus()
            bus_address = own_bus.start()
        args = [sys.executable, "-m", "sensors.simbluez", "--bus", bus_address,
                "--connect-delay", str(connect_delay_s), "--adv-interval", str(adv_interval_s),
                "--tick", str(tick_s)]
        for p in extra_paths:
            args += ["--path", str(p)]
        if verbose:
            args.append("-v")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        # Its own session: a Ctrl+C in the terminal reaches only the parent, which shuts the
        # service down first (sensors disconnected) and then the fake. The fake still ends with
        # its parent: EOF on its stdin.
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            cwd=str(REPO_ROOT), env=env, limit=1 << 24, start_new_session=True,
        )
        sim = cls(proc, bus_address, own_bus)
        try:
            await asyncio.wait_for(asyncio.shield(sim._ready), timeout_s)
        except BaseException:
            await sim.close()
            raise
        return sim

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                msg = json.loads(line)
                if "id" in msg:
                    fut = self._pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        if msg.get("ok"):
                            fut.set_result(msg.get("result"))
                        else:
                            fut.set_exception(SimBluezError(msg.get("error", "?")))
                    continue
                if msg.get("event") == "ready" and not self._ready.done():
                    self._ready.set_result(msg)
                self.events.append(msg)
                for pred, fut in list(self._waiters):
                    if not fut.done() and pred(msg):
                        fut.set_result(msg)
        finally:
            exc = SimBluezError("fake bluetoothd exited")
            for fut in [*self._pending.values(), *(f for _, f in self._waiters), self._ready]:
                if not fut.done():
                    fut.set_exception(exc)
            self._pending.clear()

    async def call(self, cmd: str, timeout_s: float = 15.0, **kwargs: Any) -> Any:
        """Send one command and return its result (raises `SimBluezError` on failure)."""
        assert self.proc.stdin is not None
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        line = json.dumps({"id": req_id, "cmd": cmd, **kwargs}) + "\n"
        self.proc.stdin.write(line.encode())
        await self.proc.stdin.drain()
        return await asyncio.wait_for(fut, timeout_s)

    def mark(self) -> int:
        """Position in the event log; pass as `after` to wait only for later events."""
        return len(self.events)

    async def wait_event(
        self, event: str | None = None, *, after: int = 0, timeout_s: float = 10.0,
        predicate: EventPredicate | None = None, **fields: Any,
    ) -> dict[str, Any]:
        """Wait for an event with the given name/fields (already logged after `after` counts)."""

        def match(msg: dict[str, Any]) -> bool:
            if event is not None and msg.get("event") != event:
                return False
            if any(msg.get(k) != v for k, v in fields.items()):
                return False
            return predicate(msg) if predicate is not None else True

        for msg in self.events[after:]:
            if match(msg):
                return msg
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        entry = (match, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            self._waiters.remove(entry)

    async def close(self) -> None:
        """Shut the fake down (it disconnects its devices with signals) and reap it."""
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.call("shutdown", timeout_s=5)
            if self.proc.stdin is not None:
                with contextlib.suppress(Exception):
                    self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        if self._own_bus is not None:
            self._own_bus.stop()
            self._own_bus = None

    async def __aenter__(self) -> SimBluez:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
