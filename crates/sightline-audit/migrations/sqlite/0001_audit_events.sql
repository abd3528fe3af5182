-- The audit trail. `seq` is the chain position; timestamps are microseconds since the Unix epoch.
CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ts INTEGER NOT NULL,
    actor_id TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_ip TEXT,
    actor_user_agent TEXT,
    action TEXT NOT NULL,
    target_type TEXT,
    target_id TEXT,
    outcome TEXT NOT NULL,
    severity TEXT NOT NULL,
    component TEXT,
    request_id TEXT,
    trace_id TEXT,
    message TEXT NOT NULL,
    attributes TEXT NOT NULL,
    hash BLOB NOT NULL,
    prev_hash BLOB NOT NULL
);

-- Newest-first pages and time ranges; filters on the common fields within a time range.
CREATE INDEX audit_events_ts ON audit_events (ts, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_id, ts);
CREATE INDEX audit_events_action ON audit_events (action, ts);

-- Full text over the message and attributes, filled after commit in large batches (see `index_pending`).
CREATE VIRTUAL TABLE audit_fts USING fts5 (
    message, attributes, content = 'audit_events', content_rowid = 'seq', tokenize = 'unicode61'
);

-- Checkpoints left by retention: the last deleted event's position and hash.
CREATE TABLE audit_checkpoints (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    created INTEGER NOT NULL
);

-- Bookkeeping: `fts_seq` is the highest seq the full-text index covers.
CREATE TABLE audit_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO audit_meta (key, value) VALUES ('fts_seq', 0);
