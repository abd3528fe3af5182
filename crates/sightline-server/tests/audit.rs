//! The audit trail end to end through `sightline serve`: durable ingest over HTTP, bad input, search,
//! export and import, verification (and tampering), SIGKILL mid-stream, and PostgreSQL.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sightline_testkit::{TempDir, http_get, http_request};

const TOKEN: &str = "audit-test-token";

fn post(addr: SocketAddr, body: &str, token: Option<&str>) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    let answer =
        http_request(addr, "POST", "/api/v1/audit/events", &headers, body.as_bytes()).expect("answer");
    (answer.status, serde_json::from_str(&answer.body).unwrap_or(Value::Null))
}

fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let answer = http_get(addr, path, &[]).expect("answer");
    (answer.status, serde_json::from_str(&answer.body).unwrap_or(Value::String(answer.body)))
}

fn search(addr: SocketAddr, q: &str) -> Vec<Value> {
    let path = format!("/api/v1/audit/events?limit=1000&q={}", urlencode(q));
    let (status, body) = get(addr, &path);
    assert_eq!(status, 200, "{body}");
    body["data"]["events"].as_array().cloned().unwrap_or_default()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn event(i: usize, actor: &str, outcome: &str) -> Value {
    json!({
        "actor": {"id": actor, "type": "user", "ip": "10.0.0.7"},
        "action": "auth.login",
        "target": {"type": "account", "id": format!("acct-{i}")},
        "outcome": outcome,
        "severity": "low",
        "component": "sso",
        "message": format!("login {i} from the office, mail bob@example.com"),
        "attributes": {"attempt": i, "password": "hunter2"}
    })
}

fn sightline(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sightline")).args(args).output().expect("run sightline");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn ingest_search_export_import_and_verify() {
    let server = common::start(&[("SIGHTLINE_API_TOKENS", TOKEN)]);
    let addr = server.addr;
    let batch: Vec<Value> =
        (0..5).map(|i| event(i, if i % 2 == 0 { "alice" } else { "mallory" }, "success")).collect();
    let (status, body) = post(addr, &Value::Array(batch).to_string(), Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["count"], 5);
    assert_eq!(body["data"]["ids"].as_array().unwrap().len(), 5);
    // NDJSON too.
    let ndjson = format!("{}\n{}\n", event(5, "alice", "failure"), event(6, "alice", "denied"));
    let (status, _) = post(addr, &ndjson, Some(TOKEN));
    assert_eq!(status, 200);

    // Stored redacted, searchable by field and (within a second) by text.
    let alice = search(addr, "actor:alice");
    assert_eq!(alice.len(), 5);
    assert!(alice[0]["message"].as_str().unwrap().contains("[REDACTED:email]"), "{}", alice[0]);
    assert_eq!(alice[0]["attributes"]["password"], "[REDACTED]");
    assert_eq!(search(addr, "actor:alice outcome:denied").len(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while search(addr, "office \"login 3\"").len() != 1 {
        assert!(Instant::now() < deadline, "text search never found the event");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, counts) = get(addr, "/api/v1/audit/events?count_by=actor");
    assert_eq!(status, 200, "{counts}");
    assert_eq!(counts["data"]["counts"][0], json!({"value": "alice", "count": 5}));
    // Pagination.
    let (_, first) = get(addr, "/api/v1/audit/events?limit=4");
    let cursor = first["data"]["next_cursor"].as_str().expect("a next page").to_owned();
    let (_, second) = get(addr, &format!("/api/v1/audit/events?limit=4&cursor={cursor}"));
    assert_eq!(second["data"]["events"].as_array().unwrap().len(), 3);
    assert!(second["data"]["next_cursor"].is_null());

    // Verify, by API and CLI.
    let (status, report) = get(addr, "/api/v1/audit/verify");
    assert_eq!(status, 200);
    assert_eq!(report["data"]["ok"], true, "{report}");
    assert_eq!(report["data"]["checked"], 7);
    let base = format!("http://{addr}");
    let (code, out, err) = sightline(&["audit", "verify", "--server", &base]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ok: 7 events verified"), "{out}");
    let (code, out, _) = sightline(&["audit", "search", "actor:mallory", "--server", &base]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().filter(|l| l.contains("mallory")).count(), 2, "{out}");

    // Export from one server, import into another: the events arrive with their ids.
    let dir = TempDir::new("audit-export");
    let file = dir.path().join("events.ndjson");
    let (code, exported, err) = sightline(&["audit", "export", "--server", &base]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(exported.lines().count(), 7);
    std::fs::write(&file, &exported).unwrap();
    let other = common::start(&[("SIGHTLINE_API_TOKENS", TOKEN)]);
    let other_base = format!("http://{}", other.addr);
    let (code, out, err) = sightline(&[
        "audit",
        "import",
        file.to_str().unwrap(),
        "--server",
        &other_base,
        "--token",
        TOKEN,
        "--batch",
        "3",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("imported 7 events"), "{out}");
    assert_eq!(search(other.addr, "").len(), 7);
    let first_id =
        exported.lines().next().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].clone()).unwrap();
    assert!(search(other.addr, "").iter().any(|e| e["id"] == first_id), "ids survive the import");
    // Importing the same file again is refused (the ids are stored) and stores nothing more.
    let (code, _, err) =
        sightline(&["audit", "import", file.to_str().unwrap(), "--server", &other_base, "--token", TOKEN]);
    assert_eq!(code, Some(1));
    assert!(err.contains("stored already"), "{err}");
    assert_eq!(search(other.addr, "").len(), 7);
}

#[test]
fn bad_requests_are_refused_whole_and_named() {
    let server =
        common::start(&[("SIGHTLINE_API_TOKENS", TOKEN), ("SIGHTLINE_AUDIT__MAX_REQUEST_BYTES", "4000")]);
    let addr = server.addr;
    let good = event(1, "alice", "success");
    let cases: Vec<(String, Option<&str>, u16, &str)> = vec![
        (json!([good]).to_string(), None, 401, "Authorization"),
        (json!([good]).to_string(), Some("wrong"), 401, "not one of"),
        ("[{\"actor\": ".into(), Some(TOKEN), 400, "not a JSON array"),
        (json!([good, {"actor": {"id": ""}, "action": "auth.login", "outcome": "success"}]).to_string(), Some(TOKEN), 400, "event 1: field `actor.id`"),
        (json!([good, {"actor": {"id": "x"}, "action": "auth.login", "outcome": "maybe"}]).to_string(), Some(TOKEN), 400, "event 1: field `outcome`"),
        (json!([{"actor": {"id": "x"}, "action": "Auth Login", "outcome": "success"}]).to_string(), Some(TOKEN), 400, "field `action`"),
        (json!([{"actor": {"id": 5}, "action": "a.b", "outcome": "success"}]).to_string(), Some(TOKEN), 400, "field `actor.id`"),
        (json!([{"actor": {"id": "x"}, "action": "a.b", "outcome": "success", "colour": 1}]).to_string(), Some(TOKEN), 400, "colour"),
        (json!([good, {"message": "x".repeat(5000), "actor": {"id": "x"}, "action": "a.b", "outcome": "success"}]).to_string(), Some(TOKEN), 413, "over 4000 bytes"),
        ("[]".into(), Some(TOKEN), 400, "no events"),
        (json!([{"actor": {"id": "x"}, "action": "a.b", "outcome": "success", "message": "a\u{0}b"}]).to_string(), Some(TOKEN), 400, "field `message`: contains a NUL"),
    ];
    for (body, token, status, needle) in cases {
        let (got, answer) = post(addr, &body, token);
        assert_eq!(got, status, "{body:.120}: {answer}");
        assert!(answer["error"].as_str().unwrap_or_default().contains(needle), "{body:.120}: {answer}");
    }
    // Nothing of a refused batch was stored: only the server's own audit of the two refused tokens, which
    // is queued without waiting for its commit.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut all = search(addr, "");
    while all.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        all = search(addr, "");
    }
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all.iter().all(|e| e["action"] == "auth.token" && e["outcome"] == "denied"), "{all:#?}");
    // Bad queries name the problem.
    let (status, body) = get(addr, "/api/v1/audit/events?q=colour:red");
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("unknown key"), "{body}");
    let (status, body) = get(addr, "/api/v1/audit/events?cursor=nope");
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("cursor"), "{body}");
    // The security counter saw the refusals.
    let metrics = http_get(addr, "/metrics", &[]).unwrap().body;
    assert!(
        metrics.contains("sightline_security_events_total{event_type=\"auth.token\",result=\"denied\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("sightline_audit_rejected_total{reason=\"invalid\"}"), "{metrics}");
}

#[test]
fn tampering_is_reported_by_verify() {
    let dir = TempDir::new("audit-tamper");
    let db = dir.path().join("audit.db");
    let url = format!("sqlite://{}", db.display());
    let server = common::start(&[("SIGHTLINE_API_TOKENS", TOKEN), ("SIGHTLINE_STORAGE__URL", &url)]);
    let batch: Vec<Value> = (0..4).map(|i| event(i, "alice", "success")).collect();
    assert_eq!(post(server.addr, &Value::Array(batch).to_string(), Some(TOKEN)).0, 200);
    // Edit an event behind the server's back, as an intruder with file access would.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = sightline_audit::SqliteStore::open(&db).await.unwrap();
        sqlx::query("UPDATE audit_events SET outcome = 'failure' WHERE seq = 3")
            .execute(store.pool())
            .await
            .unwrap();
    });
    let (_, report) = get(server.addr, "/api/v1/audit/verify");
    assert_eq!(report["data"]["ok"], false, "{report}");
    assert_eq!(report["data"]["problem"]["kind"], "altered");
    assert_eq!(report["data"]["problem"]["seq"], 3);
    let (code, out, _) = sightline(&["audit", "verify", "--server", &format!("http://{}", server.addr)]);
    assert_eq!(code, Some(1));
    assert!(out.contains("TAMPERED: altered at seq 3"), "{out}");
}

