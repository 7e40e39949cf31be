"""Accounts in the recordings database (one schema, one migration), the first-run commands
`lumbo create-therapist` / `create-patient` / `login-link`, and the demo's own accounts."""

from __future__ import annotations

import io
import sqlite3

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth.cli import DEMO_PATIENT, DEMO_THERAPIST, demo_login_urls, ensure_demo_accounts
from api.auth.config import AuthSettings
from api.auth.service import AuthService, UsernameTaken
from api.cli import main
from api.schema import StartSessionRequest
from api.settings import Settings
from recordings import RecordingStore
from recordings.accounts import AccountNotFound, AccountStore
from recordings.migrations import LATEST_VERSION, current_version


def test_accounts_share_the_recordings_database(tmp_path) -> None:
    accounts = AccountStore(tmp_path)
    t = accounts.create("thera", "therapist")
    p = accounts.create("Pat", "patient", therapist_id=t.id)
    accounts.close()
    store = RecordingStore(tmp_path)  # the same file, the same schema version
    assert current_version(store._conn) == LATEST_VERSION
    store.close()
    conn = sqlite3.connect(tmp_path / "lumbo.db")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"users", "auth_sessions", "login_links", "sessions"} <= tables
    again = AccountStore(tmp_path)
    assert again.by_username("pat").id == p.id  # usernames compare case-insensitively
    assert [a.id for a in again.patients_of(t.id)] == [p.id]
    assert p.id.startswith("p-") and t.id.startswith("t-") and len(p.id) == 18


def test_store_rules() -> None:
    store = AccountStore(None)
    t = store.create("thera", "therapist")
    with pytest.raises(ValueError):
        store.create("pat", "patient")  # a patient needs a therapist
    with pytest.raises(ValueError):
        store.create("thera2", "therapist", therapist_id=t.id)
    p = store.create("pat", "patient", therapist_id=t.id)
    with pytest.raises(AccountNotFound):
        store.create("pat2", "patient", therapist_id=p.id)  # a patient is no therapist
    with pytest.raises(AccountNotFound):
        store.get("p-nope")
    store.add_link("h", p.id, "/", created_at=0.0, expires_at=10.0)
    assert store.consume_link("h", now=5.0) == (p.id, "/")
    assert store.consume_link("h", now=5.0) is None  # single use
    store.add_link("h2", p.id, "/", created_at=0.0, expires_at=10.0)
    assert store.consume_link("h2", now=10.0) is None  # expired (and gone)


def test_usernames_are_checked_and_unique() -> None:
    auth = AuthService(AccountStore(None))
    t = auth.create_therapist("thera", None)
    with pytest.raises(UsernameTaken):
        auth.create_patient("THERA", t.id)
    for bad in ("ab", "-leading", "has space", "x" * 65, "ünï"):
        with pytest.raises(Exception, match="username"):
            auth.create_patient(bad, t.id)


def test_create_therapist_and_patient_commands(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["create-therapist", "dr-who", "--password-stdin", "--data-dir",
                 str(tmp_path), "--display-name", "Dr Who"]) == 0
    assert "Therapist dr-who created" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("another password\n"))
    assert main(["create-therapist", "DR-WHO", "--password-stdin", "--data-dir",
                 str(tmp_path)]) == 1
    assert "taken" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["create-therapist", "other", "--password-stdin", "--data-dir",
                 str(tmp_path)]) == 2
    assert "at least 10" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["create-therapist", "other", "--data-dir", str(tmp_path)]) == 2
    assert "--password-stdin" in capsys.readouterr().err  # no terminal to ask on
    assert main(["create-patient", "pat", "--therapist", "dr-who", "--no-password",
                 "--data-dir", str(tmp_path)]) == 0
    assert main(["create-patient", "pat2", "--therapist", "nobody", "--no-password",
                 "--data-dir", str(tmp_path)]) == 1
    capsys.readouterr()
    assert main(["login-link", "pat", "--data-dir", str(tmp_path),
                 "--base-url", "http://clinic:8000/"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("http://clinic:8000/login/link?token=")

    store = AccountStore(tmp_path)
    t = store.by_username("dr-who")
    assert t.role == "therapist" and t.display_name == "Dr Who" and t.has_password
    assert store.password_hash(t.id).startswith("$argon2id$")
    p = store.by_username("pat")
    assert p.therapist_id == t.id and not p.has_password
    # the printed link signs the patient in on the service that uses this data directory
    app = create_app(Settings(data_dir=tmp_path))
    with TestClient(app) as client:
        resp = client.get(url.removeprefix("http://clinic:8000"), follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"] == "/"
        assert client.get("/api/auth/me").json()["account"]["id"] == p.id
        ok = client.post("/api/auth/login", json={"username": "dr-who",
                                                  "password": "a long enough password"},
                         headers={"Origin": "http://testserver"})
        assert ok.status_code == 200


def test_demo_accounts_are_idempotent_and_sign_the_pages_in(tmp_path) -> None:
    demo = Settings(data_dir=tmp_path, auth=AuthSettings(demo_accounts=True),
                    autostart=StartSessionRequest(script="flexion_reps", realtime=False))
    app = create_app(demo)
    auth: AuthService = app.state.auth
    t, p = ensure_demo_accounts(auth)
    assert ensure_demo_accounts(auth) == (t, p)  # idempotent
    assert (t.username, p.username, p.therapist_id) == (DEMO_THERAPIST, DEMO_PATIENT, t.id)
    assert t.has_password and p.has_password  # random, printed nowhere
    links = dict(demo_login_urls(app, "http://127.0.0.1:8000"))
    with TestClient(app) as client:
        assert app.state.manager.current.patient_id == p.id  # the demo session is the patient's
        for page, who, to in (("Patient page", p, "/"), ("Therapist page", t, "/therapist")):
            client.cookies.clear()
            resp = client.get(links[page].removeprefix("http://127.0.0.1:8000"),
                              follow_redirects=False)
            assert resp.headers["location"] == to
            assert client.get("/api/auth/me").json()["account"]["id"] == who.id
            assert client.get("/api/session").json()["session_id"] is not None
    again = create_app(demo)  # a second start of the demo on the same data directory
    assert ensure_demo_accounts(again.state.auth)[0].id == t.id
