//! The storage interface both backends implement, and what it returns.

use std::future::Future;

use crate::event::{Hash, StoredEvent};
use crate::query::{Cursor, Facet, Query};

/// A chain position kept when retention deletes the events before it, so the rest stays verifiable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last deleted event's sequence number.
    pub seq: i64,
    /// Its hash: the `prev_hash` of the event after it.
    pub hash: Hash,
    /// When the checkpoint was made (µs since the epoch).
    pub created_micros: i64,
}

/// One page of newest-first results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The events, newest first.
    pub events: Vec<StoredEvent>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

/// One stored event as [`verify`](crate::verify::verify) first reads it: its place, its stored hashes and
/// the hash its stored fields give, without the event itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLink {
    /// Its sequence number.
    pub seq: i64,
    /// Its stored hash.
    pub hash: Hash,
    /// Its stored `prev_hash`.
    pub prev_hash: Hash,
    /// SHA-256 over `prev_hash` and the canonical encoding of its stored fields; `None` when the row
    /// cannot be hashed that way (a hash of the wrong length, a column of an unexpected type), in which
    /// case verification reads the event itself.
    pub computed: Option<Hash>,
}

impl ChainLink {
    /// The link of an event read whole.
    pub fn of(stored: &StoredEvent) -> Self {
        Self {
            seq: stored.seq,
            hash: stored.hash,
            prev_hash: stored.prev_hash,
            computed: Some(stored.event.chain_hash(&stored.prev_hash)),
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused the operation.
    #[error("audit database error: {0}; check that the database is running and `storage.url` points at it")]
    Database(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("audit database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `storage.url` names no supported database.
    #[error("unsupported audit storage URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    Url(String),
    /// A stored row cannot be read back as an event (the database was edited by hand).
    #[error("stored audit event {seq} is unreadable: {reason}")]
    Corrupt {
        /// Its sequence number.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
}

/// What every audit backend does. Sequence numbers and hashes are assigned by the writer, which is the
/// only appender, so the chain has one author.
pub trait AuditStore: Send + Sync + 'static {
    /// The last stored event's `(seq, hash)`, or the latest checkpoint's when retention removed every
    /// event; `None` for an empty trail.
    fn head(&self) -> impl Future<Output = Result<Option<(i64, Hash)>, StoreError>> + Send;

    /// Stores `batch` (consecutive, chained) in one transaction: all or nothing.
    fn append(&self, batch: &[StoredEvent]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Work that may lag the commit (full-text indexing): does some and returns how many events it
    /// handled; 0 when nothing is pending.
    fn index_pending(&self, limit: usize) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Events matching `query`, newest first, after `cursor`.
    fn search(
        &self,
        query: &Query,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// How many events match `query`, grouped by `facet`, most frequent first.
    fn count_by(
        &self,
        query: &Query,
        facet: Facet,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, u64)>, StoreError>> + Send;

    /// Events with `seq > after`, in chain order (for export and verification).
    fn scan(
        &self,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// [`ChainLink`]s of the events with `seq > after`, in chain order: what [`scan`](Self::scan) returns,
    /// hashed. Backends hash straight from their rows, which is what makes verification fast; this
    /// default reads whole events.
    fn scan_chain(
        &self,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ChainLink>, StoreError>> + Send {
        async move { Ok(self.scan(after, limit).await?.iter().map(ChainLink::of).collect()) }
    }

    /// The latest retention checkpoint.
    fn checkpoint(&self) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;

    /// Deletes up to `limit` of the oldest events with `seq <= through`, recording a checkpoint at the
    /// last one deleted in the same transaction. Returns how many were deleted.
    fn delete_through(
        &self,
        through: i64,
        limit: usize,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The smallest stored seq, `None` when no event is stored.
    fn oldest_seq(&self) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// The lowest seq among events at or after `ts_micros`. Retention by age deletes the chain's prefix
    /// before it (imported events can be older than their position, and are kept until it).
    fn first_seq_since(&self, ts_micros: i64)
    -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// How many events are stored.
    fn count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Whether the database answers (for the health check).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Columns in the order every backend inserts and selects them.
pub(crate) const COLUMNS: &str = "seq, id, ts, actor_id, actor_type, actor_ip, actor_user_agent, action, \
     target_type, target_id, outcome, severity, component, request_id, trace_id, message, attributes, hash, prev_hash";

/// Number of columns in [`COLUMNS`].
pub(crate) const COLUMN_COUNT: usize = 19;

/// Reads a row of [`COLUMNS`] back into an event.
pub(crate) fn from_row<'r, R>(row: &'r R) -> Result<StoredEvent, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use crate::event::{Actor, AuditEvent, Outcome, Severity, Target, from_micros};
    let seq: i64 = row.try_get("seq")?;
    let corrupt = |reason: String| StoreError::Corrupt { seq, reason };
    let text = |name: &'r str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(name)?) };
    let optional =
        |name: &'r str| -> Result<Option<String>, StoreError> { Ok(row.try_get::<Option<String>, _>(name)?) };
    let id = text("id")?;
    let outcome = text("outcome")?;
    let severity = text("severity")?;
    let attributes = text("attributes")?;
    let target = match (optional("target_type")?, optional("target_id")?) {
        (Some(kind), Some(id)) => Some(Target { kind, id }),
        _ => None,
    };
    let event = AuditEvent {
        id: id.parse().map_err(|_| corrupt(format!("id {id:?} is not a UUID")))?,
        timestamp: from_micros(row.try_get("ts")?),
        actor: Actor {
            id: text("actor_id")?,
            kind: text("actor_type")?,
            ip: optional("actor_ip")?,
            user_agent: optional("actor_user_agent")?,
        },
        action: text("action")?,
        target,
        outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt(format!("unknown outcome {outcome:?}")))?,
        severity: Severity::parse(&severity)
            .ok_or_else(|| corrupt(format!("unknown severity {severity:?}")))?,
        component: optional("component")?,
        request_id: optional("request_id")?,
        trace_id: optional("trace_id")?,
        message: text("message")?,
        attributes: match serde_json::from_str(&attributes) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(corrupt("attributes are not a JSON object".into())),
        },
    };
    let hash: Vec<u8> = row.try_get("hash")?;
    let prev_hash: Vec<u8> = row.try_get("prev_hash")?;
    Ok(StoredEvent {
        seq,
        event,
        hash: Hash::from_slice(&hash).ok_or_else(|| corrupt("hash is not 32 bytes".into()))?,
        prev_hash: Hash::from_slice(&prev_hash).ok_or_else(|| corrupt("prev_hash is not 32 bytes".into()))?,
    })
}

/// Reads a row of [`COLUMNS`] as a [`ChainLink`], hashing its fields as stored. Columns are taken by position
/// (a lookup by name hashes the name). Only an unreadable `seq` is an error; any other column that cannot
/// be read leaves the link without a computed hash, for verification to look at the event itself.
pub(crate) fn chain_link<'r, R>(row: &'r R) -> Result<ChainLink, StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'r [u8]: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use crate::event::StoredFields;
    let seq: i64 = row.try_get(0)?;
    let hash = |i: usize| row.try_get::<&'r [u8], _>(i).ok().and_then(Hash::from_slice);
    let (hash, prev_hash) = (hash(17), hash(18));
    let fields = || -> Result<StoredFields<'r>, sqlx::Error> {
        Ok(StoredFields {
            id: row.try_get(1)?,
            ts: row.try_get(2)?,
            actor_id: row.try_get(3)?,
            actor_type: row.try_get(4)?,
            actor_ip: row.try_get(5)?,
            actor_user_agent: row.try_get(6)?,
            action: row.try_get(7)?,
            target_type: row.try_get(8)?,
            target_id: row.try_get(9)?,
            outcome: row.try_get(10)?,
            severity: row.try_get(11)?,
            component: row.try_get(12)?,
            request_id: row.try_get(13)?,
            trace_id: row.try_get(14)?,
            message: row.try_get(15)?,
            attributes: row.try_get(16)?,
        })
    };
    let computed = match (hash, prev_hash) {
        (Some(_), Some(prev_hash)) => fields().ok().map(|fields| fields.chain_hash(&prev_hash)),
        _ => None,
    };
    Ok(ChainLink { seq, hash: hash.unwrap_or_default(), prev_hash: prev_hash.unwrap_or_default(), computed })
}

/// Turns full-text terms into an FTS5 query: each term a quoted string (phrases stay phrases), all
/// required.
pub(crate) fn fts5_query(terms: &[String]) -> String {
    terms.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect::<Vec<_>>().join(" ")
}
