//! The time-series store in `sightline serve`: scraping a real node_exporter, the server's own metrics,
//! the Prometheus-compatible query API, `sightline query`, and data surviving a restart.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Server, eventually, get_json};
use serde_json::Value;
use sightline_testkit::{ChildGuard, TempDir, free_port, http_get, require_peer, wait_for_port};

fn start(data_dir: &Path, config: &Path) -> Server {
    common::start_in(data_dir, config, &[])
}

/// `query` evaluated now, as (labels, value) pairs.
fn query(addr: SocketAddr, expr: &str) -> Vec<(Value, f64)> {
    let path = format!("/api/v1/query?query={}", encode(expr));
    let body = get_json(addr, &path);
    assert_eq!(body["status"], "success", "{expr}: {body}");
    body["data"]["result"]
        .as_array()
        .expect("a vector")
        .iter()
        .map(|s| (s["metric"].clone(), s["value"][1].as_str().and_then(|v| v.parse().ok()).expect("a value")))
        .collect()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn scrapes_node_exporter_answers_queries_and_keeps_data_across_a_restart() {
    let Some(node_exporter) = require_peer("prometheus-node-exporter", "prometheus-node-exporter") else {
        return;
    };
    let port = free_port();
    let mut exporter = Command::new(node_exporter);
    exporter.arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let _exporter = ChildGuard::spawn_quiet(exporter).expect("spawn node_exporter");
    let exporter_addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    assert!(wait_for_port(exporter_addr, Duration::from_secs(10)), "node_exporter did not listen");

    // A target that accepts connections and never answers: it must time out and harm nothing else.
    let hanging = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hanging_addr = hanging.local_addr().expect("address");

    let dir = TempDir::new("tsdb-serve");
    let config = dir.path().join("sightline.yaml");
    std::fs::write(
        &config,
        format!(
            "tsdb:\n  self_scrape_interval: 1s\n  scrape_interval: 1s\n  scrape_timeout: 500ms\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{exporter_addr}']\n\
             \x20       labels: {{env: test}}\n  - job_name: hung\n    static_configs:\n      - targets: ['{hanging_addr}']\n"
        ),
    )
    .expect("write config");
    let data = dir.path().join("data");
    let mut server = start(&data, &config);
    let addr = server.addr;

    let up = eventually(Duration::from_secs(20), || {
        let node = query(addr, r#"up{job="node"}"#);
        let hung = query(addr, r#"up{job="hung"}"#);
        (node.len() == 1 && hung.len() == 1).then_some((node, hung))
    })
    .expect("both targets scraped within 20 s");
    let (node, hung) = up;
    assert_eq!(node[0].1, 1.0, "{node:?}");
    assert_eq!(node[0].0["instance"], exporter_addr.to_string());
    assert_eq!(node[0].0["env"], "test");
    assert_eq!(hung[0].1, 0.0, "{hung:?}");

    // node_exporter's own series, with the target's labels.
    let load = query(addr, r#"node_load1{job="node"}"#);
    assert_eq!(load.len(), 1, "{load:?}");
    // The server's own registry, under job="sightline".
    let own = eventually(Duration::from_secs(10), || {
        let own = query(addr, r#"sightline_build_info{job="sightline"}"#);
        (!own.is_empty()).then_some(own)
    })
    .expect("the server's own metrics are stored");
    assert_eq!(own[0].1, 1.0);

    // The store's own metrics are exposed.
    let metrics = http_get(addr, "/metrics", &[]).expect("GET /metrics").body;
    for name in ["sightline_tsdb_head_series ", "sightline_tsdb_samples_appended_total "] {
        assert!(metrics.contains(name), "{name} missing");
    }

    // Aggregation over stored data, as a dashboard would ask.
    // The self-scrape writes `up` too, so `job="sightline"` is the third job.
    let by_job = query(addr, "sum by (job) (up)");
    assert_eq!(by_job.len(), 3, "{by_job:?}");
    assert!(by_job.iter().any(|(labels, v)| labels["job"] == "sightline" && *v == 1.0), "{by_job:?}");

    // Targets, in Prometheus's shape, with the hanging target's reason.
    let targets = get_json(addr, "/api/v1/targets");
    let active = targets["data"]["activeTargets"].as_array().expect("activeTargets");
    assert_eq!(active.len(), 2, "{targets}");
    let hung_target = active.iter().find(|t| t["scrapePool"] == "hung").expect("hung target");
    assert_eq!(hung_target["health"], "down");
    assert!(hung_target["lastError"].as_str().unwrap_or("").contains("timed out"), "{hung_target}");
    let node_target = active.iter().find(|t| t["scrapePool"] == "node").expect("node target");
    assert_eq!(node_target["health"], "up", "{node_target}");

    // Metadata endpoints.
    let jobs = get_json(addr, "/api/v1/label/job/values");
    for job in ["hung", "node", "sightline"] {
        assert!(jobs["data"].as_array().expect("values").iter().any(|v| v == job), "{jobs}");
    }
    let series = get_json(addr, &format!("/api/v1/series?match[]={}", encode(r#"up{job="node"}"#)));
    assert_eq!(series["data"].as_array().map(Vec::len), Some(1), "{series}");

    // The CLI prints a table, and a bad query exits 1 with Prometheus's error type.
    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["query", r#"up{job="node"}"#, "--server", &format!("http://{addr}")])
        .output()
        .expect("run sightline query");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("SERIES"), "{stdout}");
    assert!(stdout.contains(r#"up{env="test", instance="#) && stdout.contains("  1 @"), "{stdout}");
    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["query", "sum(", "--server", &format!("http://{addr}")])
        .output()
        .expect("run sightline query");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad_data"));

    // Restart: what was stored before is still there.
    let before = http_get(addr, "/api/v1/query?query=time()", &[]).expect("time");
    let t: f64 = serde_json::from_str::<Value>(&before.body).expect("JSON")["data"]["result"][0]
        .as_f64()
        .expect("time");
    let status = server.child.terminate(Duration::from_secs(15)).expect("exits within 15 s");
    assert!(status.success(), "exit status {status}");
    let server = start(&data, &config);
    let path = format!("/api/v1/query?query={}&time={t}", encode(r#"up{job="node"}"#));
    let body = get_json(server.addr, &path);
    assert_eq!(body["data"]["result"][0]["value"][1], "1", "{body}");
    drop(hanging);
}

#[test]
fn bad_scrape_configs_are_refused_with_file_and_line() {
    let dir = TempDir::new("tsdb-config");
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['x:1']\n    scrape_intervall: 5s\n",
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("run check-config");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad.yaml:5:5: ") && stderr.contains("scrape_intervall"), "{stderr}");

    std::fs::write(
        &config,
        "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n    static_configs:\n      - targets: ['x:1']\n",
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("run check-config");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // Pointed at the offending setting within the job's entry.
    assert!(stderr.contains("bad.yaml:4:5: ") && stderr.contains("scrape_timeout"), "{stderr}");
}

#[test]
fn rules_test_runs_promtool_format_files_with_promtools_exit_codes() {
    let dir = TempDir::new("rules-test");
    let passing = dir.path().join("pass.yml");
    std::fs::write(
        &passing,
        "tests:\n  - interval: 1m\n    input_series:\n      - series: 'x{a=\"b\"}'\n        values: '0+60x10'\n\
         \x20   promql_expr_test:\n      - expr: rate(x[5m])\n        eval_time: 10m\n        exp_samples:\n\
         \x20         - labels: '{a=\"b\"}'\n            value: 1\n",
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["rules", "test"])
        .arg(&passing)
        .output()
        .expect("run rules test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("SUCCESS"), "{stdout}");

    let failing = dir.path().join("fail.yml");
    std::fs::write(
        &failing,
        std::fs::read_to_string(&passing).expect("read").replace("value: 1", "value: 2"),
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["rules", "test"])
        .arg(&failing)
        .output()
        .expect("run rules test");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("expr: \"rate(x[5m])\", time: 10m"), "{stderr}");
    assert!(stderr.contains("exp: {a=\"b\"} 2E+00") && stderr.contains("got: {a=\"b\"} 1E+00"), "{stderr}");
}

#[test]
fn a_damaged_wal_is_reported_at_start_and_the_readable_part_kept() {
    let dir = TempDir::new("tsdb-wal");
    let config = dir.path().join("sightline.yaml");
    std::fs::write(&config, "tsdb:\n  self_scrape_interval: 200ms\n").expect("write config");
    let data = dir.path().join("data");
    let mut server = start(&data, &config);
    let addr = server.addr;
    let stored = eventually(Duration::from_secs(10), || {
        let body = get_json(addr, "/api/v1/query?query=count_over_time(sightline_build_info%5B1m%5D)");
        let count: f64 = body["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
        (count >= 5.0).then_some(count)
    })
    .expect("self-scrapes stored");
    assert!(stored >= 5.0);
    // No clean shutdown: the data is only in the WAL.
    server.child.kill();

    // Tear the newest segment's tail, as a crash in the middle of a write would.
    let wal = data.join("tsdb").join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .expect("wal dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .collect();
    segments.sort();
    let newest = segments.last().expect("a non-empty segment");
    let bytes = std::fs::read(newest).expect("read segment");
    std::fs::write(newest, &bytes[..bytes.len() - 3]).expect("truncate segment");

    let server = start(&data, &config);
    let warning = server.child.seen.iter().find(|l| l.contains("recovered around damage")).cloned();
    let warning = warning.expect("a warning names the damage");
    assert!(warning.contains("\"level\":\"WARN\"") && warning.contains("truncated"), "{warning}");
    // The restarted server listens on a new port, its self-scrape's `instance`: ask for the first one's.
    let expr = format!(r#"count_over_time(sightline_build_info{{instance="{addr}"}}[10m])"#);
    let body = get_json(server.addr, &format!("/api/v1/query?query={}", encode(&expr)));
    let kept: f64 =
        body["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse().ok()).expect("kept");
    assert!(kept >= stored - 1.0, "kept {kept} of {stored} samples");
}
