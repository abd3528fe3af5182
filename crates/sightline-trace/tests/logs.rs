//! Golden tests for log lines: a fixed clock and sequential ids make every line exact.
#![allow(clippy::unwrap_used)] // Test helpers unwrap: a failure is the test failing.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use expect_test::{Expect, expect};
use sightline_trace::{Correlation, LogFormat, LogOutput, Redactor};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// Numbers ids 1, 2, 3... so golden lines are stable.
#[derive(Debug, Default)]
struct Sequential(AtomicU64);

impl opentelemetry_sdk::trace::IdGenerator for Sequential {
    fn new_trace_id(&self) -> opentelemetry::trace::TraceId {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        opentelemetry::trace::TraceId::from_bytes(u128::from(n).to_be_bytes())
    }

    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        opentelemetry::trace::SpanId::from_bytes(n.to_be_bytes())
    }
}

fn fixed_clock() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_000_000_123_456)
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Sink;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs `f` under a fresh subscriber and returns what it logged.
fn logged(format: LogFormat, f: impl FnOnce()) -> String {
    let sink = Sink::default();
    let (dispatch, _guard) = sightline_trace::builder()
        .with_service_name("test")
        .with_log_format(format)
        .with_log_output(LogOutput::Writer(BoxMakeWriter::new(sink.clone())))
        .with_log_filter("debug")
        .unwrap()
        .without_otlp()
        .with_clock(fixed_clock)
        .with_id_generator(Sequential::default())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, f);
    String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
}

fn check(format: LogFormat, f: impl FnOnce(), expected: Expect) {
    let out = logged(format, f);
    for line in out.lines() {
        let _: serde_json::Value = if format == LogFormat::Json {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("invalid JSON {line}: {e}"))
        } else {
            serde_json::Value::Null
        };
    }
    expected.assert_eq(&out);
}

