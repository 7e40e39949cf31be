"""BLE path benchmark: bleak's real BlueZ backend against the simulated BlueZ (no radio).

    .venv/bin/python -m bench.ble [--seconds 10] [--max-rate 64000]

Three figures, in one run, on one private dbus-daemon:

1. Notification throughput: one counting peripheral (20-byte notifications, one per sample) and
   a bare bleak callback that counts them. The rate is doubled from 500/s until delivery falls
   behind (received < 95 % of the rate asked, or the backlog sent-but-not-received grows by more
   than 5 % of a window's notifications), then once more half-way; each step takes 2 s, the
   sweep at most ~25 s. The limit belongs to the whole stack: the Python fake bluetoothd sending
   PropertiesChanged signals, dbus-daemon, and bleak parsing them.
2. Decode cost per packet for each family: the family's simulated peripheral makes 10 s of
   representative notifications (its own packing, at ~100 Hz); a decoder fresh from the start
   handshake decodes them all; timeit, best of 7.
3. Latency at 2 x 100 Hz (two WitMotion sensors on the simulated patient, through
   `BleManager`): from the bleak callback's receive time to the end of `LumbarPipeline.update`
   of the batch holding the notification's samples (the *added* latency), and from the fake's
   send time (CLOCK_MONOTONIC is system-wide) to both. The named peer, in the same run, same
   process, same event loop: two more WitMotion sensors read by bare bleak callbacks that only
   append (bytes, time): send -> callback is what bleak and the bus cost by themselves. Sends and
   receives are matched per device by their bytes (first in, first out).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import platform
import struct
import sys
import time
import timeit
from collections import defaultdict, deque
from importlib.metadata import version
from typing import Any

import numpy as np

RATE_STEP_S = 0.5  # settle after changing the rate
RATE_WINDOW_S = 1.5  # measure over
SWEEP_BUDGET_S = 25.0
LAT_ADDRESSES = {
    "lumbo-upper": "C0:1D:BE:00:00:01", "lumbo-lower": "C0:1D:BE:00:00:02",
    "peer-upper": "C0:1D:BE:00:00:03", "peer-lower": "C0:1D:BE:00:00:04",
}
COUNTER_ADDRESS = "C0:1D:BE:00:00:10"
PATIENT = {"script": "calibration_then_flexion_reps", "n_reps": 60}


# ---- 1. throughput ------------------------------------------------------------------------------

async def throughput(fake: Any, max_rate: int) -> tuple[list[dict[str, float]], float, str]:
    from bleak import BleakClient, BleakScanner

    from bench.ble_peripheral import CTRL, DATA

    await fake.call("add_device", address=COUNTER_ADDRESS, name="Bench-1", role="upper",
                    peripheral="bench.ble_peripheral:CountingPeripheral")
    await fake.call("start_streaming", kind="synthetic", rate_hz=100.0)
    device = await BleakScanner.find_device_by_address(COUNTER_ADDRESS, timeout=10)
    if device is None:
        raise RuntimeError("the counting peripheral did not advertise")
    received = 0

    def on_data(_char: Any, _data: bytearray) -> None:
        nonlocal received
        received += 1

    async def sent() -> int:
        status = await fake.call("status")
        return next(d["notifications_sent"] for d in status["devices"]
                    if d["address"] == COUNTER_ADDRESS)

    rows: list[dict[str, float]] = []
    best, why = 0.0, f"not reached up to {max_rate}/s"
    deadline = time.monotonic() + SWEEP_BUDGET_S
    async with BleakClient(device) as client:
        await client.start_notify(DATA, on_data)

        async def step(rate: int) -> bool:
            await client.write_gatt_char(CTRL, struct.pack("<I", rate), response=True)
            await asyncio.sleep(RATE_STEP_S)
            s0, r0, t0 = await sent(), received, time.monotonic()
            await asyncio.sleep(RATE_WINDOW_S)
            s1, r1, t1 = await sent(), received, time.monotonic()
            span = t1 - t0
            row = {"rate": rate, "sent": (s1 - s0) / span, "received": (r1 - r0) / span,
                   "backlog": float((s1 - r1) - (s0 - r0))}
            rows.append(row)
            return (row["received"] >= 0.95 * rate
                    and row["backlog"] <= 0.05 * rate * RATE_WINDOW_S)

        rate, failed = 500, None
        while rate <= max_rate and time.monotonic() < deadline:
            if await step(rate):
                best = float(rate)
                rate *= 2
            else:
                failed = rate
                break
        if failed is not None and best and time.monotonic() < deadline:
            mid = int(round((best * failed) ** 0.5 / 100.0) * 100)
            if best < mid < failed and await step(mid):
                best = float(mid)
        if failed is not None:
            last = next(r for r in rows if r["rate"] == failed)
            parts = []
            if last["sent"] < 0.95 * failed:
                parts.append(f"the simulated BlueZ sent only {last['sent']:.0f}/s")
            if last["received"] < 0.95 * last["sent"] or last["backlog"] > 0:
                parts.append(f"bleak received {last['received']:.0f}/s")
            why = f"asked {failed}/s: " + ", ".join(parts or ["delivery fell behind"])
        await client.write_gatt_char(CTRL, struct.pack("<I", 10), response=True)
        await client.stop_notify(DATA)
    await fake.call("stop_streaming")
    await fake.call("remove_device", address=COUNTER_ADDRESS)
    return rows, best, why


# ---- 2. decode cost -----------------------------------------------------------------------------

DECODE_RATES = {"witmotion": 100.0, "movesense": 104.0, "xsens_dot": 60.0, "polar_verity": 104.0}


def decode_costs(seconds: float = 10.0) -> list[dict[str, Any]]:
    from sensors.devices import FAMILIES
    from sensors.devices.peripherals import PERIPHERALS
    from sensors.devices.peripherals.harness import run_commands
    from sensors.simbluez.streaming import SyntheticMotion

    rows = []
    for family in FAMILIES:
        rate = DECODE_RATES[family.family]
        peripheral = PERIPHERALS[family.family]()
        decoder = family.new_decoder(rate)
        run_commands(peripheral, decoder, family.start_commands(rate))  # the start handshake
        batch = SyntheticMotion(rate).generate(0.0, seconds)["upper"]
        packets: list[tuple[str, bytes]] = []
        step = max(1, int(rate * 0.02))  # the fake's 20 ms ticks
        for i in range(0, len(batch), step):
            sl = slice(i, i + step)
            part = type(batch)(batch.sensor, batch.time_s[sl], batch.acc[sl], batch.gyr[sl],
                               None if batch.mag is None else batch.mag[sl],
                               None if batch.device_time_s is None else batch.device_time_s[sl],
                               None if batch.counter is None else batch.counter[sl])
            packets += peripheral.notifications_for(part)
        check = copy.deepcopy(decoder)
        samples = sum(len(s) for u, d in packets for s in check.feed(u, d).samples)
        errors = sum(check.error_counts.values()) - sum(decoder.error_counts.values())

        def run(dec: Any = None) -> None:
            feed = dec.feed
            for u, d in packets:
                feed(u, d)

        timer = timeit.Timer("run(dec)", setup="dec = copy.deepcopy(decoder)",
                             globals={"run": run, "copy": copy, "decoder": decoder})
        best = min(timer.repeat(repeat=7, number=1))
        rows.append({
            "family": family.display_name, "rate": rate, "packets": len(packets),
            "bytes": float(np.mean([len(d) for _, d in packets])),
            "samples_per_packet": samples / len(packets),
            "us_per_packet": best / len(packets) * 1e6,
            "us_per_sample": best / max(samples, 1) * 1e6, "errors": errors,
        })
    return rows


# ---- 3. latency ---------------------------------------------------------------------------------

def calibrated_pipeline() -> Any:
    """A `LumbarPipeline` already calibrated on the same simulated patient (offline), so the
    latency is measured on the calibrated path (angles, heading, segmentation)."""
    from processing.pipeline import LumbarPipeline
    from sensors.simbluez.streaming import patient_source

    patient = patient_source(rate_hz=100.0, seed=0, **PATIENT)
    data = patient.generate(0.0, 22.0)
    pipe = LumbarPipeline()
    for k in range(0, 2200, 2):
        for role in ("upper", "lower"):
            b = data[role]
            sl = slice(k, k + 2)
            pipe.update(type(b)(role, b.time_s[sl], b.acc[sl], b.gyr[sl], None,
                                None if b.device_time_s is None else b.device_time_s[sl],
                                None if b.counter is None else b.counter[sl]))
    return LumbarPipeline(calibration=pipe.calibration) if pipe.calibration else LumbarPipeline()


async def latency(fake: Any, seconds: float) -> dict[str, Any]:
    from bleak import BleakClient, BleakScanner

    from sensors.ble import BleManager, LinkConfig, ManagerConfig
    from sensors.ble.adapter import adapter_lock
    from sensors.ble.link import SensorLink
    from sensors.devices.witmotion import WitMotionFamily
    from sensors.simbluez.demo import peripheral_spec

    for name, address in LAT_ADDRESSES.items():
        await fake.call("add_device", peripheral=peripheral_spec("witmotion"), address=address,
                        kwargs={"address": address, "name": f"WT901BLE {name}"},
                        role=name.split("-")[1])
        await fake.call("log_sends", address=address)
    await fake.call("start_streaming", kind="patient", rate_hz=100.0, seed=0, **PATIENT)
    pipeline = calibrated_pipeline()

    # -- Lumbo: BleManager -> batches -> LumbarPipeline.update, instrumented
    received: dict[str, list[tuple[bytes, float]]] = defaultdict(list)
    tags: dict[int, list[float]] = {}
    current: list[float] = []
    processed: list[tuple[float, float]] = []  # (callback receive time, after update)
    window = [float("inf"), float("inf")]

    def probe(role: str, data: bytes, arrival: float) -> None:
        received[role].append((data, arrival))

    original_deliver = SensorLink.deliver

    def deliver(self: SensorLink, role: Any, chunks: list) -> None:
        current[:] = [a for _, a in chunks]
        original_deliver(self, role, chunks)

    SensorLink.deliver = deliver  # type: ignore[method-assign]
    config = ManagerConfig(link=LinkConfig(notify_probe=probe))
    manager = BleManager({"upper": LAT_ADDRESSES["lumbo-upper"],
                          "lower": LAT_ADDRESSES["lumbo-lower"]}, 100.0, config=config)
    await manager.start()
    for link in manager.links.values():
        emit = link._emit

        def tagged(batch: Any, emit: Any = emit) -> None:
            tags[id(batch)] = list(current)
            emit(batch)

        link._emit = tagged  # type: ignore[method-assign]

    async def consume() -> None:
        async for batch in manager.batches():
            pipeline.update(batch)
            done = time.monotonic()
            for arrival in tags.pop(id(batch), ()):
                processed.append((arrival, done))

    consumer = asyncio.create_task(consume())

    # -- the peer: bare bleak callbacks that only append
    peer_recv: dict[str, list[tuple[bytes, float]]] = defaultdict(list)
    clients = []
    family = WitMotionFamily()
    for name in ("peer-upper", "peer-lower"):
        address = LAT_ADDRESSES[name]
        async with adapter_lock():  # one connect at a time, shared with the manager
            device = await BleakScanner.find_device_by_address(address, timeout=10)
            client = BleakClient(device)
            await client.connect()
        log = peer_recv[name]
        await client.start_notify(family.notify_uuid,
                                  lambda _c, d, log=log: log.append((bytes(d), time.monotonic())))
        for cmd in family.start_commands(100.0):
            if cmd.kind == "write":
                await client.write_gatt_char(cmd.char_uuid, cmd.data, response=cmd.response)
            elif cmd.kind == "wait":
                await asyncio.sleep(cmd.delay_s)
        clients.append(client)

    await manager.wait_for(lambda h: all(x.status == "streaming" for x in h.values()), 30)
    await asyncio.sleep(1.0)  # let the rates settle and the time bases find their line
    window[0] = time.monotonic()
    await asyncio.sleep(seconds)
    window[1] = time.monotonic()
    await asyncio.sleep(0.3)  # the last batches in flight are processed
    for client in clients:
        await client.disconnect()
    await manager.stop()
    await consumer
    SensorLink.deliver = original_deliver  # type: ignore[method-assign]

    sends = {}
    for name, address in LAT_ADDRESSES.items():
        log = await fake.call("send_log", address=address)
        by_bytes: dict[bytes, deque[float]] = defaultdict(deque)
        for t, hexdata in zip(log["monotonic_s"], log["data"]):
            by_bytes[bytes.fromhex(hexdata)].append(t)
        sends[name] = by_bytes

    def matched(name: str, recv: list[tuple[bytes, float]]) -> dict[float, float]:
        """receive time -> send time, per device, bytes matched first in first out."""
        out = {}
        for data, t_recv in recv:
            queue = sends[name].get(data)
            if queue:
                out[t_recv] = queue.popleft()
        return out

    a, b = window
    peer = []
    for name in ("peer-upper", "peer-lower"):
        m = matched(name, peer_recv[name])
        peer += [t - s for t, s in m.items() if a <= t <= b]
    send_of = {}
    for role in ("upper", "lower"):
        send_of.update(matched(f"lumbo-{role}", received[role]))
    recv_lat, added, total = [], [], []
    for arrival, done in processed:
        if not a <= arrival <= b:
            continue
        added.append(done - arrival)
        if arrival in send_of:
            recv_lat.append(arrival - send_of[arrival])
            total.append(done - send_of[arrival])
    health = manager.health()
    return {"peer": peer, "receive": recv_lat, "added": added, "total": total,
            "rates": {r: h.nominal_rate_hz for r, h in health.items()},
            "lost": {r: h.loss_pct for r, h in health.items()}}


# ---- report -------------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q)) if values else float("nan")


def report(thr: tuple[list[dict[str, float]], float, str], dec: list[dict[str, Any]],
           lat: dict[str, Any], seconds: float) -> None:
    rows, best, why = thr
    print()
    print("1. Notifications per second through bleak and the simulated BlueZ (one sensor, 20 B)")
    print(f"   {'asked/s':>9} {'sent/s':>9} {'received/s':>11} {'backlog':>8}")
    for r in rows:
        print(f"   {r['rate']:>9.0f} {r['sent']:>9.0f} {r['received']:>11.0f} {r['backlog']:>8.0f}")
    print(f"   sustained: {best:.0f} notifications/s ({why}); Lumbo needs 2 x 100 samples/s, "
          "often several samples per notification")
    print()
    print("2. Decode cost per packet (timeit, best of 7, a decoder fresh from the handshake)")
    print(f"   {'family':<22} {'rate Hz':>7} {'B/packet':>8} {'samples/packet':>14} "
          f"{'µs/packet':>9} {'µs/sample':>9}")
    for r in dec:
        print(f"   {r['family']:<22} {r['rate']:>7.0f} {r['bytes']:>8.0f} "
              f"{r['samples_per_packet']:>14.2f} {r['us_per_packet']:>9.1f} "
              f"{r['us_per_sample']:>9.1f}" + (f"  ({r['errors']} decode errors!)"
                                               if r["errors"] else ""))
    print()
    print(f"3. Latency at 2 x 100 Hz (WitMotion, simulated patient), {seconds:g} s, same run")
    peer = lat["peer"]
    p50, p99 = pct(peer, 50), pct(peer, 99)
    print(f"   {'path':<58} {'p50 ms':>7} {'p99 ms':>7} {'n':>6}  {'p50 / peer':>10} "
          f"{'p99 / peer':>10}")
    lines = [
        ("peer: fake send -> bare bleak callback", peer),
        ("Lumbo: fake send -> bleak callback", lat["receive"]),
        ("Lumbo added: bleak callback -> after LumbarPipeline.update", lat["added"]),
        ("Lumbo total: fake send -> after LumbarPipeline.update", lat["total"]),
    ]
    for name, values in lines:
        q50, q99 = pct(values, 50), pct(values, 99)
        ratio = "" if values is peer else f"{q50 / p50:>10.2f} {q99 / p99:>10.2f}"
        print(f"   {name:<58} {q50:>7.2f} {q99:>7.2f} {len(values):>6}  {ratio}")
    print(f"   sensors configured at {lat['rates']} Hz; samples lost: "
          + ", ".join(f"{r} {v:.2f} %" for r, v in lat["lost"].items()))


async def run(args: argparse.Namespace) -> int:
    from sensors.simbluez import SimBluez

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    fake = await SimBluez.start(extra_paths=[repo])
    # bleak connects to the system bus the first time it runs on this loop: point it at ours
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = fake.bus_address
    try:
        print("throughput sweep…", file=sys.stderr, flush=True)
        thr = await throughput(fake, args.max_rate)
        print("latency at 2 x 100 Hz…", file=sys.stderr, flush=True)
        lat = await latency(fake, args.seconds)
    finally:
        await fake.close()
    print("decode cost…", file=sys.stderr, flush=True)
    dec = decode_costs()
    print(f"Lumbo BLE benchmark: Python {platform.python_version()}, bleak {version('bleak')}, "
          f"dbus-fast {version('dbus-fast')}, {os.cpu_count()} CPUs; bleak's BlueZ backend "
          "against the simulated BlueZ (sensors/simbluez) on a private dbus-daemon")
    report(thr, dec, lat, args.seconds)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ble", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="latency window, s")
    parser.add_argument("--max-rate", type=int, default=64000, help="throughput sweep cap, /s")
    args = parser.parse_args(argv)
    from sensors.simbluez import find_dbus_daemon

    if find_dbus_daemon() is None:
        print("bench.ble needs dbus-daemon (Debian/Ubuntu: apt-get install dbus-daemon)",
              file=sys.stderr)
        return 3
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
