"""import(export(x)) gives the same samples: a live-recorded session (2-sample batches with
device time and counters, a gap) exported as raw CSV over REST and imported again over REST,
and an Xsens DOT import exported and re-imported on the command line; on both storage backends
(SQLite, PostgreSQL: the `store_url` fixture)."""

from __future__ import annotations

import argparse
import contextlib
import io

import httpx
import numpy as np

from api.app import create_app
from api.settings import Settings
from recordings import RecordingStore, SensorInfo, SessionInfo
from recordings.commands import add_subcommands
from recordings.testing import simulated_recording, simulated_stream, xsens_dot_export


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    for role in ("upper", "lower"):
        x, y = a[role], b[role]
        for name in ("time_s", "acc", "gyr", "mag", "device_time_s", "counter"):
            u, v = getattr(x, name), getattr(y, name)
            assert (u is None) == (v is None), (role, name)
            if u is not None:
                assert u.dtype == v.dtype and u.tobytes() == v.tobytes(), (role, name)


async def test_rest_export_then_import_gives_the_same_samples(store_url, tmp_path,
                                                               sign_in) -> None:
    stream = simulated_stream(simulated_recording(1, seed=9), 2)
    app = create_app(Settings(data_dir=tmp_path / "files", db=store_url))
    accounts = sign_in(app)
    async with app.router.lifespan_context(app):
        store = app.state.recordings.store
        w = store.begin_session(SessionInfo(source="simulated", sensors=(
            SensorInfo("upper"), SensorInfo("lower"))))
        for b in stream:
            w.append_batch(b)
        assert w.close()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test", cookies=accounts.cookies(),
                                     headers={"Origin": "http://test"}) as c:
            r = await c.get(f"/api/recordings/{w.session_id}/export",
                            params={"format": "raw-csv"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            assert int(r.headers["content-length"]) == len(r.content)
            assert "device_time_s,counter" in r.text.splitlines()[2]
            r2 = await c.post("/api/recordings/import", params={"name": "again.csv"},
                              content=r.content)
            assert r2.status_code == 201, r2.text
            again = r2.json()["session_id"]
    store = RecordingStore(store_url, read_only=True)
    _same(store.read_recording(w.session_id), store.read_recording(again))


def lumbo(*argv: object) -> str:
    parser = argparse.ArgumentParser(prog="lumbo")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert args.func(args) == 0
    return out.getvalue().strip()


def test_xsens_dot_import_exports_and_reimports_identically(store_url, tmp_path) -> None:
    rec = simulated_recording(1, seed=2, with_mag=False)
    for role in ("upper", "lower"):
        (tmp_path / f"{role}.csv").write_text(xsens_dot_export(
            rec[role], start_us=1_000_000 + int(round(float(rec[role].time_s[0]) * 1e6))))
    d = store_url
    first = lumbo("import", "--format", "xsens-dot", "--upper", tmp_path / "upper.csv",
                  "--lower", tmp_path / "lower.csv", "--db", d)
    lumbo("export", first, "--format", "raw-csv", "--out", tmp_path / "raw.csv.gz", "--db", d)
    second = lumbo("import", tmp_path / "raw.csv.gz", "--db", d)
    store = RecordingStore(d)
    a, b = store.read_recording(first), store.read_recording(second)
    _same(a, b)
    assert np.all(np.diff(a["lower"].counter) == 1)


def test_merged_reading_gives_the_same_samples_and_gaps(store_url) -> None:
    import dataclasses

    stream = simulated_stream(simulated_recording(1, seed=9), 2)
    stream[301] = dataclasses.replace(stream[301], gap_before=True)  # lost samples before it
    store = RecordingStore(store_url)
    w = store.begin_session()
    for b in stream:
        w.append_batch(b)
    assert w.close()
    exact = store.read_batches(w.session_id)
    merged = store.read_batches(w.session_id, merged=True)
    for role in ("upper", "lower"):
        assert len(merged[role]) < len(exact[role]) / 10

        def gap_samples(bs):  # type: ignore[no-untyped-def]
            out, n = [], 0
            for b in bs:
                if b.gap_before:
                    out.append(n)
                n += len(b)
            return out

        assert gap_samples(merged[role]) == gap_samples(exact[role])
        for name in ("time_s", "acc", "gyr", "mag", "device_time_s", "counter"):
            a = np.concatenate([getattr(b, name) for b in exact[role]])
            m = np.concatenate([getattr(b, name) for b in merged[role]])
            assert a.tobytes() == m.tobytes(), (role, name)
    assert sum(b.gap_before for bs in exact.values() for b in bs) == 1
