//! Alerting in `sightline serve`: a rule fires over the server's own metrics, the pipeline delivers it to
//! a webhook in Alertmanager's format, and the rules, alerts, silences, acknowledgement, history and
//! reload endpoints work on the running server. End to end, with short intervals: forwarding to a real
//! Alertmanager, escalation and acknowledgement, inhibition, a receiver down then up, and silences created
//! during `group_wait`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use common::{Server, eventually, get_json as get};
use serde_json::Value;
use sightline_testkit::{Alertmanager, TempDir, free_port, http_get, http_request, require_peer};

const TOKEN: &str = "test-token";

/// One request a webhook receiver got: its path, its JSON body and when it arrived.
#[derive(Debug)]
struct Delivery {
    path: String,
    body: Value,
    at: SystemTime,
}

/// A webhook receiver on a free port: every POST arrives on the channel.
fn webhook() -> (SocketAddr, mpsc::Receiver<Delivery>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    (addr, serve_webhook(listener))
}

/// Answers every request on `listener` with 200 and hands its body to the channel.
fn serve_webhook(listener: TcpListener) -> mpsc::Receiver<Delivery> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some((path, body)) = read_request(&stream) else { continue };
            let at = SystemTime::now();
            if let Ok(body) = serde_json::from_slice(&body) {
                if tx.send(Delivery { path, body, at }).is_err() {
                    break;
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    rx
}

/// Reads one HTTP/1.1 request: its path and body.
fn read_request(stream: &std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split_whitespace().nth(1)?.to_owned();
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
    reader.read_exact(&mut body).ok()?;
    Some((path, body))
}

/// A scrape target whose `flag{id="..."}` gauges the test sets, so that rules over them fire and clear.
struct Target {
    addr: SocketAddr,
    flags: Arc<Mutex<BTreeMap<String, f64>>>,
}

impl Target {
    fn start(flags: &[(&str, f64)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let flags: Arc<Mutex<BTreeMap<String, f64>>> =
            Arc::new(Mutex::new(flags.iter().map(|(id, v)| ((*id).to_owned(), *v)).collect()));
        let served = flags.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if read_request(&stream).is_none() {
                    continue;
                }
                let mut body = String::from("# TYPE flag gauge\n");
                for (id, value) in served.lock().expect("flags").iter() {
                    body.push_str(&format!("flag{{id=\"{id}\"}} {value}\n"));
                }
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        Self { addr, flags }
    }

    fn set(&self, id: &str, value: f64) {
        self.flags.lock().expect("flags").insert(id.to_owned(), value);
    }
}

/// Writes `rules` and a server configuration that scrapes `target` every second (with a timeout as long, so
/// that a loaded machine does not fail a scrape, whose staleness markers would resolve alerts), evaluates
/// the rules every 500 ms and has `alerting` (YAML indented by two spaces) in its `alerting:` section. Returns the config
/// file's path.
fn write_config(dir: &Path, target: &Target, rules: &str, alerting: &str) -> PathBuf {
    let rule_file = dir.join("test.rules.yml");
    std::fs::write(&rule_file, rules).expect("write rules");
    let config = dir.join("sightline.yaml");
    std::fs::write(
        &config,
        format!(
            "tsdb:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: flip\n    static_configs:\n      - targets: ['{}']\n\
             alerting:\n  rule_files: ['{}']\n  evaluation_interval: 500ms\n{alerting}",
            target.addr,
            rule_file.display()
        ),
    )
    .expect("write config");
    config
}

fn start(data_dir: &Path, config: &Path) -> Server {
    common::start_in(data_dir, config, &[("SIGHTLINE_API_TOKENS", TOKEN)])
}

fn send(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let response = http_request(addr, method, path, &headers, body.as_bytes()).expect("request");
    (response.status, serde_json::from_str(&response.body).unwrap_or(Value::Null))
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
    let payload =
        deliveries.recv_timeout(Duration::from_secs(30)).expect("a webhook delivery within 30 s").body;
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

    // So is one whose receiver has a template that does not parse, naming the receiver and the field.
    std::fs::write(&rules, RULES).expect("write rules");
    let good = std::fs::read_to_string(&config).expect("read config");
    // The running config plus a Slack receiver `chat` whose title is `title`.
    let with_chat = |title: &str| {
        std::fs::write(
            &config,
            format!(
                "{good}    - name: chat\n      slack_configs:\n        - api_url: http://127.0.0.1:9/slack\n\
                 \x20         title: '{title}'\n"
            ),
        )
        .expect("write config");
    };
    with_chat("{{ .CommonLabels.alertname ");
    let (status, body) = send(addr, "POST", "/-/reload", "");
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or("");
    assert!(error.contains("chat") && error.contains("title"), "{body}");
    assert_eq!(get(addr, "/api/v1/rules")["data"]["groups"][0]["rules"][0]["name"], "BuildInfoPresent");
    // With the template mended, the reload is taken.
    with_chat("{{ .CommonLabels.alertname }}");
    let (status, body) = send(addr, "POST", "/-/reload", "");
    assert_eq!(status, 200, "{body}");
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
    let payload = deliveries.recv_timeout(Duration::from_secs(5)).expect("the test notification").body;
    assert_eq!(payload["alerts"][0]["labels"]["alertname"], "SightlineTestAlert");

    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["notify", "test", "nobody", "--config"])
        .arg(&config)
        .output()
        .expect("run notify test");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("have: ops"));
}

