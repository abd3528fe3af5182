//! The embedded store: one SQLite file in WAL mode for the events, and their full-text index (FTS5, filled
//! after commit) in a second file beside it, attached to every connection as `fts`.
//!
//! The index has a file of its own so that indexing takes that file's write lock rather than the events':
//! the writer's commits and the indexer's passes then run side by side instead of taking turns. The index
//! is derived from the events: its file records the highest seq it covers (`fts_seq`) in the same
//! transactions that fill it, and it is emptied and rebuilt from the events when it is missing, belongs to
//! another trail, or claims events the trail does not have.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Executor, QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::event::{Hash, StoredEvent, micros};
use crate::query::{Cursor, Facet, Query};
use crate::store::{AuditStore, COLUMNS, ChainLink, Checkpoint, Page, StoreError, from_row, fts5_query};

mod raw;

/// The smallest half of a `scan_chain` batch read on a thread of its own: below it, one thread reads it all
/// (starting a second costs more than it saves).
const MIN_HALF: usize = 1_000;

/// How many of the newest matches a full-text search counts before it picks a plan (see
/// `choose_text_plan`); at least twice the page.
const PROBE_MATCHES: i64 = 2_000;

/// The longest walk of the time index a full-text search plans: beyond it, sorting the matches is cheaper
/// (a walked event costs well under a microsecond, a sorted match a few).
const MAX_WALK: i64 = 100_000;

/// How many segments a walk takes (each four times longer than the one before) before it sorts the rest.
const WALK_SEGMENTS: usize = 3;

/// How a full-text search finds its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextPlan {
    /// Every match is fetched and sorted: best when there are few.
    Sort,
    /// The time index is walked newest first and each event checked against the matches: best when they
    /// are dense. The walk goes in segments of events, the first this long; each segment's events are
    /// checked against the matches among their own sequence numbers, a short list.
    Walk {
        /// Events in the first segment: four times as many as the density of the matches suggests a page
        /// needs.
        events: i64,
    },
}

/// An audit store in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Events indexed since the indexer last checkpointed the WALs (see `index_pending`).
    since_checkpoint: Arc<AtomicUsize>,
}

/// How much of each database file connections read through a memory map (`PRAGMA mmap_size`; SQLite caps
/// it at about 2 GB). Reads then take pages straight from the operating system's page cache instead of
/// copying each into SQLite's: `verify` of 1M events measured 516k to 569k/s without it and 692k to 763k/s
/// with it, alternating on one host (docs/benchmarks.md, Audit); ingest and queries were unchanged or
/// faster. Writes still go through `write()` and `fsync` (SQLite maps read-only), so durability is as
/// before. The cost SQLite documents: a disk error while reading a mapped page stops the process with
/// SIGBUS instead of returning an I/O error.
const MMAP_SIZE: &str = "1073741824";

