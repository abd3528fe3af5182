//! Alerting in `sightline serve`: a rule fires over the server's own metrics, the pipeline delivers it to
//! a webhook in Alertmanager's format, and the rules, alerts, silences, acknowledgement, history and
//! reload endpoints work on the running server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sightline_testkit::{ChildGuard, TempDir, http_get, http_request};

const TOKEN: &str = "test-token";

/// A webhook receiver: every POST body arrives on the channel.
fn webhook() -> (SocketAddr, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(json) = serde_json::from_slice(&body) {
                    let _ = tx.send(json);
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (addr, rx)
}

struct Server {
    /// Killed on drop.
    _child: ChildGuard,
    addr: SocketAddr,
}

fn start(data_dir: &Path, config: &Path) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sightline"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(config);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SIGHTLINE_") {
            command.env_remove(key);
        }
    }
    command.env("SIGHTLINE_API_TOKENS", TOKEN);
    let mut child = ChildGuard::spawn(command).expect("spawn sightline");
    let line = child.wait_for_line("sightline listening", Duration::from_secs(30)).unwrap_or_else(|| {
        panic!("sightline did not start; its output:\n{}", child.seen.join("\n"));
    });
    let line: Value = serde_json::from_str(&line).expect("a JSON log line");
    let addr = line["listen"].as_str().expect("listen").parse().expect("address");
    Server { _child: child, addr }
}

