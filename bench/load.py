"""Load test: N simulated patients streaming into two instances, M therapist viewers, one Redis.

Everything runs on loopback and stops by itself. It starts a `redis-server` on a free port and
two `lumbo serve --broker` instances (subprocesses sharing one temporary data directory), starts
N simulated patients in real time (two sensors at 100 Hz each, about 50 frames/s), half on each
instance, then measures phases of `--seconds` each:

0. the relay's own costs per message: publishing and receiving through redis-py, and
   redis-server's CPU per PUBLISH (sequential micro-measurements);
1. broker: M viewers, `--cross` of them on the OTHER instance than their patient's (through
   Redis), the rest on the same one;
2. local (the named peer): the same M viewers, all on their patient's own instance (no hop);
3. idle: no viewers at all (each instance relays only on interest: nothing should reach Redis);
4. always: the instances restarted with `LUMBO_BROKER_PUBLISH=always`, no viewers (what
   publishing every frame of every patient would cost).

Per phase: frames/s delivered, per-viewer fps (min/median), latency publish->viewer (the
frame's `server_time_s`, stamped when the instance published it) and sample->viewer (`t_s`)
at p50/p99, split local/cross; CPU of each instance, of Redis and of this client; Redis
commands/s and bytes/s in and out. CLOCK_MONOTONIC is shared by all processes on one Linux
host, so the latencies are exact. Then the ratios broker / local.

    .venv/bin/python -m bench.load [--patients 8] [--viewers 16] [--seconds 15] [--cross 0.75]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from api.broker_server import RedisServer, free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


# ---------------------------------------------------------------------- accounts and instances


@dataclass
class Accounts:
    therapist_id: str
    patient_ids: list[str]
    cookie_of_viewer: list[str]  # one sign-in per viewer, as separate therapist browsers


def make_accounts(data_dir: Path, n_patients: int, n_viewers: int) -> Accounts:
    """One therapist with N patients in the shared store; M therapist sign-ins."""
    from api.auth.middleware import COOKIE_NAME
    from api.auth.service import AuthService
    from recordings.accounts import AccountStore

    auth = AuthService(AccountStore(data_dir))
    try:
        t = auth.create_therapist("load-therapist", None, "Load Therapist")
        pids = [auth.create_patient(f"load-p{i:03d}", t.id, None, f"Patient {i}").id
                for i in range(n_patients)]
        cookies = [f"{COOKIE_NAME}={auth.open_session(t)[0]}" for _ in range(max(n_viewers, 1))]
    finally:
        auth.close()
    return Accounts(t.id, pids, cookies)


@dataclass
class Instance:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/live"


async def start_instance(name: str, data_dir: Path, broker: str, publish: str) -> Instance:
    port = free_port()
    env = {**os.environ, "LUMBO_DATA_DIR": str(data_dir), "LUMBO_BROKER_PUBLISH": publish}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--broker", broker],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"instance {name} exited with {proc.returncode}")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return Instance(name, port, proc)
        except OSError:
            await asyncio.sleep(0.1)
    proc.kill()
    raise TimeoutError(f"instance {name} not listening")


def stop_instance(inst: Instance) -> None:
    inst.proc.terminate()
    try:
        inst.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        inst.proc.kill()
        inst.proc.wait()


async def start_patients(instances: list[Instance], acc: Accounts) -> list[Instance]:
    """Patient i on instance i % 2 (the simulated demo, looping in real time)."""
    import httpx

    hosts = []
    async with httpx.AsyncClient(timeout=30) as client:
        for i, pid in enumerate(acc.patient_ids):
            inst = instances[i % len(instances)]
            r = await client.post(
                f"{inst.url}/api/session/start", params={"patient_id": pid},
                json={"script": "demo", "loop": True, "realtime": True, "seed": i},
                headers={"Cookie": acc.cookie_of_viewer[0], "Origin": inst.url})
            r.raise_for_status()
            hosts.append(inst)
    return hosts


# ---------------------------------------------------------------------- viewers


@dataclass
class ViewerResult:
    cross: bool
    frames: int = 0
    bytes: int = 0
    missed: int = 0  # frames of the session never received (gaps in `seq`)
    last_seq: int | None = None
    publish_ms: list[float] = field(default_factory=list)
    sample_ms: list[float] = field(default_factory=list)


async def viewer(url: str, cookie: str, origin: str, result: ViewerResult,
                 measuring: asyncio.Event, done: asyncio.Event) -> None:
    import websockets

    async with websockets.connect(url, max_size=None,
                                  additional_headers={"Cookie": cookie, "Origin": origin}) as ws:
        while not done.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            now = time.monotonic()
            if not measuring.is_set() or not raw.startswith('{"type":"frame"'):
                continue
            msg = json.loads(raw)
            if result.last_seq is not None and msg["seq"] > result.last_seq + 1:
                result.missed += msg["seq"] - result.last_seq - 1
            result.last_seq = msg["seq"]
            result.frames += 1
            result.bytes += len(raw)
            if msg.get("server_time_s") is not None:
                result.publish_ms.append((now - msg["server_time_s"]) * 1000.0)
            result.sample_ms.append((now - msg["t_s"]) * 1000.0)


class RedisStats:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)

    def snapshot(self) -> dict[str, float]:
        s = self.client.info("stats")
        c = self.client.info("commandstats")
        return {"commands": float(s["total_commands_processed"]),
                "in_bytes": float(s["total_net_input_bytes"]),
                "out_bytes": float(s["total_net_output_bytes"]),
                "publish": float(c.get("cmdstat_publish", {}).get("calls", 0))}


@dataclass
class Phase:
    name: str
    seconds: float
    viewers: list[ViewerResult]
    cpu_pct: dict[str, float]
    redis: dict[str, float]


async def measure(name: str, plan: list[tuple[Instance, str, bool]], acc: Accounts,
                  instances: list[Instance], redis: RedisServer, rstats: RedisStats,
                  seconds: float, warmup_s: float) -> Phase:
    """Open the planned viewers (instance, patient, cross?), warm up, measure `seconds`."""
    measuring, done = asyncio.Event(), asyncio.Event()
    results = [ViewerResult(cross) for _, _, cross in plan]
    tasks = [asyncio.create_task(viewer(f"{inst.ws}?patient_id={pid}", acc.cookie_of_viewer[j],
                                        inst.url, results[j], measuring, done))
             for j, (inst, pid, _) in enumerate(plan)]
    await asyncio.sleep(warmup_s)  # connect, subscribe, first frames: not measured
    for t in tasks:
        if t.done() and t.exception() is not None:
            raise RuntimeError(f"viewer failed: {t.exception()!r}")
    pids = {i.name: i.proc.pid for i in instances}
    pids["redis"] = redis.pid or 0
    cpu0 = {k: cpu_s(p) for k, p in pids.items()}
    me0, r0, t0 = self_cpu_s(), rstats.snapshot(), time.monotonic()
    measuring.set()
    await asyncio.sleep(seconds)  # the measurement window
    measuring.clear()
    elapsed = time.monotonic() - t0
    cpu = {k: 100.0 * (cpu_s(p) - cpu0[k]) / elapsed for k, p in pids.items()}
    cpu["client"] = 100.0 * (self_cpu_s() - me0) / elapsed
    r1 = rstats.snapshot()
    done.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return Phase(name, elapsed, results, cpu, {k: (r1[k] - r0[k]) / elapsed for k in r1})


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(phase: Phase) -> dict[str, Any]:
    fps = [v.frames / phase.seconds for v in phase.viewers]
    out: dict[str, Any] = {
        "frames_s": sum(v.frames for v in phase.viewers) / phase.seconds,
        "fps_min": min(fps) if fps else 0.0, "fps_med": statistics.median(fps) if fps else 0.0,
        "missed_pct": 100.0 * sum(v.missed for v in phase.viewers) / max(1, sum(
            v.missed + v.frames for v in phase.viewers)),
        "bytes_per_frame": (sum(v.bytes for v in phase.viewers)
                            / max(1, sum(v.frames for v in phase.viewers))),
    }
    for label, group in (("local", [v for v in phase.viewers if not v.cross]),
                         ("cross", [v for v in phase.viewers if v.cross])):
        pub = [x for v in group for x in v.publish_ms]
        smp = [x for v in group for x in v.sample_ms]
        out[label] = {"n": len(group), "pub_p50": pct(pub, 50), "pub_p99": pct(pub, 99),
                      "smp_p50": pct(smp, 50), "smp_p99": pct(smp, 99)}
    return out


def print_phase(phase: Phase, n_sessions: int) -> dict[str, Any]:
    s = summary(phase)
    print(f"\n[{phase.name}] {len(phase.viewers)} viewers, {phase.seconds:.1f} s")
    if phase.viewers:
        print(f"  frames/s delivered {s['frames_s']:.0f}; per viewer fps min {s['fps_min']:.1f}, "
              f"median {s['fps_med']:.1f}; {s['bytes_per_frame']:.0f} bytes/frame; "
              f"{s['missed_pct']:.2f} % of frames missed (seq gaps)")
        for label in ("local", "cross"):
            g = s[label]
            if g["n"]:
                print(f"  {label:5} viewers {g['n']:3}: publish->viewer p50 {g['pub_p50']:6.2f} "
                      f"ms, p99 {g['pub_p99']:6.2f} ms; sample->viewer p50 {g['smp_p50']:6.2f} "
                      f"ms, p99 {g['smp_p99']:6.2f} ms")
    cpu = phase.cpu_pct
    inst_cpu = sum(v for k, v in cpu.items() if k in ("A", "B"))
    print(f"  CPU % of one core: A {cpu['A']:.1f}, B {cpu['B']:.1f}, redis {cpu['redis']:.1f}, "
          f"this client {cpu['client']:.1f}; per live session (A+B)/{n_sessions}: "
          f"{inst_cpu / max(1, n_sessions):.2f}")
    r = phase.redis
    print(f"  Redis: {r['commands']:.0f} commands/s ({r['publish']:.0f} PUBLISH/s), "
          f"in {r['in_bytes'] / 1e3:.1f} kB/s, out {r['out_bytes'] / 1e3:.1f} kB/s")
    s["cpu"], s["redis"] = cpu, r
    return s


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b and np.isfinite(a) and np.isfinite(b) else "n/a"


# ---------------------------------------------------------------------- broker client costs


async def micro(url: str, redis: RedisServer, n: int = 10_000, size: int = 1600) -> dict[str, float]:
    """CPU per message of what an instance does to relay (redis-py asyncio, as api/broker.py:
    pipelined PUBLISH in batches of 256, `get_message` to receive) and of redis-server per
    PUBLISH, with messages of a frame's size. Sequential, so each cost is measured alone."""
    import redis.asyncio as aioredis

    payload = "x" * size
    pub = aioredis.from_url(url, decode_responses=True)
    sub = aioredis.from_url(url, decode_responses=True)

    async def publish_all(channel: str) -> None:
        for i in range(0, n, 256):
            pipe = pub.pipeline(transaction=False)
            for _ in range(min(256, n - i)):
                pipe.publish(channel, payload)
            await pipe.execute()

    out: dict[str, float] = {}
    try:
        c0, r0 = self_cpu_s(), cpu_s(redis.pid or 0)
        await publish_all("lumbo:bench:nobody")
        out["publish_us"] = (self_cpu_s() - c0) / n * 1e6
        out["redis_publish_us"] = (cpu_s(redis.pid or 0) - r0) / n * 1e6
        ps = sub.pubsub()
        await ps.subscribe("lumbo:bench:one")
        await ps.get_message(timeout=1.0)
        r0 = cpu_s(redis.pid or 0)
        await publish_all("lumbo:bench:one")  # queued for the subscriber (16 MB < the limit)
        out["redis_publish_1sub_us"] = (cpu_s(redis.pid or 0) - r0) / n * 1e6
        c0, got = self_cpu_s(), 0
        while got < n:
            msg = await ps.get_message(timeout=5.0)
            if msg is None:
                raise RuntimeError("micro-benchmark: messages lost")
            got += msg["type"] == "message"
        out["receive_us"] = (self_cpu_s() - c0) / n * 1e6
        await ps.aclose()
    finally:
        await pub.aclose()
        await sub.aclose()
    print(f"Relay costs per {size}-byte message (redis-py, hiredis "
          f"{'on' if _hiredis() else 'off'}): publish {out['publish_us']:.1f} us, receive "
          f"{out['receive_us']:.1f} us of client CPU; redis-server {out['redis_publish_us']:.1f} "
          f"us per PUBLISH without subscriber, {out['redis_publish_1sub_us']:.1f} us with one")
    return out


