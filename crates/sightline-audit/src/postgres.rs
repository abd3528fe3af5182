//! PostgreSQL: events appended with binary `COPY`; full text in a side table of `tsvector`s with a GIN
//! index, which `index_pending` fills after commit with vectors built here. Searches also check the events
//! the index has not reached yet, one by one (see `PgStore::unindexed`), so an acknowledged event is found
//! at once however far indexing lags.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::event::{Hash, StoredEvent, micros};
use crate::query::{ActionPattern, Cursor, Facet, Query};
use crate::store::{
    AuditStore, COLUMN_COUNT, COLUMNS, ChainLink, Checkpoint, Page, StoreError, chain_link, from_row,
};

/// [`COLUMNS`] for `SELECT`: `id` is a UUID column, read back as text.
static SELECT_COLUMNS: LazyLock<String> = LazyLock::new(|| COLUMNS.replacen(", id,", ", id::text AS id,", 1));

/// `scan` and `scan_chain`: the events after `$1`, up to `$2` of them.
static CHAIN_AFTER: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2", *SELECT_COLUMNS)
});

/// `scan_chain` reads a batch as two halves in parallel when each half holds at least this many events.
const CHAIN_SPLIT_MIN: usize = 1_000;

/// Most events one `index_pending` call reads and indexes (a few megabytes of text).
const INDEX_CHUNK: usize = 20_000;

/// How many of the newest events (that pass the field filters) a full-text search checks one by one first,
/// and at most. See `search`.
const RECENT_SCAN: i64 = 10_000;
const MAX_SCAN: i64 = 200_000;

/// Events past the full-text index's mark that a search reads at a time (see `search_unindexed`).
const UNINDEXED_CHUNK: i64 = 5_000;

/// PostgreSQL's limits on a `tsvector`: a lexeme of at most 2047 bytes (longer words are not indexed),
/// positions up to 16383 and at most 256 positions per lexeme.
const MAX_LEXEME_BYTES: usize = 2047;
const MAX_POSITION: u32 = 16_383;
const MAX_POSITIONS: usize = 256;

/// Events inserted since `audit_events` was last vacuumed after which the store vacuums it itself, once
/// full-text indexing has caught up (see `maybe_vacuum`), by default.
const VACUUM_AFTER: i64 = 100_000;

/// How often `maybe_vacuum` reads the statistics at most, and for how long it keeps reading them when they
/// show fewer inserts than the threshold, before it takes their word.
const VACUUM_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);
const VACUUM_STATS_LAG: std::time::Duration = std::time::Duration::from_secs(15);

/// What `maybe_vacuum` carries from one call to the next.
#[derive(Debug, Default)]
struct VacuumState {
    /// Events this store indexed since it last started a `VACUUM` (or took the statistics' word): an idle
    /// store, or one whose events another process writes, reads no statistics.
    indexed: u64,
    /// When the statistics were last read.
    last_check: Option<std::time::Instant>,
    /// Since when they have shown fewer inserts than the threshold, although this store indexed more.
    low_since: Option<std::time::Instant>,
}

/// An audit store in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Set while a `VACUUM` started by `maybe_vacuum` runs.
    vacuuming: Arc<AtomicBool>,
    /// What `maybe_vacuum` knows between calls.
    vacuum_state: Arc<std::sync::Mutex<VacuumState>>,
    /// See [`PgStore::with_vacuum_after`]; `None`: never.
    vacuum_after: Option<i64>,
}

// === impl PgStore ===

