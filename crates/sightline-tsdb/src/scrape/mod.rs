//! Ingestion: scraping Prometheus-style targets and sampling the local registry.
//!
//! - [`ScrapeManager`] scrapes the targets of Prometheus `scrape_configs` ([`ScrapeConfig`], with
//!   Prometheus's YAML field names, so a block from a `prometheus.yml` pastes in), one tokio task per target,
//!   each at a fixed phase of its interval. It keeps each target's [`TargetStatus`] in the shape of
//!   Prometheus's `/api/v1/targets`, and [`ScrapeManager::apply_config`] replaces the jobs on a reload.
//! - [`LocalCollector`] samples the process's own [`sightline_core::Registry`] every 15 s.
//!
//! # One scrape
//!
//! The body is fetched with `Accept` preferring OpenMetrics, gzip, the `X-Prometheus-Scrape-Timeout-Seconds`
//! header and the job's authentication, within `scrape_timeout` and up to `body_size_limit` (64 MiB when
//! unset). It is parsed by [`parse::Parser`] (Prometheus text 0.0.4 or OpenMetrics 1.0, by `Content-Type`)
//! and appended in one batch: each sample gets the target's `job`, `instance` and static labels
//! (`honor_labels: false` keeps a clashing scraped label as `exported_<name>`), the scrape time unless it
//! carries its own timestamp and `honor_timestamps` is on, and series of the previous scrape that are
//! missing get a staleness marker. The report series `up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling` and `scrape_series_added` are always
//! written.
//!
//! A scrape that times out, fails over HTTP, does not parse, or exceeds `sample_limit`, `label_limit` or
//! `body_size_limit` appends nothing from the body: it writes `up 0`, staleness markers for the last good
//! scrape's series, and keeps the error in the target's status. A removed target's series get staleness
//! markers; on shutdown none are written, so a restart shows no gap.
//!
//! OpenMetrics `_created` series are stored as ordinary series, as Prometheus 3 does by default (without
//! its created-timestamp feature flag); exemplars are ignored.
//!
//! # Why a hand-written parser
//!
//! See [`parse`]: the scrape cache needs each sample's raw series text and no allocation per known series.
//! A 10,000-series scrape is parsed and appended within the 20 ms budget; `benches/scrape.rs` measures it
//! next to `openmetrics-parser` on the same text.

mod client;
mod config;
mod local;
mod manager;
pub mod parse;
mod scrape_loop;

pub use client::ACCEPT_HEADER;
pub use config::{
    Authorization, BasicAuth, ByteSize, ConfigError, DEFAULT_BODY_SIZE_LIMIT, DEFAULT_SCRAPE_INTERVAL,
    DEFAULT_SCRAPE_TIMEOUT, GlobalConfig, PromDuration, Scheme, ScrapeConfig, Secret, StaticConfig,
    TlsConfig, validate_configs,
};
pub use local::{CollectStats, LocalCollector};
pub use manager::{Health, ScrapeManager, TargetStatus};
pub use parse::Format;
pub use scrape_loop::{LoopOptions, ScrapeError, ScrapeLoop, ScrapeStats};
