"""End to end: the real uvicorn server, the simulated patient, a real WebSocket client.

Checks what a display relies on: every frame validates against the schema the server serves,
the live angles follow the simulator's truth, frames come at >= 30 per second of simulated
time, and the repetitions counted equal the repetitions the script performs."""

from __future__ import annotations

import asyncio
import json

import httpx
import jsonschema
import numpy as np
import websockets

from api.settings import Settings

N_REPS = 6
START = {"script": "flexion_reps", "n_reps": N_REPS, "speed": 8.0, "realtime": True,
         "level": 6, "seed": 3}


async def test_live_session_over_websocket(live_server) -> None:
    srv = live_server(Settings(queue_size=100_000))  # this test wants every frame
    async with httpx.AsyncClient(base_url=srv.url, timeout=30, cookies=srv.cookies,
                                 headers=srv.headers) as http:
        frame_schema = (await http.get("/api/schema/frame")).json()
        validator = jsonschema.Draft202012Validator(frame_schema)
        async with websockets.connect(f"{srv.ws_url}/ws/live", max_size=2**24,
                                      additional_headers=srv.ws_headers()) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "status" and hello["session"]["state"] == "idle"
            resp = await http.post("/api/session/start", json=START)
            assert resp.status_code == 200, resp.text
            session_id = resp.json()["session_id"]

            frames: list[dict] = []
            final = None

            async def receive() -> None:
                nonlocal final
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg["type"] == "frame":
                        validator.validate(msg)
                        frames.append(msg)
                    elif msg["type"] == "status" and msg["session"]["state"] in (
                        "ended", "failed", "stopped"
                    ):
                        final = msg["session"]
                        return

            await asyncio.wait_for(receive(), timeout=120)  # generous bound, not a measurement
        summary = (await http.get("/api/session/summary")).json()

    assert final is not None and final["state"] == "ended", final
    assert {f["session_id"] for f in frames} == {session_id}
    assert [f["seq"] for f in frames] == list(range(len(frames))), "frames lost or reordered"

    # >= 30 frames per second of simulated time (t_s is simulated time on the host time base)
    t = np.array([f["t_s"] for f in frames])
    assert (len(t) - 1) / (t[-1] - t[0]) >= 30.0

    # angles within tolerance of the simulator's truth at the frame times, after calibration
    session = srv.app.state.manager.current
    patient, source = session.info["patient"], session.info["source"]
    live = [f for f in frames if f["angles"]["flexion_deg"] is not None]
    assert len(live) > 0.5 * len(frames)
    t_live = np.array([f["t_s"] for f in live])
    truth = patient.truth(t_live - source.time_origin_s)
    flex = np.array([f["angles"]["flexion_deg"] for f in live])
    rmse = float(np.sqrt(np.mean((flex - truth.flexion_deg) ** 2)))
    assert rmse <= 2.0, f"flexion RMSE {rmse:.2f}°"
    tilt = np.array([f["angles"]["pelvic_tilt_deg"] for f in live])
    assert float(np.sqrt(np.mean((tilt - truth.pelvic_tilt_deg) ** 2))) <= 3.0

    # the repetitions counted are the script's repetitions
    scored = [e for f in frames for e in f["events"] if e["type"] == "repetition_scored"]
    assert len(scored) == N_REPS
    assert frames[-1]["feedback"]["rep_count"] == N_REPS
    assert final["feedback"]["rep_count"] == N_REPS
    assert summary["current"]["reps"] == N_REPS
    assert final["sensors"]["lower"]["rate_hz"] > 90
