//! Load test of the audit trail against the issue's performance targets (a plain `harness = false` binary in
//! the style of opentelemetry-rust's `stress/`, not criterion: the subjects are sustained rates and
//! latency percentiles on a large store, not nanosecond loops).
//!
//! ```sh
//! cargo bench -p sightline-audit --bench audit -- --backend sqlite --events 1000000
//! cargo bench -p sightline-audit --bench audit -- --backend postgres --events 1000000
//! cargo bench -p sightline-audit --bench audit -- --http --events 300000   # needs target/release/sightline
//! ```
//!
//! Store modes (`--backend sqlite|postgres`):
//!
//! 1. **Ingest**: `--events N` events (shape below, generated before the clock starts) go through one
//!    [`AuditWriter`] (default [`WriterConfig`], redaction on as in the server) from `--record-tasks` tasks
//!    calling `record()` one event at a time (backpressure when the queue is full) and `--durable-tasks`
//!    tasks calling `record_all_durable` with batches of 100. The rate is N over the time from the first
//!    event to the last commit. The store is wrapped to count each commit's batch size and time and each
//!    full-text indexing pass, so the report says where the writer's time went. Meanwhile a probe takes
//!    the unique word of the last event of an acknowledged durable batch (one probe at a time) and searches
//!    for it every 50 ms until the full-text index finds it: the ack-to-searchable lag under load.
//! 2. **Queries** on the resulting store, one client, `--queries` (50) of each with varying parameters, a
//!    page of 100 (the API's default): a full-text term (vocabulary words of every frequency rank), a
//!    unique word, `actor + outcome` within a 1 h window, `action` within 1 h, and `count_by` actor and
//!    action over the whole store. p50/p99.
//! 3. **verify** of the whole chain: events/s.
//!
//! PostgreSQL runs in a schema of its own (`audit_bench_<uuid>`), dropped afterwards, on
//! `SIGHTLINE_TEST_POSTGRES_URL` or `postgres://postgres@127.0.0.1:5432/test`.
//!
//! `--http` starts `sightline serve` (`--server PATH`, default `<target dir>/release/sightline`) on a free
//! port with a temporary data directory (the default SQLite store) and `SIGHTLINE_API_TOKENS`, then
//! `--clients` (6) threads post the events as JSON arrays of 1,000 over keep-alive HTTP/1.1 connections;
//! a probe thread measures the ack-to-searchable lag through `GET /api/v1/audit/events?q=`.
//!
//! The dataset: 1,000 actors, 80% of events from the 10 busiest (8% each); 50 actions in 8 namespaces;
//! outcomes success/failure/denied/error 90/5/3/2; a 60 to 120-byte message of words drawn from a
//! 200-word vocabulary by a Zipf law (rank r with weight 1/r, so the commonest word is in most messages and
//! the rarest in about 1%) plus one unique word (`zq` + base 36 of the event's number); 2 to 5 attributes;
//! a target, component and request id; timestamps spread evenly over the last 7 days, increasing.
//!
//! Results are printed as markdown and merged into `<target dir>/bench/audit.json` (`--out PATH`), one
//! entry per mode.
#![allow(clippy::unwrap_used, clippy::print_stderr)] // A bench: a failure is a panic with its message.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use sightline_audit::query::Query;
use sightline_audit::store::{AuditStore, ChainLink, Checkpoint, Page, StoreError};
use sightline_audit::{
    ActionPattern, AuditEvent, AuditWriter, Cursor, Facet, Hash, Outcome, Severity, StoredEvent, WriterConfig,
};

// === targets ===

const TARGET_SQLITE_INGEST: f64 = 100_000.0;
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
const TARGET_PG_INGEST: f64 = 50_000.0;
const TARGET_HTTP_INGEST: f64 = 30_000.0;
const TARGET_LAG_MS: f64 = 1_000.0;
const TARGET_TERM_MS: f64 = 20.0;
const TARGET_FILTER_MS: f64 = 10.0;
const TARGET_COUNT_MS: f64 = 100.0;
const TARGET_VERIFY: f64 = 500_000.0;

/// The page size the API uses by default.
const PAGE: usize = 100;
/// Events per `record_all_durable` call, and per chunk handed to a `record()` task.
const CHUNK: usize = 100;
/// Events per HTTP request.
const HTTP_BATCH: usize = 1_000;
const TOKEN: &str = "audit-bench-token";
/// How often the lag probe repeats its search: the lag's resolution. Each search costs the store work (a
/// word in one event takes about 13 ms on PostgreSQL), so the probe must not search flat out.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);

// === arguments ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
struct Args {
    backend: Backend,
    events: usize,
    http: bool,
    server: Option<PathBuf>,
    queries: usize,
    record_tasks: usize,
    durable_tasks: usize,
    clients: usize,
    out: Option<PathBuf>,
    /// SQLite: keep the database at this path (and with `--skip-ingest`, query an existing one).
    db: Option<PathBuf>,
    skip_ingest: bool,
    /// PostgreSQL: use (and keep) this schema rather than a fresh one that is dropped afterwards.
    pg_schema: Option<String>,
    /// Skip the queries (for profiling `verify` alone).
    skip_queries: bool,
    /// Also time `verify` reading whole events, as it did before it hashed rows (same session, same store).
    verify_whole_too: bool,
    /// The writer's `max_batch` (the default `WriterConfig`'s when not given).
    max_batch: Option<usize>,
}

const USAGE: &str = "usage: cargo bench -p sightline-audit --bench audit -- [--backend sqlite|postgres] \
[--events N] [--http [--server PATH] [--clients N]] [--queries N] [--record-tasks N] [--durable-tasks N] \
[--db PATH | --pg-schema NAME] [--skip-ingest] [--skip-queries] [--verify-whole-too] [--max-batch N] [--out PATH]";

