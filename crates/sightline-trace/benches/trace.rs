//! The tracing setup's per-span and per-line costs, against the anchor crates in the same run.
//!
//! Groups (results land in `target/criterion/<group>/<impl>/new/estimates.json`):
//!
//! - `span_lifecycle`: `info_span!("request", route = "/api/v1/runs", attempt = 3)` created, entered,
//!   exited and closed (a new root span each time).
//!   - `sightline`: `sightline_trace::builder().without_logs().without_otlp()`, so the span store is on
//!     (10,000 spans, full: every insert evicts the oldest) and the redactor is the default one.
//!   - `sightline_no_store`: the same with `with_span_store(0)`: ids and field collection only.
//!   - `registry`: a bare `tracing_subscriber::Registry`, no layers: the floor under any layer.
//!   - `tracing_opentelemetry`: `tracing-opentelemetry`'s layer (default settings) over an SDK tracer
//!     provider with a batch span processor and an exporter that discards each batch; paced like the
//!     OTLP rows below, because even with that exporter its batch thread falls behind a flat-out loop.
//! - `span_lifecycle_otlp`: the same span with OTLP export on, over HTTP/protobuf to a local sink that
//!   reads every request and answers `200 OK` with an empty body. One exporting thread cannot keep up
//!   with one thread creating spans flat out on this machine, and a span the full queue refuses is cheap,
//!   so a flat-out loop would partly measure the drop path. The main rows are therefore paced: after
//!   every 512 spans (the SDK's export batch) the loop waits, untimed, for the batch to be exported, so
//!   every span is queued and exported and only the application thread's cost is timed.
//!   - `sightline`: `without_logs().with_otlp(..)`, the span store on, paced with `TraceGuard::flush`.
//!   - `tracing_opentelemetry`: `tracing-opentelemetry`'s layer over a batch span processor with the
//!     same OTLP/HTTP exporter (`opentelemetry-otlp`, blocking reqwest client) and the same sink, paced
//!     with `SdkTracerProvider::force_flush`.
//!   - `sightline_unpaced`, `tracing_opentelemetry_unpaced`: flat out with the default queue (2048
//!     spans); their printed drop counts say how much of the time is the drop path.
//! - `json_log`: `info!(user_id = "u-42", attempt = 3, "request handled in 12ms")` inside a span with 2
//!   fields, one JSON line written to `io::sink` (throughput: lines).
//!   - `sightline`: `with_log_format(LogFormat::Json)`, `Redactor::disabled()`, span store on.
//!   - `sightline_redacted`: the same with the default redactor (all built-in rules).
//!   - `sightline_no_store`: `Redactor::disabled()` and `with_span_store(0)`, so the span layer does not
//!     keep the event on the span (it then records nothing of it); `sightline_redacted_no_store`: the
//!     same with the default redactor.
//!   - `tracing_subscriber_json`: `tracing_subscriber::fmt().json()` with the current span (no span list).
//!
//! Export runs on the batch processor's thread, outside the measured thread. After each OTLP bench this
//! prints how many spans were created, how many were not exported (queue full or export failed) and the
//! CPU time the other threads (batch processor, HTTP client, sink) spent per span.
//!
//! `cargo xtask bench` runs this and tabulates the results with the targets.

// Benches opt back in to unwrapping: a failed setup should stop the bench loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter};
use sightline_trace::{LogFormat, LogOutput, OtlpConfig, Protocol, Redactor, TraceGuard};
use tracing::Dispatch;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// The SDK's default export batch: the paced OTLP loops wait for an export after this many spans.
const EXPORT_BATCH: u64 = 512;

/// The measured span: a root span with two fields, created, entered, exited and closed.
#[inline(always)]
fn span_lifecycle_once() {
    let span = tracing::info_span!("request", route = "/api/v1/runs", attempt = 3);
    let entered = span.enter();
    black_box(&entered);
    drop(entered);
    drop(span);
}

/// The measured event: one log line inside the current span.
#[inline(always)]
fn log_line() {
    tracing::info!(user_id = "u-42", attempt = 3, "request handled in 12ms");
}

/// `iters` span lifecycles flat out, timed.
fn unpaced(iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        span_lifecycle_once();
    }
    start.elapsed()
}

/// `iters` span lifecycles in runs of [`EXPORT_BATCH`], each followed by `flush` (which waits until the
/// batch processor has exported what is queued); only the spans are timed.
fn paced(iters: u64, flush: impl Fn()) -> Duration {
    let mut timed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let run = left.min(EXPORT_BATCH);
        timed += unpaced(run);
        left -= run;
        flush();
    }
    timed
}

// === Subscribers ===

fn sightline(builder: sightline_trace::Builder) -> (Dispatch, TraceGuard) {
    builder.with_service_name("bench").build().unwrap()
}

