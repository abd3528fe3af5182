use std::sync::Mutex;

use sightline_core::Value;

use super::*;
use crate::BoxFuture;

/// A check that returns scripted statuses, then repeats the last one.
struct Scripted(Mutex<VecDeque<Status>>);

fn scripted(statuses: &[Status]) -> Scripted {
    Scripted(Mutex::new(statuses.iter().copied().collect()))
}

impl HealthCheck for Scripted {
    fn check(&self) -> BoxFuture<'_, Probe> {
        let mut queue = self.0.lock().unwrap();
        let status = if queue.len() > 1 { queue.pop_front() } else { queue.front().copied() };
        let probe = match status.unwrap_or(Status::Healthy) {
            Status::Unhealthy => Probe::unhealthy("down"),
            Status::Degraded => Probe::degraded("slow"),
            _ => Probe::healthy("up"),
        };
        Box::pin(async move { probe })
    }
}

/// A check that never answers.
struct Hangs;

impl HealthCheck for Hangs {
    fn check(&self) -> BoxFuture<'_, Probe> {
        Box::pin(std::future::pending())
    }
}

use Status::{Degraded, Healthy, Unhealthy, Unknown};

fn status_of(health: &Health, name: &str) -> Status {
    health.report().checks.iter().find(|c| c.name == name).map_or(Unknown, CheckReport::status)
}

fn metric(metrics: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    match metrics.snapshot().family(name).and_then(|f| f.series_with(labels)).map(|s| s.value.clone()) {
        Some(Value::Counter(n)) => n as f64,
        Some(Value::Gauge(v)) => v,
        Some(Value::Histogram(h)) => h.count as f64,
        _ => f64::NAN,
    }
}

#[tokio::test]
async fn failures_are_damped_and_recovery_needs_success_threshold() {
    let metrics = Registry::new();
    let health = Health::builder(&metrics)
        .check(
            "db",
            CheckOptions::new().thresholds(3, 2),
            scripted(&[Unhealthy, Unhealthy, Unhealthy, Healthy, Healthy, Healthy]),
        )
        .build()
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..6 {
        health.run_all().await;
        seen.push(status_of(&health, "db"));
    }
    assert_eq!(seen, vec![Degraded, Degraded, Unhealthy, Unhealthy, Healthy, Healthy]);
    let history = health.history("db").unwrap();
    assert!(history.results[0].message.contains("failure 1 of 3"), "{:?}", history.results[0]);
    assert!(history.results[3].message.contains("recovering: pass 1 of 2"), "{:?}", history.results[3]);
    let transitions: Vec<(Status, Status)> = history.transitions.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(transitions, vec![(Unknown, Degraded), (Degraded, Unhealthy), (Unhealthy, Healthy)]);
    assert_eq!(metric(&metrics, FAILURES_METRIC, &[("check", "db")]), 3.0);
    assert_eq!(metric(&metrics, TRANSITIONS_METRIC, &[("check", "db"), ("to", "unhealthy")]), 1.0);
    assert_eq!(metric(&metrics, STATUS_METRIC, &[("check", "db"), ("status", "healthy")]), 1.0);
    assert_eq!(metric(&metrics, STATUS_METRIC, &[("check", "db"), ("status", "unhealthy")]), 0.0);
    assert_eq!(metric(&metrics, DURATION_METRIC, &[("check", "db")]), 6.0);
}

#[tokio::test]
async fn flapping_input_is_damped() {
    let metrics = Registry::new();
    let flapping = [Unhealthy, Healthy, Unhealthy, Healthy, Unhealthy, Healthy];
    let health = Health::builder(&metrics)
        .check("flappy", CheckOptions::new().thresholds(2, 1), scripted(&flapping))
        .build()
        .unwrap();
    for _ in 0..6 {
        health.run_all().await;
        assert_ne!(status_of(&health, "flappy"), Unhealthy, "one failure at a time never reaches unhealthy");
    }
    assert_eq!(metric(&metrics, TRANSITIONS_METRIC, &[("check", "flappy"), ("to", "unhealthy")]), 0.0);
}

