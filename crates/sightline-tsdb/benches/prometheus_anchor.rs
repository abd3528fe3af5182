//! The query targets measured side by side with Debian's Prometheus on the same samples.
//!
//! `cargo bench -p sightline-tsdb --bench prometheus_anchor -- [--runs N] [--out PATH] [--no-prometheus]`
//! (or `cargo xtask bench-tsdb`). Two datasets from `support/dataset.rs`:
//!
//! - `hour`: 10,000 counters, 1 h at 15 s (2.41M samples); the instant query
//!   `sum by (job) (rate(http_requests_total[5m]))` at its last timestamp (target: <= 20 ms).
//! - `day`: 1,000 counters, 24 h 10 min at 15 s (5.8M samples); the same query over the last 24 h at a
//!   60 s step (target: <= 200 ms).
//!
//! Sightline: the dataset is appended to an in-memory `storage::Db` through its `Appender` (one batch per
//! timestamp, as scrapes append), and `promql::Engine` is timed in this process. Prometheus: the same
//! samples are written as OpenMetrics, turned into blocks by `promtool tsdb create-blocks-from openmetrics`,
//! and served by `prometheus` on a free port with no scrape targets; each query is timed as a whole HTTP
//! round trip (a new connection, the API's JSON) from this process. `vector(1)` is timed the same way to
//! show what HTTP and JSON cost Prometheus on a query with no data; subtracting its median gives a rough
//! figure for Prometheus's engine alone. Both sides return the same 10 series, and their values are checked
//! against each other.
//!
//! The timestamps end less than 31 minutes before the run starts (at a fixed phase in the half hour, see
//! `DatasetSpec::phase`), so that Prometheus's retention keeps the blocks. The instant query runs twice:
//! with its 5 m window inside the open head chunk (`hour`), and reaching into the closed chunk before it
//! (`hour_chunk_edge`), which Sightline decodes from the start.
//! Each query runs `--runs` times (default 50) after 5 untimed runs; the median and the 90th percentile are
//! printed as markdown and written to `<target dir>/bench/tsdb.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

#[path = "support/dataset.rs"]
mod dataset;

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dataset::{DAY_MS, HOUR_MS, JOBS, QUERY, STEP_MS};
use serde_json::{Value as Json, json};
use sightline_testkit::{ChildGuard, TempDir, free_port, http_get, which};
use sightline_tsdb::promql::{Engine, EngineOptions, Value};
use sightline_tsdb::storage::{Db, TsdbOptions};

/// Untimed runs before each measurement.
const WARM_UP: usize = 5;
/// The instant query's target, milliseconds.
const INSTANT_TARGET_MS: f64 = 20.0;
/// The range query's target, milliseconds.
const RANGE_TARGET_MS: f64 = 200.0;

struct Args {
    runs: usize,
    out: Option<PathBuf>,
    prometheus: bool,
}

impl Args {
    fn parse() -> Self {
        let mut args = Args { runs: 50, out: None, prometheus: true };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--runs" => {
                    args.runs = it.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0).expect("--runs N")
                }
                "--out" => args.out = Some(PathBuf::from(it.next().expect("--out PATH"))),
                "--no-prometheus" => args.prometheus = false,
                // cargo bench passes `--bench`; other harness flags mean nothing here.
                _ => {}
            }
        }
        args
    }
}

/// Median, 90th percentile and minimum of a set of timings in milliseconds.
#[derive(Clone, Copy, Debug)]
struct Stats {
    median: f64,
    p90: f64,
    min: f64,
}

impl Stats {
    fn of(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        Stats { median: at(0.5), p90: at(0.9), min: ms[0] }
    }

    fn json(self) -> Json {
        json!({ "median_ms": self.median, "p90_ms": self.p90, "min_ms": self.min })
    }
}

/// Times `f` `runs` times after the warm-up.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Stats {
    for _ in 0..WARM_UP {
        std::hint::black_box(f());
    }
    let ms = (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    Stats::of(ms)
}

/// The last value of each job in a query result, to compare the two engines.
type ByJob = BTreeMap<String, f64>;

