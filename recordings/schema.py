"""The recordings database schema, one DDL block per version (never edited once released).

Portable: written once with the type tokens of dialect.py (`{id}`, `{ref}`, `{real}`, `{blob}`,
`{text}`, `{nocase}`) and rendered per database; rendered for SQLite each block is, byte for
byte, the DDL that version was released with (tests/test_storage.py checks the schema), and for
PostgreSQL the same tables with PostgreSQL's types. BLOB means BYTEA there.

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
    id {text} PRIMARY KEY,
    patient_id {text},
    started_at {text} NOT NULL,
    ended_at {text},
    time_origin_s {real},
    status {text} NOT NULL CHECK (status IN ('live', 'completed', 'interrupted')),
    source {text} NOT NULL DEFAULT '',
    notes {text} NOT NULL DEFAULT '',
    owner {text} NOT NULL DEFAULT ''
);
CREATE TABLE sensors (
    id {id},
    session_id {text} NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    role {text} NOT NULL,
    family {text} NOT NULL DEFAULT '',
    device_name {text} NOT NULL DEFAULT '',
    address {text} NOT NULL DEFAULT '',
    nominal_rate_hz {real},
    UNIQUE (session_id, role)
);
CREATE TABLE sample_blocks (
    id {id},
    sensor_id {ref} NOT NULL REFERENCES sensors(id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    t_first {real},
    t_last {real},
    codec {text} NOT NULL,
    batch_sizes {blob} NOT NULL,
    batch_gaps {blob} NOT NULL,
    arrival {blob},
    time_s {blob} NOT NULL,
    device_time_s {blob},
    counter {blob},
    acc {blob} NOT NULL,
    gyr {blob} NOT NULL,
    mag {blob}
);
CREATE INDEX sample_blocks_by_sensor ON sample_blocks (sensor_id, id);
CREATE TABLE events (
    id {id},
    session_id {text} NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    time_s {real},
    type {text} NOT NULL,
    payload {text} NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_session ON events (session_id, time_s);
"""

V2 = """
CREATE TABLE analyses (
    id {id},
    session_id {text} NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at {text} NOT NULL,
    kind {text} NOT NULL,
    description {text} NOT NULL DEFAULT '',
    params {text} NOT NULL DEFAULT '{}'
);
CREATE INDEX analyses_by_session ON analyses (session_id, id);
CREATE TABLE angle_blocks (
    id {id},
    analysis_id {ref} NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    t_first {real},
    t_last {real},
    codec {text} NOT NULL,
    fields {text} NOT NULL,
    data {blob} NOT NULL
);
CREATE INDEX angle_blocks_by_analysis ON angle_blocks (analysis_id, id);
CREATE TABLE calibrations (
    id {id},
    session_id {text} NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    analysis_id {ref} REFERENCES analyses(id) ON DELETE CASCADE,
    time_s {real},
    payload {text} NOT NULL
);
CREATE TABLE patient_reports (
    id {id},
    session_id {text} NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    time_s {real},
    reported_at {text} NOT NULL,
    kind {text} NOT NULL,
    payload {text} NOT NULL
);
ALTER TABLE events ADD COLUMN analysis_id {ref} REFERENCES analyses(id) ON DELETE CASCADE;
"""

# Accounts (api/auth/, recordings/accounts.py): therapists and their patients, sign-in sessions
# and one-time login links. `sessions.patient_id` holds a patient's `users.id`. Tokens are stored
# only as their SHA-256 (`token_hash`); times in these tables are Unix seconds.
ACCOUNTS = """
CREATE TABLE users (
    id {text} PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE {nocase},
    role {text} NOT NULL CHECK (role IN ('therapist', 'patient')),
    display_name {text} NOT NULL DEFAULT '',
    password_hash {text},
    therapist_id {text} REFERENCES users(id),
    active INTEGER NOT NULL DEFAULT 1,
    created_at {text} NOT NULL,
    updated_at {text} NOT NULL,
    CHECK ((role = 'patient') = (therapist_id IS NOT NULL))
);
CREATE INDEX users_by_therapist ON users (therapist_id);
CREATE TABLE auth_sessions (
    token_hash {text} PRIMARY KEY,
    user_id {text} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind {text} NOT NULL CHECK (kind IN ('cookie', 'bearer')),
    created_at {real} NOT NULL,
    last_seen_at {real} NOT NULL,
    expires_at {real} NOT NULL,
    idle_timeout_s {real} NOT NULL,
    label {text} NOT NULL DEFAULT ''
);
CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id);
CREATE TABLE login_links (
    token_hash {text} PRIMARY KEY,
    user_id {text} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    next_path {text} NOT NULL DEFAULT '/',
    created_at {real} NOT NULL,
    expires_at {real} NOT NULL,
    created_by {text}
)
"""
