"""Sign-in, sessions and CSRF: password hashing, the session cookie, rotation, expiry (fake
clocks, no waiting), sign-out, bearer tokens, the Origin check, rate limiting, login links,
open-redirect protection, security headers, the login page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth.config import AuthSettings
from api.auth.middleware import COOKIE_NAME
from api.auth.passwords import PasswordPolicyError, Passwords, check_password
from api.auth.ratelimit import LoginLimiter
from api.auth.service import AuthService, safe_next
from api.settings import Settings
from recordings.accounts import AccountStore

ORIGIN = {"Origin": "http://testserver"}
PASSWORD = "correct horse battery"
CHEAP = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))  # tests only


def jar(token: str) -> str:
    return f"{COOKIE_NAME}={token}"


def cleared(set_cookie: str) -> bool:
    return f'{COOKIE_NAME}=""' in set_cookie or "Max-Age=0" in set_cookie


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app_and_client(clock: Clock) -> Iterator[tuple[object, TestClient]]:
    app = create_app(Settings())
    auth: AuthService = app.state.auth
    auth.passwords = CHEAP
    auth.clock = clock
    auth.limiter = LoginLimiter(clock=clock)
    t = auth.create_therapist("thera", PASSWORD, "Dr Thera")
    auth.create_patient("pat", t.id, PASSWORD, "Pat Ient")
    with TestClient(app) as client:
        yield app, client


def login(client: TestClient, username: str = "thera", password: str = PASSWORD,
          **kw: object) -> object:
    return client.post("/api/auth/login", json={"username": username, "password": password, **kw},
                       headers=ORIGIN)


# --- passwords ---------------------------------------------------------------------------------

def test_passwords_are_argon2id_with_rfc9106_parameters() -> None:
    pw = Passwords()
    h = pw.hash(PASSWORD)
    assert h.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert pw.verify(h, PASSWORD) and not pw.verify(h, PASSWORD + "x")
    assert not pw.verify(None, PASSWORD)  # no account: a dummy hash is verified, still False
    assert not pw.verify("not a hash", PASSWORD)
    assert pw.needs_rehash(CHEAP.hash(PASSWORD)) and not pw.needs_rehash(h)


def test_password_policy() -> None:
    check_password("ten chars!")
    for bad, why in (("short", "at least 10"), ("x" * 257, "at most 256"),
                     ("Thera-1234", "not be the username")):
        with pytest.raises(PasswordPolicyError, match=why):
            check_password(bad, "thera-1234")


async def test_weaker_hashes_are_upgraded_at_sign_in(clock: Clock) -> None:
    auth = AuthService(AccountStore(None), passwords=CHEAP, clock=clock)
    t = auth.create_therapist("thera", PASSWORD)
    auth.passwords = Passwords()  # the current parameters
    await auth.authenticate("thera", PASSWORD, "1.2.3.4")
    assert auth.store.password_hash(t.id).startswith("$argon2id$v=19$m=65536,t=3,p=4$")


# --- sign-in, cookie, rotation, sign-out ------------------------------------------------------

def test_sign_in_sets_an_httponly_strict_cookie_and_rotates(app_and_client) -> None:
    app, client = app_and_client
    resp = login(client)
    assert resp.status_code == 200, resp.text
    assert resp.json()["account"]["role"] == "therapist"
    cookie = resp.headers["set-cookie"]
    assert f"{COOKIE_NAME}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie  # plain http: Secure would be dropped
    first = client.cookies[COOKIE_NAME]
    assert client.get("/api/auth/me").json()["account"]["username"] == "thera"
    assert login(client).status_code == 200  # signing in again: a new token, the old one ends
    second = client.cookies[COOKIE_NAME]
    assert second != first
    client.cookies.clear()
    assert client.get("/api/auth/me", headers={"Cookie": jar(first)}).status_code == 401
    assert client.get("/api/auth/me", headers={"Cookie": jar(second)}).status_code == 200
    # the database never holds the token itself
    store = app.state.auth.store
    assert store.session(first) is None and store.session(second) is None


def test_cookie_is_secure_over_https(app_and_client) -> None:
    app, _ = app_and_client
    with TestClient(app, base_url="https://lumbo.example") as client:
        resp = client.post("/api/auth/login", json={"username": "thera", "password": PASSWORD},
                           headers={"Origin": "https://lumbo.example"})
        assert "Secure" in resp.headers["set-cookie"]


def test_one_message_for_every_failed_sign_in(app_and_client) -> None:
    app, client = app_and_client
    pat = app.state.auth.store.by_username("pat")
    app.state.auth.set_active(pat, False)
    answers = {login(client, u, p).json()["detail"]
               for u, p in (("thera", "wrong password!"), ("nobody-here", PASSWORD),
                            ("pat", PASSWORD))}
    assert answers == {"Wrong username or password."}
    assert COOKIE_NAME not in client.cookies


def test_sign_out_ends_the_session(app_and_client) -> None:
    _, client = app_and_client
    login(client)
    token = client.cookies[COOKIE_NAME]
    resp = client.post("/api/auth/logout", headers=ORIGIN)
    assert resp.json() == {"signed_out": True}
    assert cleared(resp.headers["set-cookie"])
    client.cookies.clear()
    assert client.get("/api/session", headers={"Cookie": jar(token)}).status_code == 401
    assert client.post("/api/auth/logout", headers=ORIGIN).json() == {"signed_out": False}


def test_sessions_expire_absolute_and_idle(clock: Clock) -> None:
    settings = AuthSettings(session_lifetime_s=1000.0, session_idle_s=300.0)
    auth = AuthService(AccountStore(None), settings, passwords=CHEAP, clock=clock)
    t = auth.create_therapist("thera", None)
    token, _ = auth.open_session(t)
    clock.t += 299.0
    assert auth.resolve(token, "cookie") is not None  # activity: idle timer restarts
    clock.t += 299.0
    assert auth.resolve(token, "cookie") is not None
    clock.t += 301.0
    assert auth.resolve(token, "cookie") is None  # idle for too long
    token, _ = auth.open_session(t)
    for _ in range(3):
        clock.t += 240.0
        assert auth.resolve(token, "cookie") is not None
    clock.t += 290.0
    assert auth.resolve(token, "cookie") is None  # 1010 s > the absolute 1000 s
    assert auth.resolve(token, "bearer") is None and auth.resolve("", "cookie") is None


def test_expired_cookie_is_cleared_and_pages_go_to_login(app_and_client, clock: Clock) -> None:
    app, client = app_and_client
    login(client)
    token = client.cookies[COOKIE_NAME]
    clock.t += app.state.auth.settings.session_lifetime_s + 1
    api = client.get("/api/session")
    assert api.status_code == 401 and "sign in again" in api.json()["detail"].lower()
    resp = client.get("/therapist?x=1", headers={"Cookie": jar(token)}, follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login?next=%2Ftherapist%3Fx%3D1"
    assert cleared(resp.headers["set-cookie"])


def test_disabling_an_account_or_a_new_password_ends_its_sessions(app_and_client) -> None:
    app, client = app_and_client
    auth = app.state.auth
    pat = auth.store.by_username("pat")
    token, _ = auth.open_session(pat)
    login(client)
    r = client.patch(f"/api/patients/{pat.id}", json={"password": "a brand new one"},
                     headers=ORIGIN)
    assert r.status_code == 200, r.text
    assert auth.resolve(token, "cookie") is None
    token, _ = auth.open_session(pat)
    r = client.patch(f"/api/patients/{pat.id}", json={"active": False}, headers=ORIGIN)
    assert r.json()["active"] is False and auth.resolve(token, "cookie") is None
    assert login(client, "pat", "a brand new one").status_code == 401


# --- bearer tokens -----------------------------------------------------------------------------

def test_bearer_tokens_for_scripts(app_and_client) -> None:
    _, client = app_and_client
    resp = client.post("/api/auth/token", json={"username": "thera", "password": PASSWORD,
                                                "label": "nightly export"})
    assert resp.status_code == 200 and "set-cookie" not in resp.headers
    token = resp.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/auth/me", headers=bearer).json()["sign_in"]["kind"] == "bearer"
    assert client.post("/api/session/stop", headers=bearer).status_code == 404  # no Origin needed
    assert client.get("/api/auth/me", headers={"Cookie": jar(token)}).status_code == 401
    assert client.get("/api/auth/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    basic = {"Authorization": "Basic dGhlcmE="}
    assert client.get("/api/auth/me", headers=basic).status_code == 401
    assert client.post("/api/auth/logout", headers=bearer).json() == {"signed_out": True}
    assert client.get("/api/auth/me", headers=bearer).status_code == 401


# --- CSRF / Origin -----------------------------------------------------------------------------

def test_state_changes_with_the_cookie_need_this_sites_origin(app_and_client) -> None:
    _, client = app_and_client
    login(client)
    start = {"script": "flexion_reps", "realtime": False}
    for headers in ({}, {"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/page"}):
        resp = client.post("/api/session/start", json=start, headers=headers)
        assert resp.status_code == 403, headers
        assert "cross-site" in resp.json()["detail"].lower()
    assert client.get("/api/session").json()["state"] == "idle"  # nothing was started
    resp = client.post("/api/session/stop", headers={"Referer": "http://testserver/therapist"})
    assert resp.status_code == 404  # same-site Referer (no Origin) is accepted: no session yet
    assert client.get("/api/session", headers={"Origin": "http://evil.example"}).status_code == 200


def test_login_from_another_site_is_refused(app_and_client) -> None:
    _, client = app_and_client
    resp = client.post("/api/auth/login", json={"username": "thera", "password": PASSWORD},
                       headers={"Origin": "http://evil.example"})
    assert resp.status_code == 403 and COOKIE_NAME not in client.cookies


def test_allowed_origins_setting() -> None:
    app = create_app(Settings(allowed_origins=["https://tablet.clinic.example"]))
    auth = app.state.auth
    token, _ = auth.open_session(auth.create_therapist("thera", None))
    with TestClient(app) as client:
        resp = client.post("/api/session/stop", headers={
            "Cookie": jar(token), "Origin": "https://tablet.clinic.example"})
        assert resp.status_code == 409  # past the Origin check (no patient yet)


# --- rate limiting -----------------------------------------------------------------------------

def test_failed_sign_ins_are_rate_limited_per_username_and_address(app_and_client,
                                                                   clock: Clock) -> None:
    app, client = app_and_client
    for _ in range(5):
        assert login(client, "thera", "wrong password!").status_code == 401
    resp = login(client, "thera", PASSWORD)  # even the right password waits now
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) > 0
    assert "too many" in resp.json()["detail"].lower()
    assert login(client, "pat", PASSWORD).status_code == 200  # another account: not locked out
    clock.t += 901.0  # the window has passed
    assert login(client, "thera", PASSWORD).status_code == 200


def test_limiter_is_bounded_and_counts_addresses() -> None:
    clock = Clock()
    lim = LoginLimiter(max_failures=2, max_per_address=3, window_s=60, max_keys=16, clock=clock)
    for i in range(1000):
        lim.failed(f"user{i}", f"10.0.{i // 256}.{i % 256}")
    assert len(lim) <= 32
    lim = LoginLimiter(max_failures=2, max_per_address=3, window_s=60, max_keys=16, clock=clock)
    lim.failed("a", "1.1.1.1")
    lim.failed("b", "1.1.1.1")
    assert lim.retry_after("c", "1.1.1.1") is None
    lim.failed("c", "1.1.1.1")
    assert lim.retry_after("d", "1.1.1.1") == 60.0  # one address, many usernames
    assert lim.retry_after("d", "2.2.2.2") is None
    lim.failed("e", "3.3.3.3")
    lim.succeeded("e", "3.3.3.3")
    lim.failed("e", "3.3.3.3")
    assert lim.retry_after("e", "3.3.3.3") is None  # the success cleared the pair's count


# --- login links -------------------------------------------------------------------------------

def test_login_link_is_single_use_and_expires(app_and_client, clock: Clock) -> None:
    app, client = app_and_client
    auth = app.state.auth
    pat = auth.store.by_username("pat")
    token, _ = auth.make_link(pat, "/?view=big")
    resp = client.get(f"/login/link?token={token}", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/?view=big"
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert client.get("/api/auth/me").json()["account"]["username"] == "pat"
    client.cookies.clear()
    again = client.get(f"/login/link?token={token}", follow_redirects=False)
    assert again.headers["location"] == "/login?link=invalid" and COOKIE_NAME not in client.cookies
    token, _ = auth.make_link(pat)
    clock.t += auth.settings.link_lifetime_s + 1
    late = client.get(f"/login/link?token={token}", follow_redirects=False)
    assert late.headers["location"] == "/login?link=invalid"


def test_patient_link_keeps_the_patients_therapist_signed_in(app_and_client) -> None:
    app, client = app_and_client
    auth = app.state.auth
    pat = auth.store.by_username("pat")
    login(client)
    therapist_token = client.cookies[COOKIE_NAME]
    token, _ = auth.make_link(pat, "/")
    resp = client.get(f"/login/link?token={token}", follow_redirects=False)
    assert resp.headers["location"] == f"/?patient_id={pat.id}"
    assert client.cookies[COOKIE_NAME] == therapist_token
    # another therapist's browser is switched to the patient (a new, rotated session)
    other = auth.create_therapist("other", None)
    other_token, _ = auth.open_session(other)
    client.cookies.clear()
    token, _ = auth.make_link(pat, "/")
    resp = client.get(f"/login/link?token={token}", headers={"Cookie": jar(other_token)},
                      follow_redirects=False)
    assert resp.headers["location"] == "/"
    assert auth.resolve(other_token, "cookie") is None
    assert client.get("/api/auth/me").json()["account"]["username"] == "pat"


def test_therapist_makes_a_login_link_for_their_patient(app_and_client) -> None:
    app, client = app_and_client
    pat = app.state.auth.store.by_username("pat")
    login(client)
    resp = client.post(f"/api/patients/{pat.id}/login-link", json={"next": "https://evil.example"},
                       headers=ORIGIN)
    url = resp.json()["url"]
    assert re.fullmatch(r"/login/link\?token=[A-Za-z0-9_-]{43}", url)
    client.cookies.clear()
    assert client.get(url, follow_redirects=False).headers["location"] == "/"  # no open redirect


@pytest.mark.parametrize(("given", "safe"), [
    ("/therapist", "/therapist"), ("/?patient_id=p-1", "/?patient_id=p-1"), (None, "/"),
    ("//evil.example", "/"), ("/\\evil.example", "/"), ("https://evil.example/", "/"),
    ("javascript:alert(1)", "/"), ("/login?next=/", "/"), ("/a b", "/"), ("therapist", "/"),
])
def test_safe_next(given: str | None, safe: str) -> None:
    assert safe_next(given) == safe


def test_login_answer_sanitises_next(app_and_client) -> None:
    _, client = app_and_client
    assert login(client, next="//evil.example/x").json()["next"] == "/"
    assert login(client, next="/therapist").json()["next"] == "/therapist"


# --- headers and pages -------------------------------------------------------------------------

def test_security_headers(app_and_client) -> None:
    _, client = app_and_client
    login(client)
    for path in ("/", "/login", "/api/session"):
        h = client.get(path).headers
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert client.get("/api/session").headers["cache-control"] == "no-store"


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.buttons: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input":
            self.inputs.append(a)
        elif tag == "label" and a.get("for"):
            self.label_for.add(a["for"] or "")
        elif tag == "button":
            self.buttons.append(a)


def test_login_page_is_public_and_labelled(app_and_client) -> None:
    _, client = app_and_client
    resp = client.get("/login")
    assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
    form = _Form()
    form.feed(resp.text)
    assert {i["id"] for i in form.inputs} <= form.label_for  # every input has a label
    assert {i.get("autocomplete") for i in form.inputs if i.get("type") != "checkbox"} == {
        "username", "current-password"}
    assert [b.get("type") for b in form.buttons] == ["submit"]
    for asset in ("login.js", "auth.css", "auth.js"):
        assert client.get(f"/static/{asset}").status_code == 200


def test_pages_have_a_sign_out_button() -> None:
    static = Path(__file__).resolve().parent.parent / "api" / "static"
    for page in ("patient.html", "therapist.html"):
        html = (static / page).read_text()
        assert 'id="logout"' in html and "/static/auth.js" in html
    live = (static / "live.js").read_text()
    assert "res.status === 401" in live  # any API call answered 401 goes to the login page
