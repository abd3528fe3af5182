//! The test suite every backend passes. Each backend's test file calls [`run`] with a fresh, empty store
//! and a way to run raw SQL against it (to tamper with rows the way an intruder would).
#![allow(clippy::unwrap_used, dead_code)] // Test helpers unwrap: a failure is the test failing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sightline_audit::retention::{self, RetentionPolicy};
use sightline_audit::verify::{ProblemKind, verify};
use sightline_audit::{
    AuditEvent, AuditStore, AuditWriter, Facet, Hash, Outcome, Query, Redaction, Severity, StoredEvent,
    WriteError, WriterConfig,
};
use sightline_core::Registry;

/// The seqs of every event matching `query`, newest first, read in pages of `page_size` by cursor.
pub async fn all_pages<S: AuditStore>(store: &S, query: &Query, page_size: usize) -> Vec<i64> {
    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let page = store.search(query, page_size, cursor).await.unwrap();
        seen.extend(page.events.iter().map(|e| e.seq));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    seen
}

/// `events` chained from the start of a trail (seq 1, after the genesis hash), for `AuditStore::append`
/// without a writer (and so without its indexer).
pub fn chained(events: impl IntoIterator<Item = AuditEvent>) -> Vec<StoredEvent> {
    let mut prev = Hash::GENESIS;
    (1..)
        .zip(events)
        .map(|(seq, event)| {
            let stored = StoredEvent::chain(seq, event, prev);
            prev = stored.hash;
            stored
        })
        .collect()
}

/// Runs raw SQL (placeholders-free) against the store's database.
pub type Exec = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

fn at(minutes_ago: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(minutes_ago * 60)
}

fn event(action: &str, actor: &str, outcome: Outcome, minutes_ago: u64, message: &str) -> AuditEvent {
    AuditEvent::builder(action, actor)
        .outcome(outcome)
        .timestamp(at(minutes_ago))
        .target("repository", "42")
        .component("api")
        .message(message)
        .attribute("ip_count", 1)
        .build()
        .unwrap()
}

fn config() -> WriterConfig {
    WriterConfig { index_interval: Duration::from_millis(20), ..WriterConfig::default() }
}

fn q(text: &str) -> Query {
    Query::parse(text, SystemTime::now()).unwrap()
}