fn get(addr: SocketAddr, path: &str) -> Value {
    let response = http_get(addr, path, &[]).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    serde_json::from_str(&response.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", response.body))
}

fn send(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let response = http_request(addr, method, path, &headers, body.as_bytes()).expect("request");
    (response.status, serde_json::from_str(&response.body).unwrap_or(Value::Null))
}

fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const RULES: &str = r#"groups:
  - name: test
    interval: 1s
    rules:
      - alert: BuildInfoPresent
        expr: sightline_build_info == 1
        labels: {severity: critical}
        annotations:
          summary: "build {{ $labels.version }} is up, value {{ $value }}"
      - record: job:build_info:count
        expr: count by (job) (sightline_build_info)
"#;

#[test]
fn a_firing_rule_reaches_a_webhook_and_the_alerting_api_works() {
    let (hook, deliveries) = webhook();
    let dir = TempDir::new("alerting");
    let rules = dir.path().join("test.rules.yml");
    std::fs::write(&rules, RULES).expect("write rules");
    let config = dir.path().join("sightline.yaml");
    std::fs::write(
        &config,
        format!(
            "tsdb:\n  self_scrape_interval: 500ms\nalerting:\n  rule_files: ['{}']\n  evaluation_interval: 1s\n\
             \x20 route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 1s\n    group_interval: 2s\n\
             \x20 receivers:\n    - name: hook\n      webhook_configs:\n        - url: http://{hook}/alerts\n",
            rules.display()
        ),
    )
    .expect("write config");
    let server = start(&dir.path().join("data"), &config);
    let addr = server.addr;

    // The webhook gets Alertmanager's version 4 payload with the rendered annotation.
    let payload = deliveries.recv_timeout(Duration::from_secs(30)).expect("a webhook delivery within 30 s");
    assert_eq!(payload["version"], "4", "{payload}");
    assert_eq!(payload["status"], "firing");
    assert_eq!(payload["receiver"], "hook");
    let alert = &payload["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "BuildInfoPresent");
    assert!(alert["annotations"]["summary"].as_str().unwrap_or("").contains(", value 1"), "{alert}");
    let fingerprint = alert["fingerprint"].as_str().expect("fingerprint").to_owned();

    // Prometheus's shapes for rules and alerts; the recording rule's series is queryable.
    let rules_api = get(addr, "/api/v1/rules");
    let group = &rules_api["data"]["groups"][0];
    assert_eq!(group["name"], "test");
    assert_eq!(group["rules"][0]["type"], "alerting");
    assert_eq!(group["rules"][0]["state"], "firing");
    let alerts = get(addr, "/api/v1/alerts");
    let listed = &alerts["data"]["alerts"][0];
    assert_eq!(listed["state"], "firing");
    assert_eq!(listed["fingerprint"], fingerprint.as_str(), "{alerts}");
    let recorded = eventually(Duration::from_secs(10), || {
        let body = get(addr, "/api/v1/query?query=job:build_info:count");
        (body["data"]["result"].as_array().map(Vec::len) == Some(1)).then_some(body)
    });
    assert!(recorded.is_some(), "the recording rule's series is stored");

    // Writes need the token.
    let response = http_request(addr, "POST", &format!("/api/v1/alerts/{fingerprint}/ack"), &[], b"{}")
        .expect("request");
    assert_eq!(response.status, 401);

    // Acknowledge, then the alert says who.
    let (status, body) =
        send(addr, "POST", &format!("/api/v1/alerts/{fingerprint}/ack"), r#"{"by":"ann","comment":"on it"}"#);
    assert_eq!(status, 200, "{body}");
    let acked = eventually(Duration::from_secs(5), || {
        let alerts = get(addr, "/api/v1/alerts");
        (alerts["data"]["alerts"][0]["ackedBy"] == "ann").then_some(())
    });
    assert!(acked.is_some());
    let (status, body) = send(addr, "POST", "/api/v1/alerts/0000000000000000/ack", r#"{"by":"ann"}"#);
    assert_eq!(status, 404, "{body}");

    // Silences: add, list, expire; bad input is named.
    let (status, body) = send(
        addr,
        "POST",
        "/api/v1/silences",
        r#"{"matchers":["alertname=\"BuildInfoPresent\""],"duration":"1h","createdBy":"ann","comment":"maintenance"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["silenceID"].as_str().expect("silence id").to_owned();
    let silences = get(addr, "/api/v1/silences");
    assert_eq!(silences["data"][0]["id"], id.as_str());
    assert_eq!(silences["data"][0]["status"]["state"], "active");
    assert_eq!(silences["data"][0]["matchers"][0]["name"], "alertname");
    let (status, body) = send(
        addr,
        "POST",
        "/api/v1/silences",
        r#"{"matchers":["alertname"],"duration":"1h","createdBy":"a","comment":"c"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or("").contains("matchers[0]"), "{body}");
    let (status, _) = send(addr, "DELETE", &format!("/api/v1/silences/{id}"), "");
    assert_eq!(status, 200);
    let silences = get(addr, "/api/v1/silences");
    assert_eq!(silences["data"][0]["status"]["state"], "expired");

    // The same through the CLI.
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
            .args(args)
            .args(["--server", &format!("http://{addr}"), "--token", TOKEN])
            .output()
            .expect("run sightline");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = cli(&["alerts"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("BuildInfoPresent")
            && stdout.contains("acked by ann")
            && stdout.contains(&fingerprint),
        "{stdout}"
    );
    let (code, stdout, stderr) = cli(&[
        "silence",
        "add",
        "severity=\"critical\"",
        "--duration",
        "5m",
        "--author",
        "bob",
        "--comment",
        "cli",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let cli_silence = stdout.trim().to_owned();
    let (code, stdout, _) = cli(&["silence", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains(&cli_silence)
            && stdout.contains("severity=\"critical\"")
            && stdout.contains("bob: cli"),
        "{stdout}"
    );
    let (code, stdout, stderr) = cli(&["silence", "expire", &cli_silence]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("expired"));
    let (code, _, stderr) = cli(&["ack", "0000000000000000", "--by", "bob"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no alert"), "{stderr}");

    // The history holds the transitions and the acknowledgement.
    let history = eventually(Duration::from_secs(10), || {
        let history = get(addr, "/api/v1/alerts/history?alertname=BuildInfoPresent");
        let events: Vec<String> = history["data"]
            .as_array()?
            .iter()
            .filter_map(|e| e["event"].as_str().map(str::to_owned))
            .collect();
        (events.contains(&"firing".to_owned()) && events.contains(&"acked".to_owned())).then_some(events)
    });
    assert!(history.is_some(), "{}", get(addr, "/api/v1/alerts/history"));
    // Deliveries are recorded per fingerprint.
    let delivered = get(addr, &format!("/api/v1/alerts/history?fingerprint={fingerprint}"));
    let events: Vec<&str> =
        delivered["data"].as_array().into_iter().flatten().filter_map(|e| e["event"].as_str()).collect();
    assert!(events.contains(&"notified") && events.contains(&"firing"), "{delivered}");

    // A reload with a broken rule file is refused and the running rules stay.
    std::fs::write(
        &rules,
        "groups:\n  - name: test\n    rules:\n      - alert: Broken\n        expr: sum(\n",
    )
    .expect("write rules");
    let (status, body) = send(addr, "POST", "/-/reload", "");
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or("").contains("test.rules.yml:5"), "{body}");
    assert_eq!(get(addr, "/api/v1/rules")["data"]["groups"][0]["rules"][0]["name"], "BuildInfoPresent");
    drop(server);
}

#[test]
fn rules_check_and_test_run_the_shipped_default_rules() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["rules", "check"])
        .arg(format!("{root}/deploy/rules/sightline.rules.yml"))
        .output()
        .expect("run rules check");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("SUCCESS: 17 rules found"));
    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["rules", "test"])
        .arg(format!("{root}/deploy/rules/tests/sightline.rules.test.yml"))
        .output()
        .expect("run rules test");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let dir = TempDir::new("rules-check");
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n")
        .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["rules", "check"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("bad.yml:5"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn notify_test_sends_through_every_integration_of_a_receiver() {
    let (hook, deliveries) = webhook();
    let dir = TempDir::new("notify-test");
    let config = dir.path().join("sightline.yaml");
    std::fs::write(
        &config,
        format!(
            "alerting:\n  route: {{receiver: ops}}\n  receivers:\n    - name: ops\n      retries: 0\n\
             \x20     webhook_configs:\n        - url: http://{hook}/ok\n        - url: http://127.0.0.1:1/down\n"
        ),
    )
    .expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["notify", "test", "ops", "--config"])
        .arg(&config)
        .output()
        .expect("run notify test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("ops webhook[0]: delivered"), "{stdout}");
    assert!(stderr.contains("ops webhook[1]: failed"), "{stderr}");
    let payload = deliveries.recv_timeout(Duration::from_secs(5)).expect("the test notification");
    assert_eq!(payload["alerts"][0]["labels"]["alertname"], "SightlineTestAlert");

    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["notify", "test", "nobody", "--config"])
        .arg(&config)
        .output()
        .expect("run notify test");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("have: ops"));
}

#[test]
fn a_restart_keeps_silences_and_does_not_repeat_a_sent_notification() {
    let (hook, deliveries) = webhook();
    let dir = TempDir::new("alerting-restart");
    let rules = dir.path().join("test.rules.yml");
    // Each start listens on a new port, which is the self-scrape's `instance`: aggregate it away so the
    // alert is the same one across the restart.
    std::fs::write(
        &rules,
        "groups:\n  - name: test\n    interval: 1s\n    rules:\n      - alert: BuildInfoPresent\n\
         \x20       expr: max without (instance) (sightline_build_info) == 1\n",
    )
    .expect("write rules");
    let config = dir.path().join("sightline.yaml");
    std::fs::write(
        &config,
        format!(
            "tsdb:\n  self_scrape_interval: 500ms\nalerting:\n  rule_files: ['{}']\n  evaluation_interval: 1s\n\
             \x20 route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 1s\n    group_interval: 1s\n\
             \x20 receivers:\n    - name: hook\n      webhook_configs:\n        - url: http://{hook}/alerts\n",
            rules.display()
        ),
    )
    .expect("write config");
    let data = dir.path().join("data");
    let mut server = start(&data, &config);
    let first = deliveries.recv_timeout(Duration::from_secs(30)).expect("a delivery");
    assert_eq!(first["status"], "firing");
    let (status, body) = send(
        server.addr,
        "POST",
        "/api/v1/silences",
        r#"{"matchers":["severity=\"none\""],"duration":"1h","createdBy":"ann","comment":"kept"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["silenceID"].as_str().expect("id").to_owned();
    let status = server._child.terminate(Duration::from_secs(15)).expect("exits");
    assert!(status.success());

    let server = start(&data, &config);
    let silences = get(server.addr, "/api/v1/silences");
    assert_eq!(silences["data"][0]["id"], id.as_str(), "{silences}");
    // The alert fires again at once after the restart; the notification log says the hook was told.
    let firing = eventually(Duration::from_secs(15), || {
        let alerts = get(server.addr, "/api/v1/alerts");
        (alerts["data"]["alerts"][0]["state"] == "firing").then_some(())
    });
    assert!(firing.is_some());
    if let Ok(again) = deliveries.recv_timeout(Duration::from_secs(4)) {
        panic!("a notification was sent again after the restart: {again}");
    }
}

#[test]
fn check_config_names_bad_routing_and_rule_files_with_their_lines() {
    let dir = TempDir::new("alerting-config");
    let check = |yaml: &str| {
        let config = dir.path().join("sightline.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
            .arg("check-config")
            .arg(&config)
            .output()
            .expect("run");
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, stderr) = check("alerting:\n  route:\n    receiver: nobody\n  receivers:\n    - name: ops\n");
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("sightline.yaml:3:") && stderr.contains("undefined receiver \"nobody\""),
        "{stderr}"
    );
    let (code, stderr) =
        check("alerting:\n  route:\n    receiver: ops\n    group_wait: 5x\n  receivers:\n    - name: ops\n");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("sightline.yaml:4:") && stderr.contains("5x"), "{stderr}");
    let (code, stderr) = check("alerting:\n  rule_files: ['/nonexistent/*.yml']\n");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("matches no file"), "{stderr}");
    let rules = dir.path().join("bad.rules.yml");
    std::fs::write(&rules, "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n")
        .expect("write");
    let (code, stderr) = check(&format!("alerting:\n  rule_files: ['{}']\n", rules.display()));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("bad.rules.yml:5:"), "{stderr}");
}