/// How many events the indexer indexes between two checkpoints of the WALs: about 10,000 WAL pages (40 MB)
/// of commits, so that index pages that many commits touch are copied back once.
const CHECKPOINT_EVERY: usize = 40_000;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies the migrations. The full-text index
    /// lives beside it, in [`fts_path`]`(path)`, created (and filled in the background by the writer) when
    /// missing.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
        Self::with_options(options).await
    }

    /// Opens a `sqlite://` URL (`sqlite://relative/path.db`, `sqlite:///absolute/path.db`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?.create_if_missing(true);
        Self::with_options(options).await
    }

    async fn with_options(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let fts = Arc::new(fts_attach_name(options.get_filename())?);
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before the writer acknowledges it, even across a power cut.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false)
            // Ingest settings, measured with `cargo bench -p sightline-audit --bench audit` (1M events: 35 to
            // 37k events/s without them, 47 to 50k with them; durability is unchanged):
            // - statement journals (which SQLite writes for multi-row statements that could abort halfway; the
            //   writer's INSERTs, one row each since `raw::append`, need none) and sort/group temporaries live
            //   in memory rather than temp files;
            .pragma("temp_store", "memory")
            // - a 64 MiB page cache per connection (the default is 2 MiB), so that a 4,096-event commit and
            //   a full-text pass keep their dirty pages in memory instead of spilling them to the WAL early;
            .pragma("cache_size", "-65536")
            // - the events' WAL is checkpointed by the indexer, beside the commits, every `CHECKPOINT_EVERY`
            //   events (see `index_pending`), so a commit no longer stops to copy pages back and fsync the
            //   database. Connections checkpoint on their own only past 40,000 WAL pages (160 MB), should the
            //   indexer not run. (The setting is the connection's: it holds for the index's file too, which
            //   only the indexer writes.)
            .pragma("wal_autocheckpoint", "40000")
            // - reads through a memory map of the first `MMAP_SIZE` bytes of the file rather than `read()`
            //   into SQLite's page cache: no copy per page (see `MMAP_SIZE`). Files attached later, the index's,
            //   take the connection's setting.
            .pragma("mmap_size", MMAP_SIZE);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .after_connect(move |conn, _| {
                let fts = fts.clone();
                Box::pin(async move { attach_fts(conn, &fts).await })
            })
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        prepare_fts(&pool).await?;
        Ok(Self { pool, since_checkpoint: Arc::new(AtomicUsize::new(0)) })
    }

    /// The connection pool, for tests that tamper with rows.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// How `search` finds a page of `fetch` events (the page and one more) for `query` after `cursor`,
    /// for diagnostics and tests. Searches without text, or with field filters, keep SQLite's own plan
    /// ([`TextPlan::Sort`]); for the others see `choose_text_plan`.
    pub async fn text_plan(
        &self,
        query: &Query,
        cursor: Option<Cursor>,
        fetch: i64,
    ) -> Result<TextPlan, StoreError> {
        if query.terms.is_empty() || has_field_filters(query) {
            return Ok(TextPlan::Sort);
        }
        let top = match cursor {
            Some(cursor) => cursor.seq,
            None => sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM audit_events")
                .fetch_one(&self.pool)
                .await?
                .unwrap_or(0),
        };
        let probe = PROBE_MATCHES.max(fetch.saturating_mul(2));
        let probed: Option<i64> = sqlx::query_scalar(
            "SELECT rowid FROM fts.audit_fts WHERE audit_fts MATCH ? AND rowid <= ? \
             ORDER BY rowid DESC LIMIT 1 OFFSET ?",
        )
        .bind(fts5_query(&query.terms))
        .bind(top)
        .bind(probe - 1)
        .fetch_optional(&self.pool)
        .await?;
        Ok(choose_text_plan(top, probed, probe, fetch))
    }

    /// A page of `fetch` events matching `query` (text and time only) after `cursor`, walking the time
    /// index newest first in segments. A segment's bounds come from the index alone (its events' lowest
    /// and highest seq, and its last event); its events are then checked against the matches between
    /// those seqs. An event that is not among them (one committed in between) is checked on its own. A
    /// page not full after `WALK_SEGMENTS` segments is finished by sorting the rest.
    async fn walk(
        &self,
        query: &Query,
        cursor: Option<Cursor>,
        fetch: i64,
        first_segment: i64,
    ) -> Result<Vec<SqliteRow>, StoreError> {
        let fts = fts5_query(&query.terms);
        let mut found = Vec::new();
        let mut at = cursor;
        let mut events = first_segment.max(1);
        for _ in 0..WALK_SEGMENTS {
            let want = fetch - i64::try_from(found.len()).unwrap_or(i64::MAX);
            let mut builder: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "SELECT MIN(seq), MAX(seq), COUNT(*) FROM (SELECT seq FROM audit_events \
                 INDEXED BY audit_events_ts WHERE 1 = 1",
            );
            push_time(&mut builder, query);
            push_cursor(&mut builder, at);
            builder.push(" ORDER BY ts DESC, seq DESC LIMIT ").push_bind(events).push(")");
            let (lo, hi, count): (Option<i64>, Option<i64>, i64) =
                builder.build_query_as().fetch_one(&self.pool).await?;
            let (Some(lo), Some(hi)) = (lo, hi) else { return Ok(found) };
            // The segment's last event, unless it reaches the end of the range.
            let last: Option<(i64, i64)> = if count == events {
                let mut builder: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                    "SELECT ts, seq FROM audit_events INDEXED BY audit_events_ts WHERE 1 = 1",
                );
                push_time(&mut builder, query);
                push_cursor(&mut builder, at);
                builder.push(" ORDER BY ts DESC, seq DESC LIMIT 1 OFFSET ").push_bind(events - 1);
                builder.build_query_as().fetch_optional(&self.pool).await?
            } else {
                None
            };
            let mut builder: QueryBuilder<'_, Sqlite> = QueryBuilder::new(format!(
                "SELECT {COLUMNS} FROM audit_events INDEXED BY audit_events_ts WHERE 1 = 1"
            ));
            push_time(&mut builder, query);
            push_cursor(&mut builder, at);
            if let Some((ts, seq)) = last {
                builder
                    .push(" AND ts >= ")
                    .push_bind(ts)
                    .push(" AND (ts > ")
                    .push_bind(ts)
                    .push(" OR seq >= ")
                    .push_bind(seq)
                    .push(")");
            }
            builder
                .push(" AND CASE WHEN seq BETWEEN ")
                .push_bind(lo)
                .push(" AND ")
                .push_bind(hi)
                .push(" THEN seq IN (SELECT rowid FROM fts.audit_fts WHERE audit_fts MATCH ")
                .push_bind(fts.clone())
                .push(" AND rowid BETWEEN ")
                .push_bind(lo)
                .push(" AND ")
                .push_bind(hi)
                .push(") ELSE EXISTS (SELECT 1 FROM fts.audit_fts WHERE audit_fts MATCH ")
                .push_bind(fts.clone())
                .push(" AND rowid = seq) END ORDER BY ts DESC, seq DESC LIMIT ")
                .push_bind(want);
            found.extend(builder.build().fetch_all(&self.pool).await?);
            let Some((ts, seq)) = last else { return Ok(found) };
            if i64::try_from(found.len()).unwrap_or(i64::MAX) >= fetch {
                return Ok(found);
            }
            at = Some(Cursor { ts_micros: ts, seq });
            events = events.saturating_mul(4);
        }
        let want = fetch - i64::try_from(found.len()).unwrap_or(i64::MAX);
        found.extend(self.sorted(query, at, want).await?);
        Ok(found)
    }

    /// Up to `fetch` events matching `query` after `cursor`, newest first, in SQLite's own plan: with text,
    /// every match is fetched and sorted.
    async fn sorted(
        &self,
        query: &Query,
        cursor: Option<Cursor>,
        fetch: i64,
    ) -> Result<Vec<SqliteRow>, StoreError> {
        let mut builder: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_events"));
        push_filters(&mut builder, query);
        push_cursor(&mut builder, cursor);
        builder.push(" ORDER BY ts DESC, seq DESC LIMIT ").push_bind(fetch);
        Ok(builder.build().fetch_all(&self.pool).await?)
    }
}

