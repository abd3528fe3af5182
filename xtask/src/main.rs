//! `cargo xtask`: the project's automation, in Rust so that it runs wherever cargo does.
//!
//! - `cargo xtask bench [--quick]` runs the `core` benchmark of `sightline-export` (Sightline against
//!   `metrics-exporter-prometheus`, `prometheus`, `prometheus-client` and a bare atomic) and the
//!   benchmarks of `sightline-collectors` (host collection, scrape, execution tracking) and of
//!   `sightline-trace` (span lifecycle and JSON log lines against `tracing-subscriber` and
//!   `tracing-opentelemetry`), prints one markdown table per benchmark with the project's targets, and
//!   writes `target/bench/core.json`.
//! - `cargo xtask bench-audit` runs the audit trail's load test (SQLite, PostgreSQL, HTTP) and prints its
//!   targets; see `audit_bench`.
//! - `cargo xtask bench-tsdb` runs the time-series store's benchmarks and its comparison with Debian's
//!   Prometheus; see `tsdb_bench`.
//! - `cargo xtask ci` runs `.ci/run`, so that CI and developers share one source of truth.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

mod audit_bench;
mod health_bench;
mod tsdb_bench;
use serde_json::{Value, json};

const HELP: &str = "\
cargo xtask: Sightline's project automation

USAGE:
    cargo xtask <COMMAND> [OPTIONS]

COMMANDS:
    bench [--quick] [-- <criterion args>]
                Run the core benchmarks (Sightline against metrics-exporter-prometheus, prometheus,
                prometheus-client and a bare atomic), the collectors' benchmarks (host collection,
                scrape, execution tracking) and the tracing benchmarks (span lifecycle, JSON log
                lines), print a table per benchmark with the targets,
                and write <target dir>/bench/core.json.
                --quick   shorter warm-up and measurement (0.5 s / 1 s instead of 1 s / 3 s)
                Arguments after `--` go to criterion, e.g. a benchmark filter.
    bench-health [SECONDS] [--runs N]
                GET /health latency with wrk (32 connections, default 10 s, N runs in a row against
                one server, default 3) against a release build of `sightline serve` with 50 health
                checks, one hanging; each run also measures a bare axum server with an answer of the
                same size (the `health_floor` example) as the machine's floor; prints each run with
                the server's CPU time per request and writes <target dir>/bench/health.json. Needs
                Debian's `wrk`.
    bench-audit [--events N] [--http-events N] [--quick]
                The audit trail's load test (crates/sightline-audit/benches/audit.rs): ingest through
                the writer, queries and verify on SQLite and PostgreSQL (skipped when unreachable;
                default 1,000,000 events each), then POSTs of 1,000 events to a release build of
                `sightline serve` (default 300,000 events); prints every target's verdict and
                writes <target dir>/bench/audit.json. --quick: 100,000 and 50,000 events.
    bench-tsdb [--runs N] [--anchor-only]
                The time-series store's benchmarks (crates/sightline-tsdb/benches): storage, promql and
                scrape with criterion, then the query targets in process and against Debian's
                Prometheus over HTTP on the same samples (each query N times, default 50); prints the
                targets' verdicts and writes <target dir>/bench/tsdb.json. --anchor-only skips criterion.
    ci          Run what CI runs: `bash .ci/run` from the workspace root.
    help        Print this help (also -h, --help).
";

