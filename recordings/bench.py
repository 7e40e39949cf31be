"""Storage cost and write throughput of the live writer (python -m recordings.bench [minutes]).

Simulates `minutes` (default 60) of the demo script at 2 × 100 Hz, delivered as a live source
does (20 ms batches: 2 samples per sensor), with the offline angles at 100 Hz appended in the same
rhythm, into a fresh store; reports bytes per hour, the producer's cost per append call, and the
sustained rate (all samples / wall time from the first append until `close()` returned: every
sample encoded and committed, not just queued).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from recordings.codec import CODECS
from recordings.store import RecordingStore
from recordings.testing import simulated_stream


def main(argv: list[str] | None = None) -> int:
    from processing.offline import analyze
    from sensors.simulation import PatientParams, SimulatedPatient, demo_script

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("minutes", type=float, nargs="?", default=60.0)
    args = ap.parse_args(argv)
    seconds = args.minutes * 60.0
    patient = SimulatedPatient(demo_script(), PatientParams(seed=0), loop=True)
    rec = patient.generate(0.0, seconds)
    stream = simulated_stream(rec, 2)
    angles = analyze(rec)
    n_samples = sum(len(b) for b in stream)
    per_hour = 3600.0 / seconds
    print(f"{args.minutes:g} min: {n_samples} samples in {len(stream)} batches, "
          f"{len(angles)} angle frames")
    for codec in CODECS:
        with tempfile.TemporaryDirectory() as d:
            store = RecordingStore(Path(d), codec=codec)
            w = store.begin_session()
            costs = []
            k = 0
            t0 = time.perf_counter()
            for i, b in enumerate(stream):
                c0 = time.perf_counter()
                w.append_batch(b)
                if i % 2 == 1:  # one angle batch per tick, as the pipeline gives
                    w.append_angles(angles.take(slice(k, k + 2)))
                    k += 2
                costs.append(time.perf_counter() - c0)
            t_appended = time.perf_counter() - t0
            assert w.close()
            elapsed = time.perf_counter() - t0
            stored = store.session(w.session_id).samples
            assert stored == n_samples and w.status.dropped_samples == 0, (stored, w.status)
            store.pragma("wal_checkpoint(TRUNCATE)")
            size = store.db_path.stat().st_size
            raw_only = _raw_bytes(store)
            costs.sort()
            print(f"[{codec}] {size * per_hour / 1e6:.1f} MB per hour in total "
                  f"({raw_only * per_hour / 1e6:.1f} MB raw samples); "
                  f"sustained {n_samples / elapsed:,.0f} samples/s committed "
                  f"({elapsed:.1f} s, appends done after {t_appended:.1f} s); append call "
                  f"median {statistics.median(costs) * 1e6:.0f} µs, p99 "
                  f"{costs[int(0.99 * len(costs))] * 1e6:.0f} µs, max {costs[-1] * 1e3:.1f} ms")
            store.close()
    return 0


def _raw_bytes(store: RecordingStore) -> int:
    row = store._query(
        "SELECT SUM(length(time_s) + COALESCE(length(device_time_s), 0) + "
        "COALESCE(length(counter), 0) + length(acc) + length(gyr) + COALESCE(length(mag), 0) + "
        "length(batch_sizes) + length(batch_gaps) + COALESCE(length(arrival), 0)) AS b "
        "FROM sample_blocks")
    return int(row[0]["b"] or 0)


if __name__ == "__main__":
    raise SystemExit(main())
