"""The fake's control channel: one JSON object per line on stdin, one per line on stdout.

Requests  {"id": 7, "cmd": "drop_link", "address": "AA:..."}
Replies   {"id": 7, "ok": true, "result": {...}} or {"id": 7, "ok": false, "error": "..."}
Events    {"event": "connected", "address": "AA:..."} (unsolicited; no "id")

Bytes travel as hex strings. A line protocol on pipes needs no ports and dies with the parent:
EOF on stdin shuts the fake down (devices disconnected with signals first).

Commands (arguments as JSON fields):
  ping | status | shutdown
  add_device peripheral="module:Class" [kwargs address name role rssi uuids manufacturer_data
             service_data]          remove_device address      set_role address role
  start_streaming [kind=synthetic|patient rate_hz seed script]   stop_streaming
  mute address [on]                 drop_every address n       notify_raw address char data
  drop_link address                 fail_connect address [count mode=failed|abort error message]
  reject_write address [char count error message]              power on
  remove_adapter | add_adapter      bluetoothd_stop [crash] | bluetoothd_start
  restart_bluetoothd [down_s crash] sent_log address [clear]   clear_log address
  log_sends address [on maxlen]     send_log address [clear]
Events: ready, bluetoothd(state), power(on), discovery(on), connected, disconnected(reason),
  connect_failed, connect_busy, start_notify, stop_notify, write, write_rejected, read,
  streaming(monotonic_s, sim_t_s: simulated time sim_t_s is sampled at host time monotonic_s).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from sensors.simbluez.bluez import FakeBluez
from sensors.simbluez.device import ABORT_BY_LOCAL, Fault, SimDevice
from sensors.simbluez.interfaces import ERR_FAILED
from sensors.simbluez.peripheral import make_peripheral
from sensors.simbluez.streaming import make_source

log = logging.getLogger("sensors.simbluez")

Handler = Callable[..., Any]


def _advertised(peripheral: Any) -> dict[str, Any]:
    """Advertisement defaults a peripheral may declare (`advertisement()` or attributes)."""
    method = getattr(peripheral, "advertisement", None)
    adv = method() if callable(method) else None
    src = adv if adv is not None else peripheral
    out: dict[str, Any] = {}
    name = getattr(src, "name", None) or getattr(src, "local_name", None)
    if isinstance(name, str):
        out["name"] = name
    uuids = getattr(src, "service_uuids", None)
    if uuids:
        out["uuids"] = [str(u).lower() for u in uuids]
    mfr = getattr(src, "manufacturer_data", None)
    if mfr:
        out["manufacturer_data"] = {int(k): bytes(v) for k, v in dict(mfr).items()}
    rssi = getattr(src, "rssi", None)
    if isinstance(rssi, int):
        out["rssi"] = rssi
    return out


def _batches_to_json(batches: list[Any]) -> dict[str, Any]:
    if not batches:
        return {"time_s": [], "acc": [], "gyr": [], "mag": None}
    mags = [b.mag for b in batches]
    return {
        "time_s": np.concatenate([b.time_s for b in batches]).tolist(),
        "acc": np.concatenate([b.acc for b in batches]).tolist(),
        "gyr": np.concatenate([b.gyr for b in batches]).tolist(),
        "mag": None if any(m is None for m in mags) else np.concatenate(mags).tolist(),
    }


class Controller:
    """Maps control commands onto a `FakeBluez`."""

    def __init__(self, fake: FakeBluez) -> None:
        self.fake = fake
        self.done = asyncio.Event()

    def _dev(self, address: str) -> SimDevice:
        return self.fake.device(address)

    async def handle(self, request: dict[str, Any]) -> Any:
        cmd = str(request.pop("cmd", ""))
        handler: Handler | None = getattr(self, f"cmd_{cmd}", None)
        if handler is None:
            raise ValueError(f"unknown command {cmd!r}")
        result = handler(**request)
        if isinstance(result, Awaitable):
            result = await result
        return result if result is not None else {}

    # -- inspection --
    def cmd_ping(self) -> dict[str, Any]:
        return {"pong": True}

    def cmd_status(self) -> dict[str, Any]:
        f = self.fake
        return {
            "bluetoothd": f.bus is not None,
            "adapter": f.adapter is not None,
            "powered": f.powered,
            "discovering": bool(f.adapter and f.adapter.discovering),
            "streaming": f.pacer.running,
            "devices": [d.status() for d in f.devices.values()],
        }

    def cmd_sent_log(self, address: str, clear: bool = False) -> dict[str, Any]:
        dev = self._dev(address)
        out = _batches_to_json(list(dev.sent))
        if clear:
            dev.sent.clear()
        return out

    def cmd_clear_log(self, address: str) -> None:
        dev = self._dev(address)
        dev.sent.clear()
        dev.ops.clear()

    # -- devices --
    def cmd_add_device(
        self,
        peripheral: str,
        address: str | None = None,
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        role: str | None = None,
        rssi: int | None = None,
        uuids: list[str] | None = None,
        manufacturer_data: dict[str, str] | None = None,
        service_data: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        periph = make_peripheral(peripheral, kwargs)
        adv = _advertised(periph)
        extra: dict[str, Any] = {
            "role": role,
            "rssi": rssi if rssi is not None else adv.get("rssi", -60),
            "uuids": [u.lower() for u in uuids] if uuids is not None else adv.get("uuids", []),
            "manufacturer_data": (
                {int(k, 0): bytes.fromhex(v) for k, v in manufacturer_data.items()}
                if manufacturer_data is not None
                else adv.get("manufacturer_data", {})
            ),
            "service_data": {k: bytes.fromhex(v) for k, v in (service_data or {}).items()},
        }
        address = address or getattr(periph, "address", None)
        if not address:
            raise ValueError("add_device needs an address (or a peripheral with one)")
        dev = self.fake.add_device(address, name or adv.get("name", ""), periph, **extra)
        return {"path": dev.path, "name": dev.name, "address": dev.address}

    def cmd_remove_device(self, address: str) -> None:
        self.fake.remove_device(address)

    def cmd_set_role(self, address: str, role: str | None) -> None:
        self._dev(address).role = role

    # -- streaming --
    def cmd_start_streaming(self, kind: str = "synthetic", rate_hz: float = 100.0,
                            **kwargs: Any) -> None:
        """Sensors start sampling: kind "synthetic" or "patient" (kwargs: seed, script, ...);
        `rate_hz` is for peripherals that do not report a configured rate of their own."""
        make_source(kind, rate_hz=rate_hz, **kwargs)  # fail here, not in the pacer
        self.fake.start_streaming(lambda r: make_source(kind, rate_hz=r, **kwargs), rate_hz)

    def cmd_stop_streaming(self) -> None:
        self.fake.stop_streaming()

    def cmd_mute(self, address: str, on: bool = True) -> None:
        self._dev(address).muted = bool(on)

    def cmd_drop_every(self, address: str, n: int) -> None:
        self._dev(address).drop_every_n = int(n)

    def cmd_log_sends(self, address: str, on: bool = True, maxlen: int = 200_000) -> None:
        """Record the host monotonic time and bytes of every notification sent (benchmarks:
        CLOCK_MONOTONIC is system-wide, so a central can match them with its receive times)."""
        self._dev(address).send_log = deque(maxlen=int(maxlen)) if on else None

    def cmd_send_log(self, address: str, clear: bool = False) -> dict[str, Any]:
        dev = self._dev(address)
        log = list(dev.send_log or ())
        if clear and dev.send_log is not None:
            dev.send_log.clear()
        return {"monotonic_s": [t for t, _ in log], "data": [d.hex() for _, d in log]}

    def cmd_notify_raw(self, address: str, char: str, data: str) -> dict[str, Any]:
        return {"sent": self.fake.notify(self._dev(address), char, bytes.fromhex(data))}

    # -- faults --
    def cmd_drop_link(self, address: str) -> None:
        self.fake.drop_link(address)

    def cmd_fail_connect(
        self, address: str, count: int = 1, mode: str = "failed",
        error: str = ERR_FAILED, message: str | None = None,
    ) -> None:
        if mode == "abort":
            fault = Fault(ERR_FAILED, ABORT_BY_LOCAL)
        else:
            fault = Fault(error, message or "Software caused connection abort")
        faults = (Fault(fault.error, fault.message) for _ in range(count))
        self._dev(address).connect_faults.extend(faults)

    def cmd_reject_write(
        self, address: str, char: str | None = None, count: int = 1,
        error: str = ERR_FAILED, message: str = "Operation failed with ATT error: 0x80",
    ) -> None:
        dev = self._dev(address)
        dev.write_faults.extend(
            Fault(error, message, char.lower() if char else None) for _ in range(count)
        )

    def cmd_power(self, on: bool) -> None:
        self.fake.set_power(bool(on))

    def cmd_remove_adapter(self) -> None:
        self.fake.remove_adapter()

    def cmd_add_adapter(self) -> None:
        self.fake.add_adapter()

    async def cmd_bluetoothd_stop(self, crash: bool = False) -> None:
        await self.fake.stop(crash=crash)

    async def cmd_bluetoothd_start(self) -> None:
        if self.fake.bus is None:
            await self.fake.start()

    async def cmd_restart_bluetoothd(self, down_s: float = 0.3, crash: bool = False) -> None:
        """Stop now; come back after `down_s` (in the background: the reply does not wait)."""
        await self.fake.stop(crash=crash)

        async def back() -> None:
            await asyncio.sleep(down_s)
            if self.fake.bus is None:
                await self.fake.start()

        asyncio.get_running_loop().create_task(back())

    async def cmd_shutdown(self) -> None:
        await self.fake.stop(final=True)
        self.done.set()


def write_line(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def serve_stdio(controller: Controller) -> None:
    """Read requests from stdin until EOF or `shutdown`; each is handled in order."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while not controller.done.is_set():
        line = await reader.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        req_id: Any = None
        try:
            request = json.loads(line)
            req_id = request.pop("id", None)
            result = await controller.handle(request)
            write_line({"id": req_id, "ok": True, "result": result})
        except Exception as exc:  # a bad command must not kill the fake
            log.debug("command failed", exc_info=True)
            write_line({"id": req_id, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