/// The full-text index's file for the events' file at `path`: `audit.db` gives `audit-fts.db`, `trail`
/// gives `trail-fts`. Deleting it (with its `-wal` and `-shm`) while the store is closed is safe: the store
/// rebuilds it from the events.
pub fn fts_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_os_string()).unwrap_or_default();
    let mut name = stem;
    name.push("-fts");
    if let Some(extension) = path.extension() {
        name.push(".");
        name.push(extension);
    }
    path.with_file_name(name)
}

/// What `ATTACH` takes for the index of the database sqlx opens as `filename`. An in-memory store (which sqlx
/// names `file:sqlx-in-memory-N` and shares between the pool's connections) gets a shared in-memory index.
fn fts_attach_name(filename: &Path) -> Result<String, StoreError> {
    let name = filename.to_str().ok_or_else(|| {
        StoreError::Database(sqlx::Error::Configuration(
            format!("the audit database path {} is not UTF-8; choose another", filename.display()).into(),
        ))
    })?;
    if name == ":memory:" || name.starts_with("file:") {
        let base = name.split('?').next().unwrap_or(name);
        return Ok(format!("{base}-fts?mode=memory&cache=shared"));
    }
    fts_path(filename)
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Database(sqlx::Error::Configuration("fts path is not UTF-8".into())))
}

