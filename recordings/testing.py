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
