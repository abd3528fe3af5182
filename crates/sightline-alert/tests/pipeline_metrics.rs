//! The pipeline's metrics: `sightline_notifications_total{receiver,outcome}`,
//! `sightline_notification_latency_seconds{receiver}` and `sightline_silences{state}`.

use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use sightline_alert::model::BoxFuture;
use sightline_alert::pipeline::config::{GlobalConfig, IntegrationConfig, Receiver};
use sightline_alert::pipeline::{
    Config, Dispatcher, DispatcherOptions, Matcher, MemoryStore, NotifierFactory, Silence,
};
use sightline_alert::{Alert, AlertSink, LabelSet, Notification, Notifier, NotifyError};

#[derive(Debug)]
struct Fake {
    fail: bool,
}

impl Notifier for Fake {
    fn kind(&self) -> &'static str {
        "webhook"
    }
    fn notify<'a>(&'a self, _: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        let fail = self.fail;
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if fail { Err(NotifyError::permanent("400 from fake")) } else { Ok(()) }
        })
    }
}

struct Factory;

impl NotifierFactory for Factory {
    fn build(
        &self,
        r: &Receiver,
        _: &IntegrationConfig,
        _: &GlobalConfig,
    ) -> Result<Arc<dyn Notifier>, String> {
        Ok(Arc::new(Fake { fail: r.name == "broken" }))
    }
}

const CONFIG: &str = r#"
route:
  receiver: good
  group_wait: 1s
  routes:
  - matchers: [x="1"]
    receiver: broken
    continue: true
  - matchers: [x="1"]
    receiver: good
receivers:
- name: good
  webhook_configs:
  - url: http://127.0.0.1:9/good
- name: broken
  webhook_configs:
  - url: http://127.0.0.1:9/broken
"#;

#[test]
fn notification_and_silence_metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let d = Dispatcher::new(
                Config::parse(CONFIG).expect("config"),
                Arc::new(Factory),
                DispatcherOptions {
                    store: Arc::new(MemoryStore::new()),
                    external_url: String::new(),
                    events: None,
                    wall_clock_start: None,
                },
            )
            .expect("dispatcher");
            let now = d.now();
            let labels: LabelSet =
                [("alertname".to_owned(), "A".to_owned()), ("x".to_owned(), "1".to_owned())].into();
            d.send(vec![Alert {
                labels,
                annotations: LabelSet::new(),
                starts_at: now,
                ends_at: Some(now + Duration::from_secs(3600)),
                generator_url: String::new(),
            }]);
            for (minutes, comment) in [(60, "active"), (120, "pending")] {
                let start = if comment == "pending" { now + Duration::from_secs(600) } else { now };
                d.add_silence(Silence {
                    id: String::new(),
                    matchers: vec![Matcher::parse(r#"alertname="Other""#).expect("matcher")],
                    starts_at: start,
                    ends_at: now + Duration::from_secs(minutes * 60),
                    created_by: "test".into(),
                    comment: comment.into(),
                    updated_at: now,
                })
                .expect("silence");
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
    });
    let mut found = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        labels.sort();
        let value = match value {
            DebugValue::Counter(c) => c as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(h) => h.iter().map(|v| v.into_inner()).sum(),
        };
        found.push((key.name().to_owned(), labels.join(","), value));
    }
    let get = |name: &str, labels: &str| {
        found.iter().find(|(n, l, _)| n == name && l == labels).map(|(_, _, v)| *v)
    };
    assert_eq!(get("sightline_notifications_total", "outcome=success,receiver=good"), Some(1.0), "{found:?}");
    assert_eq!(
        get("sightline_notifications_total", "outcome=failure,receiver=broken"),
        Some(1.0),
        "{found:?}"
    );
    let latency = get("sightline_notification_latency_seconds", "receiver=good").expect("latency");
    assert!((0.25..0.3).contains(&latency), "{latency}");
    assert_eq!(get("sightline_silences", "state=active"), Some(1.0), "{found:?}");
    assert_eq!(get("sightline_silences", "state=pending"), Some(1.0), "{found:?}");
    assert_eq!(get("sightline_silences", "state=expired"), Some(0.0), "{found:?}");
}
