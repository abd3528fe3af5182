//! The on-disk store: [`Db`], a [`Storage`] with compressed chunks, a WAL, checkpoints and downsampled
//! retention tiers.
//!
//! # Layout in memory
//!
//! - Every series has an id (sequential from 1, never reused, persisted) and a mutex around its data:
//!   closed raw chunks, one open head chunk, and one point list per retention tier. Appends lock only the
//!   series they touch.
//! - Series are found by labels through 16 hash-sharded maps and by id through 16 id-sharded maps
//!   (`RwLock`ed), and by matchers through the postings index (`storage/index.rs`): label name -> value
//!   -> sorted ids, one `RwLock` taken for reading per query and for writing only when a series is
//!   created or dropped.
//! - Chunks (`storage/chunk.rs`) hold at most 120 samples and never span a boundary of the first tier's
//!   resolution (1 h by default), so retention and downsampling work on whole chunks. Timestamps are
//!   Gorilla delta-of-delta; values are Gorilla XOR floats or, when every value of the chunk is an exact
//!   short decimal, scaled integers: a value like `45.6` has no short binary expansion, so Gorilla's XOR
//!   spends 6-7 bytes on it, while its delta as an integer of tenths takes one or two. Only chunks
//!   overlapping a selection are decoded, and the head chunk keeps a decoder state every 32 samples so
//!   that reads of its recent end start there.
//! - Downsampled points are kept as plain structs (56 bytes each): with the default tiers a series holds
//!   at most ~170 hour points and ~30 day points.
//!
//! # Appending
//!
//! [`Appender::append`] checks order against the series (and earlier samples of the batch) and buffers;
//! [`Appender::commit`] writes the batch as one CRC-checked, length-prefixed WAL record (with the
//! definitions of series not logged before) and then applies it, both under the WAL lock so that memory
//! and log agree on order. As in Prometheus, an older timestamp is [`AppendError::OutOfOrder`], the same
//! timestamp with another value is [`AppendError::Duplicate`], and the same timestamp with the same value
//! is accepted silently. A sample before the first tier's aggregated range is [`AppendError::TooOld`].
//!
//! # Persistence
//!
//! `dir/LOCK` is held with an exclusive `flock` while the store is open: a second process (or a second
//! `Db` on the same dir) is refused with an error saying so.
//! `dir/wal/NNNNNNNN` are WAL segments (a new one at each start, at 64 MiB, and at each checkpoint);
//! `dir/checkpoint.NNNNNNNN` is a full snapshot (every series with its chunks and tier points, each series
//! one CRC-checked record) taken when segment `NNNNNNNN` was started: written to a `.tmp` file, fsynced,
//! renamed, and then older segments and checkpoints are deleted. Opening loads the newest checkpoint and
//! replays the segments from its number on; samples already in the checkpoint are skipped by time. A
//! corrupt or truncated record ends the reading of that file: the records before it are kept, and the
//! problem is listed in [`OpenReport`], logged with `tracing::warn!` and counted in
//! `sightline_tsdb_wal_corruptions_total`. WAL writes reach the OS at every commit (a crash of the process
//! loses nothing committed); they are fsynced every [`TsdbOptions::wal_sync`] interval (or at every
//! commit), which bounds what a power loss can take.
//!
//! # Retention tiers
//!
//! [`Db::compact`] (run every [`TsdbOptions::compaction_interval`] by [`Db::spawn_maintenance`])
//! downsamples every complete bucket of raw data into the first tier (1 h points by default), and those
//! into the next (1 d), then drops raw chunks, and tier points, older than their retention once they are
//! rolled up, and finally drops series left with no data. A bucket is complete once a later sample exists
//! or once it ended a whole bucket ago. A point keeps count, sum, min, max and last of its samples
//! (staleness markers left out), and `inc`: the counter increase from the previous sample to its last one,
//! counting drops as resets, as Thanos's counter aggregate does.
//!
//! [`Querier::select`] reads raw samples where the series still has them and, for older parts, the
//! finest tier with points (each source covers whole buckets of the next coarser tier). Downsampled
//! points are stamped with their last sample's time and valued by [`SelectHints::func`]:
//!
//! | function | value |
//! | --- | --- |
//! | `rate`, `increase`, `irate`, `resets`, `changes` | counter: values rebuilt from `inc` so that differences are the true increases and the newest point joins the raw data with its true value |
//! | `min_over_time` / `max_over_time` / `sum_over_time` | min / max / sum |
//! | `count_over_time` | count (per point: a caller wanting the number of raw samples sums them) |
//! | `avg_over_time`, `quantile_over_time`, `stddev_over_time`, `stdvar_over_time` | average (sum / count) |
//! | anything else, and plain selectors | last: a gauge's value at that time |
//!
//! `series`, `label_names` and `label_values` honour matchers through the index and the time range by
//! each series' oldest and newest timestamps.

mod chunk;
mod index;
mod series;
mod wal;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use promql_parser::label::Matcher;

use crate::labels::{Labels, fast_hash};
use crate::sample::Sample;
use crate::traits::{
    AppendError, Appender, Querier, SelectHints, Series, SeriesRef, SeriesSet, Storage, StorageError,
};

use self::index::Index;
use self::series::{AppendOutcome, Layout, Pick, SeriesData};
use self::wal::{Cursor, Put, Wal, io_err};

const SHARDS: usize = 16;
const CHECKPOINT_MAGIC: &[u8] = b"sightline-tsdb-checkpoint";
const CHECKPOINT_VERSION: u64 = 1;