/// Attaches the index's file as `fts` to a new connection, in WAL mode like the events' file. Its commits
/// are `synchronous = NORMAL`: in WAL mode that never corrupts it, and a power cut can only lose its last
/// passes, whose `fts_seq` is lost with them, so the indexer redoes them. (The events themselves stay
/// `FULL`: an acknowledged event is on disk.)
async fn attach_fts(conn: &mut SqliteConnection, fts: &str) -> Result<(), sqlx::Error> {
    sqlx::query("ATTACH DATABASE ? AS fts").bind(fts).execute(&mut *conn).await?;
    conn.execute(
        "PRAGMA fts.journal_mode = WAL; PRAGMA fts.synchronous = NORMAL; PRAGMA fts.cache_size = -65536;",
    )
    .await?;
    Ok(())
}

/// Creates the index in its file if it is not there, and empties it (to be rebuilt from the events by the
/// indexer) when it does not belong to this trail: another trail's index (the events' file was replaced),
/// or one that covers events beyond the trail's head (the events' file was restored from an older copy).
async fn prepare_fts(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    (&mut *tx)
        .execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS fts.audit_fts USING fts5 (\
                 message, attributes, content = '', contentless_delete = 1, tokenize = 'unicode61'); \
             CREATE TABLE IF NOT EXISTS fts.audit_fts_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .await?;
    let trail: i64 = sqlx::query_scalar("SELECT value FROM main.audit_meta WHERE key = 'store_id'")
        .fetch_one(&mut *tx)
        .await?;
    let index: Option<i64> =
        sqlx::query_scalar("SELECT value FROM fts.audit_fts_meta WHERE key = 'store_id'")
            .fetch_optional(&mut *tx)
            .await?;
    let covered: Option<i64> =
        sqlx::query_scalar("SELECT value FROM fts.audit_fts_meta WHERE key = 'fts_seq'")
            .fetch_optional(&mut *tx)
            .await?;
    let head: i64 = sqlx::query_scalar(
        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM main.audit_events), 0), \
                    COALESCE((SELECT MAX(seq) FROM main.audit_checkpoints), 0))",
    )
    .fetch_one(&mut *tx)
    .await?;
    let belongs = index == Some(trail) && covered.is_some_and(|seq| seq <= head);
    if !belongs {
        if index.is_some() || covered.is_some() {
            tracing::warn!(
                target: "sightline_audit",
                "the audit full-text index belongs to another trail or is ahead of it; rebuilding it"
            );
        }
        sqlx::query("INSERT INTO fts.audit_fts (audit_fts) VALUES ('delete-all')").execute(&mut *tx).await?;
        sqlx::query(
            "INSERT OR REPLACE INTO fts.audit_fts_meta (key, value) VALUES ('store_id', ?), ('fts_seq', 0)",
        )
        .bind(trail)
        .execute(&mut *tx)
        .await?;
    }
    // FTS5 merges a level's segments once it holds 8 of them rather than 4: fewer, larger merges while
    // indexing. Measured (docs/benchmarks.md, Audit, "Issue 6"): about 15% less indexing CPU, with
    // searches still well inside their target. (Kept in the index's file; set again at every open.)
    sqlx::query("INSERT INTO fts.audit_fts (audit_fts, rank) VALUES ('automerge', 8)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

fn push_filters<'a>(builder: &mut QueryBuilder<'a, Sqlite>, query: &'a Query) {
    builder.push(" WHERE 1 = 1");
    let text = |builder: &mut QueryBuilder<'a, Sqlite>, column: &str, value: &'a Option<String>| {
        if let Some(value) = value {
            builder.push(format!(" AND {column} = ")).push_bind(value.as_str());
        }
    };
    text(builder, "actor_id", &query.actor);
    text(builder, "actor_type", &query.actor_type);
    text(builder, "target_type", &query.target_type);
    text(builder, "target_id", &query.target_id);
    text(builder, "component", &query.component);
    text(builder, "request_id", &query.request_id);
    text(builder, "trace_id", &query.trace_id);
    if let Some(action) = &query.action {
        match action {
            crate::query::ActionPattern::Exact(exact) => {
                builder.push(" AND action = ").push_bind(exact.as_str());
            }
            pattern => {
                builder.push(" AND action LIKE ").push_bind(pattern.sql_like()).push(" ESCAPE '\\'");
            }
        }
    }
    if let Some(outcome) = query.outcome {
        builder.push(" AND outcome = ").push_bind(outcome.as_str());
    }
    if let Some(severity) = query.severity {
        builder.push(" AND severity = ").push_bind(severity.as_str());
    }
    if let Some(min) = query.min_severity {
        let allowed: Vec<&str> =
            crate::event::Severity::ALL.iter().filter(|s| **s >= min).map(|s| s.as_str()).collect();
        builder.push(" AND severity IN (");
        let mut separated = builder.separated(", ");
        for severity in allowed {
            separated.push_bind(severity);
        }
        builder.push(")");
    }
    push_time(builder, query);
    if !query.terms.is_empty() {
        builder
            .push(" AND seq IN (SELECT rowid FROM fts.audit_fts WHERE audit_fts MATCH ")
            .push_bind(fts5_query(&query.terms))
            .push(")");
    }
}

