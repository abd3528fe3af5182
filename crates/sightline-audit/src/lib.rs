//! An audit trail for Rust services: who did what to which target, with what outcome; kept in SQLite
//! (embedded, the default) or PostgreSQL through sqlx, searchable, tamper-evident and bounded by
//! retention.
//!
//! # Concepts
//!
//! - An [`AuditEvent`] has a UUIDv7 id, a timestamp, an [`Actor`], a dotted `action` (`auth.login`), an
//!   optional [`Target`], an [`Outcome`], a [`Severity`], correlation ids and JSON attributes. Building or
//!   parsing one validates it; errors name the field.
//! - An [`AuditStore`] keeps events: [`SqliteStore`] (WAL, FTS5) or `PgStore` (tsvector + GIN), or
//!   [`AnyStore`] chosen from a URL. Both pass one test suite.
//! - The [`AuditWriter`] is the only appender. It queues events (bounded: `record` waits for room), commits
//!   them in batches (group commit), and chains them: each stored event carries the SHA-256 of its
//!   canonical encoding and of the previous event's hash. `record_durable` returns after the commit, so
//!   an acknowledged event is on disk. Redaction (the same rules as logs and traces) runs on ingest.
//! - [`verify::verify`] walks the chain and reports the first missing, altered or reordered event.
//!   [`retention`] deletes old events in batches and leaves a checkpoint, so the rest still verifies.
//! - [`Query`] is the search language (`actor:alice action:auth.* outcome:failure "disk full" since:1h`).
//!
//! # Usage
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sightline_audit::{AuditEvent, AuditStore, AuditWriter, Outcome, Query, SqliteStore, WriterConfig};
//!
//! let store = Arc::new(SqliteStore::open(std::path::Path::new("audit.db")).await?);
//! let (writer, task) = AuditWriter::start(store.clone(), WriterConfig::default(), None).await?;
//! let event = AuditEvent::builder("auth.login", "alice")
//!     .outcome(Outcome::Failure)
//!     .actor_ip("203.0.113.7")
//!     .message("bad password")
//!     .build()?;
//! writer.record_durable(event).await?; // on disk when this returns
//!
//! let query = Query::parse("actor:alice outcome:failure since:1h", std::time::SystemTime::now())?;
//! let page = store.search(&query, 50, None).await?;
//! assert_eq!(page.events.len(), 1);
//! assert!(sightline_audit::verify::verify(store.as_ref()).await?.ok);
//! writer.shutdown(task).await; // commits whatever is still queued
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! - `sqlite` (default): the embedded store.
//! - `postgres` (default): the PostgreSQL store.

pub mod any;
pub mod event;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod query;
pub mod retention;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
pub mod verify;
pub mod writer;

pub use any::AnyStore;
pub use event::{
    Actor, AuditEvent, AuditEventBuilder, EventError, Hash, Outcome, Severity, StoredEvent, Target,
};
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub use query::{ActionPattern, Cursor, Facet, Query, QueryError};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{AuditStore, ChainLink, Checkpoint, Page, StoreError};
pub use writer::{AuditWriter, Redaction, WriteError, WriterConfig, WriterTask};