#[tokio::test]
async fn a_dependency_chain_raises_one_alarm() {
    let metrics = Registry::new();
    let health = Health::builder(&metrics)
        .check("network", CheckOptions::new().thresholds(1, 1), scripted(&[Unhealthy]))
        .check("db", CheckOptions::new().thresholds(1, 1).depends_on("network"), scripted(&[Unhealthy]))
        .check("api", CheckOptions::new().thresholds(1, 1).depends_on("db"), scripted(&[Unhealthy]))
        .build()
        .unwrap();
    let report = health.run_all().await;
    assert_eq!(report.status, Unhealthy);
    assert_eq!(status_of(&health, "network"), Unhealthy);
    let db = report.checks.iter().find(|c| c.name == "db").unwrap();
    assert_eq!(db.status(), Unknown);
    assert_eq!(db.last.as_ref().unwrap().message, "skipped: dependency network unhealthy");
    assert_eq!(metric(&metrics, FAILURES_METRIC, &[("check", "db")]), 0.0, "no second failure");
    assert_eq!(metric(&metrics, FAILURES_METRIC, &[("check", "api")]), 0.0);
    // `api` depends on `network` through `db`: skipped too, naming the root of the chain.
    let api = health.report().checks.into_iter().find(|c| c.name == "api").unwrap();
    assert_eq!(api.last.unwrap().message, "skipped: dependency network unhealthy");
    assert_eq!(metric(&metrics, STATUS_METRIC, &[("check", "api"), ("status", "unknown")]), 1.0);
}

#[tokio::test]
async fn aggregation_readiness_and_groups() {
    let metrics = Registry::new();
    let health = Health::builder(&metrics)
        .check("db", CheckOptions::new().group("storage"), scripted(&[Healthy]))
        .check(
            "cache",
            CheckOptions::new().critical(false).thresholds(1, 1).group("storage"),
            scripted(&[Unhealthy]),
        )
        .check("disk", CheckOptions::new().group("host"), scripted(&[Degraded]))
        .build()
        .unwrap();
    assert_eq!(health.report().status, Unknown, "nothing has run yet");
    let report = health.run_all().await;
    assert_eq!(report.status, Degraded, "a failing non-critical check degrades the whole");
    let ready = health.readiness();
    assert_eq!(ready.status, Degraded);
    assert_eq!(ready.checks.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["db", "disk"]);
    let storage = health.group("storage").unwrap();
    assert_eq!(storage.checks.len(), 2);
    assert_eq!(storage.status, Degraded);
    assert_eq!(health.group("host").unwrap().status, Degraded);
    assert!(health.group("nope").is_none());
    assert_eq!(health.groups(), vec!["host", "storage"]);
}

#[tokio::test]
async fn a_hung_check_times_out_and_blocks_nothing() {
    let metrics = Registry::new();
    let health = Health::builder(&metrics)
        .check("hung", CheckOptions::new().timeout(Duration::from_millis(50)).thresholds(1, 1), Hangs)
        .check("fine", CheckOptions::new(), scripted(&[Healthy]))
        .build()
        .unwrap();
    let report = health.run_all().await;
    let hung = report.checks.iter().find(|c| c.name == "hung").unwrap();
    assert_eq!(hung.status(), Unhealthy);
    assert_eq!(hung.last.as_ref().unwrap().message, "timed out after 50ms");
    assert_eq!(status_of(&health, "fine"), Healthy);
    assert_eq!(metric(&metrics, FAILURES_METRIC, &[("check", "hung")]), 1.0);
}

#[tokio::test(start_paused = true)]
async fn background_tasks_run_each_check_on_its_interval() {
    let metrics = Registry::new();
    let health = Health::builder(&metrics)
        .check(
            "hung",
            CheckOptions::new().interval(Duration::from_secs(1)).timeout(Duration::from_secs(5)),
            Hangs,
        )
        .check("fast", CheckOptions::new().interval(Duration::from_secs(1)), scripted(&[Healthy]))
        .build()
        .unwrap();
    let mut transitions = health.subscribe();
    let mut overall = health.watch();
    let running = health.start();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // The fast check ran at once and then at its phase every second, while the hung one was still in
    // its first probe.
    let offset = spread_offset("fast", Duration::from_secs(1));
    let periodic = (0..4).filter(|k| offset + Duration::from_secs(*k) <= Duration::from_millis(3500)).count();
    assert_eq!(health.history("fast").unwrap().results.len(), 1 + periodic);
    assert!(health.history("hung").unwrap().results.is_empty());
    let first = transitions.recv().await.unwrap();
    assert_eq!((first.check.as_str(), first.from, first.to), ("fast", Unknown, Healthy));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status_of(&health, "hung"), Degraded, "first timeout, below the failure threshold");
    assert!(overall.has_changed().unwrap());
    assert_eq!(*overall.borrow_and_update(), Degraded);
    running.stop();
}

