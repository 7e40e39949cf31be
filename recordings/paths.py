"""Where recordings live: `$LUMBO_DATA_DIR`, else the XDG data directory (~/.local/share/lumbo)."""

from __future__ import annotations

import os
from pathlib import Path

DB_FILENAME = "lumbo.db"
LOCK_DIRNAME = "locks"


def default_data_dir() -> Path:
    env = os.environ.get("LUMBO_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "lumbo"
