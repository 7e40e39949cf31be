"""The one rule for tests that drive a system component (Chromium, PostgreSQL, redis-server, a
way to make a directory read-only): when it is missing the test fails under CI=true, where a
missing component is a broken set-up (scripts/test installs them all), and skips elsewhere."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing_component(what: str, reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} cannot run in CI: {reason}")
    pytest.skip(reason)