impl Args {
    fn parse() -> Result<Self, String> {
        let mut args = Args {
            backend: Backend::Sqlite,
            events: 1_000_000,
            http: false,
            server: None,
            queries: 50,
            record_tasks: 32,
            durable_tasks: 4,
            clients: 6,
            out: None,
            db: None,
            skip_ingest: false,
            pg_schema: None,
            skip_queries: false,
            verify_whole_too: false,
            max_batch: None,
        };
        let mut events_given = false;
        let mut it = std::env::args().skip(1);
        let number = |value: Option<String>, name: &str| -> Result<usize, String> {
            value
                .map(|v| v.replace(['_', ','], ""))
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} takes a positive number"))
        };
        while let Some(arg) = it.next() {
            match arg.as_str() {
                // cargo bench passes `--bench` to every bench binary.
                "--bench" => {}
                "--backend" => {
                    args.backend = match it.next().as_deref() {
                        Some("sqlite") => Backend::Sqlite,
                        Some("postgres" | "pg") => Backend::Postgres,
                        _ => return Err("--backend takes sqlite or postgres".into()),
                    }
                }
                "--events" => {
                    args.events = number(it.next(), "--events")?;
                    events_given = true;
                }
                "--http" => args.http = true,
                "--server" => args.server = Some(it.next().ok_or("--server takes a path")?.into()),
                "--queries" => args.queries = number(it.next(), "--queries")?,
                "--record-tasks" => args.record_tasks = number(it.next(), "--record-tasks")?,
                "--durable-tasks" => args.durable_tasks = number(it.next(), "--durable-tasks")?,
                "--clients" => args.clients = number(it.next(), "--clients")?,
                "--out" => args.out = Some(it.next().ok_or("--out takes a path")?.into()),
                "--db" => args.db = Some(it.next().ok_or("--db takes a path")?.into()),
                "--skip-ingest" => args.skip_ingest = true,
                "--skip-queries" => args.skip_queries = true,
                "--verify-whole-too" => args.verify_whole_too = true,
                "--max-batch" => args.max_batch = Some(number(it.next(), "--max-batch")?),
                "--pg-schema" => args.pg_schema = Some(it.next().ok_or("--pg-schema takes a name")?),
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if args.http && !events_given {
            args.events = 300_000;
        }
        if args.skip_ingest && args.db.is_none() && args.pg_schema.is_none() {
            return Err("--skip-ingest needs --db PATH or --pg-schema NAME (an existing store)".into());
        }
        Ok(args)
    }
}

// === the dataset ===

/// splitmix64: fast, deterministic, good enough for a dataset.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const NAMESPACES: [(&str, &str, &[&str]); 8] = [
    (
        "auth",
        "session",
        &["login", "logout", "mfa_challenge", "password_reset", "token_refresh", "sso_callback", "revoke"],
    ),
    ("repo", "repository", &["create", "delete", "push", "clone", "archive", "transfer", "settings_update"]),
    ("user", "user", &["invite", "remove", "role_change", "profile_update", "suspend", "unsuspend"]),
    ("scan", "scan", &["start", "finish", "cancel", "schedule", "export_report", "rule_update"]),
    ("alert", "alert", &["fire", "resolve", "ack", "silence", "route_update", "escalate", "comment"]),
    ("config", "config", &["read", "update", "rollback", "import", "export", "validate"]),
    ("token", "api_token", &["create", "revoke", "rotate", "use", "list"]),
    (
        "billing",
        "invoice",
        &["view", "plan_change", "payment_method_update", "seat_add", "seat_remove", "refund"],
    ),
];

/// 200 words, most common first (the Zipf rank is the position).
#[rustfmt::skip]
const VOCABULARY: [&str; 200] = [
    "the", "user", "from", "request", "changed", "settings", "via", "web", "console", "access", "granted",
    "session", "repository", "policy", "with", "new", "for", "api", "token", "updated", "after", "review",
    "scheduled", "job", "completed", "team", "member", "role", "admin", "branch", "protection", "rule",
    "enabled", "disabled", "password", "reset", "email", "verified", "login", "attempt", "failed",
    "invalid", "credentials", "blocked", "rate", "limit", "exceeded", "quota", "warning", "scan", "started",
    "finished", "vulnerability", "critical", "finding", "dependency", "outdated", "license", "check",
    "passed", "alert", "fired", "resolved", "acknowledged", "silenced", "escalated", "pager", "oncall",
    "rotation", "route", "webhook", "delivery", "retried", "timeout", "upstream", "service", "unavailable",
    "config", "rollback", "applied", "imported", "exported", "validated", "schema", "migration", "billing",
    "invoice", "payment", "method", "plan", "upgraded", "downgraded", "seat", "added", "removed", "refund",
    "issued", "customer", "support", "ticket", "opened", "closed", "comment", "mention", "project",
    "archived", "transferred", "owner", "organisation", "sso", "provider", "saml", "assertion", "expired",
    "certificate", "renewed", "key", "rotated", "revoked", "audit", "export", "download", "report",
    "generated", "dashboard", "shared", "link", "public", "private", "visibility", "deploy", "pipeline",
    "artifact", "registry", "image", "pushed", "pulled", "tag", "release", "published", "draft", "merge",
    "approved", "rejected", "conflict", "backup", "restore", "snapshot", "region", "eu", "west", "north",
    "replica", "failover", "maintenance", "window", "cluster", "node", "drained", "cordoned", "secret",
    "mounted", "volume", "quarantine", "file", "malware", "signature", "matched", "ip", "allowlist",
    "denylist", "geo", "anomaly", "detected", "impossible", "travel", "device", "trusted", "unknown",
    "browser", "mobile", "client", "cli", "agent", "version", "deprecated", "endpoint", "called", "legacy",
    "feature", "flag", "toggled", "experiment", "cohort", "sampling", "threshold", "breached", "budget",
    "nightly", "weekly",
];

const COMPONENTS: [&str; 6] = ["api", "web", "scanner", "scheduler", "worker", "cli"];
const REGIONS: [&str; 6] = ["eu-west-1", "eu-north-1", "us-east-1", "us-west-2", "ap-south-1", "sa-east-1"];
const AGENTS: [&str; 4] =
    ["Mozilla/5.0 (X11; Linux x86_64)", "sightline-cli/1.4.2", "curl/8.5.0", "Go-http-client/1.1"];
const ATTRIBUTE_KEYS: [&str; 10] =
    ["ip", "region", "client", "duration_ms", "count", "reason", "path", "status", "retry", "plan"];
/// The busiest actors: 80% of events come from these 10.
const HOT_ACTORS: usize = 10;
const ACTORS: usize = 1_000;

fn actor_name(n: usize) -> String {
    if n % 10 == 9 { format!("svc-{n:03}") } else { format!("user-{n:03}") }
}

/// The unique word of event `i`: `zq` and `i` in base 36.
fn unique_word(mut i: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut digits = Vec::new();
    loop {
        digits.push(DIGITS[i % 36]);
        i /= 36;
        if i == 0 {
            break;
        }
    }
    digits.reverse();
    format!("zq{}", String::from_utf8(digits).unwrap_or_default())
}

fn all_actions() -> Vec<(String, &'static str)> {
    NAMESPACES
        .iter()
        .flat_map(|(ns, target, verbs)| verbs.iter().map(move |v| (format!("{ns}.{v}"), *target)))
        .collect()
}

/// Zipf sampling over the vocabulary.
#[derive(Debug)]
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let u = rng.unit() * total;
        self.cumulative.partition_point(|c| *c < u).min(self.cumulative.len() - 1)
    }
}

