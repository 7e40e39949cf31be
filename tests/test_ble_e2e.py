"""End to end over BLE: the real uvicorn service with `source: "ble"`, bleak's real BlueZ backend,
the simulated BlueZ streaming two simulated sensors of different families (Xsens DOT upper at
60 Hz, its fastest; Movesense lower at 104 Hz, the next rate above the 100 Hz asked) strapped to the
simulated patient, and a real WebSocket client. (WitMotion, which has no timestamps, is covered
by test_ble_families.py and `lumbo demo --ble`; its time base reads a host stall of more than
0.15 s as lost samples, which a loaded test machine can produce.)

It checks what a clinic relies on: calibrated angles within a few degrees of the patient's
truth, repetitions counted, and a dropped link mid-session that reconnects by itself while the
session goes on (health shows the reconnect, a frame marks the gap, frames carry on). Waits are on
conditions in the data (frame times, health), never on sleeps; the simulated patient runs in real
time, so the test takes about as long as the script (~35 s).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import jsonschema
import numpy as np
import websockets

from api.settings import Settings
from sensors.ble import LinkConfig, ManagerConfig
from sensors.ble.backoff import Backoff
from sensors.simbluez import SimBluez
from sensors.simbluez.demo import peripheral_spec
from sensors.simbluez.streaming import patient_source

UPPER, LOWER = "C0:1D:B0:00:00:21", "C0:1D:B0:00:00:22"
N_REPS, REST_S, SEED = 3, 2.5, 5
SCRIPT = {"script": "calibration_then_flexion_reps", "n_reps": N_REPS, "rest_s": REST_S}
# Retry after 0.3 s (the default is 0.5 s ± 25 %): the reconnect fits in a rest, and the
# "reconnecting" state lasts longer than the session's health poll (LiveSession.HEALTH_CHECK_S),
# so its status message is sure to go out.
RETRY = ManagerConfig(link=LinkConfig(backoff=Backoff(initial_s=0.3, max_s=1.0, jitter=0.0),
                                      scan_timeout_s=3.0), silence_check_s=0.1)
REARM_S = 1.2  # the repetition detector re-arms after standing still ~1 s after a gap


def health_of(msg: dict[str, Any]) -> dict[str, Any] | None:
    sensors = msg["sensors"] if msg["type"] == "frame" else msg["session"]["sensors"]
    return sensors.get("lower")


async def test_ble_session_end_to_end_with_a_link_drop(live_server, fake: SimBluez) -> None:
    for family, address, role in (("xsens_dot", UPPER, "upper"), ("movesense", LOWER, "lower")):
        await fake.call("add_device", peripheral=peripheral_spec(family),
                        kwargs={"address": address}, address=address, role=role)
    patient = patient_source(rate_hz=100.0, seed=SEED, **SCRIPT)  # the same patient, for truth
    reps = [r for r in patient.repetitions() if r.label != "calibration"]
    end_s = reps[-1].end_s + 1.5

    srv = live_server(Settings(queue_size=100_000))  # this test wants every frame
    srv.app.state.source_context["ble_config"] = RETRY
    frames: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    drop_at: float | None = None  # sim time of the last frame before the drop
    t0: float | None = None  # host monotonic time of the patient's simulated time 0
    async with httpx.AsyncClient(base_url=srv.url, timeout=30, cookies=srv.cookies,
                                 headers=srv.headers) as http:
        validator = jsonschema.Draft202012Validator((await http.get("/api/schema/frame")).json())
        async with websockets.connect(f"{srv.ws_url}/ws/live", max_size=2**24,
                                      additional_headers=srv.ws_headers()) as ws:
            resp = await http.post("/api/session/start", json={
                "source": "ble", "upper": UPPER, "lower": LOWER, "rate_hz": 100, "level": 6})
            assert resp.status_code == 200, resp.text
            assert resp.json()["source"] == "ble"

            async def begin() -> float:
                """The patient starts once both sensors stream, so that the calibration's
                quiet standing is all there, however long connecting took."""
                mark = fake.mark()
                await fake.call("start_streaming", kind="patient", rate_hz=100.0, seed=SEED,
                                **SCRIPT)
                ev = await fake.wait_event("streaming", after=mark)
                # simulated time s is sampled at host time t0 + s (one monotonic clock)
                return ev["monotonic_s"] - ev["sim_t_s"]

            async def receive() -> None:
                nonlocal drop_at, t0
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg["type"] == "status":
                        statuses.append(msg)
                        assert msg["session"]["state"] not in ("failed", "ended"), msg
                        sensors = msg["session"]["sensors"]
                        if t0 is None and all((sensors.get(r) or {}).get("status") == "streaming"
                                              for r in ("upper", "lower")):
                            t0 = await begin()
                        continue
                    if msg["type"] != "frame" or t0 is None:
                        continue
                    frames.append(msg)
                    sim_t = msg["t_s"] - t0
                    scored = any(e["type"] == "repetition_scored" for e in msg["events"])
                    if drop_at is None and scored:  # standing again after the first repetition
                        drop_at = sim_t
                        await fake.call("drop_link", address=LOWER)
                    if sim_t > end_s:
                        return

            await asyncio.wait_for(receive(), timeout=120)  # a generous bound, not a measurement
            stopped = (await http.post("/api/session/stop")).json()

    assert t0 is not None and drop_at is not None, "no repetition was scored before the drop"
    assert stopped["state"] == "stopped"
    for f in frames[:: max(1, len(frames) // 200)] + [f for f in frames if f["gap"]]:
        validator.validate(f)
    assert [f["seq"] for f in frames] == list(range(len(frames))), "frames lost or reordered"

    # the link drop: health said so, a frame marks the gap, the session went on and reconnected
    reconnecting = [m for m in statuses + frames
                    if (h := health_of(m)) and h["status"] in ("reconnecting", "connecting")
                    and h["reconnects"] >= 1]
    assert reconnecting, "the lower sensor's reconnect never showed in the health"
    gap_frames = [f for f in frames if f["gap"] and f["t_s"] - t0 > drop_at]
    assert gap_frames, "no frame marks the samples lost in the drop"
    gap_end = gap_frames[0]["t_s"] - t0
    after = [f for f in frames if f["t_s"] - t0 > gap_end]
    # frames carried on, with every lower sample's angles (one frame per decoded batch: a
    # loaded machine makes fewer, larger batches, so count samples, not frames)
    assert after[-1]["t_s"] - t0 > end_s
    traced = sum(len(f["trace"]["t_s"]) for f in after)
    assert traced >= 0.9 * 104 * (after[-1]["t_s"] - after[0]["t_s"]), traced
    lower = after[-1]["sensors"]["lower"]
    assert lower["status"] == "streaming" and lower["connected"] and lower["reconnects"] == 1
    upper = after[-1]["sensors"]["upper"]
    assert lower["family"] == "movesense" and upper["family"] == "xsens_dot"
    assert (lower["nominal_rate_hz"], upper["nominal_rate_hz"]) == (104.0, 60.0)
    assert stopped["sensors"]["lower"]["reconnects"] == 1

    # calibrated angles follow the patient's truth
    live = [f for f in frames if f["angles"]["flexion_deg"] is not None]
    assert len(live) > 0.4 * len(frames)
    t = np.array([f["t_s"] for f in live]) - t0
    truth = patient.truth(t)
    flex = np.array([f["angles"]["flexion_deg"] for f in live])
    rmse = float(np.sqrt(np.mean((flex - truth.flexion_deg) ** 2)))
    assert rmse <= 3.0, f"flexion RMSE {rmse:.2f}° over BLE"
    assert float(np.max(np.abs(flex - truth.flexion_deg))) <= 8.0

    # repetitions: every one the patient made is scored, except those a gap cut into (a drop
    # during the bend, or too soon before it for the detector to re-arm standing still)
    windows = []
    for k, f in enumerate(frames):
        if f["gap"] and k:
            gaps = f["trace"]["gaps"]
            end = f["trace"]["t_s"][gaps[0]] if gaps else f["t_s"]
            windows.append((frames[k - 1]["t_s"] - t0, end - t0))
    spoiled = [r for r in reps
               if any(a < r.end_s - 0.5 and b + REARM_S > r.start_s for a, b in windows)]
    events = [(f["t_s"] - t0, e) for f in frames for e in f["events"]]
    scored = [e for _, e in events if e["type"] == "repetition_scored"]
    assert len(scored) == N_REPS - len(spoiled), (windows, spoiled)
    assert any(t > gap_end for t, e in events if e["type"] == "repetition_scored"), \
        "no repetition was counted after the reconnect"
    assert len([e for _, e in events if e["type"] == "repetition_interrupted"]) <= len(spoiled)
    peaks = sorted(e["score"]["peak_deg"] for e in scored)
    true_peaks = sorted(float(np.max(patient.truth(np.linspace(r.start_s, r.end_s, 200))
                                     .flexion_deg)) for r in reps if r not in spoiled)
    assert np.allclose(peaks, true_peaks, atol=3.0), (peaks, true_peaks)
    assert after[-1]["feedback"]["rep_count"] == len(scored)
