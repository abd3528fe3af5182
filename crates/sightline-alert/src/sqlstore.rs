#![cfg(feature = "sql")]
//! The notification pipeline's durable state in the server's database: [`SqlPipelineStore`] keeps alerts,
//! silences, acknowledgements, the notification log and escalation progress in SQLite (the default, a file)
//! or PostgreSQL, through the same sqlx layer as the audit store, so that a restart neither loses nor repeats a
//! notification (delivery is at-least-once, deduplicated by the notification log).
//!
//! The dispatcher calls [`PipelineStore`] synchronously under its own lock, so this store never waits on the
//! database there: every row is loaded into an in-memory [`MemoryStore`] at [`SqlPipelineStore::open`], reads
//! are served from it, and a write updates it at once and is queued, in order, on an unbounded channel to a
//! background writer task. The writer takes whatever is queued (up to [`MAX_BATCH`] writes) and applies it in
//! one transaction, in the order it was made, so a put followed by a delete of the same key ends deleted. A
//! failed transaction is logged (`tracing::error!`) and retried, whole, with exponential backoff (100 ms up to
//! 30 s) until it succeeds; nothing is dropped, and later writes wait behind it, so order holds.
//!
//! Shutdown: [`SqlPipelineStore::flush`] waits until every write queued before it is committed; call it (with
//! a timeout of your choosing, since it waits through retries while the database is down) after the
//! dispatcher has stopped. Dropping the store closes the queue: the writer still commits what was queued and
//! then ends, but only while the tokio runtime keeps running, so writes not flushed before the runtime shuts
//! down are lost (the notification log then errs towards sending a notification again, never towards
//! silence).
//!
//! Tables (created if missing), one per record kind, keyed by the record's natural key, the record itself as
//! JSON in `record`:
//!
//! | table | key |
//! |---|---|
//! | `alert_pipeline_alerts` | `fingerprint` (16 hex digits) |
//! | `alert_pipeline_silences` | `id` |
//! | `alert_pipeline_acks` | `fingerprint` |
//! | `alert_pipeline_nflog` | `group_key`, `integration` |
//! | `alert_pipeline_escalations` | `fingerprint`, `escalation` |
//!
//! The I/O runs on tokio's timers (pool timeouts, retry backoff): a test with a paused clock should open and
//! use this store with the clock running.

use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Row, Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::pipeline::Silence;
use crate::pipeline::store::{
    AckRecord, AlertRecord, EscalationRecord, MemoryStore, NflogRecord, PipelineStore,
};

/// Most writes the background writer commits in one transaction; more queued writes go in the next one.
pub const MAX_BATCH: usize = 256;

/// The first and the longest wait before a failed transaction is tried again.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SqlStoreError {
    #[error(
        "unsupported pipeline store URL `{0}`: use `sqlite://PATH` (or `sqlite:PATH`) or `postgres://USER@HOST/DB` \
         (the server's `storage.url`)"
    )]
    Url(String),
    #[error(
        "cannot open the pipeline store at `{url}`: {source}; check that the database is reachable (PostgreSQL) \
         or that the directory exists and is writable (SQLite)"
    )]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "cannot {action} table {table} of the pipeline store: {source}; check the database user's rights on it"
    )]
    Table {
        action: &'static str,
        table: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "row {key} of table {table} is not a valid pipeline record ({source}); delete that row (the pipeline \
         then forgets that one record) or restore the database from a backup"
    )]
    Decode {
        table: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// One kind of record: its table and key columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Alert,
    Silence,
    Ack,
    Nflog,
    Escalation,
}

/// One queued change: the key columns' values (a prefix of them for a delete), and the JSON record for a
/// put or `None` for a delete.
#[derive(Debug)]
struct Write {
    kind: Kind,
    key: Vec<String>,
    record: Option<String>,
}