/// A config for the restart tests, in `dir`: one rule that fires at once over the server's own
/// `sightline_build_info`, every 500 ms, routed to the webhook at `hook` after `group_wait`. Each start
/// listens on a new port, which is the self-scrape's `instance`: the rule aggregates it away so that the
/// alert is the same one across a restart.
fn restart_config(dir: &Path, hook: SocketAddr, group_wait: &str) -> PathBuf {
    let rules = dir.join("test.rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: test\n    interval: 500ms\n    rules:\n      - alert: BuildInfoPresent\n\
         \x20       expr: max without (instance) (sightline_build_info) == 1\n",
    )
    .expect("write rules");
    let config = dir.join("sightline.yaml");
    std::fs::write(
        &config,
        format!(
            "tsdb:\n  self_scrape_interval: 500ms\nalerting:\n  rule_files: ['{}']\n  evaluation_interval: 500ms\n\
             \x20 route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: {group_wait}\n    group_interval: 1s\n\
             \x20 receivers:\n    - name: hook\n      webhook_configs:\n        - url: http://{hook}/alerts\n",
            rules.display()
        ),
    )
    .expect("write config");
    config
}

#[test]
fn a_restart_keeps_silences_and_does_not_repeat_a_sent_notification() {
    let (hook, deliveries) = webhook();
    let dir = TempDir::new("alerting-restart");
    let config = restart_config(dir.path(), hook, "1s");
    let data = dir.path().join("data");
    let mut server = start(&data, &config);
    let first = deliveries.recv_timeout(Duration::from_secs(30)).expect("a delivery").body;
    assert_eq!(first["status"], "firing");
    let (status, body) = send(
        server.addr,
        "POST",
        "/api/v1/silences",
        r#"{"matchers":["severity=\"none\""],"duration":"1h","createdBy":"ann","comment":"kept"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["silenceID"].as_str().expect("id").to_owned();
    let status = server.child.terminate(Duration::from_secs(15)).expect("exits");
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
        panic!("a notification was sent again after the restart: {}", again.body);
    }
}