// === Options ===

/// One downsampled tier: points of `resolution` width kept for `retention`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierOptions {
    pub resolution: Duration,
    pub retention: Duration,
}

/// When the WAL is fsynced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalSync {
    /// At every commit (safest, slowest).
    EveryCommit,
    /// By the maintenance task at this interval; commits still reach the OS at once.
    Interval(Duration),
}

/// Settings of a [`Db`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsdbOptions {
    /// How long raw samples are kept (default 24 h).
    pub raw_retention: Duration,
    /// Downsampled tiers, finest first; each resolution a multiple of the previous one (default 1 h points
    /// for 7 d, 1 d points for 30 d). Empty: raw data only.
    pub tiers: Vec<TierOptions>,
    /// How often [`Db::spawn_maintenance`] writes a checkpoint (default 5 min).
    pub checkpoint_interval: Duration,
    /// How often [`Db::spawn_maintenance`] downsamples and applies retention (default 1 min).
    pub compaction_interval: Duration,
    pub wal_sync: WalSync,
    /// A WAL segment is cut when it grows past this many bytes (default 64 MiB).
    pub wal_segment_size: u64,
    /// New series beyond this many are refused (default 5,000,000).
    pub max_series: usize,
    /// A selection matching more series fails with [`StorageError::TooManySeries`] (default 1,000,000).
    pub max_series_per_select: usize,
}

impl Default for TsdbOptions {
    fn default() -> Self {
        const HOUR: u64 = 3600;
        const DAY: u64 = 24 * HOUR;
        Self {
            raw_retention: Duration::from_secs(DAY),
            tiers: vec![
                TierOptions {
                    resolution: Duration::from_secs(HOUR),
                    retention: Duration::from_secs(7 * DAY),
                },
                TierOptions {
                    resolution: Duration::from_secs(DAY),
                    retention: Duration::from_secs(30 * DAY),
                },
            ],
            checkpoint_interval: Duration::from_secs(300),
            compaction_interval: Duration::from_secs(60),
            wal_sync: WalSync::Interval(Duration::from_secs(1)),
            wal_segment_size: 64 << 20,
            max_series: 5_000_000,
            max_series_per_select: 1_000_000,
        }
    }
}

impl TsdbOptions {
    /// Checks the settings; the error says which one to fix.
    pub fn validate(&self) -> Result<(), StorageError> {
        let bad = |msg: String| Err(StorageError::Other(format!("invalid tsdb options: {msg}")));
        let ms = |d: Duration| d.as_millis();
        if ms(self.raw_retention) == 0 {
            return bad("raw_retention must be at least 1 ms".into());
        }
        let mut prev_res = 0u128;
        for (i, tier) in self.tiers.iter().enumerate() {
            let res = ms(tier.resolution);
            if res == 0 || res > i64::MAX as u128 / 4 {
                return bad(format!("tier {i}: resolution must be between 1 ms and a few million years"));
            }
            if prev_res > 0 && (res <= prev_res || res % prev_res != 0) {
                return bad(format!(
                    "tier {i}: resolution {:?} must be a larger multiple of the previous tier's",
                    tier.resolution
                ));
            }
            if ms(tier.retention) < res {
                return bad(format!("tier {i}: retention must be at least one resolution"));
            }
            prev_res = res;
        }
        if let Some(first) = self.tiers.first() {
            if self.raw_retention < first.resolution {
                return bad("raw_retention must be at least the first tier's resolution".into());
            }
        }
        if self.max_series == 0 || self.max_series_per_select == 0 {
            return bad("max_series and max_series_per_select must be positive".into());
        }
        Ok(())
    }

    fn layout(&self) -> Layout {
        let resolutions: Vec<i64> = self.tiers.iter().map(|t| duration_ms(t.resolution)).collect();
        Layout { chunk_range: resolutions.first().copied().unwrap_or(2 * 3600 * 1000), resolutions }
    }

    fn retention(&self) -> Vec<i64> {
        std::iter::once(self.raw_retention)
            .chain(self.tiers.iter().map(|t| t.retention))
            .map(duration_ms)
            .collect()
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, duration_ms)
}

// === Reports ===

/// What [`Db::open`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpenReport {
    /// The number of the checkpoint loaded, if any.
    pub checkpoint: Option<u64>,
    pub series_loaded: usize,
    pub wal_segments_replayed: usize,
    pub wal_records_replayed: usize,
    pub samples_replayed: usize,
    /// Readable problems: corrupt or truncated records (and what was recovered), unknown series.
    pub problems: Vec<String>,
}

/// What one [`Db::compact`] run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompactionReport {
    pub raw_samples_removed: usize,
    pub tier_points_removed: usize,
    pub series_removed: usize,
}

/// Sizes, for tests, benchmarks and the server's status page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DbStats {
    pub series: usize,
    /// Raw samples held (closed chunks and head chunks).
    pub samples: usize,
    pub chunks: usize,
    /// Encoded bytes of all raw chunks.
    pub chunk_bytes: usize,
    pub bytes_per_sample: f64,
    /// Points held per tier, finest first.
    pub tier_points: Vec<usize>,
}

