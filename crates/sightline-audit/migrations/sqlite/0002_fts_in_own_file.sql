-- The full-text index moves to a database file of its own (`<name>-fts.db` beside this one, attached to
-- every connection as `fts`; see `SqliteStore::open`), so that indexing takes that file's write lock and
-- not this one's, and runs beside the commits. The index is derived from the events: the store rebuilds it
-- there from `audit_events`, in the background, after this migration.
DROP TABLE main.audit_fts;
DELETE FROM audit_meta WHERE key = 'fts_seq';

-- Ties the index file to this trail: an index file left from another trail (or this one restored from an
-- older backup) is emptied and rebuilt rather than trusted.
INSERT INTO audit_meta (key, value) VALUES ('store_id', random());