/// A server killed while a group waits (`group_wait`) for its first notification: after the restart the
/// notification is sent, once.
#[test]
fn a_server_killed_mid_group_sends_the_waiting_notification_once_after_the_restart() {
    let (hook, deliveries) = webhook();
    let dir = TempDir::new("alerting-mid-group");
    let config = restart_config(dir.path(), hook, "6s");
    let data = dir.path().join("data");
    let mut server = start(&data, &config);
    // The alert is in the pipeline, its group waiting.
    let fingerprint = eventually(Duration::from_secs(20), || {
        let alerts = get(server.addr, "/api/v1/alerts");
        let alert = alerts["data"]["alerts"].as_array()?.iter().find(|a| {
            a["labels"]["alertname"] == "BuildInfoPresent"
                && a["state"] == "firing"
                && a.get("silencedBy").is_some()
        })?;
        alert["fingerprint"].as_str().map(str::to_owned)
    })
    .expect("the alert reaches the pipeline");
    assert!(deliveries.try_recv().is_err(), "delivered before group_wait");
    server.child.kill();

    let server = start(&data, &config);
    let delivery = next(&deliveries, "the waiting notification after the restart");
    assert_eq!(delivery.body["status"], "firing", "{}", delivery.body);
    assert_eq!(delivery.body["alerts"][0]["fingerprint"], fingerprint.as_str(), "{}", delivery.body);
    assert_quiet(&deliveries, Duration::from_secs(4), "the notification was sent twice");
    drop(server);
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

// === End to end through `sightline serve` ===
//
// Each test below runs the real binary with short intervals over a scrape target whose `flag` gauges it
// sets, so a rule's condition can be made true and cleared. Waits are polls with deadlines; the few waits
// for something *not* to happen last a few group intervals after the event that would have caused it.

/// How long any expected delivery or state may take.
const WAIT: Duration = Duration::from_secs(30);

/// The next delivery, or a panic naming what was awaited.
fn next(deliveries: &mpsc::Receiver<Delivery>, what: &str) -> Delivery {
    deliveries.recv_timeout(WAIT).unwrap_or_else(|_| panic!("no delivery within {WAIT:?}: {what}"))
}

/// The alerts of a webhook payload as (alertname, id, status), sorted.
fn alerts_of(payload: &Value) -> Vec<(String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut alerts: Vec<_> = payload["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| (text(&a["labels"]["alertname"]), text(&a["labels"]["id"]), text(&a["status"])))
        .collect();
    alerts.sort();
    alerts
}

fn triple(alertname: &str, id: &str, status: &str) -> (String, String, String) {
    (alertname.to_owned(), id.to_owned(), status.to_owned())
}

/// The `/api/v1/alerts` entry of rule alert `alertname` with `flag` id `id`, once the notification
/// pipeline holds it (the entry then says `silencedBy`).
fn pipeline_alert(addr: SocketAddr, alertname: &str, id: &str) -> Option<Value> {
    let alerts = get(addr, "/api/v1/alerts");
    alerts["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| {
            a["labels"]["alertname"] == alertname && a["labels"]["id"] == id && a.get("silencedBy").is_some()
        })
        .cloned()
}

/// The fingerprint of a firing alert the pipeline holds, waiting for it.
fn fingerprint(addr: SocketAddr, alertname: &str, id: &str) -> String {
    let alert = eventually(WAIT, || pipeline_alert(addr, alertname, id).filter(|a| a["state"] == "firing"))
        .unwrap_or_else(|| panic!("{alertname}{{id={id}}} never reached the pipeline firing"));
    alert["fingerprint"].as_str().expect("a fingerprint").to_owned()
}

/// The history of one alert, oldest first, as (event, message).
fn history(addr: SocketAddr, fingerprint: &str) -> Vec<(String, String)> {
    let body = get(addr, &format!("/api/v1/alerts/history?fingerprint={fingerprint}&limit=1000"));
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut events: Vec<_> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (text(&e["event"]), text(&e["message"])))
        .collect();
    events.reverse();
    events
}

/// Waits until the history of `fingerprint` has an `event` whose message contains `text`.
fn await_history(addr: SocketAddr, fingerprint: &str, event: &str, text: &str) -> Vec<(String, String)> {
    eventually(WAIT, || {
        let events = history(addr, fingerprint);
        events.iter().any(|(e, m)| e == event && m.contains(text)).then_some(events)
    })
    .unwrap_or_else(|| {
        panic!("no {event:?} event containing {text:?} for {fingerprint}: {:?}", history(addr, fingerprint))
    })
}

/// Collects deliveries for `window` and fails on any: used after the point at which an unwanted
/// notification would have been sent, for a few group intervals.
fn assert_quiet(deliveries: &mpsc::Receiver<Delivery>, window: Duration, why: &str) {
    if let Ok(extra) = deliveries.recv_timeout(window) {
        panic!("{why}; got {:?}: {}", alerts_of(&extra.body), extra.body);
    }
}

fn starts_at(alert: &Value) -> SystemTime {
    let text = alert["startsAt"].as_str().expect("startsAt");
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("startsAt {text:?}: {e}"))
}