#[derive(Debug)]
struct Dataset {
    /// The first event's time; events are spread evenly over `span` from it.
    start: SystemTime,
    span: Duration,
    actions: Vec<(String, &'static str)>,
    zipf: Zipf,
}

impl Dataset {
    fn new() -> Self {
        let span = Duration::from_secs(7 * 86_400);
        // Leave a minute at the end, so that the newest events are not in the future when ingest is fast.
        let start = SystemTime::now() - span - Duration::from_secs(60);
        Self { start, span, actions: all_actions(), zipf: Zipf::new(VOCABULARY.len()) }
    }

    fn timestamp(&self, i: usize, n: usize) -> SystemTime {
        self.start + self.span.mul_f64(i as f64 / n.max(1) as f64)
    }

    /// Event `i` of `n`: the same event for the same `(i, n)`.
    fn event(&self, i: usize, n: usize) -> AuditEvent {
        let mut rng = Rng(i as u64 ^ 0x5EED_0000_0000);
        let actor = if rng.below(100) < 80 { rng.below(HOT_ACTORS) } else { rng.below(ACTORS) };
        let actor_id = actor_name(actor);
        let (action, target_type) = &self.actions[rng.below(self.actions.len())];
        let roll = rng.below(100);
        let outcome = match roll {
            0..90 => Outcome::Success,
            90..95 => Outcome::Failure,
            95..98 => Outcome::Denied,
            _ => Outcome::Error,
        };
        let severity = match outcome {
            Outcome::Success if rng.below(50) == 0 => Severity::Low,
            Outcome::Success => Severity::Info,
            Outcome::Failure => Severity::Low,
            Outcome::Denied => Severity::Medium,
            Outcome::Error if rng.below(10) == 0 => Severity::Critical,
            Outcome::Error => Severity::High,
        };
        let length = 60 + rng.below(61);
        let word = unique_word(i);
        let mut message = actor_id.clone();
        loop {
            let next = VOCABULARY[self.zipf.sample(&mut rng)];
            if message.len() + 1 + next.len() + 1 + word.len() > length {
                break;
            }
            message.push(' ');
            message.push_str(next);
        }
        message.push(' ');
        message.push_str(&word);
        let mut builder = AuditEvent::builder(action.as_str(), actor_id)
            .actor_type(if actor % 10 == 9 { "service" } else { "user" })
            .actor_ip(format!("10.{}.{}.{}", actor / 250, actor % 250, rng.below(250) + 1))
            .user_agent(AGENTS[rng.below(AGENTS.len())])
            .timestamp(self.timestamp(i, n))
            .target(*target_type, format!("{}", rng.below(10_000)))
            .outcome(outcome)
            .severity(severity)
            .component(COMPONENTS[rng.below(COMPONENTS.len())])
            .request_id(format!("req-{:016x}", rng.next()))
            .message(message);
        if rng.below(2) == 0 {
            builder = builder.trace_id(format!("{:016x}{:016x}", rng.next(), rng.next()));
        }
        let attributes = 2 + rng.below(4);
        let mut keys: Vec<&str> = ATTRIBUTE_KEYS.to_vec();
        for _ in 0..attributes {
            let key = keys.swap_remove(rng.below(keys.len()));
            let value: Value = match key {
                "ip" => json!(format!("192.168.{}.{}", rng.below(256), rng.below(256))),
                "region" => json!(REGIONS[rng.below(REGIONS.len())]),
                "client" => json!(format!("sightline-cli/1.{}.{}", rng.below(8), rng.below(20))),
                "duration_ms" => json!(rng.below(5_000)),
                "count" => json!(rng.below(100)),
                "reason" => json!(format!(
                    "{} {}",
                    VOCABULARY[self.zipf.sample(&mut rng)],
                    VOCABULARY[self.zipf.sample(&mut rng)]
                )),
                "path" => json!(format!("/api/v1/{}/{}", target_type, rng.below(10_000))),
                "status" => json!([200, 201, 204, 400, 403, 404, 409, 500][rng.below(8)]),
                "retry" => json!(rng.below(4) == 0),
                _ => json!(["free", "team", "business", "enterprise"][rng.below(4)]),
            };
            builder = builder.attribute(key, value);
        }
        builder.build().unwrap()
    }

    /// All `n` events, in chunks of [`CHUNK`], each with the number of its first event.
    fn chunks(&self, n: usize) -> Vec<(usize, Vec<AuditEvent>)> {
        let started = Instant::now();
        let chunks: Vec<_> = (0..n)
            .step_by(CHUNK)
            .map(|first| (first, (first..(first + CHUNK).min(n)).map(|i| self.event(i, n)).collect()))
            .collect();
        eprintln!("generated {n} events in {:.1} s", started.elapsed().as_secs_f64());
        chunks
    }
}

// === measurement helpers ===

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[derive(Debug, Default)]
struct Stats {
    samples_ms: Vec<f64>,
}

impl Stats {
    fn push(&mut self, d: Duration) {
        self.samples_ms.push(d.as_secs_f64() * 1e3);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut s = self.samples_ms.clone();
        s.sort_by(f64::total_cmp);
        s
    }

    fn p(&self, p: f64) -> f64 {
        percentile(&self.sorted(), p)
    }

    fn max(&self) -> f64 {
        self.samples_ms.iter().copied().fold(f64::NAN, f64::max)
    }

    fn json(&self) -> Value {
        json!({
            "n": self.samples_ms.len(),
            "p50_ms": self.p(50.0),
            "p90_ms": self.p(90.0),
            "p99_ms": self.p(99.0),
            "max_ms": self.max(),
        })
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// User + system CPU seconds of a process (`self` or a pid), from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return f64::NAN };
    // Fields after the command (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return f64::NAN };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    // utime and stime are fields 14 and 15 of the stat line: 12 and 13 after the state.
    (ticks(11) + ticks(12)) / 100.0
}

fn fmt_rate(rate: f64) -> String {
    if rate >= 1e6 { format!("{:.2}M", rate / 1e6) } else { format!("{:.1}k", rate / 1e3) }
}

fn fmt_ms(ms: f64) -> String {
    if ms < 10.0 { format!("{ms:.2} ms") } else { format!("{ms:.1} ms") }
}

/// Rows of the printed table: (measurement, target, measured, verdict).
#[derive(Debug, Default)]
struct Table {
    rows: Vec<(String, String, String, String)>,
}

impl Table {
    fn row(&mut self, what: impl Into<String>, target: &str, measured: String, met: Option<bool>) {
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        self.rows.push((what.into(), target.to_owned(), measured, verdict.to_owned()));
    }

    fn print(&self, title: &str) {
        println!("\n### {title}\n");
        println!("| measurement | target | measured | verdict |\n|---|---|---:|---|");
        for (what, target, measured, verdict) in &self.rows {
            println!("| {what} | {target} | {measured} | {verdict} |");
        }
        println!();
    }

