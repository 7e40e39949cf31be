"""`AuthService`: accounts, sign-in sessions, bearer tokens and one-time login links.

Sign-in sessions are server-side: the browser holds a random 256-bit token in an HttpOnly,
SameSite=Strict cookie and the database holds only its SHA-256 with the account, an absolute
expiry and an idle timeout, so signing out (or a therapist disabling a patient) ends it at once,
everywhere. Every sign-in makes a new token (no session fixation). Bearer tokens for scripts are
the same records with `kind='bearer'`; a cookie token is refused as a bearer token and the
other way round.

One-time login links (`/login/link?token=...`) carry a random token valid for minutes and for
one use; `lumbo demo` prints them so its pages open signed in, and a therapist can make one to
sign a patient's display in without a password.

Times come from `clock` (Unix seconds), so expiry is tested without waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from api.auth.config import AuthSettings
from api.auth.passwords import Passwords, check_password
from api.auth.ratelimit import LoginLimiter
from recordings.accounts import (
    Account,
    AccountExists,
    AccountNotFound,
    AccountStore,
    AuthSessionRecord,
    TokenKind,
)

log = logging.getLogger(__name__)

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{2,63}$"
_USERNAME = re.compile(USERNAME_PATTERN)
MAX_TOKEN_CHARS = 128
TOUCH_EVERY_S = 60.0  # write last_seen_at at most this often per session
_SAFE_NEXT = re.compile(r"^/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*$")


class AuthError(Exception):
    """A refusal with an HTTP status and a message for the person signing in."""

    status = 400

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LoginFailed(AuthError):
    status = 401


class LoginThrottled(AuthError):
    status = 429


class InvalidAccount(AuthError):
    """An account that cannot be created or changed as asked (username, password policy)."""

    status = 422


class UsernameTaken(AuthError):
    status = 409


@dataclass(frozen=True)
class Principal:
    """Who a request comes from, and with which credential."""

    account: Account
    token_hash: str
    kind: TokenKind
    expires_at: float

    @property
    def id(self) -> str:
        return self.account.id

    @property
    def role(self) -> str:
        return self.account.role


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_username(username: str) -> str:
    if not _USERNAME.match(username):
        raise InvalidAccount("a username has 3–64 characters: letters, digits and . _ @ -, "
                             "starting with a letter or digit")
    return username


def check_display_name(name: str) -> str:
    name = name.strip()
    if len(name) > 100 or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidAccount("a display name has at most 100 printable characters")
    return name


def safe_next(path: str | None) -> str:
    """A path on this site to go to after signing in; anything else (another site, `//host`,
    a scheme, the login pages themselves) becomes `/`: no open redirect."""
    if not path or len(path) > 512 or not _SAFE_NEXT.match(path) or path.startswith("/login"):
        return "/"
    return path


class AuthService:
    def __init__(self, store: AccountStore, settings: AuthSettings | None = None, *,
                 passwords: Passwords | None = None,
                 clock: Callable[[], float] = time.time,
                 limiter_clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.settings = settings or AuthSettings()
        self.passwords = passwords or Passwords()
        self.clock = clock
        s = self.settings
        self.limiter = LoginLimiter(max_failures=s.login_max_failures,
                                    max_per_address=s.login_max_failures_per_address,
                                    window_s=s.login_window_s, max_keys=s.login_limiter_keys,
                                    clock=limiter_clock)
        self._watchers: dict[str, set[asyncio.Event]] = {}
        from api.auth.devices import DeviceTokens  # imports this module: import here

        self.devices = DeviceTokens(store, clock=clock)  # edges' credentials (api/auth/devices.py)

    def close(self) -> None:
        self.store.close()

    # --- accounts -------------------------------------------------------------------------
    def create_therapist(self, username: str, password: str | None,
                         display_name: str = "") -> Account:
        return self._create(username, "therapist", password, display_name, None, None)

    def create_patient(self, username: str, therapist_id: str, password: str | None = None,
                       display_name: str = "") -> Account:
        return self._create(username, "patient", password, display_name, therapist_id, None)

    async def acreate_patient(self, username: str, therapist_id: str,
                              password: str | None = None, display_name: str = "") -> Account:
        hashed = None
        if password is not None:
            self._check_new(username, password, display_name)
            hashed = await self.passwords.ahash(password)
        return self._create(username, "patient", None, display_name, therapist_id, hashed)

    def _check_new(self, username: str, password: str | None, display_name: str) -> None:
        check_username(username)
        check_display_name(display_name)
        if password is not None:
            try:
                check_password(password, username)
            except ValueError as exc:
                raise InvalidAccount(str(exc)) from None
        if self.store.by_username(username) is not None:
            raise UsernameTaken(f"the username {username!r} is taken")

    def _create(self, username: str, role: str, password: str | None, display_name: str,
                therapist_id: str | None, hashed: str | None) -> Account:
        self._check_new(username, password, display_name)
        if hashed is None and password is not None:
            hashed = self.passwords.hash(password)
        try:
            return self.store.create(username, role,  # type: ignore[arg-type]
                                     display_name=check_display_name(display_name) or username,
                                     password_hash=hashed, therapist_id=therapist_id)
        except AccountExists:
            raise UsernameTaken(f"the username {username!r} is taken") from None

    async def aset_password(self, account: Account, password: str) -> Account:
        try:
            check_password(password, account.username)
        except ValueError as exc:
            raise InvalidAccount(str(exc)) from None
        hashed = await self.passwords.ahash(password)
        updated = self.store.update(account.id, password_hash=hashed)
        self.sign_out_everywhere(account.id)  # a new password ends the old sign-ins
        return updated

    def set_password(self, account: Account, password: str) -> Account:
        try:
            check_password(password, account.username)
        except ValueError as exc:
            raise InvalidAccount(str(exc)) from None
        updated = self.store.update(account.id, password_hash=self.passwords.hash(password))
        self.sign_out_everywhere(account.id)
        return updated

    def set_active(self, account: Account, active: bool) -> Account:
        updated = self.store.update(account.id, active=active)
        if not active:
            self.sign_out_everywhere(account.id)
        return updated

    def patients_of(self, therapist: Account) -> list[Account]:
        return self.store.patients_of(therapist.id)

    def account(self, account_id: str) -> Account | None:
        try:
            return self.store.get(account_id)
        except AccountNotFound:
            return None

    # --- signing in -----------------------------------------------------------------------
    async def authenticate(self, username: str, password: str, address: str) -> Account:
        """The account if the password is right; LoginThrottled after too many failures,
        LoginFailed (one message for unknown user, wrong password, disabled account)."""
        wait = self.limiter.retry_after(username, address)
        if wait is not None:
            raise LoginThrottled(
                f"Too many failed sign-ins. Try again in {int(wait // 60) + 1} minutes.",
                retry_after_s=wait)
        account = self.store.by_username(username) if len(username) <= 64 else None
        stored = self.store.password_hash(account.id) if account is not None else None
        ok = await self.passwords.averify(stored, password[:1024])
        if not ok or account is None or stored is None or not account.active:
            self.limiter.failed(username, address)
            raise LoginFailed("Wrong username or password.")
        self.limiter.succeeded(username, address)
        if self.passwords.needs_rehash(stored):
            self.store.update(account.id, password_hash=await self.passwords.ahash(password))
        return account

    def open_session(self, account: Account, kind: TokenKind = "cookie",
                     label: str = "") -> tuple[str, AuthSessionRecord]:
        """A new token (returned once, never stored) and its record."""
        s = self.settings
        now = self.clock()
        token = secrets.token_urlsafe(32)
        lifetime = s.session_lifetime_s if kind == "cookie" else s.bearer_lifetime_s
        idle = s.session_idle_s if kind == "cookie" else s.bearer_lifetime_s
        rec = AuthSessionRecord(token_hash=token_hash(token), user_id=account.id, kind=kind,
                                created_at=now, last_seen_at=now, expires_at=now + lifetime,
                                idle_timeout_s=idle, label=label[:64])
        self.store.add_session(rec)
        return token, rec

    def resolve(self, token: str, kind: TokenKind) -> Principal | None:
        """The principal of a valid, unexpired token of this kind, else None."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        h = token_hash(token)
        rec = self.store.session(h)
        if rec is None or rec.kind != kind:
            return None
        now = self.clock()
        if now >= rec.expires_at or now - rec.last_seen_at >= rec.idle_timeout_s:
            self.store.delete_session(h)
            return None
        account = self.account(rec.user_id)
        if account is None or not account.active:
            return None
        if now - rec.last_seen_at >= TOUCH_EVERY_S:
            self.store.touch_session(h, now)
        return Principal(account=account, token_hash=h, kind=rec.kind, expires_at=rec.expires_at)

    def still_valid(self, principal: Principal) -> bool:
        """Re-check a principal (for long-lived WebSockets), counting it as activity."""
        rec = self.store.session(principal.token_hash)
        if rec is None:
            return False
        now = self.clock()
        if now >= rec.expires_at or now - rec.last_seen_at >= rec.idle_timeout_s:
            return False
        account = self.account(rec.user_id)
        if account is None or not account.active:
            return False
        self.store.touch_session(principal.token_hash, now)
        return True

    def sign_out(self, token_hash_: str) -> None:
        self.store.delete_session(token_hash_)
        self._notify([token_hash_])

    def sign_out_everywhere(self, account_id: str) -> None:
        self._notify(self.store.delete_sessions_of(account_id))

    def purge_expired(self) -> int:
        return self.store.purge_expired(self.clock())

    # --- one-time login links -------------------------------------------------------------
    def make_link(self, account: Account, next_path: str = "/", created_by: str | None = None,
                  lifetime_s: float | None = None) -> tuple[str, float]:
        """(token, expires_at) of a single-use link that signs `account` in."""
        now = self.clock()
        token = secrets.token_urlsafe(32)
        expires = now + (lifetime_s or self.settings.link_lifetime_s)
        self.store.add_link(token_hash(token), account.id, safe_next(next_path), now, expires,
                            created_by)
        return token, expires

    def redeem_link(self, token: str) -> tuple[Account, str] | None:
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        found = self.store.consume_link(token_hash(token), self.clock())
        if found is None:
            return None
        account = self.account(found[0])
        if account is None or not account.active:
            return None
        return account, safe_next(found[1])

    # --- sign-out notifications for open WebSockets ----------------------------------------
    def watch(self, principal: Principal) -> asyncio.Event:
        event = asyncio.Event()
        self._watchers.setdefault(principal.token_hash, set()).add(event)
        return event

    def unwatch(self, principal: Principal, event: asyncio.Event) -> None:
        events = self._watchers.get(principal.token_hash)
        if events is not None:
            events.discard(event)
            if not events:
                del self._watchers[principal.token_hash]

    def _notify(self, hashes: list[str]) -> None:
        for h in hashes:
            for event in self._watchers.get(h, ()):
                event.set()