#[test]
fn forwarded_alerts_reach_a_real_alertmanager_with_labels_and_annotations_and_resolve_there() {
    let Some(alertmanager) = require_peer("prometheus-alertmanager", "prometheus-alertmanager") else {
        return;
    };
    // Alertmanager's own webhook shows that it processed the alert, firing and then resolved.
    let (am_hook, am_deliveries) = webhook();
    let dir = TempDir::new("alerting-am");
    let alertmanager = Alertmanager::start(&alertmanager, dir.path(), &format!("http://{am_hook}/am"))
        .expect("start prometheus-alertmanager");
    let am = alertmanager.addr;

    let target = Target::start(&[("a", 1.0)]);
    let rules = "groups:\n  - name: e2e\n    interval: 500ms\n    rules:\n      - alert: FlagRaised\n\
                 \x20       expr: flag == 1\n        labels: {severity: page}\n        annotations:\n\
                 \x20         summary: 'flag {{ $labels.id }} is {{ $value }}'\n";
    // No `route`: the in-process pipeline is off and Alertmanager owns the routing.
    let config =
        write_config(dir.path(), &target, rules, &format!("  alertmanagers: [{{url: 'http://{am}'}}]\n"));
    let server = start(&dir.path().join("data"), &config);

    let am_alerts = || -> Vec<Value> {
        let response = http_get(am, "/api/v2/alerts", &[]).expect("GET /api/v2/alerts");
        serde_json::from_str::<Value>(&response.body)
            .unwrap_or_else(|e| panic!("Alertmanager's alerts are not JSON ({e}): {}", response.body))
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let held = eventually(WAIT, || {
        am_alerts()
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "FlagRaised" && a["status"]["state"] == "active")
    })
    .unwrap_or_else(|| panic!("Alertmanager never held FlagRaised as active: {:?}", am_alerts()));
    let instance = target.addr.to_string();
    assert_eq!(
        held["labels"],
        serde_json::json!({
            "alertname": "FlagRaised", "id": "a", "instance": instance, "job": "flip", "severity": "page"
        }),
        "{held}"
    );
    assert_eq!(held["annotations"], serde_json::json!({"summary": "flag a is 1"}), "{held}");
    let generator = held["generatorURL"].as_str().unwrap_or_default();
    assert!(generator.starts_with(&format!("http://{}/", server.addr)), "{held}");

    let firing = next(&am_deliveries, "Alertmanager's firing notification");
    assert_eq!(firing.body["status"], "firing", "{}", firing.body);
    assert_eq!(alerts_of(&firing.body), vec![triple("FlagRaised", "a", "firing")]);
    assert_eq!(firing.body["alerts"][0]["annotations"]["summary"], "flag a is 1");

    // The condition clears: Sightline sends the alert with its end, Alertmanager resolves it, tells its
    // receiver and stops listing it (its API lists only alerts that have not ended).
    target.set("a", 0.0);
    let resolved = next(&am_deliveries, "Alertmanager's resolved notification");
    assert_eq!(alerts_of(&resolved.body), vec![triple("FlagRaised", "a", "resolved")], "{}", resolved.body);
    assert_ne!(resolved.body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let gone = eventually(WAIT, || {
        (!am_alerts().iter().any(|a| a["labels"]["alertname"] == "FlagRaised")).then_some(())
    });
    assert!(gone.is_some(), "Alertmanager still lists the resolved alert: {:?}", am_alerts());
    drop(server);
}

/// Rule file: `FlagRaised` fires for every `flag` that is 1.
const FLAG_RULE: &str = "groups:\n  - name: e2e\n    interval: 500ms\n    rules:\n      - alert: FlagRaised\n\
                         \x20       expr: flag == 1\n        labels: {severity: page}\n";

#[test]
fn an_unacknowledged_alert_escalates_level_by_level_and_an_acknowledged_one_stops() {
    let (hook, deliveries) = webhook();
    let dir = TempDir::new("alerting-escalation");
    let target = Target::start(&[("a", 1.0), ("b", 1.0)]);
    let (first, second) = (Duration::from_secs(1), Duration::from_secs(6));
    let alerting = format!(
        "  route: {{receiver: oncall, group_by: [alertname, id], group_wait: 500ms, group_interval: 1s, repeat_interval: 1h}}\n\
         \x20 receivers:\n\
         \x20   - {{name: oncall, webhook_configs: [{{url: 'http://{hook}/oncall'}}]}}\n\
         \x20   - {{name: lead, webhook_configs: [{{url: 'http://{hook}/lead'}}]}}\n\
         \x20   - {{name: manager, webhook_configs: [{{url: 'http://{hook}/manager'}}]}}\n\
         \x20 escalations:\n\
         \x20   - name: paging\n\
         \x20     matchers: ['severity=\"page\"']\n\
         \x20     levels:\n\
         \x20       - {{after: {}s, receivers: [lead]}}\n\
         \x20       - {{after: {}s, receivers: [manager]}}\n",
        first.as_secs(),
        second.as_secs()
    );
    let config = write_config(dir.path(), &target, FLAG_RULE, &alerting);
    let server = start(&dir.path().join("data"), &config);
    let addr = server.addr;

    // Both alerts go to the route's receiver and, unacknowledged after `first`, to level 1. Alert b is
    // acknowledged as soon as level 1 has told about it, well before level 2 is due.
    let mut seen: Vec<(String, String, SystemTime, SystemTime)> = Vec::new();
    let fp_b = fingerprint(addr, "FlagRaised", "b");
    let mut acked_b = false;
    while !(acked_b && seen.iter().any(|(r, id, ..)| r == "manager" && id == "a")) {
        let delivery = next(&deliveries, "the notifications and escalations of a and b");
        let receiver = delivery.body["receiver"].as_str().unwrap_or_default().to_owned();
        assert_eq!(delivery.path, format!("/{receiver}"), "{}", delivery.body);
        assert_eq!(delivery.body["status"], "firing", "{}", delivery.body);
        let alerts = delivery.body["alerts"].as_array().cloned().unwrap_or_default();
        assert_eq!(alerts.len(), 1, "one alert per group and per escalation: {}", delivery.body);
        let id = alerts[0]["labels"]["id"].as_str().unwrap_or_default().to_owned();
        seen.push((receiver.clone(), id.clone(), delivery.at, starts_at(&alerts[0])));
        if receiver == "lead" && id == "b" {
            let (status, body) =
                send(addr, "POST", &format!("/api/v1/alerts/{fp_b}/ack"), r#"{"by":"ann","comment":"mine"}"#);
            assert_eq!(status, 200, "{body}");
            acked_b = true;
        }
    }
    let order: Vec<(&str, &str)> = seen.iter().map(|(r, id, ..)| (r.as_str(), id.as_str())).collect();
    for (receiver, id) in [("oncall", "a"), ("oncall", "b"), ("lead", "a"), ("lead", "b"), ("manager", "a")] {
        assert_eq!(order.iter().filter(|x| **x == (receiver, id)).count(), 1, "{receiver} {id}: {order:?}");
    }
    // No level is sent before it is due: each arrives at least `after` past the alert's start.
    for (receiver, id, at, started) in &seen {
        let due = match receiver.as_str() {
            "lead" => first,
            "manager" => second,
            _ => continue,
        };
        let age = at.duration_since(*started).unwrap_or_default();
        assert!(
            age >= due,
            "{receiver} got {id} {age:?} after it started, before its level was due ({due:?})"
        );
    }
    assert!(!order.contains(&("manager", "b")), "the acknowledged alert b escalated further: {order:?}");
    let position = |x: (&str, &str)| order.iter().position(|y| *y == x);
    assert!(position(("lead", "a")) < position(("manager", "a")), "{order:?}");

    // Level 2 for b was due at the same moment as a's: a few group intervals later it has still not come.
    assert_quiet(&deliveries, Duration::from_secs(3), "the acknowledged alert b escalated further");
    let fp_a = fingerprint(addr, "FlagRaised", "a");
    let events_a = await_history(addr, &fp_a, "escalated", "level 2");
    assert!(
        events_a.iter().any(|(e, m)| e == "escalated" && m.contains("paging level 1 to lead")),
        "{events_a:?}"
    );
    let events_b = history(addr, &fp_b);
    assert!(events_b.iter().any(|(e, m)| e == "acked" && m.contains("mine")), "{events_b:?}");
    assert!(!events_b.iter().any(|(e, m)| e == "escalated" && m.contains("level 2")), "{events_b:?}");
    let b = pipeline_alert(addr, "FlagRaised", "b").expect("b is still firing");
    assert_eq!(b["ackedBy"], "ann", "{b}");
}

#[test]
fn a_critical_alert_inhibits_the_warning_with_equal_labels_until_it_clears() {
    let (hook, deliveries) = webhook();
    let dir = TempDir::new("alerting-inhibit");
    // a is critical and warning at once; b is only a warning, so no critical alert has its `id`.
    let target = Target::start(&[("a", 1.0), ("b", 0.5)]);
    let rules = "groups:\n  - name: e2e\n    interval: 500ms\n    rules:\n\
                 \x20     - alert: FlagCritical\n        expr: flag >= 1\n        labels: {severity: critical}\n\
                 \x20     - alert: FlagWarning\n        expr: flag > 0\n        labels: {severity: warning}\n";
    let alerting = format!(
        "  route: {{receiver: hook, group_by: [alertname, id], group_wait: 500ms, group_interval: 1s, repeat_interval: 1h}}\n\
         \x20 receivers:\n    - {{name: hook, webhook_configs: [{{url: 'http://{hook}/'}}]}}\n\
         \x20 inhibit_rules:\n\
         \x20   - source_matchers: ['severity=\"critical\"']\n\
         \x20     target_matchers: ['severity=\"warning\"']\n\
         \x20     equal: [id]\n"
    );
    let config = write_config(dir.path(), &target, rules, &alerting);
    let server = start(&dir.path().join("data"), &config);
    let addr = server.addr;

    let critical_a = fingerprint(addr, "FlagCritical", "a");
    let warning_a = fingerprint(addr, "FlagWarning", "a");
    let inhibited = eventually(WAIT, || {
        pipeline_alert(addr, "FlagWarning", "a")
            .filter(|a| a["inhibitedBy"].as_array().is_some_and(|v| !v.is_empty()))
    })
    .expect("the API shows the warning of a inhibited");
    assert_eq!(inhibited["inhibitedBy"], serde_json::json!([critical_a]), "{inhibited}");
    assert_eq!(inhibited["state"], "firing", "the rule still fires; only its notification is held back");
    let warning_b = pipeline_alert(addr, "FlagWarning", "b").expect("the warning of b");
    assert_eq!(warning_b["inhibitedBy"], serde_json::json!([]), "{warning_b}");

    // The critical alert of a and the warning of b are delivered; the warning of a is not.
    let mut got = Vec::new();
    while got.len() < 2 {
        let delivery = next(&deliveries, "the critical alert of a and the warning of b");
        got.extend(alerts_of(&delivery.body));
        assert!(
            !got.contains(&triple("FlagWarning", "a", "firing")),
            "the inhibited warning was sent: {got:?}"
        );
    }
    got.sort();
    assert_eq!(got, vec![triple("FlagCritical", "a", "firing"), triple("FlagWarning", "b", "firing")]);
    let events = await_history(addr, &warning_a, "inhibited", &critical_a);
    assert!(!events.iter().any(|(e, _)| e == "notified"), "{events:?}");
    assert_quiet(&deliveries, Duration::from_secs(3), "the inhibited warning was sent later");

    // The critical condition clears: its resolution is sent, and the warning of a, no longer inhibited, too.
    target.set("a", 0.5);
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(alerts_of(&next(&deliveries, "the critical's resolution and the released warning").body));
    }
    got.sort();
    assert_eq!(got, vec![triple("FlagCritical", "a", "resolved"), triple("FlagWarning", "a", "firing")]);
    let released = pipeline_alert(addr, "FlagWarning", "a").expect("the warning of a");
    assert_eq!(released["inhibitedBy"], serde_json::json!([]), "{released}");
    await_history(addr, &warning_a, "unsuppressed", "");
    assert_quiet(&deliveries, Duration::from_secs(2), "a notification was repeated");
}

#[test]
fn a_receiver_that_refuses_connections_then_comes_up_gets_every_notification_once_in_order() {
    // Nothing listens on the receiver's port yet: connections are refused. The group interval is longer
    // than a flip takes to reach the pipeline (a scrape and an evaluation), so each change lands in the
    // flush right after the notification before it: a resolution one notification carried must not ride
    // along in the next.
    let port = free_port();
    let dir = TempDir::new("alerting-down");
    let target = Target::start(&[("a", 1.0), ("b", 0.0)]);
    let alerting = format!(
        "  route: {{receiver: hook, group_by: [alertname], group_wait: 500ms, group_interval: 3s, repeat_interval: 1h}}\n\
         \x20 receivers:\n\
         \x20   - name: hook\n      retries: 1\n      retry_backoff: 100ms\n      timeout: 2s\n\
         \x20     webhook_configs: [{{url: 'http://127.0.0.1:{port}/hook'}}]\n"
    );
    let config = write_config(dir.path(), &target, FLAG_RULE, &alerting);
    let server = start(&dir.path().join("data"), &config);
    let addr = server.addr;

    // Delivery fails (both attempts), and again at the next group interval once b fires too.
    let fp_a = fingerprint(addr, "FlagRaised", "a");
    let failed = await_history(addr, &fp_a, "delivery_failed", "after 2 attempt(s)");
    let reason =
        failed.iter().find(|(e, _)| e == "delivery_failed").map(|(_, m)| m.clone()).unwrap_or_default();
    assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
    target.set("b", 1.0);
    let fp_b = fingerprint(addr, "FlagRaised", "b");
    await_history(addr, &fp_b, "delivery_failed", "failed after 2 attempt(s)");

    // The receiver comes up: the group's state at that time is delivered once, then each change once.
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver's port");
    let deliveries = serve_webhook(listener);
    let steps = [
        (None, "firing", vec![triple("FlagRaised", "a", "firing"), triple("FlagRaised", "b", "firing")]),
        (
            Some("a"),
            "firing",
            vec![triple("FlagRaised", "a", "resolved"), triple("FlagRaised", "b", "firing")],
        ),
        (Some("b"), "resolved", vec![triple("FlagRaised", "b", "resolved")]),
    ];
    for (clear, status, expected) in steps {
        if let Some(id) = clear {
            target.set(id, 0.0);
        }
        let delivery = next(&deliveries, &format!("{status}: {expected:?}"));
        assert_eq!(delivery.body["status"], status, "{}", delivery.body);
        assert_eq!(
            alerts_of(&delivery.body),
            expected,
            "a repeated, missing or out-of-order notification: {}",
            delivery.body
        );
    }
    assert_quiet(&deliveries, Duration::from_secs(4), "a notification was delivered twice");

    // The history agrees: failures while down, then one successful delivery per state.
    let notified_of = |events: &[(String, String)]| -> Vec<String> {
        events.iter().filter(|(e, _)| e == "notified").map(|(_, m)| m.clone()).collect()
    };
    let events = eventually(WAIT, || Some(history(addr, &fp_b)).filter(|e| notified_of(e).len() >= 3))
        .unwrap_or_else(|| panic!("three deliveries in the history: {:?}", history(addr, &fp_b)));
    let notified = notified_of(&events);
    assert_eq!(notified.len(), 3, "{events:?}");
    assert!(
        notified[0].starts_with("firing sent to hook") && notified[2].starts_with("resolved"),
        "{notified:?}"
    );
    let first_success = events.iter().position(|(e, _)| e == "notified");
    let last_failure = events.iter().rposition(|(e, _)| e == "delivery_failed");
    assert!(last_failure < first_success, "{events:?}");
}

/// A silence created while an alert's group waits for its first flush (`group_wait`), as
/// `silencing.send_resolved_while_silenced` says:
/// - a, silenced for a while: nothing during the silence, then its firing notification at the first flush
///   after the silence expired;
/// - b, silenced and resolved while silenced, then the silence expired: never anything, since no receiver
///   was told it was firing;
/// - c, delivered before it is silenced, then resolved while silenced: its resolution is sent when
///   `send_resolved_while_silenced` is on, and dropped (as Alertmanager does) when it is off, also after
///   the silence expired.
fn silence_during_group_wait(send_resolved_while_silenced: bool) {
    let (hook, deliveries) = webhook();
    let dir = TempDir::new("alerting-silence");
    let target = Target::start(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]);
    let group_wait = Duration::from_secs(3);
    let alerting = format!(
        "  route: {{receiver: hook, group_by: [alertname, id], group_wait: {}s, group_interval: 1s, repeat_interval: 1h}}\n\
         \x20 receivers:\n    - {{name: hook, webhook_configs: [{{url: 'http://{hook}/', send_resolved: true}}]}}\n\
         \x20 silencing: {{send_resolved_while_silenced: {send_resolved_while_silenced}}}\n",
        group_wait.as_secs()
    );
    let config = write_config(dir.path(), &target, FLAG_RULE, &alerting);
    let server = start(&dir.path().join("data"), &config);
    let addr = server.addr;
    let silence = |id: &str, duration: &str| -> String {
        let body = format!(
            r#"{{"matchers":["alertname=\"FlagRaised\"","id=\"{id}\""],"duration":"{duration}","createdBy":"ann","comment":"mid-group"}}"#
        );
        let (status, body) = send(addr, "POST", "/api/v1/silences", &body);
        assert_eq!(status, 200, "{body}");
        body["data"]["silenceID"].as_str().expect("a silence id").to_owned()
    };

    // As soon as the pipeline holds a and b, and long before their groups' first flush, silence them: a
    // for longer than `group_wait`, so the flush falls inside the silence, b for an hour.
    let fp_a = fingerprint(addr, "FlagRaised", "a");
    let fp_b = fingerprint(addr, "FlagRaised", "b");
    let fp_c = fingerprint(addr, "FlagRaised", "c");
    let silence_a = silence("a", &format!("{}s", group_wait.as_secs() + 2));
    let silence_b = silence("b", "1h");
    let silences = get(addr, "/api/v1/silences");
    let ends_a = silences["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["id"] == silence_a.as_str())
        .and_then(|s| s["endsAt"].as_str())
        .map(|t| humantime::parse_rfc3339(t).expect("an RFC 3339 endsAt"))
        .unwrap_or_else(|| panic!("silence {silence_a} listed with its end: {silences}"));

    // c is not silenced: it alone is delivered at the end of its group_wait.
    let delivery = next(&deliveries, "c firing");
    assert_eq!(alerts_of(&delivery.body), vec![triple("FlagRaised", "c", "firing")], "{}", delivery.body);
    // The flushes of a and b found them silenced.
    await_history(addr, &fp_a, "silenced", &silence_a);
    await_history(addr, &fp_b, "silenced", &silence_b);

    // b resolves while silenced; c is silenced and then resolves too.
    let silence_c = silence("c", "1h");
    target.set("b", 0.0);
    target.set("c", 0.0);

    // a's silence expires: a, still firing, is delivered at the next flush, and not before.
    let delivery = next(&deliveries, "a firing after its silence expired, or c resolved");
    let delivery = if alerts_of(&delivery.body) == vec![triple("FlagRaised", "c", "resolved")] {
        assert!(send_resolved_while_silenced, "c's resolution was sent while silenced: {}", delivery.body);
        next(&deliveries, "a firing after its silence expired")
    } else {
        delivery
    };
    assert_eq!(alerts_of(&delivery.body), vec![triple("FlagRaised", "a", "firing")], "{}", delivery.body);
    assert!(
        delivery.at >= ends_a,
        "a was delivered at {:?}, before its silence ended at {ends_a:?}",
        delivery.at
    );
    await_history(addr, &fp_a, "unsuppressed", "");
    // The pipeline's own "resolved" (the rule's transition reads "firing -> resolved").
    await_history(addr, &fp_b, "resolved", "resolved");
    let pipeline_resolved = |fp: &str| {
        eventually(WAIT, || {
            history(addr, fp).iter().any(|(e, m)| e == "resolved" && m == "resolved").then_some(())
        })
        .unwrap_or_else(|| panic!("the pipeline never saw {fp} resolve: {:?}", history(addr, fp)))
    };
    pipeline_resolved(&fp_b);
    pipeline_resolved(&fp_c);
    await_history(addr, &fp_c, "silenced", &silence_c);
    if send_resolved_while_silenced {
        // Unless it came before a's (handled above), c's resolution comes now, while c is still silenced.
        await_history(addr, &fp_c, "notified", "resolved sent to hook");
        while let Ok(delivery) = deliveries.recv_timeout(Duration::from_millis(500)) {
            assert_eq!(
                alerts_of(&delivery.body),
                vec![triple("FlagRaised", "c", "resolved")],
                "{}",
                delivery.body
            );
        }
    }
    // The flush that handles a resolution during the silence drops the alert from the pipeline, which then
    // answers an acknowledgement with 404 (no such alert) rather than 400 (not firing). Only after that
    // may the silences go; before it, b and c would simply resolve unsilenced.
    for fp in [&fp_b, &fp_c] {
        let forgotten = eventually(WAIT, || {
            let (status, _) = send(addr, "POST", &format!("/api/v1/alerts/{fp}/ack"), r#"{"by":"probe"}"#);
            (status == 404).then_some(())
        });
        assert!(forgotten.is_some(), "the pipeline still holds the resolved alert {fp}");
    }

    // The silences of b and c expire: neither b (never told as firing) nor c (resolution already sent,
    // or dropped) is sent anything.
    for id in [&silence_b, &silence_c] {
        let (status, body) = send(addr, "DELETE", &format!("/api/v1/silences/{id}"), "");
        assert_eq!(status, 200, "{body}");
    }
    assert_quiet(&deliveries, Duration::from_secs(3), "a notification after the silences expired");
    let events_b = history(addr, &fp_b);
    assert!(!events_b.iter().any(|(e, _)| e == "notified"), "{events_b:?}");
    let sent_c: Vec<String> =
        history(addr, &fp_c).into_iter().filter(|(e, _)| e == "notified").map(|(_, m)| m).collect();
    assert_eq!(sent_c.len(), if send_resolved_while_silenced { 2 } else { 1 }, "{sent_c:?}");
}

#[test]
fn a_silence_created_during_group_wait_holds_the_notification_and_sends_resolved_when_configured() {
    silence_during_group_wait(true);
}

#[test]
fn a_silence_created_during_group_wait_drops_resolutions_by_default_as_alertmanager_does() {
    silence_during_group_wait(false);
}