/// Everything that does not tamper.
pub async fn ingest_search_and_count<S: AuditStore>(store: S) {
    let store = Arc::new(store);
    let registry = Registry::new();
    let (writer, task) = AuditWriter::start(store.clone(), config(), Some(&registry)).await.unwrap();
    let events = vec![
        event("auth.login", "alice", Outcome::Success, 50, "alice logged in from the office"),
        event("auth.login", "mallory", Outcome::Failure, 40, "bad password for mallory"),
        event("auth.logout", "alice", Outcome::Success, 30, "alice logged out"),
        event("scan.start", "ci-bot", Outcome::Success, 20, "nightly scan started"),
        event("scan.finish", "ci-bot", Outcome::Error, 10, "scan failed: disk full on worker-3"),
        event("repo.delete", "mallory", Outcome::Denied, 5, "delete refused: not an owner"),
    ];
    let ids = writer.record_all_durable(events.clone()).await.unwrap();
    assert_eq!(ids, events.iter().map(|e| e.id).collect::<Vec<_>>());
    assert_eq!(store.count().await.unwrap(), 6);
    // Field filters see committed events at once.
    let page = store.search(&q("actor:alice"), 10, None).await.unwrap();
    let actions: Vec<&str> = page.events.iter().map(|e| e.event.action.as_str()).collect();
    assert_eq!(actions, ["auth.logout", "auth.login"], "newest first");
    assert_eq!(store.search(&q("action:auth.*"), 10, None).await.unwrap().events.len(), 3);
    assert_eq!(store.search(&q("action:*.start"), 10, None).await.unwrap().events.len(), 1);
    assert_eq!(
        store.search(&q("outcome:failure"), 10, None).await.unwrap().events[0].event.actor.id,
        "mallory"
    );
    assert_eq!(store.search(&q("since:15m"), 10, None).await.unwrap().events.len(), 2);
    assert_eq!(store.search(&q("since:45m until:25m"), 10, None).await.unwrap().events.len(), 2);
    assert_eq!(
        store.search(&q("target:repository/42 component:api"), 10, None).await.unwrap().events.len(),
        6
    );
    assert!(store.search(&q("actor:nobody"), 10, None).await.unwrap().events.is_empty());
    // Full text is searchable within the indexing interval.
    let mut found = Vec::new();
    for _ in 0..100 {
        found = store.search(&q("\"disk full\""), 10, None).await.unwrap().events;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(found.len(), 1, "phrase search");
    assert_eq!(found[0].event.action, "scan.finish");
    assert_eq!(store.search(&q("password actor:mallory"), 10, None).await.unwrap().events.len(), 1);
    assert!(
        store.search(&q("\"full disk\""), 10, None).await.unwrap().events.is_empty(),
        "phrases keep order"
    );
    // Cursor pagination: pages of two cover everything once, newest first.
    assert_eq!(all_pages(store.as_ref(), &Query::default(), 2).await, [6, 5, 4, 3, 2, 1]);
    // Counts grouped by a field.
    let counts = store.count_by(&Query::default(), Facet::Actor, 10).await.unwrap();
    assert_eq!(counts[0].1, 2);
    assert_eq!(counts.iter().map(|c| c.1).sum::<u64>(), 6);
    let outcomes = store.count_by(&q("actor:mallory"), Facet::Outcome, 10).await.unwrap();
    assert_eq!(outcomes, [("denied".to_owned(), 1), ("failure".to_owned(), 1)]);
    // The chain verifies.
    let report = verify(store.as_ref()).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checked, 6);
    // Metrics.
    let text = sightline_export::render(&registry.snapshot(), sightline_export::Format::PrometheusText);
    assert!(text.contains("sightline_audit_events_total{outcome=\"success\"} 3"), "{text}");
    assert!(
        text.contains("sightline_security_events_total{event_type=\"auth.login\",result=\"failure\"} 1"),
        "{text}"
    );
    assert!(text.contains("sightline_security_events_total{event_type=\"repo.delete\",result=\"denied\"} 1"));
    assert!(text.contains("sightline_audit_commit_seconds_count 1"), "{text}");
    writer.shutdown(task).await;
}

/// A batch with an id that is already stored fails alone; nothing of it is stored.
pub async fn a_rejected_batch_stores_nothing<S: AuditStore>(store: S) {
    let store = Arc::new(store);
    let (writer, task) = AuditWriter::start(store.clone(), config(), None).await.unwrap();
    let first = event("auth.login", "alice", Outcome::Success, 1, "one");
    writer.record_durable(first.clone()).await.unwrap();
    let fresh = event("auth.login", "bob", Outcome::Success, 1, "two");
    let error = writer.record_all_durable(vec![fresh.clone(), first.clone()]).await.unwrap_err();
    assert!(matches!(error, WriteError::Duplicate(_)), "{error}");
    assert_eq!(store.count().await.unwrap(), 1, "nothing of the refused batch");
    // Invalid events are refused before queueing, naming the field.
    let mut bad = event("auth.login", "alice", Outcome::Success, 1, "x");
    bad.action = "Auth Login".into();
    let error = writer.record_all_durable(vec![fresh.clone(), bad]).await.unwrap_err();
    assert!(error.to_string().contains("field `action`"), "{error}");
    // The chain carries on without a gap.
    writer.record_durable(fresh).await.unwrap();
    let report = verify(store.as_ref()).await.unwrap();
    assert!(report.ok && report.checked == 2, "{report:?}");
    writer.shutdown(task).await;
}