    fn json(&self) -> Value {
        self.rows
            .iter()
            .map(|(what, target, measured, verdict)| {
                json!({"measurement": what, "target": target, "measured": measured, "verdict": verdict})
            })
            .collect()
    }
}

// === a store wrapper that times commits and indexing ===

#[derive(Debug, Default)]
struct Counters {
    /// (seconds since start, batch size, commit seconds) per append.
    commits: Vec<(f64, usize, f64)>,
    /// (seconds since start, events indexed, seconds) per index pass that did work.
    index_passes: Vec<(f64, usize, f64)>,
}

#[derive(Debug)]
struct Timed<S> {
    inner: S,
    started: Instant,
    counters: Mutex<Counters>,
    appended: AtomicU64,
    indexed: AtomicU64,
    /// `scan_chain` reads whole events (`scan`, then hashes each event), as `verify` did before links.
    whole_events: AtomicBool,
}

impl<S> Timed<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            started: Instant::now(),
            counters: Mutex::default(),
            appended: AtomicU64::new(0),
            indexed: AtomicU64::new(0),
            whole_events: AtomicBool::new(false),
        }
    }
}

impl<S: AuditStore> AuditStore for Timed<S> {
    async fn head(&self) -> Result<Option<(i64, Hash)>, StoreError> {
        self.inner.head().await
    }

    async fn append(&self, batch: &[StoredEvent]) -> Result<(), StoreError> {
        let at = self.started.elapsed().as_secs_f64();
        let t = Instant::now();
        self.inner.append(batch).await?;
        let took = t.elapsed().as_secs_f64();
        self.appended.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.counters.lock().unwrap().commits.push((at, batch.len(), took));
        Ok(())
    }

    async fn index_pending(&self, limit: usize) -> Result<usize, StoreError> {
        let at = self.started.elapsed().as_secs_f64();
        let t = Instant::now();
        let n = self.inner.index_pending(limit).await?;
        if n > 0 {
            let took = t.elapsed().as_secs_f64();
            self.indexed.fetch_add(n as u64, Ordering::Relaxed);
            self.counters.lock().unwrap().index_passes.push((at, n, took));
        }
        Ok(n)
    }

    async fn search(&self, query: &Query, limit: usize, cursor: Option<Cursor>) -> Result<Page, StoreError> {
        self.inner.search(query, limit, cursor).await
    }

    async fn count_by(
        &self,
        query: &Query,
        facet: Facet,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.count_by(query, facet, limit).await
    }

    async fn scan(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.scan(after, limit).await
    }

    async fn scan_chain(&self, after: i64, limit: usize) -> Result<Vec<ChainLink>, StoreError> {
        if self.whole_events.load(Ordering::Relaxed) {
            return Ok(self.inner.scan(after, limit).await?.iter().map(ChainLink::of).collect());
        }
        self.inner.scan_chain(after, limit).await
    }

