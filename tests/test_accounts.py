"""Accounts in the recordings database (one schema, one migration), the first-run commands
`lumbo create-therapist` / `create-patient` / `login-link`, and the demo's own accounts; on both
storage backends (SQLite, PostgreSQL: the `store_url` fixture)."""

from __future__ import annotations

import io

import pytest
from db_support import BACKENDS, new_location
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
from recordings.database import connect
from recordings.migrations import LATEST_VERSION, current_version


def test_accounts_share_the_recordings_database(store_url) -> None:
    accounts = AccountStore(store_url)
    t = accounts.create("thera", "therapist")
    p = accounts.create("Pat", "patient", therapist_id=t.id)
    accounts.close()
    store = RecordingStore(store_url)  # the same database, the same schema version
    assert current_version(store._conn) == LATEST_VERSION
    store.close()
    conn = connect(store_url)
    assert {"users", "auth_sessions", "login_links", "sessions"} <= set(conn.table_names())
    conn.close()
    again = AccountStore(store_url)
    assert again.by_username("pat").id == p.id  # usernames compare case-insensitively
    assert [a.id for a in again.patients_of(t.id)] == [p.id]
    assert p.id.startswith("p-") and t.id.startswith("t-") and len(p.id) == 18


@pytest.fixture(params=["memory", *BACKENDS])
def accounts(request, tmp_path):  # type: ignore[no-untyped-def]
    """In memory (an app without a data directory), and in each backend's database."""
    if request.param == "memory":
        s, cleanup = AccountStore(None), None
    else:
        location, cleanup = new_location(request, request.param, tmp_path)
        s = AccountStore(location)
    yield s
    s.close()
    if cleanup is not None:
        cleanup()


def test_store_rules(accounts) -> None:
    store = accounts
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


def test_usernames_are_checked_and_unique(accounts) -> None:
    auth = AuthService(accounts)
    t = auth.create_therapist("thera", None)
    with pytest.raises(UsernameTaken):
        auth.create_patient("THERA", t.id)
    assert accounts.by_username("Thera").id == t.id  # found whatever the case
    for name in ("zed", "Amy", "bob"):
        auth.create_patient(name, t.id)
    assert [a.username for a in accounts.patients_of(t.id)] == ["Amy", "bob", "zed"]
    for bad in ("ab", "-leading", "has space", "x" * 65, "ünï"):
        with pytest.raises(Exception, match="username"):
            auth.create_patient(bad, t.id)


def test_create_therapist_and_patient_commands(store_url, tmp_path, monkeypatch,
                                               capsys) -> None:
    # SQLite by --data-dir, as ever; PostgreSQL by --db URL (also taken by --db: a data dir)
    where = ["--data-dir", store_url] if "://" not in store_url else ["--db", store_url]
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["create-therapist", "dr-who", "--password-stdin", *where,
                 "--display-name", "Dr Who"]) == 0
    out = capsys.readouterr().out
    assert "Therapist dr-who created" in out and ":***@" not in out  # trust auth: no password
    monkeypatch.setattr("sys.stdin", io.StringIO("another password\n"))
    assert main(["create-therapist", "DR-WHO", "--password-stdin", *where]) == 1
    assert "taken" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["create-therapist", "other", "--password-stdin", *where]) == 2
    assert "at least 10" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["create-therapist", "other", *where]) == 2
    assert "--password-stdin" in capsys.readouterr().err  # no terminal to ask on
    assert main(["create-patient", "pat", "--therapist", "dr-who", "--no-password",
                 *where]) == 0
    assert main(["create-patient", "pat2", "--therapist", "nobody", "--no-password",
                 *where]) == 1
    capsys.readouterr()
    assert main(["login-link", "pat", *where, "--base-url", "http://clinic:8000/"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("http://clinic:8000/login/link?token=")

    store = AccountStore(store_url)
    t = store.by_username("dr-who")
    assert t.role == "therapist" and t.display_name == "Dr Who" and t.has_password
    assert store.password_hash(t.id).startswith("$argon2id$")
    p = store.by_username("pat")
    assert p.therapist_id == t.id and not p.has_password
    # the printed link signs the patient in on the service that uses this database
    app = create_app(Settings(data_dir=tmp_path / "files", db=store_url))
    with TestClient(app) as client:
        resp = client.get(url.removeprefix("http://clinic:8000"), follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"] == "/"
        assert client.get("/api/auth/me").json()["account"]["id"] == p.id
        ok = client.post("/api/auth/login", json={"username": "dr-who",
                                                  "password": "a long enough password"},
                         headers={"Origin": "http://testserver"})
        assert ok.status_code == 200


def test_demo_accounts_are_idempotent_and_sign_the_pages_in(store_url, tmp_path) -> None:
    demo = Settings(data_dir=tmp_path / "files", db=store_url,
                    auth=AuthSettings(demo_accounts=True),
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