/// An SDK exporter that counts the spans it is given and passes them to `inner`, or discards them.
#[derive(Debug)]
struct Counting {
    inner: Option<opentelemetry_otlp::SpanExporter>,
    exported: Arc<AtomicU64>,
}

impl SpanExporter for Counting {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.exported.fetch_add(batch.len() as u64, Ordering::Relaxed);
        match &self.inner {
            Some(inner) => inner.export(batch).await,
            None => Ok(()),
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.as_ref().map_or(Ok(()), |inner| inner.shutdown_with_timeout(timeout))
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        if let Some(inner) = &mut self.inner {
            inner.set_resource(resource);
        }
    }
}

/// `tracing-opentelemetry` over a batch span processor feeding `inner` (or discarding); returns the
/// subscriber, the provider (to flush) and the count of spans that reached the exporter.
fn tracing_opentelemetry(
    inner: Option<opentelemetry_otlp::SpanExporter>,
) -> (Dispatch, SdkTracerProvider, Arc<AtomicU64>) {
    let exported = Arc::new(AtomicU64::new(0));
    let exporter = Counting { inner, exported: exported.clone() };
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
    let dispatch = Dispatch::new(tracing_subscriber::Registry::default().with(layer));
    (dispatch, provider, exported)
}

fn otlp_http_exporter(endpoint: &str) -> opentelemetry_otlp::SpanExporter {
    use opentelemetry_otlp::WithExportConfig;
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()
        .unwrap()
}

// === The OTLP sink ===

/// An OTLP/HTTP endpoint on 127.0.0.1 that reads each request fully (headers and `Content-Length` body),
/// keeps nothing, and answers `200 OK` with an empty body on the same (keep-alive) connection.
#[derive(Debug)]
struct DiscardingSink {
    endpoint: String,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl DiscardingSink {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let (r, b) = (requests.clone(), bytes.clone());
        std::thread::Builder::new()
            .name("otlp-sink".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let (r, b) = (r.clone(), b.clone());
                    std::thread::Builder::new()
                        .name("otlp-sink".into())
                        // A closed or broken connection ends its thread; the exporter reports the error.
                        .spawn(move || {
                            let _ = serve(stream, &r, &b);
                        })
                        .unwrap();
                }
            })
            .unwrap();
        Self { endpoint, requests, bytes }
    }
}

fn serve(stream: TcpStream, requests: &AtomicU64, bytes: &AtomicU64) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = String::new();
    loop {
        // The request line, then headers up to the empty line.
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut length = 0u64;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let read = io::copy(&mut (&mut reader).take(length), &mut io::sink())?;
        requests.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(read, Ordering::Relaxed);
        writer.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
        )?;
    }
}

// === Thread CPU time ===

/// CPU time so far of every live thread of this process, in nanoseconds, summed by thread name (from
/// `/proc/self/task/<tid>/schedstat`); empty without `/proc`. Threads that exit take their time with them.
fn cpu_by_thread() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default().trim().to_owned();
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        *out.entry(name).or_default() += ns;
    }
    out
}

/// The CPU the other threads (everything but this one's name) spent per span since `before`.
fn background_cpu_per_span(before: &BTreeMap<String, u64>, spans: u64) -> String {
    let this = std::fs::read_to_string("/proc/thread-self/comm").unwrap_or_default().trim().to_owned();
    let mut parts = Vec::new();
    for (name, after) in cpu_by_thread() {
        let spent = after.saturating_sub(before.get(&name).copied().unwrap_or(0));
        if name != this && spent > 0 {
            parts.push(format!("{name} {:.0} ns", spent as f64 / spans.max(1) as f64));
        }
    }
    if parts.is_empty() { "-".to_owned() } else { parts.join(", ") }
}

/// Prints what happened to the spans of one OTLP bench.
fn report_export(
    name: &str,
    created: u64,
    dropped: u64,
    before: &BTreeMap<String, u64>,
    sink: &DiscardingSink,
) {
    println!(
        "{name}: {created} spans created, {dropped} not exported ({:.2}%); sink: {} requests, {} bytes \
         so far; CPU per span on other threads: {}",
        100.0 * dropped as f64 / created.max(1) as f64,
        sink.requests.load(Ordering::Relaxed),
        sink.bytes.load(Ordering::Relaxed),
        background_cpu_per_span(before, created),
    );
}

// === Benchmarks ===

