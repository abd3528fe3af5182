use std::sync::Arc;
use std::time::Duration;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token::{T_EQL_REGEX, T_NEQ_REGEX};
use sightline_testkit::TempDir;

use super::*;
use crate::sample::{is_stale, stale_nan};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2023-11-14T22:13:20Z, a fixed "now" so tests do not depend on the clock.
const T0: i64 = 1_700_000_000_000;

fn labels(name: &str, job: &str, instance: &str) -> Labels {
    Labels::from_pairs(&[("__name__", name), ("job", job), ("instance", instance)])
}

fn eq(name: &str, value: &str) -> Matcher {
    Matcher::new(MatchOp::Equal, name, value)
}

fn append_all(db: &Db, series: &Labels, samples: impl IntoIterator<Item = (i64, f64)>) {
    let mut app = db.appender();
    let mut r = 0;
    for (t, v) in samples {
        r = app.append(r, series, t, v).expect("append");
    }
    app.commit().expect("commit");
}

fn select_all(db: &Db, matchers: &[Matcher], start: i64, end: i64) -> Vec<Series> {
    let mut got = db.select(matchers, &SelectHints::range(start, end)).expect("select");
    got.sort_by(|a, b| a.labels.cmp(&b.labels));
    got
}

fn values(series: &Series) -> Vec<(i64, f64)> {
    series.samples.iter().map(|s| (s.t, s.v)).collect()
}

/// Options whose maintenance never fires on its own during a test.
fn quiet_options() -> TsdbOptions {
    TsdbOptions {
        checkpoint_interval: Duration::from_secs(3600),
        compaction_interval: Duration::from_secs(3600),
        ..TsdbOptions::default()
    }
}

#[test]
fn appends_are_visible_after_commit_and_ranges_filter() {
    let db = Db::in_memory(quiet_options()).expect("db");
    let a = labels("up", "node", "a");
    let mut app = db.appender();
    let r = app.append(0, &a, T0, 1.0).expect("append");
    assert!(r != 0);
    assert_eq!(app.append(r, &a, T0 + 15_000, 0.0).expect("append by ref"), r);
    assert!(select_all(&db, &[], 0, i64::MAX).is_empty(), "nothing visible before commit");
    app.commit().expect("commit");
    let got = select_all(&db, &[eq("__name__", "up")], T0, T0 + 15_000);
    assert_eq!(got.len(), 1);
    assert_eq!(values(&got[0]), [(T0, 1.0), (T0 + 15_000, 0.0)]);
    assert_eq!(values(&select_all(&db, &[], T0 + 1, T0 + 20_000)[0]), [(T0 + 15_000, 0.0)]);
    assert!(select_all(&db, &[], T0 + 15_001, T0 + 99_000).is_empty());
}

#[test]
fn rollback_discards_the_batch() {
    let db = Db::in_memory(quiet_options()).expect("db");
    let a = labels("up", "node", "a");
    let mut app = db.appender();
    app.append(0, &a, T0, 1.0).expect("append");
    app.rollback();
    assert!(select_all(&db, &[], 0, i64::MAX).is_empty());
    append_all(&db, &a, [(T0, 2.0)]);
    assert_eq!(values(&select_all(&db, &[], 0, i64::MAX)[0]), [(T0, 2.0)]);
}

#[test]
fn out_of_order_and_duplicates_follow_prometheus() {
    let db = Db::in_memory(quiet_options()).expect("db");
    let a = labels("x", "j", "i");
    append_all(&db, &a, [(T0, 1.0), (T0 + 1000, 2.0)]);
    let mut app = db.appender();
    assert!(
        matches!(app.append(0, &a, T0 + 500, 3.0), Err(AppendError::OutOfOrder { last, .. }) if last == T0 + 1000)
    );
    assert!(matches!(app.append(0, &a, T0 + 1000, 9.0), Err(AppendError::Duplicate { .. })));
    // The same timestamp with the same value is accepted and stored once.
    app.append(0, &a, T0 + 1000, 2.0).expect("same value is fine");
    app.append(0, &a, T0 + 2000, 4.0).expect("append");
    // Order is also checked within the batch.
    assert!(
        matches!(app.append(0, &a, T0 + 1500, 3.0), Err(AppendError::OutOfOrder { last, .. }) if last == T0 + 2000)
    );
    app.commit().expect("commit");
    assert_eq!(
        values(&select_all(&db, &[], 0, i64::MAX)[0]),
        [(T0, 1.0), (T0 + 1000, 2.0), (T0 + 2000, 4.0)]
    );
    let mut app = db.appender();
    assert!(matches!(app.append(0, &Labels::empty(), T0, 1.0), Err(AppendError::InvalidLabels { .. })));
}

