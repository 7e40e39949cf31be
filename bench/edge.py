"""Edge mode: catching up after a long offline period, and what that costs the live loop.

    .venv/bin/python -m bench.edge [--minutes 10] [--chunk-items 64]

One run: a real central service (`lumbo serve`, its own process, SQLite, loopback) and the
edge's uploader (api/edge_uploader.py, in this process) reading a real local store:

1. The backlog: `--minutes` of the simulated patient (2 × 100 Hz, 20 ms batches), recorded the
   way a live session is while the link is down: one commit (group) every 0.5 s of stream time,
   with the angles of the offline analysis in the same rhythm and an event per repetition.
2. Catching up: the uploader sends the whole session (raw blocks bit for bit, angles, events,
   calibration, end) in one pass: time to catch up, samples/s, bytes, requests. Named peer, in
   the same run, to the same central service: the only other way a stored session reaches it,
   `export` as raw interchange CSV on the edge + `POST /api/recordings/import` there (raw
   samples only: no angles, events or batch boundaries). Ratio peer time / edge time.
3. The live loop while catching up: `LumbarPipeline.update` per batch on the main thread over
   precomputed batches, unpaced, for as long as the uploader sends a fresh copy of the backlog
   (to another central service) in its thread, unpaced and then paced as it is while a live
   session runs (`busy`), then as many batches alone; per-batch time p50 / p99 / max, and the
   ratios to alone. The uploader shares the interpreter (GIL) but not the event loop.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH_S = 0.02
COMMIT_S = 0.5


def _batches(rec: dict[str, Any]) -> list[Any]:
    """The recording as 20 ms batches, the two sensors interleaved as they arrive live."""
    from sensors.samples import SampleBatch

    out = []
    n = len(rec["lower"])
    step = int(round(BATCH_S * 100))
    for i in range(0, n, step):
        for role in ("upper", "lower"):
            b = rec[role]
            sl = slice(i, min(i + step, len(b)))
            out.append(SampleBatch(role, b.time_s[sl], b.acc[sl], b.gyr[sl],
                                   None if b.mag is None else b.mag[sl],
                                   None if b.device_time_s is None else b.device_time_s[sl],
                                   None if b.counter is None else b.counter[sl]))
    return out


def build_backlog(data_dir: Path, minutes: float, patient_id: str | None) -> tuple[str, int]:
    """A `minutes`-long session recorded as a live one is (see the module docstring)."""
    from processing.offline import analyze_detailed
    from recordings.blocks import angle_columns
    from recordings.models import SensorInfo, SessionInfo
    from recordings.store import RecordingStore
    from recordings.writer import CommitPolicy
    from sensors.simulation import PatientParams, SimulatedPatient, calibration_then_flexion_reps

    n_reps = max(1, int((minutes * 60 - 29) / 5) + 1)
    rec = SimulatedPatient(calibration_then_flexion_reps(n_reps), PatientParams(seed=1)).record()
    result = analyze_detailed(rec)
    cols = angle_columns(result.angles)
    t_angles = cols["time_s"]
    store = RecordingStore(data_dir)
    info = SessionInfo(source="simulated", patient_id=patient_id,
                       sensors=(SensorInfo("upper", "sim", "", "", 100.0),
                                SensorInfo("lower", "sim", "", "", 100.0)))
    w = store.begin_session(info, policy=CommitPolicy(interval_s=3600,
                                                      max_pending_samples=10**9))
    batches = _batches(rec)
    per_commit = int(round(COMMIT_S / BATCH_S)) * 2
    reps = iter(sorted(r.start_s for r in result.repetitions))
    next_rep = next(reps, None)
    for i in range(0, len(batches), per_commit):
        group = batches[i:i + per_commit]
        for b in group:
            w.append_batch(b)
        t0, t1 = float(group[0].time_s[0]), float(group[-1].time_s[-1])
        sel = (t_angles >= t0) & (t_angles <= t1)
        if sel.any():
            w.append_angles({k: v[sel] for k, v in cols.items()})
        while next_rep is not None and next_rep <= t1:
            w.append_event(next_rep, "repetition", {"start_s": next_rep})
            next_rep = next(reps, None)
        assert w.flush(60)
    cal = result.calibration
    w.append_calibration(None, cal.to_dict() if hasattr(cal, "to_dict") else {})
    assert w.close("completed", timeout=60)
    samples = sum(len(b) for b in batches)
    store.close()
    return w.session_id, samples


class Central:
    """A central service in its own process (`lumbo serve` on loopback: its CPU is not this
    process's, as on a real network), with a therapist, a patient and a device token."""

    def __init__(self, data_dir: Path) -> None:
        import subprocess
        import sys

        import httpx

        from api.auth.service import AuthService
        from recordings.accounts import AccountStore

        auth = AuthService(AccountStore(data_dir))
        therapist = auth.create_therapist("bench-therapist", None)
        self.patient = auth.create_patient("bench-patient", therapist.id)
        self.device_token, _ = auth.devices.create(self.patient, "bench")
        self.bearer, _ = auth.open_session(therapist, "bearer")
        auth.close()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k != "LUMBO_DB"}
        env["LUMBO_DATA_DIR"] = str(data_dir)
        self.proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port",
                                      str(port), "--log-level", "error"], env=env,
                                     stdout=subprocess.DEVNULL,
                                     cwd=Path(__file__).resolve().parents[1])
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the central service did not start")
            threading.Event().wait(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def upload(edge_dir: Path, central: Central, chunk_items: int,
           live: bool = False) -> dict[str, float]:
    """One pass of the uploader; `live`: as while a live session runs (paced)."""
    from api.edge_client import CentralClient
    from api.edge_uploader import Uploader

    client = CentralClient(central.url, central.device_token)
    up = Uploader(edge_dir, client, patient_id=None, max_items=chunk_items,
                  busy=(lambda: True) if live else None)
    t0 = time.perf_counter()
    while up.run_pass():
        pass
    elapsed = time.perf_counter() - t0
    stats = up.stats
    up.stop()
    return {"s": elapsed, "chunks": stats.chunks_sent, "bytes": stats.bytes_sent,
            "samples": stats.samples_sent, "ended": stats.sessions_ended}


def peer_csv(edge_dir: Path, sid: str, central: Central) -> dict[str, float]:
    import httpx

    from recordings.store import RecordingStore
    from recordings.transfer import export_session

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "raw.csv"
        with RecordingStore(edge_dir, read_only=True) as store:
            export_session(store, sid, "raw-csv", path)
        size = path.stat().st_size
        with path.open("rb") as f:
            resp = httpx.post(f"{central.url}/api/recordings/import", params={"name": "raw.csv"},
                              content=f, timeout=600,
                              headers={"Authorization": f"Bearer {central.bearer}",
                                       "Content-Type": "text/csv"})
        resp.raise_for_status()
    return {"s": time.perf_counter() - t0, "bytes": size}


def live_loop(batches: list[Any], n: int | None = None,
              until: threading.Thread | None = None) -> np.ndarray:
    """Per-batch wall time (ms) of LumbarPipeline.update over `batches` (cycled, a fresh
    pipeline each time round): `n` batches, or as long as `until` runs."""
    from processing.pipeline import LumbarPipeline

    times: list[float] = []
    while True:
        pipe = LumbarPipeline()
        for b in batches:
            if (n is not None and len(times) >= n) or (until is not None and
                                                       not until.is_alive()):
                return np.array(times)
            t0 = time.perf_counter()
            pipe.update(b)
            times.append((time.perf_counter() - t0) * 1000)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="offline period (default 10)")
    ap.add_argument("--chunk-items", type=int, default=64, help="rows per chunk (default 64)")
    args = ap.parse_args(argv)
    import logging

    logging.getLogger("api.auth.setup").setLevel(logging.ERROR)
    from sensors.simulation import PatientParams, SimulatedPatient, calibration_then_flexion_reps

    print(f"bench.edge: {args.minutes:g} min offline, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="lumbo-bench-edge-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        sid, samples = build_backlog(root / "edge", args.minutes, None)
        print(f"backlog: session {sid}, {samples} samples recorded in "
              f"{time.perf_counter() - t0:.1f} s (0.5 s commits)")

        central = Central(root / "central")
        try:
            peer = peer_csv(root / "edge", sid, central)
            edge = upload(root / "edge", central, args.chunk_items)
        finally:
            central.stop()
        print("\n1. catching up after the offline period (same central service, loopback)")
        print(f"   edge uploader : {edge['s']:7.2f} s  {samples / edge['s']:9.0f} samples/s  "
              f"{edge['bytes'] / 1e6:6.1f} MB in {edge['chunks']:.0f} chunks "
              f"(raw bit for bit + angles + events; sessions ended: {edge['ended']:.0f})")
        print(f"   peer CSV export+import: {peer['s']:7.2f} s  {samples / peer['s']:9.0f} "
              f"samples/s  {peer['bytes'] / 1e6:6.1f} MB (raw samples only)")
        print(f"   ratio peer / edge time: {peer['s'] / edge['s']:.2f}  "
              f"({args.minutes:g} min of data caught up in {edge['s']:.1f} s: "
              f"{args.minutes * 60 / edge['s']:.0f}x real time)")

        rec = SimulatedPatient(calibration_then_flexion_reps(1), PatientParams(seed=2)).record()
        loop_batches = _batches(rec)
        print("\n2. the live loop (LumbarPipeline.update per 20 ms batch) while catching up")
        runs = {}
        for name, live in (("unpaced upload", False), ("paced (live)", True)):
            central2 = Central(root / f"central-{int(live)}")
            result: dict[str, Any] = {}
            thread = threading.Thread(target=lambda: result.update(
                upload(root / "edge", central2, args.chunk_items, live)))
            thread.start()
            runs[name] = (live_loop(loop_batches, until=thread), result)
            thread.join()
            central2.stop()
        n = max(len(t) for t, _ in runs.values())
        alone = live_loop(loop_batches, n=n)
        print(f"   {'alone':<15}: p50 {np.percentile(alone, 50):6.3f} ms  p99 "
              f"{np.percentile(alone, 99):6.3f} ms  max {alone.max():6.2f} ms  ({n} batches)")
        for name, (t, result) in runs.items():
            print(f"   {name:<15}: p50 {np.percentile(t, 50):6.3f} ms  p99 "
                  f"{np.percentile(t, 99):6.3f} ms  max {t.max():6.2f} ms  ratio to alone p50 "
                  f"{np.percentile(t, 50) / np.percentile(alone, 50):.2f} p99 "
                  f"{np.percentile(t, 99) / np.percentile(alone, 99):.2f}; the upload took "
                  f"{result.get('s', float('nan')):.1f} s")
        print("   (the service processes ~100 batches/s, both sensors: 10 ms per batch; the "
              "edge paces its upload while a live session runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