fn span_lifecycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("span_lifecycle");

    {
        let (dispatch, _guard) = sightline(sightline_trace::builder().without_logs().without_otlp());
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function("sightline", |b| b.iter(span_lifecycle_once));
        });
    }
    {
        let (dispatch, _guard) =
            sightline(sightline_trace::builder().without_logs().without_otlp().with_span_store(0));
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function("sightline_no_store", |b| b.iter(span_lifecycle_once));
        });
    }
    {
        let dispatch = Dispatch::new(tracing_subscriber::Registry::default());
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function("registry", |b| b.iter(span_lifecycle_once));
        });
    }
    {
        let (dispatch, provider, exported) = tracing_opentelemetry(None);
        let mut created = 0;
        tracing::dispatcher::with_default(&dispatch, || {
            // Paced like the OTLP rows: flat out, its batch thread falls behind and drops spans.
            group.bench_function("tracing_opentelemetry", |b| {
                b.iter_custom(|iters| {
                    created += iters;
                    paced(iters, || {
                        let _ = provider.force_flush();
                    })
                })
            });
        });
        provider.force_flush().unwrap();
        let dropped = created.saturating_sub(exported.load(Ordering::Relaxed));
        println!("span_lifecycle/tracing_opentelemetry: {created} spans created, {dropped} not exported");
        provider.shutdown().unwrap();
    }
    group.finish();
}

fn span_lifecycle_otlp(c: &mut Criterion, sink: &DiscardingSink) {
    let mut group = c.benchmark_group("span_lifecycle_otlp");

    for (name, pace) in [("sightline", true), ("sightline_unpaced", false)] {
        let (dispatch, guard) = sightline(sightline_trace::builder().without_logs().with_otlp(OtlpConfig {
            endpoint: Some(sink.endpoint.clone()),
            protocol: Some(Protocol::HttpProtobuf),
            ..OtlpConfig::default()
        }));
        assert!(guard.exporting());
        let before = cpu_by_thread();
        let mut created = 0;
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    created += iters;
                    if pace { paced(iters, || guard.flush()) } else { unpaced(iters) }
                })
            });
        });
        guard.flush();
        report_export(&format!("span_lifecycle_otlp/{name}"), created, guard.export_dropped(), &before, sink);
        guard.shutdown();
    }
    for (name, pace) in [("tracing_opentelemetry", true), ("tracing_opentelemetry_unpaced", false)] {
        let (dispatch, provider, exported) = tracing_opentelemetry(Some(otlp_http_exporter(&sink.endpoint)));
        let before = cpu_by_thread();
        let mut created = 0;
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    created += iters;
                    if pace {
                        paced(iters, || {
                            let _ = provider.force_flush();
                        })
                    } else {
                        unpaced(iters)
                    }
                })
            });
        });
        provider.force_flush().unwrap();
        let dropped = created.saturating_sub(exported.load(Ordering::Relaxed));
        report_export(&format!("span_lifecycle_otlp/{name}"), created, dropped, &before, sink);
        provider.shutdown().unwrap();
    }
    group.finish();
}

/// One of the JSON formatters, writing to `writer`.
fn json_subscriber(name: &str, writer: BoxMakeWriter) -> (Dispatch, Option<TraceGuard>) {
    let json = || sightline_trace::builder().without_otlp().with_log_format(LogFormat::Json);
    let built = match name {
        "sightline" => json().with_redactor(Redactor::disabled()),
        "sightline_redacted" => json(),
        "sightline_no_store" => json().with_redactor(Redactor::disabled()).with_span_store(0),
        "sightline_redacted_no_store" => json().with_span_store(0),
        "tracing_subscriber_json" => {
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(writer)
                .finish();
            return (Dispatch::new(subscriber), None);
        }
        other => unreachable!("no JSON subscriber {other}"),
    };
    let (dispatch, guard) = sightline(built.with_log_output(LogOutput::Writer(writer)));
    (dispatch, Some(guard))
}

/// Log lines kept in memory, to show what each formatter writes.
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn json_log(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_log");
    group.throughput(Throughput::Elements(1));
    for name in [
        "sightline",
        "sightline_redacted",
        "sightline_no_store",
        "sightline_redacted_no_store",
        "tracing_subscriber_json",
    ] {
        // One line into memory first, so that the run's output shows what is being compared.
        {
            let capture = Capture::default();
            let writer = capture.clone();
            let (dispatch, _guard) = json_subscriber(name, BoxMakeWriter::new(move || writer.clone()));
            tracing::dispatcher::with_default(&dispatch, || {
                let _span = tracing::info_span!("request", route = "/api/v1/runs", tenant = "acme").entered();
                log_line();
            });
            print!("json_log/{name} writes: {}", String::from_utf8_lossy(&capture.0.lock().unwrap()));
        }

        let (dispatch, _guard) = json_subscriber(name, BoxMakeWriter::new(io::sink));
        tracing::dispatcher::with_default(&dispatch, || {
            let _span = tracing::info_span!("request", route = "/api/v1/runs", tenant = "acme").entered();
            group.bench_function(name, |b| b.iter(log_line));
        });
    }
    group.finish();
}

fn main() {
    let sink = DiscardingSink::start();
    let mut criterion = Criterion::default().configure_from_args();
    span_lifecycle(&mut criterion);
    span_lifecycle_otlp(&mut criterion, &sink);
    json_log(&mut criterion);
    criterion.final_summary();
}
