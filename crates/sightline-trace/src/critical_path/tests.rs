#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use expect_test::{Expect, expect};

use super::*;
use crate::record::{SpanStatus, TraceId};

/// The fixture trace id; tests in other modules build spans with [`span`] too.
pub(crate) const TRACE: TraceId = TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);

/// Time zero of the fixtures: times in tests are milliseconds after it.
pub(crate) fn t(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
}

/// A span of [`TRACE`] in service `checkout`, from `start_ms` for `duration_ms`.
pub(crate) fn span(
    id: u64,
    parent: Option<u64>,
    name: &'static str,
    start_ms: u64,
    duration_ms: u64,
) -> SpanRecord {
    SpanRecord {
        trace_id: TRACE,
        span_id: SpanId(id),
        parent_span_id: parent.map(SpanId),
        parent_is_remote: false,
        name: Cow::Borrowed(name),
        target: Cow::Borrowed("sightline_trace::tests"),
        service: Arc::from("checkout"),
        start: t(start_ms),
        duration: Duration::from_millis(duration_ms),
        fields: Vec::new(),
        status: SpanStatus::Unset,
        error: None,
        events: Vec::new(),
        dropped_events: 0,
    }
}

/// Checks the path's invariants, then compares `name start..end` lines (ms after [`t`]) with `expected`.
fn check(trace: &[SpanRecord], expected: Expect) {
    let path = critical_path(trace);
    for pair in path.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "segments must be contiguous: {path:?}");
    }
    for s in &path {
        assert!(s.start < s.end || path.len() == 1, "only a lone root segment may be empty: {path:?}");
    }
    let ms = |time: SystemTime| time.duration_since(t(0)).unwrap().as_millis();
    let mut actual = String::new();
    for s in &path {
        writeln!(actual, "{} {}..{}", s.name, ms(s.start), ms(s.end)).unwrap();
    }
    expected.assert_eq(&actual);
}

#[test]
fn empty_input_has_no_path() {
    assert!(critical_path(&[]).is_empty());
    assert!(critical_span_ids(&[]).is_empty());
}

#[test]
fn single_span_is_its_own_path() {
    check(
        &[span(1, None, "root", 0, 100)],
        expect![[r#"
        root 0..100
    "#]],
    );
}

#[test]
fn sequential_children_are_all_critical() {
    let trace = [span(1, None, "root", 0, 100), span(2, Some(1), "a", 10, 30), span(3, Some(1), "b", 40, 50)];
    check(
        &trace,
        expect![[r#"
        root 0..10
        a 10..40
        b 40..90
        root 90..100
    "#]],
    );
}

#[test]
fn only_the_last_finishing_concurrent_child_is_critical() {
    // `b` overlaps `a` and finishes first, so it never delayed the root.
    let trace = [span(1, None, "root", 0, 100), span(2, Some(1), "a", 10, 70), span(3, Some(1), "b", 20, 40)];
    check(
        &trace,
        expect![[r#"
        root 0..10
        a 10..80
        root 80..100
    "#]],
    );

    // `a` finishes after `b` starts, so it is not before the cursor and is skipped too.
    let trace = [span(1, None, "root", 0, 100), span(2, Some(1), "a", 10, 40), span(3, Some(1), "b", 20, 60)];
    check(
        &trace,
        expect![[r#"
        root 0..20
        b 20..80
        root 80..100
    "#]],
    );
    assert_eq!(critical_span_ids(&trace), HashSet::from([SpanId(1), SpanId(3)]));
}

#[test]
fn nested_children_are_walked_recursively() {
    let trace = [
        span(4, Some(2), "a2", 50, 35),
        span(1, None, "root", 0, 100),
        span(3, Some(2), "a1", 20, 30),
        span(2, Some(1), "a", 10, 80),
        span(5, Some(3), "a1x", 25, 10),
    ];
    check(
        &trace,
        expect![[r#"
        root 0..10
        a 10..20
        a1 20..25
        a1x 25..35
        a1 35..50
        a2 50..85
        a 85..90
        root 90..100
    "#]],
    );
}

#[test]
fn children_are_clipped_to_the_parent() {
    // `late` outlives the root (fire and forget); `early` starts before its parent does.
    let trace = [
        span(1, None, "root", 20, 80),
        span(2, Some(1), "late", 60, 100),
        span(3, Some(1), "early", 10, 30),
        span(4, Some(2), "after-root", 110, 20),
    ];
    check(
        &trace,
        expect![[r#"
        early 20..40
        root 40..60
        late 60..100
    "#]],
    );
}

#[test]
fn a_true_root_wins_over_orphans() {
    let trace = [
        span(9, Some(77), "orphan", 0, 300),
        span(1, None, "root", 10, 100),
        span(2, Some(1), "child", 20, 10),
    ];
    check(
        &trace,
        expect![[r#"
        root 10..20
        child 20..30
        root 30..110
    "#]],
    );
}

#[test]
fn without_a_true_root_the_last_ending_orphan_is_the_root() {
    // The root lives in another process (or has not closed yet): both spans point at a missing parent.
    let trace = [
        span(2, Some(1), "first", 0, 50),
        span(3, Some(1), "second", 10, 70),
        span(4, Some(3), "inner", 20, 30),
    ];
    check(
        &trace,
        expect![[r#"
        second 10..20
        inner 20..50
        second 50..80
    "#]],
    );
}

#[test]
fn several_roots_pick_the_one_ending_last() {
    let trace = [span(1, None, "short", 0, 10), span(2, None, "long", 5, 50)];
    check(
        &trace,
        expect![[r#"
        long 5..55
    "#]],
    );
}

#[test]
fn zero_length_spans() {
    check(
        &[span(1, None, "instant", 10, 0)],
        expect![[r#"
        instant 10..10
    "#]],
    );
    let trace = [span(1, None, "root", 0, 10), span(2, Some(1), "instant", 5, 0)];
    check(
        &trace,
        expect![[r#"
        root 0..10
    "#]],
    );
}

#[test]
fn bad_parent_links_do_not_hang() {
    // A span that is its own parent is a root; a two-span cycle is unreachable from any root.
    let trace = [
        span(1, Some(1), "self", 0, 10),
        span(2, Some(3), "cycle-a", 0, 5),
        span(3, Some(2), "cycle-b", 0, 5),
    ];
    check(
        &trace,
        expect![[r#"
        self 0..10
    "#]],
    );
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let depth = 20_000;
    let trace: Vec<SpanRecord> =
        (1..=depth).map(|i| span(i, (i > 1).then(|| i - 1), "level", i, 2 * (depth - i) + 1)).collect();
    let path = critical_path(&trace);
    assert_eq!(path.len(), 2 * depth as usize - 1);
    assert_eq!(path.first().unwrap().start, t(1));
    assert_eq!(path.last().unwrap().end, t(2 * depth));
}

#[test]
fn self_time_sums_each_spans_segments() {
    let trace = [
        span(1, None, "root", 0, 100),
        span(2, Some(1), "a", 10, 30),
        span(3, Some(1), "b", 40, 50),
        span(4, Some(1), "hidden", 45, 10),
    ];
    let times = self_time(&critical_path(&trace));
    let ms = Duration::from_millis;
    assert_eq!(times, HashMap::from([(SpanId(1), ms(20)), (SpanId(2), ms(30)), (SpanId(3), ms(50))]));
    assert_eq!(times.values().sum::<Duration>(), ms(100));
}
