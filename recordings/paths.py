"""Where recordings live: `$LUMBO_DB` (a storage URL or directory) when set, else the data
directory `$LUMBO_DATA_DIR`, else the XDG data directory (~/.local/share/lumbo).

The data directory also holds the service's files (sensors.json, practice/); `$LUMBO_DB` moves
only the database (e.g. to PostgreSQL, see database.py)."""

from __future__ import annotations

import os
from pathlib import Path

DB_FILENAME = "lumbo.db"
LOCK_DIRNAME = "locks"
DB_ENV = "LUMBO_DB"


def default_data_dir() -> Path:
    env = os.environ.get("LUMBO_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "lumbo"


def default_location() -> str | Path:
    """The database's location when none is given: `$LUMBO_DB`, else the data directory."""
    env = os.environ.get(DB_ENV, "").strip()
    return env if env else default_data_dir()


def storage_location(db: str | None = None, data_dir: str | Path | None = None) -> str | Path:
    """What a command opens: `--db` first, then `--data-dir`, then `default_location()`."""
    if db:
        return db
    if data_dir:
        return Path(data_dir).expanduser()
    return default_location()