#[test]
fn no_acknowledged_event_is_lost_when_the_server_is_killed() {
    let dir = TempDir::new("audit-kill");
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let env = [("SIGHTLINE_API_TOKENS", TOKEN), ("SIGHTLINE_STORAGE__URL", url.as_str())];
    let mut server = common::start(&env);
    let addr = server.addr;
    // Writers post batches as fast as they can and keep the ids the server acknowledged.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let batch: Vec<Value> =
                        (0..50).map(|k| event(i * 50 + k, &format!("writer-{w}"), "success")).collect();
                    i += 1;
                    match std::panic::catch_unwind(|| {
                        post(addr, &Value::Array(batch).to_string(), Some(TOKEN))
                    }) {
                        Ok((200, body)) => acknowledged.extend(
                            body["data"]["ids"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|id| id.as_str().unwrap().to_owned()),
                        ),
                        _ => break, // the server is gone mid-request: that batch was never acknowledged
                    }
                }
                acknowledged
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    server.child.kill(); // SIGKILL: no drain, no flush
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged: Vec<String> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(acknowledged.len() >= 200, "the writers got going ({} acknowledged)", acknowledged.len());

    let server = common::start(&env);
    let base = format!("http://{}", server.addr);
    let (code, exported, err) = sightline(&["audit", "export", "--server", &base]);
    assert_eq!(code, Some(0), "{err}");
    let stored: std::collections::HashSet<String> = exported
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged events lost", lost.len(), acknowledged.len());
    let (code, out, _) = sightline(&["audit", "verify", "--server", &base]);
    assert_eq!(code, Some(0), "the chain survives a kill: {out}");
}