/// The bytes the chunk encoding takes for `samples` (in time order), cut into 120-sample chunks as the
/// head does, and decoded back to check the round trip: for comparisons and capacity planning.
pub fn encoded_size(samples: &[Sample]) -> Result<usize, StorageError> {
    let mut total = 0;
    let mut decoded = 0;
    for part in samples.chunks(usize::from(chunk::MAX_SAMPLES)) {
        let mut enc = chunk::ChunkEncoder::default();
        for s in part {
            enc.append(s.t, s.v);
        }
        let chunk = enc.finish();
        total += chunk.data.len();
        decoded +=
            chunk.iter().zip(part).filter(|(a, b)| a.t == b.t && a.v.to_bits() == b.v.to_bits()).count();
    }
    if decoded != samples.len() {
        return Err(StorageError::Other(
            "the samples did not round-trip through the chunk encoding; pass them in time order".into(),
        ));
    }
    Ok(total)
}

// === Metrics ===

/// Registers descriptions of the store's metrics with the installed `metrics` recorder.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("sightline_tsdb_head_series", "Series held in the store.");
    describe_counter!("sightline_tsdb_samples_appended_total", "Samples committed to the store.");
    describe_counter!(
        "sightline_tsdb_out_of_order_samples_total",
        "Samples refused because they are older than their series' last sample."
    );
    describe_counter!(
        "sightline_tsdb_duplicate_samples_total",
        "Samples refused for a timestamp that already has another value."
    );
    describe_gauge!("sightline_tsdb_samples", "Raw samples held in chunks.");
    describe_gauge!("sightline_tsdb_chunk_bytes", Unit::Bytes, "Encoded bytes of raw chunks.");
    describe_gauge!("sightline_tsdb_tier_points", "Downsampled points held, by tier.");
    describe_counter!("sightline_tsdb_compactions_total", "Downsampling and retention runs.");
    describe_histogram!(
        "sightline_tsdb_compaction_duration_seconds",
        Unit::Seconds,
        "Time taken by downsampling and retention runs."
    );
    describe_counter!("sightline_tsdb_series_removed_total", "Series dropped by retention.");
    describe_counter!(
        "sightline_tsdb_wal_corruptions_total",
        "Corrupt or truncated WAL or checkpoint records found at start."
    );
    describe_counter!("sightline_tsdb_checkpoints_total", "Checkpoints written.");
    describe_histogram!(
        "sightline_tsdb_checkpoint_duration_seconds",
        Unit::Seconds,
        "Time taken to write a checkpoint."
    );
    describe_counter!("sightline_tsdb_wal_bytes_written_total", Unit::Bytes, "Bytes appended to the WAL.");
}

// === Series handles ===

#[derive(Debug)]
struct MemSeries {
    id: u64,
    labels: Labels,
    /// Whether the series' definition is in the WAL since the last checkpoint (or in the checkpoint).
    logged: AtomicBool,
    data: Mutex<SeriesData>,
}

impl MemSeries {
    fn data(&self) -> MutexGuard<'_, SeriesData> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hashes ids (already unique integers) with one multiplication.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A label set with its hash, computed once: the key of the by-labels maps, which are hashed by it alone.
/// Creating a series looks its labels up in two maps and inserts them, and hashing the label texts at
/// each step (with SipHash) was a quarter of a target's first scrape.
#[derive(Debug, Clone)]
struct LabelKey {
    hash: u64,
    labels: Labels,
}

impl LabelKey {
    fn new(labels: &Labels) -> Self {
        Self { hash: fast_hash(labels), labels: labels.clone() }
    }

    /// The by-labels shard, from the hash's top bits (the map's buckets use its low bits).
    fn shard(&self) -> usize {
        (self.hash >> 60) as usize % SHARDS
    }
}

impl PartialEq for LabelKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.labels == other.labels
    }
}

impl Eq for LabelKey {}

impl std::hash::Hash for LabelKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Series ids by label set.
type LabelMap = HashMap<LabelKey, u64, BuildHasherDefault<IdHasher>>;

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// === impl Db ===

/// The store. Thread-safe: share it behind an `Arc`.
#[derive(Debug)]
pub struct Db {
    options: TsdbOptions,
    layout: Layout,
    retention: Vec<i64>,
    by_labels: Box<[RwLock<LabelMap>]>,
    by_id: Box<[RwLock<IdMap<Arc<MemSeries>>>]>,
    index: RwLock<Index>,
    next_id: AtomicU64,
    series_count: AtomicUsize,
    dir: Option<PathBuf>,
    /// The WAL (none in memory); its lock also orders commits.
    wal: Mutex<Option<Wal>>,
    /// Serializes compaction and checkpoints.
    maintenance: Mutex<()>,
    closed: AtomicBool,
    /// Holds an exclusive lock on `dir/LOCK` while the store is open, so two processes never share a dir.
    lock_file: Option<fs::File>,
}

impl Db {
    /// A store without persistence, for tests.
    pub fn in_memory(options: TsdbOptions) -> Result<Self, StorageError> {
        options.validate()?;
        describe_metrics();
        Ok(Self::empty(options, None, None))
    }

    fn empty(options: TsdbOptions, dir: Option<PathBuf>, wal: Option<Wal>) -> Self {
        Self {
            layout: options.layout(),
            retention: options.retention(),
            options,
            by_labels: (0..SHARDS).map(|_| RwLock::default()).collect(),
            by_id: (0..SHARDS).map(|_| RwLock::default()).collect(),
            index: RwLock::default(),
            next_id: AtomicU64::new(1),
            series_count: AtomicUsize::new(0),
            dir,
            wal: Mutex::new(wal),
            maintenance: Mutex::new(()),
            closed: AtomicBool::new(false),
            lock_file: None,
        }
    }