/// The time range.
fn push_time(builder: &mut QueryBuilder<'_, Sqlite>, query: &Query) {
    if let Some(since) = query.since {
        builder.push(" AND ts >= ").push_bind(micros(since));
    }
    if let Some(until) = query.until {
        builder.push(" AND ts < ").push_bind(micros(until));
    }
}

/// Events after `cursor` in newest-first order. `ts <=` on its own gives SQLite a range of the time index.
fn push_cursor(builder: &mut QueryBuilder<'_, Sqlite>, cursor: Option<Cursor>) {
    if let Some(cursor) = cursor {
        builder
            .push(" AND ts <= ")
            .push_bind(cursor.ts_micros)
            .push(" AND (ts < ")
            .push_bind(cursor.ts_micros)
            .push(" OR seq < ")
            .push_bind(cursor.seq)
            .push(")");
    }
}

/// Whether `query` filters on anything but full text and time. Such a search keeps SQLite's own plan:
/// whether to walk the time index is decided from the density of the text matches alone, and a filter
/// would make a walk longer by a factor nobody has counted.
fn has_field_filters(query: &Query) -> bool {
    // Destructured, so that a new field cannot be forgotten here.
    let Query {
        terms: _,
        actor,
        actor_type,
        action,
        target_type,
        target_id,
        outcome,
        severity,
        min_severity,
        component,
        request_id,
        trace_id,
        since: _,
        until: _,
    } = query;
    actor.is_some()
        || actor_type.is_some()
        || action.is_some()
        || target_type.is_some()
        || target_id.is_some()
        || outcome.is_some()
        || severity.is_some()
        || min_severity.is_some()
        || component.is_some()
        || request_id.is_some()
        || trace_id.is_some()
}

