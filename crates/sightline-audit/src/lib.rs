//! An audit trail for Rust services: who did what to which target, with what outcome; kept in SQLite
//! (embedded, the default) or PostgreSQL through sqlx, searchable, tamper-evident and bounded by
//! retention.

pub mod any;
pub mod event;
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
pub use query::{ActionPattern, Cursor, Facet, Query, QueryError};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{AuditStore, Checkpoint, Page, StoreError};
pub use writer::{AuditWriter, Redaction, WriteError, WriterConfig, WriterTask};
