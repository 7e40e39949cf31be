"""Benchmark of processing/: orientation on BROAD, lumbar accuracy, throughput, streaming cost.

    .venv/bin/python -m bench.processing --broad-dir ../shared/data/broad

Everything runs in one process on one core (the process is pinned to one CPU and BLAS threads
are limited to one), every comparison side by side in the same run:

1. BROAD (Laidig, Caruso, Cereatti & Seel, Data 6(7), 2021), scored the BROAD way (README in the
   data directory: q_err = q_est ⊗ q_opt⁻¹, inclination 2·acos√(w²+z²), total 2·acos|w|, RMS
   over the movement samples, NaN ignored, mean over trials, no alignment): Lumbo's
   `estimate_orientation` next to VQF with its defaults (`VQF.updateBatch`, real time),
   imufusion (x-io Fusion) with the best gain of a small grid on these very trials (0.1; tried
   0.05–1.0 with and without acceleration/magnetic rejection — this favours the peer) and ahrs'
   Madgwick (default gains). Fusion and ahrs' Madgwick give North-West-Up quaternions; they are turned into ENU
   (Rz(90°) ⊗ q) before scoring. Throughput is the 9D run's samples per second.
2. Lumbar angles on simulated ten-minute sessions (`mixed_session(600)`, no magnetometer):
   Lumbo's pipeline next to plain 6D VQF per sensor (VQF's own rest bias, no heading
   correction), the same calibration.
3. Offline throughput of the whole pipeline (both sensors, calibration, angles, segmentation,
   smoothness; `processing.offline.analyze_detailed`) against `VQF.updateBatch` alone over the
   same two sensors' data, interleaved runs, the least CPU time of each.
4. Streaming: processing time per 10 ms of data (both sensors' batches) after calibration,
   p50/p99, and memory per live session (tracemalloc: held after ten minutes, and peak).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from importlib.metadata import PackageNotFoundError  # noqa: E402
from importlib.metadata import version as _version  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import vqf  # noqa: E402

from processing import quaternion as qt  # noqa: E402
from processing.heading import HeadingParams  # noqa: E402
from processing.offline import analyze_detailed, chunked  # noqa: E402
from processing.orientation import estimate_orientation  # noqa: E402
from processing.pipeline import LumbarPipeline, PipelineParams  # noqa: E402
from processing.rest_bias import RestBiasParams  # noqa: E402
from sensors.simulation import PatientParams, SimulatedPatient, mixed_session  # noqa: E402

def version(dist: str) -> str:
    """Installed version of `dist` ("not installed": the BROAD peers are optional, `.[bench]`)."""
    try:
        return _version(dist)
    except PackageNotFoundError:
        return "not installed"


NWU_TO_ENU = np.array([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)])  # Rz(90°)


# -- BROAD ----------------------------------------------------------------------------------------
@dataclass
class Trial:
    name: str
    rate_hz: float
    gyr: np.ndarray
    acc: np.ndarray
    mag: np.ndarray
    q_opt: np.ndarray
    movement: np.ndarray


def load_trials(directory: Path) -> list[Trial]:
    out = []
    for f in sorted(directory.glob("*.npz")):
        d = np.load(f)
        out.append(Trial(f.stem, float(d["sampling_rate"]),
                         *(np.ascontiguousarray(d[k], dtype=float)
                           for k in ("imu_gyr", "imu_acc", "imu_mag", "opt_quat")),
                         d["movement"].astype(bool)))
    if not out:
        raise SystemExit(f"no .npz trials in {directory}")
    return out


def broad_errors(q: np.ndarray, trial: Trial) -> tuple[float, float]:
    """(inclination RMSE, total RMSE), degrees, the BROAD way."""
    e = qt.multiply(q, qt.conjugate(trial.q_opt))
    ok = trial.movement & ~np.isnan(e).any(axis=1)
    e = e[ok]
    inc = 2.0 * np.arccos(np.clip(np.sqrt(e[:, 0] ** 2 + e[:, 3] ** 2), 0.0, 1.0))
    tot = 2.0 * np.arccos(np.clip(np.abs(e[:, 0]), 0.0, 1.0))
    return (float(np.degrees(np.sqrt(np.mean(inc**2)))),
            float(np.degrees(np.sqrt(np.mean(tot**2)))))


Estimator = Callable[[Trial, bool], np.ndarray]  # (trial, with magnetometer) -> (N, 4)


def est_lumbo(t: Trial, mag: bool) -> np.ndarray:
    return estimate_orientation(t.gyr, t.acc, t.mag if mag else None, rate_hz=t.rate_hz)


def est_vqf(t: Trial, mag: bool) -> np.ndarray:
    f = vqf.VQF(1.0 / t.rate_hz)
    if mag:
        return f.updateBatch(t.gyr, t.acc, t.mag)["quat9D"]
    return f.updateBatch(t.gyr, t.acc)["quat6D"]


def est_fusion(t: Trial, mag: bool) -> np.ndarray:
    import imufusion

    ahrs = imufusion.Ahrs()
    ahrs.set_settings(imufusion.AhrsSettings(
        sample_rate=t.rate_hz, convention=imufusion.CONVENTION_NWU, gain=0.1))
    gyr_deg, acc_g = np.degrees(t.gyr), t.acc / 9.81
    q = np.empty((t.gyr.shape[0], 4))
    for i in range(q.shape[0]):
        if mag:
            ahrs.update(gyr_deg[i], acc_g[i], t.mag[i])
        else:
            ahrs.update_no_magnetometer(gyr_deg[i], acc_g[i])
        q[i] = ahrs.get_quaternion()
    return qt.multiply(NWU_TO_ENU, q)


def est_madgwick(t: Trial, mag: bool) -> np.ndarray:
    from ahrs.filters import Madgwick

    m = Madgwick(gyr=t.gyr, acc=t.acc, mag=t.mag if mag else None, frequency=t.rate_hz)
    return qt.multiply(NWU_TO_ENU, np.asarray(m.Q, dtype=float))


def bench_broad(trials: list[Trial], with_ahrs: bool) -> None:
    methods: list[tuple[str, Estimator]] = [
        ("Lumbo estimate_orientation", est_lumbo),
        (f"VQF {version('vqf')} defaults (real time)", est_vqf),
        (f"imufusion {version('imufusion')} (gain 0.1)", est_fusion),
    ]
    if with_ahrs:
        methods.append((f"ahrs {version('ahrs')} Madgwick (default gains)", est_madgwick))
    rows = []
    per_trial: dict[str, list[tuple[float, float, float]]] = {}
    for name, est in methods:
        res = []
        n_samples, seconds = 0, 0.0
        for t in trials:
            inc6, _ = broad_errors(est(t, False), t)
            t0 = time.perf_counter()
            q9 = est(t, True)
            seconds += time.perf_counter() - t0
            n_samples += t.gyr.shape[0]
            inc9, tot9 = broad_errors(q9, t)
            res.append((inc6, inc9, tot9))
        per_trial[name] = res
        r = np.array(res)
        rows.append((name, *r.mean(axis=0), float(r[:, 2].max()), n_samples / seconds))
        print(f"  ... {name}: done", file=sys.stderr, flush=True)
    ref = rows[1]
    print(f"\n## BROAD, {len(trials)} trials (mean of per-trial RMSE, degrees; ratio = / VQF)")
    print(f"| estimator | incl. 6D | incl. 9D | 9D total | worst trial 9D total | "
          f"throughput 9D (samples/s) |")
    print("|---|---|---|---|---|---|")
    for name, i6, i9, t9, worst, sps in rows:
        print(f"| {name} | {i6:.3f} ({i6 / ref[1]:.2f}) | {i9:.3f} ({i9 / ref[2]:.2f}) | "
              f"{t9:.3f} ({t9 / ref[3]:.2f}) | {worst:.2f} | {sps:,.0f} ({sps / ref[5]:.2f}) |")
    print("\nPer trial (incl. 6D / 9D total):")
    print("| trial | " + " | ".join(n.split(" (")[0] for n, _ in methods) + " |")
    print("|---|" + "---|" * len(methods))
    for i, t in enumerate(trials):
        cells = [f"{per_trial[n][i][0]:.2f} / {per_trial[n][i][2]:.2f}" for n, _ in methods]
        print(f"| {t.name} | " + " | ".join(cells) + " |")


# -- simulated sessions ---------------------------------------------------------------------------
def session(seed: int, minutes: float) -> SimulatedPatient:
    return SimulatedPatient(mixed_session(60.0 * minutes, seed=seed),
                            PatientParams(seed=seed, with_mag=False))


def bench_accuracy(seeds: list[int], minutes: float) -> None:
    plain = PipelineParams(rest=RestBiasParams(enabled=False), heading=HeadingParams(enabled=False))
    print(f"\n## Lumbar angles, simulated {minutes:g}-minute sessions, no magnetometer "
          "(RMSE after calibration, degrees; max |error| of axial rotation)")
    print("| seed | pipeline | flexion | lateral bend | axial rotation (max) | pelvic tilt |")
    print("|---|---|---|---|---|---|")
    for seed in seeds:
        patient = session(seed, minutes)
        rec = patient.record()
        for label, params in (("Lumbo", PipelineParams()), ("plain 6D VQF", plain)):
            res = analyze_detailed(rec, params)
            a = res.angles
            truth = patient.truth(a.time_s)
            sel = a.time_s > res.calibration.bend_s[1]
            err = {k: getattr(a, f"{k}_deg")[sel] - getattr(truth, f"{k}_deg")[sel]
                   for k in ("flexion", "lateral_bend", "axial_rotation", "pelvic_tilt")}
            rms = {k: float(np.sqrt(np.mean(v**2))) for k, v in err.items()}
            print(f"| {seed} | {label} | {rms['flexion']:.2f} | {rms['lateral_bend']:.2f} | "
                  f"{rms['axial_rotation']:.2f} ({np.max(np.abs(err['axial_rotation'])):.1f}) | "
                  f"{rms['pelvic_tilt']:.2f} |")


def best_of(f: Callable[[], object], n: int) -> float:
    """The least CPU time of this process over `n` runs of `f` (single-threaded: BLAS threads
    are limited to one; CPU time leaves out the time other processes had the core)."""
    times = []
    for _ in range(n):
        t0 = time.process_time()
        f()
        times.append(time.process_time() - t0)
    return min(times)


def bench_throughput(minutes: float, repeats: int) -> None:
    patient = session(0, minutes)
    rec = patient.record()
    n = sum(len(b) for b in rec.values())
    arrays = {r: (np.ascontiguousarray(b.gyr), np.ascontiguousarray(b.acc))
              for r, b in rec.items()}
    ts = 1.0 / patient.rate_hz

    def vqf_alone() -> None:
        for g, a in arrays.values():
            vqf.VQF(ts).updateBatch(g, a)

    reps: list[int] = []

    def pipeline() -> None:
        res = analyze_detailed(rec)
        reps.append(len(res.repetitions))

    def pipeline_angles_only() -> None:
        analyze_detailed(rec, PipelineParams(segmentation=None))

    # interleaved, the best of each: a slow spell of the machine (other processes on the core)
    # then hits all three alike instead of whichever ran during it
    t_vqf = t_pipe = t_ang = np.inf
    for _ in range(repeats):
        t_vqf = min(t_vqf, best_of(vqf_alone, 1))
        t_pipe = min(t_pipe, best_of(pipeline, 1))
        t_ang = min(t_ang, best_of(pipeline_angles_only, 1))
    print(f"\n## Offline throughput, one core, CPU time ({minutes:g} min, two sensors at "
          f"{patient.rate_hz:g} Hz = {n:,} samples, {reps[-1]} repetitions; best of {repeats})")
    print("| what | time (s) | samples/s | ratio to VQF alone | one hour of data (s) |")
    print("|---|---|---|---|---|")
    for label, t in (("VQF updateBatch alone (both sensors)", t_vqf),
                     ("Lumbo pipeline: angles, segmentation, smoothness", t_pipe),
                     ("Lumbo pipeline without segmentation", t_ang)):
        print(f"| {label} | {t:.3f} | {n / t:,.0f} | {t_vqf / t:.2f} | "
              f"{t * 60.0 / minutes:.2f} |")


def live_batches(rec: dict, batch_s: float) -> list[list]:
    """Per tick of `batch_s`: the batches of both sensors, as a live source delivers them."""
    ticks: dict[int, list] = {}
    for b in chunked(rec, batch_s):
        ticks.setdefault(int(np.floor((b.time_s[0] + 1e-9) / batch_s)), []).append(b)
    return [ticks[k] for k in sorted(ticks)]


def bench_streaming(minutes: float) -> None:
    patient = session(1, minutes)
    rec = patient.record()
    ticks = live_batches(rec, 0.01)
    pipe = LumbarPipeline()
    times = []
    for tick in ticks:
        t0 = time.perf_counter()
        for b in tick:
            pipe.update(b)
        pipe.pop_repetitions()
        dt = time.perf_counter() - t0
        if pipe.calibration is not None:
            times.append(dt)
    us = np.array(times) * 1e6
    # memory of one live session (traced separately: tracemalloc slows everything down)
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    pipe = LumbarPipeline()
    for tick in ticks:
        for b in tick:
            pipe.update(b)
        pipe.pop_repetitions()
    current, peak = tracemalloc.get_traced_memory()
    held = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
    tracemalloc.stop()
    print(f"\n## Streaming, 10 ms batches of both sensors ({minutes:g} min after calibration)")
    print("| per 10 ms of data | p50 | p99 | max |")
    print("|---|---|---|---|")
    print(f"| processing time (µs) | {np.percentile(us, 50):.0f} | {np.percentile(us, 99):.0f} | "
          f"{us.max():.0f} |")
    print(f"\nMemory of one live session (tracemalloc): {held / 1024:.0f} KiB held after "
          f"{minutes:g} min (bounded: nothing grows with the session), peak {peak / 1024:.0f} KiB")


def pin_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.processing", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broad-dir", type=Path, default=Path("../shared/data/broad"))
    ap.add_argument("--minutes", type=float, default=10.0, help="simulated session length")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--repeats", type=int, default=7, help="timing runs (the best counts)")
    ap.add_argument("--no-ahrs", action="store_true",
                    help="skip ahrs' Madgwick (pure Python: about a minute on the eight trials)")
    ap.add_argument("--only", choices=("throughput", "streaming", "accuracy", "broad"),
                    help="run only this part of the benchmark")
    args = ap.parse_args(argv)
    pinned = pin_one_core()
    print(f"# Lumbo processing benchmark\n\nPython {platform.python_version()}, numpy "
          f"{np.__version__}, vqf {version('vqf')}, imufusion {version('imufusion')}, ahrs "
          f"{version('ahrs')}; {platform.machine()} {platform.processor() or ''}, {pinned}")
    parts = {
        "throughput": lambda: bench_throughput(args.minutes, args.repeats),
        "streaming": lambda: bench_streaming(args.minutes),
        "accuracy": lambda: bench_accuracy(args.seeds, args.minutes),
        "broad": lambda: bench_broad(load_trials(args.broad_dir), not args.no_ahrs),
    }
    for name, run in parts.items():
        if args.only in (None, name):
            run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