def _hiredis() -> bool:
    from redis.utils import HIREDIS_AVAILABLE

    return bool(HIREDIS_AVAILABLE)


# ---------------------------------------------------------------------- the run


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="lumbo-load-"))
    redis = RedisServer(workdir=data_dir / "redis").start()
    rstats = RedisStats(redis.url)
    acc = make_accounts(data_dir / "data", args.patients, args.viewers)
    instances: list[Instance] = []
    results: dict[str, Any] = {}
    try:
        results["micro"] = await micro(redis.url, redis)
        instances = [await start_instance("A", data_dir / "data", redis.url, "on_interest"),
                     await start_instance("B", data_dir / "data", redis.url, "on_interest")]
        hosts = await start_patients(instances, acc)
        other = {instances[0].name: instances[1], instances[1].name: instances[0]}
        n_cross = round(args.viewers * args.cross)
        plan_broker, plan_local = [], []
        for j in range(args.viewers):
            k = j % args.patients
            pid, host = acc.patient_ids[k], hosts[k]
            cross = j < n_cross
            plan_broker.append((other[host.name] if cross else host, pid, cross))
            plan_local.append((host, pid, False))
        print(f"{args.patients} simulated patients (real time, 2 x 100 Hz, ~50 frames/s each) on "
              f"2 instances; {args.viewers} therapist viewers; {os.cpu_count()} CPUs; "
              f"{args.seconds:.0f} s per phase")
        warm = args.warmup
        results["broker"] = print_phase(await measure(
            "broker: viewers on the other instance through Redis (and some local)", plan_broker,
            acc, instances, redis, rstats, args.seconds, warm), args.patients)
        results["local"] = print_phase(await measure(
            "local peer: the same viewers on their patient's own instance (no hop)", plan_local,
            acc, instances, redis, rstats, args.seconds, warm), args.patients)
        results["idle"] = print_phase(await measure(
            "idle: no viewers, relay on interest", [], acc, instances, redis, rstats,
            args.seconds / 2, 1.5), args.patients)
        for inst in instances:
            stop_instance(inst)
        instances = [await start_instance("A", data_dir / "data", redis.url, "always"),
                     await start_instance("B", data_dir / "data", redis.url, "always")]
        await start_patients(instances, acc)
        results["always"] = print_phase(await measure(
            "always: no viewers, every frame published to Redis", [], acc, instances, redis,
            rstats, args.seconds / 2, 1.5), args.patients)
    finally:
        for inst in instances:
            stop_instance(inst)
        redis.stop()

    b, loc = results["broker"], results["local"]
    print("\nRatios broker phase / local peer (cross viewers vs all-local viewers):")
    print(f"  publish->viewer p50 {ratio(b['cross']['pub_p50'], loc['local']['pub_p50'])}, "
          f"p99 {ratio(b['cross']['pub_p99'], loc['local']['pub_p99'])}; frames/s delivered "
          f"{ratio(b['frames_s'], loc['frames_s'])}; instance CPU "
          f"{ratio(b['cpu']['A'] + b['cpu']['B'], loc['cpu']['A'] + loc['cpu']['B'])}")
    idle, always = results["idle"], results["always"]
    print("Publish on interest vs always (no viewers anywhere):")
    print(f"  Redis in {idle['redis']['in_bytes'] / 1e3:.1f} vs "
          f"{always['redis']['in_bytes'] / 1e3:.1f} kB/s, PUBLISH/s {idle['redis']['publish']:.0f}"
          f" vs {always['redis']['publish']:.0f}; instance CPU "
          f"{idle['cpu']['A'] + idle['cpu']['B']:.1f} vs "
          f"{always['cpu']['A'] + always['cpu']['B']:.1f} % (ratio always/interest "
          f"{ratio(always['cpu']['A'] + always['cpu']['B'], idle['cpu']['A'] + idle['cpu']['B'])})")
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--patients", type=int, default=8, help="simulated patients (default 8)")
    p.add_argument("--viewers", type=int, default=16, help="therapist viewers (default 16)")
    p.add_argument("--seconds", type=float, default=15.0, help="per phase (default 15)")
    p.add_argument("--cross", type=float, default=0.75,
                   help="fraction of viewers on the other instance (default 0.75)")
    p.add_argument("--warmup", type=float, default=3.0, help="s before measuring (default 3)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.patients < 1 or args.viewers < 0 or not 0 <= args.cross <= 1 or args.seconds <= 0:
        p.error("need --patients >= 1, --viewers >= 0, 0 <= --cross <= 1, --seconds > 0")
    results = asyncio.run(run(args))
    if args.json:
        with contextlib.suppress(OSError):
            Path(args.json).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
