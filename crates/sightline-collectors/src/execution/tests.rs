#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use sightline_core::Value;
use tracing_subscriber::fmt::MakeWriter;

use super::*;

// === Helpers ===

fn value(registry: &Registry, metric: &str, labels: &[(&str, &str)]) -> Option<Value> {
    let snapshot = registry.snapshot();
    Some(snapshot.family(metric)?.series_with(labels)?.value.clone())
}

fn counter(registry: &Registry, metric: &str, labels: &[(&str, &str)]) -> u64 {
    match value(registry, metric, labels) {
        Some(Value::Counter(n)) => n,
        other => panic!("{metric}{labels:?} is not a counter: {other:?}"),
    }
}

fn executions(registry: &Registry, kind: &str, name: &str, outcome: Outcome) -> u64 {
    counter(registry, EXECUTIONS_METRIC, &[("kind", kind), ("name", name), ("outcome", outcome.as_str())])
}

fn in_flight(registry: &Registry, kind: &str, name: &str) -> f64 {
    match value(registry, IN_FLIGHT_METRIC, &[("kind", kind), ("name", name)]) {
        Some(Value::Gauge(n)) => n,
        other => panic!("in-flight gauge missing: {other:?}"),
    }
}

fn durations(registry: &Registry, kind: &str, name: &str) -> u64 {
    match value(registry, DURATION_METRIC, &[("kind", kind), ("name", name)]) {
        Some(Value::Histogram(h)) => h.count,
        other => panic!("duration histogram missing: {other:?}"),
    }
}

/// Only the outcome given counted one execution of `(kind, name)`, and nothing is in flight.
fn assert_only(registry: &Registry, kind: &str, name: &str, expected: Outcome) {
    for outcome in Outcome::ALL {
        let want = u64::from(outcome == expected);
        assert_eq!(executions(registry, kind, name, outcome), want, "outcome {outcome}");
    }
    assert_eq!(in_flight(registry, kind, name), 0.0);
    assert_eq!(durations(registry, kind, name), 1);
}

fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// Log lines written by a fmt subscriber.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text().lines().filter(|line| line.contains(needle)).map(str::to_owned).collect()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl MakeWriter<'_> for Logs {
    type Writer = Logs;

    fn make_writer(&self) -> Logs {
        self.clone()
    }
}

/// Captures this thread's log events until the guard is dropped.
fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

// === Outcomes ===

#[tokio::test]
async fn ok_is_a_success_and_err_an_error() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);

    let ok = tracker.track("plugin", "fetch", async { Ok::<_, String>(7) }).await;
    assert_eq!(ok, Ok(7));
    assert_only(&registry, "plugin", "fetch", Outcome::Success);

    let err = tracker.track("plugin", "parse", async { Err::<u32, _>("bad input") }).await;
    assert_eq!(err, Err("bad input"));
    assert_only(&registry, "plugin", "parse", Outcome::Error);

    tracker.track("task", "unit", async {}).await;
    assert_only(&registry, "task", "unit", Outcome::Success);
}

#[tokio::test]
async fn classifier_decides_the_outcome_of_other_outputs() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    let status = tracker
        .execution("task", "http")
        .track_classified(async { 504_u16 }, |status| match status {
            504 => Outcome::Timeout,
            s if *s >= 500 => Outcome::Error,
            _ => Outcome::Success,
        })
        .await;
    assert_eq!(status, 504);
    assert_only(&registry, "task", "http", Outcome::Timeout);
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn a_passed_deadline_is_a_timeout() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    let result = tracker
        .track_with_timeout("plugin", "hang", Duration::from_millis(5), std::future::pending::<()>())
        .await;
    assert_eq!(result, Err(TimedOut { after: Duration::from_millis(5) }));
    assert_eq!(result.unwrap_err().after(), Duration::from_millis(5));
    assert_only(&registry, "plugin", "hang", Outcome::Timeout);

    // Completing in time keeps the output's own outcome.
    let result = tracker
        .track_with_timeout("plugin", "quick", Duration::from_secs(60), async { Err::<(), _>(1) })
        .await;
    assert_eq!(result, Ok(Err(1)));
    assert_only(&registry, "plugin", "quick", Outcome::Error);
}

#[test]
fn a_future_dropped_while_running_is_cancelled() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    {
        let mut future = pin!(tracker.track("workflow", "nightly", std::future::pending::<()>()));
        assert!(poll_once(future.as_mut()).is_pending());
        assert_eq!(in_flight(&registry, "workflow", "nightly"), 1.0);
    }
    assert_only(&registry, "workflow", "nightly", Outcome::Cancelled);
}

#[test]
fn a_future_dropped_before_its_first_poll_records_nothing() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    drop(tracker.track("workflow", "never", async {}));
    for outcome in Outcome::ALL {
        assert_eq!(executions(&registry, "workflow", "never", outcome), 0);
    }
    assert_eq!(durations(&registry, "workflow", "never"), 0);
}

