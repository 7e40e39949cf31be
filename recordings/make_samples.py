"""Regenerate the synthetic sample sessions in recordings/samples/ (deterministically).

    python -m recordings.make_samples            # rewrite them
    python -m recordings.make_samples --check    # exit 1 if the shipped files differ

Each is a simulated patient (sensors.simulation) recorded as raw interchange CSV, compressed
with xz. Values are rounded to about a real IMU's resolution (acc 1 mm/s²; gyr 1 mrad/s, the
step of a 16-bit ±2000 °/s gyroscope; mag 0.1 µT; time 1 ms): below the simulated noise, and
what keeps 2–2.5 minutes at 2 × 100 Hz under ~300 KB.
"""

from __future__ import annotations

import argparse
import io
import lzma
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recordings.interchange import CsvFormat, write_interchange
from sensors.simulation import (
    MovementScript,
    PatientParams,
    SimulatedPatient,
    calibration_then_flexion_reps,
    mixed_session,
)

SAMPLES_DIR = Path(__file__).with_name("samples")
FORMAT = CsvFormat(time="%.3f", acc="%.3f", gyr="%.3f", mag="%.1f")


@dataclass(frozen=True)
class Sample:
    filename: str
    description: str
    script: Callable[[], MovementScript]
    params: PatientParams
    call: str  # how the script and patient are made, for the README


SAMPLES: tuple[Sample, ...] = (
    Sample(
        "flexion_reps.csv.xz",
        "calibration, then 24 forward bends of about 40° trunk flexion (depth varies, sd 5°)",
        lambda: calibration_then_flexion_reps(24, 40.0, amplitude_sd_deg=5.0, seed=1),
        PatientParams(seed=1, with_mag=False),
        "SimulatedPatient(calibration_then_flexion_reps(24, 40.0, amplitude_sd_deg=5.0, "
        "seed=1), PatientParams(seed=1, with_mag=False)).record()",
    ),
    Sample(
        "mixed.csv.xz",
        "calibration, then flexion, extension, side bends, twists and combined bends, with "
        "magnetometer",
        lambda: mixed_session(120.0, seed=2),
        PatientParams(seed=2),
        "SimulatedPatient(mixed_session(120.0, seed=2), PatientParams(seed=2)).record()",
    ),
)


def render(sample: Sample) -> bytes:
    """The sample's compressed bytes (xz output is deterministic: no time stamps inside)."""
    patient = SimulatedPatient(sample.script(), sample.params)
    text = io.StringIO()
    write_interchange(text, patient.record(), fmt=FORMAT, extras=False, comments=[
        f"Lumbo synthetic sample: {sample.description}.",
        f"Made by recordings/make_samples.py: {sample.call}",
        "SYNTHETIC DATA from the simulated patient, not a person. Units: s, m/s^2, rad/s, uT.",
    ])
    return lzma.compress(text.getvalue().encode(), preset=9 | lzma.PRESET_EXTREME)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    ap.add_argument("--out", type=Path, default=SAMPLES_DIR)
    args = ap.parse_args(argv)
    differs = False
    for s in SAMPLES:
        data = render(s)
        path = args.out / s.filename
        if args.check:
            same = path.exists() and lzma.decompress(path.read_bytes()) == lzma.decompress(data)
            print(f"{path}: {'ok' if same else 'DIFFERS'}")
            differs |= not same
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"{path}: {len(data)} bytes")
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
