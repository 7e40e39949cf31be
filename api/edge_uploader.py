"""The edge's uploader: every local session of the patient to the central service, exactly once.

One background thread with its own connection to the local store and its own HTTP client, so
it never holds up the live loop (frames, feedback, recording) however far behind it is. It does
share the interpreter: while a live session runs here (`busy`) it pauses `busy_gap_s` after
each chunk, so a catch-up after a long outage leaves the live loop the interpreter (bench/edge.py
measures both); a chunk holds up to `max_items` rows (~30 s of data), so even paced it
catches up hundreds of times faster than real time. The
local store is the buffer (recordings/outbox.py): while the link is down the session just goes
on being recorded there, and nothing is lost if the edge process stops.

A pass: find the sessions with something new (the highest row id of each table moved, and the
sessions not yet finished), then for each: announce it (`PUT`, which returns the central
service's cursor, taken as ours), send its streams' next chunks round-robin until all are
caught up, and once the session is over and everything is acknowledged, send its end. While
online a pass runs every `poll_s`; after a failure the wait grows (capped exponential backoff
with jitter, so many edges coming back after an outage do not all retry in step).

Exactly once: each chunk carries its stream's sequence number; the central service stores it
in one transaction with its cursor and acknowledges a chunk it already has without storing it
again. A chunk whose answer was lost (link cut, edge killed) is simply sent again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api.edge_client import (
    CentralClient,
    CentralError,
    CentralRefused,
    CentralUnreachable,
    SeqConflict,
)
from recordings.chunks import encode_chunk, stream_kind
from recordings.errors import StorageError
from recordings.models import SessionRecord, utc_now_iso
from recordings.outbox import Cursor, Outbox
from recordings.store import RecordingStore

log = logging.getLogger(__name__)

REFUSED_RETRY_S = 300.0  # a session the central service refused is tried again after this


class Backoff:
    """Capped exponential backoff with "equal jitter": the k-th wait is uniform in [d/2, d],
    d = min(cap, base · 2^k) (M. Brooker, "Exponential Backoff And Jitter", AWS Architecture
    Blog, 2015): never zero, never in step with other edges."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self.rng = rng or random.Random()
        self.attempt = 0

    def next_s(self) -> float:
        d = min(self.cap_s, self.base_s * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return d / 2 + self.rng.uniform(0, d / 2)

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class UploadStats:
    """What the uploader has done (the edge's status route shows it)."""

    online: bool | None = None  # None: not tried yet
    last_error: str | None = None
    chunks_sent: int = 0
    duplicates: int = 0  # chunks the central service already had (an answer was lost)
    bytes_sent: int = 0
    samples_sent: int = 0
    sessions_ended: int = 0
    pending_sessions: int = 0
    last_ack_at: str | None = None
    central_patient: str | None = None  # whose records the device token uploads into
    refused: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(self).items()}