    async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.checkpoint().await
    }

    async fn delete_through(&self, through: i64, limit: usize) -> Result<u64, StoreError> {
        self.inner.delete_through(through, limit).await
    }

    async fn oldest_seq(&self) -> Result<Option<i64>, StoreError> {
        self.inner.oldest_seq().await
    }

    async fn first_seq_since(&self, ts_micros: i64) -> Result<Option<i64>, StoreError> {
        self.inner.first_seq_since(ts_micros).await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.inner.count().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

// === ingest through the writer ===

struct Ingest {
    table_rows: Vec<(String, String, String, Option<bool>)>,
    json: Value,
}

async fn ingest<S: AuditStore>(store: Arc<Timed<S>>, dataset: &Dataset, args: &Args, target: f64) -> Ingest {
    let n = args.events;
    let chunks = dataset.chunks(n);
    let queue = Arc::new(Mutex::new(VecDeque::from(chunks)));
    let mut config = WriterConfig::default();
    if let Some(max_batch) = args.max_batch {
        config.max_batch = max_batch;
    }
    let (writer, task) = AuditWriter::start(store.clone(), config, None).await.unwrap();
    let via_record = Arc::new(AtomicUsize::new(0));
    let via_durable = Arc::new(AtomicUsize::new(0));
    // The lag probe: one acknowledged word at a time.
    let probe_busy = Arc::new(AtomicBool::new(false));
    let (probe_tx, mut probe_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let lag = Arc::new(Mutex::new(Stats::default()));
    let lost = Arc::new(AtomicUsize::new(0));
    let probe = {
        let (store, busy, lag, lost) = (store.clone(), probe_busy.clone(), lag.clone(), lost.clone());
        tokio::spawn(async move {
            while let Some((word, acked)) = probe_rx.recv().await {
                let query = Query { terms: vec![word], ..Query::default() };
                loop {
                    let page = store.search(&query, 1, None).await.unwrap();
                    if !page.events.is_empty() {
                        lag.lock().unwrap().push(acked.elapsed());
                        break;
                    }
                    if acked.elapsed() > Duration::from_secs(60) {
                        lost.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    tokio::time::sleep(PROBE_INTERVAL).await;
                }
                busy.store(false, Ordering::Release);
            }
        })
    };

    let load_before = loadavg();
    let cpu_before = cpu_seconds("self");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.record_tasks {
        let (queue, writer, count) = (queue.clone(), writer.clone(), via_record.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap().pop_front();
                let Some((_, events)) = next else { break };
                count.fetch_add(events.len(), Ordering::Relaxed);
                for event in events {
                    writer.record(event).await.unwrap();
                }
            }
        }));
    }
    for _ in 0..args.durable_tasks {
        let (queue, writer, count) = (queue.clone(), writer.clone(), via_durable.clone());
        let (busy, probe_tx) = (probe_busy.clone(), probe_tx.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap().pop_front();
                let Some((first, events)) = next else { break };
                let len = events.len();
                count.fetch_add(len, Ordering::Relaxed);
                writer.record_all_durable(events).await.unwrap();
                if !busy.swap(true, Ordering::AcqRel) {
                    let _ = probe_tx.send((unique_word(first + len - 1), Instant::now()));
                }
            }
        }));
    }
    drop(probe_tx);
    for task in tasks {
        task.await.unwrap();
    }
    let producers_done = started.elapsed();
    while writer.queued() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let committed = started.elapsed();
    let cpu_committed = cpu_seconds("self") - cpu_before;
    while store.indexed.load(Ordering::Relaxed) < n as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let indexed = started.elapsed();
    writer.shutdown(task).await;
    probe.await.unwrap();
    let load_after = loadavg();

    let rate = n as f64 / committed.as_secs_f64();
    let counters = std::mem::take(&mut *store.counters.lock().unwrap());
    let mut sizes: Vec<f64> = counters.commits.iter().map(|c| c.1 as f64).collect();
    sizes.sort_by(f64::total_cmp);
    let commit_seconds: f64 = counters.commits.iter().map(|c| c.2).sum();
    let index_seconds: f64 = counters.index_passes.iter().map(|c| c.2).sum();
    let mut index_sizes: Vec<f64> = counters.index_passes.iter().map(|c| c.1 as f64).collect();
    index_sizes.sort_by(f64::total_cmp);
    // Committed events per 5 s window, to see whether the rate holds as the store grows. Commit times
    // count from the store's wrapping, before the events were generated; windows count from the clock's
    // start, and the last one is as long as what is left.
    let windows: Vec<f64> = {
        let offset = started.saturating_duration_since(store.started).as_secs_f64();
        let total = committed.as_secs_f64();
        let mut w = vec![0.0; (total / 5.0).ceil().max(1.0) as usize];
        for (at, size, took) in &counters.commits {
            let i = (((at + took - offset).max(0.0) / 5.0) as usize).min(w.len() - 1);
            w[i] += *size as f64;
        }
        let last = w.len() - 1;
        for (i, events) in w.iter_mut().enumerate() {
            let length = if i == last { (total - 5.0 * last as f64).max(0.001) } else { 5.0 };
            *events /= length;
        }
        w
    };
    let lag = std::mem::take(&mut *lag.lock().unwrap());
    let lost = lost.load(Ordering::Relaxed);
    let lag_max = if lost > 0 { f64::INFINITY } else { lag.max() };

    eprintln!(
        "ingest: {n} events committed in {:.2} s ({}/s); producers done at {:.2} s; indexed at {:.2} s; \
         {} commits (median {} events), {:.1} s in append, {} index passes, {:.1} s in index_pending; \
         bench process CPU {:.1} s",
        committed.as_secs_f64(),
        fmt_rate(rate),
        producers_done.as_secs_f64(),
        indexed.as_secs_f64(),
        sizes.len(),
        percentile(&sizes, 50.0),
        commit_seconds,
        index_sizes.len(),
        index_seconds,
        cpu_committed,
    );
    eprintln!(
        "committed events/s per 5 s window: {:?}",
        windows.iter().map(|r| r.round()).collect::<Vec<_>>()
    );

    let table_rows = vec![
        (
            format!("ingest through `AuditWriter`, {n} events"),
            format!(">= {}/s", fmt_rate(target)),
            format!("{}/s", fmt_rate(rate)),
            Some(rate >= target),
        ),
        (
            "ack to searchable (full-text lag), p50 / p99 / max".to_owned(),
            "<= 1 s".to_owned(),
            format!(
                "{} / {} / {} ({} probes)",
                fmt_ms(lag.p(50.0)),
                fmt_ms(lag.p(99.0)),
                fmt_ms(lag_max),
                lag.samples_ms.len()
            ),
            Some(lag_max <= TARGET_LAG_MS),
        ),
        (
            "ingest including full-text indexing of the last event".to_owned(),
            String::new(),
            format!("{}/s", fmt_rate(n as f64 / indexed.as_secs_f64())),
            None,
        ),
        (
            "commits: count, median / max batch, time in `append`".to_owned(),
            String::new(),
            format!(
                "{}, {} / {}, {:.1} s",
                sizes.len(),
                percentile(&sizes, 50.0),
                percentile(&sizes, 100.0),
                commit_seconds
            ),
            None,
        ),
        (
            "full-text passes: count, median size, time in `index_pending`".to_owned(),
            String::new(),
            format!("{}, {}, {:.1} s", index_sizes.len(), percentile(&index_sizes, 50.0), index_seconds),
            None,
        ),
    ];
    let json = json!({
        "events": n,
        "record_tasks": args.record_tasks,
        "durable_tasks": args.durable_tasks,
        "via_record": via_record.load(Ordering::Relaxed),
        "via_record_all_durable": via_durable.load(Ordering::Relaxed),
        "committed_s": committed.as_secs_f64(),
        "events_per_s": rate,
        "target_events_per_s": target,
        "met": rate >= target,
        "producers_done_s": producers_done.as_secs_f64(),
        "indexed_s": indexed.as_secs_f64(),
        "events_per_s_including_index": n as f64 / indexed.as_secs_f64(),
        "bench_process_cpu_s": cpu_committed,
        "commits": {
            "count": sizes.len(),
            "batch_p50": percentile(&sizes, 50.0),
            "batch_p90": percentile(&sizes, 90.0),
            "batch_max": percentile(&sizes, 100.0),
            "append_s": commit_seconds,
        },
        "index_passes": {
            "count": index_sizes.len(),
            "size_p50": percentile(&index_sizes, 50.0),
            "size_max": percentile(&index_sizes, 100.0),
            "index_pending_s": index_seconds,
        },
        "per_5s_window_events_per_s": windows,
        "fts_lag": lag.json(),
        "fts_lag_lost": lost,
        "fts_lag_met": lag_max <= TARGET_LAG_MS,
        "load_before": load_before,
        "load_after": load_after,
    });
    Ingest { table_rows, json }
}

// === queries ===

async fn time_queries<F, Fut>(count: usize, warm_up: usize, mut run: F) -> (Stats, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    for k in 0..warm_up {
        run(count + k).await;
    }
    let mut stats = Stats::default();
    let mut results = 0usize;
    for k in 0..count {
        let t = Instant::now();
        results += run(k).await;
        stats.push(t.elapsed());
    }
    (stats, results as f64 / count.max(1) as f64)
}