#[tokio::test]
async fn losing_a_select_is_cancelled() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    tokio::select! {
        _ = tracker.track("plugin", "slow", tokio::time::sleep(Duration::from_secs(60))) => unreachable!(),
        _ = tokio::time::sleep(Duration::from_millis(1)) => {}
    }
    assert_only(&registry, "plugin", "slow", Outcome::Cancelled);
}

#[test]
fn guard_outcomes() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);

    tracker.start("task", "a").success();
    assert_only(&registry, "task", "a", Outcome::Success);
    tracker.start("task", "b").error();
    assert_only(&registry, "task", "b", Outcome::Error);
    tracker.start("task", "c").timeout();
    assert_only(&registry, "task", "c", Outcome::Timeout);
    tracker.start("task", "d").finish(Outcome::Success);
    assert_only(&registry, "task", "d", Outcome::Success);
    let result = tracker.start("task", "e").complete(Err::<(), _>("nope"));
    assert_eq!(result, Err("nope"));
    assert_only(&registry, "task", "e", Outcome::Error);

    {
        let _guard = tracker.start("task", "f");
        assert_eq!(in_flight(&registry, "task", "f"), 1.0);
    }
    assert_only(&registry, "task", "f", Outcome::Cancelled);
}

#[test]
fn a_panic_is_an_error() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = tracker.start("task", "boom");
        panic!("expected by the test");
    }));
    assert!(panicked.is_err());
    assert_only(&registry, "task", "boom", Outcome::Error);
}

// === Retries, items, in flight ===

#[tokio::test]
async fn retries_and_items_are_counted() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    let labels = [("kind", "plugin"), ("name", "scan")];

    let guard = tracker.start("plugin", "scan");
    guard.retry();
    guard.add_items(3);
    guard.progress().add_items(2);
    guard.success();

    let execution = tracker.execution("plugin", "scan");
    let progress = execution.progress();
    execution
        .track(async move {
            progress.retry();
            progress.retry();
            progress.add_items(5);
        })
        .await;

    assert_eq!(counter(&registry, RETRIES_METRIC, &labels), 3);
    assert_eq!(counter(&registry, ITEMS_METRIC, &labels), 10);
    assert_eq!(executions(&registry, "plugin", "scan", Outcome::Success), 2);
}

#[test]
fn in_flight_goes_up_and_down() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    let first = tracker.start("task", "batch");
    let second = tracker.start("task", "batch");
    assert_eq!(in_flight(&registry, "task", "batch"), 2.0);
    let mut future = Box::pin(tracker.track("task", "batch", async {}));
    assert_eq!(in_flight(&registry, "task", "batch"), 2.0, "not in flight before the first poll");
    assert!(poll_once(future.as_mut()).is_ready());
    assert_eq!(in_flight(&registry, "task", "batch"), 2.0, "counted up and down in one poll");
    second.success();
    assert_eq!(in_flight(&registry, "task", "batch"), 1.0);
    first.success();
    assert_eq!(in_flight(&registry, "task", "batch"), 0.0);
}

#[test]
fn every_series_exists_from_the_first_execution() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    tracker.start("plugin", "lint").success();
    let labels = [("kind", "plugin"), ("name", "lint")];
    assert_eq!(counter(&registry, RETRIES_METRIC, &labels), 0);
    assert_eq!(counter(&registry, ITEMS_METRIC, &labels), 0);
    for level in ["warning", "error"] {
        assert_eq!(counter(&registry, SLOW_METRIC, &[labels[0], labels[1], ("level", level)]), 0);
    }
    let family = registry.snapshot().family(DURATION_METRIC).unwrap().clone();
    assert_eq!(family.unit, Some(BaseUnit::Seconds));
    let Value::Histogram(histogram) = &family.series[0].value else { panic!("not a histogram") };
    let bounds: Vec<f64> = histogram.buckets.iter().map(|(le, _)| *le).collect();
    assert_eq!(bounds[..DURATION_BUCKETS.len()], DURATION_BUCKETS);

    // A kind without thresholds has no slow series.
    tracker.start("task", "plain").success();
    assert!(value(&registry, SLOW_METRIC, &[("kind", "task")]).is_none());
}

// === Thresholds ===

#[test]
fn default_and_configured_thresholds() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    let plugin = Thresholds { warning: Duration::from_secs(10), error: Duration::from_secs(60) };
    assert_eq!(tracker.thresholds("plugin"), Some(plugin));
    let workflow = Thresholds { warning: Duration::from_secs(30), error: Duration::from_secs(120) };
    assert_eq!(tracker.thresholds("workflow"), Some(workflow));
    assert_eq!(tracker.thresholds("task"), None);

    let tracker = Tracker::builder(&registry)
        .with_thresholds("task", Duration::from_secs(1), Duration::from_secs(2))
        .without_thresholds("workflow")
        .build();
    let task = Thresholds { warning: Duration::from_secs(1), error: Duration::from_secs(2) };
    assert_eq!(tracker.thresholds("task"), Some(task));
    assert_eq!(tracker.thresholds("workflow"), None);
    assert_eq!(tracker.thresholds("plugin"), Some(plugin));
}

