"""`lumbo analyze RAW.csv --out ANGLES.csv [--reps REPS.json] [--neutral A:B] [--bend A:B]`.

Reads a raw interchange CSV (docs/architecture.md; with or without magnetometer columns) with the
strict reader of `recordings.interchange`, runs the offline analysis (`processing.offline`: the
same pipeline as a live session) and writes:
- ANGLES.csv: `time_s,flexion_deg,lateral_bend_deg,axial_rotation_deg,...` (degrees, °/s), one
  row per lower-sensor sample; `nan` where no angle exists (before the upper sensor's first
  sample, across a gap);
- REPS.json (optional): the calibration used, its quality, and the repetitions and holds.

Exit codes: 0 done; 2 the file cannot be read (the message names the line); 3 a sensor is missing;
4 the recording is too short; 5 no usable calibration (the message says what to redo); 6 bad
options.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

EXIT_READ, EXIT_SENSOR, EXIT_SHORT, EXIT_CALIBRATION, EXIT_USAGE = 2, 3, 4, 5, 6
MIN_DURATION_S = 8.0
"""Shortest recording worth analysing: 5 s of standing and a slow forward bend."""

ANGLE_COLUMNS = (
    ("flexion_deg", "%.4f"), ("lateral_bend_deg", "%.4f"), ("axial_rotation_deg", "%.4f"),
    ("pelvic_tilt_deg", "%.4f"), ("upper_inclination_deg", "%.4f"),
    ("flexion_velocity_deg_s", "%.3f"), ("lateral_bend_velocity_deg_s", "%.3f"),
    ("axial_rotation_velocity_deg_s", "%.3f"), ("pelvic_tilt_velocity_deg_s", "%.3f"),
    ("upper_inclination_velocity_deg_s", "%.3f"), ("lumbar_angular_speed_deg_s", "%.3f"),
)


class AnalyzeError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def window(text: str) -> tuple[float, float]:
    """'START:END' in seconds."""
    try:
        a, b = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:END in seconds, got {text!r}") from None
    if not b > a:
        raise argparse.ArgumentTypeError(f"END must be after START in {text!r}")
    return a, b


def target(text: str) -> tuple[str, float]:
    """'DIRECTION:DEG', e.g. flexion:30."""
    from processing.segmentation import DIRECTIONS

    d, _, v = text.partition(":")
    try:
        deg = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DIRECTION:DEG, got {text!r}") from None
    if d not in DIRECTIONS:
        raise argparse.ArgumentTypeError(f"direction must be one of {', '.join(DIRECTIONS)}")
    return d, deg


def _read(path: Path) -> dict[str, Any]:
    from recordings.interchange import InterchangeError, read_interchange

    if not path.is_file():
        raise AnalyzeError(f"{path}: no such file", EXIT_READ)
    try:
        return read_interchange(path)
    except InterchangeError as e:
        if e.message.startswith("no rows for sensor"):
            role = "upper" if "'upper'" in e.message else "lower"
            raise AnalyzeError(
                f"{path}: no samples of the {role} sensor. The analysis needs both sensors, "
                "'upper' (T12/L1) and 'lower' (S2), in the 'sensor' column.", EXIT_SENSOR) from e
        raise AnalyzeError(str(e), EXIT_READ) from e
    except (OSError, UnicodeDecodeError) as e:
        raise AnalyzeError(f"{path}: cannot be read: {e}", EXIT_READ) from e


def _calibration_arg(args: argparse.Namespace) -> Any:
    from processing.calibration import Calibration
    from processing.pipeline import CalibrationWindows

    if args.calibration is not None:
        try:
            d = json.loads(Path(args.calibration).read_text())
            return Calibration.from_dict(d.get("calibration", d))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise AnalyzeError(f"{args.calibration}: not a calibration file ({e})",
                               EXIT_USAGE) from e
    if (args.neutral is None) != (args.bend is None):
        raise AnalyzeError("give both --neutral and --bend (or neither, to find them in the "
                           "recording)", EXIT_USAGE)
    if args.neutral is not None:
        if args.bend[0] < args.neutral[1]:
            raise AnalyzeError("the bend window must start after the neutral window ends",
                               EXIT_USAGE)
        return CalibrationWindows(args.neutral, args.bend)
    return None


def _write_angles(path: Path, lower_t: np.ndarray, angles: Any) -> int:
    n = lower_t.shape[0]
    cols = [lower_t]
    pos = np.searchsorted(lower_t, angles.time_s)
    ok = (pos < n) & (lower_t[np.minimum(pos, n - 1)] == angles.time_s)
    for name, _ in ANGLE_COLUMNS:
        c = np.full(n, np.nan)
        c[pos[ok]] = getattr(angles, name)[ok]
        cols.append(c)
    header = "time_s," + ",".join(name for name, _ in ANGLE_COLUMNS)
    fmt = ["%.6f"] + [f for _, f in ANGLE_COLUMNS]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        np.savetxt(f, np.column_stack(cols), fmt=fmt, delimiter=",", header=header, comments="")
    return n


def run(args: argparse.Namespace) -> int:
    from processing.calibration import CalibrationError
    from processing.offline import analyze_detailed

    raw = Path(args.raw)
    calibration = _calibration_arg(args)
    rec = _read(raw)
    for role in ("upper", "lower"):
        if role not in rec or len(rec[role]) == 0:
            raise AnalyzeError(f"{raw}: no samples of the {role} sensor. The analysis needs both "
                               "sensors, 'upper' and 'lower'.", EXIT_SENSOR)
    t0 = min(float(b.time_s[0]) for b in rec.values())
    t1 = max(float(b.time_s[-1]) for b in rec.values())
    if t1 - t0 < MIN_DURATION_S:
        raise AnalyzeError(
            f"{raw}: the recording is only {t1 - t0:.1f} s long; at least {MIN_DURATION_S:.0f} s "
            "are needed (5 s of still, upright standing, then a slow forward bend).", EXIT_SHORT)
    try:
        res = analyze_detailed(rec, calibration=calibration, targets=dict(args.target or []))
    except CalibrationError as e:
        where = "in the given windows" if calibration is not None else "in the recording"
        raise AnalyzeError(f"{raw}: no usable calibration {where}: {e}", EXIT_CALIBRATION) from e
    n = _write_angles(Path(args.out), rec["lower"].time_s, res.angles)
    msg = f"{n} rows written to {args.out}"
    if args.reps is not None:
        doc = {
            "version": 1,
            "source": str(raw),
            "calibration": res.calibration.to_dict(),
            "targets_deg": dict(args.target or []),
            "repetitions": [r.to_dict() for r in res.repetitions],
        }
        Path(args.reps).write_text(json.dumps(doc, indent=1, allow_nan=False, default=_json))
        msg += f"; {len(res.repetitions)} repetitions written to {args.reps}"
    q = res.calibration.quality
    print(msg)
    print(f"calibration: neutral {res.calibration.neutral_s}, bend {res.calibration.bend_s}, "
          f"comfortable flexion {res.calibration.comfortable_flexion_deg:.1f}°, bend off-plane "
          f"{q.get('bend_off_plane_deg', float('nan')):.1f}°")
    return 0


def _json(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not serialisable: {type(v)}")


def cmd_analyze(args: argparse.Namespace) -> int:
    """Entry point of the subcommand: errors become a message on stderr and an exit code."""
    try:
        return run(args)
    except AnalyzeError as e:
        print(f"lumbo analyze: error: {e}", file=sys.stderr)
        return e.code