impl PgStore {
    /// Connects to a `postgres://` URL and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(PgConnectOptions::from_str(url)?).await
    }

    /// Connects with `options` (for a schema of its own: `.options([("search_path", schema)])`) and
    /// applies the migrations.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        // A connection is waited for at most 10 s (sqlx's default is 30): long enough to ride out a restart,
        // short enough that an unreachable database at start-up is reported promptly.
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self {
            pool,
            vacuuming: Arc::new(AtomicBool::new(false)),
            vacuum_state: Arc::default(),
            vacuum_after: Some(VACUUM_AFTER),
        })
    }

    /// Vacuums `audit_events` itself, in the background, once full-text indexing has caught up and at least
    /// `events` were inserted since the table was last vacuumed (default 100,000), so that `count_by` can
    /// read its indexes alone right after a burst rather than when autovacuum next comes round (up to a
    /// minute later); `None` leaves it to autovacuum alone.
    #[must_use]
    pub fn with_vacuum_after(mut self, events: Option<u64>) -> Self {
        self.vacuum_after = events.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        self
    }

    /// After a burst of events, once indexing has caught up: a `VACUUM (ANALYZE)` of `audit_events` in the
    /// background (on a connection of its own, one at a time), when at least [`VACUUM_AFTER`] events were
    /// inserted since the table was last vacuumed (`with_vacuum_after`).
    ///
    /// Why: `count_by` reads the `(actor_id, ts)` or `(action, ts)` index alone only where the visibility
    /// map marks pages all-visible, which only `VACUUM` does; until then it reads the whole heap (148 ms
    /// against 93 ms for 1M events on the quiet VM). Autovacuum would get there too (the migration asks
    /// it to after 1% of inserts), but only on its next round, up to `autovacuum_naptime` (a minute) after
    /// a bulk load. The VACUUM reads only the pages not yet all-visible and, for an insert-only table,
    /// skips the index scans; it holds a lock that does not block inserts or reads. The full-text table is
    /// left to autovacuum: vacuuming a GIN index reads all of it.
    ///
    /// The statistics are read only once this store has indexed the threshold's worth of events since its
    /// last `VACUUM`, so an idle store asks nothing.
    async fn maybe_vacuum(&self) {
        let Some(threshold) = self.vacuum_after else { return };
        let threshold_events = u64::try_from(threshold).unwrap_or(u64::MAX);
        {
            let mut state = self.vacuum_state.lock().unwrap_or_else(|e| e.into_inner());
            if self.vacuuming.load(Ordering::Relaxed)
                || state.indexed < threshold_events
                || state.last_check.is_some_and(|at| at.elapsed() < VACUUM_RECHECK)
            {
                return;
            }
            state.last_check = Some(std::time::Instant::now());
        }
        let inserted: Result<Option<i64>, sqlx::Error> = sqlx::query_scalar(
            "SELECT n_ins_since_vacuum FROM pg_stat_user_tables WHERE relid = 'audit_events'::regclass",
        )
        .fetch_optional(&self.pool)
        .await
        .map(Option::flatten);
        let inserted = match inserted {
            Ok(n) => n.unwrap_or(0),
            Err(error) => {
                tracing::debug!(target: "sightline_audit", %error, "could not read audit_events' statistics");
                0
            }
        };
        {
            let mut state = self.vacuum_state.lock().unwrap_or_else(|e| e.into_inner());
            if inserted < threshold {
                // The statistics lag commits (by up to a second while the committing backend is busy, ten
                // when it is idle), or autovacuum got there first: ask again, once a second, for a while;
                // then count on from what PostgreSQL reports.
                let since = *state.low_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= VACUUM_STATS_LAG {
                    state.indexed = u64::try_from(inserted).unwrap_or(0);
                    state.low_since = None;
                }
                return;
            }
            *state = VacuumState::default();
        }
        if self.vacuuming.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, vacuuming) = (self.pool.clone(), self.vacuuming.clone());
        tokio::spawn(async move {
            // VACUUM cannot run inside a transaction block: a plain statement on a pooled connection.
            // SKIP_LOCKED: if autovacuum (or another process's store) is at it already, there is nothing to do.
            if let Err(error) =
                sqlx::raw_sql("VACUUM (ANALYZE, SKIP_LOCKED) audit_events").execute(&pool).await
            {
                tracing::warn!(target: "sightline_audit", %error, "VACUUM of audit_events failed; autovacuum will do it");
            }
            vacuuming.store(false, Ordering::Release);
        });
    }

    /// The connection pool, for tests that tamper with rows.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Rows of the events with `seq > after`, in chain order (for `scan`).
    async fn chain_rows(&self, after: i64, limit: usize) -> Result<Vec<PgRow>, StoreError> {
        Ok(sqlx::query(&CHAIN_AFTER)
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?)
    }

    /// [`ChainLink`]s of the rows `statement` returns for `(first, second)`, each hashed as it arrives, while
    /// the server sends the next ones (rather than after the whole batch has been read).
    async fn stream_links(
        &self,
        statement: &str,
        first: i64,
        second: i64,
        capacity: usize,
    ) -> Result<Vec<ChainLink>, StoreError> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query(statement).bind(first).bind(second).fetch(&self.pool);
        let mut links = Vec::with_capacity(capacity.min(16_384));
        while let Some(row) = rows.try_next().await? {
            links.push(chain_link(&row)?);
        }
        Ok(links)
    }

    /// [`ChainLink`]s of the events in the seq range `(after, through]`, read with binary `COPY`: the rows
    /// arrive as one stream of bytes in PostgreSQL's binary format (the id as its 16 bytes, which the
    /// server need not format), parsed and hashed here as they arrive, without a decoded row or a type
    /// check per value (which cost more than the hash itself through sqlx's rows).
    ///
    /// It takes the pool rather than the store so that it can run as a task of its own.
    async fn copy_links(
        pool: PgPool,
        after: i64,
        through: i64,
        capacity: usize,
    ) -> Result<Vec<ChainLink>, StoreError> {
        use futures_util::TryStreamExt;
        // COPY takes no parameters: the bounds are integers, formatted.
        let statement = format!(
            "COPY (SELECT {COLUMNS} FROM audit_events WHERE seq > {after} AND seq <= {through} ORDER BY seq) \
             TO STDOUT (FORMAT binary)"
        );
        let mut conn = pool.acquire().await?;
        let mut stream = conn.copy_out_raw(&statement).await?;
        let mut reader = CopyReader::default();
        let mut links = Vec::with_capacity(capacity.min(16_384));
        let mut failed = None;
        // The stream is read to its end even after a malformed row, so that the connection goes back to
        // the pool in step with the server.
        while let Some(chunk) = stream.try_next().await? {
            if failed.is_none()
                && let Err(error) = reader.feed(&chunk, &mut links)
            {
                failed = Some(error);
            }
        }
        match failed {
            Some(error) => Err(error),
            None if !reader.finished => Err(copy_error("the COPY data ended without its trailer")),
            None => Ok(links),
        }
    }

    /// The full-text index's high-water mark (`fts_seq`: every event up to it is indexed), and whether any
    /// event lies past it.
    ///
    /// The indexer runs behind the commits, in batches: under sustained ingest PostgreSQL merges GIN
    /// entries more slowly than `COPY` appends rows. A search therefore reads the index for the events it
    /// covers and checks the rest (the newest, a few seconds' worth) one by one with
    /// [`document_matches`], so an acknowledged event is found at once, and found the same way once
    /// indexed. A search reads the mark first, then the events past it, then the index: every event
    /// committed before it started is in one of the two, and one indexed in between may be in both
    /// (`search` keeps it once; `count_by` bounds its index lookup by the mark instead).
    async fn index_mark(&self) -> Result<(i64, bool), StoreError> {
        let (mark, head): (i64, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT value FROM audit_meta WHERE key = 'fts_seq'), (SELECT MAX(seq) FROM audit_events)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((mark, head.is_some_and(|head| head > mark)))
    }

    /// The events past `mark` that pass `query`'s field filters and `cursor` and may hold its terms:
    /// `columns`, then `message` and `attributes` for [`document_matches`] to decide.
    fn unindexed<'a>(
        query: &'a Query,
        cursor: Option<Cursor>,
        mark: i64,
        columns: &str,
    ) -> QueryBuilder<'a, Postgres> {
        let mut builder: QueryBuilder<'_, Postgres> =
            QueryBuilder::new(format!("SELECT {columns}, message, attributes FROM audit_events"));
        push_fields(&mut builder, query);
        push_cursor(&mut builder, cursor);
        // The mark as a literal rather than a parameter, so that the planner sees how few events lie past
        // it and reads them by the primary key (a generic plan could walk a whole time index instead). The
        // statement is not kept prepared: the mark changes with every indexing pass.
        builder.push(format!(" AND seq > {mark}"));
        push_word_prefilter(&mut builder, &query.terms);
        builder
    }

    /// Up to `fetch` events past `mark` matching `query`, newest first. The events are read newest first in
    /// chunks, so that memory stays bounded however far the index has fallen behind (an indexer that keeps
    /// failing), and reading stops once a page is full.
    async fn search_unindexed(
        &self,
        query: &Query,
        cursor: Option<Cursor>,
        mark: i64,
        fetch: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut found = Vec::new();
        let mut after = cursor;
        loop {
            let mut builder = Self::unindexed(query, after, mark, &SELECT_COLUMNS);
            builder.push(" ORDER BY ts DESC, seq DESC LIMIT ").push_bind(UNINDEXED_CHUNK);
            let rows = builder.build().persistent(false).fetch_all(&self.pool).await?;
            for row in &rows {
                if found.len() < fetch
                    && document_matches(row.try_get("message")?, row.try_get("attributes")?, &query.terms)
                {
                    found.push(from_row(row)?);
                }
            }
            let Some(last) = rows.last() else { break };
            if found.len() >= fetch || rows.len() < usize::try_from(UNINDEXED_CHUNK).unwrap_or(usize::MAX) {
                break;
            }
            after = Some(Cursor { ts_micros: last.try_get("ts")?, seq: last.try_get("seq")? });
        }
        Ok(found)
    }

    /// Up to `fetch` events matching `query` (whose terms are `tsquery`) among those the full-text index
    /// holds, newest first.
    async fn search_indexed(
        &self,
        query: &Query,
        cursor: Option<Cursor>,
        tsquery: &str,
        limit: usize,
        fetch: i64,
    ) -> Result<Vec<PgRow>, StoreError> {
        // Newest first with full text has two good plans: a common word is best found by walking the time
        // index and checking each event's vector until a page is full; a rare word by looking it up in the
        // GIN index and sorting its few events. PostgreSQL's estimates cannot tell which: a word missing
        // from its statistics (unique ids, names, addresses: what an audit search looks for) counts as
        // fairly common, so it walks, measured at 0.5 s for a word in one event of 500,000 and growing with
        // the table. So the store finds out: it checks the newest `RECENT_SCAN` events first (bounded
        // work); a full page is the answer. From the share of them that matched it then estimates both
        // plans' work, walking further when that is cheaper, and otherwise looks the terms up.
        if fetch <= RECENT_SCAN {
            let rows = self.walk(query, cursor, tsquery, RECENT_SCAN, fetch).await?;
            if rows.len() > limit {
                return Ok(rows);
            }
            let hits = i64::try_from(rows.len()).unwrap_or(i64::MAX);
            if hits > 0 {
                // Events to check for a page, and (roughly) events the GIN index would return.
                let walk = fetch.saturating_mul(RECENT_SCAN) / hits;
                let span: i64 =
                    sqlx::query_scalar("SELECT COALESCE(MAX(seq) - MIN(seq) + 1, 0) FROM audit_events")
                        .fetch_one(&self.pool)
                        .await?;
                let lookup = span.saturating_mul(hits) / RECENT_SCAN;
                // A lookup costs several times more per event than a check: it fetches events scattered
                // over the table (measured 4 to 25 µs each, warm to cold) where the walk reads the newest
                // ones in the order they were written (2 µs).
                if walk <= MAX_SCAN && walk < 8 * lookup {
                    let rows = self.walk(query, cursor, tsquery, (2 * walk).min(MAX_SCAN), fetch).await?;
                    if rows.len() > limit {
                        return Ok(rows);
                    }
                }
            }
        }
        self.lookup(query, cursor, tsquery, fetch).await
    }

    /// Up to `fetch` events matching `query` (whose terms are `tsquery`) among the newest `scan` that pass
    /// its field filters, newest first: each one's vector is checked in turn. The subquery in `WHERE`
    /// cannot become a join, so the work is bounded by `scan` whatever the planner estimates.
    async fn walk(
        &self,
        query: &Query,
        cursor: Option<Cursor>,
        tsquery: &str,
        scan: i64,
        fetch: i64,
    ) -> Result<Vec<PgRow>, StoreError> {
        let mut builder: QueryBuilder<'_, Postgres> =
            QueryBuilder::new(format!("SELECT {} FROM (SELECT * FROM audit_events", *SELECT_COLUMNS));
        push_fields(&mut builder, query);
        push_cursor(&mut builder, cursor);
        builder
            .push(" ORDER BY ts DESC, seq DESC LIMIT ")
            .push_bind(scan)
            .push(") AS recent WHERE (SELECT doc FROM audit_fts WHERE audit_fts.seq = recent.seq) @@ ")
            .push_bind(tsquery.to_owned())
            .push("::tsquery ORDER BY ts DESC, seq DESC LIMIT ")
            .push_bind(fetch);
        Ok(builder.build().fetch_all(&self.pool).await?)
    }

    /// Up to `fetch` events matching `query`, newest first, found from the GIN index: every event holding
    /// the terms is fetched by its primary key, filtered and sorted. The array (rather than a join) keeps
    /// the planner to that order, and `ts + 0` (not the index's order) from walking the time index.
    async fn lookup(
        &self,
        query: &Query,
        cursor: Option<Cursor>,
        tsquery: &str,
        fetch: i64,
    ) -> Result<Vec<PgRow>, StoreError> {
        let mut builder: QueryBuilder<'_, Postgres> =
            QueryBuilder::new(format!("SELECT {} FROM audit_events", *SELECT_COLUMNS));
        push_fields(&mut builder, query);
        push_cursor(&mut builder, cursor);
        builder
            .push(" AND seq = ANY(ARRAY(SELECT seq FROM audit_fts WHERE doc @@ ")
            .push_bind(tsquery.to_owned())
            .push("::tsquery)) ORDER BY ts + 0 DESC, seq DESC LIMIT ")
            .push_bind(fetch);
        Ok(builder.build().fetch_all(&self.pool).await?)
    }
}