/// Redaction on ingest, per field.
pub async fn redaction_on_ingest<S: AuditStore>(store: S) {
    let store = Arc::new(store);
    let (writer, task) = AuditWriter::start(store.clone(), config(), None).await.unwrap();
    let e = AuditEvent::builder("auth.login", "alice")
        .message("login for alice@example.com")
        .attribute("password", "hunter2")
        .attribute("note", "card 4111 1111 1111 1111")
        .user_agent("curl/8 alice@example.com")
        .build()
        .unwrap();
    writer.record_durable(e).await.unwrap();
    let stored = &store.scan(0, 10).await.unwrap()[0].event;
    assert_eq!(stored.message, "login for [REDACTED:email]");
    assert_eq!(stored.attributes["password"], "[REDACTED]");
    assert_eq!(stored.attributes["note"], "card [REDACTED:card]");
    assert_eq!(stored.actor.user_agent.as_deref(), Some("curl/8 alice@example.com"), "not chosen by default");
    writer.shutdown(task).await;
}

/// Many concurrent writers: every acknowledged event is stored exactly once, in one unbroken chain.
pub async fn concurrent_writers_build_one_chain<S: AuditStore>(store: S) {
    let store = Arc::new(store);
    let config = WriterConfig { redaction: Redaction::off(), ..config() };
    let (writer, task) = AuditWriter::start(store.clone(), config, None).await.unwrap();
    let mut handles = Vec::new();
    for w in 0..8 {
        let writer = writer.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..250 {
                let e = event("job.run", &format!("worker-{w}"), Outcome::Success, 0, &format!("run {i}"));
                if i % 50 == 0 {
                    ids.extend(writer.record_all_durable(vec![e]).await.unwrap());
                } else {
                    ids.push(writer.record(e).await.unwrap());
                }
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for handle in handles {
        ids.extend(handle.await.unwrap());
    }
    writer.shutdown(task).await; // drains
    assert_eq!(store.count().await.unwrap(), 2000);
    let report = verify(store.as_ref()).await.unwrap();
    assert!(report.ok && report.checked == 2000, "{report:?}");
    let stored: std::collections::HashSet<_> =
        store.scan(0, 5000).await.unwrap().iter().map(|s| s.event.id).collect();
    assert!(ids.iter().all(|id| stored.contains(id)));
}

/// Refusals in the middle of a stream: a batch refused in part (here: units holding an id already stored,
/// mixed with other writers' events) leaves a head other than its chaining foresaw. Every accepted event
/// must still be stored once, in one chain without a gap.
pub async fn refusals_mid_stream_keep_one_chain<S: AuditStore>(store: S) {
    let store = Arc::new(store);
    let config = WriterConfig { redaction: Redaction::off(), max_batch: 64, ..config() };
    let (writer, task) = AuditWriter::start(store.clone(), config, None).await.unwrap();
    let known = event("auth.login", "alice", Outcome::Success, 0, "first");
    writer.record_durable(known.clone()).await.unwrap();
    let mut handles = Vec::new();
    for w in 0..4 {
        let writer = writer.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..300 {
                let e = event("job.run", &format!("worker-{w}"), Outcome::Success, 0, &format!("run {i}"));
                ids.push(writer.record(e).await.unwrap());
            }
            ids
        }));
    }
    let refuser = {
        let writer = writer.clone();
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            for i in 0..30 {
                let fresh = event("job.run", "refuser", Outcome::Success, 0, &format!("fresh {i}"));
                let error = writer.record_all_durable(vec![fresh, known.clone()]).await.unwrap_err();
                assert!(matches!(error, WriteError::Duplicate(_)), "{error}");
                // A unit of its own, accepted, between the refused ones.
                let alone = event("job.run", "refuser", Outcome::Success, 0, &format!("alone {i}"));
                accepted.extend(writer.record_all_durable(vec![alone]).await.unwrap());
            }
            accepted
        })
    };
    let mut ids = refuser.await.unwrap();
    for handle in handles {
        ids.extend(handle.await.unwrap());
    }
    writer.shutdown(task).await;
    assert_eq!(store.count().await.unwrap(), 1 + 1_200 + 30);
    let report = verify(store.as_ref()).await.unwrap();
    assert!(report.ok && report.checked == 1 + 1_200 + 30, "{report:?}");
    let stored: std::collections::HashSet<_> =
        store.scan(0, 5_000).await.unwrap().iter().map(|s| s.event.id).collect();
    assert!(ids.iter().all(|id| stored.contains(id)));
}

