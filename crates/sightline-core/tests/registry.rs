//! Behaviour of the registry through its public API and the `metrics` facade.

use std::sync::Arc;

use sightline_core::{
    BaseUnit, CARDINALITY_OVERFLOW_METRIC, Descriptor, INVALID_METRICS_METRIC, Matcher, MetricError,
    MetricKind, Registry, Snapshot, Value,
};

fn counter(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    match snapshot.family(name)?.series_with(labels)?.value {
        Value::Counter(v) => Some(v),
        ref other => panic!("{name} is not a counter: {other:?}"),
    }
}

#[test]
fn facade_records_into_the_registry() {
    let registry = Registry::new();
    registry.scoped(|| {
        metrics::describe_counter!("requests_total", "Requests served.");
        let handle = metrics::counter!("requests_total", "method" => "GET");
        handle.increment(2);
        handle.increment(3);
        metrics::gauge!("queue_depth").set(7.5);
        metrics::gauge!("queue_depth").decrement(0.5);
        metrics::histogram!("latency_seconds").record(0.2);
    });
    let snap = registry.snapshot();
    assert_eq!(counter(&snap, "requests_total", &[("method", "GET")]), Some(5));
    assert_eq!(snap.family("requests_total").and_then(|f| f.help.as_deref()), Some("Requests served."));
    assert_eq!(snap.family("queue_depth").map(|f| &f.series[0].value), Some(&Value::Gauge(7.0)));
    let Some(Value::Histogram(h)) = snap.family("latency_seconds").map(|f| f.series[0].value.clone()) else {
        panic!("latency_seconds missing");
    };
    assert_eq!(h.count, 1);
    assert_eq!(h.buckets.len(), sightline_core::DEFAULT_BUCKETS.len() + 1);
    assert_eq!(h.buckets.iter().find(|(le, _)| *le == 0.25).map(|b| b.1), Some(1));
    assert_eq!(h.buckets.iter().find(|(le, _)| *le == 0.1).map(|b| b.1), Some(0));
}

#[test]
fn facade_counters_get_the_total_suffix() {
    let registry = Registry::new();
    registry.scoped(|| {
        metrics::counter!("jobs", "q" => "a").increment(1);
        metrics::counter!("jobs_total", "q" => "a").increment(1);
        metrics::describe_counter!("jobs", "Jobs run.");
    });
    let snap = registry.snapshot();
    assert!(snap.family("jobs").is_none());
    assert_eq!(counter(&snap, "jobs_total", &[("q", "a")]), Some(2), "both spellings share one series");
    assert_eq!(snap.family("jobs_total").and_then(|f| f.help.as_deref()), Some("Jobs run."));
}

#[test]
fn invalid_facade_metrics_are_dropped_counted_and_never_panic() {
    let registry = Registry::new();
    registry.scoped(|| {
        metrics::counter!("bad-name_total").increment(1);
        metrics::counter!("ok_total", "bad-label" => "x").increment(1);
        metrics::counter!("ok_total", "__reserved" => "x").increment(1);
        metrics::counter!("ok_total", "a" => "1", "a" => "2").increment(1);
        metrics::gauge!("9starts_with_digit").set(1.0);
        // A kind conflict: `ok_total` becomes a counter first, so the gauge is dropped.
        metrics::counter!("ok_total").increment(1);
        metrics::gauge!("ok_total").set(1.0);
    });
    let snap = registry.snapshot();
    assert_eq!(counter(&snap, INVALID_METRICS_METRIC, &[]), Some(6));
    let ok = snap.family("ok_total").expect("the valid series stays");
    assert_eq!(ok.series.len(), 1);
    assert_eq!(ok.kind, MetricKind::Counter);
    assert!(snap.family("bad-name_total").is_none());
}

#[test]
fn label_values_may_hold_anything() {
    let registry = Registry::new();
    registry.scoped(|| {
        metrics::counter!("odd_total", "path" => "a\"b\\c\nd{é}").increment(1);
    });
    assert_eq!(counter(&registry.snapshot(), "odd_total", &[("path", "a\"b\\c\nd{é}")]), Some(1));
}

