"""Live fan-out: frames per second and publish -> viewer latency for 1, 10 and 100 viewers of one
patient, and how many live sessions one server process sustains; side by side with a bare peer.

What runs where (2 CPUs are enough; the figures say how busy each process was):

- the Lumbo server in its own process: `api.app.create_app` under uvicorn with the settings of
  `lumbo serve` (a fresh data directory, so every session is recorded as in a clinic), one
  therapist and the patients created in its account store, sessions started through the REST API
  (`POST /api/session/start?patient_id=...`, therapist cookie + Origin, the simulated patient at
  2 sensors x 100 Hz in real time, looping);
- the viewers in this process: WebSocket clients of `/ws/live?patient_id=...` signed in with the
  therapist's session cookie (and this site's Origin, as a browser sends it); they offer
  permessage-deflate as browsers do;
- the named peer, in its own process after the Lumbo server has stopped: a bare uvicorn +
  Starlette WebSocket broadcaster (no auth, no processing, no queues) that sends, at 50 Hz per
  patient, frames captured from the Lumbo run (same bytes, same compressibility) with a fresh
  publish time to every viewer of that patient, one send after the other.

Latency is `receive time - server_time_s`: the frame's publish time on the server's
CLOCK_MONOTONIC, read in the viewer process on the same clock (system-wide on Linux), so it is
pipeline publish -> fan-out -> uvicorn -> loopback TCP -> client parse; it includes the viewer
process's own scheduling (with 100 viewers, the last one of a burst waits for the 99 before it).
"age" is `receive time - t_s` (the frame's newest sample, same clock): it adds the pipeline and
any backlog, so a session that falls behind real time shows there, not in the fan-out latency.

Capacity: N sessions (N patients, one viewer each), ramped (existing sessions keep running); a
step passes when every session's viewer gets >= 30 frames/s and the p99 latency over all frames
of the step is < 50 ms; a failing step is measured once more (a shared machine has bursts) and
counts as failed only if it fails again. Steps after the first failure are not run. That
criterion lets a session pass that has fallen behind real time (its source delivers fewer than 50
frames/s while its backlog grows), so the stricter figure is printed too: the largest N whose
sessions all kept real time (50 frames/s, sample -> viewer p99 < 100 ms). The table also gives
the server's CPU per session; on a busy machine the ramp may stop because the server process
could not get a core, which the output then says.

    .venv/bin/python -m bench.fanout [--seconds 5] [--step-seconds 5] [--max-sessions 64]
                                     [--viewers 1,10,100] [--no-capacity] [--no-deflate]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import websockets

from bench.live_latency import cpu_s, free_port, wait_listening

FPS_MIN = 30.0
P99_MAX_MS = 50.0
RAMP = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
DEFLATE = True  # viewers offer permessage-deflate, as browsers do (--no-deflate: they don't)
CAPTURE_FRAMES = 250  # frames of the Lumbo run the peer replays
STAMP = '"server_time_s":'
SAMPLE_TIME = ',"t_s":'  # the frame's newest sample (the first "t_s": the trace's comes later)
SETTLE_S = 1.5  # after connecting viewers (and starting sessions), before a measurement
REAL_TIME_AGE_MS = 100.0  # sample -> viewer p99 above this: the session fell behind real time


# ---------------------------------------------------------------------------- server processes


def serve_lumbo(port: int, data_dir: str, patients: int, info_path: str) -> None:
    """The Lumbo server (`lumbo serve`'s app and uvicorn settings) with bench accounts."""
    import uvicorn

    from api.app import create_app
    from api.auth.middleware import COOKIE_NAME
    from api.settings import Settings

    settings = Settings(host="127.0.0.1", port=port, data_dir=Path(data_dir),
                        remember_sensors=False)
    app = create_app(settings)
    auth = app.state.auth
    therapist = auth.create_therapist("bench-therapist", None, "Bench therapist")
    ids = [auth.create_patient(f"bench-patient-{i:03d}", therapist.id, None,
                               f"Bench patient {i}").id for i in range(patients)]
    info = {"cookie_name": COOKIE_NAME, "therapist_cookie": auth.open_session(therapist)[0],
            "patients": ids}
    tmp = info_path + ".tmp"
    Path(tmp).write_text(json.dumps(info))
    os.replace(tmp, info_path)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            ws_ping_interval=5.0, ws_ping_timeout=10.0)  # as api.cli._run
    uvicorn.Server(config).run()