#[test]
fn staleness_markers_and_special_values_round_trip() {
    let db = Db::in_memory(quiet_options()).expect("db");
    let a = labels("x", "j", "i");
    append_all(
        &db,
        &a,
        [(T0, 1.5), (T0 + 1, f64::INFINITY), (T0 + 2, stale_nan()), (T0 + 3, f64::NAN), (T0 + 4, -0.0)],
    );
    let got = &select_all(&db, &[], 0, i64::MAX)[0].samples;
    assert_eq!(got.len(), 5);
    assert!(is_stale(got[2].v));
    assert!(got[3].v.is_nan() && !is_stale(got[3].v));
    assert_eq!(got[4].v.to_bits(), (-0.0f64).to_bits());
}

#[test]
fn matchers_and_metadata_queries_use_the_index_and_time() {
    let db = Db::in_memory(quiet_options()).expect("db");
    append_all(&db, &labels("up", "node", "a"), [(T0, 1.0)]);
    append_all(&db, &labels("up", "node", "b"), [(T0 + HOUR, 1.0)]);
    append_all(&db, &labels("up", "api", "c"), [(T0, 0.0)]);
    append_all(
        &db,
        &Labels::from_pairs(&[("__name__", "http_requests_total"), ("code", "200")]),
        [(T0, 5.0)],
    );

    let got =
        select_all(&db, &[eq("__name__", "up"), Matcher::new(MatchOp::NotEqual, "job", "api")], 0, i64::MAX);
    assert_eq!(got.iter().map(|s| s.labels.get("instance").unwrap_or("")).collect::<Vec<_>>(), ["a", "b"]);
    let re = Matcher::new_matcher(T_EQL_REGEX, "instance".into(), "a|c".into()).expect("regex");
    assert_eq!(select_all(&db, &[re], 0, i64::MAX).len(), 2);
    let nre = Matcher::new_matcher(T_NEQ_REGEX, "job".into(), "node".into()).expect("regex");
    assert_eq!(select_all(&db, &[nre], 0, i64::MAX).len(), 2, "api and the series without a job");
    assert_eq!(select_all(&db, &[eq("code", "")], 0, i64::MAX).len(), 3);

    assert_eq!(db.series(&[eq("job", "node")], 0, T0).expect("series"), vec![labels("up", "node", "a")]);
    assert_eq!(db.series(&[eq("job", "node")], 0, i64::MAX).expect("series").len(), 2);
    assert_eq!(db.label_names(&[], 0, i64::MAX).expect("names"), ["__name__", "code", "instance", "job"]);
    assert_eq!(
        db.label_names(&[eq("job", "api")], 0, i64::MAX).expect("names"),
        ["__name__", "instance", "job"]
    );
    assert_eq!(db.label_values("instance", &[], 0, T0).expect("values"), ["a", "c"]);
    assert_eq!(db.label_values("instance", &[eq("job", "node")], 0, i64::MAX).expect("values"), ["a", "b"]);
    assert_eq!(db.label_values("__name__", &[], 0, i64::MAX).expect("values"), ["http_requests_total", "up"]);
}

#[test]
fn selections_over_the_limit_fail_clearly() {
    let db = Db::in_memory(TsdbOptions { max_series_per_select: 2, ..quiet_options() }).expect("db");
    for i in 0..3 {
        append_all(&db, &labels("up", "j", &i.to_string()), [(T0, 1.0)]);
    }
    let err = db.select(&[], &SelectHints::range(0, i64::MAX)).expect_err("too many");
    assert!(matches!(err, StorageError::TooManySeries { limit: 2 }));
    assert_eq!(db.select(&[eq("instance", "1")], &SelectHints::range(0, i64::MAX)).expect("one").len(), 1);
}

#[test]
fn series_limit_refuses_new_series_only() {
    let db = Db::in_memory(TsdbOptions { max_series: 1, ..quiet_options() }).expect("db");
    let a = labels("up", "j", "a");
    append_all(&db, &a, [(T0, 1.0)]);
    let mut app = db.appender();
    assert!(matches!(app.append(0, &labels("up", "j", "b"), T0, 1.0), Err(AppendError::Refused(_))));
    app.append(0, &a, T0 + 1, 1.0).expect("existing series still appends");
    app.commit().expect("commit");
}

