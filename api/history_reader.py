"""Reading what a patient's history is made of: stored sessions (recordings) and the practice
record. The aggregation itself is pure (`api/history.py`); this module does the I/O, in the
caller's worker thread, and keeps the per-session metrics of finished sessions in a small cache
(a finished recording only changes when an analysis is added, which changes the cache key), so
drawing the history again does not decode every session's angles again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np

from api.history import (
    REPETITION_EVENTS,
    ExerciseInfo,
    StoredSession,
    build_history,
    session_metrics,
)
from recordings.errors import SessionNotFound, StorageError
from recordings.models import SessionRecord
from recordings.store import RecordingStore

CACHE_SESSIONS = 2000  # per-session metrics kept (a few kB each)
ANGLE_COLUMNS = ("time_s", "flexion_deg", "lateral_bend_deg", "axial_rotation_deg",
                 "pelvic_tilt_deg", "lumbar_angular_speed_deg_s")


def catalog_of(library: Any) -> dict[str, ExerciseInfo]:
    """Exercise names and directions from the practice library (feedback.library)."""
    out = {}
    for ex_id in library.ids():
        ex = library[ex_id]
        key = None if ex.pattern == "functional" else ex.direction.range_key
        out[ex_id] = ExerciseInfo(ex.name, key, ex.pattern)
    return out


class HistoryReader:
    """`history(patient, ...)`: the history document of one patient (see api/history.py)."""

    def __init__(self, recordings: Any, practice: Any) -> None:
        self.recordings = recordings  # api.recording.Recordings (or None)
        self.practice = practice  # api.practice.PracticeService
        self.catalog = catalog_of(practice.library)
        self._cache: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    # -- stored sessions ----------------------------------------------------------------------
    def _store(self) -> RecordingStore | None:
        return None if self.recordings is None else self.recordings.reader()

    def stored_sessions(self, patient_id: str) -> list[dict[str, Any]]:
        """`session_metrics` of every stored session of the patient, oldest first."""
        store = self._store()
        if store is None:
            return []
        out = []
        for rec in reversed(store.sessions()):
            if rec.patient_id != patient_id:
                continue
            try:
                out.append(self._metrics(store, rec))
            except SessionNotFound:  # deleted meanwhile
                continue
        return out

    def _metrics(self, store: RecordingStore, rec: SessionRecord) -> dict[str, Any]:
        analyses = store.analyses(rec.id)
        # what can still change once a recording is closed: new analyses, new patient reports
        key = (rec.id, rec.status, rec.ended_at, tuple((a.id, a.samples) for a in analyses),
               len(store.reports(rec.id)))
        if rec.status != "live":
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return hit
        metrics = session_metrics(self._read(store, rec, analyses), self.catalog)
        if rec.status != "live":
            with self._lock:
                self._cache[key] = metrics
                while len(self._cache) > CACHE_SESSIONS:
                    self._cache.popitem(last=False)
        return metrics

    @staticmethod
    def _read(store: RecordingStore, rec: SessionRecord, analyses: list[Any]) -> StoredSession:
        """The session's own events (recorded live or imported); when they hold no repetition,
        those of its newest analysis that does (a re-analysis or a replay)."""
        events = store.events(rec.id)
        own = [e for e in events if e.analysis_id is None]
        if not any(e.type in REPETITION_EVENTS for e in own):
            for a in reversed(analyses):
                mine = [e for e in events if e.analysis_id == a.id]
                if any(e.type in REPETITION_EVENTS for e in mine):
                    own += mine
                    break
        angles = store.read_angles(rec.id)
        cols: Mapping[str, np.ndarray] = {k: angles[k] for k in ANGLE_COLUMNS if k in angles}
        return StoredSession(
            id=rec.id, started_at=rec.started_at, ended_at=rec.ended_at, status=rec.status,
            source=rec.source, duration_s=rec.duration_s,
            events=tuple((e.time_s, e.type, e.payload if isinstance(e.payload, dict) else {})
                         for e in own),
            reports=tuple((r.kind, r.payload if isinstance(r.payload, dict) else {})
                          for r in store.reports(rec.id)),
            angles=cols)

    # -- the whole history --------------------------------------------------------------------
    def history(self, patient: Any, *, date_from: date | None = None,
                date_to: date | None = None, include_decisions: bool = True) -> dict[str, Any]:
        """`patient`: the account (recordings.accounts.Account)."""
        try:
            recorded = self.stored_sessions(patient.id)
            recordings_note = None
        except StorageError as exc:  # the practice record still gives pain and results
            recorded = []
            recordings_note = f"Recordings could not be read: {exc}"
        record = self.practice.record(patient.id)
        doc = build_history(
            {"id": patient.id, "username": patient.username,
             "display_name": patient.display_name or patient.username},
            recorded, record, self.catalog, date_from=date_from, date_to=date_to,
            include_decisions=include_decisions)
        enabled = self.recordings is not None and getattr(self.recordings, "enabled", False)
        doc["recordings"] = {"available": enabled and recordings_note is None,
                             "note": recordings_note or (None if enabled else
                                                         "This server does not store recordings: "
                                                         "ranges and smoothness are not known.")}
        return doc