enum Command {
    Write(Write),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The pipeline's state in SQLite or PostgreSQL, written behind an in-memory cache. Cheap calls; see the
/// module documentation for ordering, retries and shutdown.
#[derive(Debug)]
pub struct SqlPipelineStore {
    cache: MemoryStore,
    /// Held across a change's queueing and its cache update, so that concurrent callers changing one key
    /// leave the database and the cache in the same final order.
    order: Mutex<()>,
    tx: mpsc::UnboundedSender<Command>,
    backend: &'static str,
}

// === impl Kind ===

impl Kind {
    const ALL: [Kind; 5] = [Kind::Alert, Kind::Silence, Kind::Ack, Kind::Nflog, Kind::Escalation];

    fn table(self) -> &'static str {
        match self {
            Kind::Alert => "alert_pipeline_alerts",
            Kind::Silence => "alert_pipeline_silences",
            Kind::Ack => "alert_pipeline_acks",
            Kind::Nflog => "alert_pipeline_nflog",
            Kind::Escalation => "alert_pipeline_escalations",
        }
    }

    fn key_columns(self) -> &'static [&'static str] {
        match self {
            Kind::Alert | Kind::Ack => &["fingerprint"],
            Kind::Silence => &["id"],
            Kind::Nflog => &["group_key", "integration"],
            Kind::Escalation => &["fingerprint", "escalation"],
        }
    }

    /// The table's DDL, the same for both databases (TEXT columns only).
    fn create_table(self) -> String {
        let columns = self.key_columns();
        let keys: String = columns.iter().map(|c| format!("{c} TEXT NOT NULL, ")).collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({keys}record TEXT NOT NULL, PRIMARY KEY ({}))",
            self.table(),
            columns.join(", ")
        )
    }

    /// The upsert, with `$n` placeholders for PostgreSQL or `?` for SQLite.
    fn upsert(self, numbered: bool) -> String {
        let columns = self.key_columns();
        let placeholders: Vec<String> = (1..=columns.len() + 1)
            .map(|i| if numbered { format!("${i}") } else { "?".to_owned() })
            .collect();
        format!(
            "INSERT INTO {} ({}, record) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET record = excluded.record",
            self.table(),
            columns.join(", "),
            placeholders.join(", "),
            columns.join(", ")
        )
    }

    /// The delete of every row whose first `n` key columns equal the bound values.
    fn delete(self, n: usize, numbered: bool) -> String {
        let conditions: Vec<String> = self.key_columns()[..n]
            .iter()
            .enumerate()
            .map(|(i, c)| if numbered { format!("{c} = ${}", i + 1) } else { format!("{c} = ?") })
            .collect();
        format!("DELETE FROM {} WHERE {}", self.table(), conditions.join(" AND "))
    }

    fn select(self) -> String {
        format!("SELECT {}, record FROM {}", self.key_columns().join(", "), self.table())
    }
}