def serve_peer(port: int, frames_path: str) -> None:
    """The bare broadcaster: per patient (`?patient_id=`), a 50 Hz loop that stamps one frame and
    sends it to each of that patient's viewers in turn."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    frames = [tuple(p) for p in json.loads(Path(frames_path).read_text())]
    topics: dict[str, set[WebSocket]] = {}
    producers: dict[str, asyncio.Task[None]] = {}

    async def produce(topic: str) -> None:
        period, i = 0.02, 0
        next_t = time.monotonic()
        while topics.get(topic):
            next_t += period
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            head, tail = frames[i % len(frames)]
            i += 1
            msg = f"{head}{time.monotonic():.6f}{tail}"
            for ws in list(topics.get(topic, ())):
                try:
                    await ws.send_text(msg)
                except Exception:
                    topics[topic].discard(ws)
        producers.pop(topic, None)

    async def live(ws: WebSocket) -> None:
        await ws.accept()
        topic = ws.query_params.get("patient_id", "")
        topics.setdefault(topic, set()).add(ws)
        if topic not in producers:
            producers[topic] = asyncio.get_running_loop().create_task(produce(topic))
        try:
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            topics.get(topic, set()).discard(ws)

    app = Starlette(routes=[WebSocketRoute("/ws/live", live)])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            ws_ping_interval=5.0, ws_ping_timeout=10.0)
    uvicorn.Server(config).run()


@dataclass
class Proc:
    """A server subprocess and its port."""

    args: list[str]
    port: int
    proc: subprocess.Popen | None = None

    async def start(self) -> None:
        cmd = [sys.executable, "-m", "bench.fanout", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        try:
            await wait_listening(self.port, self.proc)
        except Exception as exc:
            err = self.stop().strip().splitlines()[-8:]
            raise RuntimeError(f"{' '.join(self.args[:1])} server did not start: {exc}",
                               *err) from None

    def cpu_s(self) -> float:
        assert self.proc is not None
        return cpu_s(self.proc.pid)

    def stop(self) -> str:
        if self.proc is None:
            return ""
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.proc = None
        return err or ""


# ---------------------------------------------------------------------------- viewers


@dataclass
class Viewer:
    """One WebSocket client: counts frames and their latencies while `measuring`."""

    url: str
    headers: dict[str, str]
    capture: list[str] | None = None
    measuring: bool = False
    frames: int = 0
    bytes: int = 0
    lat_s: list[float] = field(default_factory=list)
    age_s: list[float] = field(default_factory=list)  # sample -> viewer
    got_frame: asyncio.Event = field(default_factory=asyncio.Event)
    running: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    def reset(self) -> None:
        self.frames, self.bytes, self.lat_s, self.age_s = 0, 0, [], []

    async def _run(self) -> None:
        try:
            async with websockets.connect(self.url, additional_headers=self.headers,
                                          max_size=None, open_timeout=30,
                                          compression="deflate" if DEFLATE else None) as ws:
                async for raw in ws:
                    now = time.monotonic()
                    if not isinstance(raw, str):
                        continue
                    if raw.startswith('{"type":"frame"'):
                        self._frame(raw, now)
                    elif raw.startswith('{"type":"status"') and '"state":"running"' in raw:
                        self.running.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.got_frame.set()  # nobody waits forever on a viewer that is gone
            self.running.set()

    def _frame(self, raw: str, now: float) -> None:
        self.got_frame.set()
        if not self.measuring:
            return
        if self.capture is not None and len(self.capture) < CAPTURE_FRAMES:
            self.capture.append(raw)
        self.frames += 1
        self.bytes += len(raw)
        i = raw.find(STAMP)
        if i >= 0:
            j = raw.find(",", i)
            value = raw[i + len(STAMP):j]
            if value != "null":
                self.lat_s.append(now - float(value))
        i = raw.find(SAMPLE_TIME)
        if i >= 0:
            self.age_s.append(now - float(raw[i + len(SAMPLE_TIME):raw.find(",", i + 1)]))


@dataclass
class Window:
    """What the viewers saw during one measurement window."""

    seconds: float
    fps: list[float]
    lat_ms: np.ndarray
    age_ms: np.ndarray
    per_viewer_p99_ms: list[float]
    mean_bytes: float
    server_cpu_pct: float
    viewer_cpu_pct: float
    errors: list[str]

    def age(self, q: float) -> float:
        return float(np.percentile(self.age_ms, q)) if self.age_ms.size else float("nan")

    def p(self, q: float) -> float:
        return float(np.percentile(self.lat_ms, q)) if self.lat_ms.size else float("nan")

    @property
    def passed(self) -> bool:
        return (not self.errors and bool(self.fps) and min(self.fps) >= FPS_MIN
                and self.p(99) < P99_MAX_MS)


async def measure(viewers: list[Viewer], server: Proc, seconds: float) -> Window:
    for v in viewers:
        v.reset()
        v.measuring = True
    cpu0, own0, t0 = server.cpu_s(), time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)  # the measurement window itself
    for v in viewers:
        v.measuring = False
    elapsed = time.monotonic() - t0
    server_cpu = 100.0 * (server.cpu_s() - cpu0) / elapsed
    own_cpu = 100.0 * (time.process_time() - own0) / elapsed
    lat = np.asarray([x for v in viewers for x in v.lat_s]) * 1000.0
    age = np.asarray([x for v in viewers for x in v.age_s]) * 1000.0
    frames = sum(v.frames for v in viewers)
    return Window(
        seconds=elapsed, fps=[v.frames / elapsed for v in viewers], lat_ms=lat, age_ms=age,
        per_viewer_p99_ms=[float(np.percentile(v.lat_s, 99)) * 1000.0 if v.lat_s else float("nan")
                           for v in viewers],
        mean_bytes=sum(v.bytes for v in viewers) / max(frames, 1),
        server_cpu_pct=server_cpu, viewer_cpu_pct=own_cpu,
        errors=[v.error for v in viewers if v.error])


async def connect(viewers: list[Viewer], wait_running: bool, timeout_s: float = 60.0) -> None:
    for v in viewers:
        v.start()
    events = [v.running if wait_running else v.got_frame for v in viewers]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), timeout_s)


# ---------------------------------------------------------------------------- Lumbo side


@dataclass
class Lumbo:
    """The Lumbo server process, its accounts and the sessions started so far."""

    server: Proc
    info_path: Path
    info: dict = field(default_factory=dict)
    started: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": f"{self.info['cookie_name']}={self.info['therapist_cookie']}",
                "Origin": self.base}

    async def start(self) -> None:
        await self.server.start()
        self.info = json.loads(self.info_path.read_text())

    def viewer(self, k: int, capture: list[str] | None = None) -> Viewer:
        pid = self.info["patients"][k]
        return Viewer(f"ws://127.0.0.1:{self.server.port}/ws/live?patient_id={pid}",
                      self.headers, capture=capture)

    async def start_sessions(self, n: int) -> None:
        """Sessions for patients `started`..n-1, through the REST API as the therapist."""
        import httpx

        async with httpx.AsyncClient(base_url=self.base, headers=self.headers,
                                     timeout=30) as http:
            for k in range(self.started, n):
                r = await http.post("/api/session/start",
                                    params={"patient_id": self.info["patients"][k]},
                                    json={"source": "simulated", "script": "demo",
                                          "realtime": True, "loop": True, "seed": k})
                if r.status_code != 200:
                    raise RuntimeError(f"starting session {k}: {r.status_code} {r.text}")
                self.started = k + 1


def peer_frames(captured: list[str]) -> list[tuple[str, str]]:
    """Captured Lumbo frames split around their publish time, for the peer to re-stamp."""
    out = []
    for raw in captured:
        i = raw.find(STAMP)
        if i < 0:
            continue
        i += len(STAMP)
        j = raw.find(",", i)
        out.append((raw[:i], raw[j:]))
    if not out:
        raise RuntimeError("no frame with server_time_s captured")
    return out


# ---------------------------------------------------------------------------- the runs


def row(name: str, w: Window, age: bool = True) -> str:
    """`age`: the frames' `t_s` is live (Lumbo); the peer replays captured frames."""
    return (f"{name:<18}{min(w.fps):9.1f}{statistics.median(w.fps):9.1f}{w.p(50):9.2f}"
            f"{w.p(99):9.2f}" + (f"{w.age(99):9.1f}" if age else f"{'-':>9}") +
            f"{w.server_cpu_pct:10.1f}{w.viewer_cpu_pct:10.1f}{w.mean_bytes:9.0f}")