    /// Opens (or creates) the store in `dir`: loads the newest checkpoint and replays the WAL after it.
    /// Corrupt or truncated data is reported in the [`OpenReport`] and the readable part kept; only I/O
    /// errors (and bad options) fail.
    pub fn open(dir: &Path, options: TsdbOptions) -> Result<(Self, OpenReport), StorageError> {
        options.validate()?;
        describe_metrics();
        let wal_dir = dir.join("wal");
        fs::create_dir_all(&wal_dir).map_err(|e| io_err(&wal_dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        if let Err(e) = rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            return Err(StorageError::Other(format!(
                "the data dir {} is in use by another process ({e}); stop it or choose another data dir",
                dir.display()
            )));
        }
        let mut db = Self::empty(options, Some(dir.to_owned()), None);
        db.lock_file = Some(lock_file);
        let mut report = OpenReport::default();

        let boundary = db.load_checkpoint(dir, &mut report)?;
        let segments = wal::list_segments(&wal_dir)?;
        let mut aliases: IdMap<Arc<MemSeries>> = IdMap::default();
        for &n in &segments {
            let path = wal::segment_path(&wal_dir, n);
            if boundary.is_some_and(|b| n < b) {
                // Left over from an interrupted clean-up: its content is in the checkpoint.
                let _ = fs::remove_file(&path);
                continue;
            }
            let data = fs::read(&path).map_err(|e| io_err(&path, e))?;
            db.replay_segment(n, &data, &mut aliases, &mut report);
        }
        let next_segment = segments.last().map_or(1, |&n| n + 1).max(boundary.unwrap_or(1));
        *lock(&db.wal) = Some(Wal::create(&wal_dir, next_segment)?);
        for problem in &report.problems {
            tracing::warn!(dir = %dir.display(), "tsdb recovery: {problem}");
        }
        metrics::gauge!("sightline_tsdb_head_series").set(db.series_count.load(Ordering::Relaxed) as f64);
        db.publish_stats();
        Ok((db, report))
    }

    fn load_checkpoint(&mut self, dir: &Path, report: &mut OpenReport) -> Result<Option<u64>, StorageError> {
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            if let Some(n) = name.strip_prefix("checkpoint.").and_then(|s| s.parse::<u64>().ok()) {
                found.push((n, entry.path()));
            }
        }
        found.sort_unstable_by_key(|(n, _)| std::cmp::Reverse(*n));
        for (n, path) in found {
            let data = fs::read(&path).map_err(|e| io_err(&path, e))?;
            if self.read_checkpoint(n, &data, report) {
                report.checkpoint = Some(n);
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    /// Loads one checkpoint; false when not even its header is readable.
    fn read_checkpoint(&mut self, n: u64, data: &[u8], report: &mut OpenReport) -> bool {
        let records = wal::read_records(data);
        let mut payloads = records.payloads.iter();
        let header = payloads.next().and_then(|p| {
            let mut c = Cursor::new(p);
            let magic = c.bytes()?;
            let version = c.uvarint()?;
            let next_id = c.uvarint()?;
            (magic == CHECKPOINT_MAGIC && version == CHECKPOINT_VERSION).then_some(next_id)
        });
        let Some(next_id) = header else {
            metrics::counter!("sightline_tsdb_wal_corruptions_total").increment(1);
            report.problems.push(format!("checkpoint {n}: unreadable header, checkpoint skipped"));
            return false;
        };
        self.next_id.fetch_max(next_id, Ordering::Relaxed);
        let tiers = self.options.tiers.len();
        let mut loaded = 0;
        for (i, p) in payloads.enumerate() {
            let mut c = Cursor::new(p);
            let decoded = (|| {
                let id = c.uvarint()?;
                let labels = c.labels()?;
                let data = SeriesData::decode(&mut c, tiers, &self.layout)?;
                Some((id, labels, data))
            })();
            match decoded {
                Some((id, labels, data)) => {
                    self.insert_series(id, labels, data, true);
                    loaded += 1;
                }
                None => {
                    report.problems.push(format!("checkpoint {n}: series record {i} is malformed, skipped"))
                }
            }
        }
        if let Some((at, why)) = records.error {
            metrics::counter!("sightline_tsdb_wal_corruptions_total").increment(1);
            report.problems.push(format!("checkpoint {n}: {why} at byte {at}, {loaded} series recovered"));
        }
        report.series_loaded += loaded;
        true
    }

    fn replay_segment(
        &self,
        n: u64,
        data: &[u8],
        aliases: &mut IdMap<Arc<MemSeries>>,
        report: &mut OpenReport,
    ) {
        let records = wal::read_records(data);
        let mut replayed = 0;
        let mut unknown = 0usize;
        for payload in &records.payloads {
            let Some(rec) = wal::decode_commit(payload) else {
                report.problems.push(format!(
                    "wal segment {n}: record {replayed} is malformed, {replayed} records recovered"
                ));
                metrics::counter!("sightline_tsdb_wal_corruptions_total").increment(1);
                return;
            };
            for (id, labels) in rec.series {
                if self.get_by_id(id).is_some() {
                    continue;
                }
                match self.lookup(&labels) {
                    // The series was dropped and created again under a new id before this segment ended.
                    Some(existing) => {
                        aliases.insert(id, existing);
                    }
                    None => {
                        self.insert_series(id, labels, SeriesData::new(self.options.tiers.len()), true);
                    }
                }
            }
            for (id, t, v) in rec.samples {
                let Some(series) = aliases.get(&id).cloned().or_else(|| self.get_by_id(id)) else {
                    unknown += 1;
                    continue;
                };
                if series.data().append(t, v, &self.layout) == AppendOutcome::Appended {
                    report.samples_replayed += 1;
                }
            }
            replayed += 1;
        }
        report.wal_segments_replayed += 1;
        report.wal_records_replayed += replayed;
        if unknown > 0 {
            report.problems.push(format!("wal segment {n}: {unknown} samples of unknown series skipped"));
        }
        if let Some((at, why)) = records.error {
            metrics::counter!("sightline_tsdb_wal_corruptions_total").increment(1);
            report
                .problems
                .push(format!("wal segment {n}: {why} at byte {at}, {replayed} records recovered"));
        }
    }

    fn insert_series(&self, id: u64, labels: Labels, data: SeriesData, logged: bool) -> Arc<MemSeries> {
        let series = Arc::new(MemSeries {
            id,
            labels: labels.clone(),
            logged: AtomicBool::new(logged),
            data: Mutex::new(data),
        });
        let key = LabelKey::new(&labels);
        let mut by_labels = write(&self.by_labels[key.shard()]);
        write(&self.by_id[id_shard(id)]).insert(id, Arc::clone(&series));
        by_labels.insert(key, id);
        drop(by_labels);
        write(&self.index).add(id, &series.labels);
        self.series_count.fetch_add(1, Ordering::Relaxed);
        self.next_id.fetch_max(id + 1, Ordering::Relaxed);
        series
    }

    fn get_by_id(&self, id: u64) -> Option<Arc<MemSeries>> {
        read(&self.by_id[id_shard(id)]).get(&id).cloned()
    }

    fn lookup(&self, labels: &Labels) -> Option<Arc<MemSeries>> {
        self.lookup_key(&LabelKey::new(labels))
    }

    fn lookup_key(&self, key: &LabelKey) -> Option<Arc<MemSeries>> {
        let id = *read(&self.by_labels[key.shard()]).get(key)?;
        self.get_by_id(id)
    }

    fn get_or_create(&self, labels: &Labels) -> Result<Arc<MemSeries>, AppendError> {
        let key = LabelKey::new(labels);
        if let Some(s) = self.lookup_key(&key) {
            return Ok(s);
        }
        validate_labels(labels)?;
        let mut by_labels = write(&self.by_labels[key.shard()]);
        if let Some(&id) = by_labels.get(&key) {
            if let Some(s) = self.get_by_id(id) {
                return Ok(s);
            }
        }
        if self.series_count.load(Ordering::Relaxed) >= self.options.max_series {
            return Err(AppendError::Refused(format!(
                "the store holds its maximum of {} series; raise max_series or drop labels with many values",
                self.options.max_series
            )));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let series = Arc::new(MemSeries {
            id,
            labels: labels.clone(),
            logged: AtomicBool::new(false),
            data: Mutex::new(SeriesData::new(self.options.tiers.len())),
        });
        write(&self.by_id[id_shard(id)]).insert(id, Arc::clone(&series));
        by_labels.insert(key, id);
        drop(by_labels);
        write(&self.index).add(id, labels);
        // The head-series gauge is set once per batch, by the appender (a registry lookup per new series
        // was a tenth of a target's first scrape).
        self.series_count.fetch_add(1, Ordering::Relaxed);
        Ok(series)
    }

    /// All series handles (a snapshot).
    fn all_series(&self) -> Vec<Arc<MemSeries>> {
        let mut out = Vec::with_capacity(self.series_count.load(Ordering::Relaxed));
        for shard in self.by_id.iter() {
            out.extend(read(shard).values().cloned());
        }
        out
    }

    /// Handles for `ids`, taking each shard's lock once; grouped by shard, in id order within a shard.
    fn resolve(&self, ids: &[u64]) -> Vec<Arc<MemSeries>> {
        let mut out = Vec::with_capacity(ids.len());
        for (i, shard) in self.by_id.iter().enumerate() {
            let map = read(shard);
            out.extend(ids.iter().filter(|&&id| id_shard(id) == i).filter_map(|id| map.get(id).cloned()));
        }
        out
    }

    /// Downsamples complete buckets, applies retention as of `now_ms` (milliseconds since the epoch) and
    /// drops empty series. Safe to run while appending and querying.
    pub fn compact(&self, now_ms: i64) -> CompactionReport {
        let _m = lock(&self.maintenance);
        let started = Instant::now();
        let mut report = CompactionReport::default();
        let mut empty = Vec::new();
        for series in self.all_series() {
            let mut data = series.data();
            let (samples, points) = data.compact(now_ms, &self.layout, &self.retention);
            report.raw_samples_removed += samples;
            report.tier_points_removed += points;
            if data.is_empty() {
                empty.push(series.id);
            }
        }
        for id in empty {
            if self.remove_if_empty(id) {
                report.series_removed += 1;
            }
        }
        metrics::counter!("sightline_tsdb_compactions_total").increment(1);
        metrics::counter!("sightline_tsdb_series_removed_total").increment(report.series_removed as u64);
        metrics::histogram!("sightline_tsdb_compaction_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        self.publish_stats();
        report
    }

    fn remove_if_empty(&self, id: u64) -> bool {
        let Some(series) = self.get_by_id(id) else { return false };
        let key = LabelKey::new(&series.labels);
        let mut by_labels = write(&self.by_labels[key.shard()]);
        let mut by_id = write(&self.by_id[id_shard(id)]);
        // Checked under the map locks, where no appender can find the series: a handle held elsewhere
        // (an appender that created it and has not committed yet, a running query) keeps it.
        if Arc::strong_count(&series) > 2 || !series.data().is_empty() {
            return false;
        }
        by_id.remove(&id);
        by_labels.remove(&key);
        drop(by_id);
        drop(by_labels);
        write(&self.index).remove(id, &series.labels);
        let count = self.series_count.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        metrics::gauge!("sightline_tsdb_head_series").set(count as f64);
        true
    }

    /// Writes a checkpoint and drops the WAL segments it covers. A no-op in memory.
    pub fn checkpoint(&self) -> Result<(), StorageError> {
        let Some(dir) = self.dir.clone() else { return Ok(()) };
        let _m = lock(&self.maintenance);
        let started = Instant::now();
        let boundary = match lock(&self.wal).as_mut() {
            Some(wal) => wal.cut()?,
            None => return Err(StorageError::Closed),
        };
        let path = dir.join(format!("checkpoint.{boundary:08}"));
        let tmp = dir.join(format!("checkpoint.{boundary:08}.tmp"));
        let result = self.write_checkpoint(&tmp);
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        wal::sync_dir(&dir)?;
        // The checkpoint holds everything before `boundary`: older segments and checkpoints can go.
        let wal_dir = dir.join("wal");
        for n in wal::list_segments(&wal_dir)? {
            if n < boundary {
                let p = wal::segment_path(&wal_dir, n);
                fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
            }
        }
        for entry in fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?.flatten() {
            let name = entry.file_name();
            let old = name
                .to_str()
                .and_then(|s| s.strip_prefix("checkpoint."))
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|n| n < boundary);
            if old {
                let p = entry.path();
                fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
            }
        }
        metrics::counter!("sightline_tsdb_checkpoints_total").increment(1);
        metrics::histogram!("sightline_tsdb_checkpoint_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    fn write_checkpoint(&self, tmp: &Path) -> Result<(), StorageError> {
        let file = fs::File::create(tmp).map_err(|e| io_err(tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut payload = Vec::with_capacity(4096);
        let mut framed = Vec::with_capacity(4096);
        payload.put_bytes(CHECKPOINT_MAGIC);
        payload.put_uvarint(CHECKPOINT_VERSION);
        payload.put_uvarint(self.next_id.load(Ordering::Relaxed));
        wal::frame(&mut framed, &payload);
        out.write_all(&framed).map_err(|e| io_err(tmp, e))?;
        let mut series = self.all_series();
        series.sort_unstable_by_key(|s| s.id);
        for s in series {
            payload.clear();
            framed.clear();
            payload.put_uvarint(s.id);
            payload.put_labels(&s.labels);
            s.data().encode(&mut payload);
            wal::frame(&mut framed, &payload);
            out.write_all(&framed).map_err(|e| io_err(tmp, e))?;
        }
        let file = out.into_inner().map_err(|e| io_err(tmp, e.into_error()))?;
        file.sync_all().map_err(|e| io_err(tmp, e))
    }

    /// Fsyncs the WAL.
    pub fn sync(&self) -> Result<(), StorageError> {
        match lock(&self.wal).as_mut() {
            Some(wal) => wal.sync(),
            None => Ok(()),
        }
    }

    /// Refuses further commits and writes a final checkpoint (so the next open replays nothing).
    pub fn close(&self) -> Result<(), StorageError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.checkpoint()?;
        self.sync()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn options(&self) -> &TsdbOptions {
        &self.options
    }

    /// Current sizes (walks every series).
    pub fn stats(&self) -> DbStats {
        let mut stats = DbStats { tier_points: vec![0; self.options.tiers.len()], ..DbStats::default() };
        for series in self.all_series() {
            let data = series.data();
            stats.series += 1;
            stats.samples += data.raw_samples();
            stats.chunk_bytes += data.raw_bytes();
            stats.chunks += data.chunks.len() + usize::from(data.head.count() > 0);
            for (i, tier) in data.tiers.iter().enumerate() {
                stats.tier_points[i] += tier.points.len();
            }
        }
        stats.bytes_per_sample =
            if stats.samples == 0 { 0.0 } else { stats.chunk_bytes as f64 / stats.samples as f64 };
        stats
    }

    fn publish_stats(&self) {
        let stats = self.stats();
        metrics::gauge!("sightline_tsdb_samples").set(stats.samples as f64);
        metrics::gauge!("sightline_tsdb_chunk_bytes").set(stats.chunk_bytes as f64);
        for (i, n) in stats.tier_points.iter().enumerate() {
            metrics::gauge!("sightline_tsdb_tier_points", "tier" => (i + 1).to_string()).set(*n as f64);
        }
    }

    /// Runs compaction, checkpoints and WAL syncs at their intervals until the store is dropped or
    /// closed. Needs a Tokio runtime; the work itself runs on the blocking pool.
    pub fn spawn_maintenance(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let opts = self.options.clone();
        let sync_every = match opts.wal_sync {
            WalSync::Interval(d) => Some(d),
            WalSync::EveryCommit => None,
        };
        let tick = [Some(opts.compaction_interval), Some(opts.checkpoint_interval), sync_every]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut last_compact, mut last_checkpoint, mut last_sync) =
                (Instant::now(), Instant::now(), Instant::now());
            loop {
                interval.tick().await;
                let Some(db) = weak.upgrade() else { break };
                if db.is_closed() {
                    break;
                }
                let compact = last_compact.elapsed() >= opts.compaction_interval;
                let checkpoint = last_checkpoint.elapsed() >= opts.checkpoint_interval;
                let sync = sync_every.is_some_and(|d| last_sync.elapsed() >= d);
                if !(compact || checkpoint || sync) {
                    continue;
                }
                let job = tokio::task::spawn_blocking(move || {
                    if sync {
                        if let Err(e) = db.sync() {
                            tracing::warn!(error = %e, "tsdb: WAL sync failed");
                        }
                    }
                    if compact {
                        db.compact(now_ms());
                    }
                    if checkpoint {
                        if let Err(e) = db.checkpoint() {
                            tracing::warn!(error = %e, "tsdb: checkpoint failed; the WAL keeps the data meanwhile");
                        }
                    }
                });
                if job.await.is_err() {
                    tracing::warn!("tsdb: maintenance job panicked");
                }
                let now = Instant::now();
                if compact {
                    last_compact = now;
                }
                if checkpoint {
                    last_checkpoint = now;
                }
                if sync {
                    last_sync = now;
                }
            }
        })
    }

    /// The series matching `matchers` with data in `[start, end]`.
    fn matching(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Arc<MemSeries>>, StorageError> {
        let ids = read(&self.index).select(matchers);
        if ids.len() > self.options.max_series_per_select {
            return Err(StorageError::TooManySeries { limit: self.options.max_series_per_select });
        }
        let mut series = self.resolve(&ids);
        series.retain(|s| s.data().overlaps(start, end));
        Ok(series)
    }

    fn commit(&self, batch: Vec<Pending>) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.is_closed() {
            return Err(StorageError::Closed);
        }
        let mut wal = lock(&self.wal);
        if let Some(w) = wal.as_mut() {
            let mut defs: Vec<(u64, &Labels)> = Vec::new();
            let mut newly_logged: Vec<&MemSeries> = Vec::new();
            for p in &batch {
                if !p.series.logged.swap(true, Ordering::Relaxed) {
                    defs.push((p.series.id, &p.series.labels));
                    newly_logged.push(&p.series);
                }
            }
            let samples: Vec<(u64, i64, f64)> = batch.iter().map(|p| (p.series.id, p.t, p.v)).collect();
            let mut payload = Vec::with_capacity(16 + samples.len() * 14);
            wal::encode_commit(&mut payload, &defs, &samples);
            let mut framed = Vec::with_capacity(payload.len() + 8);
            wal::frame(&mut framed, &payload);
            let written = w
                .write(&framed)
                .and_then(|()| if self.options.wal_sync == WalSync::EveryCommit { w.sync() } else { Ok(()) });
            if let Err(e) = written {
                for s in newly_logged {
                    s.logged.store(false, Ordering::Relaxed);
                }
                return Err(e);
            }
            metrics::counter!("sightline_tsdb_wal_bytes_written_total").increment(framed.len() as u64);
            if w.size() >= self.options.wal_segment_size {
                w.cut()?;
            }
        }
        let mut appended = 0u64;
        let mut refused = 0u64;
        for p in &batch {
            // Another appender may have committed to the series since `append` checked.
            match p.series.data().append(p.t, p.v, &self.layout) {
                AppendOutcome::Appended => appended += 1,
                AppendOutcome::Duplicate => {}
                AppendOutcome::OutOfOrder | AppendOutcome::Conflict => refused += 1,
            }
        }
        drop(wal);
        metrics::counter!("sightline_tsdb_samples_appended_total").increment(appended);
        if refused > 0 {
            metrics::counter!("sightline_tsdb_out_of_order_samples_total").increment(refused);
        }
        Ok(())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(wal) = lock(&self.wal).as_mut() {
            if let Err(e) = wal.sync() {
                tracing::warn!(error = %e, "tsdb: WAL sync at shutdown failed");
            }
        }
    }
}

fn id_shard(id: u64) -> usize {
    (id % SHARDS as u64) as usize
}

fn validate_labels(labels: &Labels) -> Result<(), AppendError> {
    let invalid = |reason: &str| {
        Err(AppendError::InvalidLabels { labels: labels.to_string(), reason: reason.to_owned() })
    };
    if labels.is_empty() {
        return invalid("a series needs at least one label");
    }
    if labels.iter().any(|l| l.name.is_empty()) {
        return invalid("label names must not be empty");
    }
    Ok(())
}

// === impl Querier for Db ===

/// A selection of [`Db`] series whose chunks are decoded when a series is read.
struct DbSeriesSet<'a> {
    db: &'a Db,
    series: Vec<Arc<MemSeries>>,
    start: i64,
    end: i64,
    pick: Pick,
}

impl DbSeriesSet<'_> {
    /// Appends series `i`'s samples to `out`.
    fn read_into(&self, i: usize, out: &mut Vec<Sample>) {
        self.series[i].data().read(self.start, self.end, self.pick, &self.db.layout, out);
    }
}

impl SeriesSet for DbSeriesSet<'_> {
    fn len(&self) -> usize {
        self.series.len()
    }

    fn labels(&self, i: usize) -> &Labels {
        &self.series[i].labels
    }

    fn read(&self, i: usize, out: &mut Vec<Sample>) {
        out.clear();
        self.read_into(i, out);
    }
}

impl Db {
    fn select_set(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<DbSeriesSet<'_>, StorageError> {
        let ids = read(&self.index).select(matchers);
        if ids.len() > self.options.max_series_per_select {
            return Err(StorageError::TooManySeries { limit: self.options.max_series_per_select });
        }
        Ok(DbSeriesSet {
            db: self,
            series: self.resolve(&ids),
            start: hints.start,
            end: hints.end,
            pick: Pick::for_func(hints.func.as_deref()),
        })
    }
}

impl Querier for Db {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<Series>, StorageError> {
        let set = self.select_set(matchers, hints)?;
        let mut out = Vec::with_capacity(set.len());
        let mut samples: Vec<Sample> = Vec::new();
        for i in 0..set.len() {
            set.read_into(i, &mut samples);
            if !samples.is_empty() {
                // The buffer is handed over rather than copied; the read sizes the next one.
                out.push(Series { labels: set.labels(i).clone(), samples: std::mem::take(&mut samples) });
            }
        }
        Ok(out)
    }