// === Full text ===
//
// Words are built here rather than by PostgreSQL's `to_tsvector`, for two reasons. Speed: building the
// vectors took 60% of the database's indexing work (200,000 events into the GIN-indexed table: 4.7 s when
// PostgreSQL built the vectors, 1.8 s when they came ready), and indexing, which the writer runs between
// commits, bounds ingest. Sameness: a word is a run of letters and digits, lower-cased, as in SQLite's `unicode61`
// tokenizer, where PostgreSQL's parser keeps `alice@example.com`, `/etc/passwd` or a URL as one token, so
// that `example` or `passwd` would not find them. Documents and search terms go through the same code.

/// The words of `text`: runs of letters and digits (Unicode), lower-cased. Unlike `unicode61`, accents are
/// kept (`café` does not match `cafe`).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// An event's words with their positions, as its `tsvector` holds them: the message's words, then the
/// attributes' (the JSON text's words, keys included) one position further on, so that a phrase cannot run
/// from one into the other. Sorted by word (in byte order, which is PostgreSQL's) and then position; a word
/// longer than PostgreSQL indexes is left out, and positions past its last are clamped to it.
///
/// The words are collected as (word, position) pairs in one vector and sorted, rather than in a map
/// of owned strings: a word that is lower-case ASCII already (nearly all) is borrowed, not copied, and the
/// indexer, which builds a vector for every event, allocates little per event.
fn document_entries<'a>(message: &'a str, attributes: &'a str) -> Vec<(Cow<'a, str>, u16)> {
    let mut entries: Vec<(Cow<'a, str>, u16)> = Vec::with_capacity(64);
    let mut position = 0_u32;
    for (i, text) in [message, attributes].into_iter().enumerate() {
        position += u32::from(i > 0);
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            position += 1;
            let word = if word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
                Cow::Borrowed(word)
            } else {
                Cow::Owned(word.to_lowercase())
            };
            if word.len() > MAX_LEXEME_BYTES {
                continue;
            }
            entries.push((word, u16::try_from(position.min(MAX_POSITION)).unwrap_or(u16::MAX >> 2)));
        }
    }
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
    entries
}