#[test]
fn the_storage_health_check_and_an_unreachable_database_at_start() {
    let server = common::start(&[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, health) = get(server.addr, "/health");
        let check =
            health["checks"].as_array().unwrap().iter().find(|c| c["name"] == "audit-storage").cloned();
        let check = check.unwrap_or_else(|| panic!("no audit-storage check in {health}"));
        if check["status"] != "unknown" || Instant::now() > deadline {
            assert_eq!(check["status"], "healthy", "{check}");
            assert!(check["message"].as_str().unwrap_or_default().contains("sqlite answers"), "{check}");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // A database that is not there: a clear error and exit 1.
    let port = sightline_testkit::free_port();
    let dir = TempDir::new("audit-unreachable");
    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env(
            "SIGHTLINE_STORAGE__URL",
            format!("postgres://postgres:secret@127.0.0.1:{port}/test?connect_timeout=2"),
        )
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open the audit store postgres://postgres@127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("secret"), "the password is not printed: {stderr}");
}

#[test]
fn reads_can_be_protected_by_the_token_too() {
    let server =
        common::start(&[("SIGHTLINE_API_TOKENS", TOKEN), ("SIGHTLINE_AUDIT__PROTECT_READS", "true")]);
    for path in ["/api/v1/audit/events", "/api/v1/audit/export", "/api/v1/audit/verify"] {
        assert_eq!(http_get(server.addr, path, &[]).unwrap().status, 401, "{path}");
        let auth = format!("Bearer {TOKEN}");
        assert_eq!(http_get(server.addr, path, &[("Authorization", &auth)]).unwrap().status, 200, "{path}");
    }
    let base = format!("http://{}", server.addr);
    let (code, _, err) = sightline(&["audit", "verify", "--server", &base]);
    assert_eq!(code, Some(1), "{err}");
    let (code, out, err) = sightline(&["audit", "verify", "--server", &base, "--token", TOKEN]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("ok:"), "{out}");
}