/// Exit code for a command line that could not be understood.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => {
            eprint!("{HELP}");
            return ExitCode::from(USAGE_ERROR);
        }
        Some("help" | "-h" | "--help") => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Some("bench") => match BenchOptions::parse(&args[1..]) {
            Ok(options) => bench(&options),
            Err(message) => return usage_error(&message),
        },
        Some("bench-health") => {
            let (mut seconds, mut runs) = (10, 3);
            let mut rest = args[1..].iter();
            while let Some(arg) = rest.next() {
                let (slot, value) =
                    if arg == "--runs" { (&mut runs, rest.next()) } else { (&mut seconds, Some(arg)) };
                match value.and_then(|v| v.parse::<u32>().ok()) {
                    Some(n) if n > 0 => *slot = n,
                    _ => {
                        return usage_error(
                            "`bench-health` takes an optional duration in seconds and `--runs N`",
                        );
                    }
                }
            }
            let root = workspace_root();
            match target_directory(&root).and_then(|dir| health_bench::run(&root, &dir, seconds, runs)) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(err) => Err(err),
            }
        }
        Some("bench-audit") => {
            let options = match audit_bench::Options::parse(&args[1..]) {
                Ok(options) => options,
                Err(message) => return usage_error(&message),
            };
            let root = workspace_root();
            match target_directory(&root).and_then(|dir| audit_bench::run(&root, &dir, &options)) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(err) => Err(err),
            }
        }
        Some("bench-tsdb") => {
            let options = match tsdb_bench::Options::parse(&args[1..]) {
                Ok(options) => options,
                Err(message) => return usage_error(&message),
            };
            let root = workspace_root();
            match target_directory(&root).and_then(|dir| tsdb_bench::run(&root, &dir, &options)) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(err) => Err(err),
            }
        }
        Some("ci") => match &args[1..] {
            [] => ci(),
            [arg, ..] => return usage_error(&format!("`ci` takes no arguments, got `{arg}`")),
        },
        Some(other) => return usage_error(&format!("unknown command `{other}`")),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}\n\nRun `cargo xtask --help` for the commands.");
    ExitCode::from(USAGE_ERROR)
}

fn workspace_root() -> PathBuf {
    // xtask/ sits directly in the workspace root.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Runs `command`, failing with its description if it cannot start; returns its exit code.
fn status(command: &mut Command, what: &str) -> Result<i32> {
    let status = command.status().with_context(|| format!("could not start {what}"))?;
    // A child killed by a signal has no code; report it as a failure.
    Ok(status.code().unwrap_or(1))
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

// === ci ===

fn ci() -> Result<ExitCode> {
    let root = workspace_root();
    let script = root.join(".ci/run");
    if !script.is_file() {
        bail!("{} does not exist; it is what CI runs, so `cargo xtask ci` runs it too", script.display());
    }
    let code = status(Command::new("bash").arg(".ci/run").current_dir(&root), "`bash .ci/run`")?;
    Ok(exit_code(code))
}

// === bench ===

#[derive(Debug, Default)]
struct BenchOptions {
    quick: bool,
    criterion_args: Vec<String>,
}

impl BenchOptions {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = BenchOptions::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--" => {
                    options.criterion_args = args.cloned().collect();
                    break;
                }
                other => return Err(format!("unknown option `{other}` for `bench`")),
            }
        }
        Ok(options)
    }
}

/// The implementation that is the physical limit.
const BARE: &str = "bare_atomic";
/// Sightline's own implementation: the one the targets apply to.
const SIGHTLINE: &str = "sightline";
/// The crates Sightline is measured against.
const ANCHORS: [&str; 5] = [
    "metrics_exporter_prometheus",
    "prometheus",
    "prometheus_client",
    "tracing_opentelemetry",
    "tracing_subscriber_json",
];

/// What Sightline must achieve in one benchmark.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// At most this multiple of the bare atomic's time.
    RatioToBare(f64),
    /// At most this many nanoseconds per operation.
    MaxNs(f64),
    /// At least this many operations per second, and what an operation is (`"lines"`).
    MinPerSecond(f64, &'static str),
}

