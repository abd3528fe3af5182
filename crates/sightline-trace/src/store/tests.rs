#![allow(clippy::unwrap_used)]

use std::thread;

use super::*;
use crate::critical_path::tests::{TRACE, span, t};
use crate::record::SpanId;

/// A span of trace `trace` (see [`span`] for the rest).
fn span_in(
    trace: u128,
    id: u64,
    parent: Option<u64>,
    name: &'static str,
    start: u64,
    dur: u64,
) -> SpanRecord {
    SpanRecord { trace_id: TraceId(trace), ..span(id, parent, name, start, dur) }
}

/// Checks that the ring, the slab and the index agree, and that the ring stays within the capacity.
fn assert_consistent(store: &SpanStore) {
    let inner = store.shared.lock();
    assert!(inner.slots.len() <= store.capacity());
    assert!(inner.slots.capacity() <= store.capacity().max(INITIAL_SLOTS));
    let live: Vec<&TraceEntry> = inner.entries.iter().filter(|e| e.count > 0).collect();
    assert_eq!(live.len(), inner.index.len());
    assert_eq!(live.len() + inner.free.len(), inner.entries.len());
    assert_eq!(live.iter().map(|e| e.count).sum::<usize>(), inner.slots.len());
    for entry in live {
        assert_eq!(inner.entries[inner.index[&entry.trace_id]].first, entry.first);
        let chain: Vec<u64> = inner.chain(entry).map(|(seq, _)| seq).collect();
        assert_eq!(chain.len(), entry.count);
        assert_eq!(chain.last(), Some(&entry.last));
        assert!(inner.chain(entry).all(|(_, s)| s.trace_id == entry.trace_id));
    }
}

fn ids(trace: &Trace) -> Vec<u64> {
    trace.spans.iter().map(|s| s.span_id.0).collect()
}

#[test]
fn trace_returns_spans_by_start_with_parents_first() {
    let store = SpanStore::new(16);
    // Children close before their parents, so they arrive first; `child` shares its parent's start.
    store.insert(span(3, Some(2), "grandchild", 10, 5));
    store.insert(span(2, Some(1), "child", 0, 20));
    store.insert(span_in(7, 9, None, "other trace", 0, 1));
    store.insert(span(1, None, "root", 0, 30));
    store.insert(span(4, Some(1), "sibling", 25, 1));

    let trace = store.trace(TRACE).unwrap();
    assert_eq!(trace.trace_id, TRACE);
    assert_eq!(ids(&trace), [1, 2, 3, 4]);
    assert_eq!(store.trace(TraceId(7)).map(|t| ids(&t)), Some(vec![9]));
    assert_eq!(store.trace(TraceId(8)), None);
    assert_eq!((store.len(), store.evicted_total()), (5, 0));
    assert_consistent(&store);
}

#[test]
fn full_store_evicts_oldest_first_and_unindexes_evicted_traces() {
    let store = SpanStore::new(3);
    store.insert(span_in(1, 1, None, "a", 0, 1));
    store.insert(span_in(2, 2, Some(9), "b1", 1, 1));
    store.insert(span_in(2, 3, Some(9), "b2", 2, 1));
    assert_consistent(&store);
    store.insert(span_in(3, 4, None, "c", 3, 1));
    store.insert(span_in(2, 5, Some(9), "b3", 4, 1));

    assert_eq!((store.len(), store.evicted_total()), (3, 2));
    assert_eq!(store.trace(TraceId(1)), None, "the oldest trace is gone");
    assert_eq!(store.trace(TraceId(2)).map(|t| ids(&t)), Some(vec![3, 5]), "partly evicted");
    assert_consistent(&store);

    // Cycling through many traces reuses slab entries instead of growing the index.
    for i in 0..1_000 {
        store.insert(span_in(100 + i, 1, None, "x", 10, 1));
        assert_consistent(&store);
    }
    let inner = store.shared.lock();
    assert_eq!((inner.index.len(), inner.entries.len()), (3, 3));
}

#[test]
fn ring_grows_to_exactly_the_capacity() {
    let store = SpanStore::new(1_500);
    for i in 0..4_000 {
        store.insert(span_in(u128::from(i % 7) + 1, i + 1, None, "s", i, 1));
    }
    assert_eq!((store.len(), store.evicted_total()), (1_500, 2_500));
    assert_eq!(store.shared.lock().slots.capacity(), 1_500);
    assert_consistent(&store);
}

#[test]
fn capacity_zero_stores_nothing() {
    let store = SpanStore::new(0);
    store.insert(span(1, None, "root", 0, 1));
    store.insert(span(2, Some(1), "child", 0, 1));
    assert!(store.is_empty());
    assert_eq!((store.capacity(), store.evicted_total()), (0, 2));
    assert_eq!(store.trace(TRACE), None);
    assert!(store.query(&TraceQuery::default()).is_empty());
    assert_consistent(&store);
}

#[test]
fn clones_share_the_store() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SpanStore>();

    let store = SpanStore::new(4);
    let handle = store.clone();
    handle.insert(span(1, None, "root", 0, 1));
    assert_eq!(store.len(), 1);
    assert_eq!(format!("{store:?}"), "SpanStore { capacity: 4, len: 1, traces: 1, evicted_total: 0 }");
}

