//! A time-series memory for Rust services and for the `sightline` server: samples from the local
//! registry and from scrape targets, kept in compressed chunks with retention tiers, queried with PromQL.
//!
//! # Concepts
//!
//! - A series is a [`Labels`] set (the metric name is the `__name__` label) with [`Sample`]s in time order.
//!   A NaN with Prometheus's staleness bit pattern ([`sample::stale_nan`]) marks a series as gone.
//! - [`Querier`] reads series, [`Appender`] writes them, [`Storage`] is both. [`mem::MemStorage`] is a
//!   small in-memory store for tests.
//! - [`promql::Engine`] evaluates instant and range queries over any [`Querier`].

pub mod labels;
pub mod mem;
pub mod promql;
pub mod sample;
pub mod scrape;
pub mod storage;
mod traits;
pub mod unittest;

pub use labels::{Label, Labels};
pub use sample::Sample;
pub use traits::{
    AppendError, Appender, Querier, SelectHints, Series, SeriesRef, SeriesSet, Storage, StorageError,
    matches_all,
};
