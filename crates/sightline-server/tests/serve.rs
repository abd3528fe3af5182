//! `sightline serve` as a real process: start-up, logs, endpoints, and graceful shutdown.

mod common;

use std::time::Duration;

use common::start;
use sightline_testkit::http_get;

#[test]
fn logs_are_json_lines_with_microsecond_utc_timestamps() {
    let server = start(&[]);
    let line = &server.start_line;
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["message"], "sightline listening");
    assert_eq!(line["target"], "sightline_server");
    let ts = line["timestamp"].as_str().expect("timestamp");
    // 2026-11-29T22:04:37.123456Z
    assert_eq!(ts.len(), 27, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T' && ts.as_bytes()[19] == b'.', "{ts}");
    assert!(ts[20..26].bytes().all(|b| b.is_ascii_digit()), "{ts}");
    assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");
}

#[test]
fn serves_metrics_and_liveness() {
    let server = start(&[]);
    let live = http_get(server.addr, "/health/live", &[]).expect("GET /health/live");
    assert_eq!(live.status, 200);
    assert_eq!(live.body, r#"{"status":"healthy"}"#);

    let metrics = http_get(server.addr, "/metrics", &[]).expect("GET /metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    for needle in [
        "sightline_build_info{version=\"",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_virtual_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
        "sightline_tokio_workers ",
        // The workspace builds with `--cfg tokio_unstable` (.cargo/config.toml) for this one.
        "sightline_tokio_blocking_threads ",
        "sightline_tokio_worker_busy_seconds_total{worker=\"0\"}",
        "sightline_collector_duration_seconds_count{collector=\"process\"}",
        "sightline_collector_errors_total{collector=\"runtime\"} 0",
        "sightline_http_requests_total{route=\"/health/live\",method=\"GET\",status=\"200\"} 1",
    ] {
        assert!(metrics.body.contains(needle), "{needle} missing from\n{}", metrics.body);
    }
    let om = http_get(server.addr, "/metrics", &[("Accept", "application/openmetrics-text;version=1.0.0")])
        .expect("GET /metrics as OpenMetrics");
    assert_eq!(om.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    assert!(om.body.ends_with("# EOF\n"));
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut server = start(&[]);
    let status = server.child.terminate(Duration::from_secs(10)).expect("exits within 10 s");
    assert!(status.success(), "exit status {status}");
    assert!(server.child.wait_for_line("sightline stopped", Duration::from_secs(5)).is_some());
}

#[test]
fn environment_overrides_reach_the_server() {
    let server = start(&[
        ("SIGHTLINE_METRICS__CARDINALITY_LIMIT", "1"),
        ("SIGHTLINE_LOG", "warn,sightline_server=info"),
    ]);
    // With a limit of one label set, the second route folds into the overflow series.
    http_get(server.addr, "/health/live", &[]).expect("GET");
    http_get(server.addr, "/nope", &[]).expect("GET");
    let metrics = http_get(server.addr, "/metrics", &[]).expect("GET /metrics");
    assert!(
        metrics
            .body
            .contains("sightline_cardinality_overflow_total{metric=\"sightline_http_requests_total\"}"),
        "{}",
        metrics.body
    );
}

fn health_cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
        .arg("health")
        .args(args)
        .output()
        .expect("run sightline health");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

#[test]
fn the_health_cli_reports_with_exit_codes() {
    let server = start(&[]);
    let url = format!("http://{}", server.addr);
    let (code, stdout, _) = health_cli(&["--server", &url]);
    assert!(code == 0 || code == 1, "healthy or degraded, got {code}: {stdout}");
    assert!(stdout.starts_with("overall  "), "{stdout}");
    assert!(stdout.contains("CHECK"), "{stdout}");
    let (code_json, stdout, _) = health_cli(&["--server", &url, "--json"]);
    assert_eq!(code_json, code);
    let body: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(body["checks"].is_array());
    let (code_quiet, stdout, stderr) = health_cli(&["--server", &url, "--quiet"]);
    assert_eq!((code_quiet, stdout.as_str(), stderr.as_str()), (code, "", ""));

    let closed = format!("http://127.0.0.1:{}", sightline_testkit::free_port());
    let (code, _, stderr) = health_cli(&["--server", &closed]);
    assert_eq!(code, 3, "unreachable");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}