fn sightline_by_job(value: &Value) -> ByJob {
    match value {
        Value::Vector(v) => v.iter().map(|s| (s.labels.get("job").unwrap_or("").to_owned(), s.v)).collect(),
        Value::Matrix(m) => m
            .iter()
            .map(|s| {
                (s.labels.get("job").unwrap_or("").to_owned(), s.samples.last().map_or(f64::NAN, |x| x.v))
            })
            .collect(),
        other => panic!("unexpected result {other:?}"),
    }
}

fn prometheus_by_job(body: &str) -> ByJob {
    let json: Json = serde_json::from_str(body).expect("Prometheus answers JSON");
    let result = json["data"]["result"].as_array().expect("a result array");
    result
        .iter()
        .map(|s| {
            let value = if s["value"].is_array() {
                &s["value"]
            } else {
                s["values"].as_array().unwrap().last().unwrap()
            };
            let v: f64 = value[1].as_str().unwrap().parse().unwrap();
            (s["metric"]["job"].as_str().unwrap_or("").to_owned(), v)
        })
        .collect()
}

/// The largest relative difference between two results; both must have the same jobs.
fn max_relative_difference(a: &ByJob, b: &ByJob) -> f64 {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "both engines return the same jobs"
    );
    a.iter().map(|(job, x)| ((x - b[job]) / x.abs().max(f64::MIN_POSITIVE)).abs()).fold(0.0, f64::max)
}

/// Runs a query on Sightline's side.
type RunQuery = Box<dyn Fn(&Engine, &Db) -> Value>;

/// A query to time: its name, the Sightline side and the Prometheus API path.
struct Case {
    name: &'static str,
    target_ms: Option<f64>,
    sightline: RunQuery,
    prometheus_path: String,
}

struct DatasetSpec {
    name: &'static str,
    series: usize,
    span: i64,
    /// Where the last timestamp falls in the half hour (milliseconds past :00 or :30). A head chunk holds
    /// at most 120 samples (30 min at 15 s) and is cut at each hour, so this says whether a 5 m window
    /// lies inside the open head chunk (which has seek points) or reaches into the closed chunk before
    /// it (decoded from its start).
    phase: i64,
}

/// Half an hour, the span of a full chunk at 15 s.
const HALF_HOUR_MS: i64 = 1_800_000;

impl DatasetSpec {
    /// The latest timestamp with this dataset's phase at least a minute before `now`.
    fn end(&self, now: i64) -> i64 {
        let latest = now - 60_000;
        let end = latest - latest.rem_euclid(HALF_HOUR_MS) + self.phase;
        if end > latest { end - HALF_HOUR_MS } else { end }
    }
}

/// `query` percent-encoded for a URL's query string.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Prometheus serving the dataset's blocks; stopped when dropped (before its directory is removed).
struct Prometheus {
    child: ChildGuard,
    addr: SocketAddr,
    _dir: TempDir,
}

fn start_prometheus(spec: &DatasetSpec, end: i64) -> Prometheus {
    let dir = TempDir::new(&format!("tsdb-anchor-{}", spec.name));
    let file = dir.path().join("data.om");
    let started = Instant::now();
    let mut out = BufWriter::new(std::fs::File::create(&file).expect("create the OpenMetrics file"));
    dataset::write_openmetrics(&mut out, spec.series, spec.span, end).expect("write OpenMetrics");
    out.flush().expect("write OpenMetrics");
    drop(out);
    let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
    eprintln!("{}: {} MB of OpenMetrics written in {:.1?}", spec.name, bytes >> 20, started.elapsed());

    let data = dir.path().join("data");
    let started = Instant::now();
    // One block per UTC day rather than per 2 h, so that Prometheus starts with the blocks it would have
    // compacted them into and does not compact during the measurement.
    let output = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h"])
        .arg(&file)
        .arg(&data)
        .output()
        .expect("run promtool");
    assert!(output.status.success(), "promtool failed: {}", String::from_utf8_lossy(&output.stderr));
    eprintln!("{}: promtool built the blocks in {:.1?}", spec.name, started.elapsed());
    std::fs::remove_file(&file).expect("remove the OpenMetrics file");

    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "scrape_configs: []\n").expect("write prometheus.yml");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = Command::new("prometheus");
    command
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg(format!("--config.file={}", config.display()))
        .arg("--storage.tsdb.retention.time=3650d");
    let child = ChildGuard::spawn_quiet(command).expect("start prometheus");
    let deadline = Instant::now() + Duration::from_secs(120);
    while http_get(addr, "/-/ready", &[]).map_or(true, |r| r.status != 200) {
        assert!(Instant::now() < deadline, "prometheus did not become ready at {addr} within 2 minutes");
        std::thread::sleep(Duration::from_millis(200));
    }
    Prometheus { child, addr, _dir: dir }
}