#[test]
fn cardinality_limit_folds_into_one_overflow_series() {
    let registry = Registry::builder()
        .with_cardinality_limit(3)
        .with_cardinality_limit_for(Matcher::Prefix("roomy_".into()), 10)
        .build();
    registry.scoped(|| {
        for i in 0..10 {
            metrics::counter!("users_total", "user" => i.to_string()).increment(1);
            metrics::counter!("roomy_total", "user" => i.to_string()).increment(1);
        }
        // A label set that made it under the limit keeps its own series.
        metrics::counter!("users_total", "user" => "0").increment(1);
    });
    let snap = registry.snapshot();
    let users = snap.family("users_total").expect("users_total");
    assert_eq!(users.series.len(), 4, "3 label sets plus the overflow series");
    assert_eq!(counter(&snap, "users_total", &[("user", "0")]), Some(2));
    assert_eq!(counter(&snap, "users_total", &[("otel_metric_overflow", "true")]), Some(7));
    assert_eq!(counter(&snap, CARDINALITY_OVERFLOW_METRIC, &[("metric", "users_total")]), Some(7));
    assert_eq!(snap.family("roomy_total").map(|f| f.series.len()), Some(10));
    assert_eq!(counter(&snap, CARDINALITY_OVERFLOW_METRIC, &[("metric", "roomy_total")]), None);
}

#[test]
fn memory_stays_bounded_past_the_limit() {
    let registry = Registry::builder().with_cardinality_limit(100).build();
    registry.scoped(|| {
        for i in 0..50_000 {
            metrics::gauge!("per_request", "id" => i.to_string()).set(1.0);
        }
    });
    // 100 series, 1 overflow series, and the internal counters.
    assert!(registry.series_count() <= 105, "{} series held", registry.series_count());
}

#[test]
fn typed_api_returns_errors_that_say_what_to_do() {
    let registry = Registry::new();
    let err = registry.counter("requests", &[]).unwrap_err();
    assert_eq!(err, MetricError::CounterWithoutTotal { name: "requests".into() });
    assert!(err.to_string().contains("rename it to \"requests_total\""));
    assert!(matches!(registry.gauge("a-b", &[]), Err(MetricError::InvalidMetricName { .. })));
    assert!(matches!(registry.gauge("g", &[("le", "1")]), Err(MetricError::InvalidLabelName { .. })));
    assert!(matches!(registry.gauge("depth_total", &[]), Err(MetricError::ReservedSuffix { .. })));
    let _gauge = registry.gauge("shared", &[]).expect("a gauge");
    assert_eq!(
        registry.histogram("shared", &[]).unwrap_err(),
        MetricError::KindConflict {
            name: "shared".into(),
            existing: MetricKind::Gauge,
            requested: MetricKind::Histogram
        }
    );
    let err = registry
        .describe(&Descriptor::histogram("latency", "Latency.").with_unit(BaseUnit::Seconds))
        .unwrap_err();
    assert!(matches!(err, MetricError::MissingUnitSuffix { .. }), "{err}");
    assert!(Descriptor::histogram("h", "").with_buckets(&[2.0, 1.0]).is_err());
    assert!(Descriptor::summary("s", "").with_quantiles(&[1.5]).is_err());
}

#[test]
fn described_buckets_and_units_apply() {
    let registry = Registry::new();
    registry
        .describe(
            &Descriptor::histogram("io_seconds", "IO time.")
                .with_unit(BaseUnit::Seconds)
                .with_buckets(&[1.0, 2.0])
                .expect("valid buckets"),
        )
        .expect("valid descriptor");
    registry.histogram("io_seconds", &[]).expect("histogram").record(1.5);
    let snap = registry.snapshot();
    let family = snap.family("io_seconds").expect("io_seconds");
    assert_eq!(family.unit, Some(BaseUnit::Seconds));
    let Value::Histogram(h) = &family.series[0].value else { panic!("not a histogram") };
    assert_eq!(h.buckets, vec![(1.0, 0), (2.0, 1), (f64::INFINITY, 1)]);
    // Describing again with other buckets is an error rather than a silent change.
    let again = Descriptor::histogram("io_seconds", "IO time.").with_buckets(&[5.0]).expect("valid buckets");
    assert!(matches!(registry.describe(&again), Err(MetricError::InvalidBuckets { .. })));
}

