-- The audit trail. `seq` is the chain position; timestamps are microseconds since the Unix epoch.
--
-- `id` is a UUID (16 bytes rather than 36 characters: a smaller heap and a much smaller unique index; the
-- store reads it back as text). Text columns that filters compare use the "C" collation: byte order, as
-- SQLite's, whatever the database's default, so facet counts sort alike on both backends and
-- `action LIKE 'auth.%'` can use the btree index on `action`. `attributes` is the canonical JSON text,
-- kept as written (JSONB would reorder keys and may rewrite numbers, and the hash covers the text).
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    ts BIGINT NOT NULL,
    actor_id TEXT COLLATE "C" NOT NULL,
    actor_type TEXT COLLATE "C" NOT NULL,
    actor_ip TEXT,
    actor_user_agent TEXT,
    action TEXT COLLATE "C" NOT NULL,
    target_type TEXT COLLATE "C",
    target_id TEXT COLLATE "C",
    outcome TEXT COLLATE "C" NOT NULL,
    severity TEXT COLLATE "C" NOT NULL,
    component TEXT COLLATE "C",
    request_id TEXT COLLATE "C",
    trace_id TEXT COLLATE "C",
    message TEXT NOT NULL,
    attributes TEXT NOT NULL,
    hash BYTEA NOT NULL,
    prev_hash BYTEA NOT NULL
);

-- Time. Rows arrive in time order, so every index on `ts` grows at its right edge and stays cheap to
-- maintain at hundreds of millions of rows.
-- The btree on (ts, seq) is what newest-first pages need: `ORDER BY ts DESC, seq DESC LIMIT n` with the
-- cursor's `(ts, seq) < (..)` walks it backwards and stops after n rows, whatever the table's size. BRIN
-- cannot return rows in order, so it cannot replace it.
-- The BRIN index on ts (a few kilobytes per hundred million rows, next to nothing to maintain) serves the
-- other kind of time scan: counting or exporting a wide range (`count_by` over `since:30d`), where a
-- bitmap of block ranges reads the matching heap without reading gigabytes of btree first. Events imported
-- out of time order only widen some block ranges. `autosummarize` summarises each finished range soon
-- after it fills; the unsummarised tail is always scanned, which is what a recent range wants anyway.
CREATE INDEX audit_events_ts ON audit_events (ts, seq);
CREATE INDEX audit_events_ts_brin ON audit_events USING brin (ts) WITH (autosummarize = on);
-- Filters on the common fields within a time range.
CREATE INDEX audit_events_actor ON audit_events (actor_id, ts);
CREATE INDEX audit_events_action ON audit_events (action, ts);

-- Full text over the message and the attributes: one tsvector per event (built by the store: words are
-- runs of letters and digits, lower-cased), in a table of its own that `index_pending` fills after commit
-- in large batches with binary COPY, as SQLite's FTS5 table is filled, so that the GIN index never holds
-- up a commit. A generated tsvector column would do that work inside every append (measured with
-- INSERT ... SELECT: 87k rows/s without it, 27k rows/s with it), and filling a column of `audit_events`
-- later would rewrite every row (an UPDATE writes a new row version into every index).
-- Rows here are only inserted, and deleted with their events by retention. `seq` is the primary key so
-- that a search can check the vectors of given events (the newest ones, or those another filter found).
CREATE TABLE audit_fts (
    seq BIGINT PRIMARY KEY,
    doc TSVECTOR NOT NULL
);
-- `fastupdate` (the default, stated because it matters): new entries go to the GIN pending list and are
-- merged into the tree in bulk once the list outgrows `gin_pending_list_limit`, or by autovacuum. Without
-- it each row updates the tree once per word it holds: inserting 200,000 vectors took 11.4 s instead of
-- 2.0 s. Every search also reads the whole pending list, up to 20 ms at the default 4 MB; 1 MB inserted
-- as fast (2.0 s against 2.1 s for 300,000 vectors).
CREATE INDEX audit_fts_doc ON audit_fts USING gin (doc) WITH (fastupdate = on, gin_pending_list_limit = 1024);

-- Both tables are (almost) only appended to. Autovacuum visits such a table after inserts of 20% of its
-- size by default: at a hundred million events, the newest twenty million would wait that long to be
-- marked all-visible (which index-only scans need: `count_by` reads the (actor_id, ts) or (action, ts)
-- index alone once they are, 88 ms rather than 142 ms for 500,000 events) and frozen (left to one
-- anti-wraparound pass over everything later), and the GIN pending list would be merged by inserts only.
-- Every 1% keeps each visit short: it reads only the pages written since the last one.
ALTER TABLE audit_events SET (autovacuum_vacuum_insert_scale_factor = 0.01);
ALTER TABLE audit_fts SET (autovacuum_vacuum_insert_scale_factor = 0.01);

-- Checkpoints left by retention: the last deleted event's position and hash.
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL,
    created BIGINT NOT NULL
);

-- Bookkeeping: `fts_seq` is the highest seq the full-text table covers.
CREATE TABLE audit_meta (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO audit_meta (key, value) VALUES ('fts_seq', 0);
