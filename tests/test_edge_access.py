"""Edge mode's central side in-process (Starlette's TestClient: real ASGI, the app's middleware,
lifespan and store): who may upload what, what a chunk must be, exactly-once storage, the end,
and device tokens (REST and command line).

The chunks are real: a small session is recorded with the live writer into a local store (as
an edge does), read back by the edge's outbox and encoded as the uploader encodes it.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edge_support import assert_same_session, write_token
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth.middleware import COOKIE_NAME
from api.cli import main
from api.settings import Settings
from recordings.chunks import MAGIC, MEDIA_TYPE, ChunkError, decode_chunk, encode_chunk
from recordings.models import SensorInfo, SessionInfo
from recordings.outbox import Outbox
from recordings.store import RecordingStore
from recordings.writer import CommitPolicy
from sensors.simulation import PatientParams, SimulatedPatient, calibration_then_flexion_reps

BASE = "http://central.test"


# --- a real local session, as an edge records it --------------------------------------------

def record_local_session(data_dir: Path, sid: str = "edge-session-1",
                         codec: str = "shuffle-zlib") -> RecordingStore:
    """~2 s of two simulated sensors in 20 ms batches, several commits (several blocks), angle
    columns with a boolean, events, a calibration and a report."""
    store = RecordingStore(data_dir, codec=codec)
    info = SessionInfo(source="simulated", sensors=(SensorInfo("upper", "sim", "U", "", 100.0),
                                                    SensorInfo("lower", "sim", "L", "", 100.0)))
    w = store.begin_session(info, session_id=sid, policy=CommitPolicy(interval_s=3600))
    patient = SimulatedPatient(calibration_then_flexion_reps(1), PatientParams(seed=3))
    for k in range(100):
        for batch in patient.generate(k * 0.02, (k + 1) * 0.02).values():
            w.append_batch(batch)
        t = np.arange(2) * 0.01 + k * 0.02
        w.append_angles({"time_s": t, "flexion_deg": np.sin(t), "gap_before": t > 1.5})
        if k % 20 == 19:
            w.append_event(float(t[-1]), "repetition", {"k": k, "peak_deg": 1.0 / 3})
            assert w.flush(10)
    w.append_calibration(0.5, {"comfortable_flexion_deg": 41.25, "neutral_s": [0.0, 0.4]})
    w.append_report("pain_nrs_before", {"value": 3})
    assert w.close("completed", timeout=10)
    return store


def chunks_of(store: RecordingStore, sid: str, stream: str, max_items: int = 2) -> list[bytes]:
    outbox = Outbox(store, "http://central.test", None)
    out, after, seq = [], 0, 0
    while (batch := outbox.read(sid, stream, after, max_items=max_items, max_bytes=1 << 20)):
        out.append(encode_chunk(stream, seq, batch.upto, batch.rows))
        after, seq = batch.upto, seq + 1
    return out


# --- the central service --------------------------------------------------------------------

class Central:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.app = client.app
        auth = self.app.state.auth  # type: ignore[attr-defined]
        self.auth = auth
        self.ta = auth.create_therapist("ther-a", None, "Therapist A")
        self.tb = auth.create_therapist("ther-b", None, "Therapist B")
        self.pa = auth.create_patient("pat-a", self.ta.id, None, "Patient A")
        self.pb = auth.create_patient("pat-b", self.tb.id, None, "Patient B")
        self.token_a = auth.devices.create(self.pa, "a")[0]
        self.token_b = auth.devices.create(self.pb, "b")[0]

    @property
    def store(self) -> RecordingStore:
        return self.app.state.recordings.store  # type: ignore[attr-defined]

    def device(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def cookie(self, account: Any) -> dict[str, str]:
        return {"Cookie": f"{COOKIE_NAME}={self.auth.open_session(account)[0]}",
                "Origin": BASE}

    def call(self, method: str, path: str, headers: dict[str, str], **kw: Any) -> Any:
        resp = self.client.request(method, path, headers=headers, **kw)
        self.client.cookies.clear()
        return resp

    def announce(self, token: str, sid: str, local: RecordingStore) -> Any:
        rec = local.session(sid)
        meta = {"started_at": rec.started_at, "time_origin_s": rec.time_origin_s,
                "source": rec.source, "notes": rec.notes,
                "sensors": [{"role": s.role, "family": s.family, "device_name": s.device_name,
                             "address": s.address, "nominal_rate_hz": s.nominal_rate_hz}
                            for s in rec.sensors]}
        return self.call("PUT", f"/api/ingest/sessions/{sid}", self.device(token), json=meta)

    def chunk(self, token: str, sid: str, body: bytes) -> Any:
        return self.call("POST", f"/api/ingest/sessions/{sid}/chunks",
                         {**self.device(token), "Content-Type": MEDIA_TYPE}, content=body)

    def blocks(self, sid: str) -> int:
        return int(self.store._query(
            "SELECT COUNT(*) AS n FROM sample_blocks b JOIN sensors se ON se.id = b.sensor_id "
            "WHERE se.session_id = ?", (sid,))[0]["n"])


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Central]:
    app = create_app(Settings(data_dir=tmp_path / "central"))
    with TestClient(app, base_url=BASE) as client:
        yield Central(client)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[RecordingStore]:
    store = record_local_session(tmp_path / "edge")
    yield store
    store.close()


SID = "edge-session-1"
STREAMS = ("samples:upper", "samples:lower", "angles", "events", "calibrations", "reports")


# --- the chunk ---------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["shuffle-zlib", "raw"])
def test_chunks_carry_the_stored_rows_unchanged(tmp_path: Path, codec: str) -> None:
    local = record_local_session(tmp_path / codec, codec=codec)
    outbox = Outbox(local, "c", None)
    for stream in STREAMS:
        batch = outbox.read(SID, stream, 0, max_items=1000, max_bytes=1 << 30)
        assert batch is not None, stream
        chunk = decode_chunk(encode_chunk(stream, 7, batch.upto, batch.rows))
        assert (chunk.stream, chunk.seq, chunk.upto) == (stream, 7, batch.upto)
        assert len(chunk.rows) == len(batch.rows)
        if stream.startswith("samples"):
            cols = ("n", "t_first", "t_last", "codec", "batch_sizes", "batch_gaps", "arrival",
                    "time_s", "device_time_s", "counter", "acc", "gyr", "mag")
            assert [tuple(r[c] for c in cols) for r in batch.rows] == list(chunk.rows)
        elif stream == "angles":  # t_first/t_last found again from the compressed data
            stored = local._query("SELECT n, t_first, t_last, codec, fields, data FROM "
                                  "angle_blocks ORDER BY id")
            assert [tuple(r[c] for c in ("n", "t_first", "t_last", "codec", "fields", "data"))
                    for r in stored] == list(chunk.rows)
    assert len(chunks_of(local, SID, "samples:lower")) >= 3  # several blocks, several chunks
    local.close()


def _tamper(body: bytes, **changes: Any) -> bytes:
    """The chunk with its header changed (JSON keys), data kept."""
    n = struct.unpack(">I", body[len(MAGIC):len(MAGIC) + 4])[0]
    start = len(MAGIC) + 4
    header = json.loads(body[start:start + n])
    for key, value in changes.items():
        if key.startswith("item_"):
            header["items"][0][key[5:]] = value
        else:
            header[key] = value
    h = json.dumps(header).encode()
    return MAGIC + struct.pack(">I", len(h)) + h + body[start + n:]


def _bomb() -> bytes:
    """A samples chunk whose arrays inflate to 64 MiB each where 4096 samples need 32 kB."""
    bomb = zlib.compress(b"\0" * (64 << 20), 9)  # ~64 kB
    sizes, gaps = np.array([4096], "<i4").tobytes(), b"\0"
    header = json.dumps({"stream": "samples:lower", "seq": 0, "upto": 1, "items": [
        {"n": 4096, "codec": "shuffle-zlib", "blobs": [len(sizes), len(gaps), None, len(bomb),
                                                       None, None, len(bomb), len(bomb), None]}]})
    with pytest.raises(ChunkError, match="declared size"):
        decode_chunk(MAGIC + struct.pack(">I", len(header)) + header.encode() + sizes + gaps
                     + bomb * 3)
    return MAGIC + struct.pack(">I", len(header)) + header.encode() + sizes + gaps + bomb * 3


def test_malformed_chunks_are_refused_and_nothing_is_stored(central: Central,
                                                            local: RecordingStore) -> None:
    assert central.announce(central.token_a, SID, local).status_code == 200
    good = chunks_of(local, SID, "samples:lower")[0]
    angles = chunks_of(local, SID, "angles")[0]
    events = chunks_of(local, SID, "events")[0]
    n = struct.unpack(">I", good[len(MAGIC):len(MAGIC) + 4])[0]
    data_at = len(MAGIC) + 4 + n
    bad = {
        "empty": b"",
        "not a chunk": b"GET / HTTP/1.1\r\n\r\n",
        "header length beyond the body": MAGIC + struct.pack(">I", 1 << 30) + b"{}",
        "header not JSON": MAGIC + struct.pack(">I", 3) + b"{x}",
        "truncated data": good[:-10],
        "trailing bytes": good + b"\0",
        "corrupt deflate": good[:data_at + 40] + bytes(b ^ 0xFF for b in good[data_at + 40:
                                                                             data_at + 60])
        + good[data_at + 60:],
        "unknown stream": _tamper(good, stream="samples:Upper Sensor"),
        "negative seq": _tamper(good, seq=-1),
        "boolean seq": _tamper(good, seq=True),
        "no items": _tamper(good, items=[]),
        "too many samples claimed": _tamper(good, item_n=4097),
        "wrong sample count": _tamper(good, item_n=3),
        "unknown codec": _tamper(good, item_codec="lz4"),
        "events with a bad payload": _tamper(events, item_payload="{not json"),
        "angle fields not a spec": _tamper(angles, item_fields='[["time_s", "<c16"]]'),
        "decompression bomb": _bomb(),
    }
    for what, body in bad.items():
        with pytest.raises(ChunkError):
            decode_chunk(body)
        resp = central.chunk(central.token_a, SID, body)
        assert resp.status_code == 400, (what, resp.status_code, resp.text)
        assert "malformed chunk" in resp.json()["detail"].lower(), what
    state = central.call("GET", f"/api/ingest/sessions/{SID}/cursor",
                         central.device(central.token_a)).json()
    assert state["streams"] == {} and central.blocks(SID) == 0
    huge = central.chunk(central.token_a, SID, MAGIC + b"\0" * (9 << 20))
    assert huge.status_code == 413 and central.blocks(SID) == 0


def test_each_chunk_is_stored_once_in_order(central: Central, local: RecordingStore) -> None:
    a = central.token_a
    assert central.announce(a, SID, local).json()["state"] == "uploading"
    lower = chunks_of(local, SID, "samples:lower")
    ahead = central.chunk(a, SID, lower[1])  # seq 1 before seq 0
    assert ahead.status_code == 409 and ahead.json()["expected_seq"] == 0
    assert ahead.json()["stream"] == "samples:lower" and central.blocks(SID) == 0
    first = central.chunk(a, SID, lower[0]).json()
    assert first["duplicate"] is False and first["next_seq"] == 1
    again = central.chunk(a, SID, lower[0]).json()  # its answer was lost: sent again
    assert again["duplicate"] is True and again["next_seq"] == 1
    assert central.blocks(SID) == first["items"]
    # a different chunk 0 (not a re-send) is refused, not stored
    for other in (_tamper(lower[0], upto=first["last_item_id"] + 1),
                  _tamper(lower[1], seq=0)):
        assert central.chunk(a, SID, other).status_code == 409
    assert central.blocks(SID) == first["items"]
    # the end is refused until every chunk the edge sent is there
    sent = {}
    for stream in STREAMS:
        bodies = chunks_of(local, SID, stream)
        sent[stream] = len(bodies)
        early = central.call("POST", f"/api/ingest/sessions/{SID}/end", central.device(a),
                             json={"status": "completed", "streams": sent})
        assert early.status_code == 409, early.text
        for body in bodies:
            ack = central.chunk(a, SID, body)
            assert ack.status_code == 200, ack.text
    rec = local.session(SID)
    end = central.call("POST", f"/api/ingest/sessions/{SID}/end", central.device(a),
                       json={"status": "completed", "ended_at": rec.ended_at, "streams": sent})
    assert end.status_code == 200, end.text
    assert end.json()["state"] == "ended" and end.json()["status"] == "completed"
    assert central.call("POST", f"/api/ingest/sessions/{SID}/end", central.device(a),
                        json={"status": "completed", "ended_at": rec.ended_at,
                              "streams": sent}).status_code == 200  # idempotent
    counts = assert_same_session(local, central.store, SID)
    assert counts["reports"] == 1 and counts["calibrations"] == 1 and counts["events"] == 5
    assert central.store.session(SID).patient_id == central.pa.id


def test_a_device_token_uploads_only_into_its_patient_and_reads_nothing(
        central: Central, local: RecordingStore) -> None:
    a, b = central.token_a, central.token_b
    assert central.announce(a, SID, local).status_code == 200
    body = chunks_of(local, SID, "samples:lower")[0]
    # patient B's edge cannot touch patient A's session, nor learn more than "taken"
    assert central.announce(b, SID, local).status_code == 409
    for method, path, kw in (
            ("GET", f"/api/ingest/sessions/{SID}/cursor", {}),
            ("POST", f"/api/ingest/sessions/{SID}/chunks",
             {"content": body, "headers": {"Content-Type": MEDIA_TYPE}}),
            ("POST", f"/api/ingest/sessions/{SID}/end",
             {"json": {"status": "completed", "streams": {}}})):
        headers = {**central.device(b), **kw.pop("headers", {})}
        resp = central.call(method, path, headers, **kw)
        assert resp.status_code == 404, (method, path, resp.text)
        assert "Patient A" not in resp.text and central.pa.id not in resp.text
    assert central.blocks(SID) == 0
    assert central.call("GET", "/api/ingest/me", central.device(b)).json()["patient_id"] == \
        central.pb.id
    # a device token is no sign-in: every other route refuses it
    for method, path in (("GET", "/api/recordings"), ("GET", f"/api/recordings/{SID}"),
                         ("GET", "/api/session"), ("GET", f"/api/patients/{central.pa.id}"),
                         ("GET", "/api/auth/me"), ("GET", "/api/patients")):
        resp = central.call(method, path, central.device(a))
        assert resp.status_code == 401, (method, path, resp.status_code)
    # a signed-in person cannot upload, but the patient's therapist may look at the cursor
    assert central.call("PUT", f"/api/ingest/sessions/{SID}", central.cookie(central.ta),
                        json={"started_at": "2025-01-01T00:00:00+00:00"}).status_code == 403
    assert central.call("GET", f"/api/ingest/sessions/{SID}/cursor",
                        central.cookie(central.ta)).status_code == 200
    assert central.call("GET", f"/api/ingest/sessions/{SID}/cursor",
                        central.cookie(central.tb)).status_code == 404
    assert central.call("GET", f"/api/ingest/sessions/{SID}/cursor",
                        central.cookie(central.pb)).status_code == 404
    # nobody, a made-up token, a sign-in token as a device token
    assert central.call("GET", "/api/ingest/me", {}).status_code == 401
    assert central.call("GET", "/api/ingest/me", central.device("lumbo-dev-made-up")
                        ).status_code == 401
    bearer = central.auth.open_session(central.pa, "bearer")[0]
    assert central.call("GET", "/api/ingest/me", central.device(bearer)).status_code == 403
    # the live relay: only a device token
    from starlette.testclient import WebSocketDenialResponse

    with pytest.raises(WebSocketDenialResponse):
        with central.client.websocket_connect("/ws/ingest/live",
                                              headers={"Origin": "http://testserver"}):
            pass


def test_the_live_relay_publishes_on_the_patients_topics(central: Central) -> None:
    frame = {"type": "frame", "schema_version": 1, "session_id": "edge-live", "seq": 0}
    with central.client.websocket_connect(
            "/ws/live", headers={"Origin": "http://testserver",
                                 "Cookie": central.cookie(central.ta)["Cookie"]}) as viewer:
        assert json.loads(viewer.receive_text())["type"] == "status"
        with central.client.websocket_connect(
                "/ws/ingest/live", headers=central.device(central.token_a)) as relay:
            relay.send_text("therapist\n{not json")  # dropped
            relay.send_text("nobody\n" + json.dumps(frame))  # dropped
            relay.send_text("therapist\n" + json.dumps(frame))
            while True:
                msg = json.loads(viewer.receive_text())
                if msg["type"] == "frame":
                    assert msg == frame
                    break


def test_device_tokens_rest_and_revocation(central: Central, local: RecordingStore) -> None:
    pa = central.pa
    path = f"/api/patients/{pa.id}/device-tokens"
    assert central.call("POST", path, central.cookie(pa), json={}).status_code == 403
    assert central.call("POST", path, central.cookie(central.tb), json={}).status_code == 404
    made = central.call("POST", path, central.cookie(central.ta), json={"label": "laptop"})
    assert made.status_code == 201, made.text
    token, token_id = made.json()["token"], made.json()["id"]
    assert central.call("GET", "/api/ingest/me", central.device(token)).json()["username"] == \
        "pat-a"
    listed = central.call("GET", path, central.cookie(central.ta)).json()
    assert {t["id"] for t in listed} >= {token_id} and all("token" not in t for t in listed)
    stored = central.store._query("SELECT token_hash FROM device_tokens WHERE id = ?",
                                  (token_id,))[0]["token_hash"]
    assert token not in stored and len(stored) == 64  # only its SHA-256
    assert central.call("POST", f"{path}/revoke", central.cookie(central.tb),
                        json={"id": token_id}).status_code == 404
    assert central.call("POST", f"{path}/revoke", central.cookie(central.ta),
                        json={"id": token_id}).json() == {"revoked": True}
    assert central.call("GET", "/api/ingest/me", central.device(token)).status_code == 401
    assert central.announce(token, SID, local).status_code == 401
    # disabling the patient ends their devices' uploads too
    central.auth.set_active(pa, False)
    assert central.call("GET", "/api/ingest/me", central.device(central.token_a)
                        ).status_code == 401


def test_device_token_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from api.auth.service import AuthService
    from recordings.accounts import AccountStore

    data = tmp_path / "central"
    auth = AuthService(AccountStore(data))
    t = auth.create_therapist("ther-c", None)
    auth.create_patient("pat-c", t.id)
    auth.close()
    assert main(["create-device-token", "nobody", "--data-dir", str(data)]) == 1
    assert main(["create-device-token", "pat-c", "--label", "home", "--data-dir",
                 str(data)]) == 0
    token = capsys.readouterr().out.strip()
    out = tmp_path / "token"
    assert main(["create-device-token", "pat-c", "--out", str(out), "--data-dir",
                 str(data)]) == 0
    assert out.stat().st_mode & 0o077 == 0 and out.read_text().startswith("lumbo-dev-")
    capsys.readouterr()
    assert main(["device-tokens", "pat-c", "--data-dir", str(data)]) == 0
    listing = capsys.readouterr().out
    assert "home" in listing and token not in listing and listing.count("active") == 2
    auth = AuthService(AccountStore(data))
    device = auth.devices.resolve(token)
    assert device is not None and device.patient.username == "pat-c"
    assert main(["revoke-device-token", "pat-c", device.id, "--data-dir", str(data)]) == 0
    assert auth.devices.resolve(token) is None
    assert main(["revoke-device-token", "pat-c", device.id, "--data-dir", str(data)]) == 1
    auth.close()
    # `lumbo edge` refuses a token file without a device token, before starting anything
    bad = write_token(tmp_path / "bad", "not-a-device-token")
    assert main(["edge", "--central", "http://127.0.0.1:9", "--token-file", str(bad)]) == 2
    assert main(["edge", "--central", "http://127.0.0.1:9", "--token-file",
                 str(tmp_path / "missing")]) == 2
    assert main(["edge", "--central", "ftp://x", "--token-file", str(out)]) == 2


def test_ingest_on_each_backend(store_url: str, local: RecordingStore) -> None:
    """recordings/ingest.py on SQLite and on PostgreSQL: each chunk stored once, in order, only
    for its patient; an upload interrupted by a restart of the central service is live again
    once resumed; the session read back is the edge's."""
    from recordings.ingest import Ingest, IngestConflict, IngestNotFound, SessionMeta

    rec = local.session(SID)
    meta = SessionMeta(rec.started_at, rec.time_origin_s, rec.source, rec.notes,
                       tuple(SensorInfo(s.role, s.family, s.device_name, s.address,
                                        s.nominal_rate_hz) for s in rec.sensors))
    store = RecordingStore(store_url)
    ingest = Ingest(store)
    assert ingest.open_session(SID, "p-1", "d-1", meta).state == "uploading"
    with pytest.raises(IngestConflict):
        ingest.open_session(SID, "p-2", "d-2", meta)
    lower = [decode_chunk(b) for b in chunks_of(local, SID, "samples:lower")]
    assert ingest.apply(SID, "p-1", lower[0]).duplicate is False
    with pytest.raises(IngestNotFound):
        ingest.apply(SID, "p-2", lower[1])
    # the central service restarts: the store it opens marks the upload interrupted (nobody
    # holds its lock any more), resuming makes it live again
    ingest.close()
    store.close()
    store = RecordingStore(store_url)
    assert SID in store.recovered and store.session(SID).status == "interrupted"
    ingest = Ingest(store)
    assert ingest.resume() == [SID] and store.session(SID).status == "live"
    assert ingest.apply(SID, "p-1", lower[0]).duplicate is True
    with pytest.raises(IngestConflict) as ahead:
        ingest.apply(SID, "p-1", lower[2])
    assert ahead.value.expected_seq == 1
    sent = {}
    for stream in STREAMS:
        bodies = [decode_chunk(b) for b in chunks_of(local, SID, stream)]
        sent[stream] = len(bodies)
        for chunk in bodies[1:] if stream == "samples:lower" else bodies:
            assert ingest.apply(SID, "p-1", chunk).duplicate is False
    end = ingest.end(SID, "p-1", "completed", rec.ended_at, sent)
    assert (end.state, end.status, end.edge_status) == ("ended", "completed", "completed")
    assert_same_session(local, store, SID)
    ingest.close()
    store.close()
    store = RecordingStore(store_url)  # an ended upload is left alone by the next start
    assert SID not in store.recovered and Ingest(store).resume() == []
    store.close()