#[test]
fn bad_options_are_refused() {
    let mut o = TsdbOptions::default();
    o.tiers[1].resolution = Duration::from_secs(5400);
    assert!(Db::in_memory(o).is_err());
    let o = TsdbOptions { raw_retention: Duration::from_secs(60), ..TsdbOptions::default() };
    let err = Db::in_memory(o).expect_err("raw shorter than a bucket");
    assert!(err.to_string().contains("raw_retention"));
}

#[test]
fn regular_series_compress_below_two_bytes_per_sample() {
    let db = Db::in_memory(quiet_options()).expect("db");
    let n = 2 * 24 * 60 * 4; // two days... of which the head keeps all: retention is not applied here.
    let mut counter = 1000.0;
    let mut gauge = 512.0;
    let (c, g) = (labels("requests_total", "j", "a"), labels("temperature", "j", "a"));
    let mut app = db.appender();
    let (mut rc, mut rg) = (0, 0);
    for i in 0..n {
        let t = T0 + i * 15_000;
        counter += f64::from((i * 7 % 5) as u32);
        // A gauge with 3 significant digits wandering around 50.
        gauge = (gauge + f64::from((i * 13 % 9) as i32 - 4)).clamp(100.0, 999.0);
        rc = app.append(rc, &c, t, counter).expect("append");
        rg = app.append(rg, &g, t, gauge / 10.0).expect("append");
    }
    app.commit().expect("commit");
    let stats = db.stats();
    assert_eq!(stats.samples as i64, 2 * n);
    assert!(stats.bytes_per_sample <= 2.0, "{} bytes/sample", stats.bytes_per_sample);
    let got = select_all(&db, &[eq("__name__", "temperature")], 0, i64::MAX);
    assert_eq!(got[0].samples.len() as i64, n);
}

// === persistence ===

fn open(dir: &Path) -> (Db, OpenReport) {
    Db::open(dir, quiet_options()).expect("open")
}

fn write_some(db: &Db, from: i64, n: i64) {
    for i in 0..n {
        // One commit per timestamp, as scrapes do.
        let mut app = db.appender();
        for s in 0..5 {
            app.append(0, &labels("m", "j", &s.to_string()), from + i * 15_000, (i * 10 + s) as f64)
                .expect("append");
        }
        app.commit().expect("commit");
    }
}

fn count_samples(db: &Db) -> usize {
    select_all(db, &[], i64::MIN, i64::MAX).iter().map(|s| s.samples.len()).sum()
}

#[test]
fn wal_replay_restores_everything_committed() {
    let dir = TempDir::new("tsdb-wal-replay");
    {
        let (db, report) = open(dir.path());
        assert!(report.problems.is_empty());
        write_some(&db, T0, 100);
        // Dropped without close: only the WAL has the data.
    }
    let (db, report) = open(dir.path());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.samples_replayed, 500);
    assert_eq!(count_samples(&db), 500);
    // Appends go on after the replayed data, and a third open sees both segments.
    write_some(&db, T0 + 100 * 15_000, 10);
    drop(db);
    let (db, report) = open(dir.path());
    assert_eq!(report.wal_segments_replayed, 2);
    assert_eq!(count_samples(&db), 550);
}

#[test]
fn checkpoint_drops_old_segments_and_reopens_with_everything() {
    let dir = TempDir::new("tsdb-checkpoint");
    {
        let (db, _) = open(dir.path());
        write_some(&db, T0, 200);
        db.compact(T0 + 200 * 15_000);
        db.checkpoint().expect("checkpoint");
        write_some(&db, T0 + 200 * 15_000, 20);
    }
    let segments = wal::list_segments(&dir.path().join("wal")).expect("list");
    assert_eq!(segments.len(), 1, "segments before the checkpoint are gone: {segments:?}");
    let (db, report) = open(dir.path());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.checkpoint, Some(segments[0]));
    assert_eq!(report.series_loaded, 5);
    assert_eq!(report.samples_replayed, 100);
    assert_eq!(count_samples(&db), 1100);
    db.close().expect("close");
    assert!(matches!(db.appender().commit(), Ok(())), "an empty batch is fine");
    let mut app = db.appender();
    app.append(0, &labels("m", "j", "0"), T0 + DAY, 1.0).expect("append");
    assert!(matches!(app.commit(), Err(StorageError::Closed)));
    drop(db);
    let (db, report) = open(dir.path());
    assert_eq!(report.samples_replayed, 0, "close wrote a final checkpoint");
    assert_eq!(count_samples(&db), 1100);
}

