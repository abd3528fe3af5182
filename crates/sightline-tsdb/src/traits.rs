//! The seams between the parts of the crate: the engine reads through [`Querier`], scrapers and the local
//! collector write through [`Appender`], and [`Storage`] is both. The on-disk store
//! ([`crate::storage::Db`]) and the in-memory [`crate::mem::MemStorage`] implement them.

use promql_parser::label::Matcher;

use crate::labels::Labels;
use crate::sample::Sample;

/// A series' samples in a time range, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// What a selection is for. Stores that keep downsampled tiers use it to pick the aggregate to return
/// (the counter aggregate for `rate`, `max` for `max_over_time`, ...), as Prometheus's `SelectHints` do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectHints {
    /// First timestamp wanted, inclusive, in milliseconds.
    pub start: i64,
    /// Last timestamp wanted, inclusive, in milliseconds.
    pub end: i64,
    /// The query step in milliseconds (0 for an instant query).
    pub step: i64,
    /// The function the selection feeds, if any (`rate`, `max_over_time`, ...).
    pub func: Option<String>,
    /// The range of a range selector in milliseconds (0 for an instant selector).
    pub range: i64,
}

impl SelectHints {
    /// Hints for a plain read of `[start, end]`.
    pub fn range(start: i64, end: i64) -> Self {
        Self { start, end, ..Self::default() }
    }
}

/// Errors reading or writing a store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O error at {path}: {source}; check that the data dir is writable and not full")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the selection matches more than {limit} series; add label matchers to narrow it")]
    TooManySeries { limit: usize },
    #[error("the store is closed")]
    Closed,
    #[error("{0}")]
    Other(String),
}

/// The series of one selection, whose samples are read one series at a time, on demand: what
/// [`Querier::select_lazy`] returns. A range function reads each series into one reused buffer and slides
/// its windows over it, so a query over many samples never holds them all. Shared between the threads
/// that evaluate a query, which read disjoint series.
pub trait SeriesSet: Send + Sync {
    /// The number of series selected. Some may have no sample in the range.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels of series `i` (`i < len()`).
    fn labels(&self, i: usize) -> &Labels;

    /// Replaces the contents of `out` with the samples of series `i` in the selection's range, oldest
    /// first, with the values [`Querier::select`] would give (staleness markers included).
    fn read(&self, i: usize, out: &mut Vec<Sample>);
}

/// A materialised selection is a [`SeriesSet`] too: the default of [`Querier::select_lazy`].
impl SeriesSet for Vec<Series> {
    fn len(&self) -> usize {
        <[Series]>::len(self)
    }

    fn labels(&self, i: usize) -> &Labels {
        &self[i].labels
    }

    fn read(&self, i: usize, out: &mut Vec<Sample>) {
        out.clear();
        out.extend_from_slice(&self[i].samples);
    }
}

/// Reads series. Implementations are shared between query threads.
pub trait Querier: Send + Sync {
    /// Series whose labels match every matcher, with their samples in `[hints.start, hints.end]`. Series
    /// with no sample in the range may be left out. Staleness markers are returned as samples.
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<Series>, StorageError>;

    /// The same selection as [`Querier::select`], with each series' samples read only when asked for.
    /// Series with no sample in the range may be included (reading them gives nothing). The default
    /// materialises `select`; a store that decodes chunks overrides it so that a query need not hold
    /// every sample at once.
    fn select_lazy<'a>(
        &'a self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Box<dyn SeriesSet + 'a>, StorageError> {
        Ok(Box::new(self.select(matchers, hints)?))
    }

    /// Label sets of series matching every matcher that have samples in `[start, end]`, sorted.
    fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, StorageError>;

    /// Label names of series matching the matchers (all series when empty) in `[start, end]`, sorted.
    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, StorageError>;

    /// Values of label `name` over series matching the matchers (all when empty) in `[start, end]`, sorted.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, StorageError>;
}

/// A store's reference to a series, returned by [`Appender::append`] so that the next append of the same
/// series skips the label lookup. `0` means "unknown".
pub type SeriesRef = u64;

/// Why one sample was not appended. The caller counts these and goes on with the rest of its batch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppendError {
    #[error("out of order sample: {labels} at {t} is older than its last sample at {last}")]
    OutOfOrder { labels: String, t: i64, last: i64 },
    #[error("duplicate sample for timestamp: {labels} at {t} already has a different value")]
    Duplicate { labels: String, t: i64 },
    #[error("sample too old: {labels} at {t} is before the head's minimum time {min}")]
    TooOld { labels: String, t: i64, min: i64 },
    #[error("invalid labels {labels}: {reason}")]
    InvalidLabels { labels: String, reason: String },
    #[error("the store refused the batch: {0}")]
    Refused(String),
}

/// A batch of appends, visible to queries once committed.
pub trait Appender: Send {
    /// Appends one sample. `series` is a reference from an earlier append (or 0); when the store knows it,
    /// `labels` is not looked at. Returns the series' reference.
    fn append(
        &mut self,
        series: SeriesRef,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, AppendError>;

    /// Makes the batch visible and durable (as durable as the store promises: logged before it returns).
    fn commit(self: Box<Self>) -> Result<(), StorageError>;

    /// Drops the batch.
    fn rollback(self: Box<Self>);
}

/// A store that can be read and written.
pub trait Storage: Querier {
    /// Starts a batch.
    fn appender(&self) -> Box<dyn Appender + '_>;
}

/// Whether every matcher matches `labels` (a missing label matches as the empty string, as in Prometheus).
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))
}