fn fingerprint_key(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

// === impl Pool ===

impl Pool {
    async fn connect(url: &str) -> Result<Self, SqlStoreError> {
        let connect = |source| SqlStoreError::Connect { url: redact_url(url), source };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL, as the audit store: a commit is on disk before the writer counts it as written, so a
                // notification logged as sent stays logged across a power cut.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10));
            // Two connections: the writer's, and one for the load at start-up and anyone reading alongside.
            let pool =
                SqlitePoolOptions::new().max_connections(2).connect_with(options).await.map_err(connect)?;
            return Ok(Pool::Sqlite(pool));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(connect)?;
            // A connection is waited for at most 10 s, as the audit store does: long enough to ride out a
            // restart of the database, short enough that an unreachable one is reported promptly at start-up.
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(connect)?;
            return Ok(Pool::Postgres(pool));
        }
        Err(SqlStoreError::Url(redact_url(url)))
    }

    fn backend(&self) -> &'static str {
        match self {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    async fn create_tables(&self) -> Result<(), SqlStoreError> {
        for kind in Kind::ALL {
            let ddl = kind.create_table();
            let result = match self {
                Pool::Sqlite(pool) => sqlx::query(&ddl).execute(pool).await.map(drop),
                Pool::Postgres(pool) => sqlx::query(&ddl).execute(pool).await.map(drop),
            };
            result.map_err(|source| SqlStoreError::Table {
                action: "create",
                table: kind.table(),
                source,
            })?;
        }
        Ok(())
    }

    /// Every row of one table as (key columns joined by `/`, JSON record).
    async fn rows(&self, kind: Kind) -> Result<Vec<(String, String)>, SqlStoreError> {
        let select = kind.select();
        let n = kind.key_columns().len();
        let read =
            |get: &dyn Fn(usize) -> Result<String, sqlx::Error>| -> Result<(String, String), sqlx::Error> {
                let key: Result<Vec<String>, sqlx::Error> = (0..n).map(get).collect();
                Ok((key?.join("/"), get(n)?))
            };
        let rows = match self {
            Pool::Sqlite(pool) => sqlx::query(&select)
                .fetch_all(pool)
                .await
                .and_then(|rows| rows.iter().map(|row| read(&|i| row.try_get(i))).collect()),
            Pool::Postgres(pool) => sqlx::query(&select)
                .fetch_all(pool)
                .await
                .and_then(|rows| rows.iter().map(|row| read(&|i| row.try_get(i))).collect()),
        };
        rows.map_err(|source| SqlStoreError::Table { action: "read", table: kind.table(), source })
    }

    /// Applies `writes` in order in one transaction.
    async fn apply(&self, writes: &[Write]) -> Result<(), sqlx::Error> {
        match self {
            Pool::Sqlite(pool) => {
                // IMMEDIATE: take the write lock up front, so another process's commit cannot fail the lock
                // upgrade halfway (busy_timeout does not cover upgrades in WAL mode).
                let mut tx: Transaction<'_, Sqlite> = pool.begin_with("BEGIN IMMEDIATE").await?;
                for write in writes {
                    let sql = match &write.record {
                        Some(_) => write.kind.upsert(false),
                        None => write.kind.delete(write.key.len(), false),
                    };
                    let mut query = sqlx::query(&sql);
                    for value in &write.key {
                        query = query.bind(value.as_str());
                    }
                    if let Some(record) = &write.record {
                        query = query.bind(record.as_str());
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await
            }
            Pool::Postgres(pool) => {
                let mut tx: Transaction<'_, Postgres> = pool.begin().await?;
                for write in writes {
                    let sql = match &write.record {
                        Some(_) => write.kind.upsert(true),
                        None => write.kind.delete(write.key.len(), true),
                    };
                    let mut query = sqlx::query(&sql);
                    for value in &write.key {
                        query = query.bind(value.as_str());
                    }
                    if let Some(record) = &write.record {
                        query = query.bind(record.as_str());
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await
            }
        }
    }
}

/// A database URL without its password, for logs and errors.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => format!("{}@{host}", userinfo.split(':').next().unwrap_or_default()),
        None => authority.to_owned(),
    };
    match path {
        Some(path) => format!("{scheme}://{authority}/{path}"),
        None => format!("{scheme}://{authority}"),
    }
}

fn decode<T: DeserializeOwned>(kind: Kind, key: &str, json: &str) -> Result<T, SqlStoreError> {
    serde_json::from_str(json).map_err(|source| SqlStoreError::Decode {
        table: kind.table(),
        key: key.to_owned(),
        source,
    })
}

/// The background writer: batches what is queued, commits it in order, retries a failed batch with backoff,
/// and answers flushes once everything queued before them is committed. Ends when every sender is gone.
async fn run_writer(pool: Pool, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut writes: Vec<Write> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Write(write) => writes.push(write),
                Command::Flush(done) => flushes.push(done),
            }
            if writes.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let mut backoff = BACKOFF_START;
        let mut attempt: u32 = 0;
        while !writes.is_empty() {
            attempt += 1;
            match pool.apply(&writes).await {
                Ok(()) => {
                    if attempt > 1 {
                        tracing::info!(
                            backend = pool.backend(),
                            attempt,
                            "pipeline store writes succeeded again"
                        );
                    }
                    writes.clear();
                }
                Err(error) => {
                    tracing::error!(
                        backend = pool.backend(),
                        %error,
                        writes = writes.len(),
                        attempt,
                        retry_in = ?backoff,
                        "cannot write the notification pipeline's state to the database; retrying (alerts, \
                         silences and the notification log are kept in memory meanwhile)"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        // Everything queued before these flushes is in `writes` or was committed earlier: done now.
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

// === impl SqlPipelineStore ===

impl SqlPipelineStore {
    /// Opens the store at `url` (`sqlite://PATH` or `sqlite:PATH`, the file created if missing, in WAL mode;
    /// `postgres://...` or `postgresql://...`, where `?options=-c%20search_path%3DSCHEMA` selects a schema),
    /// creates its tables if missing, loads every row, and starts the background writer (call inside a tokio
    /// runtime).
    pub async fn open(url: &str) -> Result<Self, SqlStoreError> {
        let pool = Pool::connect(url).await?;
        pool.create_tables().await?;
        let cache = MemoryStore::new();
        for kind in Kind::ALL {
            for (key, json) in pool.rows(kind).await? {
                match kind {
                    Kind::Alert => cache.put_alert(decode::<AlertRecord>(kind, &key, &json)?),
                    Kind::Silence => cache.put_silence(decode::<Silence>(kind, &key, &json)?),
                    Kind::Ack => cache.put_ack(decode::<AckRecord>(kind, &key, &json)?),
                    Kind::Nflog => cache.put_nflog(decode::<NflogRecord>(kind, &key, &json)?),
                    Kind::Escalation => cache.put_escalation(decode::<EscalationRecord>(kind, &key, &json)?),
                }
            }
        }
        let backend = pool.backend();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_writer(pool, rx));
        Ok(Self { cache, order: Mutex::new(()), tx, backend })
    }

    /// Opens the store and wraps it for [`crate::pipeline::DispatcherOptions::store`].
    pub async fn open_shared(url: &str) -> Result<Arc<Self>, SqlStoreError> {
        Ok(Arc::new(Self::open(url).await?))
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Waits until every write made before this call is committed. While the database is failing this waits
    /// through the writer's retries: at shutdown, bound it with `tokio::time::timeout`.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    fn ordered(&self) -> MutexGuard<'_, ()> {
        // The guarded value is empty, so a panic elsewhere leaves nothing inconsistent behind it.
        self.order.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn queue<T: Serialize>(&self, kind: Kind, key: Vec<String>, record: Option<&T>) {
        let record = match record.map(serde_json::to_string) {
            None => None,
            Some(Ok(json)) => Some(json),
            Some(Err(error)) => {
                // The records hold strings, numbers and times only, so this does not happen; were it to, the
                // change stays in memory and the log says which record did not reach the database.
                tracing::error!(table = kind.table(), key = ?key, %error, "cannot serialise a pipeline record; it is kept in memory only");
                return;
            }
        };
        if self.tx.send(Command::Write(Write { kind, key, record })).is_err() {
            // Only when the runtime that ran the writer is gone (shutdown): memory still has the change.
            tracing::error!(
                table = kind.table(),
                "the pipeline store's writer has stopped; a change was not saved"
            );
        }
    }
}

impl PipelineStore for SqlPipelineStore {
    fn put_alert(&self, alert: AlertRecord) {
        let _order = self.ordered();
        self.queue(Kind::Alert, vec![fingerprint_key(alert.fingerprint)], Some(&alert));
        self.cache.put_alert(alert);
    }
    fn delete_alert(&self, fingerprint: u64) {
        let _order = self.ordered();
        self.queue::<()>(Kind::Alert, vec![fingerprint_key(fingerprint)], None);
        self.cache.delete_alert(fingerprint);
    }
    fn alerts(&self) -> Vec<AlertRecord> {
        self.cache.alerts()
    }

    fn put_silence(&self, silence: Silence) {
        let _order = self.ordered();
        self.queue(Kind::Silence, vec![silence.id.clone()], Some(&silence));
        self.cache.put_silence(silence);
    }
    fn delete_silence(&self, id: &str) {
        let _order = self.ordered();
        self.queue::<()>(Kind::Silence, vec![id.to_owned()], None);
        self.cache.delete_silence(id);
    }
    fn silences(&self) -> Vec<Silence> {
        self.cache.silences()
    }

    fn put_ack(&self, ack: AckRecord) {
        let _order = self.ordered();
        self.queue(Kind::Ack, vec![fingerprint_key(ack.fingerprint)], Some(&ack));
        self.cache.put_ack(ack);
    }
    fn delete_ack(&self, fingerprint: u64) {
        let _order = self.ordered();
        self.queue::<()>(Kind::Ack, vec![fingerprint_key(fingerprint)], None);
        self.cache.delete_ack(fingerprint);
    }
    fn acks(&self) -> Vec<AckRecord> {
        self.cache.acks()
    }

    fn put_nflog(&self, entry: NflogRecord) {
        let _order = self.ordered();
        self.queue(Kind::Nflog, vec![entry.group_key.clone(), entry.integration.clone()], Some(&entry));
        self.cache.put_nflog(entry);
    }
    fn nflog(&self, group_key: &str, integration: &str) -> Option<NflogRecord> {
        self.cache.nflog(group_key, integration)
    }
    fn delete_nflog(&self, group_key: &str, integration: &str) {
        let _order = self.ordered();
        self.queue::<()>(Kind::Nflog, vec![group_key.to_owned(), integration.to_owned()], None);
        self.cache.delete_nflog(group_key, integration);
    }
    fn nflog_entries(&self) -> Vec<NflogRecord> {
        self.cache.nflog_entries()
    }

    fn put_escalation(&self, record: EscalationRecord) {
        let _order = self.ordered();
        self.queue(
            Kind::Escalation,
            vec![fingerprint_key(record.fingerprint), record.escalation.clone()],
            Some(&record),
        );
        self.cache.put_escalation(record);
    }
    fn delete_escalations(&self, fingerprint: u64) {
        let _order = self.ordered();
        // A prefix of the key: every escalation policy's progress for this alert.
        self.queue::<()>(Kind::Escalation, vec![fingerprint_key(fingerprint)], None);
        self.cache.delete_escalations(fingerprint);
    }
    fn escalations(&self) -> Vec<EscalationRecord> {
        self.cache.escalations()
    }
}

#[cfg(test)]
mod tests {
    use super::{Kind, redact_url};

    #[test]
    fn statements_use_each_backends_placeholders() {
        assert_eq!(
            Kind::Nflog.upsert(true),
            "INSERT INTO alert_pipeline_nflog (group_key, integration, record) VALUES ($1, $2, $3) \
             ON CONFLICT (group_key, integration) DO UPDATE SET record = excluded.record"
        );
        assert_eq!(
            Kind::Escalation.delete(1, false),
            "DELETE FROM alert_pipeline_escalations WHERE fingerprint = ?"
        );
        assert_eq!(
            Kind::Silence.create_table(),
            "CREATE TABLE IF NOT EXISTS alert_pipeline_silences (id TEXT NOT NULL, record TEXT NOT NULL, \
             PRIMARY KEY (id))"
        );
    }

    #[test]
    fn passwords_are_left_out_of_urls() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u@h:5432/db");
        assert_eq!(redact_url("sqlite:///tmp/a@b.db"), "sqlite:///tmp/a@b.db");
    }
}
