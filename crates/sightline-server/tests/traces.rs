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

#[test]
fn http_health_probes_carry_the_probe_spans_traceparent() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = listener.local_addr().expect("addr");
    let (sender, received) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            while let Ok(n) = reader.read_line(&mut head) {
                if n == 0 || head.ends_with("\r\n\r\n") {
                    break;
                }
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let _ = sender.send(head);
        }
    });
    let dir = sightline_testkit::TempDir::new("probe-trace");
    let config = dir.path().join("sightline.yaml");
    std::fs::write(
        &config,
        format!("health:\n  builtin_checks: false\n  checks:\n    - name: api\n      type: http\n      url: http://{target}/healthz\n"),
    )
    .expect("write config");
    let server = common::start_with(&["--config", config.to_str().expect("utf-8 path")], &[]);
    let head = received.recv_timeout(Duration::from_secs(20)).expect("a probe request");
    let traceparent = head
        .lines()
        .find_map(|l| l.strip_prefix("traceparent: "))
        .unwrap_or_else(|| panic!("no traceparent in the probe:\n{head}"));
    let trace_id = traceparent.split('-').nth(1).expect("a trace id").to_owned();
    // The probe's span is in the server's store under that trace id.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = sightline_testkit::http_get(server.addr, &format!("/api/v1/traces/{trace_id}"), &[])
            .expect("the server answers")
            .body;
        if answer.contains("\"name\":\"health.check\"") {
            assert!(answer.contains("\"check\":\"api\""), "{answer}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no health.check span for {trace_id}: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_sampler_variables_are_honoured_and_sampling_follows_the_parent() {
    let receiver = OtlpReceiver::start_http();
    let endpoint = receiver.endpoint();
    // New traces are never sampled; a caller's sampled flag still wins (parent-based).
    let server = common::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_off"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    let root = sightline_testkit::http_get(server.addr, "/health/live", &[]).expect("answer");
    let root_trace = root
        .headers
        .iter()
        .find(|(k, _)| k == "traceparent")
        .map(|(_, v)| v.split('-').nth(1).unwrap_or_default().to_owned())
        .expect("a traceparent");
    assert!(root.headers.iter().any(|(k, v)| k == "traceparent" && v.ends_with("-00")), "{:?}", root.headers);
    // Then a request whose caller sampled: once it is exported, the unsampled one (sent earlier, on the
    // same queue) would have been too.
    get_with_traceparent(server.addr, "/health/live");
    let spans = receiver.wait_for_spans(1, Duration::from_secs(20));
    assert!(spans.iter().any(|s| s.trace_id == CALLER_TRACE), "{spans:#?}");
    assert!(spans.iter().all(|s| s.trace_id != root_trace), "an unsampled trace was exported: {spans:#?}");
    // The store keeps unsampled traces: sampling is for export.
    let answer = sightline_testkit::http_get(server.addr, &format!("/api/v1/traces/{root_trace}"), &[])
        .expect("answer");
    assert_eq!(answer.status, 200, "{}", answer.body);
}
