//! Health checks configured in `sightline serve` against real peers: PostgreSQL, Redis, closed ports,
//! commands and push heartbeats, through /health, /health/ready and the `sightline health` CLI.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use sightline_testkit::{TempDir, free_port, http_get, postgres_url, redis_address};

fn wait_for(
    addr: std::net::SocketAddr,
    path: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = http_get(addr, path, &[]).map(|r| r.body).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if done(&json) {
            return json;
        }
        assert!(Instant::now() < deadline, "{path} never reached the expected state; last: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check<'a>(body: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    body["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

#[test]
fn configured_checks_against_real_peers() {
    let (Some(postgres), Some(redis)) = (postgres_url(), redis_address()) else { return };
    let dir = TempDir::new("health-config");
    let closed = free_port();
    let config = dir.path().join("sightline.yaml");
    let yaml = format!(
        "health:\n  checks:\n\
         \x20   - {{name: db, type: postgres, url: '{postgres}', interval: 200ms, failure_threshold: 1}}\n\
         \x20   - {{name: cache, type: redis, address: '{redis}', interval: 200ms, groups: [storage]}}\n\
         \x20   - {{name: queue, type: tcp, address: '127.0.0.1:{closed}', interval: 200ms, critical: false, failure_threshold: 1}}\n\
         \x20   - {{name: consumer, type: tcp, address: '127.0.0.1:{closed}', interval: 200ms, critical: false, depends_on: [queue]}}\n\
         \x20   - {{name: script, type: command, command: ['sh', '-c', 'exit 0'], interval: 200ms}}\n\
         \x20   - {{name: backup, type: heartbeat, window: 1h, critical: false}}\n"
    );
    std::fs::write(&config, yaml).unwrap();
    let server =
        common::start_with(&["--config", config.to_str().unwrap()], &[("SIGHTLINE_API_TOKENS", "tok")]);

    let body = wait_for(server.addr, "/health", |b| {
        ["db", "cache", "script", "data-dir-writable"].iter().all(|c| check(b, c)["status"] == "healthy")
            && check(b, "queue")["status"] == "unhealthy"
    });
    // Critical checks pass; a non-critical one fails: degraded, still 200.
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(check(&body, "cache")["status"], "healthy");
    assert_eq!(check(&body, "script")["status"], "healthy");
    assert_eq!(check(&body, "data-dir-writable")["status"], "healthy");
    assert!(check(&body, "db")["observed_unit"] == "ms");
    // Only the root of the chain reports a failure.
    assert_eq!(check(&body, "consumer")["status"], "unknown");
    assert_eq!(check(&body, "consumer")["message"], "skipped: dependency queue unhealthy");
    let ready = http_get(server.addr, "/health/ready", &[]).unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
    let storage = http_get(server.addr, "/health/storage", &[]).unwrap();
    assert!(storage.body.contains("\"cache\"") && storage.body.contains("data-dir-disk"), "{}", storage.body);

    let metrics = http_get(server.addr, "/metrics", &[]).unwrap().body;
    assert!(metrics.contains("sightline_health_status{check=\"db\",status=\"healthy\"} 1"), "{metrics}");
    assert!(metrics.contains("sightline_health_check_failures_total{check=\"consumer\"} 0"), "{metrics}");

    let cli = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["health", "--server", &format!("http://{}", server.addr)])
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(1), "degraded exits 1: {}", String::from_utf8_lossy(&cli.stdout));
}

#[test]
fn a_failing_critical_check_makes_the_service_unready() {
    let dir = TempDir::new("health-down");
    let closed = free_port();
    let config = dir.path().join("sightline.yaml");
    std::fs::write(
        &config,
        format!(
            "health:\n  checks:\n    - {{name: db, type: tcp, address: '127.0.0.1:{closed}', interval: 100ms, failure_threshold: 2}}\n"
        ),
    )
    .unwrap();
    let server = common::start_with(&["--config", config.to_str().unwrap()], &[]);
    wait_for(server.addr, "/health", |b| check(b, "db")["status"] == "unhealthy");
    let health = http_get(server.addr, "/health", &[]).unwrap();
    assert_eq!(health.status, 503);
    let ready = http_get(server.addr, "/health/ready", &[]).unwrap();
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("\"failing\":[\"db\"]"), "{}", ready.body);
    let live = http_get(server.addr, "/health/live", &[]).unwrap();
    assert_eq!(live.status, 200, "liveness does not depend on checks");
    let history = http_get(server.addr, "/api/v1/health/history?check=db", &[]).unwrap();
    let history: serde_json::Value = serde_json::from_str(&history.body).unwrap();
    let to: Vec<&str> =
        history["data"]["transitions"].as_array().unwrap().iter().filter_map(|t| t["to"].as_str()).collect();
    assert_eq!(to, vec!["degraded", "unhealthy"], "damped: degraded first, then unhealthy");
    let cli = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["health", "--quiet", "--server", &format!("http://{}", server.addr)])
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(2));
}