/// Tampering is found and located; retention keeps the rest verifiable.
pub async fn verify_finds_tampering_and_retention_keeps_the_chain<S: AuditStore>(store: S, exec: Exec) {
    let store = Arc::new(store);
    let (writer, task) = AuditWriter::start(store.clone(), config(), None).await.unwrap();
    for i in 0..10 {
        writer
            .record_durable(event("doc.edit", "alice", Outcome::Success, 100 - i * 10, &format!("edit {i}")))
            .await
            .unwrap();
    }
    assert!(verify(store.as_ref()).await.unwrap().ok);

    // Retention by count: keep the newest 7; a checkpoint covers the 3 deleted.
    let policy = RetentionPolicy { max_events: Some(7), batch: 2, ..Default::default() };
    assert_eq!(retention::apply(store.as_ref(), &policy, SystemTime::now()).await.unwrap(), 3);
    assert_eq!(store.count().await.unwrap(), 7);
    let report = verify(store.as_ref()).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.from_seq, report.checked), (3, 7));
    // By age: events are 100, 90, ... 10 minutes old; keep the last 35 minutes (3 events).
    let policy =
        RetentionPolicy { max_age: Some(Duration::from_secs(35 * 60)), batch: 100, ..Default::default() };
    assert_eq!(retention::apply(store.as_ref(), &policy, SystemTime::now()).await.unwrap(), 4);
    assert!(verify(store.as_ref()).await.unwrap().ok);
    // The writer continues the chain after retention.
    writer.record_durable(event("doc.edit", "alice", Outcome::Success, 0, "edit 10")).await.unwrap();
    writer.shutdown(task).await;
    let report = verify(store.as_ref()).await.unwrap();
    assert!(report.ok && report.checked == 4 && report.head_seq == 11, "{report:?}");

    // Altered: a message edited in place.
    exec("UPDATE audit_events SET message = 'nothing to see' WHERE seq = 9".into()).await;
    let report = verify(store.as_ref()).await.unwrap();
    let problem = report.problem.unwrap();
    assert_eq!((problem.kind, problem.seq), (ProblemKind::Altered, 9));
    assert!(problem.id.is_some());
    assert_eq!(report.checked, 2);
    exec("UPDATE audit_events SET message = 'edit 8' WHERE seq = 9".into()).await;
    assert!(verify(store.as_ref()).await.unwrap().ok, "restored");

    // Reordered: two events swap places (every column but seq).
    exec("UPDATE audit_events SET seq = -9 WHERE seq = 9".into()).await;
    exec("UPDATE audit_events SET seq = 9 WHERE seq = 10".into()).await;
    exec("UPDATE audit_events SET seq = 10 WHERE seq = -9".into()).await;
    let problem = verify(store.as_ref()).await.unwrap().problem.unwrap();
    assert_eq!((problem.kind, problem.seq), (ProblemKind::Reordered, 9));

    // Missing: an event deleted.
    exec("DELETE FROM audit_events WHERE seq = 9".into()).await;
    let problem = verify(store.as_ref()).await.unwrap().problem.unwrap();
    assert_eq!((problem.kind, problem.seq), (ProblemKind::Missing, 9));
    assert!(problem.detail.contains("events 9 to 9 are missing"), "{}", problem.detail);
}

