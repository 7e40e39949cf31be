"""Recordings: write rate with a live session streaming, storage per hour, export time.

    .venv/bin/python -m bench.recordings [--minutes 60] [--live-minutes 5] [--repeat 3]

One run, side by side with named peers:

1. Sustained write rate, samples/s from the first batch until everything is committed
   (`close()` returned):
   - live loop + writer: `LiveSession.process_batch` (pipeline, feedback engine, frame JSON)
     over the simulated stream (20 ms batches, 2 × 100 Hz), unpaced, with the session's
     `SessionRecorder` storing samples, angles and events as in the service;
   - live loop alone (no recording): what the loop costs by itself;
   - peer "writer alone": a `SessionWriter` fed the same batches (and the offline angles in the
     same rhythm) with nothing else running; also over the whole long session.
   The live service needs 200 samples/s; the ratios say how much headroom there is and what the
   writer costs the live loop. The live runs alternate and the best of `--repeat` is shown.
2. Storage per hour of two-sensor 100 Hz data: the database after the writer-alone hour (raw
   samples + angles) and after the live run (+ events), scaled to one hour.
3. Export of the hour-long session: raw CSV (exact floats) and OpenSim .sto (orientations
   computed, then written), against the peer `numpy.savetxt` of the same arrays (already in
   memory; `%.17g`, which also round-trips) to the same disk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from recordings.testing import simulated_stream


class _ListSource:
    """What the live session asks of a source, for batches handed over by the loop below."""

    time_origin_s = 0.0

    def health(self) -> dict:
        from sensors.samples import SensorHealth

        return {r: SensorHealth(r, connected=True, device_name=f"bench {r}",
                                nominal_rate_hz=100.0) for r in ("upper", "lower")}

    async def stop(self) -> None:
        pass


def _live(stream: list, data_dir: Path | None) -> tuple[float, int, int]:
    """(seconds until all committed, samples, database bytes) of the live loop (+ writer)."""
    from api import schema
    from api.live import LiveSession
    from api.recording import Recordings

    recs = Recordings(data_dir) if data_dir is not None else None
    session = LiveSession(_ListSource(), source_name="simulated", level=1)
    if recs is not None:
        session.recorder = recs.recorder_for(session, schema.StartSessionRequest(
            script="demo", realtime=False))

    async def run() -> float:
        t0 = time.perf_counter()
        for b in stream:
            frame = session.process_batch(b)
            if frame is not None:
                frame.model_dump_json()
        if recs is not None:
            session.state = "ended"
            session.recorder.on_change(session)  # type: ignore[union-attr]
            await recs.wait_closed()
        return time.perf_counter() - t0

    elapsed = asyncio.run(run())
    size = 0
    if recs is not None:
        store = recs.store
        assert store is not None
        rec = store.session(session.session_id)
        assert rec.samples == sum(len(b) for b in stream), "samples lost"
        store.pragma("wal_checkpoint(TRUNCATE)")
        size = store.db_path.stat().st_size
        asyncio.run(recs.aclose())
    return elapsed, sum(len(b) for b in stream), size


def _writer_alone(stream: list, angles, data_dir: Path) -> tuple[float, int, str]:  # type: ignore[no-untyped-def]
    from recordings import RecordingStore

    store = RecordingStore(data_dir)
    w = store.begin_session()
    k = 0
    t0 = time.perf_counter()
    for i, b in enumerate(stream):
        w.append_batch(b)
        if i % 2 == 1:  # one angle batch per tick, as the pipeline gives
            w.append_angles(angles.take(slice(k, k + 2)))
            k += 2
    assert w.close()
    elapsed = time.perf_counter() - t0
    store.pragma("wal_checkpoint(TRUNCATE)")
    size = store.db_path.stat().st_size
    sid = w.session_id
    store.close()
    return elapsed, size, sid


def _time(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    from processing.offline import analyze
    from recordings import RecordingStore
    from recordings.orientations import sensor_orientations
    from recordings.transfer import export_session
    from sensors.simulation import PatientParams, SimulatedPatient, demo_script

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="the long session (default 60)")
    ap.add_argument("--live-minutes", type=float, default=5.0,
                    help="live loop runs over this much of it (default 5)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="live runs, alternating with and without the writer; best of N")
    args = ap.parse_args(argv)
    seconds = args.minutes * 60.0
    print(f"simulating {args.minutes:g} min of the demo script, 2 × 100 Hz ...", flush=True)
    patient = SimulatedPatient(demo_script(), PatientParams(seed=0), loop=True)
    rec = patient.generate(0.0, seconds)
    stream = simulated_stream(rec, 2)
    angles = analyze(rec)
    n = sum(len(b) for b in stream)
    live_n = int(len(stream) * min(1.0, args.live_minutes / args.minutes)) // 2 * 2
    live_stream = stream[:live_n]
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("LUMBO_BENCH_DIR")) as tmp:
        tmpd = Path(tmp)
        print(f"writer alone, {args.minutes:g} min ...", flush=True)
        w_s, w_size, sid = _writer_alone(stream, angles, tmpd / "writer")
        lw_times, l_times, w_times = [], [], []
        live_angles = angles.take(slice(0, live_n))
        for k in range(args.repeat):  # alternating, best of N: the machine may be shared
            print(f"live loop + writer over {args.live_minutes:g} min ({k + 1}/{args.repeat})"
                  " ...", flush=True)
            lw_s, lw_n, lw_size = _live(live_stream, tmpd / f"live{k}")
            lw_times.append(lw_s)
            print(f"live loop alone ({k + 1}/{args.repeat}) ...", flush=True)
            l_s, l_n, _ = _live(live_stream, None)
            l_times.append(l_s)
            print(f"writer alone ({k + 1}/{args.repeat}) ...", flush=True)
            w_times.append(_writer_alone(live_stream, live_angles, tmpd / f"w{k}")[0])
        lw_rate, l_rate = lw_n / min(lw_times), l_n / min(l_times)
        w_rate = lw_n / min(w_times)
        rows += [
            ("write rate: live loop + writer", f"{lw_rate:,.0f} samples/s",
             f"{lw_rate / 200:,.0f}× the 200 samples/s a session needs"),
            ("write rate: live loop alone (no storage)", f"{l_rate:,.0f} samples/s",
             f"writer costs the loop {100 * (1 - lw_rate / l_rate):.1f} %"),
            ("write rate: peer, writer alone", f"{w_rate:,.0f} samples/s",
             f"live+writer / writer alone = {lw_rate / w_rate:.3f}"),
            (f"write rate: writer alone, whole {args.minutes:g} min", f"{n / w_s:,.0f} samples/s",
             "(the session the exports below read)"),
            ("storage per hour (writer alone: raw + angles)",
             f"{w_size * 3600 / seconds / 1e6:.1f} MB/h", f"{w_size / n:.1f} bytes/sample"),
            ("storage per hour (live: raw + angles + events)",
             f"{lw_size * 3600 / (lw_n / 200) / 1e6:.1f} MB/h",
             f"{lw_size / lw_n:.1f} bytes/sample"),
        ]
        store = RecordingStore(tmpd / "writer")
        out = tmpd / "out"
        out.mkdir()
        print("exports ...", flush=True)
        raw_s = _time(lambda: export_session(store, sid, "raw-csv", out / "raw.csv"))
        orient: dict = {}
        o_s = _time(lambda: orient.setdefault("o", sensor_orientations(
            store.read_batches(sid, merged=True))))
        sto_s = _time(lambda: export_session(store, sid, "sto", out / "o.sto"))
        # the peer: numpy.savetxt of the same arrays, already in memory
        arrays = {}
        for role, b in store.read_recording(sid).items():
            cols = [b.time_s[:, None], b.acc, b.gyr]
            cols += [b.mag] if b.mag is not None else []
            cols += [b.device_time_s[:, None], b.counter[:, None].astype(float)] \
                if b.counter is not None and b.device_time_s is not None else []
            arrays[role] = np.hstack(cols)
        o = orient["o"]
        sto_arr = np.hstack([o.time_s[:, None], o.q_lower, o.q_upper])
        peer_raw = _time(lambda: [np.savetxt(out / f"peer_{r}.csv", a, delimiter=",",
                                             fmt="%.17g") for r, a in arrays.items()])
        peer_sto = _time(lambda: np.savetxt(out / "peer.sto", sto_arr, delimiter="\t",
                                            fmt="%.17g"))
        raw_mb = (out / "raw.csv").stat().st_size / 1e6
        store.close()
        rows += [
            (f"export {args.minutes:g} min raw CSV", f"{raw_s:.1f} s ({raw_mb:.0f} MB)",
             f"peer savetxt {peer_raw:.1f} s: ratio {raw_s / peer_raw:.2f}"),
            (f"export {args.minutes:g} min .sto", f"{sto_s:.1f} s",
             f"peer savetxt {peer_sto:.1f} s: ratio {sto_s / peer_sto:.2f} "
             f"(of which orientations {o_s:.1f} s)"),
        ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"\n{n:,} samples ({args.minutes:g} min, 2 × 100 Hz); live runs over {live_n:,} "
          f"batches ({args.live_minutes:g} min), best of {args.repeat}; "
          f"{os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.1f}\n")
    print(f"{'figure':<{w0}}  {'value':<{w1}}  against")
    for a, b, c in rows:
        print(f"{a:<{w0}}  {b:<{w1}}  {c}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
