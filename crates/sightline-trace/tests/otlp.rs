//! OTLP export against a real receiver that decodes the protobuf (`sightline_testkit::otlp`), over HTTP
#![allow(clippy::unwrap_used)] // Test helpers unwrap: a failure is the test failing.
//! and gRPC; export failures and unreachable collectors never block the application.

use std::time::{Duration, Instant};

use sightline_core::Registry;
use sightline_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use sightline_trace::{OtlpConfig, Protocol, TraceGuard};

fn setup(endpoint: String, protocol: Protocol, registry: &Registry) -> (tracing::Dispatch, TraceGuard) {
    sightline_testkit::otlp::install_crypto_provider();
    sightline_trace::builder()
        .with_service_name("checkout")
        .with_service_version("1.2.3")
        .with_resource_attribute("deployment.environment", "test")
        .without_logs()
        .with_metrics(registry)
        .with_otlp(OtlpConfig {
            endpoint: Some(endpoint),
            protocol: Some(protocol),
            headers: vec![("x-api-key".into(), "k-1".into())],
            timeout: Some(Duration::from_secs(2)),
            sampling_ratio: None,
        })
        .build()
        .unwrap()
}

/// A parent with a child and an error inside the child.
fn workload() {
    let parent = tracing::info_span!(
        "checkout",
        otel.kind = "server",
        order_id = 42_u64,
        user_email = "ada@example.com"
    );
    parent.in_scope(|| {
        tracing::info!("started");
        let child = tracing::info_span!("charge", provider = "acme");
        child.in_scope(|| tracing::error!(code = 502_i64, "card declined"));
    });
}

fn by_name<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

fn check_received(receiver: &OtlpReceiver) {
    let spans = receiver.wait_for_spans(2, Duration::from_secs(10));
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let parent = by_name(&spans, "checkout");
    let child = by_name(&spans, "charge");
    assert_eq!(child.trace_id, parent.trace_id);
    assert_eq!(child.parent_span_id.as_deref(), Some(parent.span_id.as_str()));
    assert_eq!(parent.parent_span_id, None);
    assert_eq!(parent.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(parent.attributes["order_id"], "42");
    assert_eq!(parent.attributes["user_email"], "[REDACTED:email]", "redacted before export");
    assert_eq!(parent.events, vec!["started".to_owned()]);
    assert_eq!(child.status_code, 2, "STATUS_CODE_ERROR");
    assert_eq!(child.status_message, "card declined");
    assert_eq!(child.attributes["provider"], "acme");
    for span in [parent, child] {
        assert_eq!(span.resource["service.name"], "checkout");
        assert_eq!(span.resource["service.version"], "1.2.3");
        assert_eq!(span.resource["deployment.environment"], "test");
        assert_eq!(span.scope, "sightline-trace");
        assert!(span.start_unix_nanos > 0 && span.end_unix_nanos >= span.start_unix_nanos);
    }
    assert!(
        child.start_unix_nanos >= parent.start_unix_nanos && child.end_unix_nanos <= parent.end_unix_nanos
    );
    let headers = receiver.headers();
    assert!(headers.iter().all(|h| h.iter().any(|(k, v)| k == "x-api-key" && v == "k-1")), "{headers:?}");
}

#[test]
fn spans_reach_a_real_receiver_over_http_protobuf() {
    let receiver = OtlpReceiver::start_http();
    let registry = Registry::new();
    let (dispatch, guard) = setup(receiver.endpoint(), Protocol::HttpProtobuf, &registry);
    tracing::dispatcher::with_default(&dispatch, workload);
    guard.shutdown(); // flushes
    check_received(&receiver);
}

#[test]
fn spans_reach_a_real_receiver_over_grpc() {
    let receiver = OtlpReceiver::start_grpc();
    let registry = Registry::new();
    let (dispatch, guard) = setup(receiver.endpoint(), Protocol::Grpc, &registry);
    tracing::dispatcher::with_default(&dispatch, workload);
    guard.shutdown();
    check_received(&receiver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_works_from_inside_a_tokio_application() {
    let receiver = OtlpReceiver::start_grpc();
    let registry = Registry::new();
    let (dispatch, guard) = setup(receiver.endpoint(), Protocol::Grpc, &registry);
    let _default = tracing::dispatcher::set_default(&dispatch);
    workload();
    guard.flush();
    assert_eq!(receiver.wait_for_spans(2, Duration::from_secs(10)).len(), 2);
    tokio::task::spawn_blocking(move || guard.shutdown()).await.unwrap();
}

#[test]
fn a_sampling_ratio_of_zero_exports_nothing_but_the_store_still_keeps_spans() {
    let receiver = OtlpReceiver::start_http();
    sightline_testkit::otlp::install_crypto_provider();
    let (dispatch, guard) = sightline_trace::builder()
        .without_logs()
        .with_otlp(OtlpConfig {
            endpoint: Some(receiver.endpoint()),
            sampling_ratio: Some(0.0),
            ..Default::default()
        })
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, workload);
    assert_eq!(guard.store().unwrap().len(), 2);
    guard.flush();
    std::thread::sleep(Duration::from_millis(300));
    assert!(receiver.spans().is_empty());
    guard.shutdown();
}

#[test]
fn an_unreachable_collector_never_blocks_and_losses_are_counted_with_one_warning() {
    // A port nobody listens on: every export fails (connection refused) after the exporter's own retries.
    let port = sightline_testkit::free_port();
    sightline_testkit::otlp::install_crypto_provider();
    let registry = Registry::new();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = logs.clone();
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(move || SharedVec(logs.clone()))
    };
    let (dispatch, guard) = sightline_trace::builder()
        .with_log_output(sightline_trace::LogOutput::Writer(writer))
        .with_log_filter("warn")
        .unwrap()
        .with_metrics(&registry)
        .with_otlp(OtlpConfig {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            timeout: Some(Duration::from_millis(500)),
            ..Default::default()
        })
        .build()
        .unwrap();
    let started = Instant::now();
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..20_000_u64 {
            tracing::info_span!("work", i).in_scope(|| {});
        }
    });
    let elapsed = started.elapsed();
    // 20,000 spans against a dead collector: the application thread only enqueues (or drops).
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    tracing::dispatcher::with_default(&dispatch, || guard.flush());
    let deadline = Instant::now() + Duration::from_secs(20);
    while guard.export_dropped() < 20_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(guard.export_dropped(), 20_000, "every span is either queued-then-failed or dropped");
    let snapshot = registry.snapshot();
    let dropped: f64 = snapshot
        .family("sightline_trace_export_dropped_total")
        .map(|f| {
            f.series
                .iter()
                .map(|s| match s.value {
                    sightline_core::Value::Counter(n) => n as f64,
                    _ => 0.0,
                })
                .sum()
        })
        .unwrap_or(0.0);
    assert_eq!(dropped, 20_000.0);
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let warnings = logs.lines().filter(|l| l.contains("sightline_trace::export")).count();
    assert!((1..=2).contains(&warnings), "one warning per kind of loss, not one per span:\n{logs}");
    let started = Instant::now();
    guard.shutdown();
    assert!(started.elapsed() < Duration::from_secs(8), "shutdown is bounded");
}

struct SharedVec(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedVec {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
