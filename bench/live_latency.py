"""Latency from a simulated sample to its frame on the WebSocket, and the demo's CPU use.

Runs `lumbo demo` in a subprocess (the real service: simulator -> pipeline -> feedback -> fan-out
-> uvicorn WebSocket), connects a WebSocket client, and for every frame measures
`receive time - t_s`, where `t_s` is the host monotonic time of the newest sample in the frame
(CLOCK_MONOTONIC is shared by all processes on one Linux machine). Side by side in the same run,
the named peer: a bare uvicorn WebSocket server that sends a timestamped message of the same size
at the same 50 Hz with no processing at all -- the transport floor. Figures are printed with the
ratio Lumbo / bare.

    .venv/bin/python -m bench.live_latency [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import websockets

CLK_TCK = os.sysconf("SC_CLK_TCK")

BARE_SERVER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    import uvicorn

    PAD = "x" * int(sys.argv[2])

    async def live(ws):
        await ws.accept()
        period = 0.02
        next_t = time.monotonic()
        while True:
            next_t += period
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            await ws.send_text(json.dumps({"type": "frame", "t_s": time.monotonic(), "pad": PAD}))

    app = Starlette(routes=[WebSocketRoute("/ws/live", live)])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


async def wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise TimeoutError(f"nothing listening on port {port}")


def demo_login_cookie(port: int, stdout_lines: list[str]) -> str | None:
    """Sign in as the demo patient with the one-time link the demo prints; returns a Cookie header."""
    import httpx

    link = next((ln.split(":", 1)[1].strip() for ln in stdout_lines if "Patient page:" in ln), None)
    if link is None or "token=" not in link:
        return None
    with httpx.Client(follow_redirects=False) as client:
        client.get(link)
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items()) or None


async def measure(port: int, seconds: float, origin: str | None, want_angles: bool,
                  cookie: str | None = None) -> dict:
    """Latencies (ms) of frames received over `seconds`; waits for angle frames first if asked."""
    headers = {"Origin": origin} if origin else {}
    if cookie:
        headers["Cookie"] = cookie
    lat_ms: list[float] = []
    sizes: list[int] = []
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/live", max_size=None,
                                  additional_headers=headers) as ws:
        if want_angles:  # skip the calibration phase: measure frames that carry angles
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("type") == "frame" and msg.get("angles"):
                    break
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            raw = await ws.recv()
            now = time.monotonic()
            msg = json.loads(raw)
            if msg.get("type") != "frame":
                continue
            lat_ms.append((now - float(msg["t_s"])) * 1000.0)
            sizes.append(len(raw))
        elapsed = time.monotonic() - start
    lat = np.asarray(lat_ms)
    return {"frames_per_s": len(lat) / elapsed, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "mean_bytes": float(np.mean(sizes))}


async def run_one(cmd: list[str], port: int, seconds: float, origin: str | None,
                  want_angles: bool) -> dict:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        await wait_listening(port, proc)
        lines: list[str] = []
        if want_angles:  # the Lumbo demo: read its banner up to the sign-in links
            while not any("Therapist page:" in ln for ln in lines):
                lines.append(await asyncio.to_thread(proc.stdout.readline))
        cookie = demo_login_cookie(port, lines) if want_angles else None
        cpu0, t0 = cpu_s(proc.pid), time.monotonic()
        result = await measure(port, seconds, origin, want_angles, cookie)
        result["cpu_pct"] = 100.0 * (cpu_s(proc.pid) - cpu0) / (time.monotonic() - t0)
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def main_async(seconds: float) -> None:
    lumbo_port, bare_port = free_port(), free_port()
    import tempfile

    data_dir = tempfile.mkdtemp(prefix="lumbo-bench-")  # a fresh demo patient, recorded to a tmp dir
    os.environ["LUMBO_DATA_DIR"] = data_dir
    lumbo_cmd = [sys.executable, "-m", "api.cli", "demo", "--port", str(lumbo_port)]
    lumbo = await run_one(lumbo_cmd, lumbo_port, seconds, f"http://127.0.0.1:{lumbo_port}", True)
    pad = int(lumbo["mean_bytes"]) - 40
    bare_cmd = [sys.executable, "-c", BARE_SERVER, str(bare_port), str(max(pad, 0))]
    bare = await run_one(bare_cmd, bare_port, seconds, None, False)

    print(f"Sample -> WebSocket frame, {seconds:.0f} s each, this machine ({os.cpu_count()} cores)")
    print(f"{'':28}{'frames/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'CPU %':>10}{'bytes':>10}")
    for name, r in (("lumbo demo (full pipeline)", lumbo), ("bare WebSocket (peer)", bare)):
        print(f"{name:28}{r['frames_per_s']:10.1f}{r['p50_ms']:10.2f}{r['p99_ms']:10.2f}"
              f"{r['cpu_pct']:10.1f}{r['mean_bytes']:10.0f}")
    print(f"{'ratio lumbo / bare':28}{lumbo['frames_per_s'] / bare['frames_per_s']:10.2f}"
          f"{lumbo['p50_ms'] / bare['p50_ms']:10.2f}{lumbo['p99_ms'] / bare['p99_ms']:10.2f}"
          f"{lumbo['cpu_pct'] / max(bare['cpu_pct'], 0.1):10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement per server")
    args = parser.parse_args()
    asyncio.run(main_async(args.seconds))


if __name__ == "__main__":
    main()