#[test]
fn an_event_outside_spans_has_no_trace_ids() {
    check(
        LogFormat::Json,
        || tracing::info!(port = 9750_u64, ready = true, ratio = 0.5, "listening"),
        expect![[r#"
            {"timestamp":"2026-11-30T00:53:20.123456Z","level":"INFO","target":"logs","message":"listening","port":9750,"ready":true,"ratio":0.5}
        "#]],
    );
}

#[test]
fn span_fields_of_every_enclosing_span_are_flattened_inner_first() {
    check(
        LogFormat::Json,
        || {
            let outer = tracing::info_span!("workflow", workflow_id = "wf-1", run_id = 7_u64);
            let _outer = outer.enter();
            let inner = tracing::info_span!("node", node_id = "n-2", plugin = "http");
            let _inner = inner.enter();
            tracing::warn!(attempt = 3_i64, "step slow");
        },
        expect![[r#"
            {"timestamp":"2026-11-30T00:53:20.123456Z","level":"WARN","target":"logs","message":"step slow","attempt":3,"node_id":"n-2","plugin":"http","workflow_id":"wf-1","run_id":7,"trace_id":"00000000000000000000000000000001","span_id":"0000000000000003"}
        "#]],
    );
}

#[test]
fn event_fields_win_over_span_fields_and_inner_spans_over_outer_ones() {
    check(
        LogFormat::Json,
        || {
            let outer = tracing::info_span!("outer", node_id = "outer", user_id = "u-1");
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", node_id = "inner");
            let _inner = inner.enter();
            tracing::info!(user_id = "u-event", "override");
        },
        expect![[r#"
            {"timestamp":"2026-11-30T00:53:20.123456Z","level":"INFO","target":"logs","message":"override","user_id":"u-event","node_id":"inner","trace_id":"00000000000000000000000000000001","span_id":"0000000000000003"}
        "#]],
    );
}

#[test]
fn fields_recorded_later_and_reserved_names_are_kept() {
    check(
        LogFormat::Json,
        || {
            let span = tracing::info_span!("job", status = tracing::field::Empty);
            let _entered = span.enter();
            span.record("status", "running");
            tracing::info!(
                level = "custom",
                target_name = "x",
                "quote \" backslash \\ newline \n tab \t bell \u{7}"
            );
        },
        expect![[r#"
            {"timestamp":"2026-11-30T00:53:20.123456Z","level":"INFO","target":"logs","message":"quote \" backslash \\ newline \n tab \t bell \u0007","field.level":"custom","target_name":"x","status":"running","trace_id":"00000000000000000000000000000001","span_id":"0000000000000002"}
        "#]],
    );
}

#[test]
fn secrets_are_redacted_in_messages_event_fields_and_span_fields() {
    check(
        LogFormat::Json,
        || {
            let span = tracing::info_span!("login", user_email = "ada@example.com", api_key = "k-123");
            let _entered = span.enter();
            tracing::info!(
                password = "hunter2",
                card = "4111 1111 1111 1111",
                note = ?"Bearer abc.def.ghi",
                "login for ada@example.com"
            );
        },
        expect![[r#"
            {"timestamp":"2026-11-30T00:53:20.123456Z","level":"INFO","target":"logs","message":"login for [REDACTED:email]","password":"[REDACTED]","card":"[REDACTED:card]","note":"\"Bearer [REDACTED:bearer]\"","user_email":"[REDACTED:email]","api_key":"[REDACTED]","trace_id":"00000000000000000000000000000001","span_id":"0000000000000002"}
        "#]],
    );
}

#[test]
fn redaction_can_be_turned_off() {
    let sink = Sink::default();
    let (dispatch, _guard) = sightline_trace::builder()
        .with_log_output(LogOutput::Writer(BoxMakeWriter::new(sink.clone())))
        .with_redactor(Redactor::disabled())
        .without_otlp()
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!(password = "hunter2", "mail ada@example.com")
    });
    let line = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(line.contains("\"password\":\"hunter2\"") && line.contains("mail ada@example.com"), "{line}");
}

#[test]
fn text_lines_for_terminals() {
    check(
        LogFormat::Text { ansi: false },
        || {
            let span = tracing::info_span!("workflow", workflow_id = "wf-1");
            let _entered = span.enter();
            tracing::error!(code = 3_i64, "failed for bob@example.com");
        },
        expect![[r#"
            2026-11-30T00:53:20.123456Z ERROR logs: failed for [REDACTED:email] code=3 workflow_id=wf-1 trace_id=00000000000000000000000000000001
        "#]],
    );
}

#[test]
fn the_level_filter_applies_to_lines() {
    let out = logged(LogFormat::Json, || {
        tracing::trace!("hidden");
        tracing::debug!("shown");
    });
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("shown"));
}

#[test]
fn correlation_contexts_put_their_fields_on_every_line_and_generate_an_id() {
    let out = logged(LogFormat::Json, || {
        Correlation::new().with("workflow_id", "wf-9").with("user_id", "u-3").in_scope(|| {
            tracing::info!("one");
            let nested = tracing::info_span!("nested");
            nested.in_scope(|| tracing::info!("two"));
        });
        Correlation::new().with("correlation_id", "given").in_scope(|| tracing::info!("three"));
    });
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    for line in &lines[..2] {
        assert_eq!(line["workflow_id"], "wf-9");
        assert_eq!(line["user_id"], "u-3");
        let id = line["correlation_id"].as_str().unwrap();
        assert_eq!(id.len(), 32, "generated id {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_eq!(lines[0]["correlation_id"], lines[1]["correlation_id"], "one id for the whole context");
    assert_eq!(lines[2]["correlation_id"], "given");
}

#[tokio::test]
async fn correlation_follows_a_future_across_awaits() {
    let sink = Sink::default();
    let (dispatch, _guard) = sightline_trace::builder()
        .with_log_output(LogOutput::Writer(BoxMakeWriter::new(sink.clone())))
        .without_otlp()
        .build()
        .unwrap();
    let _default = tracing::dispatcher::set_default(&dispatch);
    Correlation::new()
        .with("run_id", "r-1")
        .run(async {
            tokio::task::yield_now().await;
            tracing::info!("after await");
        })
        .await;
    let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("\"run_id\":\"r-1\""), "{out}");
}

#[test]
fn lines_above_the_span_level_still_carry_span_fields_and_ids() {
    let sink = Sink::default();
    let (dispatch, _guard) = sightline_trace::builder()
        .with_log_output(LogOutput::Writer(BoxMakeWriter::new(sink.clone())))
        .with_log_filter("warn")
        .unwrap()
        .without_otlp()
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        Correlation::new().with("workflow_id", "wf-1").in_scope(|| {
            tracing::info!("not written");
            tracing::warn!("written");
        });
    });
    let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["workflow_id"], "wf-1");
    assert!(line["trace_id"].is_string() && line["correlation_id"].is_string(), "{line}");
}
