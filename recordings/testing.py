"""Deterministic simulated streams for the recordings tests, benchmark and crash child process.

`simulated_stream` cuts a simulated patient's recording into the small per-sensor batches a live
source delivers (both sensors per tick, as `SimulatedPatientSource` does), without any clock.
"""

from __future__ import annotations

from sensors.samples import SENSOR_ROLES, SampleBatch
from sensors.simulation import PatientParams, SimulatedPatient, calibration_then_flexion_reps


def slice_batch(b: SampleBatch, i0: int, i1: int, gap_before: bool = False) -> SampleBatch:
    def s(a):  # type: ignore[no-untyped-def]
        return None if a is None else a[i0:i1]

    return SampleBatch(b.sensor, b.time_s[i0:i1], b.acc[i0:i1], b.gyr[i0:i1], s(b.mag),
                       s(b.device_time_s), s(b.counter), gap_before)


def simulated_recording(n_reps: int = 3, seed: int = 0, *, with_mag: bool = True
                        ) -> dict[str, SampleBatch]:
    """A calibration plus `n_reps` forward bends (about 17 s + 5.5 s per repetition)."""
    patient = SimulatedPatient(calibration_then_flexion_reps(n_reps),
                               PatientParams(seed=seed, with_mag=with_mag))
    return patient.record()


def simulated_stream(recording: dict[str, SampleBatch], samples_per_batch: int = 2
                     ) -> list[SampleBatch]:
    """The recording as a live source would deliver it: per tick one batch per sensor."""
    out: list[SampleBatch] = []
    n = max(len(b) for b in recording.values())
    for i in range(0, n, samples_per_batch):
        for role in SENSOR_ROLES:
            b = recording.get(role)
            if b is not None and i < len(b):
                out.append(slice_batch(b, i, min(i + samples_per_batch, len(b))))
    return out


def xsens_dot_export(batch: SampleBatch, *, tag: str = "dot", synced: bool = True,
                     start_us: int = 2_974_023_062, first_counter: int = 0,
                     leading_zero_row: bool = False) -> str:
    """A simulated sensor's batch as the Xsens DOT app exports it (see recordings.xsens_dot):
    metadata lines, then PacketCounter,SampleTimeFine,Euler_*,Acc_* (m/s²),Gyr_* (°/s); times
    as µs ticks from `start_us` (wrapping at 2^32 like the sensor's clock)."""
    import math

    lines = ["sep=,", f"DeviceTag:,{tag}", "FirmwareVersion:,2.0.0", "AppVersion:,2021.0"]
    if synced:
        lines.append("SyncStatus:,Synced")
    lines += ["OutputRate:,100Hz", "FilterProfile:,General",
              "Measurement Mode:,Custom Mode 1", "StartTime: ,2021-08-20_20:21:13_835 GMT+8",
              "© Xsens Technologies B. V. 2005-2021", "",
              "PacketCounter,SampleTimeFine,Euler_X,Euler_Y,Euler_Z,Acc_X,Acc_Y,Acc_Z,Gyr_X,"
              "Gyr_Y,Gyr_Z"]
    t0 = float(batch.time_s[0])
    deg = 180.0 / math.pi
    if leading_zero_row:
        lines.append(f"{first_counter},{start_us % 2**32},0,0,0,0,0,0,0,0,0")
        first_counter += 1
        start_us += 10_000
    for i in range(len(batch)):
        us = (start_us + int(round((float(batch.time_s[i]) - t0) * 1e6))) % 2**32
        a, g = batch.acc[i], batch.gyr[i] * deg
        lines.append(f"{(first_counter + i) % 2**32},{us},0.0,0.0,0.0,"
                     f"{a[0]:.6f},{a[1]:.6f},{a[2]:.6f},{g[0]:.6f},{g[1]:.6f},{g[2]:.6f}")
    return "\n".join(lines) + "\n"