def ratio_row(a: Window, b: Window) -> str:
    def r(x: float, y: float) -> str:
        return f"{x / y:9.2f}" if y > 0 else f"{'-':>9}"

    return (f"{'  ratio Lumbo/peer':<18}{r(min(a.fps), min(b.fps))}"
            f"{r(statistics.median(a.fps), statistics.median(b.fps))}{r(a.p(50), b.p(50))}"
            f"{r(a.p(99), b.p(99))}{'':9}{r(a.server_cpu_pct, b.server_cpu_pct):>10}")


HEADER = (f"{'':<18}{'fps min':>9}{'fps med':>9}{'p50 ms':>9}{'p99 ms':>9}{'age p99':>9}"
          f"{'server%':>10}{'viewer%':>10}{'bytes':>9}")


async def viewers_of_one(lumbo: Lumbo, counts: list[int], seconds: float,
                         captured: list[str]) -> dict[int, Window]:
    """One patient's session watched by each count of viewers in turn."""
    await lumbo.start_sessions(1)
    out = {}
    for n in counts:
        viewers = [lumbo.viewer(0, captured if i == 0 else None) for i in range(n)]
        try:
            await connect(viewers, wait_running=True)
            await asyncio.sleep(SETTLE_S)  # connections settle; after the calibration, the
            # pipeline re-emits the buffered angles at once: not the steady state
            out[n] = await measure(viewers, lumbo.server, seconds)
        finally:
            await asyncio.gather(*(v.stop() for v in viewers))
    return out


