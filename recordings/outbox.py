"""The edge's side of uploading: what of each local session a central service still lacks.

The local store IS the upload buffer: every session is recorded there as always (the live
writer commits every 0.5 s), and the uploader reads the stored rows back in id order, stream by
stream (recordings/chunks.py). Nothing is kept in memory that is not on disk, so an edge that
loses its link, or is killed, or restarts, loses nothing: it resumes from the cursor, which the
central service confirms (it is the authority: an answer lost on the way just means the next
chunk is found there already).

Row ids are the position in a stream: in SQLite a row's id is assigned inside the one write
transaction at a time, so ids commit in increasing order and "every row after id X" is exact.
(An edge's store is SQLite: a patient's machine.)

Streams of a session: `samples:<role>` (sample_blocks of that sensor), `angles` (angle_blocks of
the session's live analysis), `events` (the session's own, analysis_id NULL), `calibrations`
(the live analysis' and the session's own), `reports` (patient_reports). Re-analyses made on the
edge are not uploaded: the central service can re-analyse the raw samples itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from recordings.blocks import SAMPLE_BLOCK_COLUMNS
from recordings.chunks import stream_kind, stream_role
from recordings.errors import SessionNotFound
from recordings.models import SessionRecord, utc_now_iso
from recordings.store import RecordingStore

MARK_TABLES = ("sample_blocks", "angle_blocks", "events", "calibrations", "patient_reports")
_TOUCHED = {
    "sample_blocks": "SELECT DISTINCT se.session_id FROM sample_blocks b JOIN sensors se "
                     "ON se.id = b.sensor_id WHERE b.id > ?",
    "angle_blocks": "SELECT DISTINCT a.session_id FROM angle_blocks b JOIN analyses a "
                    "ON a.id = b.analysis_id WHERE b.id > ?",
    "events": "SELECT DISTINCT session_id FROM events WHERE id > ?",
    "calibrations": "SELECT DISTINCT session_id FROM calibrations WHERE id > ?",
    "patient_reports": "SELECT DISTINCT session_id FROM patient_reports WHERE id > ?",
}
_SAMPLE_COLS = ", ".join(f"b.{c}" for c in SAMPLE_BLOCK_COLUMNS)


@dataclass(frozen=True)
class Cursor:
    next_seq: int = 0
    last_item_id: int = 0


@dataclass(frozen=True)
class Batch:
    """The next rows of one stream for one chunk; `upto` is the id of the last."""

    stream: str
    rows: list[Mapping[str, Any]]
    upto: int
    nbytes: int


class Outbox:
    """One local store's sessions of one patient (`patient_id`; None: every session), as
    uploaded to one central service (`central`, its URL: cursors are kept per central)."""

    def __init__(self, store: RecordingStore, central: str, patient_id: str | None) -> None:
        self.store = store
        self.central = central
        self.patient_id = patient_id

    # --- which sessions ---------------------------------------------------------------------
    def marks(self) -> dict[str, int]:
        """The highest row id of each table: when none moved, nothing new was stored."""
        out = {}
        for table in MARK_TABLES:
            row = self.store._query(f"SELECT MAX(id) AS m FROM {table}")
            out[table] = int(row[0]["m"] or 0)
        return out

    def touched_since(self, marks: Mapping[str, int]) -> set[str]:
        """Sessions (of the patient) with rows stored after `marks`."""
        out: set[str] = set()
        for table, query in _TOUCHED.items():
            out.update(r["session_id"] for r in self.store._query(query, (marks.get(table, 0),)))
        return self._mine(out)

    def _mine(self, ids: Iterable[str]) -> set[str]:
        ids = set(ids)
        if self.patient_id is None or not ids:
            return ids
        marks = ",".join("?" * len(ids))
        return {r["id"] for r in self.store._query(
            f"SELECT id FROM sessions WHERE patient_id = ? AND id IN ({marks})",
            (self.patient_id, *sorted(ids)))}

    def unfinished(self) -> list[str]:
        """Every session of the patient not yet fully uploaded (at start-up): still live, its
        end not acknowledged with its current status, or with rows after its cursors."""
        q = ("SELECT s.id, s.status, u.ended_status FROM sessions s LEFT JOIN upload_sessions u "
             "ON u.session_id = s.id AND u.central = ?")
        params: list[Any] = [self.central]
        if self.patient_id is not None:
            q += " WHERE s.patient_id = ?"
            params.append(self.patient_id)
        out = []
        for r in self.store._query(q + " ORDER BY s.started_at, s.id", params):
            if r["status"] == "live" or r["ended_status"] != r["status"]:
                out.append(r["id"])
                continue
            cursors = self.cursors(r["id"])
            if any(head > cursors.get(s, Cursor()).last_item_id
                   for s, head in self.heads(r["id"]).items()):
                out.append(r["id"])
        return out

    # --- one session ---------------------------------------------------------------------
    def session(self, session_id: str) -> SessionRecord | None:
        try:
            return self.store.session(session_id)
        except SessionNotFound:
            return None

    def live_analysis(self, session_id: str) -> int | None:
        rows = self.store._query("SELECT MIN(id) AS id FROM analyses WHERE session_id = ? AND "
                                 "kind = 'live'", (session_id,))
        return None if not rows or rows[0]["id"] is None else int(rows[0]["id"])

    def heads(self, session_id: str) -> dict[str, int]:
        """Per stream, the id of its last stored row (streams without rows are left out)."""
        out: dict[str, int] = {}
        for r in self.store._query(
                "SELECT se.role, MAX(b.id) AS m FROM sensors se JOIN sample_blocks b "
                "ON b.sensor_id = se.id WHERE se.session_id = ? GROUP BY se.role",
                (session_id,)):
            out[f"samples:{r['role']}"] = int(r["m"])
        aid = self.live_analysis(session_id)
        queries = {
            "events": ("SELECT MAX(id) AS m FROM events WHERE session_id = ? AND "
                       "analysis_id IS NULL", (session_id,)),
            "reports": ("SELECT MAX(id) AS m FROM patient_reports WHERE session_id = ?",
                        (session_id,)),
        }
        if aid is not None:
            queries["angles"] = ("SELECT MAX(id) AS m FROM angle_blocks WHERE analysis_id = ?",
                                 (aid,))
            queries["calibrations"] = ("SELECT MAX(id) AS m FROM calibrations WHERE session_id "
                                       "= ? AND (analysis_id = ? OR analysis_id IS NULL)",
                                       (session_id, aid))
        else:
            queries["calibrations"] = ("SELECT MAX(id) AS m FROM calibrations WHERE "
                                       "session_id = ? AND analysis_id IS NULL", (session_id,))
        for stream, (q, params) in queries.items():
            m = self.store._query(q, params)[0]["m"]
            if m is not None:
                out[stream] = int(m)
        return out

    def read(self, session_id: str, stream: str, after_id: int, *, max_items: int,
             max_bytes: int) -> Batch | None:
        """The rows of `stream` after `after_id`, as many as fit one chunk (at least one)."""
        kind = stream_kind(stream)
        aid = self.live_analysis(session_id) if kind in ("angles", "calibrations") else None
        if kind == "samples":
            q = (f"SELECT b.id, {_SAMPLE_COLS} FROM sample_blocks b JOIN sensors se "
                 "ON se.id = b.sensor_id WHERE se.session_id = ? AND se.role = ? AND b.id > ? "
                 "ORDER BY b.id LIMIT ?")
            params: tuple[Any, ...] = (session_id, stream_role(stream), after_id, max_items)
        elif kind == "angles":
            if aid is None:
                return None
            q = ("SELECT id, n, codec, fields, data FROM angle_blocks WHERE analysis_id = ? "
                 "AND id > ? ORDER BY id LIMIT ?")
            params = (aid, after_id, max_items)
        elif kind == "events":
            q = ("SELECT id, time_s, type, payload FROM events WHERE session_id = ? AND "
                 "analysis_id IS NULL AND id > ? ORDER BY id LIMIT ?")
            params = (session_id, after_id, max_items)
        elif kind == "calibrations":
            q = ("SELECT id, time_s, payload FROM calibrations WHERE session_id = ? AND "
                 + ("(analysis_id = ? OR analysis_id IS NULL)" if aid is not None
                    else "analysis_id IS NULL") + " AND id > ? ORDER BY id LIMIT ?")
            params = (session_id, *(() if aid is None else (aid,)), after_id, max_items)
        else:
            q = ("SELECT id, time_s, reported_at, kind, payload FROM patient_reports WHERE "
                 "session_id = ? AND id > ? ORDER BY id LIMIT ?")
            params = (session_id, after_id, max_items)
        rows = []
        nbytes = 0
        for r in self.store._query(q, params):
            size = _row_bytes(r)
            if rows and nbytes + size > max_bytes:
                break
            rows.append(r)
            nbytes += size
        if not rows:
            return None
        return Batch(stream, rows, int(rows[-1]["id"]), nbytes)

    # --- cursors -----------------------------------------------------------------------------
    def cursors(self, session_id: str) -> dict[str, Cursor]:
        return {r["stream"]: Cursor(int(r["next_seq"]), int(r["last_item_id"]))
                for r in self.store._query(
                    "SELECT stream, next_seq, last_item_id FROM upload_streams "
                    "WHERE session_id = ? AND central = ?", (session_id, self.central))}

    def ended_status(self, session_id: str) -> str:
        rows = self.store._query("SELECT ended_status FROM upload_sessions WHERE session_id = ? "
                                 "AND central = ?", (session_id, self.central))
        return str(rows[0]["ended_status"]) if rows else ""

    def adopt(self, session_id: str, streams: Mapping[str, Cursor], ended_status: str) -> None:
        """Take the central service's cursors as ours (it is the authority)."""
        now = utc_now_iso()
        with self.store._tx("saving the upload cursor") as conn:
            self._session_row(conn, session_id, now)
            conn.execute("UPDATE upload_sessions SET ended_status = ?, updated_at = ? WHERE "
                         "session_id = ? AND central = ?",
                         (ended_status, now, session_id, self.central))
            conn.execute("DELETE FROM upload_streams WHERE session_id = ? AND central = ?",
                         (session_id, self.central))
            for stream, c in streams.items():
                conn.execute("INSERT INTO upload_streams (session_id, central, stream, next_seq, "
                             "last_item_id, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                             (session_id, self.central, stream, c.next_seq, c.last_item_id, now))

    def advance(self, session_id: str, stream: str, cursor: Cursor) -> None:
        """A chunk was acknowledged: its stream's cursor moves on."""
        now = utc_now_iso()
        with self.store._tx("saving the upload cursor") as conn:
            self._session_row(conn, session_id, now)
            conn.execute(
                "INSERT INTO upload_streams (session_id, central, stream, next_seq, last_item_id, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, central, stream) "
                "DO UPDATE SET next_seq = excluded.next_seq, last_item_id = "
                "excluded.last_item_id, updated_at = excluded.updated_at",
                (session_id, self.central, stream, cursor.next_seq, cursor.last_item_id, now))

    def mark_ended(self, session_id: str, status: str) -> None:
        now = utc_now_iso()
        with self.store._tx("saving the upload state") as conn:
            self._session_row(conn, session_id, now)
            conn.execute("UPDATE upload_sessions SET ended_status = ?, updated_at = ? WHERE "
                         "session_id = ? AND central = ?", (status, now, session_id, self.central))

    def _session_row(self, conn: Any, session_id: str, now: str) -> None:
        conn.execute("INSERT INTO upload_sessions (session_id, central, ended_status, updated_at) "
                     "VALUES (?, ?, '', ?) ON CONFLICT (session_id, central) DO NOTHING",
                     (session_id, self.central, now))

    def backlog(self) -> dict[str, int]:
        """Rows stored locally and not yet acknowledged, per table kind, over every session of
        the patient (for the status display; one query per stream kind)."""
        sessions = self.unfinished()
        out = {"sessions": len(sessions), "sample_blocks": 0, "samples": 0, "streams_behind": 0}
        for sid in sessions:
            cursors = self.cursors(sid)
            for stream, head in self.heads(sid).items():
                after = cursors.get(stream, Cursor()).last_item_id
                if head <= after:
                    continue
                if stream_kind(stream) == "samples":
                    r = self.store._query(
                        "SELECT COUNT(*) AS c, COALESCE(SUM(b.n), 0) AS n FROM sample_blocks b "
                        "JOIN sensors se ON se.id = b.sensor_id WHERE se.session_id = ? AND "
                        "se.role = ? AND b.id > ?", (sid, stream_role(stream), after))[0]
                    out["sample_blocks"] += int(r["c"])
                    out["samples"] += int(r["n"])
                else:
                    out["streams_behind"] += 1
        return out


def _row_bytes(r: Mapping[str, Any]) -> int:
    size = 64
    for k in r.keys():
        v = r[k]
        if isinstance(v, (bytes, bytearray, memoryview, str)):
            size += len(v)
    return size