/// The positions a `tsvector` keeps for one word's run of `entries` (sorted): increasing, each once, at
/// most `MAX_POSITIONS` (the first ones; a position clamped to `MAX_POSITION` counts once).
fn kept_positions<'e>(group: &'e [(Cow<'_, str>, u16)]) -> impl Iterator<Item = u16> + 'e {
    let mut last = None;
    group
        .iter()
        .map(|&(_, at)| at)
        .filter(move |&at| {
            let new = last.is_none_or(|last| last < at);
            last = Some(at);
            new
        })
        .take(MAX_POSITIONS)
}

/// Appends an event's `tsvector` in PostgreSQL's binary form: [`document_entries`], a lexeme each with its
/// [`kept_positions`].
fn push_document(out: &mut Vec<u8>, message: &str, attributes: &str) {
    let entries = document_entries(message, attributes);
    let count_at = out.len();
    out.extend_from_slice(&0_i32.to_be_bytes());
    let mut lexemes = 0_i32;
    let mut rest = entries.as_slice();
    while let Some((lexeme, _)) = rest.first() {
        let same = rest.iter().take_while(|(other, _)| other == lexeme).count();
        let (group, next) = rest.split_at(same);
        rest = next;
        lexemes = lexemes.saturating_add(1);
        out.extend_from_slice(lexeme.as_bytes());
        out.push(0);
        let positions_at = out.len();
        out.extend_from_slice(&0_u16.to_be_bytes());
        let mut positions = 0_u16;
        for at in kept_positions(group) {
            out.extend_from_slice(&at.to_be_bytes());
            positions += 1;
        }
        out[positions_at..positions_at + 2].copy_from_slice(&positions.to_be_bytes());
    }
    out[count_at..count_at + 4].copy_from_slice(&lexemes.to_be_bytes());
}

/// Whether the event's `tsvector` (the one [`push_document`] builds) matches the [`tsquery`] of `terms`:
/// each term's words at consecutive positions. This is how a search checks events the indexer has not
/// reached yet, so that they are found exactly as they will be once indexed.
fn document_matches(message: &str, attributes: &str, terms: &[String]) -> bool {
    let entries = document_entries(message, attributes);
    let positions = |lexeme: &str| -> Vec<u16> {
        let start = entries.partition_point(|(word, _)| word.as_bytes() < lexeme.as_bytes());
        let same = entries[start..].iter().take_while(|(word, _)| word == lexeme).count();
        kept_positions(&entries[start..start + same]).collect()
    };
    terms.iter().all(|term| {
        let lexemes: Vec<String> = words(term).collect();
        if lexemes.is_empty() || lexemes.iter().any(|l| l.len() > MAX_LEXEME_BYTES) {
            return false;
        }
        let runs: Vec<Vec<u16>> = lexemes.iter().map(|l| positions(l)).collect();
        runs[0].iter().any(|&first| {
            runs.iter().enumerate().skip(1).all(|(i, run)| {
                u16::try_from(i).ok().and_then(|i| first.checked_add(i)).is_some_and(|at| run.contains(&at))
            })
        })
    })
}

/// Full-text terms as one `tsquery`: each term's words as a phrase (`'disk' <-> 'full'`), all required.
/// `None` when a term has no word that can be indexed, so that nothing can match.
fn tsquery(terms: &[String]) -> Option<String> {
    let phrases = terms.iter().map(|term| {
        let lexemes: Vec<String> = words(term).collect();
        if lexemes.is_empty() || lexemes.iter().any(|l| l.len() > MAX_LEXEME_BYTES) {
            return None;
        }
        // Letters and digits only: nothing to escape inside the quotes.
        let phrase = lexemes.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(" <-> ");
        Some(format!("({phrase})"))
    });
    Some(phrases.collect::<Option<Vec<_>>>()?.join(" & "))
}

// === Queries ===

/// ` WHERE` and the field filters (not the text terms).
fn push_fields<'a>(builder: &mut QueryBuilder<'a, Postgres>, query: &'a Query) {
    builder.push(" WHERE TRUE");
    let text = |builder: &mut QueryBuilder<'a, Postgres>, column: &str, value: &'a Option<String>| {
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
            ActionPattern::Exact(exact) => {
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
        builder.push(" AND severity = ANY(").push_bind(allowed).push(")");
    }
    if let Some(since) = query.since {
        builder.push(" AND ts >= ").push_bind(micros(since));
    }
    if let Some(until) = query.until {
        builder.push(" AND ts < ").push_bind(micros(until));
    }
}

/// For each word of the terms that is ASCII, a cheap condition that every event holding it meets (the text
/// contains it, in any case), so that `unindexed` sends few events to be checked by [`document_matches`].
/// A word holds only letters and digits, so it needs no escaping in a `LIKE` pattern. `i` and `k` match any
/// character: in a Turkish locale `ILIKE` folds `I` to `ı`, not `i`, and the Kelvin sign (`K`) is `k` to
/// the indexer but not to every locale.
fn push_word_prefilter(builder: &mut QueryBuilder<'_, Postgres>, terms: &[String]) {
    for word in terms.iter().flat_map(|term| words(term)) {
        if !word.is_ascii() {
            continue;
        }
        let pattern: String = word.chars().map(|c| if matches!(c, 'i' | 'k') { '_' } else { c }).collect();
        let pattern = format!("%{pattern}%");
        builder
            .push(" AND (message ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR attributes ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
}

fn push_cursor(builder: &mut QueryBuilder<'_, Postgres>, cursor: Option<Cursor>) {
    if let Some(cursor) = cursor {
        builder
            .push(" AND (ts, seq) < (")
            .push_bind(cursor.ts_micros)
            .push(", ")
            .push_bind(cursor.seq)
            .push(")");
    }
}

// === Binary COPY ===

fn copy_error(reason: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!("binary COPY of audit events: {reason}")))
}

/// Reads rows of [`COLUMNS`] in binary `COPY` format as [`ChainLink`]s, from chunks that need not end on a
/// row's edge.
#[derive(Default)]
struct CopyReader {
    /// Bytes of a row not complete yet.
    pending: Vec<u8>,
    header_read: bool,
    finished: bool,
}

impl CopyReader {
    /// The 11-byte signature, the flags and the header extension's length.
    const HEADER: usize = 19;

    fn feed(&mut self, chunk: &[u8], links: &mut Vec<ChainLink>) -> Result<(), StoreError> {
        // Usually a chunk is exactly one row (PostgreSQL sends one CopyData message per row): parse it in
        // place; keep bytes only when a row spans chunks.
        let owned;
        let data: &[u8] = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(chunk);
            owned = std::mem::take(&mut self.pending);
            &owned
        };
        let mut at = 0;
        if !self.header_read {
            if data.len() < Self::HEADER {
                self.pending = data.to_vec();
                return Ok(());
            }
            if &data[..11] != b"PGCOPY\n\xff\r\n\0" {
                return Err(copy_error("not binary COPY data"));
            }
            let extension = be_u32(&data[15..19]) as usize;
            if data.len() < Self::HEADER + extension {
                self.pending = data.to_vec();
                return Ok(());
            }
            at = Self::HEADER + extension;
            self.header_read = true;
        }
        while at < data.len() {
            if self.finished {
                return Err(copy_error("data after the trailer"));
            }
            match parse_row(&data[at..])? {
                Some((used, link)) => {
                    at += used;
                    match link {
                        Some(link) => links.push(link),
                        None => self.finished = true,
                    }
                }
                None => {
                    self.pending = data[at..].to_vec();
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// One row at the start of `data`: `None` when `data` holds only part of it; else the bytes it took and its
/// link, or `None` for the trailer.
fn parse_row(data: &[u8]) -> Result<Option<(usize, Option<ChainLink>)>, StoreError> {
    use crate::event::StoredFields;
    let Some(count) = data.get(..2) else { return Ok(None) };
    let count = i16::from_be_bytes([count[0], count[1]]);
    if count == -1 {
        return Ok(Some((2, None)));
    }
    if usize::try_from(count).ok() != Some(COLUMN_COUNT) {
        return Err(copy_error(&format!("a row of {count} fields")));
    }
    let mut fields: [Option<&[u8]>; COLUMN_COUNT] = [None; COLUMN_COUNT];
    let mut at = 2;
    for field in &mut fields {
        let Some(len) = data.get(at..at + 4) else { return Ok(None) };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        at += 4;
        if len >= 0 {
            let end = at + len as usize;
            let Some(bytes) = data.get(at..end) else { return Ok(None) };
            *field = Some(bytes);
            at = end;
        }
    }
    let int = |i: usize| -> Option<i64> {
        let bytes: [u8; 8] = fields[i]?.try_into().ok()?;
        Some(i64::from_be_bytes(bytes))
    };
    let seq = int(0).ok_or_else(|| copy_error("a row without a seq"))?;
    // As `chain_link` does with a decoded row: a value that cannot be read as its column's type (or a
    // hash of the wrong length) leaves the link without a computed hash, for `verify` to read the event.
    let hash = |i: usize| fields[i].and_then(Hash::from_slice);
    let (hash, prev_hash) = (hash(17), hash(18));
    let optional = |i: usize| -> Result<Option<&str>, ()> {
        fields[i].map(|bytes| std::str::from_utf8(bytes).map_err(|_| ())).transpose()
    };
    let text = |i: usize| -> Result<&str, ()> { optional(i)?.ok_or(()) };
    let mut id = [0_u8; uuid::fmt::Hyphenated::LENGTH];
    let computed = (|| -> Result<Option<Hash>, ()> {
        let (Some(_), Some(prev_hash)) = (hash, prev_hash) else { return Ok(None) };
        let uuid = uuid::Uuid::from_slice(fields[1].ok_or(())?).map_err(|_| ())?;
        let fields = StoredFields {
            id: uuid.hyphenated().encode_lower(&mut id),
            ts: int(2).ok_or(())?,
            actor_id: text(3)?,
            actor_type: text(4)?,
            actor_ip: optional(5)?,
            actor_user_agent: optional(6)?,
            action: text(7)?,
            target_type: optional(8)?,
            target_id: optional(9)?,
            outcome: text(10)?,
            severity: text(11)?,
            component: optional(12)?,
            request_id: optional(13)?,
            trace_id: optional(14)?,
            message: text(15)?,
            attributes: text(16)?,
        };
        Ok(Some(fields.chain_hash(&prev_hash)))
    })()
    .unwrap_or(None);
    let link =
        ChainLink { seq, hash: hash.unwrap_or_default(), prev_hash: prev_hash.unwrap_or_default(), computed };
    Ok(Some((at, Some(link))))
}

/// Rows in PostgreSQL's binary `COPY` format.
struct CopyRows {
    buffer: Vec<u8>,
}

impl CopyRows {
    fn new(capacity: usize) -> Self {
        let mut buffer = Vec::with_capacity(capacity + 32);
        // The signature, the flags and the header extension's length.
        buffer.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buffer.extend_from_slice(&0_i32.to_be_bytes());
        buffer.extend_from_slice(&0_i32.to_be_bytes());
        Self { buffer }
    }

    /// Starts a row of `fields` fields.
    fn row(&mut self, fields: i16) {
        self.buffer.extend_from_slice(&fields.to_be_bytes());
    }

    /// One field: its length and bytes, or -1 for NULL.
    fn field(&mut self, seq: i64, value: Option<&[u8]>) -> Result<(), StoreError> {
        match value {
            None => self.buffer.extend_from_slice(&(-1_i32).to_be_bytes()),
            Some(bytes) => {
                let len = i32::try_from(bytes.len()).map_err(|_| {
                    StoreError::Database(sqlx::Error::Encode(
                        format!("event {seq} has a field longer than 2 GiB").into(),
                    ))
                })?;
                self.buffer.extend_from_slice(&len.to_be_bytes());
                self.buffer.extend_from_slice(bytes);
            }
        }
        Ok(())
    }

    /// Sends the rows to `COPY ... FROM STDIN (FORMAT binary)` on `conn`.
    async fn send(mut self, conn: &mut sqlx::PgConnection, statement: &str) -> Result<(), StoreError> {
        self.buffer.extend_from_slice(&(-1_i16).to_be_bytes());
        let mut copy = conn.copy_in_raw(statement).await?;
        copy.send(self.buffer).await?;
        copy.finish().await?;
        Ok(())
    }
}

/// Appends `stored` as one row of [`COLUMNS`].
fn copy_event(rows: &mut CopyRows, stored: &StoredEvent) -> Result<(), StoreError> {
    fn text(value: &str) -> Option<&[u8]> {
        Some(value.as_bytes())
    }
    fn optional(value: Option<&str>) -> Option<&[u8]> {
        value.map(str::as_bytes)
    }
    let e = &stored.event;
    let seq = stored.seq;
    let attributes = serde_json::to_string(&e.attributes).unwrap_or_else(|_| "{}".into());
    let seq_bytes = seq.to_be_bytes();
    let ts_bytes = e.timestamp_micros().to_be_bytes();
    let fields: [Option<&[u8]>; COLUMN_COUNT] = [
        Some(&seq_bytes),
        Some(e.id.as_bytes()),
        Some(&ts_bytes),
        text(&e.actor.id),
        text(&e.actor.kind),
        optional(e.actor.ip.as_deref()),
        optional(e.actor.user_agent.as_deref()),
        text(&e.action),
        optional(e.target.as_ref().map(|t| t.kind.as_str())),
        optional(e.target.as_ref().map(|t| t.id.as_str())),
        text(e.outcome.as_str()),
        text(e.severity.as_str()),
        optional(e.component.as_deref()),
        optional(e.request_id.as_deref()),
        optional(e.trace_id.as_deref()),
        text(&e.message),
        text(&attributes),
        Some(stored.hash.0.as_slice()),
        Some(stored.prev_hash.0.as_slice()),
    ];
    rows.row(COLUMN_COUNT as i16);
    for field in fields {
        rows.field(seq, field)?;
    }
    Ok(())
}

fn page(rows: Vec<PgRow>, limit: usize) -> Result<Page, StoreError> {
    Ok(page_of(rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?, limit))
}

/// A page of `limit` events from `events` (newest first, and one more than the page when there is a next).
fn page_of(mut events: Vec<StoredEvent>, limit: usize) -> Page {
    let next_cursor = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|e| Cursor { ts_micros: e.event.timestamp_micros(), seq: e.seq })
    } else {
        None
    };
    Page { events, next_cursor }
}

// === impl AuditStore for PgStore ===

impl AuditStore for PgStore {
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
        let mut rows = CopyRows::new(batch.len() * 512);
        for stored in batch {
            copy_event(&mut rows, stored)?;
        }
        let mut tx = self.pool.begin().await?;
        rows.send(&mut tx, &format!("COPY audit_events ({COLUMNS}) FROM STDIN (FORMAT binary)")).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn index_pending(&self, limit: usize) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The row lock makes concurrent indexers take turns instead of indexing the same events twice.
        let from: i64 = sqlx::query_scalar("SELECT value FROM audit_meta WHERE key = 'fts_seq' FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
        let pending: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT seq, message, attributes FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(from)
        .bind(i64::try_from(limit.min(INDEX_CHUNK)).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        let Some(&(to, _, _)) = pending.last() else {
            drop(tx);
            self.maybe_vacuum().await;
            return Ok(0);
        };
        let mut rows = CopyRows::new(pending.len() * 256);
        let mut document = Vec::new();
        for (seq, message, attributes) in &pending {
            document.clear();
            push_document(&mut document, message, attributes);
            rows.row(2);
            rows.field(*seq, Some(&seq.to_be_bytes()))?;
            rows.field(*seq, Some(&document))?;
        }
        rows.send(&mut tx, "COPY audit_fts (seq, doc) FROM STDIN (FORMAT binary)").await?;
        sqlx::query("UPDATE audit_meta SET value = $1 WHERE key = 'fts_seq'")
            .bind(to)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        {
            let mut state = self.vacuum_state.lock().unwrap_or_else(|e| e.into_inner());
            state.indexed = state.indexed.saturating_add(u64::try_from(pending.len()).unwrap_or(u64::MAX));
        }
        Ok(pending.len())
    }

    async fn search(&self, query: &Query, limit: usize, cursor: Option<Cursor>) -> Result<Page, StoreError> {
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        if query.terms.is_empty() {
            let mut builder: QueryBuilder<'_, Postgres> =
                QueryBuilder::new(format!("SELECT {} FROM audit_events", *SELECT_COLUMNS));
            push_fields(&mut builder, query);
            push_cursor(&mut builder, cursor);
            builder.push(" ORDER BY ts DESC, seq DESC LIMIT ").push_bind(fetch);
            return page(builder.build().fetch_all(&self.pool).await?, limit);
        }
        let Some(tsquery) = tsquery(&query.terms) else {
            return Ok(Page { events: Vec::new(), next_cursor: None });
        };
        let fetch_events = usize::try_from(fetch).unwrap_or(usize::MAX);
        let mut found = match self.index_mark().await? {
            (mark, true) => self.search_unindexed(query, cursor, mark, fetch_events).await?,
            (_, false) => Vec::new(),
        };
        for row in &self.search_indexed(query, cursor, &tsquery, limit, fetch).await? {
            found.push(from_row(row)?);
        }
        // Newest first; an event indexed between the two reads is there twice.
        found.sort_unstable_by_key(|e| std::cmp::Reverse((e.event.timestamp_micros(), e.seq)));
        found.dedup_by_key(|e| e.seq);
        found.truncate(fetch_events);
        Ok(page_of(found, limit))
    }

    async fn count_by(
        &self,
        query: &Query,
        facet: Facet,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let column = facet.column();
        let mut builder: QueryBuilder<'_, Postgres> = QueryBuilder::new(format!(
            "SELECT COALESCE({column}, '') AS value, COUNT(*) AS n FROM audit_events"
        ));
        push_fields(&mut builder, query);
        // Counts of the events past the index's mark that hold the terms (see `unindexed`).
        let mut unindexed: BTreeMap<String, u64> = BTreeMap::new();
        if !query.terms.is_empty() {
            let Some(tsquery) = tsquery(&query.terms) else { return Ok(Vec::new()) };
            let (mark, behind) = self.index_mark().await?;
            if behind {
                // Streamed, so that memory stays bounded however many events are past the mark. The stream
                // is read to its end: a query dropped halfway leaves its connection out of step.
                use futures_util::TryStreamExt;
                let columns = format!("COALESCE({column}, '') AS value");
                let mut tail = Self::unindexed(query, None, mark, &columns);
                let mut rows = tail.build().persistent(false).fetch(&self.pool);
                let mut failed = None;
                while let Some(row) = rows.try_next().await? {
                    let counted = (|| -> Result<(), StoreError> {
                        if document_matches(row.try_get("message")?, row.try_get("attributes")?, &query.terms)
                        {
                            *unindexed.entry(row.try_get("value")?).or_default() += 1;
                        }
                        Ok(())
                    })();
                    if let Err(error) = counted {
                        failed.get_or_insert(error);
                    }
                }
                if let Some(error) = failed {
                    return Err(error);
                }
            }
            builder
                .push(" AND seq IN (SELECT seq FROM audit_fts WHERE doc @@ ")
                .push_bind(tsquery)
                .push(format!("::tsquery AND seq <= {mark})"));
        }
        builder.push(format!(" GROUP BY {column} ORDER BY n DESC, value"));
        // With events counted here too, the order is known only once every value's count is.
        if unindexed.is_empty() {
            builder.push(" LIMIT ").push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let rows = builder.build().fetch_all(&self.pool).await?;
        let mut counts = rows
            .iter()
            .map(|row| Ok((row.try_get("value")?, u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0))))
            .collect::<Result<Vec<(String, u64)>, StoreError>>()?;
        if !unindexed.is_empty() {
            for (value, n) in &mut counts {
                *n += unindexed.remove(value.as_str()).unwrap_or(0);
            }
            counts.extend(unindexed);
            counts.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            counts.truncate(limit);
        }
        Ok(counts)
    }

    async fn scan(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.chain_rows(after, limit).await?.iter().map(from_row).collect()
    }

    async fn scan_chain(&self, after: i64, limit: usize) -> Result<Vec<ChainLink>, StoreError> {
        // Where the chain has no gap, the next `limit` events are exactly those of the seq range
        // `(after, after + limit]`: two halves of it are read at once, on two connections. Getting fewer
        // rows than `limit` means a gap (which `verify` must see as it is) or the chain's end: then the
        // batch is read as one query, the same rows `scan` returns.
        let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
        if limit >= 2 * CHAIN_SPLIT_MIN
            && let Some(end) = after.checked_add(limit_i64)
        {
            let half = limit / 2;
            let mid = after + i64::try_from(half).unwrap_or(0);
            // Each half is a task of its own, so that on a multi-threaded runtime both are parsed and hashed
            // at once, on two threads, while their backends produce rows. A task runs to its end even if
            // this future is dropped or the other half fails, so neither query stops halfway (which could
            // leave its pooled connection out of step with the server).
            let low = tokio::spawn(Self::copy_links(self.pool.clone(), after, mid, half));
            let high = tokio::spawn(Self::copy_links(self.pool.clone(), mid, end, limit - half));
            let (low, high) = futures_util::future::join(low, high).await;
            let joined = |half: Result<Result<Vec<ChainLink>, StoreError>, tokio::task::JoinError>| {
                half.unwrap_or_else(|error| Err(copy_error(&format!("reading the chain failed: {error}"))))
            };
            let (low, high) = (joined(low), joined(high));
            let (mut low, high) = (low?, high?);
            if low.len() + high.len() == limit {
                low.extend(high);
                return Ok(low);
            }
        }
        self.stream_links(&CHAIN_AFTER, after, limit_i64, limit).await
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
        let mut tx = self.pool.begin().await?;
        let last: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, hash FROM (SELECT seq, hash FROM audit_events WHERE seq <= $1 ORDER BY seq LIMIT $2) \
             AS oldest ORDER BY seq DESC LIMIT 1",
        )
        .bind(through)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((last, hash)) = last else { return Ok(0) };
        // Also any vectors an indexer wrote for events deleted while it ran: they are all below `last`.
        sqlx::query("DELETE FROM audit_fts WHERE seq <= $1").bind(last).execute(&mut *tx).await?;
        let deleted =
            sqlx::query("DELETE FROM audit_events WHERE seq <= $1").bind(last).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, created) VALUES ($1, $2, $3) \
             ON CONFLICT (seq) DO UPDATE SET hash = EXCLUDED.hash, created = EXCLUDED.created",
        )
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
        Ok(sqlx::query_scalar("SELECT MIN(seq) FROM audit_events WHERE ts >= $1")
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
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn terms_become_phrases_that_must_all_match() {
        let terms = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            tsquery(&terms(&["Disk FULL", "etc/passwd", "Überlauf"])).as_deref(),
            Some("('disk' <-> 'full') & ('etc' <-> 'passwd') & ('überlauf')")
        );
        assert_eq!(tsquery(&terms(&["disk", "::"])), None, "a term without words matches nothing");
        assert_eq!(tsquery(&terms(&[&"x".repeat(2048)])), None, "a word too long to be indexed");
    }

    #[test]
    fn documents_are_binary_tsvectors() {
        let mut out = Vec::new();
        push_document(&mut out, "b a b", r#"{"a":1}"#);
        // 3 lexemes in byte order: "1" at 6, "a" at 2 and 5 (the attributes' words start one position after
        // the message's next one), "b" at 1 and 3.
        let expected: &[u8] =
            &[0, 0, 0, 3, b'1', 0, 0, 1, 0, 6, b'a', 0, 0, 2, 0, 2, 0, 5, b'b', 0, 0, 2, 0, 1, 0, 3];
        assert_eq!(out, expected);
    }

    #[test]
    fn copy_rows_read_back_as_links_whatever_the_chunks() {
        use crate::event::AuditEvent;
        let mut previous = Hash::GENESIS;
        let mut stored = Vec::new();
        for i in 0..3_i64 {
            let event = AuditEvent::builder("doc.edit", "alice")
                .message(format!("edit \"{i}\" é"))
                .attribute("n", i)
                .build()
                .expect("a valid event");
            let next = StoredEvent::chain(i + 1, event, previous);
            previous = next.hash;
            stored.push(next);
        }
        let mut rows = CopyRows::new(0);
        for event in &stored {
            copy_event(&mut rows, event).expect("encodes");
        }
        let mut data = rows.buffer;
        data.extend_from_slice(&(-1_i16).to_be_bytes());
        let expected: Vec<ChainLink> = stored.iter().map(ChainLink::of).collect();
        for size in [1, 2, 7, 19, 20, 100, data.len()] {
            let mut reader = CopyReader::default();
            let mut links = Vec::new();
            for chunk in data.chunks(size) {
                reader.feed(chunk, &mut links).expect("well-formed");
            }
            assert!(reader.finished, "chunks of {size}");
            assert_eq!(links, expected, "chunks of {size}");
        }
        let mut reader = CopyReader::default();
        assert!(reader.feed(b"PGCOPY\nXXXXXXXXXXXXXXXX", &mut Vec::new()).is_err(), "not COPY data");
    }

    #[test]
    fn documents_match_terms_as_their_vectors_would() {
        let terms = |text: &[&str]| text.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        let (message, attributes) = ("Disk FULL on /dev/sda1, disk", r#"{"note":"Überlauf","n":12}"#);
        for (yes, query) in [
            (true, terms(&["disk"])),
            (true, terms(&["DISK", "überlauf"])),
            (true, terms(&["disk full", "dev/sda1"])),
            (true, terms(&["note überlauf"])),
            (false, terms(&["full disk"])),
            (false, terms(&["disk note"])), // the last message word and the first attribute word
            (false, terms(&["dis"])),
            (false, terms(&["disk", "absent"])),
            (false, terms(&["::"])),
        ] {
            assert_eq!(document_matches(message, attributes, &query), yes, "{query:?}");
        }
        // A word's positions past the 256 a vector keeps cannot start a phrase.
        let many = format!("{} tail", "same ".repeat(300));
        assert!(document_matches(&many, "{}", &terms(&["same same"])));
        assert!(!document_matches(&many, "{}", &terms(&["same tail"])));
    }

    #[test]
    fn documents_are_what_a_map_of_words_gives() {
        let texts = [
            ("", ""),
            (
                "Disk FULL on /dev/sda1 disk",
                r#"{"path":"/etc/passwd","n":12,"Ünïcode":"ÀÉ ß İstanbul ǅ ΣΑΣ"}"#,
            ),
            ("the the the a b a", r#"{"a":"a a a"}"#),
            ("x1 X1 x1", "{}"),
        ];
        let long = format!("{} end", "w ".repeat(20_000));
        let many = "same ".repeat(400);
        let huge = "y".repeat(3_000);
        let all =
            texts.into_iter().chain([(long.as_str(), "{}"), (many.as_str(), "{}"), (huge.as_str(), "z")]);
        for (message, attributes) in all {
            let (mut new, mut old) = (Vec::new(), Vec::new());
            push_document(&mut new, message, attributes);
            push_document_with_a_map(&mut old, message, attributes);
            assert_eq!(new, old, "{message:.40} / {attributes:.40}");
        }
    }

    /// The implementation before `push_document` sorted pairs, kept as its oracle. Appends an event's `tsvector` in PostgreSQL's binary form: the message's words, then the attributes'
    /// (the JSON text's words, keys included) one position further on, so that a phrase cannot run from one
    /// into the other.
    fn push_document_with_a_map(out: &mut Vec<u8>, message: &str, attributes: &str) {
        // Lexemes in byte order, which is PostgreSQL's, each with its positions in increasing order.
        let mut lexemes: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        let mut position = 0_u32;
        for (i, text) in [message, attributes].into_iter().enumerate() {
            position += u32::from(i > 0);
            for word in words(text) {
                position += 1;
                if word.len() > MAX_LEXEME_BYTES {
                    continue;
                }
                let at = u16::try_from(position.min(MAX_POSITION)).unwrap_or(u16::MAX >> 2);
                let positions = lexemes.entry(word).or_default();
                if positions.len() < MAX_POSITIONS && positions.last().is_none_or(|last| *last < at) {
                    positions.push(at);
                }
            }
        }
        out.extend_from_slice(&i32::try_from(lexemes.len()).unwrap_or(i32::MAX).to_be_bytes());
        for (lexeme, positions) in &lexemes {
            out.extend_from_slice(lexeme.as_bytes());
            out.push(0);
            out.extend_from_slice(&(positions.len() as u16).to_be_bytes());
            for position in positions {
                out.extend_from_slice(&position.to_be_bytes());
            }
        }
    }
}
