//! The span layer end to end: a real traced workload in the store, its critical path, span metrics, the
//! store's bound, error status, file output and propagation helpers.
#![allow(clippy::unwrap_used)] // Test helpers unwrap: a failure is the test failing.

use std::time::Duration;

use sightline_core::Registry;
use sightline_trace::propagation::{extract, inject, set_parent, traceparent};
use sightline_trace::store::TraceQuery;
use sightline_trace::{SpanMetricsConfig, SpanStatus, critical_span_ids};
use tracing::Instrument;

fn quiet() -> sightline_trace::Builder {
    sightline_trace::builder().without_logs().without_otlp()
}

#[tokio::test]
async fn the_critical_path_of_a_real_workload_follows_the_slowest_concurrent_child() {
    let (dispatch, guard) = quiet().build().unwrap();
    let _default = tracing::dispatcher::set_default(&dispatch);
    let root = tracing::info_span!("checkout");
    async {
        let fast = tokio::time::sleep(Duration::from_millis(20)).instrument(tracing::info_span!("inventory"));
        let slow = tokio::time::sleep(Duration::from_millis(80)).instrument(tracing::info_span!("pricing"));
        tokio::join!(fast, slow);
        tokio::time::sleep(Duration::from_millis(20)).instrument(tracing::info_span!("charge")).await;
    }
    .instrument(root.clone())
    .await;
    let (trace_id, _) = sightline_trace::span_ids(&root).unwrap();
    drop(root);
    let trace = guard.store().unwrap().trace(trace_id).unwrap();
    let names = |ids: &std::collections::HashSet<sightline_trace::SpanId>| {
        let mut names: Vec<&str> =
            trace.spans.iter().filter(|s| ids.contains(&s.span_id)).map(|s| s.name.as_ref()).collect();
        names.sort_unstable();
        names
    };
    assert_eq!(trace.spans.len(), 4);
    let critical = critical_span_ids(&trace.spans);
    assert_eq!(names(&critical), ["charge", "checkout", "pricing"], "inventory ran alongside pricing");
    let path = sightline_trace::critical_path(&trace.spans);
    let total: Duration = path.iter().map(|s| s.duration()).sum();
    let root = trace.spans.iter().find(|s| s.parent_span_id.is_none()).unwrap();
    assert_eq!(total, root.duration, "the path covers the root exactly");
    let chart = sightline_trace::render_gantt(&trace.spans, &critical, 80, false);
    assert!(chart.contains("pricing") && chart.contains('█'), "{chart}");
}

#[test]
fn span_metrics_count_and_time_chosen_spans_by_status() {
    let registry = Registry::new();
    let (dispatch, _guard) = quiet()
        .with_metrics(&registry)
        .with_span_metrics(SpanMetricsConfig::new().with_name("db.query").with_pattern("^job\\.").unwrap())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info_span!("db.query").in_scope(|| {});
        tracing::info_span!("db.query").in_scope(|| tracing::error!("timeout"));
        tracing::info_span!("job.nightly", error = "disk full").in_scope(|| {});
        tracing::info_span!("unmeasured").in_scope(|| {});
    });
    let text = sightline_export::render(&registry.snapshot(), sightline_export::Format::PrometheusText);
    for line in [
        "sightline_spans_total{span=\"db.query\",status=\"ok\"} 1",
        "sightline_spans_total{span=\"db.query\",status=\"error\"} 1",
        "sightline_spans_total{span=\"job.nightly\",status=\"error\"} 1",
        "sightline_span_duration_seconds_count{span=\"db.query\"} 2",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(!text.contains("unmeasured"));
}

#[test]
fn the_store_is_bounded_and_records_status_errors_and_events() {
    let (dispatch, guard) = quiet().with_span_store(10).build().unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..100_u64 {
            tracing::info_span!("work", i).in_scope(|| {});
        }
        tracing::info_span!("failing").in_scope(|| {
            tracing::info!(step = 1_u64, "started");
            tracing::error!("boom");
        });
    });
    let store = guard.store().unwrap();
    assert_eq!(store.len(), 10);
    assert_eq!(store.evicted_total(), 91);
    let failed = store.query(&TraceQuery::default().with_error(true));
    assert_eq!(failed.len(), 1);
    let trace = store.trace(failed[0].trace_id).unwrap();
    let span = &trace.spans[0];
    assert_eq!(span.status, SpanStatus::Error);
    assert_eq!(span.error.as_deref(), Some("boom"));
    let messages: Vec<&str> = span.events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, ["started", "boom"]);
}

#[test]
fn traceparent_round_trips_and_malformed_headers_are_ignored() {
    let (dispatch, _guard) = quiet().build().unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        let parent =
            extract(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), Some("vendor=x"))
                .expect("valid");
        assert!(parent.sampled);
        let span = tracing::info_span!("handler");
        assert!(set_parent(&span, &parent));
        let child = span.in_scope(|| tracing::info_span!("outgoing"));
        let headers = inject(&child);
        let (_, value) = headers.iter().find(|(k, _)| *k == "traceparent").unwrap();
        assert!(value.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{value}");
        assert!(!value.contains("00f067aa0ba902b7"), "the child's own span id is sent");
        assert!(headers.iter().any(|(k, v)| *k == "tracestate" && v == "vendor=x"), "{headers:?}");
        assert_eq!(sightline_trace::span_ids(&child).unwrap().0, sightline_trace::span_ids(&span).unwrap().0);
        assert!(traceparent(&span).unwrap().ends_with("-01"));
        let injected = inject(&span).into_iter().find(|(k, _)| *k == "traceparent").unwrap().1;
        assert_eq!(traceparent(&span).unwrap(), injected, "both ways of formatting agree");
    });
    for bad in [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ] {
        assert_eq!(extract(Some(bad), None), None, "{bad:?}");
    }
    assert_eq!(extract(None, Some("vendor=x")), None);
}

#[test]
fn logs_can_go_to_rotating_files() {
    let dir = sightline_testkit::TempDir::new("trace-logs");
    let (dispatch, guard) = sightline_trace::builder()
        .without_otlp()
        .with_log_output(sightline_trace::LogOutput::File(sightline_trace::FileOutput {
            directory: dir.path().join("logs"),
            prefix: "app.log".into(),
            rotation: sightline_trace::Rotation::Daily,
            max_files: Some(3),
        }))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || tracing::info!(user = "ada@example.com", "to a file"));
    drop(guard); // flushes the background writer
    let files: Vec<_> =
        std::fs::read_dir(dir.path().join("logs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].file_name().unwrap().to_string_lossy().starts_with("app.log."));
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("\"message\":\"to a file\"") && text.contains("[REDACTED:email]"), "{text}");
}

#[test]
fn bad_settings_are_errors_that_say_what_to_do() {
    let err = sightline_trace::builder().with_log_filter("info,=x=").unwrap_err().to_string();
    assert!(err.contains("RUST_LOG syntax"), "{err}");
    let err = SpanMetricsConfig::new().with_pattern("(").unwrap_err().to_string();
    assert!(err.contains("invalid span-metrics pattern"), "{err}");
    let err = sightline_trace::Protocol::parse("http/json").unwrap_err().to_string();
    assert!(err.contains("grpc") && err.contains("http/protobuf"), "{err}");
    let err = quiet()
        .with_otlp(sightline_trace::OtlpConfig {
            endpoint: Some("http://127.0.0.1:1".into()),
            sampling_ratio: Some(2.0),
            ..Default::default()
        })
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("sampling ratio"), "{err}");
}
