//! Forwarding alerts to Alertmanager: the client's payload, retries and queue against a local HTTP
//! server, and end to end against Debian's real `prometheus-alertmanager`, whose webhook receiver points
//! back at a local server: a forwarded alert arrives with its labels and annotations, and resolves.

mod notify_support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify_support::{HttpServer, Reply};
use serde_json::json;
use sightline_alert::model::{Alert, AlertSink, LabelSet};
use sightline_alert::notify::{AlertmanagerClient, AlertmanagerSettings};
use sightline_testkit::{Alertmanager, TempDir, require_peer};

const WAIT: Duration = Duration::from_secs(30);

fn set(pairs: &[(&str, &str)]) -> LabelSet {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn settings(urls: Vec<String>) -> AlertmanagerSettings {
    AlertmanagerSettings {
        urls,
        timeout: Duration::from_secs(5),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..AlertmanagerSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_api_v2_alerts_to_every_alertmanager_with_retries() {
    let first = HttpServer::start(vec![Reply::Status(500)]).await;
    let second = HttpServer::start(vec![]).await;
    let client =
        AlertmanagerClient::new(settings(vec![first.url("/am/"), second.url("")])).expect("valid settings");
    let alert = Alert {
        labels: set(&[("alertname", "Up"), ("job", "api")]),
        annotations: set(&[("summary", "api is down")]),
        starts_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ends_at: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_240)),
        generator_url: "http://sightline:9090/graph".into(),
    };
    let open_ended = Alert { ends_at: None, generator_url: String::new(), ..alert.clone() };
    client.send(vec![alert, open_ended]);

    let to_first = first.wait_for(2, WAIT).await;
    let to_second = second.wait_for(1, WAIT).await;
    assert_eq!(to_first.len(), 2, "the 500 is retried");
    assert_eq!(to_first[0].path, "/am/api/v2/alerts");
    assert_eq!(to_second[0].path, "/api/v2/alerts");
    let expected = json!([
        {
            "labels": {"alertname": "Up", "job": "api"},
            "annotations": {"summary": "api is down"},
            "startsAt": "2023-11-14T22:13:20Z",
            "endsAt": "2023-11-14T22:17:20Z",
            "generatorURL": "http://sightline:9090/graph"
        },
        {
            "labels": {"alertname": "Up", "job": "api"},
            "annotations": {"summary": "api is down"},
            "startsAt": "2023-11-14T22:13:20Z"
        }
    ]);
    assert_eq!(to_second[0].json(), expected);
    assert_eq!(to_first[1].json(), expected);
    client.shutdown(WAIT).await;
    assert_eq!((client.sent(), client.dropped()), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_the_oldest_and_counts_them() {
    // The server never answers, so nothing leaves the queue but the first batch in flight.
    let server = HttpServer::start(vec![Reply::Hang; 10]).await;
    let client = AlertmanagerClient::new(AlertmanagerSettings {
        queue_capacity: 2,
        max_batch_size: 2,
        timeout: Duration::from_secs(60),
        ..settings(vec![server.url("")])
    })
    .expect("valid settings");
    let alerts: Vec<Alert> = (0..5)
        .map(|i| Alert {
            labels: set(&[("alertname", "A"), ("i", &i.to_string())]),
            annotations: LabelSet::new(),
            starts_at: SystemTime::now(),
            ends_at: None,
            generator_url: String::new(),
        })
        .collect();
    client.send(alerts);
    assert_eq!(client.dropped(), 3, "five alerts into a queue of two");
    // The two newest were kept: the batch the server receives has i=3 and i=4.
    let received = server.wait_for(1, WAIT).await;
    let body = received[0].json();
    assert_eq!(body[0]["labels"]["i"], "3");
    assert_eq!(body[1]["labels"]["i"], "4");
}

#[test]
fn bad_settings_are_refused() {
    let err = AlertmanagerClient::new(AlertmanagerSettings::default()).expect_err("no URL");
    assert!(err.message.contains("no Alertmanager URL"), "{}", err.message);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let _guard = runtime.enter();
    let err = AlertmanagerClient::new(settings(vec!["alertmanager:9093".into()])).expect_err("no scheme");
    assert!(err.message.contains("http://"), "{}", err.message);
}

/// Alertmanager's `GET /api/v2/alerts`, parsed.
async fn am_alerts(addr: SocketAddr) -> serde_json::Value {
    let response =
        tokio::task::spawn_blocking(move || sightline_testkit::http_get(addr, "/api/v2/alerts", &[]))
            .await
            .expect("join")
            .expect("GET /api/v2/alerts");
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).expect("JSON")
}

/// Waits until a webhook message from Alertmanager with `status` has arrived and returns it.
async fn webhook_message(server: &HttpServer, status: &str) -> Option<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = server.requests().iter().map(|r| r.json()).find(|m| m["status"] == status);
        if found.is_some() || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_alerts_reach_a_real_alertmanager_and_resolve() {
    let Some(alertmanager) = require_peer("prometheus-alertmanager", "prometheus-alertmanager") else {
        return;
    };
    let webhook = HttpServer::start(vec![]).await;
    let dir = TempDir::new("notify-am");
    let (binary, dir_path, hook) = (alertmanager.clone(), dir.path().to_owned(), webhook.url("/hook"));
    let am = tokio::task::spawn_blocking(move || Alertmanager::start(&binary, &dir_path, &hook))
        .await
        .expect("join")
        .expect("start prometheus-alertmanager");
    let addr = am.addr;

    let client = AlertmanagerClient::new(settings(vec![format!("http://{addr}")])).expect("valid settings");
    let started = SystemTime::now();
    let firing = Alert {
        labels: set(&[("alertname", "SightlineE2E"), ("severity", "warning"), ("job", "api")]),
        annotations: set(&[("summary", "forwarded by sightline")]),
        starts_at: started,
        ends_at: Some(started + Duration::from_secs(300)),
        generator_url: "http://sightline.test:9090/graph?g0.expr=up".into(),
    };
    client.send(vec![firing.clone()]);

    // Alertmanager holds it, labels and annotations intact (`unprocessed` until its dispatcher has seen
    // it, then `active`).
    let deadline = tokio::time::Instant::now() + WAIT;
    let held = loop {
        let alerts = am_alerts(addr).await;
        if let Some(found) = alerts.as_array().and_then(|a| {
            a.iter()
                .find(|x| x["labels"]["alertname"] == "SightlineE2E" && x["status"]["state"] == "active")
                .cloned()
        }) {
            break found;
        }
        assert!(tokio::time::Instant::now() < deadline, "Alertmanager never showed the alert: {alerts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(held["labels"], json!({"alertname": "SightlineE2E", "severity": "warning", "job": "api"}));
    assert_eq!(held["annotations"], json!({"summary": "forwarded by sightline"}));
    assert_eq!(held["generatorURL"], "http://sightline.test:9090/graph?g0.expr=up");

    // Alertmanager's webhook delivers it firing.
    let message = webhook_message(&webhook, "firing").await.expect("a firing webhook from Alertmanager");
    assert_eq!(message["version"], "4");
    assert_eq!(message["alerts"][0]["labels"]["job"], "api");
    assert_eq!(message["alerts"][0]["annotations"]["summary"], "forwarded by sightline");

    // The condition clears: the rule manager sends the alert with its end time.
    client.send(vec![Alert { ends_at: Some(SystemTime::now()), ..firing }]);
    let message = webhook_message(&webhook, "resolved").await.expect("a resolved webhook from Alertmanager");
    assert_eq!(message["alerts"][0]["status"], "resolved");
    assert_eq!(message["alerts"][0]["labels"]["alertname"], "SightlineE2E");
    assert_ne!(message["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    // Alertmanager's API no longer lists it: it lists only alerts that have not ended.
    let alerts = am_alerts(addr).await;
    let listed =
        alerts.as_array().is_some_and(|a| a.iter().any(|x| x["labels"]["alertname"] == "SightlineE2E"));
    assert!(!listed, "the resolved alert is still listed: {alerts}");
    client.shutdown(WAIT).await;
    assert_eq!(client.dropped(), 0);
}
