"""The recordings database schema, one DDL block per version (never edited once released).

Why batches, not samples: a row per sample at 2 × 100 Hz costs a B-tree entry and ~40 bytes of
row overhead per sample and 200 inserts a second; a row per *block* (the batches received since
the last commit, kept apart by `batch_sizes` so the original batches come back exactly) stores
numpy arrays as little-endian BLOBs and makes a commit one or two inserts per sensor.

Array columns (`time_s`, `acc`, ...) hold float64 (counters int64) little-endian bytes, row-major
((N, 3) arrays as x0 y0 z0 x1 ...), encoded with the row's `codec` (recordings/codec.py). Times:
`time_s` is the host monotonic time base of the session; `sessions.time_origin_s` is the host time
at `started_at` (UTC ISO 8601), so wall clock = started_at + (time_s − time_origin_s).
"""

from __future__ import annotations

V1 = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    patient_id TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    time_origin_s REAL,
    status TEXT NOT NULL CHECK (status IN ('live', 'completed', 'interrupted')),
    source TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT ''
);
CREATE TABLE sensors (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    family TEXT NOT NULL DEFAULT '',
    device_name TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    nominal_rate_hz REAL,
    UNIQUE (session_id, role)
);
CREATE TABLE sample_blocks (
    id INTEGER PRIMARY KEY,
    sensor_id INTEGER NOT NULL REFERENCES sensors(id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    t_first REAL,
    t_last REAL,
    codec TEXT NOT NULL,
    batch_sizes BLOB NOT NULL,
    batch_gaps BLOB NOT NULL,
    arrival BLOB,
    time_s BLOB NOT NULL,
    device_time_s BLOB,
    counter BLOB,
    acc BLOB NOT NULL,
    gyr BLOB NOT NULL,
    mag BLOB
);
CREATE INDEX sample_blocks_by_sensor ON sample_blocks (sensor_id, id);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    time_s REAL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_session ON events (session_id, time_s);
"""

V2 = """
CREATE TABLE analyses (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX analyses_by_session ON analyses (session_id, id);
CREATE TABLE angle_blocks (
    id INTEGER PRIMARY KEY,
    analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    t_first REAL,
    t_last REAL,
    codec TEXT NOT NULL,
    fields TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX angle_blocks_by_analysis ON angle_blocks (analysis_id, id);
CREATE TABLE calibrations (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    analysis_id INTEGER REFERENCES analyses(id) ON DELETE CASCADE,
    time_s REAL,
    payload TEXT NOT NULL
);
CREATE TABLE patient_reports (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    time_s REAL,
    reported_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
ALTER TABLE events ADD COLUMN analysis_id INTEGER REFERENCES analyses(id) ON DELETE CASCADE;
"""

# Accounts (api/auth/, recordings/accounts.py): therapists and their patients, sign-in sessions
# and one-time login links. `sessions.patient_id` holds a patient's `users.id`. Tokens are stored
# only as their SHA-256 (`token_hash`); times in these tables are Unix seconds.
ACCOUNTS = """
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role TEXT NOT NULL CHECK (role IN ('therapist', 'patient')),
    display_name TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    therapist_id TEXT REFERENCES users(id),
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK ((role = 'patient') = (therapist_id IS NOT NULL))
);
CREATE INDEX users_by_therapist ON users (therapist_id);
CREATE TABLE auth_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('cookie', 'bearer')),
    created_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    idle_timeout_s REAL NOT NULL,
    label TEXT NOT NULL DEFAULT ''
);
CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id);
CREATE TABLE login_links (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    next_path TEXT NOT NULL DEFAULT '/',
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    created_by TEXT
)
"""
