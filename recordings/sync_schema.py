"""Tables of edge mode (migration 4): device tokens and the upload bookkeeping of both sides.

Portable DDL with the type tokens of dialect.py, like schema.py. Why each table:

- `device_tokens` (central): an edge's credential, bound to ONE patient account; only the
  SHA-256 of the token is kept (as for sign-in tokens), `revoked_at` set ends it at once.
- `ingest_sessions` (central): a session that an edge uploads (`state` `uploading` until the
  edge says it ended, then `ended`; `edge_status` the status it reported), which device made
  it, and the central analysis that holds the edge's live angles and calibrations.
- `ingest_streams` (central): per uploaded session and stream (`samples:<role>`, `angles`,
  `events`, `calibrations`, `reports`) the next chunk sequence number expected and the edge's
  id of the last item stored, updated in the same transaction as the chunk's rows: a chunk is
  stored exactly once however often it is re-sent.
- `upload_sessions`, `upload_streams` (edge): what one central service (`central`, its URL)
  has acknowledged, so an edge that restarts resumes where it stopped.
"""

from __future__ import annotations

EDGE_SYNC = """
CREATE TABLE device_tokens (
    id {text} PRIMARY KEY,
    token_hash {text} NOT NULL UNIQUE,
    patient_id {text} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label {text} NOT NULL DEFAULT '',
    created_at {real} NOT NULL,
    created_by {text},
    last_used_at {real},
    revoked_at {real}
);
CREATE INDEX device_tokens_by_patient ON device_tokens (patient_id);
CREATE TABLE ingest_sessions (
    session_id {text} PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    device_id {text} NOT NULL,
    state {text} NOT NULL CHECK (state IN ('uploading', 'ended')),
    edge_status {text} NOT NULL DEFAULT '',
    analysis_id {ref} REFERENCES analyses(id) ON DELETE SET NULL,
    created_at {text} NOT NULL,
    updated_at {text} NOT NULL
);
CREATE TABLE ingest_streams (
    session_id {text} NOT NULL REFERENCES ingest_sessions(session_id) ON DELETE CASCADE,
    stream {text} NOT NULL,
    next_seq INTEGER NOT NULL,
    last_item_id {ref} NOT NULL,
    items {ref} NOT NULL,
    updated_at {text} NOT NULL,
    PRIMARY KEY (session_id, stream)
);
CREATE TABLE upload_sessions (
    session_id {text} NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    central {text} NOT NULL,
    ended_status {text} NOT NULL DEFAULT '',
    updated_at {text} NOT NULL,
    PRIMARY KEY (session_id, central)
);
CREATE TABLE upload_streams (
    session_id {text} NOT NULL,
    central {text} NOT NULL,
    stream {text} NOT NULL,
    next_seq INTEGER NOT NULL,
    last_item_id {ref} NOT NULL,
    updated_at {text} NOT NULL,
    PRIMARY KEY (session_id, central, stream),
    FOREIGN KEY (session_id, central) REFERENCES upload_sessions (session_id, central)
        ON DELETE CASCADE
)
"""
