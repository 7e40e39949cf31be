"""Import and export of whole sessions, shared by the command line and the REST API.

Imports validate the whole input while writing it in one transaction (RecordingStore.
import_recording): any bad line raises with its line number and nothing of the session remains.
Exports write to a path or text stream; the caller decides where (a temporary file renamed into
place for the CLI, a temporary file streamed back for REST) and gets the row count and any
warnings (e.g. "no stored angles: computed now, not stored").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from recordings.interchange import iter_interchange, write_interchange
from recordings.models import SessionInfo, SessionRecord
from recordings.store import RecordingStore

EXPORT_FORMATS = ("raw-csv", "angles-csv", "repetitions-csv", "events-csv", "sto")
IMPORT_FORMATS = ("interchange", "xsens-dot")
EXPORT_SUFFIX = {"raw-csv": "raw.csv", "angles-csv": "angles.csv",
                 "repetitions-csv": "repetitions.csv", "events-csv": "events.csv",
                 "sto": "orientations.sto"}


class ExportError(LookupError):
    """The session has nothing to export in this format (no samples, no such analysis, ...)."""


@dataclass
class ExportResult:
    rows: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    session_id: str
    record: SessionRecord
    notes: list[str] = field(default_factory=list)


# --- import ---------------------------------------------------------------------------------

def import_interchange(store: RecordingStore, source: str | Path | IO[str], *, name: str,
                       patient_id: str | None = None, notes: str = "",
                       check_units: bool = True) -> ImportResult:
    """A raw interchange CSV as a completed session (InterchangeError names the bad line)."""
    info = SessionInfo(source=f"import:{name}", patient_id=patient_id, notes=notes)
    sid = store.import_recording(iter_interchange(source, check_units=check_units, name=name),
                                 info)
    return ImportResult(sid, store.session(sid))


def import_xsens_dot(store: RecordingStore, upper: str | Path | IO[str],
                     lower: str | Path | IO[str], *, upper_name: str | None = None,
                     lower_name: str | None = None, patient_id: str | None = None,
                     notes: str = "", check_units: bool = True,
                     assume_simultaneous_start: bool = False) -> ImportResult:
    """Two Xsens DOT app exports (upper at T12/L1, lower on the sacrum) as one session."""
    from recordings.xsens_dot import dot_recording, read_dot_file

    fu = read_dot_file(upper, name=upper_name, check_units=check_units)
    fl = read_dot_file(lower, name=lower_name, check_units=check_units)
    rec = dot_recording(fu, fl, assume_simultaneous_start=assume_simultaneous_start,
                        patient_id=patient_id, notes=notes)
    sid = store.import_recording(rec.batches, rec.info)
    return ImportResult(sid, store.session(sid), list(rec.notes))


# --- export ---------------------------------------------------------------------------------

def _angles(store: RecordingStore, rec: SessionRecord, analysis: int | None,
            warnings: list[str]) -> dict[str, Any]:
    if analysis is not None and analysis not in {a.id for a in store.analyses(rec.id)}:
        raise ExportError(f"session {rec.id} has no analysis {analysis} "
                          "(`lumbo sessions ID` lists them)")
    cols = store.read_angles(rec.id, analysis)
    if cols or analysis is not None:
        if not cols:
            raise ExportError(f"analysis {analysis} of session {rec.id} has no angles")
        return cols
    from processing.calibration import CalibrationError
    from processing.offline import analyze

    if not rec.sensors:
        raise ExportError(f"session {rec.id} has no samples")
    warnings.append(f"session {rec.id} has no stored angles; analysing its raw data now "
                    "(not stored: `lumbo reanalyze` stores an analysis)")
    try:
        return analyze(store.read_batches(rec.id, merged=True))  # type: ignore[return-value]
    except CalibrationError as exc:
        raise ExportError(f"cannot compute angles: {exc}") from exc


def export_session(store: RecordingStore, session: str | SessionRecord, fmt: str,
                   dest: str | Path | IO[str], *, analysis: int | None = None) -> ExportResult:
    """Write one export of a stored session to `dest`; `analysis` picks an analysis' angles
    or events (default: the newest angles; the session's own events)."""
    rec = session if isinstance(session, SessionRecord) else store.session(session)
    warnings: list[str] = []
    if fmt == "raw-csv":
        if not rec.sensors or rec.samples == 0:
            raise ExportError(f"session {rec.id} has no samples")
        comments = [f"lumbo raw interchange; session {rec.id}; started {rec.started_at} UTC; "
                    f"source {rec.source or '-'}",
                    "units: time_s and device_time_s s, acc m/s^2, gyr rad/s, mag uT; "
                    "sensor frames; time_s is the host clock"]
        n = write_interchange(dest, {s.role: store.iter_sensor_batches(rec.id, s.role,
                                                                       merged=True)
                                     for s in rec.sensors}, comments=comments)
        return ExportResult(n, warnings)
    if fmt == "angles-csv":
        from recordings.exports import write_angles_csv

        cols = _angles(store, rec, analysis, warnings)
        return ExportResult(write_angles_csv(dest, cols), warnings)
    if fmt in ("repetitions-csv", "events-csv"):
        from recordings.exports import REPETITION_EVENT_TYPES, write_events_csv

        if analysis is not None and analysis not in {a.id for a in store.analyses(rec.id)}:
            raise ExportError(f"session {rec.id} has no analysis {analysis}")
        types = REPETITION_EVENT_TYPES if fmt == "repetitions-csv" else None
        events = store.events(rec.id, analysis_id=analysis)
        n = write_events_csv(dest, events, types=types)
        if n == 0:
            warnings.append(f"session {rec.id} has no {'repetitions' if types else 'events'}"
                            + (f" in analysis {analysis}" if analysis is not None else "")
                            + "; wrote the header only")
        return ExportResult(n, warnings)
    if fmt == "sto":
        from recordings.exports import STO_COLUMNS, write_sto
        from recordings.orientations import sensor_orientations

        if {s.role for s in rec.sensors if s.samples} != {"upper", "lower"}:
            raise ExportError(f"session {rec.id} needs samples of both sensors for .sto")
        o = sensor_orientations(store.read_batches(rec.id, merged=True))
        if not o.heading_shared:
            warnings.append("no magnetometer data: each sensor's heading is arbitrary (6D); "
                            "inclinations are exact, headings are not comparable")
        quats = {STO_COLUMNS["lower"]: o.q_lower, STO_COLUMNS["upper"]: o.q_upper}
        return ExportResult(write_sto(dest, o.time_s, quats), warnings)
    raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(EXPORT_FORMATS)}")


def export_filename(rec: SessionRecord, fmt: str) -> str:
    return f"lumbo-{rec.id}-{EXPORT_SUFFIX[fmt]}"