#[derive(Debug)]
struct Group {
    name: &'static str,
    /// The row the target applies to.
    subject: &'static str,
    title: &'static str,
    target: Target,
    target_text: &'static str,
    /// How times are shown: divisor from nanoseconds, and the unit's name.
    scale: (f64, &'static str),
}

const GROUPS: [Group; 12] = [
    Group {
        name: "counter_inc_1t",
        subject: SIGHTLINE,
        title: "(a) cached counter increment, 1 thread",
        target: Target::RatioToBare(1.3),
        target_text: "<= 1.3x bare atomic",
        scale: (1.0, "ns/op"),
    },
    Group {
        name: "counter_inc_2t",
        // A plain counter is one atomic, so it can only tie the bare contended atomic (within noise); the
        // target applies to a counter sharded per core, which is how Sightline beats it.
        subject: "sightline_sharded",
        title: "(a) cached counter increment, 2 threads on the same counter (per-thread ns/op)",
        target: Target::RatioToBare(1.0),
        target_text: "no slower than bare atomic",
        scale: (1.0, "ns/op"),
    },
    Group {
        name: "counter_lookup_2_labels",
        subject: SIGHTLINE,
        title: "(b) counter!(\"name\", \"a\" => \"x\", \"b\" => \"y\") looked up every call",
        target: Target::MaxNs(25.0),
        target_text: "<= 25 ns",
        scale: (1.0, "ns/op"),
    },
    Group {
        name: "histogram_record",
        subject: SIGHTLINE,
        title: "(c) histogram record, cached handle, default buckets",
        target: Target::MaxNs(12.0),
        target_text: "<= 12 ns",
        scale: (1.0, "ns/op"),
    },
    Group {
        name: "render_100k",
        subject: SIGHTLINE,
        title: "(d) render 100k counter series to Prometheus text",
        target: Target::MaxNs(25e6),
        target_text: "<= 25 ms",
        scale: (1e6, "ms/render"),
    },
    Group {
        name: "execution",
        subject: "track_empty_future",
        title: "execution tracking: track() around an empty future, against a bare Instant::now() pair",
        target: Target::MaxNs(300.0),
        target_text: "<= 300 ns",
        scale: (1.0, "ns/op"),
    },
    // The host group holds two targets; its table is printed once.
    Group {
        name: "host",
        subject: "collect",
        title: "host collector: one collection, and a scrape of host + process metrics",
        target: Target::MaxNs(2e6),
        target_text: "<= 2 ms per collection",
        scale: (1e3, "us/op"),
    },
    Group {
        name: "host",
        subject: "scrape",
        title: "host collector: one collection, and a scrape of host + process metrics",
        target: Target::MaxNs(1e6),
        target_text: "<= 1 ms per scrape",
        scale: (1e3, "us/op"),
    },
    Group {
        name: "span_lifecycle",
        subject: SIGHTLINE,
        title: "tracing: a span created, entered, exited and closed; span store on, logs off",
        target: Target::MaxNs(1e3),
        target_text: "<= 1 us",
        scale: (1.0, "ns/op"),
    },
    Group {
        name: "span_lifecycle_otlp",
        subject: SIGHTLINE,
        title: "tracing: the same span with OTLP/HTTP export to a local sink",
        target: Target::MaxNs(3e3),
        target_text: "<= 3 us",
        scale: (1.0, "ns/op"),
    },
    // The JSON group holds two targets; its table is printed once.
    Group {
        name: "json_log",
        subject: SIGHTLINE,
        title: "tracing: one JSON log line (event and span with 2 fields each) to io::sink",
        target: Target::MinPerSecond(500e3, "lines"),
        target_text: ">= 500k lines/s",
        scale: (1.0, "ns/line"),
    },
    Group {
        name: "json_log",
        subject: "sightline_redacted",
        title: "tracing: one JSON log line (event and span with 2 fields each) to io::sink",
        target: Target::MinPerSecond(200e3, "lines"),
        target_text: ">= 200k lines/s with redaction",
        scale: (1.0, "ns/line"),
    },
];

/// The memory target: 100k series held in at most 40 MB (decimal megabytes).
const MEMORY_TARGET_BYTES: f64 = 40e6;

fn bench(options: &BenchOptions) -> Result<ExitCode> {
    let root = workspace_root();
    let target_dir = target_directory(&root)?;
    let (warm_up, measurement) = if options.quick { ("0.5", "1") } else { ("1", "3") };
    // Results older than this run are not read, so a filtered or failed run never reports stale numbers.
    let started = SystemTime::now();

    // The benchmark targets, by package: the metric model against the anchors, the collectors, redaction
    // (against a naive regex-per-rule baseline), tracing.
    let runs: [(&str, &[&str]); 4] = [
        ("sightline-export", &["core"]),
        ("sightline-collectors", &["execution", "host"]),
        ("sightline-core", &["redact"]),
        ("sightline-trace", &["trace"]),
    ];
    for (package, benches) in runs {
        let mut command = Command::new(cargo());
        command.args(["bench", "-p", package]);
        if package == "sightline-core" {
            command.args(["--features", "redact"]);
        }
        for bench in benches {
            command.args(["--bench", bench]);
        }
        command
            .arg("--")
            .args(["--warm-up-time", warm_up, "--measurement-time", measurement])
            .args(&options.criterion_args)
            .current_dir(&root)
            // Absolute, so that criterion (which runs in the package's directory) and the bench's memory
            // report agree with this process on where results go.
            .env("CARGO_TARGET_DIR", &target_dir);
        let code = status(&mut command, "`cargo bench`")?;
        if code != 0 {
            bail!("`cargo bench -p {package}` failed with exit code {code}");
        }
    }

    let criterion_dir = target_dir.join("criterion");
    let mut report = String::new();
    let mut benchmarks = Vec::new();
    let mut verdicts = Vec::new();
    let mut previous = "";
    for group in &GROUPS {
        let results = read_group(&criterion_dir.join(group.name), started)?;
        if results.is_empty() {
            eprintln!("warning: no fresh results for `{}` (filtered out?)", group.name);
            continue;
        }
        let (table, entry, verdict) = tabulate(group, &results);
        // A group listed twice (two targets) gets one table.
        if group.name != previous {
            report.push_str(&table);
            benchmarks.push(entry);
        }
        previous = group.name;
        verdicts.extend(verdict);
    }

    let memory_path = target_dir.join("bench/memory.json");
    let memory = match read_fresh_json(&memory_path, started)? {
        Some(memory) => {
            let (table, verdict) = tabulate_memory(&memory)?;
            report.push_str(&table);
            verdicts.extend(verdict);
            memory
        }
        None => {
            eprintln!("warning: no fresh {} (filtered out?)", memory_path.display());
            Value::Null
        }
    };

    report.push_str("### Targets\n\n| benchmark | target | sightline | verdict |\n|---|---|---|---|\n");
    for (name, target, value, met) in &verdicts {
        let _ = writeln!(report, "| {name} | {target} | {value} | {} |", if *met { "met" } else { "MISSED" });
    }
    println!("\n{report}");

    let out = json!({
        "generated_by": "cargo xtask bench",
        "quick": options.quick,
        "warm_up_time_s": warm_up.parse::<f64>().unwrap_or(0.0),
        "measurement_time_s": measurement.parse::<f64>().unwrap_or(0.0),
        "unix_time_s": started.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "benchmarks": benchmarks,
        "memory": memory,
        "targets": verdicts
            .iter()
            .map(|(name, target, value, met)| json!({
                "benchmark": name, "target": target, "sightline": value, "met": met,
            }))
            .collect::<Vec<_>>(),
    });
    let out_path = target_dir.join("bench/core.json");
    std::fs::create_dir_all(target_dir.join("bench"))?;
    std::fs::write(&out_path, serde_json::to_string_pretty(&out)?)
        .with_context(|| format!("could not write {}", out_path.display()))?;
    println!("Written to {}", out_path.display());
    Ok(ExitCode::SUCCESS)
}

/// The workspace's target directory as cargo resolves it (`CARGO_TARGET_DIR`, config, or `target/`).
fn target_directory(root: &Path) -> Result<PathBuf> {
    let output = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .output()
        .context("could not start `cargo metadata`")?;
    if !output.status.success() {
        bail!("`cargo metadata` failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
    let metadata: Value = serde_json::from_slice(&output.stdout).context("`cargo metadata` output")?;
    let dir = metadata["target_directory"].as_str().context("`cargo metadata` gave no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// One implementation's result in one group.
#[derive(Debug)]
struct Measured {
    name: String,
    mean_ns: f64,
    lower_ns: f64,
    upper_ns: f64,
    median_ns: f64,
}

/// Every implementation under `target/criterion/<group>/` with an estimate from this run, bare atomic
/// first, then Sightline, the anchors, and any others.
fn read_group(dir: &Path, since: SystemTime) -> Result<Vec<Measured>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut results = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(estimates) = read_fresh_json(&entry.path().join("new/estimates.json"), since)? else {
            continue;
        };
        let number = |stat: &str, field: &str| {
            estimates[stat][field].as_f64().or_else(|| estimates[stat]["confidence_interval"][field].as_f64())
        };
        let mean_ns = number("mean", "point_estimate")
            .with_context(|| format!("no mean.point_estimate in {}", entry.path().display()))?;
        results.push(Measured {
            name,
            mean_ns,
            lower_ns: number("mean", "lower_bound").unwrap_or(f64::NAN),
            upper_ns: number("mean", "upper_bound").unwrap_or(f64::NAN),
            median_ns: number("median", "point_estimate").unwrap_or(f64::NAN),
        });
    }
    let rank = |name: &str| match name {
        BARE => 0,
        SIGHTLINE => 1,
        _ if ANCHORS.contains(&name) => 2 + ANCHORS.iter().position(|a| *a == name).unwrap_or(0),
        _ => 10,
    };
    results.sort_by(|a, b| rank(&a.name).cmp(&rank(&b.name)).then_with(|| a.name.cmp(&b.name)));
    Ok(results)
}

/// The JSON at `path` if it was written at or after `since`.
fn read_fresh_json(path: &Path, since: SystemTime) -> Result<Option<Value>> {
    let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) else { return Ok(None) };
    if modified < since {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))?;
    Ok(Some(serde_json::from_str(&text).with_context(|| format!("could not parse {}", path.display()))?))
}

type Verdict = (String, String, String, bool);

fn ratio(value: f64, base: Option<f64>) -> Option<f64> {
    base.filter(|b| *b > 0.0).map(|b| value / b)
}

fn fmt_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

fn fmt_time(ns: f64, (divisor, _): (f64, &str)) -> String {
    let value = ns / divisor;
    if value < 100.0 { format!("{value:.2}") } else { format!("{value:.1}") }
}

fn best_anchor(results: impl Iterator<Item = (String, f64)>) -> Option<(String, f64)> {
    results.filter(|(name, _)| ANCHORS.contains(&name.as_str())).min_by(|a, b| a.1.total_cmp(&b.1))
}

fn tabulate(group: &Group, results: &[Measured]) -> (String, Value, Option<Verdict>) {
    let bare = results.iter().find(|m| m.name == BARE).map(|m| m.mean_ns);
    let best = best_anchor(results.iter().map(|m| (m.name.clone(), m.mean_ns)));
    let best_ns = best.as_ref().map(|(_, ns)| *ns);
    let unit = group.scale.1;

    let mut verdict = None;
    let mut table = format!(
        "### {} (`{}`)\n\n| impl | {unit} | vs bare atomic | vs best anchor{} | target |\n|---|---:|---:|---:|---|\n",
        group.title,
        group.name,
        best.as_ref().map(|(name, _)| format!(" ({name})")).unwrap_or_default(),
    );
    let mut rows = Vec::new();
    for m in results {
        let vs_bare = ratio(m.mean_ns, bare);
        let vs_anchor = ratio(m.mean_ns, best_ns);
        let mut target_cell = String::new();
        if m.name == group.subject {
            let (met, value) = match group.target {
                Target::RatioToBare(limit) => match vs_bare {
                    Some(r) => (r <= limit, fmt_ratio(Some(r))),
                    None => (false, "no bare_atomic result".to_owned()),
                },
                Target::MaxNs(limit) => {
                    (m.mean_ns <= limit, format!("{} {unit}", fmt_time(m.mean_ns, group.scale)))
                }
                Target::MinPerSecond(limit, what) => {
                    let per_second = 1e9 / m.mean_ns;
                    (per_second >= limit, format!("{:.0}k {what}/s", per_second / 1e3))
                }
            };
            target_cell = format!("{}: {}", group.target_text, if met { "met" } else { "MISSED" });
            verdict = Some((group.name.to_owned(), group.target_text.to_owned(), value, met));
        }
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {target_cell} |",
            m.name,
            fmt_time(m.mean_ns, group.scale),
            if matches!(group.target, Target::RatioToBare(_)) || group.name == "histogram_record" {
                fmt_ratio(vs_bare)
            } else {
                "-".to_owned()
            },
            fmt_ratio(vs_anchor),
        );
        rows.push(json!({
            "impl": m.name,
            "mean_ns": m.mean_ns,
            "mean_ci_ns": [m.lower_ns, m.upper_ns],
            "median_ns": m.median_ns,
            "ratio_to_bare_atomic": vs_bare,
            "ratio_to_best_anchor": vs_anchor,
        }));
    }
    table.push('\n');
    let entry = json!({
        "group": group.name,
        "title": group.title,
        "best_anchor": best.map(|(name, _)| name),
        "results": rows,
        "target": verdict.as_ref().map(|(_, text, value, met)| json!({
            "description": text, "sightline": value, "met": met,
        })),
    });
    (table, entry, verdict)
}