/// Every query kind on `store`; `label` (if not empty) is appended to the rows' names.
async fn queries<S: AuditStore>(
    store: &S,
    dataset: &Dataset,
    args: &Args,
    table: &mut Table,
    label: &str,
) -> Value {
    let n = args.events;
    let q = args.queries;
    let mut rng = Rng(42);
    let mut out = serde_json::Map::new();
    let mut record = |table: &mut Table,
                      key: &str,
                      what: String,
                      target: Option<(f64, &str)>,
                      stats: &Stats,
                      mean: f64| {
        let p50 = stats.p(50.0);
        table.row(
            if label.is_empty() { what } else { format!("{what}, {label}") },
            target.map_or("", |t| t.1),
            format!("p50 {} / p99 {} ({mean:.0} rows)", fmt_ms(p50), fmt_ms(stats.p(99.0))),
            target.map(|t| p50 <= t.0),
        );
        let mut entry = stats.json();
        entry["mean_rows"] = json!(mean);
        if let Some((limit, _)) = target {
            entry["target_p50_ms"] = json!(limit);
            entry["met"] = json!(p50 <= limit);
        }
        out.insert(key.to_owned(), entry);
    };

    // Full text: vocabulary words spread over every frequency rank.
    let words: Vec<&str> =
        (0..q).map(|k| VOCABULARY[(k * VOCABULARY.len() / q.max(1)) % VOCABULARY.len()]).collect();
    let (stats, mean) = time_queries(q, 3, |k| {
        let query = Query { terms: vec![words[k % words.len()].to_owned()], ..Query::default() };
        async move { store.search(&query, PAGE, None).await.unwrap().events.len() }
    })
    .await;
    record(
        table,
        "text_term",
        "full-text term (vocabulary word, every rank), page of 100".into(),
        Some((TARGET_TERM_MS, "p50 <= 20 ms")),
        &stats,
        mean,
    );
    let common: Vec<f64> = stats.samples_ms.iter().take(q / 10).copied().collect();
    eprintln!(
        "text term, the {} commonest words queried: {:?} ms",
        common.len(),
        common.iter().map(|m| (m * 10.0).round() / 10.0).collect::<Vec<_>>()
    );

    let tokens: Vec<usize> = (0..q + 3).map(|_| rng.below(n)).collect();
    let (stats, mean) = time_queries(q, 3, |k| {
        let query = Query { terms: vec![unique_word(tokens[k])], ..Query::default() };
        async move { store.search(&query, PAGE, None).await.unwrap().events.len() }
    })
    .await;
    record(table, "text_unique", "full-text term (a word in one event)".into(), None, &stats, mean);

    // actor + outcome within a 1 h window: busy and quiet actors, every outcome.
    let span_h = (dataset.span.as_secs() / 3600) as usize;
    let params: Vec<(String, Outcome, SystemTime)> = (0..q + 3)
        .map(|k| {
            let actor = if k % 2 == 0 { rng.below(HOT_ACTORS) } else { rng.below(ACTORS) };
            let outcome = [Outcome::Success, Outcome::Failure, Outcome::Denied, Outcome::Error][k % 4];
            let since = dataset.start + Duration::from_secs(3600 * rng.below(span_h) as u64);
            (actor_name(actor), outcome, since)
        })
        .collect();
    let (stats, mean) = time_queries(q, 3, |k| {
        let (actor, outcome, since) = &params[k];
        let query = Query {
            actor: Some(actor.clone()),
            outcome: Some(*outcome),
            since: Some(*since),
            until: Some(*since + Duration::from_secs(3600)),
            ..Query::default()
        };
        async move { store.search(&query, PAGE, None).await.unwrap().events.len() }
    })
    .await;
    record(
        table,
        "filter_actor_outcome_1h",
        "`actor:X outcome:Y` within 1 h, page of 100".into(),
        Some((TARGET_FILTER_MS, "p50 <= 10 ms")),
        &stats,
        mean,
    );

    let actions = all_actions();
    let (stats, mean) = time_queries(q, 3, |k| {
        let since = params[k].2;
        let query = Query {
            action: Some(ActionPattern::Exact(actions[k % actions.len()].0.clone())),
            since: Some(since),
            until: Some(since + Duration::from_secs(3600)),
            ..Query::default()
        };
        async move { store.search(&query, PAGE, None).await.unwrap().events.len() }
    })
    .await;
    record(table, "filter_action_1h", "`action:X` within 1 h, page of 100".into(), None, &stats, mean);

    let (stats, mean) = time_queries(q, 3, |k| {
        let query = Query::default();
        let facet = if k % 2 == 0 { Facet::Actor } else { Facet::Action };
        async move { store.count_by(&query, facet, PAGE).await.unwrap().len() }
    })
    .await;
    record(
        table,
        "count_by_whole_store",
        "`count_by` actor / action, whole store, first 100 values".into(),
        Some((TARGET_COUNT_MS, "<= 100 ms")),
        &stats,
        mean,
    );

    let (stats, mean) = time_queries(q, 3, |k| {
        let since = dataset.start + dataset.span - Duration::from_secs(86_400);
        let query = Query { since: Some(since), ..Query::default() };
        let facet = if k % 2 == 0 { Facet::Actor } else { Facet::Action };
        async move { store.count_by(&query, facet, PAGE).await.unwrap().len() }
    })
    .await;
    record(table, "count_by_last_24h", "`count_by` actor / action, last 24 h".into(), None, &stats, mean);

    Value::Object(out)
}

async fn verify_store<S: AuditStore>(store: &S, table: &mut Table, label: &str) -> Value {
    let t = Instant::now();
    let report = sightline_audit::verify::verify(store).await.unwrap();
    let took = t.elapsed().as_secs_f64();
    assert!(report.ok, "{report:?}");
    let rate = report.checked as f64 / took;
    table.row(
        format!("`verify`, {} events{label}", report.checked),
        ">= 500k/s",
        format!("{}/s ({took:.2} s)", fmt_rate(rate)),
        Some(rate >= TARGET_VERIFY),
    );
    json!({"events": report.checked, "seconds": took, "events_per_s": rate, "met": rate >= TARGET_VERIFY})
}

/// Ingest (unless skipped), queries and verify on one store.
/// Work run between two rounds of queries (PostgreSQL: `VACUUM ANALYZE`).
type Maintenance<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

