//! The HTTP receivers (webhook, Slack, PagerDuty) against a real local HTTP server that records what it
//! is sent: exact payloads, authentication, and the retry wrapper's handling of 5xx, 4xx and hangs.

mod notify_support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use notify_support::{HttpServer, Reply};
use serde_json::json;
use sightline_alert::model::{Alert, AlertStatus, LabelSet, Notification, Notifier};
use sightline_alert::notify::pagerduty::dedup_key;
use sightline_alert::notify::{
    Authorization, BasicAuth, HttpConfig, PagerDutyNotifier, PagerDutySettings, RetrySettings, Retrying,
    SlackNotifier, SlackSettings, TlsConfig, WebhookNotifier, WebhookSettings,
};

const WAIT: Duration = Duration::from_secs(10);

fn set(pairs: &[(&str, &str)]) -> LabelSet {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A group of two alerts: one firing critical, one resolved.
fn notification() -> Notification {
    let firing = Alert {
        labels: set(&[("alertname", "HighLatency"), ("instance", "a:9090"), ("severity", "critical")]),
        annotations: set(&[("summary", "p99 above 1s on a:9090")]),
        starts_at: at(1_700_000_000),
        ends_at: Some(at(1_700_000_600)),
        generator_url: "http://sightline:9090/graph?g0.expr=latency".into(),
    };
    let resolved = Alert {
        labels: set(&[("alertname", "HighLatency"), ("instance", "b:9090"), ("severity", "critical")]),
        annotations: set(&[("summary", "p99 above 1s on b:9090")]),
        starts_at: at(1_699_999_000),
        ends_at: Some(UNIX_EPOCH + Duration::new(1_700_000_100, 500_000_000)),
        generator_url: "http://sightline:9090/graph?g0.expr=latency".into(),
    };
    Notification {
        receiver: "team-api".into(),
        group_key: "{}/{severity=\"critical\"}:{alertname=\"HighLatency\"}".into(),
        group_labels: set(&[("alertname", "HighLatency")]),
        common_labels: set(&[("alertname", "HighLatency"), ("severity", "critical")]),
        common_annotations: LabelSet::new(),
        status: AlertStatus::Firing,
        alerts: vec![(AlertStatus::Firing, firing), (AlertStatus::Resolved, resolved)],
        truncated_alerts: 0,
        external_url: "http://sightline:9090".into(),
    }
}

fn fast_retries(retries: u32, timeout: Duration) -> RetrySettings {
    RetrySettings {
        timeout,
        retries,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_posts_alertmanagers_v4_payload() {
    let server = HttpServer::start(vec![]).await;
    let notifier = WebhookNotifier::new(WebhookSettings {
        url: server.url("/hook"),
        http_config: HttpConfig {
            basic_auth: Some(BasicAuth { username: "am".into(), password: Some("secret".into()) }),
            ..HttpConfig::default()
        },
        ..WebhookSettings::default()
    })
    .expect("valid settings");
    notifier.notify(&notification()).await.expect("delivered");

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/hook"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    // "am:secret" in base64.
    assert_eq!(request.header("authorization"), Some("Basic YW06c2VjcmV0"));
    let expected = json!({
        "receiver": "team-api",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighLatency", "instance": "a:9090", "severity": "critical"},
                "annotations": {"summary": "p99 above 1s on a:9090"},
                "startsAt": "2023-11-14T22:13:20Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://sightline:9090/graph?g0.expr=latency",
                "fingerprint": sightline_alert::Fingerprint::of(&set(&[("alertname", "HighLatency"), ("instance", "a:9090"), ("severity", "critical")])).to_string(),
            },
            {
                "status": "resolved",
                "labels": {"alertname": "HighLatency", "instance": "b:9090", "severity": "critical"},
                "annotations": {"summary": "p99 above 1s on b:9090"},
                "startsAt": "2023-11-14T21:56:40Z",
                "endsAt": "2023-11-14T22:15:00.5Z",
                "generatorURL": "http://sightline:9090/graph?g0.expr=latency",
                "fingerprint": sightline_alert::Fingerprint::of(&set(&[("alertname", "HighLatency"), ("instance", "b:9090"), ("severity", "critical")])).to_string(),
            }
        ],
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://sightline:9090",
        "version": "4",
        "groupKey": "{}/{severity=\"critical\"}:{alertname=\"HighLatency\"}",
        "truncatedAlerts": 0
    });
    assert_eq!(request.json(), expected);
    // Field order follows Alertmanager's message, for receivers that compare raw bytes.
    let raw = String::from_utf8(request.body.clone()).expect("utf-8");
    assert!(
        raw.starts_with(r#"{"receiver":"team-api","status":"firing","alerts":[{"status":"firing","labels""#),
        "{raw}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_truncates_and_honours_send_resolved() {
    let server = HttpServer::start(vec![]).await;
    let notifier = WebhookNotifier::new(WebhookSettings {
        url: server.url("/hook"),
        max_alerts: 1,
        http_config: HttpConfig {
            authorization: Some(Authorization { kind: "Bearer".into(), credentials: "tok".into() }),
            ..HttpConfig::default()
        },
        ..WebhookSettings::default()
    })
    .expect("valid settings");
    notifier.notify(&notification()).await.expect("delivered");
    let body = server.requests()[0].json();
    assert_eq!(body["alerts"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["truncatedAlerts"], 1);
    assert_eq!(server.requests()[0].header("authorization"), Some("Bearer tok"));

    // Without send_resolved, a group that has only resolved alerts sends nothing.
    let quiet = WebhookNotifier::new(WebhookSettings {
        url: server.url("/quiet"),
        send_resolved: false,
        ..WebhookSettings::default()
    })
    .expect("valid settings");
    let mut resolved = notification();
    resolved.alerts.retain(|(s, _)| *s == AlertStatus::Resolved);
    resolved.status = AlertStatus::Resolved;
    quiet.notify(&resolved).await.expect("nothing to send is success");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_server_errors_then_succeeds() {
    let server = HttpServer::start(vec![Reply::Status(500), Reply::Status(429), Reply::Status(200)]).await;
    let webhook =
        WebhookNotifier::new(WebhookSettings { url: server.url("/hook"), ..WebhookSettings::default() })
            .expect("valid settings");
    let notifier = Retrying::new(Arc::new(webhook), fast_retries(3, WAIT));
    notifier.notify(&notification()).await.expect("the third attempt succeeds");
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.body == requests[0].body), "each retry sends the same payload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_the_configured_retries() {
    let server = HttpServer::start(vec![Reply::Status(503); 5]).await;
    let webhook =
        WebhookNotifier::new(WebhookSettings { url: server.url("/hook"), ..WebhookSettings::default() })
            .expect("valid settings");
    let notifier = Retrying::new(Arc::new(webhook), fast_retries(2, WAIT));
    let err = notifier.notify(&notification()).await.expect_err("always 503");
    assert!(err.retryable);
    assert!(err.message.contains("503"), "{}", err.message);
    assert!(err.message.contains("gave up after 3 attempts"), "{}", err.message);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_is_permanent() {
    let server = HttpServer::start(vec![Reply::Status(400)]).await;
    let webhook =
        WebhookNotifier::new(WebhookSettings { url: server.url("/hook"), ..WebhookSettings::default() })
            .expect("valid settings");
    let notifier = Retrying::new(Arc::new(webhook), fast_retries(3, WAIT));
    let err = notifier.notify(&notification()).await.expect_err("400");
    assert!(!err.retryable);
    assert!(err.message.contains("400") && err.message.contains("scripted failure"), "{}", err.message);
    assert_eq!(server.requests().len(), 1, "a 4xx is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_server_times_out() {
    let server = HttpServer::start(vec![Reply::Hang, Reply::Hang]).await;
    let webhook =
        WebhookNotifier::new(WebhookSettings { url: server.url("/hook"), ..WebhookSettings::default() })
            .expect("valid settings");
    let notifier = Retrying::new(Arc::new(webhook), fast_retries(1, Duration::from_millis(300)));
    let started = Instant::now();
    let err = notifier.notify(&notification()).await.expect_err("never answers");
    assert!(err.retryable);
    assert!(err.message.contains("did not answer within"), "{}", err.message);
    assert!(started.elapsed() < WAIT, "the timeout bounds each attempt");
    assert_eq!(server.wait_for(2, WAIT).await.len(), 2, "the timed-out attempt is retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_retryable() {
    // Bind and release a port so that nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port");
    let webhook = WebhookNotifier::new(WebhookSettings {
        url: format!("http://{addr}/hook"),
        ..WebhookSettings::default()
    })
    .expect("valid settings");
    let err = webhook.notify(&notification()).await.expect_err("connection refused");
    assert!(err.retryable, "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_receivers_verify_certificates() {
    let server = HttpServer::start_tls(vec![]).await;
    // The server's certificate is self-signed: refused, and retrying cannot help.
    let strict = WebhookNotifier::new(WebhookSettings {
        url: server.https_url("/hook"),
        ..WebhookSettings::default()
    })
    .expect("valid settings");
    let err = strict.notify(&notification()).await.expect_err("untrusted certificate");
    assert!(!err.retryable, "{}", err.message);
    assert!(err.message.contains("insecure_skip_verify"), "{}", err.message);
    assert!(server.requests().is_empty());
    // With verification off, the POST goes through over TLS.
    let lax = WebhookNotifier::new(WebhookSettings {
        url: server.https_url("/hook"),
        http_config: HttpConfig {
            tls_config: TlsConfig { insecure_skip_verify: true },
            ..HttpConfig::default()
        },
        ..WebhookSettings::default()
    })
    .expect("valid settings");
    lax.notify(&notification()).await.expect("delivered over https");
    assert_eq!(server.requests()[0].json()["version"], "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_alertmanagers_attachment() {
    let server = HttpServer::start(vec![]).await;
    let notifier = SlackNotifier::new(SlackSettings {
        api_url: server.url("/services/T0/B0/XX"),
        channel: Some("#alerts".into()),
        username: Some("sightline".into()),
        send_resolved: true,
        ..SlackSettings::default()
    })
    .expect("valid settings");
    notifier.notify(&notification()).await.expect("delivered");
    let expected = json!({
        "channel": "#alerts",
        "username": "sightline",
        "attachments": [{
            "title": "[FIRING:1] HighLatency (critical)",
            "title_link": "http://sightline:9090",
            "text": "*[FIRING]* HighLatency - `critical`\n  • *summary:* p99 above 1s on a:9090\n*[RESOLVED]* HighLatency - `critical`\n  • *summary:* p99 above 1s on b:9090",
            "fallback": "[FIRING:1] HighLatency (critical) | http://sightline:9090",
            "color": "danger",
            "mrkdwn_in": ["fallback", "pretext", "text"]
        }]
    });
    assert_eq!(server.requests()[0].json(), expected);

    // Colors: warning for firing warnings, good once resolved.
    let mut warning = notification();
    for (_, alert) in &mut warning.alerts {
        alert.labels.insert("severity".into(), "warning".into());
    }
    notifier.notify(&warning).await.expect("delivered");
    let mut resolved = notification();
    resolved.status = AlertStatus::Resolved;
    resolved.alerts.retain(|(s, _)| *s == AlertStatus::Resolved);
    notifier.notify(&resolved).await.expect("delivered");
    let requests = server.requests();
    assert_eq!(requests[1].json()["attachments"][0]["color"], "warning");
    assert_eq!(requests[2].json()["attachments"][0]["color"], "good");
    assert_eq!(requests[2].json()["attachments"][0]["title"], "[RESOLVED] HighLatency (critical)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_triggers_and_resolves_one_incident() {
    let server = HttpServer::start(vec![]).await;
    let notifier = PagerDutyNotifier::new(PagerDutySettings {
        routing_key: "R0UT1NGKEY".into(),
        url: server.url("/v2/enqueue"),
        ..PagerDutySettings::default()
    })
    .expect("valid settings");
    let firing = notification();
    notifier.notify(&firing).await.expect("delivered");
    let key = dedup_key(&firing.group_key);
    let expected = json!({
        "routing_key": "R0UT1NGKEY",
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": "[FIRING:1] HighLatency (critical)",
            "source": "Sightline",
            "severity": "critical",
            "custom_details": {
                "firing": "Labels:\n - alertname = HighLatency\n - instance = a:9090\n - severity = critical\nAnnotations:\n - summary = p99 above 1s on a:9090\nSource: http://sightline:9090/graph?g0.expr=latency\n",
                "resolved": "Labels:\n - alertname = HighLatency\n - instance = b:9090\n - severity = critical\nAnnotations:\n - summary = p99 above 1s on b:9090\nSource: http://sightline:9090/graph?g0.expr=latency\n",
                "num_firing": "1",
                "num_resolved": "1"
            }
        },
        "client": "Sightline",
        "client_url": "http://sightline:9090"
    });
    let requests = server.requests();
    assert_eq!(requests[0].path, "/v2/enqueue");
    assert_eq!(requests[0].json(), expected);

    let mut resolved = firing.clone();
    resolved.status = AlertStatus::Resolved;
    for (status, alert) in &mut resolved.alerts {
        *status = AlertStatus::Resolved;
        alert.ends_at = Some(at(1_700_001_000));
    }
    notifier.notify(&resolved).await.expect("delivered");
    let expected = json!({
        "routing_key": "R0UT1NGKEY",
        "event_action": "resolve",
        "dedup_key": key,
        "client": "Sightline",
        "client_url": "http://sightline:9090"
    });
    assert_eq!(server.requests()[1].json(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_notification_reaches_a_webhook() {
    let server = HttpServer::start(vec![]).await;
    let notifier = sightline_alert::notify::build(
        &sightline_alert::notify::ReceiverSettings::Webhook(WebhookSettings {
            url: server.url("/hook"),
            ..WebhookSettings::default()
        }),
        &RetrySettings::default(),
    )
    .expect("valid settings");
    notifier.notify(&sightline_alert::notify::test_notification("ops")).await.expect("delivered");
    let body = server.requests()[0].json();
    assert_eq!(body["receiver"], "ops");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "SightlineTestAlert");
    assert_eq!(body["alerts"][0]["status"], "firing");
}

#[test]
fn retries_are_counted_and_timed_per_receiver() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    // The recorder is thread-local, and a current-thread runtime runs everything on this thread.
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let server =
                HttpServer::start(vec![Reply::Status(502), Reply::Status(200), Reply::Status(404)]).await;
            let webhook = WebhookNotifier::new(WebhookSettings {
                url: server.url("/hook"),
                ..WebhookSettings::default()
            })
            .expect("valid settings");
            let notifier = Retrying::new(Arc::new(webhook), fast_retries(3, WAIT));
            notifier.notify(&notification()).await.expect("the retry succeeds");
            notifier.notify(&notification()).await.expect_err("404 is permanent");
        });
    });
    let mut counts = std::collections::BTreeMap::new();
    let mut latencies = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let label = |name: &str| key.labels().find(|l| l.key() == name).map(|l| l.value().to_owned());
        assert_eq!(label("receiver").as_deref(), Some("team-api"), "{key:?}");
        match (key.name(), value) {
            ("sightline_notifications_total", DebugValue::Counter(n)) => {
                counts.insert(label("outcome").expect("an outcome label"), n);
            }
            ("sightline_notification_latency_seconds", DebugValue::Histogram(samples)) => {
                latencies += samples.len()
            }
            (other, value) => panic!("unexpected metric {other}: {value:?}"),
        }
    }
    let expected: std::collections::BTreeMap<String, u64> =
        [("retry".to_owned(), 1), ("success".to_owned(), 1), ("failure".to_owned(), 1)].into();
    assert_eq!(counts, expected);
    assert_eq!(latencies, 3, "every attempt is timed");
}
