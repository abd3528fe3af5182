//! A store chosen at run time from a URL: `sqlite://...` or `postgres://...`.

use crate::event::{Hash, StoredEvent};
use crate::query::{Cursor, Facet, Query};
use crate::store::{AuditStore, ChainLink, Checkpoint, Page, StoreError};

/// One of the compiled-in backends.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(crate::sqlite::SqliteStore),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(crate::postgres::PgStore),
}

impl AnyStore {
    /// Connects to `url` (`sqlite://PATH`, `sqlite:PATH`, `postgres://...`, `postgresql://...`) and
    /// applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        #[cfg(feature = "sqlite")]
        if url.starts_with("sqlite:") {
            return Ok(AnyStore::Sqlite(crate::sqlite::SqliteStore::connect(url).await?));
        }
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(AnyStore::Postgres(crate::postgres::PgStore::connect(url).await?));
        }
        Err(StoreError::Url(redact_url(url)))
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite($store) => $call.await,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($store) => $call.await,
        }
    };
}

impl AuditStore for AnyStore {
    async fn head(&self) -> Result<Option<(i64, Hash)>, StoreError> {
        delegate!(self, s => s.head())
    }

    async fn append(&self, batch: &[StoredEvent]) -> Result<(), StoreError> {
        delegate!(self, s => s.append(batch))
    }

    async fn index_pending(&self, limit: usize) -> Result<usize, StoreError> {
        delegate!(self, s => s.index_pending(limit))
    }

    async fn search(&self, query: &Query, limit: usize, cursor: Option<Cursor>) -> Result<Page, StoreError> {
        delegate!(self, s => s.search(query, limit, cursor))
    }

    async fn count_by(
        &self,
        query: &Query,
        facet: Facet,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        delegate!(self, s => s.count_by(query, facet, limit))
    }

    async fn scan(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        delegate!(self, s => s.scan(after, limit))
    }

    async fn scan_chain(&self, after: i64, limit: usize) -> Result<Vec<ChainLink>, StoreError> {
        delegate!(self, s => s.scan_chain(after, limit))
    }

    async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        delegate!(self, s => s.checkpoint())
    }

    async fn delete_through(&self, through: i64, limit: usize) -> Result<u64, StoreError> {
        delegate!(self, s => s.delete_through(through, limit))
    }

    async fn oldest_seq(&self) -> Result<Option<i64>, StoreError> {
        delegate!(self, s => s.oldest_seq())
    }

    async fn first_seq_since(&self, ts_micros: i64) -> Result<Option<i64>, StoreError> {
        delegate!(self, s => s.first_seq_since(ts_micros))
    }

    async fn count(&self) -> Result<u64, StoreError> {
        delegate!(self, s => s.count())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.ping())
    }
}

/// A database URL without its password, for logs and errors.
pub fn redact_url(url: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_left_out_of_urls() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db?x=1"), "postgres://u@h:5432/db?x=1");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact_url("sqlite:///tmp/a@b.db"), "sqlite:///tmp/a@b.db");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