/// Ingest (unless skipped), queries and verify on one store. `maintenance`, when given, runs after the
/// first round of queries, and the queries are timed again after it.
async fn run_store<S: AuditStore>(
    store: S,
    args: &Args,
    name: &str,
    ingest_target: f64,
    maintenance: Option<(&str, Maintenance<'_>)>,
) -> Value {
    let mut dataset = Dataset::new();
    if args.skip_ingest {
        // Query the time range the stored events cover.
        if let Some(first) = store.scan(0, 1).await.unwrap().first() {
            dataset.start = first.event.timestamp;
        }
    }
    let store = Arc::new(Timed::new(store));
    let mut table = Table::default();
    let load_before = loadavg();
    let ingest_json = if args.skip_ingest {
        Value::Null
    } else {
        let ingest = ingest(store.clone(), &dataset, args, ingest_target).await;
        for (what, target, measured, met) in ingest.table_rows {
            table.row(what, &target, measured, met);
        }
        ingest.json
    };
    let stored = store.count().await.unwrap();
    eprintln!("{stored} events stored; running queries");
    let args_for_queries =
        Args { events: usize::try_from(stored).unwrap_or(args.events).max(1), ..args.clone() };
    let first_queries = if args.skip_queries {
        Value::Null
    } else {
        queries(store.as_ref(), &dataset, &args_for_queries, &mut table, "").await
    };
    let queries_after = match maintenance {
        Some((label, work)) if !args.skip_queries => {
            let t = Instant::now();
            work.await;
            eprintln!("{label}: {:.1} s", t.elapsed().as_secs_f64());
            queries(store.as_ref(), &dataset, &args_for_queries, &mut table, label).await
        }
        _ => Value::Null,
    };
    let verify = verify_store(store.as_ref(), &mut table, "").await;
    let verify_whole = if args.verify_whole_too {
        store.whole_events.store(true, Ordering::Relaxed);
        let whole = verify_store(store.as_ref(), &mut table, ", whole events (as before links)").await;
        store.whole_events.store(false, Ordering::Relaxed);
        whole
    } else {
        Value::Null
    };
    table.print(&format!(
        "{name}: {stored} events (load average before: {load_before}; after: {})",
        loadavg()
    ));
    json!({
        "backend": name,
        "stored_events": stored,
        "ingest": ingest_json,
        "queries": first_queries,
        "queries_after_maintenance": queries_after,
        "verify": verify,
        "verify_whole_events": verify_whole,
        "table": table.json(),
        "load_before": load_before,
        "load_after": loadavg(),
    })
}

async fn run_sqlite(args: &Args) -> Value {
    let temp = sightline_testkit::TempDir::new("audit-bench");
    let path = args.db.clone().unwrap_or_else(|| temp.path().join("audit.db"));
    // The events' file and the full-text index's file beside it, each with its WAL.
    let files = [path.clone(), sightline_audit::sqlite::fts_path(&path)];
    if !args.skip_ingest {
        for (file, suffix) in files.iter().flat_map(|f| ["", "-wal", "-shm"].map(|s| (f, s))) {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }
    let store = sightline_audit::SqliteStore::open(&path).await.unwrap();
    let mut result = run_store(store, args, "sqlite", TARGET_SQLITE_INGEST, None).await;
    let size: u64 = files
        .iter()
        .flat_map(|f| ["", "-wal"].map(|s| format!("{}{s}", f.display())))
        .filter_map(|file| std::fs::metadata(file).ok())
        .map(|m| m.len())
        .sum();
    result["database_bytes"] = json!(size);
    eprintln!(
        "database: {:.0} MB at {} (events and full-text index, with their WALs)",
        size as f64 / 1e6,
        path.display()
    );
    result
}

#[cfg(feature = "postgres")]
async fn run_postgres(args: &Args) -> Value {
    use std::str::FromStr;

    use sqlx::Connection;
    use sqlx::postgres::{PgConnectOptions, PgConnection};

    /// Drops the schema when the run ends, panicked or not.
    struct Schema {
        url: String,
        name: String,
    }
    impl Drop for Schema {
        fn drop(&mut self) {
            let (url, name) = (self.url.clone(), self.name.clone());
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async {
                    let mut conn = PgConnection::connect(&url).await?;
                    sqlx::query("SET lock_timeout = '10s'").execute(&mut conn).await?;
                    sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).execute(&mut conn).await?;
                    conn.close().await
                })
            })
            .join();
            match dropped {
                Ok(Ok(())) => eprintln!("dropped schema {}", self.name),
                other => eprintln!("could not drop schema {}: {other:?}", self.name),
            }
        }
    }

    let Some(url) = sightline_testkit::postgres_url() else {
        eprintln!("PostgreSQL unreachable: skipped");
        return json!({"backend": "postgres", "skipped": "PostgreSQL unreachable"});
    };
    let keep = args.pg_schema.is_some();
    let name =
        args.pg_schema.clone().unwrap_or_else(|| format!("audit_bench_{}", uuid::Uuid::now_v7().simple()));
    let mut conn = PgConnection::connect(&url).await.unwrap();
    if !args.skip_ingest {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).execute(&mut conn).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.unwrap();
    }
    let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&mut conn).await.unwrap();
    let settings: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', \
         'shared_buffers', 'work_mem', 'gin_pending_list_limit', 'max_wal_size', 'wal_level')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let schema = (!keep).then(|| Schema { url: url.clone(), name: name.clone() });
    eprintln!("PostgreSQL {version}, schema {name}, settings {settings:?}");
    let options = PgConnectOptions::from_str(&url).unwrap().options([("search_path", name.as_str())]);
    let store = sightline_audit::PgStore::connect_with(options).await.unwrap();
    // What autovacuum does within minutes of a bulk load: statistics for the planner (the full-text table
    // has none right after it is filled) and the visibility map that index-only scans need.
    let pool = store.pool().clone();
    let vacuum = Box::pin(async move {
        for table in ["audit_events", "audit_fts"] {
            sqlx::query(&format!("VACUUM (ANALYZE) {table}")).execute(&pool).await.unwrap();
        }
    });
    let mut result =
        run_store(store.clone(), args, "postgres", TARGET_PG_INGEST, Some(("after VACUUM ANALYZE", vacuum)))
            .await;
    let size: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::int8 FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
    )
    .bind(&name)
    .fetch_one(store.pool())
    .await
    .unwrap();
    result["database_bytes"] = json!(size);
    result["server_version"] = json!(version);
    result["settings"] = Value::Object(settings.into_iter().map(|(k, v)| (k, json!(v))).collect());
    eprintln!("schema size: {:.0} MB", size as f64 / 1e6);
    drop(store);
    drop(schema);
    result
}

#[cfg(not(feature = "postgres"))]
async fn run_postgres(_: &Args) -> Value {
    eprintln!("built without the `postgres` feature: skipped");
    json!({"backend": "postgres", "skipped": "built without the postgres feature"})
}

// === HTTP ===

/// A minimal HTTP/1.1 client on one keep-alive connection.
#[derive(Debug)]
struct Http {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Http {
    fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Self { reader: BufReader::with_capacity(64 * 1024, stream.try_clone()?), writer: stream })
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad status line {line:?}"))
        })?;
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
                    chunked = true;
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..])?;
                line.clear();
                self.reader.read_line(&mut line)?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok((status, body))
    }
}