fn only_segment(dir: &Path) -> PathBuf {
    let wal_dir = dir.join("wal");
    let segs = wal::list_segments(&wal_dir).expect("list");
    assert_eq!(segs.len(), 1);
    wal::segment_path(&wal_dir, segs[0])
}

#[test]
fn a_data_dir_is_used_by_one_store_at_a_time() {
    let dir = TempDir::new("tsdb-lock");
    let (db, _) = open(dir.path());
    let err = Db::open(dir.path(), quiet_options()).expect_err("locked");
    assert!(err.to_string().contains("in use by another process"), "{err}");
    drop(db);
    open(dir.path());
}

#[test]
fn truncated_wal_keeps_the_readable_records() {
    let dir = TempDir::new("tsdb-wal-truncated");
    {
        let (db, _) = open(dir.path());
        write_some(&db, T0, 40);
    }
    let seg = only_segment(dir.path());
    let len = fs::metadata(&seg).expect("meta").len();
    let f = fs::OpenOptions::new().write(true).open(&seg).expect("open");
    f.set_len(len - 7).expect("truncate");
    drop(f);
    let (db, report) = open(dir.path());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("truncated record")
            && report.problems[0].contains("39 records recovered")
    );
    assert_eq!(count_samples(&db), 39 * 5);
    // The store goes on in a new segment; the damaged one is replayed the same way next time.
    write_some(&db, T0 + 40 * 15_000, 1);
    drop(db);
    let (db, report) = open(dir.path());
    assert_eq!(report.problems.len(), 1);
    assert_eq!(count_samples(&db), 40 * 5);
}

#[test]
fn corrupt_wal_bytes_end_replay_of_that_segment() {
    let dir = TempDir::new("tsdb-wal-corrupt");
    {
        let (db, _) = open(dir.path());
        write_some(&db, T0, 40);
    }
    let seg = only_segment(dir.path());
    let mut bytes = fs::read(&seg).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    fs::write(&seg, &bytes).expect("write");
    let (db, report) = open(dir.path());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].starts_with("wal segment 1: checksum mismatch at byte"));
    let n = count_samples(&db);
    assert!(n > 0 && n < 200 && n % 5 == 0, "{n} samples recovered");
}

#[test]
fn damaged_checkpoint_keeps_the_readable_series() {
    let dir = TempDir::new("tsdb-checkpoint-corrupt");
    {
        let (db, _) = open(dir.path());
        write_some(&db, T0, 50);
        db.close().expect("close");
    }
    let ck = fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("checkpoint.")))
        .expect("a checkpoint");
    let bytes = fs::read(&ck).expect("read");
    fs::write(&ck, &bytes[..bytes.len() - 10]).expect("truncate");
    let (db, report) = open(dir.path());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("truncated record") && report.problems[0].contains("4 series recovered")
    );
    assert_eq!(count_samples(&db), 4 * 50);
    drop(db);

    // A checkpoint whose header is unreadable is skipped, and the store still opens.
    let mut bytes = fs::read(&ck).expect("read");
    bytes[9] ^= 0xff;
    fs::write(&ck, &bytes).expect("write");
    let (db, report) = open(dir.path());
    assert!(report.problems.iter().any(|p| p.contains("unreadable header")), "{:?}", report.problems);
    assert_eq!(report.checkpoint, None);
    write_some(&db, T0, 1);
    assert_eq!(count_samples(&db), 5);
}

// === tiers ===

/// A counter scraped every minute for `days`, growing by 1..=5 a minute and reset to 0 every 10 h.
fn counter_samples(days: i64) -> Vec<(i64, f64)> {
    let mut v = 0.0;
    (0..days * 24 * 60)
        .map(|i| {
            if i > 0 && i % 600 == 0 {
                v = 0.0;
            } else {
                v += f64::from((i % 5) as u32 + 1);
            }
            (T0 + i * 60_000, v)
        })
        .collect()
}