fn tabulate_memory(memory: &Value) -> Result<(String, Option<Verdict>)> {
    let series = memory["series"].as_f64().context("memory.json has no `series`")?;
    let results = memory["results"].as_object().context("memory.json has no `results`")?;
    let bytes = |name: &str| results.get(name).and_then(Value::as_f64);
    let best = best_anchor(results.iter().filter_map(|(n, v)| Some((n.clone(), v.as_f64()?))));
    let mut table = format!(
        "### Memory: {series} counter series (2 labels) held (`memory`)\n\n\
         | impl | MB | bytes/series | allocations/series | vs best anchor{} | target |\n\
         |---|---:|---:|---:|---:|---|\n",
        best.as_ref().map(|(name, _)| format!(" ({name})")).unwrap_or_default(),
    );
    let mut names: Vec<&String> = results.keys().collect();
    names.sort_by_key(|n| (n.as_str() != SIGHTLINE, !ANCHORS.contains(&n.as_str()), n.as_str()));
    let mut verdict = None;
    for name in names {
        let Some(b) = bytes(name) else { continue };
        let mut target_cell = String::new();
        if name == SIGHTLINE {
            let met = b <= MEMORY_TARGET_BYTES;
            target_cell = format!("<= 40 MB: {}", if met { "met" } else { "MISSED" });
            verdict = Some(("memory".to_owned(), "<= 40 MB".to_owned(), format!("{:.1} MB", b / 1e6), met));
        }
        let allocations = memory["allocations"][name.as_str()]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |a| format!("{:.2}", a / series));
        let _ = writeln!(
            table,
            "| {name} | {:.1} | {:.0} | {allocations} | {} | {target_cell} |",
            b / 1e6,
            b / series,
            fmt_ratio(ratio(b, best.as_ref().map(|(_, v)| *v))),
        );
    }
    table.push('\n');
    Ok((table, verdict))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn bench_options() {
        let options = BenchOptions::parse(&args(&["--quick", "--", "render_100k"])).unwrap_or_default();
        assert!(options.quick);
        assert_eq!(options.criterion_args, ["render_100k"]);
        assert!(BenchOptions::parse(&args(&["--fast"])).is_err());
    }

    #[test]
    fn sightline_target_is_judged_against_bare_atomic() {
        let measured = |name: &str, ns: f64| Measured {
            name: name.to_owned(),
            mean_ns: ns,
            lower_ns: ns,
            upper_ns: ns,
            median_ns: ns,
        };
        let results =
            [measured(BARE, 1.0), measured(SIGHTLINE, 1.2), measured("prometheus", 2.0), measured("x", 9.0)];
        let (table, entry, verdict) = tabulate(&GROUPS[0], &results);
        assert!(table.contains("| sightline | 1.20 | 1.20x | 0.60x | <= 1.3x bare atomic: met |"), "{table}");
        assert_eq!(entry["best_anchor"], "prometheus");
        assert!(verdict.is_some_and(|v| v.3));
    }

    #[test]
    fn rate_target() {
        let measured = |name: &str, ns: f64| Measured {
            name: name.to_owned(),
            mean_ns: ns,
            lower_ns: ns,
            upper_ns: ns,
            median_ns: ns,
        };
        let results = [measured(SIGHTLINE, 2500.0), measured("tracing_subscriber_json", 2000.0)];
        let json = GROUPS.iter().find(|g| g.name == "json_log").unwrap_or(&GROUPS[0]);
        let (table, _, verdict) = tabulate(json, &results);
        assert!(table.contains("| sightline | 2500.0 | - | 1.25x | >= 500k lines/s: MISSED |"), "{table}");
        assert_eq!(verdict.map(|v| v.2), Some("400k lines/s".to_owned()));
    }

    #[test]
    fn memory_target() {
        let memory = json!({
            "series": 100000,
            "results": {"sightline": 50e6, "prometheus": 60e6},
            "allocations": {"sightline": 250000},
        });
        let (table, verdict) = tabulate_memory(&memory).unwrap_or_default();
        assert!(table.contains("| sightline | 50.0 | 500 | 2.50 | 0.83x | <= 40 MB: MISSED |"), "{table}");
        assert!(table.contains("| prometheus | 60.0 | 600 | - | 1.00x |  |"), "{table}");
        assert!(verdict.is_some_and(|v| !v.3));
    }
}