#[test]
fn facade_histograms_become_summaries_where_configured() {
    let registry = Registry::builder().with_summary_for(Matcher::Suffix("_quantiles_seconds".into())).build();
    registry.scoped(|| {
        for v in 1..=100 {
            metrics::histogram!("rpc_quantiles_seconds").record(v as f64);
        }
    });
    let snap = registry.snapshot();
    let family = snap.family("rpc_quantiles_seconds").expect("summary");
    assert_eq!(family.kind, MetricKind::Summary);
    let Value::Summary(s) = &family.series[0].value else { panic!("not a summary") };
    assert_eq!(s.count, 100);
    assert_eq!(s.sum, 5050.0);
    assert_eq!(s.quantiles.iter().map(|q| q.0).collect::<Vec<_>>(), vec![0.5, 0.9, 0.99]);
}

#[test]
fn snapshot_order_is_stable_and_families_sorted() {
    let registry = Registry::new();
    registry.scoped(|| {
        for name in ["zeta", "alpha", "mid"] {
            for v in ["c", "a", "b"] {
                metrics::gauge!(name, "v" => v).set(1.0);
            }
        }
    });
    let names: Vec<String> = registry.snapshot().families.iter().map(|f| f.name.clone()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let order = |s: Snapshot| -> Vec<String> {
        s.family("mid").expect("mid").series.iter().map(|s| s.label("v").unwrap_or("").to_owned()).collect()
    };
    assert_eq!(order(registry.snapshot()), vec!["c", "a", "b"], "registration order");
    assert_eq!(order(registry.snapshot()), order(registry.snapshot()));
}

#[test]
fn concurrent_registration_creates_each_series_once() {
    let registry = Arc::new(Registry::builder().with_cardinality_limit(50).build());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let registry = registry.clone();
            scope.spawn(move || {
                registry.scoped(|| {
                    for i in 0..2_000 {
                        metrics::counter!("racy_total", "i" => (i % 60).to_string()).increment(1);
                    }
                })
            });
        }
    });
    let snap = registry.snapshot();
    let family = snap.family("racy_total").expect("racy_total");
    assert_eq!(family.series.len(), 51, "50 label sets and the overflow series");
    let total: u64 = family
        .series
        .iter()
        .map(|s| match s.value {
            Value::Counter(v) => v,
            _ => 0,
        })
        .sum();
    assert_eq!(total, 16_000, "no increment is lost");
}

#[test]
fn float_counters_count_fractions_and_keep_their_type() {
    let registry = Registry::new();
    registry
        .describe(&Descriptor::float_counter("cpu_seconds_total", "CPU time.").with_unit(BaseUnit::Seconds))
        .expect("valid");
    let cpu = registry.float_counter("cpu_seconds_total", &[]).expect("valid");
    cpu.increment(0.25);
    cpu.absolute(1.75);
    registry.scoped(|| metrics::counter!("cpu_seconds_total").increment(1));
    let snap = registry.snapshot();
    assert_eq!(
        snap.family("cpu_seconds_total").map(|f| &f.series[0].value),
        Some(&Value::FloatCounter(2.75))
    );
    assert!(matches!(
        registry.counter("cpu_seconds_total", &[]),
        Err(MetricError::CounterTypeConflict { .. })
    ));
    let _ints = registry.counter("ints_total", &[]).expect("valid");
    assert!(matches!(
        registry.float_counter("ints_total", &[]),
        Err(MetricError::CounterTypeConflict { .. })
    ));
    assert!(matches!(
        registry.describe(&Descriptor::float_counter("ints_total", "")),
        Err(MetricError::CounterTypeConflict { .. })
    ));
}

