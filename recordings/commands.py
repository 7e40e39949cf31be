"""`lumbo import`, `lumbo export`, `lumbo sessions`: the recordings side of the command line.

`api/cli.py` calls `add_subcommands(sub)` on its subparsers; each command is `cmd_*(args) -> int`
(0: done; 1: bad input or storage trouble, said on stderr; argparse's 2 for usage). Outputs are
written to a temporary file renamed into place, so a failed export leaves no half file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from recordings.errors import SessionNotFound, StorageError, StorageReadOnlyError
from recordings.interchange import InterchangeError, iter_interchange, write_interchange
from recordings.models import SessionInfo, SessionRecord
from recordings.paths import DB_FILENAME, default_data_dir
from recordings.store import RecordingStore

EXIT_OK = 0
EXIT_ERROR = 1
EXPORT_FORMATS = ("raw-csv", "angles-csv", "repetitions-csv", "events-csv", "sto")


def _err(message: str) -> int:
    print(f"lumbo: {message}", file=sys.stderr)
    return EXIT_ERROR


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()


def _open_store(args: argparse.Namespace, *, write: bool) -> RecordingStore:
    """Writable if possible (so crashed sessions get marked); read-only where it must be."""
    try:
        return RecordingStore(_data_dir(args))
    except StorageReadOnlyError:
        if write:
            raise
        return RecordingStore(_data_dir(args), read_only=True)


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR",
                   help="recordings directory (default: $LUMBO_DATA_DIR or ~/.local/share/lumbo)")


def add_subcommands(subparsers: Any) -> None:
    """Register `import`, `export` and `sessions` on an argparse subparsers object."""
    imp = subparsers.add_parser(
        "import", help="store a raw interchange CSV as a session (prints its id)",
        description="Validate a raw interchange CSV (time_s,sensor,acc_x..gyr_z[,mag_x..mag_z]"
                    "[,device_time_s,counter]; .gz/.xz allowed) and store it as a completed "
                    "session. Nothing is stored if any line is invalid.")
    imp.add_argument("file", help="CSV file ('-' for standard input)")
    _add_data_dir(imp)
    imp.add_argument("--patient", help="patient id to attach")
    imp.add_argument("--notes", default="", help="free-text notes")
    imp.add_argument("--no-unit-check", action="store_true",
                     help="skip the heuristics that catch g, mg and °/s")
    imp.set_defaults(func=cmd_import)

    exp = subparsers.add_parser(
        "export", help="write a stored session as raw CSV, angles, repetitions or OpenSim .sto",
        description="Export a stored session. raw-csv: the samples as stored (interchange "
                    "format with device time and counter); angles-csv: lumbar angles (stored, "
                    "or computed now from the raw data); repetitions-csv / events-csv: stored "
                    "events; sto: OpenSim/OpenSense sensor orientations (pelvis_imu, torso_imu).")
    exp.add_argument("session", help="session id or a unique prefix of it")
    exp.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    exp.add_argument("--out", required=True, help="output file ('-': standard output; "
                     ".gz/.xz compress)")
    exp.add_argument("--analysis", type=int, help="angles of this analysis id (default: newest)")
    _add_data_dir(exp)
    exp.set_defaults(func=cmd_export)

    ses = subparsers.add_parser("sessions", help="list stored sessions",
                                description="List stored sessions, newest first.")
    _add_data_dir(ses)
    ses.add_argument("--json", action="store_true", help="machine-readable output")
    ses.add_argument("--limit", type=int, help="show at most this many")
    ses.set_defaults(func=cmd_sessions)


# --- import ---------------------------------------------------------------------------------

def cmd_import(args: argparse.Namespace) -> int:
    path = args.file
    if path != "-" and not Path(path).is_file():
        return _err(f"{path}: no such file")
    try:
        store = _open_store(args, write=True)
    except StorageError as exc:
        return _err(str(exc))
    name = "stdin" if path == "-" else Path(path).name
    info = SessionInfo(source=f"import:{name}", patient_id=args.patient, notes=args.notes)
    try:
        with store:
            sid = store.import_recording(
                iter_interchange(path, check_units=not args.no_unit_check), info)
            rec = store.session(sid)
    except InterchangeError as exc:
        return _err(f"{exc}\nNothing was imported.")
    except (StorageError, OSError, EOFError, ValueError) as exc:
        return _err(f"{path}: {exc}\nNothing was imported.")
    counts = ", ".join(f"{s.role} {s.samples}" for s in rec.sensors)
    print(sid)
    print(f"imported {name}: {counts} samples, {rec.duration_s or 0.0:.1f} s", file=sys.stderr)
    return EXIT_OK


# --- export ---------------------------------------------------------------------------------

def _write_atomically(out: str, write: Callable[[IO[str] | str], Any]) -> Any:
    if out == "-":
        result = write(sys.stdout)
        sys.stdout.flush()
        return result
    target = Path(out)
    tmp = target.with_name(f".{target.name}.partial{''.join(target.suffixes[-1:])}")
    try:
        result = write(str(tmp))
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return result


def _angles(store: RecordingStore, rec: SessionRecord, analysis: int | None) -> dict[str, Any]:
    cols = store.read_angles(rec.id, analysis)
    if cols or analysis is not None:
        if not cols:
            raise LookupError(f"analysis {analysis} of session {rec.id} has no angles")
        return cols
    from processing.calibration import CalibrationError
    from processing.offline import analyze

    print(f"lumbo: session {rec.id} has no stored angles; analysing its raw data now "
          "(not stored)", file=sys.stderr)
    try:
        return analyze(store.read_batches(rec.id))  # type: ignore[return-value]
    except CalibrationError as exc:
        raise LookupError(f"cannot compute angles: {exc}") from exc


def _export(store: RecordingStore, rec: SessionRecord, args: argparse.Namespace) -> int:
    fmt = args.format
    if fmt == "raw-csv":
        if not rec.sensors:
            raise LookupError(f"session {rec.id} has no samples")
        comments = [f"lumbo raw interchange; session {rec.id}; started {rec.started_at} UTC; "
                    f"source {rec.source or '-'}",
                    "units: time_s and device_time_s s, acc m/s^2, gyr rad/s, mag uT; "
                    "sensor frames; time_s is the host clock"]
        return _write_atomically(args.out, lambda f: write_interchange(
            f, {s.role: store.iter_sensor_batches(rec.id, s.role) for s in rec.sensors},
            comments=comments))
    if fmt == "angles-csv":
        from recordings.exports import write_angles_csv

        cols = _angles(store, rec, args.analysis)
        return _write_atomically(args.out, lambda f: write_angles_csv(f, cols))
    if fmt in ("repetitions-csv", "events-csv"):
        from recordings.exports import REPETITION_EVENT_TYPES, write_events_csv

        types = REPETITION_EVENT_TYPES if fmt == "repetitions-csv" else None
        events = store.events(rec.id)
        n = _write_atomically(args.out, lambda f: write_events_csv(f, events, types=types))
        if n == 0:
            print(f"lumbo: session {rec.id} has no "
                  f"{'repetitions' if types else 'events'}; wrote the header only",
                  file=sys.stderr)
        return n
    if fmt == "sto":
        from recordings.exports import STO_COLUMNS, write_sto
        from recordings.orientations import sensor_orientations

        o = sensor_orientations(store.read_batches(rec.id))
        if not o.heading_shared:
            print("lumbo: no magnetometer data: each sensor's heading is arbitrary (6D); "
                  "inclinations are exact, headings are not comparable", file=sys.stderr)
        quats = {STO_COLUMNS["lower"]: o.q_lower, STO_COLUMNS["upper"]: o.q_upper}
        return _write_atomically(args.out, lambda f: write_sto(f, o.time_s, quats))
    raise ValueError(f"unknown format {fmt}")


def cmd_export(args: argparse.Namespace) -> int:
    try:
        store = _open_store(args, write=False)
    except StorageError as exc:
        return _err(str(exc))
    try:
        with store:
            rec = store.session(args.session)
            n = _export(store, rec, args)
    except SessionNotFound as exc:
        return _err(str(exc.args[0]))
    except (LookupError, ValueError, StorageError, OSError) as exc:
        return _err(f"export of {args.session} failed: {exc}")
    if args.out != "-":
        print(f"wrote {n} rows to {args.out}", file=sys.stderr)
    return EXIT_OK


# --- sessions -------------------------------------------------------------------------------

def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def cmd_sessions(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    if not (data_dir / DB_FILENAME).exists():
        if args.json:
            print("[]")
        else:
            print(f"No sessions yet (no database in {data_dir}).")
        return EXIT_OK
    try:
        with _open_store(args, write=False) as store:
            sessions = store.sessions(limit=args.limit)
    except StorageError as exc:
        return _err(str(exc))
    if args.json:
        print(json.dumps([s.as_dict() for s in sessions], indent=2))
        return EXIT_OK
    if not sessions:
        print(f"No sessions yet (in {data_dir}).")
        return EXIT_OK
    rows = [("ID", "STARTED (UTC)", "LENGTH", "STATUS", "SAMPLES", "PATIENT", "SOURCE")]
    for s in sessions:
        rows.append((s.id, s.started_at[:19].replace("T", " "), _duration(s.duration_s),
                     s.status, str(s.samples), s.patient_id or "-", s.source or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return EXIT_OK