/// Picks a plan for a full-text search, as measured on 1M events (`docs/benchmarks.md`, Audit). Sorting
/// costs in proportion to the matches (0.2 ms for a unique word, 1.1 s for a word in 87% of events);
/// walking the time index newest first costs in proportion to the events walked before a page is full,
/// so it suits dense words and not rare ones. `probed` is the `probe`th newest match at or below seq
/// `top`, if there are that many (0.1 ms to find): when there are not, the matches are few and sorting
/// them is cheap; otherwise the distance between the two says how far a walk would go for `fetch`
/// matches.
pub(crate) fn choose_text_plan(top: i64, probed: Option<i64>, probe: i64, fetch: i64) -> TextPlan {
    let Some(lo) = probed else { return TextPlan::Sort };
    let span = top.saturating_sub(lo).saturating_add(1).max(1);
    let walk = fetch.saturating_mul(span) / probe.max(1);
    if walk > MAX_WALK {
        TextPlan::Sort
    } else {
        TextPlan::Walk { events: walk.saturating_mul(4).max(fetch) }
    }
}

impl AuditStore for SqliteStore {
    async fn head(&self) -> Result<Option<(i64, Hash)>, StoreError> {
        let last = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = last {
            let seq: i64 = row.try_get("seq")?;
            let hash: Vec<u8> = row.try_get("hash")?;
            let hash = Hash::from_slice(&hash)
                .ok_or_else(|| StoreError::Corrupt { seq, reason: "hash is not 32 bytes".into() })?;
            return Ok(Some((seq, hash)));
        }
        Ok(self.checkpoint().await?.map(|c| (c.seq, c.hash)))
    }

    async fn append(&self, batch: &[StoredEvent]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Through SQLite's C API, binding each field where it is (see `raw`).
        raw::append(self.pool.acquire().await?, batch).await
    }