fn prometheus_query(addr: SocketAddr, path: &str) -> String {
    let response = http_get(addr, path, &[]).expect("query prometheus");
    assert_eq!(response.status, 200, "prometheus answered {}: {}", response.status, response.body);
    response.body
}

fn run_dataset(args: &Args, spec: &DatasetSpec, now: i64, cases: impl Fn(i64) -> Vec<Case>) -> Json {
    let end = spec.end(now);
    let cases = cases(end);
    let db = Db::in_memory(TsdbOptions::default()).expect("db");
    let started = Instant::now();
    dataset::fill_db(&db, spec.series, spec.span, end);
    let fill = started.elapsed();
    let stats = db.stats();
    eprintln!(
        "{}: {} samples appended in {:.2?} ({:.0} samples/s), {:.3} bytes/sample",
        spec.name,
        stats.samples,
        fill,
        stats.samples as f64 / fill.as_secs_f64(),
        stats.bytes_per_sample
    );
    let engine = Engine::new(EngineOptions::default());

    // Sightline first, so that Prometheus (which loads and checks its blocks after it starts) takes no CPU
    // from its measurement.
    let mut results = serde_json::Map::new();
    let mut answers = Vec::new();
    for case in &cases {
        let ours = sightline_by_job(&(case.sightline)(&engine, &db));
        assert_eq!(ours.len(), JOBS, "{}: one series per job", case.name);
        let sightline = time(args.runs, || (case.sightline)(&engine, &db));
        results.insert(
            case.name.into(),
            json!({ "sightline_in_process": sightline.json(), "target_ms": case.target_ms }),
        );
        answers.push(ours);
    }

    let prometheus = (args.prometheus && which("prometheus").is_some() && which("promtool").is_some())
        .then(|| start_prometheus(spec, end));
    if args.prometheus && prometheus.is_none() {
        eprintln!("SKIPPED: prometheus or promtool unavailable (Debian packages prometheus)");
    }
    if let Some(p) = &prometheus {
        let floor = time(args.runs, || prometheus_query(p.addr, "/api/v1/query?query=vector(1)"));
        results.insert("prometheus_http_floor_vector1".into(), floor.json());
        for (case, ours) in cases.iter().zip(&answers) {
            let theirs = prometheus_by_job(&prometheus_query(p.addr, &case.prometheus_path));
            let difference = max_relative_difference(ours, &theirs);
            assert!(
                difference < 1e-9,
                "{}: Sightline {ours:?} and Prometheus {theirs:?} disagree",
                case.name
            );
            let stats = time(args.runs, || prometheus_query(p.addr, &case.prometheus_path));
            let entry = &mut results[case.name];
            entry["prometheus_http"] = stats.json();
            entry["max_relative_difference"] = json!(difference);
        }
    }
    if let Some(mut p) = prometheus {
        p.child.terminate(Duration::from_secs(10));
    }
    json!({
        "series": spec.series,
        "end_ms": end,
        "phase_in_half_hour_s": spec.phase / 1000,
        "samples": stats.samples,
        "append_samples_per_s": stats.samples as f64 / fill.as_secs_f64(),
        "bytes_per_sample": stats.bytes_per_sample,
        "queries": results,
    })
}

