//! `sightline serve` traces itself: the standard OTEL_* variables turn on OTLP export to a real receiver,
//! incoming `traceparent` headers are honoured, and `sightline traces` shows what the span store holds.

mod common;

use std::process::Command;
use std::time::Duration;

use sightline_testkit::otlp::OtlpReceiver;

const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

fn get_with_traceparent(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\ntraceparent: 00-{CALLER_TRACE}-b7ad6b7169203331-01\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

fn exported_request_span(receiver: &OtlpReceiver) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let spans = receiver.spans();
        if let Some(span) = spans.iter().find(|s| s.trace_id == CALLER_TRACE) {
            assert_eq!(span.name, "GET /health/live");
            assert_eq!(span.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
            assert_eq!(span.kind, 2);
            assert_eq!(span.attributes["http.route"], "/health/live");
            assert_eq!(span.attributes["http.response.status_code"], "200");
            assert_eq!(span.resource["service.name"], "edge-monitor");
            assert_eq!(span.resource["deployment.environment"], "ci");
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no exported span of the caller's trace: {spans:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn setting_the_otlp_endpoint_is_enough_to_export_over_http() {
    let receiver = OtlpReceiver::start_http();
    let endpoint = receiver.endpoint();
    let server = common::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "edge-monitor"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    let answer = get_with_traceparent(server.addr, "/health/live");
    assert!(answer.contains(&format!("traceparent: 00-{CALLER_TRACE}-")), "{answer}");
    exported_request_span(&receiver);
}

#[test]
fn grpc_is_chosen_with_the_protocol_variable_and_headers_are_sent() {
    let receiver = OtlpReceiver::start_grpc();
    let endpoint = receiver.endpoint();
    let server = common::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=blue"),
        ("OTEL_SERVICE_NAME", "edge-monitor"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    get_with_traceparent(server.addr, "/health/live");
    exported_request_span(&receiver);
    assert!(receiver.headers().iter().any(|h| h.iter().any(|(k, v)| k == "x-tenant" && v == "blue")));
}

#[test]
fn sightline_traces_lists_and_charts_the_servers_traces() {
    let server = common::start(&[]);
    get_with_traceparent(server.addr, "/health/live");
    let base = format!("http://{}", server.addr);
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
            .arg("traces")
            .args(args)
            .args(["--server", &base])
            .env("COLUMNS", "100")
            .output()
            .expect("run sightline traces");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["--name", "GET /health/live"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(CALLER_TRACE) && out.contains("GET /health/live (sightline)"), "{out}");

    let (code, out, err) = run(&[CALLER_TRACE]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("GET /health/live") && out.contains('█'), "a chart with the critical span:\n{out}");

    let (code, _, err) = run(&["00000000000000000000000000000042"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no trace"), "{err}");
    let (code, _, err) = run(&["--min-duration", "soon"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("min_duration"), "{err}");

    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["traces", "--server", &format!("http://127.0.0.1:{}", sightline_testkit::free_port())])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(3), "unreachable");
}
