//! The rule manager on a real tokio runtime: groups run on their interval, alerts reach the sink,
//! events reach the callback, the API views have Prometheus's shape, and reloads keep state.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sightline_alert::rules::{AlertState, ManagerOptions, ReloadError, RuleEvent, RuleManager};
use sightline_alert::{Alert, AlertSink};
use sightline_testkit::TempDir;
use sightline_tsdb::mem::MemStorage;
use sightline_tsdb::promql::Engine;
use sightline_tsdb::{Labels, Sample};

#[derive(Default)]
struct Collect(Mutex<Vec<Alert>>);

impl AlertSink for Collect {
    fn send(&self, alerts: Vec<Alert>) {
        self.0.lock().expect("lock").extend(alerts);
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

const RULES: &str = "groups:\n  - name: fast\n    interval: 100ms\n    rules:\n      - alert: Down\n        expr: up == 0\n        labels: {severity: page}\n        annotations: {summary: '{{ $labels.instance }} down'}\n";

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_run_send_alerts_and_report_state() {
    let dir = TempDir::new("rules-manager");
    let file = dir.path().join("r.yml");
    std::fs::write(&file, RULES).expect("write rules");
    let store = Arc::new(MemStorage::new());
    // Samples across the next minute, so the alert stays active while the test runs.
    let now = now_ms();
    store.add(
        Labels::from_pairs(&[("__name__", "up"), ("instance", "a")]),
        (0..60).map(|i| Sample::new(now - 1000 + i * 1000, 0.0)),
    );
    let sink = Arc::new(Collect::default());
    let options = ManagerOptions { external_url: "http://prom".into(), ..ManagerOptions::default() };
    let manager = RuleManager::new(store.clone(), Arc::new(Engine::default()), sink.clone(), options);
    let events: Arc<Mutex<Vec<RuleEvent>>> = Arc::default();
    let seen = Arc::clone(&events);
    manager.on_event(Arc::new(move |e: &RuleEvent| seen.lock().expect("lock").push(e.clone())));
    manager.reload(std::slice::from_ref(&file)).expect("rules load");

    wait_for("an alert at the sink", || !sink.0.lock().expect("lock").is_empty()).await;
    let alert = sink.0.lock().expect("lock")[0].clone();
    assert_eq!(alert.name(), "Down");
    assert_eq!(alert.annotations.get("summary").map(String::as_str), Some("a down"));
    assert_eq!(alert.generator_url, "http://prom/graph?g0.expr=up+%3D%3D+0&g0.tab=1");
    let transitions: Vec<(AlertState, AlertState)> =
        events.lock().expect("lock").iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(
        &transitions[..2],
        [(AlertState::Inactive, AlertState::Pending), (AlertState::Pending, AlertState::Firing)]
    );

    let rules = serde_json::to_value(manager.rules_api()).expect("json");
    let group = &rules["groups"][0];
    assert_eq!(group["name"], "fast");
    assert_eq!(group["interval"], 0.1);
    let rule = &group["rules"][0];
    assert_eq!(rule["type"], "alerting");
    assert_eq!(rule["state"], "firing");
    assert_eq!(rule["health"], "ok");
    assert_eq!(rule["query"], "up == 0");
    assert_eq!(rule["duration"], 0.0);
    assert_eq!(rule["keepFiringFor"], 0.0);
    assert_eq!(rule["lastError"], "");
    assert_eq!(rule["alerts"][0]["value"], "0e+00");
    assert_eq!(rule["alerts"][0]["state"], "firing");
    assert!(
        rule["lastEvaluation"].as_str().is_some_and(|t| t.ends_with('Z') && !t.starts_with("0001")),
        "{rule}"
    );
    let alerts = serde_json::to_value(manager.alerts_api()).expect("json");
    assert_eq!(alerts["alerts"].as_array().map(Vec::len), Some(1));
    let active_at = alerts["alerts"][0]["activeAt"].clone();

    // A reload that adds a rule keeps the alert of the unchanged one.
    std::fs::write(&file, format!("{RULES}      - record: up:copy\n        expr: up\n"))
        .expect("write rules");
    manager.reload(std::slice::from_ref(&file)).expect("reload");
    let alerts = serde_json::to_value(manager.alerts_api()).expect("json");
    assert_eq!(alerts["alerts"][0]["activeAt"], active_at);
    assert_eq!(manager.rules_api().groups[0].rules.len(), 2);

    // A broken file is refused with file:line, and the running rules stay.
    std::fs::write(&file, "groups:\n  - name: fast\n    rules:\n      - alert: X\n        expr: up ==\n")
        .expect("write");
    match manager.reload(std::slice::from_ref(&file)) {
        Err(ReloadError::Invalid(d)) => assert_eq!(d[0].line, 5),
        other => panic!("expected an invalid-rules error, got {other:?}"),
    }
    assert_eq!(manager.rules_api().groups[0].rules.len(), 2);
    manager.stop();
    assert!(manager.rules_api().groups.is_empty());
}

#[test]
fn loading_outside_a_runtime_is_an_error() {
    let manager = RuleManager::new(
        Arc::new(MemStorage::new()),
        Arc::new(Engine::default()),
        Arc::new(Collect::default()),
        ManagerOptions::default(),
    );
    assert!(matches!(manager.reload(&[]), Err(ReloadError::NoRuntime)));
}

#[test]
fn evaluations_report_metrics() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let dir = TempDir::new("rules-metrics");
    let file = dir.path().join("r.yml");
    std::fs::write(
        &file,
        "groups:\n  - name: m\n    rules:\n      - alert: Down\n        expr: up == 0\n      - record: clash\n        expr: up\n        labels: {instance: same}\n",
    )
    .expect("write rules");
    let store = Arc::new(MemStorage::new());
    let now = now_ms();
    for instance in ["a", "b"] {
        store.add(
            Labels::from_pairs(&[("__name__", "up"), ("instance", instance)]),
            [Sample::new(now - 1000, 0.0)],
        );
    }
    let sink = Arc::new(Collect::default());
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let manager =
            RuleManager::new(store, Arc::new(Engine::default()), sink.clone(), ManagerOptions::default());
        // A runtime that is entered but never driven: the group tasks do not run, the evaluation below
        // is the only one.
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        let _guard = rt.enter();
        manager.reload(std::slice::from_ref(&file)).expect("rules load");
        manager.eval_all_at(SystemTime::now());
        manager.stop();
    });
    assert_eq!(sink.0.lock().expect("lock").len(), 2);
    let mut seen = std::collections::HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        seen.insert(format!("{}{{{}}}", key.key().name(), labels.join(",")), value);
    }
    assert_eq!(seen.get("sightline_alerts{state=firing}"), Some(&DebugValue::Gauge(2.0.into())), "{seen:?}");
    assert_eq!(seen.get("sightline_alerts{state=pending}"), Some(&DebugValue::Gauge(0.0.into())));
    assert_eq!(seen.get("sightline_rule_evaluation_failures_total{group=m}"), Some(&DebugValue::Counter(1)));
    assert!(
        matches!(seen.get("sightline_rule_evaluation_duration_seconds{group=m}"), Some(DebugValue::Histogram(h)) if h.len() == 1),
        "{seen:?}"
    );
}
