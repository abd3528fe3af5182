//! Global installation: its own test binary, because a process has one global recorder.

use sightline_core::{Registry, Value};

#[test]
fn installed_registry_receives_records_from_every_thread_and_refuses_a_second_install() {
    let registry = Registry::builder().install().expect("the first install succeeds");
    std::thread::spawn(|| metrics::counter!("from_thread_total").increment(3)).join().unwrap();
    metrics::gauge!("from_main").set(1.0);
    let snapshot = registry.snapshot();
    assert_eq!(snapshot.family("from_thread_total").map(|f| &f.series[0].value), Some(&Value::Counter(3)));
    assert!(snapshot.family("from_main").is_some());

    let err = Registry::builder().install().expect_err("a second install fails");
    assert!(err.to_string().contains("already installed"), "{err}");

    // A scoped registry takes precedence on its thread, even with a global one installed.
    let scoped = Registry::new();
    scoped.scoped(|| metrics::counter!("scoped_total").increment(1));
    assert!(scoped.snapshot().family("scoped_total").is_some());
    assert!(registry.snapshot().family("scoped_total").is_none());
}