class Uploader:
    """Uploads the sessions of `patient_id` in the store at `location` to `client`'s service."""

    def __init__(self, location: Any, client: CentralClient, *, patient_id: str | None,
                 poll_s: float = 0.5, backoff_base_s: float = 0.5, backoff_cap_s: float = 30.0,
                 max_items: int = 64, max_bytes: int = 1 << 20, seed: int | None = None,
                 busy: Callable[[], bool] | None = None, busy_gap_s: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.location = location
        self.client = client
        self.central = client.base_url
        self.patient_id = patient_id
        self.poll_s = poll_s
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.backoff = Backoff(backoff_base_s, backoff_cap_s, random.Random(seed))
        self.clock = clock
        self.busy = busy  # True while a live session runs here: leave it the interpreter
        self.busy_gap_s = busy_gap_s
        self.stats = UploadStats()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._announced: dict[str, tuple[str, ...]] = {}  # session -> sensor roles announced
        self._refused_until: dict[str, float] = {}
        self._store: RecordingStore | None = None
        self._outbox: Outbox | None = None
        self._pending: set[str] = set()
        self._marks: dict[str, int] | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lumbo-edge-uploader",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self.client.close()  # an upload in flight fails at once instead of finishing
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._store is not None:
            self._store.close()
            self._store = None

    def wake(self) -> None:
        """Look for new data now (rather than at the next poll)."""
        self._wake.set()

    def _wait(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_pass()
            except CentralUnreachable as exc:
                self._offline(str(exc))
            except CentralRefused as exc:  # 401/403: the token no longer works
                self._offline(f"the central service refuses this edge: {exc}",
                              long_wait=True)
            except StorageError as exc:
                self._offline(f"local recordings store: {exc}")
            except Exception as exc:  # noqa: BLE001 - a bug: report it, keep the thread alive
                log.exception("edge upload failed")
                self._offline(f"{type(exc).__name__}: {exc}")
            else:
                if self.stats.online is False:
                    log.warning("edge upload resumed: the central service answers again")
                self.stats.online = True
                self.stats.last_error = None
                self.backoff.reset()
                self._wait(self.poll_s)

    def _offline(self, why: str, long_wait: bool = False) -> None:
        if self.stats.online is not False:  # once per outage, not once per attempt
            log.warning("edge upload paused (retrying with backoff): %s", why)
        else:
            log.debug("edge upload still paused: %s", why)
        self.stats.online = False
        self.stats.last_error = why
        self._announced.clear()  # after a reconnection: ask for the cursors again
        delay = self.backoff.cap_s if long_wait else self.backoff.next_s()
        self._wait(delay)

    # --- one pass -------------------------------------------------------------------------------
    def _open(self) -> Outbox:
        if self._outbox is None:
            self._store = RecordingStore(self.location)
            self._outbox = Outbox(self._store, self.central, self.patient_id)
        return self._outbox

    def run_pass(self) -> int:
        """Upload what is new; returns the sessions still unfinished. Raises CentralError on a
        failure that stops the pass (the next pass resumes from the cursors)."""
        outbox = self._open()
        if self.stats.central_patient is None:
            me = self.client.whoami()
            self.stats.central_patient = str(me.get("username"))
            log.info("edge uploads into %s's records on %s", me.get("username"), self.central)
        if self._marks is None:  # start-up: every session not known to be done
            self._marks = outbox.marks()
            self._pending = set(outbox.unfinished())
        else:
            marks = outbox.marks()
            if marks != self._marks:
                self._pending |= outbox.touched_since(self._marks)
                self._marks = marks
        now = self.clock()
        for sid in sorted(self._pending):
            if self._stop.is_set():
                break
            if self._refused_until.get(sid, 0.0) > now:
                continue
            try:
                done = self._sync(outbox, sid)
            except CentralRefused as exc:
                if exc.status in (401, 403):
                    raise
                log.error("edge upload of session %s refused: %s", sid, exc)
                self.stats.refused[sid] = str(exc)
                self._refused_until[sid] = now + REFUSED_RETRY_S
                self._announced.pop(sid, None)
                continue
            if done:
                self._pending.discard(sid)
                self.stats.refused.pop(sid, None)
                self._refused_until.pop(sid, None)
        self.stats.pending_sessions = len(self._pending)
        return len(self._pending)

    def _announce(self, outbox: Outbox, rec: SessionRecord) -> None:
        roles = tuple(sorted(s.role for s in rec.sensors))
        if self._announced.get(rec.id) == roles:
            return
        state = self.client.announce(rec.id, _meta(rec))
        self._adopt(outbox, rec.id, state)
        self._announced[rec.id] = roles

    def _adopt(self, outbox: Outbox, sid: str, state: dict[str, Any]) -> None:
        streams = {k: Cursor(int(v["next_seq"]), int(v["last_item_id"]))
                   for k, v in state.get("streams", {}).items()}
        ended = str(state.get("edge_status") or "") if state.get("state") == "ended" else ""
        outbox.adopt(sid, streams, ended)

    def _sync(self, outbox: Outbox, sid: str) -> bool:
        """Bring one session up to date; True once it is over and all of it acknowledged."""
        rec = outbox.session(sid)
        if rec is None:
            return True  # deleted here meanwhile
        self._announce(outbox, rec)
        status = rec.status
        try:
            self._upload_streams(outbox, sid)
        except SeqConflict:
            self._adopt(outbox, sid, self.client.cursor(sid))
            return False
        except CentralRefused as exc:
            if exc.status == 404:  # the central service lost it: announce it again
                self._announced.pop(sid, None)
                return False
            raise
        if status == "live":
            return False
        # the status was final before the streams were last read: everything is uploaded
        if outbox.ended_status(sid) == status:
            return True
        streams = {k: c.next_seq for k, c in outbox.cursors(sid).items() if c.next_seq > 0}
        try:
            self.client.end(sid, status, rec.ended_at, streams)
        except SeqConflict:
            self._adopt(outbox, sid, self.client.cursor(sid))
            return False
        outbox.mark_ended(sid, status)
        self.stats.sessions_ended += 1
        return True

    def _upload_streams(self, outbox: Outbox, sid: str) -> None:
        """Round-robin over the streams, one chunk each, until none has rows left."""
        cursors = outbox.cursors(sid)
        while not self._stop.is_set():
            heads = outbox.heads(sid)
            behind = [s for s in sorted(heads)
                      if heads[s] > cursors.get(s, Cursor()).last_item_id]
            if not behind:
                return
            for stream in behind:
                if self._stop.is_set():
                    return
                c = cursors.get(stream, Cursor())
                batch = outbox.read(sid, stream, c.last_item_id, max_items=self.max_items,
                                    max_bytes=self.max_bytes)
                if batch is None:
                    continue
                body = encode_chunk(stream, c.next_seq, batch.upto, batch.rows)
                ack = self.client.send_chunk(sid, body)
                new = Cursor(int(ack["next_seq"]), int(ack["last_item_id"]))
                outbox.advance(sid, stream, new)
                cursors[stream] = new
                self.stats.chunks_sent += 1
                self.stats.bytes_sent += len(body)
                self.stats.last_ack_at = utc_now_iso()
                if ack.get("duplicate"):
                    self.stats.duplicates += 1
                elif stream_kind(stream) == "samples":
                    self.stats.samples_sent += sum(int(r["n"]) for r in batch.rows)
                if self.busy is not None and self.busy():
                    self._stop.wait(self.busy_gap_s)  # pacing while a live session runs

    def backlog(self) -> dict[str, int]:
        """What is stored here and not yet acknowledged (opens its own store: any thread)."""
        with RecordingStore(self.location, read_only=True) as store:
            return Outbox(store, self.central, self.patient_id).backlog()


def _meta(rec: SessionRecord) -> dict[str, Any]:
    return {"started_at": rec.started_at, "time_origin_s": rec.time_origin_s,
            "source": rec.source[:32], "notes": rec.notes[:4096],
            "sensors": [{"role": s.role, "family": s.family[:64],
                         "device_name": s.device_name[:128], "address": s.address[:64],
                         "nominal_rate_hz": s.nominal_rate_hz
                         if s.nominal_rate_hz and s.nominal_rate_hz > 0 else None}
                        for s in rec.sensors]}


__all__ = ["Backoff", "CentralError", "UploadStats", "Uploader"]