fn target_dir() -> PathBuf {
    // <target>/release/deps/prometheus_anchor-<hash>
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn cell(stats: &Json) -> String {
    match (stats["median_ms"].as_f64(), stats["p90_ms"].as_f64()) {
        (Some(m), Some(p)) => format!("{m:.2} ms / {p:.2} ms"),
        _ => "-".into(),
    }
}

fn table(results: &Json) -> String {
    let mut out = String::from(
        "| dataset | query | target | Sightline in-process (median / p90) | Prometheus over HTTP (median / p90) | verdict |\n|---|---|---|---:|---:|---|\n",
    );
    for (dataset, data) in results["datasets"].as_object().into_iter().flatten() {
        for (query, q) in data["queries"].as_object().into_iter().flatten() {
            let target = q["target_ms"].as_f64();
            let verdict = match (target, q["sightline_in_process"]["median_ms"].as_f64()) {
                (Some(t), Some(m)) if m <= t => "met",
                (Some(_), Some(_)) => "missed",
                _ => "",
            };
            let (ours, theirs) = if q.get("sightline_in_process").is_some() {
                (cell(&q["sightline_in_process"]), cell(&q["prometheus_http"]))
            } else {
                ("-".into(), cell(q))
            };
            let target = target.map_or(String::new(), |t| format!("<= {t} ms"));
            out.push_str(&format!("| {dataset} | {query} | {target} | {ours} | {theirs} | {verdict} |\n"));
        }
    }
    out
}

fn main() {
    let args = Args::parse();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as i64;
    let instant = |name: &'static str| {
        move |end: i64| {
            vec![Case {
                name,
                target_ms: Some(INSTANT_TARGET_MS),
                sightline: Box::new(move |engine: &Engine, db: &Db| {
                    engine.instant_query(db, QUERY, end).expect("query")
                }),
                prometheus_path: format!("/api/v1/query?query={}&time={}", encode(QUERY), seconds(end)),
            }]
        }
    };
    let range = |end: i64| {
        vec![Case {
            name: "range_sum_rate_1k_24h",
            target_ms: Some(RANGE_TARGET_MS),
            sightline: Box::new(move |engine: &Engine, db: &Db| {
                engine.range_query(db, QUERY, end - DAY_MS, end, STEP_MS).expect("query")
            }),
            prometheus_path: format!(
                "/api/v1/query_range?query={}&start={}&end={}&step={}",
                encode(QUERY),
                seconds(end - DAY_MS),
                seconds(end),
                STEP_MS / 1000
            ),
        }]
    };
    // 13 min 20 s into the half hour, as in `benches/promql.rs`: the 5 m window lies in the head chunk.
    let hour = DatasetSpec { name: "hour", series: 10_000, span: HOUR_MS, phase: 800_000 };
    // 1 min into the half hour: 4 of the window's 5 minutes are in the closed chunk before the head.
    let hour_edge = DatasetSpec { name: "hour_chunk_edge", series: 10_000, span: HOUR_MS, phase: 60_000 };
    // 10 minutes before the range, so that its first step has a full 5 m window.
    let day = DatasetSpec { name: "day", series: 1_000, span: DAY_MS + 600_000, phase: 800_000 };

    let results = json!({
        "generated_by": "cargo bench -p sightline-tsdb --bench prometheus_anchor",
        "unix_time_s": now / 1000,
        "runs": args.runs,
        "datasets": {
            "hour": run_dataset(&args, &hour, now, instant("instant_sum_rate_10k")),
            "hour_chunk_edge": run_dataset(&args, &hour_edge, now, instant("instant_sum_rate_10k_chunk_edge")),
            "day": run_dataset(&args, &day, now, range),
        },
    });
    println!("\n{}", table(&results));
    for (name, data) in results["datasets"].as_object().into_iter().flatten() {
        if let Some(floor) = data["queries"].get("prometheus_http_floor_vector1") {
            println!("Prometheus `vector(1)` over HTTP ({name} store): {}", cell(floor));
        }
    }
    let out = args.out.clone().unwrap_or_else(|| target_dir().join("bench/tsdb.json"));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).expect("create the output directory");
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results).unwrap()).expect("write the results");
    println!("Written to {}", out.display());
}
