"""What every browser test shares: Debian's Chromium driven by Playwright, and the CI rule that a
missing browser fails instead of skipping."""

from __future__ import annotations

import os
from pathlib import Path

from ci_rule import missing_component

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000  # a bound on a condition, never a measurement
SHOTS = Path(os.environ.get("LUMBO_SCREENSHOTS", "/tmp/lumbo_screenshots"))


def unavailable(reason: str) -> None:
    missing_component("browser test", reason)
