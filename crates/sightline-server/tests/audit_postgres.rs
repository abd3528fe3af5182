//! The audit trail on PostgreSQL through `sightline serve`, including the database going away mid-run:
//! ingest answers 503, the `audit-storage` check turns unhealthy, nothing acknowledged is lost, and
//! writing resumes when the database is back.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sightline_testkit::{TcpProxy, http_get, http_request};

const TOKEN: &str = "pg-audit-token";

fn post(addr: SocketAddr, events: &[Value]) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let body = Value::Array(events.to_vec()).to_string();
    let answer =
        http_request(addr, "POST", "/api/v1/audit/events", &[("Authorization", &auth)], body.as_bytes())
            .expect("an answer");
    (answer.status, serde_json::from_str(&answer.body).unwrap_or(Value::Null))
}

fn event(i: usize) -> Value {
    json!({"actor": {"id": "alice"}, "action": "doc.edit", "outcome": "success", "message": format!("edit {i}")})
}

fn ids(body: &Value) -> Vec<String> {
    body["data"]["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn storage_status(addr: SocketAddr) -> String {
    let body: Value =
        serde_json::from_str(&http_get(addr, "/health", &[]).expect("health").body).expect("JSON");
    body["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == "audit-storage"))
        .map(|c| c["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn losing_the_database_mid_run_answers_503_and_loses_nothing_acknowledged() {
    let Some(url) = sightline_testkit::postgres_url() else { return };
    // A fresh schema, reached through a proxy that the test can cut.
    let schema = format!("audit_srv_{:x}", std::process::id() as u64 * 7919 + 13);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let admin = runtime.block_on(sqlx::PgPool::connect(&url)).expect("connect to PostgreSQL");
    runtime
        .block_on(sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&admin))
        .expect("drop");
    runtime.block_on(sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin)).expect("create schema");
    let target: SocketAddr = "127.0.0.1:5432".parse().expect("address");
    let proxy = TcpProxy::start(target).expect("proxy");
    let server_url = format!(
        "postgres://postgres@{}/test?connect_timeout=2&options=-c%20search_path%3D{schema}",
        proxy.addr()
    );
    let server = common::start(&[
        ("SIGHTLINE_API_TOKENS", TOKEN),
        ("SIGHTLINE_STORAGE__URL", &server_url),
        ("SIGHTLINE_AUDIT__COMMIT_TIMEOUT", "3s"),
    ]);
    let addr = server.addr;
    let mut acknowledged: Vec<String> = Vec::new();
    let (status, body) = post(addr, &[event(0), event(1)]);
    assert_eq!(status, 200, "{body}");
    acknowledged.extend(ids(&body));
    wait_for("audit-storage healthy", Duration::from_secs(15), || storage_status(addr) == "healthy");

    proxy.set_down();
    // The first write after the cut waits for its commit, then answers 503; later ones are refused at once.
    let (status, body) = post(addr, &[event(2)]);
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("audit storage is unavailable"), "{body}");
    wait_for("audit-storage unhealthy", Duration::from_secs(20), || storage_status(addr) == "unhealthy");
    let (status, _) = post(addr, &[event(3)]);
    assert_eq!(status, 503);

    proxy.set_up();
    // Writing resumes: the queued event commits, and new writes succeed.
    wait_for("ingest to resume", Duration::from_secs(30), || {
        let (status, body) = post(addr, &[event(4)]);
        if status == 200 {
            acknowledged.extend(ids(&body));
        }
        status == 200
    });
    wait_for("audit-storage healthy again", Duration::from_secs(20), || storage_status(addr) == "healthy");
    let export = http_get(addr, "/api/v1/audit/export", &[]).expect("export").body;
    let stored: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    for id in &acknowledged {
        assert!(stored.iter().any(|e| e["id"].as_str() == Some(id.as_str())), "acknowledged {id} is missing");
    }
    let verify: Value =
        serde_json::from_str(&http_get(addr, "/api/v1/audit/verify", &[]).expect("verify").body)
            .expect("JSON");
    assert_eq!(verify["data"]["ok"], true, "{verify}");
    drop(server);
    let _ = runtime.block_on(sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&admin));
}