/// Three traces: `slow` (errored, two services), `fast` (no root yet) and `mid`, started in that order.
fn query_fixture() -> SpanStore {
    let store = SpanStore::new(64);
    let mut db = span_in(1, 12, Some(11), "db.query", 20, 300);
    db.service = Arc::from("postgres-proxy");
    db.status = SpanStatus::Error;
    store.insert(db);
    store.insert(span_in(1, 11, None, "GET /slow", 10, 500));

    // The root lives in another process; the earliest local span names the trace.
    store.insert(span_in(2, 22, Some(21), "cache.get", 120, 2));
    let mut entry = span_in(2, 21, Some(20), "GET /fast", 100, 5);
    entry.parent_is_remote = true;
    store.insert(entry);

    store.insert(span_in(3, 31, None, "GET /mid", 50, 40));
    store
}

fn summaries(store: &SpanStore, q: &TraceQuery) -> Vec<(u128, String, String, u128, usize, usize)> {
    store
        .query(q)
        .into_iter()
        .map(|s| {
            let start_ms = s.start.duration_since(t(0)).unwrap().as_millis();
            assert_eq!(
                s.duration,
                store
                    .trace(s.trace_id)
                    .unwrap()
                    .spans
                    .iter()
                    .map(span_end)
                    .max()
                    .unwrap()
                    .duration_since(s.start)
                    .unwrap()
            );
            (s.trace_id.0, s.root_name, s.service.to_string(), start_ms, s.span_count, s.error_count)
        })
        .collect()
}

#[test]
fn query_filters_and_orders_newest_first() {
    let store = query_fixture();
    let all = summaries(&store, &TraceQuery::default());
    assert_eq!(
        all,
        [
            (2, "GET /fast".into(), "checkout".into(), 100, 2, 0),
            (3, "GET /mid".into(), "checkout".into(), 50, 1, 0),
            (1, "GET /slow".into(), "checkout".into(), 10, 2, 1),
        ]
    );
    let trace_ids = |q: TraceQuery| store.query(&q).iter().map(|s| s.trace_id.0).collect::<Vec<_>>();

    assert_eq!(trace_ids(TraceQuery::default().with_limit(2)), [2, 3]);
    assert_eq!(trace_ids(TraceQuery::default().with_limit(0)), [0; 0]);
    assert_eq!(trace_ids(TraceQuery::default().with_service("postgres-proxy")), [1], "any span's service");
    assert_eq!(trace_ids(TraceQuery::default().with_service("checkout")), [2, 3, 1]);
    assert_eq!(trace_ids(TraceQuery::default().with_service("nobody")), [0; 0]);
    assert_eq!(trace_ids(TraceQuery::default().with_name("cache.get")), [2], "any span's name");
    assert_eq!(trace_ids(TraceQuery::default().with_name("cache")), [0; 0], "names match exactly");
    assert_eq!(trace_ids(TraceQuery::default().with_min_duration(Duration::from_millis(22))), [2, 3, 1]);
    assert_eq!(trace_ids(TraceQuery::default().with_min_duration(Duration::from_millis(23))), [3, 1]);
    assert_eq!(trace_ids(TraceQuery::default().with_error(true)), [1]);
    assert_eq!(trace_ids(TraceQuery::default().with_error(false)), [2, 3]);
    assert_eq!(
        trace_ids(TraceQuery::default().with_service("checkout").with_error(false).with_limit(1)),
        [2]
    );
}

#[test]
fn query_ties_on_start_order_by_trace_id() {
    let store = SpanStore::new(8);
    for trace in [5, 3, 9, 1] {
        store.insert(span_in(trace, 1, None, "same start", 0, 1));
    }
    let ids: Vec<u128> =
        store.query(&TraceQuery::default().with_limit(3)).iter().map(|s| s.trace_id.0).collect();
    assert_eq!(ids, [1, 3, 5]);
}

#[test]
fn concurrent_inserts_stay_bounded_and_consistent() {
    let store = SpanStore::new(1_000);
    let threads: u32 = 4;
    let per_thread: u32 = 2_000;
    thread::scope(|scope| {
        for thread in 0..threads {
            let store = store.clone();
            scope.spawn(move || {
                for i in 0..per_thread {
                    // Each thread interleaves a handful of traces, as concurrent requests do.
                    let trace = u128::from(thread * 100 + i % 10) + 1;
                    store.insert(span_in(trace, u64::from(i) + 1, None, "op", u64::from(i), 1));
                }
            });
        }
        // A reader querying while the writers insert.
        let reader = store.clone();
        scope.spawn(move || {
            for _ in 0..50 {
                for summary in reader.query(&TraceQuery::default().with_limit(5)) {
                    assert!(summary.span_count >= 1);
                }
            }
        });
    });
    let total = u64::from(threads * per_thread);
    assert_eq!(store.len(), 1_000);
    assert_eq!(store.evicted_total(), total - 1_000);
    assert_consistent(&store);
    let stored: usize =
        store.query(&TraceQuery::default().with_limit(usize::MAX)).iter().map(|s| s.span_count).sum();
    assert_eq!(stored, 1_000);
}

#[test]
fn sort_puts_parents_first_even_without_a_root() {
    let mut spans = vec![
        span(4, Some(3), "c", 5, 1),
        span(3, Some(2), "b", 5, 2),
        span(2, Some(99), "a", 5, 3),
        span(5, Some(2), "early", 1, 3),
    ];
    sort_spans(&mut spans);
    assert_eq!(spans.iter().map(|s| s.span_id).collect::<Vec<_>>(), [5, 2, 3, 4].map(SpanId));
}