#[tokio::test]
async fn crossing_the_warning_threshold_counts_and_warns() {
    let (logs, _guard) = capture_logs();
    let registry = Registry::new();
    let tracker = Tracker::builder(&registry)
        .with_thresholds("plugin", Duration::from_millis(1), Duration::from_secs(3600))
        .build();

    tracker.track("plugin", "sleepy", tokio::time::sleep(Duration::from_millis(20))).await;

    let labels = [("kind", "plugin"), ("name", "sleepy")];
    assert_eq!(counter(&registry, SLOW_METRIC, &[labels[0], labels[1], ("level", "warning")]), 1);
    assert_eq!(counter(&registry, SLOW_METRIC, &[labels[0], labels[1], ("level", "error")]), 0);
    let lines = logs.lines_with("exceeded its warning threshold");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    let line = &lines[0];
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("execution{kind=\"plugin\" name=\"sleepy\"}"), "{line}");
    for field in
        ["kind=\"plugin\"", "name=\"sleepy\"", "outcome=\"success\"", "duration_ms=", "threshold_ms=1"]
    {
        assert!(line.contains(field), "{field} missing in {line}");
    }

    // Under the threshold: nothing.
    tracker.track("plugin", "quick", async {}).await;
    assert!(logs.lines_with("name=\"quick\"").is_empty(), "{}", logs.text());
}

#[test]
fn crossing_the_error_threshold_counts_once_at_the_error_level() {
    let (logs, _guard) = capture_logs();
    let registry = Registry::new();
    let tracker = Tracker::builder(&registry)
        .with_thresholds("task", Duration::from_millis(1), Duration::from_millis(2))
        .build();

    let guard = tracker.start("task", "stuck");
    std::thread::sleep(Duration::from_millis(20));
    drop(guard);

    let labels = [("kind", "task"), ("name", "stuck")];
    assert_eq!(counter(&registry, SLOW_METRIC, &[labels[0], labels[1], ("level", "error")]), 1);
    assert_eq!(counter(&registry, SLOW_METRIC, &[labels[0], labels[1], ("level", "warning")]), 0);
    assert!(logs.lines_with("warning threshold").is_empty(), "{}", logs.text());
    let lines = logs.lines_with("exceeded its error threshold");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert!(lines[0].contains("ERROR"), "{}", lines[0]);
    assert!(lines[0].contains("outcome=\"cancelled\""), "{}", lines[0]);
    assert!(lines[0].contains("threshold_ms=2"), "{}", lines[0]);
}

// === Spans ===

#[tokio::test]
async fn events_inside_a_tracked_future_carry_the_span_fields() {
    let (logs, _guard) = capture_logs();
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);

    tracker
        .execution("workflow", "nightly")
        .run_id(42)
        .track(async {
            tracing::info!("before the await");
            tokio::task::yield_now().await;
            tracing::info!("after the await");
        })
        .await;
    tracing::info!("outside");

    let text = logs.text();
    for message in ["before the await", "after the await"] {
        let lines = logs.lines_with(message);
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].contains("execution{kind=\"workflow\" name=\"nightly\" run_id=\"42\"}"), "{text}");
    }
    assert!(!logs.lines_with("outside")[0].contains("execution{"), "{text}");
}

#[test]
fn events_inside_a_guard_carry_the_span_fields_and_the_parent() {
    let (logs, _guard) = capture_logs();
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);

    let run = tracing::info_span!("run", tenant = "acme");
    let guard = tracker.execution("plugin", "lint").parent(&run).start();
    tracing::info!("inside the guard");
    guard.success();
    tracing::info!("after the guard");

    let text = logs.text();
    let inside = logs.lines_with("inside the guard");
    assert!(inside[0].contains("run{tenant=\"acme\"}:execution{kind=\"plugin\" name=\"lint\"}"), "{text}");
    assert!(!logs.lines_with("after the guard")[0].contains("execution{"), "{text}");
}

#[test]
fn the_contextual_parent_is_the_span_current_at_the_call() {
    let (logs, _guard) = capture_logs();
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);

    let future = tracing::info_span!("request", id = 9).in_scope(|| {
        tracker.track("task", "work", async {
            tracing::info!("working");
        })
    });
    let mut future = pin!(future);
    assert!(poll_once(future.as_mut()).is_ready());

    let text = logs.text();
    assert!(logs.lines_with("working")[0].contains("request{id=9}:execution{kind=\"task\""), "{text}");
}

// === Types ===

#[test]
fn tracked_futures_are_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: T) {}
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    let name = String::from("dynamic");
    assert_send_static(tracker.track("plugin", &name, async { Ok::<_, ()>(()) }));
    #[cfg(feature = "tokio")]
    assert_send_static(tracker.track_with_timeout("plugin", &name, Duration::from_secs(1), async {}));
    assert_send_static(tracker.execution("plugin", &name).progress());
    assert_send_static(tracker.clone());
}

#[test]
fn handles_are_shared_between_clones() {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    let clone = tracker.clone();
    tracker.start("task", "x").success();
    clone.start("task", "x").success();
    assert_eq!(executions(&registry, "task", "x", Outcome::Success), 2);
    assert_eq!(tracker.inner.handles.len(), 1);
    assert!(format!("{tracker:?}").contains("tracked: 1"));
}