/// The increase as PromQL's `increase` counts it (without extrapolation).
fn true_increase(samples: &[(i64, f64)]) -> f64 {
    samples.windows(2).map(|w| if w[1].1 >= w[0].1 { w[1].1 - w[0].1 } else { w[1].1 }).sum()
}

#[test]
fn downsampled_counters_keep_increase_right_across_resets() {
    let db = Db::in_memory(quiet_options()).expect("db");
    let c = labels("requests_total", "j", "a");
    let raw = counter_samples(10);
    append_all(&db, &c, raw.iter().copied());
    let now = raw.last().map(|s| s.0).expect("samples") + 60_000;
    let report = db.compact(now);
    assert!(report.raw_samples_removed > 0);
    let stats = db.stats();
    let cutoff = floor_to_hour(now - DAY);
    assert_eq!(stats.samples, raw.iter().filter(|s| s.0 >= cutoff).count(), "raw keeps whole hours of 24 h");
    assert!(stats.tier_points[0] > 0 && stats.tier_points[1] > 0, "{stats:?}");

    let hints =
        |start, end| SelectHints { start, end, func: Some("increase".into()), ..SelectHints::default() };
    for (start, end) in [
        (T0, now),                                          // day points, hour points and raw
        (T0 + 4 * DAY, now),                                // hour points and raw
        (T0 + 2 * DAY + 5 * HOUR, T0 + 3 * DAY + 7 * HOUR), // day and hour points only
    ] {
        let got = db.select(&[eq("__name__", "requests_total")], &hints(start, end)).expect("select");
        let got: Vec<(i64, f64)> = got[0].samples.iter().map(|s| (s.t, s.v)).collect();
        // The true increase between the first and last returned timestamps.
        let (first, last) = (got[0].0, got[got.len() - 1].0);
        let want: Vec<(i64, f64)> = raw.iter().copied().filter(|s| s.0 >= first && s.0 <= last).collect();
        let (a, b) = (true_increase(&got), true_increase(&want));
        assert!((a - b).abs() < 1e-6, "{start}..{end}: downsampled increase {a}, raw {b}");
        assert!(got.len() < want.len(), "older parts are downsampled");
    }
    // Plain selections of old parts give the gauge-like last value; max_over_time the maxima.
    let max_hints = SelectHints {
        start: T0,
        end: T0 + DAY,
        func: Some("max_over_time".into()),
        ..SelectHints::default()
    };
    let got = db.select(&[], &max_hints).expect("select");
    let max = got[0].samples.iter().map(|s| s.v).fold(f64::MIN, f64::max);
    // Points carry their last sample's time: they cover the raw samples up to the last point's.
    let covered = got[0].samples.last().map(|s| s.t).expect("points");
    let raw_max = raw.iter().filter(|s| s.0 <= covered).map(|s| s.1).fold(f64::MIN, f64::max);
    assert_eq!(max, raw_max);
    let count_hints = SelectHints {
        start: T0,
        end: T0 + 2 * DAY - 1,
        func: Some("count_over_time".into()),
        ..SelectHints::default()
    };
    let got = db.select(&[], &count_hints).expect("select");
    let counted: f64 = got[0].samples.iter().map(|s| s.v).sum();
    let covered = got[0].samples.last().map(|s| s.t).expect("points");
    assert_eq!(counted, raw.iter().filter(|s| s.0 <= covered).count() as f64, "the counts add up");
    assert!(got[0].samples.len() < 5);
}

#[test]
fn gauges_downsample_to_min_max_avg_and_last() {
    let db = Db::in_memory(quiet_options()).expect("db");
    let g = labels("temp", "j", "a");
    // Two hours of 1-minute data: 0..59 in the first hour, 100..159 in the second, then one sample later.
    let start = floor_to_hour(T0) + HOUR;
    let mut samples: Vec<(i64, f64)> =
        (0..120).map(|i| (start + i * 60_000, (i % 60 + (i / 60) * 100) as f64)).collect();
    samples.push((start + 30 * HOUR, 7.0));
    append_all(&db, &g, samples);
    db.compact(start + 30 * HOUR);
    let read = |func: &str| -> Vec<f64> {
        let hints =
            SelectHints { start, end: start + 2 * HOUR, func: Some(func.into()), ..SelectHints::default() };
        db.select(&[], &hints).expect("select")[0].samples.iter().map(|s| s.v).collect()
    };
    assert_eq!(read("min_over_time"), [0.0, 100.0]);
    assert_eq!(read("max_over_time"), [59.0, 159.0]);
    assert_eq!(read("avg_over_time"), [29.5, 129.5]);
    assert_eq!(read("sum_over_time"), [1770.0, 7770.0]);
    assert_eq!(read("last_over_time"), [59.0, 159.0]);
    let hints = SelectHints::range(start, start + 2 * HOUR);
    let got = db.select(&[], &hints).expect("select");
    assert_eq!(got[0].samples[0].t, start + 59 * 60_000, "points carry their last sample's time");
}

