"""Edge-mode test support: a loopback TCP proxy between an edge and the central service that a
test can cut and restore, make lose answers or stall; waiting on observable state with a
deadline; and the bit-for-bit comparison of a session on the edge and on central."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recordings.blocks import SAMPLE_BLOCK_COLUMNS
from recordings.store import RecordingStore

CHUNK_REQUEST = b"/chunks HTTP/1.1"


def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = 60.0,
             every_s: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy (returned); AssertionError naming
    `what` at the deadline. A poll period, not a synchronisation by sleeping."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        threading.Event().wait(every_s)


class _Link:
    """One proxied connection: client <-> upstream, two pump threads."""

    def __init__(self, proxy: CuttableProxy, client: socket.socket,
                 upstream: socket.socket) -> None:
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.action = "pass"  # what to do with the answer to the last request seen
        self.closed = False
        for target, name in ((self._up, "c2u"), (self._down, "u2c")):
            threading.Thread(target=target, name=f"proxy-{name}", daemon=True).start()

    def _up(self) -> None:
        try:
            while True:
                data = self.client.recv(65536)
                if not data:
                    break
                if CHUNK_REQUEST in data:
                    self.action = self.proxy._next_chunk_action()
                elif data[:4] in (b"GET ", b"PUT ", b"POST"):
                    self.action = "pass"
                self.upstream.sendall(data)
        except OSError:
            pass
        self.close()

    def _down(self) -> None:
        try:
            while True:
                data = self.upstream.recv(65536)
                if not data:
                    break
                if self.action == "lose":  # the request was served; its answer never arrives
                    self.proxy.lost += 1
                    break
                if self.action == "stall":  # served, and the client waits for ever
                    self.proxy.stalled.set()
                    continue
                self.client.sendall(data)
        except OSError:
            pass
        if self.action != "stall":
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for s in (self.client, self.upstream):
            try:  # wakes the other pump, blocked in recv() on it (close() alone would not)
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self.proxy._forget(self)


class CuttableProxy:
    """127.0.0.1:port -> upstream. `cut()`: every connection is reset and new ones are reset
    at once (the link is down); `restore()`: back up. `lose_answers(n)`: the next n chunk
    uploads reach the upstream but their answers are lost (connection reset). `stall_after(k)`:
    after k more chunk uploads pass, the next one reaches the upstream and its answer never
    comes back (the client hangs), `stalled` is set."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.up = True
        self.lost = 0
        self.refused = 0
        self.stalled = threading.Event()
        self._lose = 0
        self._stall_after: int | None = None
        self._links: set[_Link] = set()
        self._mutex = threading.Lock()
        self._closing = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                self.refused += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                conn.close()
                continue
            with self._mutex:
                self._links.add(_Link(self, conn, upstream))

    def _forget(self, link: _Link) -> None:
        with self._mutex:
            self._links.discard(link)

    def _next_chunk_action(self) -> str:
        with self._mutex:
            if self._lose > 0:
                self._lose -= 1
                return "lose"
            if self._stall_after is not None:
                if self._stall_after == 0:
                    self._stall_after = None
                    return "stall"
                self._stall_after -= 1
            return "pass"

    def cut(self) -> None:
        """The link goes down: open connections reset, new ones refused."""
        self.up = False
        self.drop_connections()

    def drop_connections(self) -> None:
        with self._mutex:
            links = list(self._links)
        for link in links:
            link.close()

    def restore(self) -> None:
        self.up = True

    def lose_answers(self, n: int = 1) -> None:
        with self._mutex:
            self._lose += n

    def stall_after(self, k: int) -> None:
        with self._mutex:
            self._stall_after = k
        self.stalled.clear()

    def close(self) -> None:
        self._closing = True
        self.up = False
        try:
            self.listener.close()
        except OSError:
            pass
        self.drop_connections()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the comparison --------------------------------------------------------------------------

def block_rows(store: RecordingStore, session_id: str, role: str) -> list[tuple[Any, ...]]:
    """The stored sample blocks of one sensor, every column as stored (bytes included)."""
    cols = ", ".join(f"b.{c}" for c in SAMPLE_BLOCK_COLUMNS)
    rows = store._query(f"SELECT {cols} FROM sample_blocks b JOIN sensors se ON se.id = "
                        "b.sensor_id WHERE se.session_id = ? AND se.role = ? ORDER BY b.id",
                        (session_id, role))
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in (r[c] for c in
                                                                           SAMPLE_BLOCK_COLUMNS))
            for r in rows]


def _same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_same_session(edge: RecordingStore, central: RecordingStore, sid: str) -> dict[str, int]:
    """The session on central is the edge's: same sensors, the same raw batches bit for bit (and
    the same stored blocks byte for byte), the same live angles, events, calibrations and
    reports, nothing twice; the same status. Returns counts (samples, blocks, ...)."""
    e, c = edge.session(sid), central.session(sid)
    assert (c.id, c.started_at, c.time_origin_s, c.source, c.notes, c.status, c.ended_at) == \
        (e.id, e.started_at, e.time_origin_s, e.source, e.notes, e.status, e.ended_at)
    assert [(s.role, s.family, s.device_name, s.address, s.nominal_rate_hz, s.samples)
            for s in c.sensors] == [(s.role, s.family, s.device_name, s.address,
                                     s.nominal_rate_hz, s.samples) for s in e.sensors]
    counts = {"samples": 0, "blocks": 0, "batches": 0}
    for s in e.sensors:
        eb = block_rows(edge, sid, s.role)
        assert block_rows(central, sid, s.role) == eb, f"{s.role}: stored blocks differ"
        counts["blocks"] += len(eb)
        ebatches = list(edge.iter_sensor_batches(sid, s.role, with_arrival=True))
        cbatches = list(central.iter_sensor_batches(sid, s.role, with_arrival=True))
        assert len(cbatches) == len(ebatches)
        for (x, ax), (y, ay) in zip(ebatches, cbatches):
            assert ax == ay and x.gap_before == y.gap_before and x.sensor == y.sensor
            for name in ("time_s", "acc", "gyr", "mag", "device_time_s", "counter"):
                assert _same_array(getattr(x, name), getattr(y, name)), name
        counts["batches"] += len(ebatches)
        counts["samples"] += sum(len(b) for b, _ in ebatches)
    ea, ca = edge.read_angles(sid), central.read_angles(sid)
    assert ea.keys() == ca.keys() and all(_same_array(ea[k], ca[k]) for k in ea)
    counts["angle_frames"] = int(ea["time_s"].shape[0]) if ea else 0
    ev = [(x.time_s, x.type, x.payload) for x in edge.events(sid, analysis_id=None)]
    assert [(x.time_s, x.type, x.payload) for x in central.events(sid)] == ev
    counts["events"] = len(ev)
    ecal = [(x.time_s, x.payload) for x in edge.calibrations(sid)]
    assert [(x.time_s, x.payload) for x in central.calibrations(sid)] == ecal
    counts["calibrations"] = len(ecal)
    er = [(x.time_s, x.reported_at, x.kind, x.payload) for x in edge.reports(sid)]
    assert [(x.time_s, x.reported_at, x.kind, x.payload) for x in central.reports(sid)] == er
    counts["reports"] = len(er)
    return counts


def write_token(path: Path, token: str) -> Path:
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path
