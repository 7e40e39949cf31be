"""`lumbo import`, `lumbo export`, `lumbo sessions`: the recordings side of the command line.

`api/cli.py` calls `add_subcommands(sub)` on its subparsers; each command is `cmd_*(args) -> int`
(0: done; 1: bad input or storage trouble, said on stderr; argparse's 2 for usage). Outputs are
written to a temporary file renamed into place, so a failed export leaves no half file. The work
itself is in `recordings.transfer`, shared with the REST API.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from recordings.database import URL_HELP, parse_location
from recordings.errors import SessionNotFound, StorageError, StorageReadOnlyError
from recordings.interchange import InterchangeError
from recordings.paths import DB_FILENAME, storage_location
from recordings.store import RecordingStore
from recordings.transfer import (
    EXPORT_FORMATS,
    IMPORT_FORMATS,
    ExportError,
    export_session,
    import_interchange,
    import_xsens_dot,
)

EXIT_OK = 0
EXIT_ERROR = 1
__all__ = ["EXPORT_FORMATS", "add_subcommands", "cmd_export", "cmd_import", "cmd_sessions"]


def _err(message: str) -> int:
    print(f"lumbo: {message}", file=sys.stderr)
    return EXIT_ERROR


def location(args: argparse.Namespace) -> str | Path:
    """The database a command opens: --db, else --data-dir, else $LUMBO_DB, else the data
    directory ($LUMBO_DATA_DIR or ~/.local/share/lumbo)."""
    return storage_location(getattr(args, "db", None), getattr(args, "data_dir", None))


def _open_store(args: argparse.Namespace, *, write: bool) -> RecordingStore:
    """Writable if possible (so crashed sessions get marked); read-only where it must be."""
    try:
        return RecordingStore(location(args))
    except StorageReadOnlyError:
        if write:
            raise
        return RecordingStore(location(args), read_only=True)


def db_url(text: str) -> str:
    """argparse type of `--db`: a storage location that parses (usage error otherwise)."""
    try:
        parse_location(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL", type=db_url,
                   help=f"the recordings database: {URL_HELP} (default: $LUMBO_DB, else "
                        "lumbo.db in the data directory)")


def add_data_dir_option(p: argparse.ArgumentParser) -> None:
    """`--data-dir` and `--db` (which wins when both are given)."""
    p.add_argument("--data-dir", metavar="DIR",
                   help="recordings directory (default: $LUMBO_DATA_DIR or ~/.local/share/lumbo)")
    add_db_option(p)


_add_data_dir = add_data_dir_option


def add_subcommands(subparsers: Any) -> None:
    """Register `import`, `export` and `sessions` on an argparse subparsers object."""
    imp = subparsers.add_parser(
        "import", help="store a raw interchange CSV or two Xsens DOT exports as a session",
        description="Validate a recording and store it as a completed session; prints its id. "
                    "interchange (default): Lumbo's raw CSV (time_s,sensor,acc_x..gyr_z"
                    "[,mag_x..mag_z][,device_time_s,counter]; SI units; .gz/.xz allowed). "
                    "xsens-dot: the Xsens DOT app's CSV export, one file per sensor (--upper, "
                    "--lower), with PacketCounter, SampleTimeFine (µs), Acc_X..Z (m/s²) and "
                    "Gyr_X..Z (°/s). Nothing is stored if any line is invalid; the error names "
                    "the file and line.")
    imp.add_argument("file", nargs="?", help="interchange CSV file ('-' for standard input)")
    imp.add_argument("--format", choices=IMPORT_FORMATS, default="interchange",
                     help="input format (default: interchange)")
    imp.add_argument("--upper", metavar="CSV", help="xsens-dot: export of the sensor at T12/L1")
    imp.add_argument("--lower", metavar="CSV", help="xsens-dot: export of the sensor on S2")
    imp.add_argument("--assume-simultaneous-start", action="store_true",
                     help="xsens-dot: sensors not synchronised in the app; take both first "
                          "samples as simultaneous")
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
    exp.add_argument("--analysis", type=int,
                     help="angles or events of this analysis id (default: the newest angles; "
                          "the session's own events)")
    _add_data_dir(exp)
    exp.set_defaults(func=cmd_export)

    ses = subparsers.add_parser(
        "sessions", help="list stored sessions, or show one with its analyses",
        description="List stored sessions, newest first; with a session id, its details: "
                    "sensors, events, calibrations and analyses.")
    ses.add_argument("session", nargs="?", help="show this session (id or unique prefix)")
    _add_data_dir(ses)
    ses.add_argument("--json", action="store_true", help="machine-readable output")
    ses.add_argument("--limit", type=int, help="show at most this many")
    ses.set_defaults(func=cmd_sessions)


# --- import ---------------------------------------------------------------------------------

def cmd_import(args: argparse.Namespace) -> int:
    dot = args.format == "xsens-dot"
    if dot:
        if args.file is not None or not (args.upper and args.lower):
            return _err("--format xsens-dot takes the two sensors' exports as --upper FILE "
                        "--lower FILE (and no positional file)")
        paths = [args.upper, args.lower]
    else:
        if args.file is None or args.upper or args.lower:
            return _err("--format interchange takes one file (or '-'); --upper/--lower are for "
                        "--format xsens-dot")
        paths = [args.file]
    for path in paths:
        if path != "-" and not Path(path).is_file():
            return _err(f"{path}: no such file")
    try:
        store = _open_store(args, write=True)
    except StorageError as exc:
        return _err(str(exc))
    name = "stdin" if paths[0] == "-" else Path(paths[0]).name
    try:
        with store:
            if dot:
                res = import_xsens_dot(store, args.upper, args.lower, patient_id=args.patient,
                                       notes=args.notes, check_units=not args.no_unit_check,
                                       assume_simultaneous_start=args.assume_simultaneous_start)
                name = f"{Path(args.upper).name} + {Path(args.lower).name}"
            else:
                res = import_interchange(store, paths[0], name=name, patient_id=args.patient,
                                         notes=args.notes, check_units=not args.no_unit_check)
    except InterchangeError as exc:
        return _err(f"{exc}\nNothing was imported.")
    except (StorageError, OSError, EOFError, ValueError) as exc:
        return _err(f"{' + '.join(paths)}: {exc}\nNothing was imported.")
    rec = res.record
    counts = ", ".join(f"{s.role} {s.samples}" for s in rec.sensors)
    print(res.session_id)
    print(f"imported {name}: {counts} samples, {rec.duration_s or 0.0:.1f} s", file=sys.stderr)
    for note in res.notes:
        print(f"  {note}", file=sys.stderr)
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


def cmd_export(args: argparse.Namespace) -> int:
    try:
        store = _open_store(args, write=False)
    except StorageError as exc:
        return _err(str(exc))
    try:
        with store:
            rec = store.session(args.session)
            res = _write_atomically(args.out, lambda f: export_session(
                store, rec, args.format, f, analysis=args.analysis))
    except SessionNotFound as exc:
        return _err(str(exc.args[0]))
    except (ExportError, LookupError, ValueError, StorageError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, LookupError) and exc.args else exc
        return _err(f"export of {args.session} failed: {msg}")
    for w in res.warnings:
        print(f"lumbo: {w}", file=sys.stderr)
    if args.out != "-":
        print(f"wrote {res.rows} rows to {args.out}", file=sys.stderr)
    return EXIT_OK


# --- sessions -------------------------------------------------------------------------------

def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def session_details(store: RecordingStore, session_id: str) -> dict[str, Any]:
    """A session with its sensors, event and calibration counts and its analyses (JSON-able)."""
    rec = store.session(session_id)
    events = store.events(rec.id)
    own = [e for e in events if e.analysis_id is None]
    out = rec.as_dict()
    out["time_origin_s"] = rec.time_origin_s
    for s, d in zip(rec.sensors, out["sensors"]):
        d.update(t_first=s.t_first, t_last=s.t_last)
    by_type: dict[str, int] = {}
    for e in own:
        by_type[e.type] = by_type.get(e.type, 0) + 1
    out["events"] = by_type
    out["reports"] = len(store.reports(rec.id))
    cals = store.calibrations(rec.id)
    analyses = []
    for a in store.analyses(rec.id):
        a_events: dict[str, int] = {}
        for e in events:
            if e.analysis_id == a.id:
                a_events[e.type] = a_events.get(e.type, 0) + 1
        analyses.append({"id": a.id, "created_at": a.created_at, "kind": a.kind,
                         "description": a.description, "params": a.params,
                         "angle_frames": a.samples, "events": a_events,
                         "calibrations": sum(1 for c in cals if c.analysis_id == a.id)})
    out["analyses"] = analyses
    return out


def _print_details(d: dict[str, Any]) -> None:
    print(f"session   {d['id']}  ({d['status']})")
    print(f"started   {d['started_at']}   ended {d['ended_at'] or '-'}   "
          f"length {_duration(d['duration_s'])}")
    print(f"source    {d['source'] or '-'}   patient {d['patient_id'] or '-'}")
    if d["notes"]:
        print(f"notes     {d['notes']}")
    for s in d["sensors"]:
        dev = " ".join(x for x in (s["device_name"], s["address"]) if x) or "-"
        print(f"sensor    {s['role']:<5}  {s['samples']} samples  {dev}")
    if d["events"]:
        print("events    " + ", ".join(f"{k} {v}" for k, v in sorted(d["events"].items())))
    print(f"analyses  {len(d['analyses'])}")
    for a in d["analyses"]:
        ev = ", ".join(f"{k} {v}" for k, v in sorted(a["events"].items())) or "no events"
        print(f"  #{a['id']:<4} {a['kind']:<8} {a['created_at'][:19].replace('T', ' ')}  "
              f"{a['angle_frames']} angle frames, {ev}"
              + (f"  ({a['description']})" if a["description"] else ""))


def cmd_sessions(args: argparse.Namespace) -> int:
    try:
        target = parse_location(location(args))
    except ValueError as exc:
        return _err(str(exc))
    where = (target.data_dir if target.db_path is not None and target.db_path.name == DB_FILENAME
             else target.display)
    if target.db_path is not None and not target.db_path.exists():
        if getattr(args, "session", None):
            return _err(f"No session {args.session!r}: no recordings database in {where}.")
        if args.json:
            print("[]")
        else:
            print(f"No sessions yet (no database in {where}).")
        return EXIT_OK
    try:
        with _open_store(args, write=False) as store:
            if getattr(args, "session", None):
                details = session_details(store, args.session)
            else:
                sessions = store.sessions(limit=args.limit)
    except SessionNotFound as exc:
        return _err(str(exc.args[0]))
    except StorageError as exc:
        return _err(str(exc))
    if getattr(args, "session", None):
        if args.json:
            print(json.dumps(details, indent=2))
        else:
            _print_details(details)
        return EXIT_OK
    if args.json:
        print(json.dumps([s.as_dict() for s in sessions], indent=2))
        return EXIT_OK
    if not sessions:
        print(f"No sessions yet (in {where}).")
        return EXIT_OK
    rows = [("ID", "STARTED (UTC)", "LENGTH", "STATUS", "SAMPLES", "PATIENT", "SOURCE")]
    for s in sessions:
        rows.append((s.id, s.started_at[:19].replace("T", " "), _duration(s.duration_s),
                     s.status, str(s.samples), s.patient_id or "-", s.source or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return EXIT_OK