fn floor_to_hour(t: i64) -> i64 {
    t - t.rem_euclid(HOUR)
}

#[test]
fn retention_drops_old_data_and_empty_series() {
    let db = Db::in_memory(quiet_options()).expect("db");
    let a = labels("m", "j", "a");
    let b = labels("m", "j", "b");
    append_all(&db, &a, (0..120).map(|i| (T0 + i * 60_000, 1.0)));
    append_all(&db, &b, [(T0 + 40 * DAY, 1.0)]);
    let report = db.compact(T0 + 40 * DAY);
    assert_eq!(report.series_removed, 1);
    assert_eq!(db.series(&[], i64::MIN, i64::MAX).expect("series"), vec![b.clone()]);
    assert!(db.label_values("instance", &[], i64::MIN, i64::MAX).expect("values") == ["b"]);
    // The dropped series can come back with new data.
    append_all(&db, &a, [(T0 + 40 * DAY, 2.0)]);
    assert_eq!(db.series(&[], i64::MIN, i64::MAX).expect("series").len(), 2);
    // A sample inside already-downsampled buckets of a live series is refused as too old.
    append_all(&db, &b, [(T0 + 40 * DAY + 2 * HOUR, 1.0)]);
    db.compact(T0 + 40 * DAY + 8 * HOUR);
    let mut app = db.appender();
    assert!(matches!(app.append(0, &b, T0 + 40 * DAY + 3 * HOUR, 1.0), Err(AppendError::TooOld { .. })));
    app.append(0, &b, T0 + 40 * DAY + 8 * HOUR, 1.0).expect("newer is fine");
    app.rollback();
    // A series created by an appender that has not committed yet is kept.
    let c = labels("m", "j", "c");
    let mut app = db.appender();
    app.append(0, &c, T0 + 41 * DAY, 1.0).expect("append");
    assert_eq!(db.compact(T0 + 41 * DAY).series_removed, 0);
    app.commit().expect("commit");
    assert_eq!(db.series(&[eq("instance", "c")], i64::MIN, i64::MAX).expect("series").len(), 1);
}

#[test]
fn tiers_and_their_state_survive_a_restart() {
    let dir = TempDir::new("tsdb-tiers-restart");
    let c = labels("requests_total", "j", "a");
    let raw = counter_samples(3);
    let now = raw.last().map(|s| s.0).expect("samples") + 60_000;
    let before;
    {
        let (db, _) = open(dir.path());
        append_all(&db, &c, raw.iter().copied());
        db.compact(now);
        before = db.stats();
        db.close().expect("close");
    }
    let (db, report) = open(dir.path());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(db.stats(), before);
    let hints = SelectHints { start: T0, end: now, func: Some("rate".into()), ..SelectHints::default() };
    let got = db.select(&[], &hints).expect("select");
    let got: Vec<(i64, f64)> = got[0].samples.iter().map(|s| (s.t, s.v)).collect();
    let first = got[0].0;
    let want: Vec<(i64, f64)> = raw.iter().copied().filter(|s| s.0 >= first).collect();
    assert!((true_increase(&got) - true_increase(&want)).abs() < 1e-6);
    assert!(got.len() < want.len());
}

