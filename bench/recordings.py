"""Recordings: write rate with a live session streaming, storage per hour, export time.

    .venv/bin/python -m bench.recordings [--minutes 60] [--live-minutes 5] [--repeat 3]
                                         [--db postgresql://USER@HOST:PORT/DB | --db temp]

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

With `--db URL` the writer and export figures are measured on that PostgreSQL database too, in
the same run, and shown beside SQLite's with the ratio PostgreSQL / SQLite (`--db temp`: a
throwaway server on loopback from the Debian package's binaries, PostgreSQL's durable defaults:
every commit fsynced, unlike SQLite's `synchronous=NORMAL`). The sessions written there stay in
that database; storage there is the growth of `pg_database_size` (tables, TOAST, indexes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def _size(location: str | Path) -> int:
    from recordings import RecordingStore

    with RecordingStore(location) as store:
        return store.storage_bytes()


def _live(stream: list, location: str | Path | None) -> tuple[float, int, int]:
    """(seconds until all committed, samples, bytes the database grew) of the live loop
    (+ writer when `location` is given)."""
    from api import schema
    from api.live import LiveSession
    from api.recording import Recordings

    before = _size(location) if location is not None else 0
    recs = Recordings(location) if location is not None else None
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
        size = store.storage_bytes() - before
        asyncio.run(recs.aclose())
    return elapsed, sum(len(b) for b in stream), size


def _writer_alone(stream: list, angles, location: str | Path  # type: ignore[no-untyped-def]
                  ) -> tuple[float, int, str]:
    """(seconds until all committed, bytes the database grew, session id)."""
    from recordings import RecordingStore

    store = RecordingStore(location)
    before = store.storage_bytes()
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
    size = store.storage_bytes() - before
    sid = w.session_id
    store.close()
    return elapsed, size, sid


def _time(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@dataclass
class _Figures:
    """What one backend measured."""

    name: str
    whole_s: float = 0.0
    whole_size: int = 0
    live_writer_s: list[float] = field(default_factory=list)
    live_size: int = 0
    writer_s: list[float] = field(default_factory=list)
    raw_s: float = 0.0
    raw_mb: float = 0.0
    sto_s: float = 0.0
    orient_s: float = 0.0
    store: Any = None
    session_id: str = ""


def _measure(name: str, location: Callable[[str], str | Path], stream: list, angles: Any,
             live_stream: list, live_angles: Any, repeat: int, minutes: float,
             live_minutes: float, live_alone: list[float], out: Path) -> _Figures:
    from recordings import RecordingStore
    from recordings.orientations import sensor_orientations
    from recordings.transfer import export_session

    f = _Figures(name)
    print(f"[{name}] writer alone, {minutes:g} min ...", flush=True)
    f.whole_s, f.whole_size, f.session_id = _writer_alone(stream, angles, location("writer"))
    for k in range(repeat):  # alternating, best of N: the machine may be shared
        print(f"[{name}] live loop + writer over {live_minutes:g} min ({k + 1}/{repeat}) ...",
              flush=True)
        lw_s, _, f.live_size = _live(live_stream, location(f"live{k}"))
        f.live_writer_s.append(lw_s)
        if name == "SQLite":  # the loop alone does not depend on the backend
            print(f"live loop alone ({k + 1}/{repeat}) ...", flush=True)
            live_alone.append(_live(live_stream, None)[0])
        print(f"[{name}] writer alone ({k + 1}/{repeat}) ...", flush=True)
        f.writer_s.append(_writer_alone(live_stream, live_angles, location(f"w{k}"))[0])
    store = RecordingStore(location("writer"))
    sid = f.session_id
    print(f"[{name}] exports ...", flush=True)
    raw = out / f"{name}-raw.csv"
    f.raw_s = _time(lambda: export_session(store, sid, "raw-csv", raw))
    f.raw_mb = raw.stat().st_size / 1e6
    f.orient_s = _time(lambda: sensor_orientations(store.read_batches(sid, merged=True)))
    f.sto_s = _time(lambda: export_session(store, sid, "sto", out / f"{name}.sto"))
    f.store = store
    return f


def _peers(store: Any, sid: str, out: Path) -> tuple[float, float]:
    """numpy.savetxt of the same arrays, already in memory: (raw, sto) seconds."""
    from recordings.orientations import sensor_orientations

    arrays = {}
    for role, b in store.read_recording(sid).items():
        cols = [b.time_s[:, None], b.acc, b.gyr]
        cols += [b.mag] if b.mag is not None else []
        cols += [b.device_time_s[:, None], b.counter[:, None].astype(float)] \
            if b.counter is not None and b.device_time_s is not None else []
        arrays[role] = np.hstack(cols)
    o = sensor_orientations(store.read_batches(sid, merged=True))
    sto_arr = np.hstack([o.time_s[:, None], o.q_lower, o.q_upper])
    peer_raw = _time(lambda: [np.savetxt(out / f"peer_{r}.csv", a, delimiter=",",
                                         fmt="%.17g") for r, a in arrays.items()])
    peer_sto = _time(lambda: np.savetxt(out / "peer.sto", sto_arr, delimiter="\t",
                                        fmt="%.17g"))
    return peer_raw, peer_sto


def _print(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


def main(argv: list[str] | None = None) -> int:
    from processing.offline import analyze
    from sensors.simulation import PatientParams, SimulatedPatient, demo_script

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="the long session (default 60)")
    ap.add_argument("--live-minutes", type=float, default=5.0,
                    help="live loop runs over this much of it (default 5)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="live runs, alternating with and without the writer; best of N")
    ap.add_argument("--db", metavar="URL",
                    help="also measure on this PostgreSQL database (postgresql://USER@HOST:PORT/"
                         "DB), or 'temp' for a throwaway server on loopback; shown beside SQLite")
    args = ap.parse_args(argv)
    if args.db and args.db != "temp" and not args.db.startswith(("postgresql://",
                                                                  "postgres://")):
        ap.error("--db takes a postgresql:// URL or 'temp' (SQLite is always measured)")
    seconds = args.minutes * 60.0
    print(f"simulating {args.minutes:g} min of the demo script, 2 × 100 Hz ...", flush=True)
    patient = SimulatedPatient(demo_script(), PatientParams(seed=0), loop=True)
    rec = patient.generate(0.0, seconds)
    stream = simulated_stream(rec, 2)
    angles = analyze(rec)
    n = sum(len(b) for b in stream)
    live_n = int(len(stream) * min(1.0, args.live_minutes / args.minutes)) // 2 * 2
    live_stream = stream[:live_n]
    live_angles = angles.take(slice(0, live_n))
    cluster = None
    with tempfile.TemporaryDirectory(dir=os.environ.get("LUMBO_BENCH_DIR")) as tmp:
        tmpd = Path(tmp)
        out = tmpd / "out"
        out.mkdir()
        live_alone: list[float] = []
        common = (stream, angles, live_stream, live_angles, args.repeat, args.minutes,
                  args.live_minutes, live_alone, out)
        sq = _measure("SQLite", lambda tag: tmpd / tag, *common)
        pg = None
        try:
            if args.db:
                url = args.db
                if url == "temp":
                    from recordings.pgtemp import TempCluster

                    print("starting a throwaway PostgreSQL server (durable defaults) ...",
                          flush=True)
                    cluster = TempCluster.start(fast=False, base=os.environ.get(
                        "LUMBO_BENCH_DIR"))
                    url = cluster.database("lumbo_bench")
                pg = _measure("PostgreSQL", lambda tag: url, *common)
            print("exports: peer numpy.savetxt ...", flush=True)
            peer_raw, peer_sto = _peers(sq.store, sq.session_id, out)
            for f in (sq, pg):
                if f is not None:
                    f.store.close()
        finally:
            if cluster is not None:
                cluster.stop()

    lw_n = sum(len(b) for b in live_stream)
    l_rate = lw_n / min(live_alone)

    def rates(f: _Figures) -> dict[str, float]:
        return {"lw": lw_n / min(f.live_writer_s), "w": lw_n / min(f.writer_s),
                "whole": n / f.whole_s, "size_h": f.whole_size * 3600 / seconds / 1e6,
                "live_size_h": f.live_size * 3600 / (lw_n / 200) / 1e6}

    r = rates(sq)
    rows = [
        ("write rate: live loop + writer", f"{r['lw']:,.0f} samples/s",
         f"{r['lw'] / 200:,.0f}× the 200 samples/s a session needs"),
        ("write rate: live loop alone (no storage)", f"{l_rate:,.0f} samples/s",
         f"writer costs the loop {100 * (1 - r['lw'] / l_rate):.1f} %"),
        ("write rate: peer, writer alone", f"{r['w']:,.0f} samples/s",
         f"live+writer / writer alone = {r['lw'] / r['w']:.3f}"),
        (f"write rate: writer alone, whole {args.minutes:g} min", f"{r['whole']:,.0f} samples/s",
         "(the session the exports below read)"),
        ("storage per hour (writer alone: raw + angles)", f"{r['size_h']:.1f} MB/h",
         f"{sq.whole_size / n:.1f} bytes/sample"),
        ("storage per hour (live: raw + angles + events)", f"{r['live_size_h']:.1f} MB/h",
         f"{sq.live_size / lw_n:.1f} bytes/sample"),
        (f"export {args.minutes:g} min raw CSV", f"{sq.raw_s:.1f} s ({sq.raw_mb:.0f} MB)",
         f"peer savetxt {peer_raw:.1f} s: ratio {sq.raw_s / peer_raw:.2f}"),
        (f"export {args.minutes:g} min .sto", f"{sq.sto_s:.1f} s",
         f"peer savetxt {peer_sto:.1f} s: ratio {sq.sto_s / peer_sto:.2f} "
         f"(of which orientations {sq.orient_s:.1f} s)"),
    ]
    print(f"\n{n:,} samples ({args.minutes:g} min, 2 × 100 Hz); live runs over {live_n:,} "
          f"batches ({args.live_minutes:g} min), best of {args.repeat}; "
          f"{os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.1f}\n")
    print("SQLite (a data directory, WAL, synchronous=NORMAL):")
    _print(rows, ("figure", "value", "against"))
    if pg is not None:
        p = rates(pg)

        def row(label: str, a: float, b: float, fmt: str, unit: str) -> tuple[str, ...]:
            return (label, f"{a:{fmt}} {unit}", f"{b:{fmt}} {unit}", f"{b / a:.2f}")

        side = [
            row("write rate: live loop + writer", r["lw"], p["lw"], ",.0f", "samples/s"),
            row("write rate: writer alone", r["w"], p["w"], ",.0f", "samples/s"),
            row(f"write rate: writer alone, whole {args.minutes:g} min", r["whole"],
                p["whole"], ",.0f", "samples/s"),
            row("storage per hour (writer alone)", r["size_h"], p["size_h"], ".1f", "MB/h"),
            row(f"export {args.minutes:g} min raw CSV", sq.raw_s, pg.raw_s, ".1f", "s"),
            row(f"export {args.minutes:g} min .sto", sq.sto_s, pg.sto_s, ".1f", "s"),
        ]
        print("\nSide by side (same stream, same run):")
        _print(side, ("figure", "SQLite", "PostgreSQL", "PostgreSQL / SQLite"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