/// Severity filters.
pub async fn severity_filters<S: AuditStore>(store: S) {
    let store = Arc::new(store);
    let (writer, task) = AuditWriter::start(store.clone(), config(), None).await.unwrap();
    for (i, severity) in Severity::ALL.into_iter().enumerate() {
        let e = AuditEvent::builder("alert.fire", "rules")
            .severity(severity)
            .message(format!("alert {i}"))
            .build()
            .unwrap();
        writer.record_durable(e).await.unwrap();
    }
    assert_eq!(store.search(&q("severity:high"), 10, None).await.unwrap().events.len(), 1);
    assert_eq!(store.search(&q("min_severity:medium"), 10, None).await.unwrap().events.len(), 3);
    writer.shutdown(task).await;
}

/// Events written by [`full_text_plans`].
pub const PLAN_EVENTS: usize = 5_000;
/// In every other event: dense enough for a walk of the time index.
pub const DENSE_WORD: &str = "common";
/// In every event.
pub const EVERY_WORD: &str = "every";
/// In the oldest 2,100 events only: the newest events a walk meets first hold none of it.
pub const OLD_WORD: &str = "old";
/// In one event of a hundred: few enough to sort.
pub const RARE_WORD: &str = "sparse";

/// Full-text searches give the same pages whichever plan a store picks: few matches or many, dense only far
/// back, a time range,
/// a cursor, field filters, several terms, and events whose time is out of step with their position (old
/// events imported late, and early events stamped in the future), which a walk of the time index meets
/// outside the window of matches it looked at first. Returns the store, loaded, so a backend's own test
/// can check which plans these searches take.
pub async fn full_text_plans<S: AuditStore>(store: S) -> Arc<S> {
    let store = Arc::new(store);
    let config = WriterConfig { redaction: Redaction::off(), ..config() };
    let (writer, task) = AuditWriter::start(store.clone(), config, None).await.unwrap();
    let n = PLAN_EVENTS as u64;
    // Whole seconds, so that the time ranges below fall between events, as stored (to the microsecond).
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(now - 10 * n);
    let events: Vec<AuditEvent> = (0..n)
        .map(|i| {
            // Two events to a second (ties are broken by seq), except: events 10..20 stamped among the
            // newest ones, and the last 30 stamped among the 150 before them.
            let secs = match i {
                10..20 => n - 100 + (i - 10) * 7,
                _ if i >= n - 30 => n - 150 + (i - (n - 30)) * 3,
                _ => i / 2 * 2,
            };
            let mut words = vec!["filler"];
            if i % 2 == 0 {
                words.push(DENSE_WORD);
            }
            if i % 100 == 0 {
                words.push(RARE_WORD);
            }
            if i < 2_100 {
                words.push(OLD_WORD);
            }
            words.push(EVERY_WORD);
            AuditEvent::builder("doc.read", if i % 3 == 0 { "alice" } else { "bob" })
                .timestamp(base + Duration::from_secs(secs))
                .message(words.join(" "))
                .build()
                .unwrap()
        })
        .collect();
    for chunk in events.chunks(1000) {
        writer.record_all_durable(chunk.to_vec()).await.unwrap();
    }
    writer.shutdown(task).await;
    while store.index_pending(100_000).await.unwrap() > 0 {}

    let all = store.scan(0, PLAN_EVENTS + 1).await.unwrap();
    assert_eq!(all.len(), PLAN_EVENTS);
    let at = |secs: u64| base + Duration::from_secs(secs);
    let cases: Vec<(&str, Query)> = vec![
        ("dense", Query { terms: vec![DENSE_WORD.into()], ..Query::default() }),
        ("every", Query { terms: vec![EVERY_WORD.into()], ..Query::default() }),
        ("old", Query { terms: vec![OLD_WORD.into()], ..Query::default() }),
        ("rare", Query { terms: vec![RARE_WORD.into()], ..Query::default() }),
        ("none", Query { terms: vec!["absent".into()], ..Query::default() }),
        ("two terms", Query { terms: vec![DENSE_WORD.into(), RARE_WORD.into()], ..Query::default() }),
        (
            "dense in a time range",
            Query {
                terms: vec![DENSE_WORD.into()],
                since: Some(at(1_000)),
                until: Some(at(3_000)),
                ..Query::default()
            },
        ),
        (
            "dense until",
            Query { terms: vec![DENSE_WORD.into()], until: Some(at(n - 120)), ..Query::default() },
        ),
        (
            "dense in an empty range",
            Query { terms: vec![DENSE_WORD.into()], since: Some(at(20 * n)), ..Query::default() },
        ),
        (
            "dense by one actor",
            Query { terms: vec![DENSE_WORD.into()], actor: Some("alice".into()), ..Query::default() },
        ),
    ];
    for (name, query) in &cases {
        let mut expected: Vec<(i64, i64)> = all
            .iter()
            .filter(|s| {
                let e = &s.event;
                let words: Vec<&str> = e.message.split(' ').collect();
                query.terms.iter().all(|t| words.contains(&t.as_str()))
                    && query.actor.as_ref().is_none_or(|a| *a == e.actor.id)
                    && query.since.is_none_or(|since| e.timestamp >= since)
                    && query.until.is_none_or(|until| e.timestamp < until)
            })
            .map(|s| (s.event.timestamp_micros(), s.seq))
            .collect();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        let expected: Vec<i64> = expected.into_iter().map(|(_, seq)| seq).collect();
        for page_size in [100, 7] {
            let mut seen = Vec::new();
            let mut cursor = None;
            // Pages of 7: the first 30 are enough to cross the out-of-step events.
            let pages = if page_size == 100 { usize::MAX } else { 30 };
            for _ in 0..pages {
                let page = store.search(query, page_size, cursor).await.unwrap();
                assert!(page.events.len() <= page_size);
                seen.extend(page.events.iter().map(|e| e.seq));
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let want = if pages == usize::MAX { &expected[..] } else { &expected[..seen.len()] };
            assert_eq!(seen, want, "{name}, pages of {page_size}");
            assert!(!seen.is_empty() || expected.is_empty(), "{name}");
        }
        // Counting agrees with searching.
        let counted: u64 =
            store.count_by(query, Facet::Outcome, 10).await.unwrap().iter().map(|(_, n)| n).sum();
        assert_eq!(counted, expected.len() as u64, "{name}: count_by");
    }
    store
}

/// `verify` over several batches (it reads two at a time): problems in the first, the second and a later
/// batch, and at a batch's edge, are found where they are, with the events before them counted.
pub async fn verify_spans_batches<S: AuditStore>(store: S, exec: Exec) {
    let store = Arc::new(store);
    let config = WriterConfig { redaction: Redaction::off(), ..config() };
    let (writer, task) = AuditWriter::start(store.clone(), config, None).await.unwrap();
    for chunk in 0..5 {
        let events = (0..5_000)
            .map(|i| event("doc.edit", "alice", Outcome::Success, 0, &format!("edit {chunk} {i}")))
            .collect();
        writer.record_all_durable(events).await.unwrap();
    }
    writer.shutdown(task).await;
    let report = verify(store.as_ref()).await.unwrap();
    assert!(report.ok && report.checked == 25_000 && report.head_seq == 25_000, "{report:?}");
    for seq in [3_000, 10_000, 10_001, 15_000, 24_999] {
        exec(format!("UPDATE audit_events SET message = 'nothing to see' WHERE seq = {seq}")).await;
        let report = verify(store.as_ref()).await.unwrap();
        let problem = report.problem.unwrap();
        assert_eq!((problem.kind, problem.seq, report.checked), (ProblemKind::Altered, seq, seq as u64));
        let (chunk, i) = ((seq - 1) / 5_000, (seq - 1) % 5_000);
        exec(format!("UPDATE audit_events SET message = 'edit {chunk} {i}' WHERE seq = {seq}")).await;
    }
    assert!(verify(store.as_ref()).await.unwrap().ok, "restored");
    exec("DELETE FROM audit_events WHERE seq = 20001".into()).await;
    let report = verify(store.as_ref()).await.unwrap();
    let problem = report.problem.unwrap();
    assert_eq!((problem.kind, problem.seq, report.checked), (ProblemKind::Missing, 20_001, 20_001));
}