#[test]
fn concurrent_appenders_and_readers() {
    let db = Arc::new(Db::in_memory(quiet_options()).expect("db"));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                let series: Vec<Labels> =
                    (0..50).map(|s| labels("m", &format!("w{w}"), &s.to_string())).collect();
                let mut refs = vec![0; series.len()];
                for i in 0..200 {
                    let mut app = db.appender();
                    for (s, l) in series.iter().enumerate() {
                        refs[s] = app.append(refs[s], l, T0 + i * 15_000, i as f64).expect("append");
                    }
                    app.commit().expect("commit");
                }
            })
        })
        .collect();
    let reader = {
        let db = Arc::clone(&db);
        std::thread::spawn(move || {
            for _ in 0..50 {
                for s in db.select(&[eq("job", "w1")], &SelectHints::range(T0, T0 + DAY)).expect("select") {
                    assert!(s.samples.windows(2).all(|w| w[0].t < w[1].t));
                }
            }
        })
    };
    for w in writers {
        w.join().expect("writer");
    }
    reader.join().expect("reader");
    assert_eq!(count_samples(&db), 4 * 50 * 200);
    assert_eq!(db.stats().series, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_checkpoints_in_the_background() {
    let dir = TempDir::new("tsdb-maintenance");
    let options = TsdbOptions {
        checkpoint_interval: Duration::from_millis(50),
        compaction_interval: Duration::from_millis(50),
        wal_sync: WalSync::Interval(Duration::from_millis(20)),
        ..TsdbOptions::default()
    };
    let (db, _) = Db::open(dir.path(), options.clone()).expect("open");
    let db = Arc::new(db);
    append_all(&db, &labels("m", "j", "a"), [(now_ms(), 1.0)]);
    let task = db.spawn_maintenance();
    let mut found = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        found = fs::read_dir(dir.path()).expect("dir").flatten().any(|e| {
            e.file_name().to_str().is_some_and(|n| n.starts_with("checkpoint.") && !n.ends_with(".tmp"))
        });
        if found {
            break;
        }
    }
    assert!(found, "a checkpoint was written");
    db.close().expect("close");
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("task stops after close").expect("join");
    drop(db);
    let (db, _) = Db::open(dir.path(), options).expect("reopen");
    assert_eq!(count_samples(&db), 1);
}

/// The lazy selection reads, series by series, exactly what `select` returns, whatever the range: inside
/// the head chunk, across the edge of the most recently closed chunk (read from its seek points), across
/// older chunks, and over downsampled points.
#[test]
fn lazy_selection_reads_what_select_returns() {
    let db = Db::in_memory(quiet_options()).expect("db");
    for i in 0..5 {
        let series = labels("c", "job", &i.to_string());
        let samples: Vec<(i64, f64)> = (0..3_000)
            .map(|k| {
                let v = if i == 4 && k % 97 == 5 { stale_nan() } else { (k % (300 + i)) as f64 * 1.5 };
                (T0 - 2 * DAY + k * 90_000 + i, v)
            })
            .collect();
        append_all(&db, &series, samples);
    }
    // Downsample and drop the older raw data, so that reads of the first day come from tier points.
    db.compact(T0 + DAY + HOUR);
    let matchers = [eq("__name__", "c")];
    for (start, end) in [
        (T0 - 3 * HOUR, T0),
        (T0 - 2 * DAY, T0 + DAY),
        (T0 - 3 * HOUR - 4_000, T0 - 2 * HOUR + 1),
        (T0 - DAY - 17 * 60_000, T0 - 20 * HOUR),
        (T0 + HOUR, T0 + 2 * HOUR),
        (T0 + 26 * HOUR - 300_000, T0 + 26 * HOUR),
        (T0 + 27 * HOUR - 600_000, T0 + 27 * HOUR),
        (T0 + 22 * HOUR - 1, T0 + 23 * HOUR + 1),
    ] {
        for func in [None, Some("rate"), Some("max_over_time")] {
            let hints = SelectHints { start, end, func: func.map(str::to_owned), ..SelectHints::default() };
            let want = db.select(&matchers, &hints).expect("select");
            assert_eq!(want.len(), 5, "[{start}, {end}] {func:?}");
            let lazy = db.select_lazy(&matchers, &hints).expect("select_lazy");
            let mut got = Vec::new();
            let mut buf = vec![Sample::new(0, 0.0)];
            for i in 0..lazy.len() {
                lazy.read(i, &mut buf);
                if !buf.is_empty() {
                    got.push(Series { labels: lazy.labels(i).clone(), samples: buf.clone() });
                }
            }
            let bits = |s: &[Series]| -> Vec<(Labels, Vec<(i64, u64)>)> {
                s.iter()
                    .map(|s| (s.labels.clone(), s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect()))
                    .collect()
            };
            assert_eq!(bits(&got), bits(&want), "[{start}, {end}] {func:?}");
        }
    }
}