/// Kills the server when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn target_dir() -> PathBuf {
    // <target>/release/deps/audit-<hash>
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn run_http(args: &Args) -> Value {
    let binary = args.server.clone().unwrap_or_else(|| target_dir().join("release/sightline"));
    if !binary.is_file() {
        panic!(
            "{} does not exist: build it with `cargo build --release --bin sightline` (same target dir), \
             or pass --server PATH",
            binary.display()
        );
    }
    let n = args.events;
    let dataset = Dataset::new();
    let started_gen = Instant::now();
    let bodies: Vec<(usize, Vec<u8>)> = (0..n)
        .step_by(HTTP_BATCH)
        .map(|first| {
            let events: Vec<AuditEvent> =
                (first..(first + HTTP_BATCH).min(n)).map(|i| dataset.event(i, n)).collect();
            (first + events.len() - 1, serde_json::to_vec(&events).unwrap())
        })
        .collect();
    let body_bytes: usize = bodies.iter().map(|b| b.1.len()).sum();
    eprintln!(
        "generated {} request bodies ({:.0} MB) in {:.1} s",
        bodies.len(),
        body_bytes as f64 / 1e6,
        started_gen.elapsed().as_secs_f64()
    );

    let temp = sightline_testkit::TempDir::new("audit-bench-http");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let server = Server(
        Command::new(&binary)
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(temp.path().join("data"))
            .env("SIGHTLINE_API_TOKENS", TOKEN)
            .env("SIGHTLINE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", binary.display())),
    );
    let pid = server.0.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "sightline did not start listening on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let queue = Arc::new(Mutex::new(VecDeque::from(bodies)));
    let probe_busy = Arc::new(AtomicBool::new(false));
    let (probe_tx, probe_rx) = std::sync::mpsc::channel::<(String, Instant)>();
    let lag = Arc::new(Mutex::new(Stats::default()));
    let lost = Arc::new(AtomicUsize::new(0));
    let probe = {
        let (busy, lag, lost) = (probe_busy.clone(), lag.clone(), lost.clone());
        std::thread::spawn(move || {
            let mut http = Http::connect(addr).unwrap();
            while let Ok((word, acked)) = probe_rx.recv() {
                let path = format!("/api/v1/audit/events?q={word}&limit=1");
                loop {
                    let (status, body) = http.request("GET", &path, b"").unwrap();
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    if memchr(&body, word.as_bytes()) {
                        lag.lock().unwrap().push(acked.elapsed());
                        break;
                    }
                    if acked.elapsed() > Duration::from_secs(60) {
                        lost.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    std::thread::sleep(PROBE_INTERVAL);
                }
                busy.store(false, Ordering::Release);
            }
        })
    };
    let load_before = loadavg();
    let server_cpu_before = cpu_seconds(&pid);
    let client_cpu_before = cpu_seconds("self");
    let request_times = Arc::new(Mutex::new(Stats::default()));
    let started = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|_| {
            let (queue, busy, probe_tx, times) =
                (queue.clone(), probe_busy.clone(), probe_tx.clone(), request_times.clone());
            std::thread::spawn(move || {
                let mut http = Http::connect(addr).unwrap();
                loop {
                    let next = queue.lock().unwrap().pop_front();
                    let Some((last, body)) = next else { break };
                    let t = Instant::now();
                    let (status, answer) = http.request("POST", "/api/v1/audit/events", &body).unwrap();
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                    times.lock().unwrap().push(t.elapsed());
                    if !busy.swap(true, Ordering::AcqRel) {
                        let _ = probe_tx.send((unique_word(last), Instant::now()));
                    }
                }
            })
        })
        .collect();
    drop(probe_tx);
    for client in clients {
        client.join().unwrap();
    }
    let elapsed = started.elapsed();
    let server_cpu = cpu_seconds(&pid) - server_cpu_before;
    let client_cpu = cpu_seconds("self") - client_cpu_before;
    probe.join().unwrap();
    let load_after = loadavg();
    // Everything acknowledged is stored.
    let mut http = Http::connect(addr).unwrap();
    let (_, body) = http.request("GET", "/api/v1/audit/events?count_by=outcome", b"").unwrap();
    let counts: Value = serde_json::from_slice(&body).unwrap();
    let stored: u64 = counts["data"]["counts"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["count"].as_u64()).sum())
        .unwrap_or(0);
    drop(server);

    let rate = n as f64 / elapsed.as_secs_f64();
    let lag = std::mem::take(&mut *lag.lock().unwrap());
    let lost = lost.load(Ordering::Relaxed);
    let lag_max = if lost > 0 { f64::INFINITY } else { lag.max() };
    let requests = std::mem::take(&mut *request_times.lock().unwrap());
    let mut table = Table::default();
    table.row(
        format!(
            "`POST /api/v1/audit/events`, {n} events in batches of {HTTP_BATCH}, {} clients",
            args.clients
        ),
        ">= 30.0k/s",
        format!("{}/s", fmt_rate(rate)),
        Some(rate >= TARGET_HTTP_INGEST),
    );
    table.row(
        "ack to searchable over HTTP, p50 / p99 / max",
        "<= 1 s",
        format!(
            "{} / {} / {} ({} probes)",
            fmt_ms(lag.p(50.0)),
            fmt_ms(lag.p(99.0)),
            fmt_ms(lag_max),
            lag.samples_ms.len()
        ),
        Some(lag_max <= TARGET_LAG_MS),
    );
    table.row(
        "request latency p50 / p99",
        "",
        format!("{} / {}", fmt_ms(requests.p(50.0)), fmt_ms(requests.p(99.0))),
        None,
    );
    table.row(
        "CPU: server / clients, per 1,000 events",
        "",
        format!("{:.1} ms / {:.1} ms", server_cpu / n as f64 * 1e6, client_cpu / n as f64 * 1e6),
        None,
    );
    table.print(&format!(
        "HTTP: {n} events, {stored} stored (load average before: {load_before}; after: {load_after})"
    ));
    assert_eq!(stored, n as u64, "every acknowledged event is stored");
    json!({
        "events": n,
        "stored": stored,
        "batch": HTTP_BATCH,
        "clients": args.clients,
        "seconds": elapsed.as_secs_f64(),
        "events_per_s": rate,
        "target_events_per_s": TARGET_HTTP_INGEST,
        "met": rate >= TARGET_HTTP_INGEST,
        "request_latency": requests.json(),
        "fts_lag": lag.json(),
        "fts_lag_lost": lost,
        "fts_lag_met": lag_max <= TARGET_LAG_MS,
        "server_cpu_s": server_cpu,
        "client_cpu_s": client_cpu,
        "body_bytes": body_bytes,
        "table": table.json(),
        "load_before": load_before,
        "load_after": load_after,
    })
}

fn memchr(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// === main ===

fn main() {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("audit load test: {args:?}; {cores} cores; load average {}", loadavg());
    let (key, result) = if args.http {
        ("http", run_http(&args))
    } else {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        match args.backend {
            Backend::Sqlite => ("sqlite", runtime.block_on(run_sqlite(&args))),
            Backend::Postgres => ("postgres", runtime.block_on(run_postgres(&args))),
        }
    };

    let out = args.out.clone().unwrap_or_else(|| target_dir().join("bench/audit.json"));
    let mut all: Value = std::fs::read_to_string(&out)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    all["generated_by"] = json!("cargo bench -p sightline-audit --bench audit");
    let mut entry = result;
    entry["unix_time_s"] =
        json!(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    entry["cores"] = json!(cores);
    all[key] = entry;
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&out, serde_json::to_string_pretty(&all).unwrap()).unwrap();
    println!("Written to {}", out.display());
}