async def peer_viewers(peer: Proc, counts: list[int], seconds: float) -> dict[int, Window]:
    out = {}
    for n in counts:
        viewers = [Viewer(f"ws://127.0.0.1:{peer.port}/ws/live?patient_id=p0", {})
                   for _ in range(n)]
        try:
            await connect(viewers, wait_running=False)
            await asyncio.sleep(SETTLE_S)
            out[n] = await measure(viewers, peer, seconds)
        finally:
            await asyncio.gather(*(v.stop() for v in viewers))
    return out


async def capacity(lumbo: Lumbo, ramp: list[int], seconds: float
                   ) -> tuple[list[tuple[int, Window]], int]:
    """Ramp the number of sessions (one viewer each) until a step fails."""
    steps: list[tuple[int, Window]] = []
    viewers: list[Viewer] = []
    best = 0
    try:
        for n in ramp:
            await lumbo.start_sessions(n)
            new = [lumbo.viewer(k) for k in range(len(viewers), n)]
            viewers += new
            await connect(new, wait_running=True)
            await asyncio.sleep(SETTLE_S)  # the new sessions' first seconds after calibration
            w = await measure(viewers, lumbo.server, seconds)
            if not w.passed:  # a shared machine has bursts: a failure must repeat to count
                again = await measure(viewers, lumbo.server, seconds)
                w = again if again.passed or again.p(99) < w.p(99) else w
            steps.append((n, w))
            print(f"  {n:4d} sessions: {'pass' if w.passed else 'FAIL'}  "
                  f"fps min {min(w.fps):.1f}, p99 {w.p(99):.1f} ms, server CPU "
                  f"{w.server_cpu_pct:.0f} % (load {os.getloadavg()[0]:.1f})", flush=True)
            if not w.passed:
                break
            best = n
    finally:
        await asyncio.gather(*(v.stop() for v in viewers))
    return steps, best


async def peer_streams(peer: Proc, n: int, seconds: float) -> Window:
    viewers = [Viewer(f"ws://127.0.0.1:{peer.port}/ws/live?patient_id=p{k}", {})
               for k in range(n)]
    try:
        await connect(viewers, wait_running=False)
        await asyncio.sleep(SETTLE_S)
        return await measure(viewers, peer, seconds)
    finally:
        await asyncio.gather(*(v.stop() for v in viewers))