    fn select_lazy<'a>(
        &'a self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Box<dyn SeriesSet + 'a>, StorageError> {
        Ok(Box::new(self.select_set(matchers, hints)?))
    }

    fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, StorageError> {
        let mut out: Vec<Labels> =
            self.matching(matchers, start, end)?.iter().map(|s| s.labels.clone()).collect();
        out.sort();
        Ok(out)
    }

    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, StorageError> {
        let mut names = std::collections::BTreeSet::new();
        for s in self.matching(matchers, start, end)? {
            for l in &s.labels {
                if !names.contains(l.name.as_str()) {
                    names.insert(l.name.clone());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, StorageError> {
        if matchers.is_empty() {
            // Walk the postings of `name` and keep the values some series has data for.
            let index = read(&self.index);
            let candidates: Vec<(String, Vec<u64>)> =
                index.values(name).map(|(v, ids)| (v.to_owned(), ids.to_vec())).collect();
            drop(index);
            return Ok(candidates
                .into_iter()
                .filter(|(_, ids)| {
                    ids.iter().any(|&id| self.get_by_id(id).is_some_and(|s| s.data().overlaps(start, end)))
                })
                .map(|(v, _)| v)
                .collect());
        }
        let mut values: Vec<String> = self
            .matching(matchers, start, end)?
            .iter()
            .filter_map(|s| s.labels.get(name).map(str::to_owned))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}

impl Storage for Db {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(DbAppender { db: self, batch: Vec::new(), last: IdMap::default(), created: false })
    }
}

// === impl DbAppender ===

#[derive(Debug)]
struct Pending {
    series: Arc<MemSeries>,
    t: i64,
    v: f64,
}

/// A batch for [`Db`]: checked at append, logged and applied at commit.
#[derive(Debug)]
struct DbAppender<'a> {
    db: &'a Db,
    batch: Vec<Pending>,
    /// The last sample buffered per series, for order checks within the batch.
    last: IdMap<(i64, f64)>,
    /// Whether this batch created series (the head-series gauge is updated when it ends).
    created: bool,
}

impl Drop for DbAppender<'_> {
    fn drop(&mut self) {
        if self.created {
            let count = self.db.series_count.load(Ordering::Relaxed);
            metrics::gauge!("sightline_tsdb_head_series").set(count as f64);
        }
    }
}

impl Appender for DbAppender<'_> {
    fn append(
        &mut self,
        series: SeriesRef,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, AppendError> {
        let known = if series == 0 { None } else { self.db.get_by_id(series) };
        let s = match known {
            Some(s) => s,
            None => {
                // Set even when the series existed: a lookup that finds it is as rare as a creation.
                self.created = true;
                self.db.get_or_create(labels)?
            }
        };
        let outcome = match self.last.get(&s.id) {
            Some(&(lt, lv)) => {
                if t > lt {
                    AppendOutcome::Appended
                } else if t < lt {
                    AppendOutcome::OutOfOrder
                } else if v.to_bits() == lv.to_bits() {
                    AppendOutcome::Duplicate
                } else {
                    AppendOutcome::Conflict
                }
            }
            None => {
                let data = s.data();
                if let Some(min) =
                    data.tiers.first().map(|t| t.done_until).filter(|&m| t < m && m != i64::MIN)
                {
                    return Err(AppendError::TooOld { labels: s.labels.to_string(), t, min });
                }
                data.check(t, v)
            }
        };
        match outcome {
            AppendOutcome::Appended => {
                self.last.insert(s.id, (t, v));
                let id = s.id;
                self.batch.push(Pending { series: s, t, v });
                Ok(id)
            }
            AppendOutcome::Duplicate => Ok(s.id),
            AppendOutcome::OutOfOrder => {
                metrics::counter!("sightline_tsdb_out_of_order_samples_total").increment(1);
                let last = self.last.get(&s.id).map_or_else(|| s.data().last_t, |x| x.0);
                Err(AppendError::OutOfOrder { labels: s.labels.to_string(), t, last })
            }
            AppendOutcome::Conflict => {
                metrics::counter!("sightline_tsdb_duplicate_samples_total").increment(1);
                Err(AppendError::Duplicate { labels: s.labels.to_string(), t })
            }
        }
    }

    fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        self.db.commit(std::mem::take(&mut self.batch))
    }

    fn rollback(self: Box<Self>) {}
}
