"""Password hashing (argon2id) and the password policy.

Why argon2id with RFC 9106's second recommended parameter set (t=3 passes, m=64 MiB, p=4): it
is the winner of the Password Hashing Competition, the first choice of OWASP's Password Storage
Cheat Sheet and of RFC 9106, and memory-hard, so guessing with GPUs or ASICs costs memory as well
as time. argon2-cffi binds the reference C implementation; its hash strings carry the algorithm
and parameters, so hashes made with other parameters keep verifying and are upgraded at the next
sign-in (`needs_rehash`). About 0.15 s per hash on a 2-core laptop: hashing runs in a worker
thread, at most `MAX_CONCURRENT` at a time (64 MiB each), so sign-ins never stall live frames
and a burst of sign-ins cannot exhaust memory.

Policy (NIST SP 800-63B §5.1.1.2): length counts, composition rules do not. At least 10
characters, at most 256, not the username.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from argon2 import PasswordHasher, exceptions, profiles

PROFILE = profiles.RFC_9106_LOW_MEMORY
MIN_LENGTH = 10
MAX_LENGTH = 256
MAX_CONCURRENT = 2
T = TypeVar("T")


class PasswordPolicyError(ValueError):
    """The password is not acceptable; the message says why, for the person choosing it."""


def check_password(password: str, username: str = "") -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"the password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"the password may have at most {MAX_LENGTH} characters")
    if username and password.strip().casefold() == username.strip().casefold():
        raise PasswordPolicyError("the password must not be the username")


class Passwords:
    """argon2id hash/verify; the async variants run in a thread, a few at a time."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher.from_parameters(PROFILE)
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)  # any event loop, any thread

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True if `password` matches. Without a hash (unknown user, or an account that signs in
        by link only) a dummy hash is verified all the same, so the answer takes as long and
        does not tell whether the username exists."""
        if password_hash is None:
            password_hash, password = self._dummy_hash(), password + "\0"
        try:
            return self.hasher.verify(password_hash, password)
        except (exceptions.VerificationError, exceptions.InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except exceptions.InvalidHashError:
            return True

    def _dummy_hash(self) -> str:
        with self._dummy_lock:
            if self._dummy is None:
                self._dummy = self.hasher.hash("lumbo: no such account")
            return self._dummy

    async def averify(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._bounded, self.verify, password_hash, password)

    async def ahash(self, password: str) -> str:
        return await asyncio.to_thread(self._bounded, self.hash, password)

    def _bounded(self, fn: Callable[..., T], *args: Any) -> T:
        with self._slots:
            return fn(*args)