    async fn index_pending(&self, limit: usize) -> Result<usize, StoreError> {
        // A deferred transaction whose first statement writes to the index's file: it takes that file's write
        // lock (waiting as `busy_timeout` allows) before anything is read, so no lock upgrade can fail with
        // SQLITE_BUSY, and it takes no lock on the events' file, whose commits go on meanwhile. (`BEGIN
        // IMMEDIATE` would lock every attached file, the events' too.)
        let mut tx = self.pool.begin().await?;
        let from: i64 = sqlx::query_scalar(
            "UPDATE fts.audit_fts_meta SET value = value WHERE key = 'fts_seq' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        let to: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(seq) FROM (SELECT seq FROM main.audit_events WHERE seq > ? ORDER BY seq LIMIT ?)",
        )
        .bind(from)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_one(&mut *tx)
        .await?;
        let Some(to) = to else { return Ok(0) };
        let done = sqlx::query(
            "INSERT INTO fts.audit_fts (rowid, message, attributes) \
             SELECT seq, message, attributes FROM main.audit_events WHERE seq > ? AND seq <= ?",
        )
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE fts.audit_fts_meta SET value = ? WHERE key = 'fts_seq'")
            .bind(to)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let done = usize::try_from(done).unwrap_or(usize::MAX);
        // Copy committed pages back into both files here, beside the commits (a PASSIVE checkpoint takes no
        // write lock), rather than in whichever commit crosses the WAL's threshold.
        let since = self.since_checkpoint.fetch_add(done, Ordering::Relaxed).saturating_add(done);
        if since >= CHECKPOINT_EVERY {
            self.since_checkpoint.store(0, Ordering::Relaxed);
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&self.pool).await?;
        }
        Ok(done)
    }

    async fn search(&self, query: &Query, limit: usize, cursor: Option<Cursor>) -> Result<Page, StoreError> {
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = match self.text_plan(query, cursor, fetch).await? {
            TextPlan::Sort => self.sorted(query, cursor, fetch).await?,
            TextPlan::Walk { events } => self.walk(query, cursor, fetch, events).await?,
        };
        let mut events = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| Cursor { ts_micros: e.event.timestamp_micros(), seq: e.seq })
        } else {
            None
        };
        Ok(Page { events, next_cursor })
    }

    async fn count_by(
        &self,
        query: &Query,
        facet: Facet,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let column = facet.column();
        let mut builder: QueryBuilder<'_, Sqlite> = QueryBuilder::new(format!(
            "SELECT COALESCE({column}, '') AS value, COUNT(*) AS n FROM audit_events"
        ));
        push_filters(&mut builder, query);
        builder
            .push(format!(" GROUP BY {column} ORDER BY n DESC, value LIMIT "))
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = builder.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("value")?, u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0))))
            .collect()
    }

    async fn scan(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?"))
                .bind(after)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(from_row).collect()
    }

    async fn scan_chain(&self, after: i64, limit: usize) -> Result<Vec<ChainLink>, StoreError> {
        // Through SQLite's C API, hashing each row where SQLite keeps it (see `raw`), in two halves read on
        // two connections by two threads: the events up to `after + limit / 2` (all of them, as a chain
        // without gaps has exactly that many), then the first of those after it. Together they are always
        // the first events after `after`, in order and none left out; if the chain has gaps there are fewer
        // of them than `limit`, and `verify` reads on from the last.
        let half = limit / 2;
        if half < MIN_HALF {
            return raw::chain_links(self.pool.acquire().await?, after, i64::MAX, limit).await;
        }
        let middle = after.saturating_add(i64::try_from(half).unwrap_or(i64::MAX));
        let (mut first, second) = tokio::try_join!(
            async { raw::chain_links(self.pool.acquire().await?, after, middle, half).await },
            async { raw::chain_links(self.pool.acquire().await?, middle, i64::MAX, limit - half).await },
        )?;
        first.extend(second);
        Ok(first)
    }

    async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let row = sqlx::query("SELECT seq, hash, created FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let seq: i64 = row.try_get("seq")?;
            let hash: Vec<u8> = row.try_get("hash")?;
            Ok(Checkpoint {
                seq,
                hash: Hash::from_slice(&hash).ok_or_else(|| StoreError::Corrupt {
                    seq,
                    reason: "checkpoint hash is not 32 bytes".into(),
                })?,
                created_micros: row.try_get("created")?,
            })
        })
        .transpose()
    }

    async fn delete_through(&self, through: i64, limit: usize) -> Result<u64, StoreError> {
        // Reads, then writes: take the write locks first (`BEGIN IMMEDIATE` takes both files'), so that a
        // commit in between cannot fail the lock upgrade with SQLITE_BUSY (busy_timeout does not cover
        // upgrades in WAL mode).
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let last: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, hash FROM (SELECT seq, hash FROM audit_events WHERE seq <= ? ORDER BY seq LIMIT ?) \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(through)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((last, hash)) = last else { return Ok(0) };
        // The index forgets the rows it holds (by rowid: it keeps no content). Both files commit together,
        // the events' first: a crash in between can only leave index rows for deleted events, which no
        // search returns (searches read the events) and no new event reuses (seqs only grow).
        sqlx::query(
            "DELETE FROM fts.audit_fts WHERE rowid IN (SELECT seq FROM main.audit_events \
             WHERE seq <= ? AND seq <= (SELECT value FROM fts.audit_fts_meta WHERE key = 'fts_seq'))",
        )
        .bind(last)
        .execute(&mut *tx)
        .await?;
        let deleted =
            sqlx::query("DELETE FROM audit_events WHERE seq <= ?").bind(last).execute(&mut *tx).await?;
        sqlx::query("INSERT OR REPLACE INTO audit_checkpoints (seq, hash, created) VALUES (?, ?, ?)")
            .bind(last)
            .bind(hash)
            .bind(micros(std::time::SystemTime::now()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected())
    }

    async fn oldest_seq(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MIN(seq) FROM audit_events").fetch_one(&self.pool).await?)
    }

    async fn first_seq_since(&self, ts_micros: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MIN(seq) FROM audit_events WHERE ts >= ?")
            .bind(ts_micros)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events").fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_WALK, PROBE_MATCHES, SqliteStore, TextPlan, choose_text_plan};

    /// The chooser's arithmetic (the suite checks that each plan gives the same pages).
    #[test]
    fn text_plans_follow_the_density_of_matches() {
        let probe = PROBE_MATCHES;
        assert_eq!(choose_text_plan(1_000_000, None, probe, 101), TextPlan::Sort, "few matches");
        // The 2,000th newest match 2,300 events back (87% of events): a walk of about 116 events.
        assert_eq!(choose_text_plan(1_000_000, Some(997_701), probe, 101), TextPlan::Walk { events: 464 });
        // 1 in 500 (0.2%): about 50,000 events, still cheaper than sorting.
        assert_eq!(choose_text_plan(1_000_000, Some(1), probe, 101), TextPlan::Walk { events: 202_000 });
        // Sparser still: the walk would pass its limit (3M events for 2,000 matches: about 150,000).
        assert!(101 * 3_000_000 / probe > MAX_WALK);
        assert_eq!(choose_text_plan(3_000_000, Some(1), probe, 101), TextPlan::Sort);
        // A segment is never shorter than the page.
        assert_eq!(choose_text_plan(5_000, Some(4_000), probe, 101), TextPlan::Walk { events: 200 });
    }

    /// The durability and ingest settings reach the pool's connections.
    #[tokio::test]
    async fn connections_have_the_durability_and_ingest_settings() {
        let dir = sightline_testkit::TempDir::new("audit-sqlite-pragmas");
        let store = SqliteStore::open(&dir.path().join("audit.db")).await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await.unwrap();
        assert_eq!(journal, "wal");
        for (pragma, expected) in [
            // FULL: an acknowledged commit survives a power cut.
            ("synchronous", 2),
            // MEMORY.
            ("temp_store", 2),
            ("cache_size", -65536),
            ("wal_autocheckpoint", 40000),
            ("mmap_size", 1 << 30),
        ] {
            let value: i64 =
                sqlx::query_scalar(&format!("PRAGMA {pragma}")).fetch_one(&mut *conn).await.unwrap();
            assert_eq!(value, expected, "PRAGMA {pragma}");
        }
        // The index's file: WAL too; NORMAL, since it is rebuilt from the events (see `attach_fts`).
        let journal: String =
            sqlx::query_scalar("PRAGMA fts.journal_mode").fetch_one(&mut *conn).await.unwrap();
        assert_eq!(journal, "wal");
        for (pragma, expected) in [("synchronous", 1), ("cache_size", -65536), ("mmap_size", 1 << 30)] {
            let value: i64 =
                sqlx::query_scalar(&format!("PRAGMA fts.{pragma}")).fetch_one(&mut *conn).await.unwrap();
            assert_eq!(value, expected, "PRAGMA fts.{pragma}");
        }
        let automerge: i64 = sqlx::query_scalar("SELECT v FROM fts.audit_fts_config WHERE k = 'automerge'")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(automerge, 8);
        // Every connection of the pool has it attached, and the events stay FULL.
        let mut others = Vec::new();
        for _ in 0..3 {
            let mut other = store.pool().acquire().await.unwrap();
            let synchronous: i64 =
                sqlx::query_scalar("PRAGMA main.synchronous").fetch_one(&mut *other).await.unwrap();
            assert_eq!(synchronous, 2);
            let fts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fts.audit_fts_meta")
                .fetch_one(&mut *other)
                .await
                .unwrap();
            assert_eq!(fts, 2);
            others.push(other);
        }
    }
}
