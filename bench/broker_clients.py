"""Redis vs NATS as the live relay's broker, from Python: client CPU per message and latency.

The evidence behind choosing Redis for api/broker.py (README, "Several instances and the
broker"). Both servers run on loopback ports of their own; each client publishes and receives
1.5 kB messages (a frame's size) in one process:

- throughput: N messages as fast as the client goes (Redis: pipelined PUBLISH in batches of
  256, as api/broker.py does; NATS: `publish` then `flush`), received by a subscriber on a
  second connection; client CPU (publish + receive) per message;
- latency: 2 000 messages/s for 3 s, publish -> receive p50/p99 (CLOCK_MONOTONIC).

Needs, besides the project: Debian's `nats-server` and `pip install nats-py==2.16.0` (the
`bench` extra). Run: `.venv/bin/python -m bench.broker_clients [--messages 20000] [--rounds 2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from api.broker_server import RedisServer, free_port

PAYLOAD = "x" * 1500
PACED_N = 6000  # messages of the latency run: 2 000/s for 3 s


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def stamp() -> str:
    return f"{time.monotonic():<20.6f}" + PAYLOAD  # the send time in the first 20 characters


def lat_ms(received: list[float]) -> tuple[float, float]:
    arr = np.asarray(received) * 1000.0
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


async def paced(send_batch: Callable[[int], object]) -> None:
    """10 messages every 5 ms, on a schedule (a paced source, not a synchronisation)."""
    nxt = time.monotonic()
    for _ in range(0, PACED_N, 10):
        nxt += 0.005
        await asyncio.sleep(max(0.0, nxt - time.monotonic()))
        await send_batch(10)  # type: ignore[misc]


async def redis_case(url: str, n: int) -> tuple[float, float, float, float]:
    import redis.asyncio as aioredis

    pub = aioredis.from_url(url, decode_responses=True)
    sub = aioredis.from_url(url, decode_responses=True)
    ps = sub.pubsub()
    await ps.subscribe("c")
    await ps.get_message(timeout=1.0)
    lat: list[float] = []

    async def receive(count: int) -> None:
        got = 0
        while got < count:
            m = await ps.get_message(timeout=5.0)
            if m is None:
                raise RuntimeError("redis: messages lost")
            if m["type"] == "message":
                got += 1
                lat.append(time.monotonic() - float(m["data"][:20]))

    async def send(count: int) -> None:
        for i in range(0, count, 256):
            pipe = pub.pipeline(transaction=False)
            for _ in range(min(256, count - i)):
                pipe.publish("c", stamp())
            await pipe.execute()

    try:
        reader = asyncio.create_task(receive(n))
        c0, w0 = cpu(), time.monotonic()
        await send(n)
        await reader
        rate, us = n / (time.monotonic() - w0), (cpu() - c0) / n * 1e6
        lat.clear()
        reader = asyncio.create_task(receive(PACED_N))
        await paced(send)
        await reader
        return (rate, us, *lat_ms(lat))
    finally:
        await ps.aclose()
        await pub.aclose()
        await sub.aclose()


async def nats_case(url: str, n: int) -> tuple[float, float, float, float]:
    import nats

    pub, sub = await nats.connect(url), await nats.connect(url)
    lat: list[float] = []
    done = asyncio.Event()
    want = [n]

    async def on_msg(msg: object) -> None:
        lat.append(time.monotonic() - float(msg.data[:20]))  # type: ignore[attr-defined]
        if len(lat) >= want[0]:
            done.set()

    async def send(count: int) -> None:
        for _ in range(count):
            await pub.publish("c", stamp().encode())

    try:
        await sub.subscribe("c", cb=on_msg, pending_msgs_limit=1_000_000,
                            pending_bytes_limit=2**31)
        await sub.flush()
        c0, w0 = cpu(), time.monotonic()
        await send(n)
        await pub.flush()
        await asyncio.wait_for(done.wait(), timeout=60)
        rate, us = n / (time.monotonic() - w0), (cpu() - c0) / n * 1e6
        lat.clear()
        done.clear()
        want[0] = PACED_N
        await paced(send)
        await pub.flush()
        await asyncio.wait_for(done.wait(), timeout=60)
        return (rate, us, *lat_ms(lat))
    finally:
        await pub.close()
        await sub.close()


def start_nats() -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = free_port()
    proc = subprocess.Popen([exe, "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError("nats-server did not listen")


async def main_async(n: int, rounds: int) -> None:
    redis = RedisServer().start()
    nats_proc, nats_port = start_nats()
    rows: dict[str, list[tuple[float, float, float, float]]] = {"redis": [], "nats": []}
    try:
        for _ in range(rounds):  # alternating, so both see the same machine
            rows["redis"].append(await redis_case(redis.url, n))
            rows["nats"].append(await nats_case(f"nats://127.0.0.1:{nats_port}", n))
    finally:
        redis.stop()
        nats_proc.terminate()
        nats_proc.wait(timeout=10)
    from redis.utils import HIREDIS_AVAILABLE

    names = {"redis": f"Redis 7 / redis-py (hiredis {'on' if HIREDIS_AVAILABLE else 'off'})",
             "nats": "NATS 2.9 / nats-py (peer)"}
    print(f"{n} x 1.5 kB messages, {rounds} alternating rounds; best round shown; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'':40}{'msg/s':>10}{'CPU us/msg':>12}{'p50 ms':>9}{'p99 ms':>9}")
    best = {k: min(v, key=lambda r: r[1]) for k, v in rows.items()}
    for k, r in best.items():
        print(f"{names[k]:40}{r[0]:10.0f}{r[1]:12.1f}{r[2]:9.2f}{r[3]:9.2f}")
    r, q = best["redis"], best["nats"]
    print(f"{'ratio redis / nats':40}{r[0] / q[0]:10.2f}{r[1] / q[1]:12.2f}{r[2] / q[2]:9.2f}"
          f"{r[3] / q[3]:9.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    try:
        import nats  # noqa: F401
    except ImportError:
        sys.exit("needs nats-py: .venv/bin/pip install -c constraints.txt -e '.[bench]'")
    if not (shutil.which("nats-server") or os.path.exists("/usr/sbin/nats-server")):
        sys.exit("needs Debian's nats-server: apt-get install nats-server")
    asyncio.run(main_async(args.messages, args.rounds))


if __name__ == "__main__":
    main()
