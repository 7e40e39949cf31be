"""Recordings: every session stored (SQLite in WAL mode, or PostgreSQL), replayable as a source,
importable/exportable.

Modules: store (RecordingStore: open, migrate, recover, read, import), writer (SessionWriter:
live group commits in its own thread), aio (AsyncSessionWriter), replay (ReplaySource),
interchange (raw CSV read/validate/write), exports (angles/repetitions CSV, OpenSim .sto),
orientations (sensor quaternions for .sto), transfer (import/export shared by the CLI and
REST), xsens_dot (the Xsens DOT app's CSV export), commands (`lumbo import/export/sessions`),
schema/migrations (one portable schema), dialect (what differs between SQLite and PostgreSQL),
database (storage locations: a data directory, sqlite:// or postgresql:// URLs; one connection),
blocks/codec (batches <-> BLOBs), locks (which live sessions are alive), pgtemp (a throwaway
PostgreSQL server for the tests and the benchmark).
The live service's side (recording every session, replay as a source) is api/recording.py.
"""

from recordings.aio import AsyncSessionWriter
from recordings.errors import (
    SchemaVersionError,
    SessionNotFound,
    StorageError,
    StorageFullError,
    StorageReadOnlyError,
)
from recordings.interchange import (
    CsvFormat,
    InterchangeError,
    iter_interchange,
    read_interchange,
    write_interchange,
)
from recordings.models import (
    AnalysisRecord,
    EventRecord,
    ReportRecord,
    SensorInfo,
    SensorRecord,
    SessionInfo,
    SessionRecord,
)
from recordings.replay import ReplaySource
from recordings.store import RecordingStore, concat_batches
from recordings.writer import CommitPolicy, SessionWriter, WriterStatus

__all__ = [
    "AnalysisRecord",
    "AsyncSessionWriter",
    "CommitPolicy",
    "CsvFormat",
    "EventRecord",
    "InterchangeError",
    "RecordingStore",
    "ReplaySource",
    "ReportRecord",
    "SchemaVersionError",
    "SensorInfo",
    "SensorRecord",
    "SessionInfo",
    "SessionNotFound",
    "SessionRecord",
    "SessionWriter",
    "StorageError",
    "StorageFullError",
    "StorageReadOnlyError",
    "WriterStatus",
    "concat_batches",
    "iter_interchange",
    "read_interchange",
    "write_interchange",
]