/// A check that notes when it was probed.
struct Clocked(Arc<Mutex<Vec<tokio::time::Instant>>>);

impl HealthCheck for Clocked {
    fn check(&self) -> BoxFuture<'_, Probe> {
        self.0.lock().unwrap().push(tokio::time::Instant::now());
        Box::pin(async { Probe::healthy("up") })
    }
}

#[tokio::test(start_paused = true)]
async fn periodic_probes_keep_a_fixed_phase_derived_from_the_name() {
    let metrics = Registry::new();
    let probes = Arc::new(Mutex::new(Vec::new()));
    let interval = Duration::from_secs(10);
    let health = Health::builder(&metrics)
        .check("db", CheckOptions::new().interval(interval), Clocked(probes.clone()))
        .build()
        .unwrap();
    let begin = tokio::time::Instant::now();
    let running = health.start();
    tokio::time::sleep(Duration::from_secs(35)).await;
    running.stop();
    let offset = spread_offset("db", interval);
    let at: Vec<Duration> = probes.lock().unwrap().iter().map(|t| t.duration_since(begin)).collect();
    let expected: Vec<Duration> = [Duration::ZERO, offset, offset + interval, offset + interval * 2]
        .into_iter()
        .chain((offset + interval * 3 <= Duration::from_secs(35)).then_some(offset + interval * 3))
        .collect();
    assert_eq!(at, expected);
}

#[test]
fn spread_offsets_are_stable_within_the_interval_and_spread_out() {
    let interval = Duration::from_secs(10);
    let offsets: Vec<Duration> = (0..50).map(|i| spread_offset(&format!("tcp-{i}"), interval)).collect();
    assert!(offsets.iter().all(|o| *o < interval));
    assert_eq!(spread_offset("tcp-0", interval), offsets[0], "stable for a name");
    // Fifty names land in at least eight of the ten one-second slots.
    let slots: std::collections::HashSet<u64> = offsets.iter().map(|o| o.as_secs()).collect();
    assert!(slots.len() >= 8, "offsets bunch up: {offsets:?}");
    assert_eq!(spread_offset("x", Duration::ZERO), Duration::ZERO);
}

#[test]
fn invalid_sets_of_checks_are_refused_with_reasons() {
    let metrics = Registry::new();
    let build = |checks: Vec<(&str, CheckOptions)>| {
        checks
            .into_iter()
            .fold(Health::builder(&metrics), |b, (name, options)| {
                b.check(name, options, scripted(&[Healthy]))
            })
            .build()
            .map(|_| ())
    };
    assert_eq!(
        build(vec![("a", CheckOptions::new()), ("a", CheckOptions::new())]),
        Err(HealthError::DuplicateName("a".into()))
    );
    assert!(matches!(build(vec![("a b", CheckOptions::new())]), Err(HealthError::InvalidName(_))));
    assert_eq!(
        build(vec![("a", CheckOptions::new().depends_on("b"))]),
        Err(HealthError::UnknownDependency { check: "a".into(), dependency: "b".into() })
    );
    let cycle = build(vec![
        ("a", CheckOptions::new().depends_on("b")),
        ("b", CheckOptions::new().depends_on("c")),
        ("c", CheckOptions::new().depends_on("a")),
    ]);
    let Err(HealthError::DependencyCycle(path)) = &cycle else { panic!("{cycle:?}") };
    assert_eq!(path, &vec!["a", "b", "c", "a"]);
    assert!(cycle.unwrap_err().to_string().contains("a -> b -> c -> a"));
    let zero = build(vec![("a", CheckOptions::new().thresholds(0, 1))]).unwrap_err();
    assert!(zero.to_string().contains("failure_threshold must be at least 1"), "{zero}");
    assert!(build(vec![("a", CheckOptions::new().thresholds(1, 0))]).is_err());
    assert!(build(vec![("a", CheckOptions::new().timeout(Duration::ZERO))]).is_err());
}

#[tokio::test]
async fn history_is_bounded() {
    let health = Health::builder(&Registry::new())
        .with_history(3)
        .check(
            "a",
            CheckOptions::new().thresholds(1, 1),
            scripted(&[Healthy, Unhealthy, Healthy, Unhealthy, Healthy]),
        )
        .build()
        .unwrap();
    for _ in 0..5 {
        health.run_all().await;
    }
    let history = health.history("a").unwrap();
    assert_eq!(history.results.len(), 3);
    assert_eq!(history.transitions.len(), 3);
    assert_eq!(
        history.results.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![Healthy, Unhealthy, Healthy]
    );
}