async def main_async(args: argparse.Namespace) -> None:
    counts = [int(x) for x in args.viewers.split(",")]
    ramp = [n for n in RAMP if n <= args.max_sessions]
    work = Path(tempfile.mkdtemp(prefix="lumbo-fanout-"))
    captured: list[str] = []
    lumbo_port, peer_port = free_port(), free_port()
    lumbo = Lumbo(Proc(["_lumbo", str(lumbo_port), str(work / "data"), str(max(ramp)),
                        str(work / "info.json")], lumbo_port), work / "info.json")
    print(f"Live fan-out, this machine: {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}; server and peer each in their own process, the viewers in "
          f"this one; permessage-deflate {'on' if DEFLATE else 'off'}", flush=True)
    t0 = time.monotonic()

    def progress(what: str) -> None:
        print(f"[{time.monotonic() - t0:5.0f} s] {what}", flush=True)

    try:
        await lumbo.start()
        progress(f"Lumbo server up; {counts} viewers of one session")
        one = await viewers_of_one(lumbo, counts, args.seconds, captured)
        steps: list[tuple[int, Window]] = []
        best = 0
        if not args.no_capacity:
            progress("capacity ramp (one viewer per session; each step waits for its new "
                     "sessions' calibration)")
            steps, best = await capacity(lumbo, ramp, args.step_seconds)
    finally:
        err = lumbo.server.stop()
    progress("Lumbo server stopped; the peer")
    if "Traceback" in err or "ERROR" in err:
        print("Lumbo server stderr (last lines):", *err.strip().splitlines()[-8:], sep="\n  ")
    (work / "frames.json").write_text(json.dumps(peer_frames(captured)))
    peer = Proc(["_peer", str(peer_port), str(work / "frames.json")], peer_port)
    try:
        await peer.start()
        peer_one = await peer_viewers(peer, counts, args.seconds)
        peer_cap = await peer_streams(peer, best, args.step_seconds) if best else None
    finally:
        peer.stop()
        shutil.rmtree(work, ignore_errors=True)
    progress("done")

    print(f"\n1. One patient's session (2 sensors x 100 Hz, real time), N viewers, "
          f"{args.seconds:.0f} s each; p50/p99: publish -> viewer; age: newest sample -> "
          "viewer")
    print(f"{'viewers':<18}" + HEADER[18:])
    for n in counts:
        print(f"{n:<18}")
        print(row("  lumbo", one[n]))
        print(row("  peer (bare)", peer_one[n], age=False))
        print(ratio_row(one[n], peer_one[n]))
    if steps:
        print(f"\n2. Capacity: sessions per server process, one viewer each, "
              f"{args.step_seconds:.0f} s per step; pass = every viewer >= {FPS_MIN:.0f} "
              f"frames/s and p99 < {P99_MAX_MS:.0f} ms")
        print(f"{'sessions':<10}{'fps min':>9}{'fps med':>9}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'worst p99':>10}{'age p99':>9}{'server%':>9}{'%/sess.':>9}{'viewer%':>9}"
              "  result")
        for n, w in steps:
            print(f"{n:<10}{min(w.fps):9.1f}{statistics.median(w.fps):9.1f}{w.p(50):9.2f}"
                  f"{w.p(99):9.2f}{max(w.per_viewer_p99_ms):10.2f}{w.age(99):9.1f}"
                  f"{w.server_cpu_pct:9.1f}{w.server_cpu_pct / n:9.1f}{w.viewer_cpu_pct:9.1f}  "
                  f"{'pass' if w.passed else 'FAIL'}" + (f" ({w.errors[0]})" if w.errors else ""))
        last = steps[-1][0]
        print(f"largest N that passed: {best}" + ("" if not steps[-1][1].passed else
              f" (every step passed; the ramp stopped at {last}: raise --max-sessions)"))
        realtime = [n for n, w in steps if w.passed and w.age(99) < REAL_TIME_AGE_MS
                    and min(w.fps) >= 49.0]
        print(f"largest N that also kept real time (50 frames/s, sample -> viewer p99 < "
              f"{REAL_TIME_AGE_MS:.0f} ms): {max(realtime) if realtime else 0}")
        starved = [n for n, w in steps if w.server_cpu_pct < 75.0 and min(w.fps) < 49.0]
        if starved:
            print(f"  note: at {starved[0]} sessions the frames fell behind while the server "
                  f"process used < 75 % of a core: the machine, not the server, was the limit "
                  f"(load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        if peer_cap is not None:
            lw = dict(steps)[best]
            print(f"\n3. The peer at the same load: {best} streams at 50 Hz, one viewer each")
            print(f"{'':<18}" + HEADER[18:])
            print(row("  lumbo", lw))
            print(row("  peer (bare)", peer_cap, age=False))
            print(ratio_row(lw, peer_cap))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_lumbo":
        port, data_dir, patients, info = sys.argv[2:6]
        serve_lumbo(int(port), data_dir, int(patients), info)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_peer":
        serve_peer(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="measurement window per viewer count (default 5)")
    parser.add_argument("--viewers", default="1,10,100", help="viewer counts (default 1,10,100)")
    parser.add_argument("--step-seconds", type=float, default=5.0,
                        help="measurement window per capacity step (default 5)")
    parser.add_argument("--max-sessions", type=int, default=64,
                        help="stop the capacity ramp here (default 64)")
    parser.add_argument("--no-capacity", action="store_true", help="skip the capacity ramp")
    parser.add_argument("--no-deflate", action="store_true",
                        help="viewers do not offer permessage-deflate (browsers do): shows what "
                        "per-client compression costs the server")
    args = parser.parse_args()
    global DEFLATE
    DEFLATE = not args.no_deflate
    if args.seconds <= 0 or args.step_seconds <= 0 or args.max_sessions < 1:
        parser.error("--seconds, --step-seconds and --max-sessions must be positive")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
