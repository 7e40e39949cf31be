"""The session writer for the asyncio live loop: appends enqueue, waits are awaited.

`SessionWriter` already keeps SQLite in its own thread behind a queue; this wrapper only makes
its blocking calls (`flush`, `close`) awaitable, so nothing in the event loop ever waits on the
disk. Typical use in the live session:

    writer = AsyncSessionWriter(store.begin_session(SessionInfo(source=..., sensors=...)))
    async for batch in source.batches():
        writer.append_batch(batch)               # microseconds, never raises
        angles = pipeline.update(batch)
        writer.append_angles(angles)
        for ev in engine.update(...): writer.append_event(ev.time_s, ev.type, ev.as_dict())
        status = writer.status                   # healthy / last_error for the display
    await writer.close()                         # "completed" (or close("interrupted"))
"""

from __future__ import annotations

import asyncio
from typing import Any

from recordings.errors import StorageError
from recordings.writer import SessionWriter, WriterStatus
from sensors.samples import SampleBatch


class AsyncSessionWriter:
    def __init__(self, writer: SessionWriter) -> None:
        self.writer = writer

    @property
    def session_id(self) -> str:
        return self.writer.session_id

    @property
    def status(self) -> WriterStatus:
        return self.writer.status

    @property
    def healthy(self) -> bool:
        return self.writer.healthy

    @property
    def last_error(self) -> StorageError | None:
        return self.writer.last_error

    def append_batch(self, batch: SampleBatch) -> None:
        self.writer.append_batch(batch)

    def append_angles(self, angles: Any) -> None:
        self.writer.append_angles(angles)

    def append_event(self, time_s: float | None, type: str, payload: Any = None) -> None:
        self.writer.append_event(time_s, type, payload)

    def append_calibration(self, time_s: float | None, calibration: Any) -> None:
        self.writer.append_calibration(time_s, calibration)

    def append_report(self, kind: str, payload: Any, time_s: float | None = None) -> None:
        self.writer.append_report(kind, payload, time_s)

    async def flush(self) -> bool:
        """Commit everything appended so far; True when all of it is stored."""
        return await asyncio.wrap_future(self.writer.flush_future())

    async def close(self, status: str = "completed") -> bool:
        """Commit the rest and end the session with `status`; True when nothing was lost."""
        return await asyncio.wrap_future(self.writer.close_future(status))