#[test]
fn the_overflow_counter_itself_never_overflows() {
    let registry = Registry::builder().with_cardinality_limit(1).build();
    registry.scoped(|| {
        for name in ["a_total", "b_total", "c_total"] {
            for user in ["x", "y"] {
                metrics::counter!(name, "user" => user).increment(1);
            }
        }
    });
    let snap = registry.snapshot();
    for name in ["a_total", "b_total", "c_total"] {
        assert_eq!(counter(&snap, CARDINALITY_OVERFLOW_METRIC, &[("metric", name)]), Some(1), "{name}");
    }
    assert_eq!(counter(&snap, CARDINALITY_OVERFLOW_METRIC, &[("otel_metric_overflow", "true")]), None);
}

#[test]
fn invalid_metrics_are_logged_once_per_name() {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let registry = Registry::new();
    tracing::subscriber::with_default(subscriber, || {
        registry.scoped(|| {
            for _ in 0..100 {
                metrics::counter!("bad-name_total").increment(1);
                metrics::gauge!("also bad").set(1.0);
            }
        })
    });
    let logged = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert_eq!(logged.matches("dropping invalid metric").count(), 2, "{logged}");
    assert!(logged.contains("bad-name_total") && logged.contains("also bad"), "{logged}");
    assert_eq!(counter(&registry.snapshot(), INVALID_METRICS_METRIC, &[]), Some(200));
}

#[test]
fn registries_on_one_thread_never_share_series() {
    // The per-thread lookup cache is tagged by registry; the same key in two registries stays apart.
    let (a, b) = (Registry::new(), Registry::new());
    for _ in 0..3 {
        a.scoped(|| metrics::counter!("shared_total", "k" => "v").increment(1));
        b.scoped(|| metrics::counter!("shared_total", "k" => "v").increment(10));
    }
    assert_eq!(counter(&a.snapshot(), "shared_total", &[("k", "v")]), Some(3));
    assert_eq!(counter(&b.snapshot(), "shared_total", &[("k", "v")]), Some(30));
    // A gauge lookup of a key cached as a counter is still refused as a kind conflict.
    a.scoped(|| metrics::gauge!("shared_total", "k" => "v").set(1.0));
    assert_eq!(counter(&a.snapshot(), INVALID_METRICS_METRIC, &[]), Some(1));
}

#[test]
fn sharded_counters_count_like_plain_ones() {
    let registry = Registry::builder().with_sharded_counters_for(Matcher::Prefix("hot_".into())).build();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                registry.scoped(|| (0..500).for_each(|_| metrics::counter!("hot_total").increment(2)))
            });
        }
    });
    assert_eq!(counter(&registry.snapshot(), "hot_total", &[]), Some(4000));
}

#[test]
fn recording_from_a_thread_local_destructor_does_not_panic() {
    struct RecordOnDrop(Option<Registry>);
    impl Drop for RecordOnDrop {
        fn drop(&mut self) {
            if let Some(registry) = self.0.take() {
                registry.scoped(|| metrics::counter!("late_total", "k" => "v").increment(1));
            }
        }
    }
    thread_local! {
        static LATE: std::cell::RefCell<RecordOnDrop> = const { std::cell::RefCell::new(RecordOnDrop(None)) };
    }
    let registry = Registry::new();
    let theirs = registry.clone();
    std::thread::spawn(move || {
        // Touch LATE first so that its destructor runs after the registry's own thread-locals are gone
        // (destructors run in reverse order of first use).
        LATE.with(|late| late.borrow_mut().0 = Some(theirs.clone()));
        theirs.scoped(|| metrics::counter!("late_total", "k" => "v").increment(1));
    })
    .join()
    .expect("no panic in the thread or its destructors");
    // The record made during teardown may be dropped, but it never aborts the process.
    let late = counter(&registry.snapshot(), "late_total", &[("k", "v")]);
    assert!(matches!(late, Some(1 | 2)), "{late:?}");
}
