//! Real peers: Debian's `promtool check metrics` and a real Prometheus scraping the server.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use sightline_testkit::{ChildGuard, TempDir, free_port, http_get, require_peer, wait_for_port};

#[test]
fn promtool_check_metrics_is_clean() {
    let Some(promtool) = require_peer("promtool", "prometheus") else { return };
    let server = common::start(&[]);
    // The host, process and runtime collectors are on by default, so their metrics are checked too.
    // Touch a few routes first, so that histograms and labelled counters are in the exposition.
    for path in ["/health/live", "/metrics", "/missing"] {
        http_get(server.addr, path, &[]).expect("GET");
    }
    for accept in [None, Some("application/openmetrics-text;version=1.0.0")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let body = http_get(server.addr, "/metrics", &headers).expect("GET /metrics").body;
        if accept.is_some() {
            // promtool's linter reads the text format; OpenMetrics is checked by the Prometheus scrape test.
            assert!(body.ends_with("# EOF\n"));
            continue;
        }
        let problems = sightline_testkit::promtool_check_metrics(&promtool, &body);
        assert!(problems.is_empty(), "promtool said:\n{}\nfor:\n{body}", problems.join("\n"));
    }
}

#[test]
fn prometheus_scrapes_the_server() {
    let Some(prometheus) = require_peer("prometheus", "prometheus") else { return };
    let server = common::start(&[]);
    let dir = TempDir::new("prometheus");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sightline\n    \
             static_configs:\n      - targets: ['{}']\n",
            server.addr
        ),
    )
    .expect("write prometheus.yml");
    let port = free_port();
    let mut command = Command::new(prometheus);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let _prometheus = ChildGuard::spawn_quiet(command).expect("start prometheus");
    let api = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(wait_for_port(api, Duration::from_secs(30)), "prometheus did not open its port");

    let query = |q: &str| -> Vec<serde_json::Value> {
        let path =
            format!("/api/v1/query?query={}", q.replace('{', "%7B").replace('}', "%7D").replace('"', "%22"));
        let Ok(response) = http_get(api, &path, &[]) else { return Vec::new() };
        let json: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
        json["data"]["result"].as_array().cloned().unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = query("up{job=\"sightline\"}");
        let info = query("sightline_build_info");
        // Prometheus asks for OpenMetrics first, so this also checks that counters arrive with `_total`.
        // The request counter appears from the second scrape on, which counts the first.
        let requests = query("sightline_http_requests_total");
        let up_is_one = up.first().is_some_and(|s| s["value"][1] == "1");
        if up_is_one && !info.is_empty() && !requests.is_empty() {
            assert_eq!(info[0]["metric"]["version"], env!("CARGO_PKG_VERSION"));
            assert_eq!(info[0]["value"][1], "1");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw up == 1 and sightline_build_info: up={up:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
