//! The store suite against SQLite files.
#![allow(clippy::unwrap_used)] // Test helpers unwrap: a failure is the test failing.

mod suite;

use std::sync::Arc;

use sightline_audit::SqliteStore;
use sightline_testkit::TempDir;

async fn fresh(dir: &TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("audit.db")).await.unwrap()
}

fn exec(store: &SqliteStore) -> suite::Exec {
    let pool = store.pool().clone();
    Arc::new(move |sql: String| {
        let pool = pool.clone();
        Box::pin(async move {
            sqlx::query(&sql).execute(&pool).await.unwrap();
        })
    })
}

#[tokio::test]
async fn ingest_search_and_count() {
    let dir = TempDir::new("audit-sqlite");
    suite::ingest_search_and_count(fresh(&dir).await).await;
}

#[tokio::test]
async fn a_rejected_batch_stores_nothing() {
    let dir = TempDir::new("audit-sqlite");
    suite::a_rejected_batch_stores_nothing(fresh(&dir).await).await;
}

#[tokio::test]
async fn redaction_on_ingest() {
    let dir = TempDir::new("audit-sqlite");
    suite::redaction_on_ingest(fresh(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_mid_stream_keep_one_chain() {
    let dir = TempDir::new("audit-sqlite");
    suite::refusals_mid_stream_keep_one_chain(fresh(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_build_one_chain() {
    let dir = TempDir::new("audit-sqlite");
    suite::concurrent_writers_build_one_chain(fresh(&dir).await).await;
}

#[tokio::test]
async fn verify_finds_tampering_and_retention_keeps_the_chain() {
    let dir = TempDir::new("audit-sqlite");
    let store = fresh(&dir).await;
    let exec = exec(&store);
    suite::verify_finds_tampering_and_retention_keeps_the_chain(store, exec).await;
}

#[tokio::test]
async fn severity_filters() {
    let dir = TempDir::new("audit-sqlite");
    suite::severity_filters(fresh(&dir).await).await;
}

#[tokio::test]
async fn reopening_continues_the_chain() {
    let dir = TempDir::new("audit-sqlite");
    {
        let store = Arc::new(fresh(&dir).await);
        let (writer, task) =
            sightline_audit::AuditWriter::start(store, Default::default(), None).await.unwrap();
        writer
            .record_durable(sightline_audit::AuditEvent::builder("a.b", "x").build().unwrap())
            .await
            .unwrap();
        writer.shutdown(task).await;
    }
    let store = Arc::new(fresh(&dir).await);
    let (writer, task) =
        sightline_audit::AuditWriter::start(store.clone(), Default::default(), None).await.unwrap();
    writer.record_durable(sightline_audit::AuditEvent::builder("a.c", "x").build().unwrap()).await.unwrap();
    writer.shutdown(task).await;
    let report = sightline_audit::verify::verify(store.as_ref()).await.unwrap();
    assert!(report.ok && report.checked == 2, "{report:?}");
}

#[tokio::test]
async fn shutdown_drains_while_other_handles_live_on() {
    let dir = TempDir::new("audit-sqlite");
    let store = Arc::new(fresh(&dir).await);
    let (writer, task) =
        sightline_audit::AuditWriter::start(store.clone(), Default::default(), None).await.unwrap();
    let other = writer.clone();
    for i in 0..100 {
        writer
            .record(sightline_audit::AuditEvent::builder("a.b", format!("u{i}")).build().unwrap())
            .await
            .unwrap();
    }
    tokio::time::timeout(std::time::Duration::from_secs(10), writer.shutdown(task))
        .await
        .expect("shutdown ends");
    use sightline_audit::AuditStore;
    assert_eq!(store.count().await.unwrap(), 100, "everything queued was committed");
    let late =
        other.record_durable(sightline_audit::AuditEvent::builder("a.b", "late").build().unwrap()).await;
    assert!(matches!(late, Err(sightline_audit::WriteError::Stopped)), "{late:?}");
}

#[tokio::test]
async fn full_text_plans() {
    use sightline_audit::sqlite::TextPlan;
    use sightline_audit::{AuditStore, Query};
    let dir = TempDir::new("audit-sqlite");
    let store = suite::full_text_plans(fresh(&dir).await).await;
    let terms = |word: &str| Query { terms: vec![word.into()], ..Query::default() };
    // The suite's searches took both plans.
    assert_eq!(store.text_plan(&terms(suite::RARE_WORD), None, 101).await.unwrap(), TextPlan::Sort);
    assert_eq!(store.text_plan(&terms("absent"), None, 101).await.unwrap(), TextPlan::Sort);
    let by_actor = Query { actor: Some("alice".into()), ..terms(suite::DENSE_WORD) };
    assert_eq!(store.text_plan(&by_actor, None, 101).await.unwrap(), TextPlan::Sort);
    for word in [suite::DENSE_WORD, suite::EVERY_WORD, suite::OLD_WORD] {
        let plan = store.text_plan(&terms(word), None, 101).await.unwrap();
        assert!(matches!(plan, TextPlan::Walk { .. }), "{word}: {plan:?}");
    }
    // The old word's first segment holds fewer matches than a page (only the early events stamped late): the
    // walk went on.
    let TextPlan::Walk { events } = store.text_plan(&terms(suite::OLD_WORD), None, 101).await.unwrap() else {
        unreachable!()
    };
    let newest = store.search(&Query::default(), usize::try_from(events).unwrap(), None).await.unwrap();
    let held = newest.events.iter().filter(|e| e.event.message.contains(suite::OLD_WORD)).count();
    assert!(held < 101, "{held}");
    assert_eq!(store.search(&terms(suite::OLD_WORD), 100, None).await.unwrap().events.len(), 100);
}

/// Rows that the fast, row-hashing pass of `verify` cannot vouch for are checked as whole events, with the
/// same verdicts as before: an id in upper case is still the same UUID (and hashes as one), a hash of the
/// wrong length makes the row unreadable.
#[tokio::test]
async fn verify_reads_odd_rows_as_events() {
    use sightline_audit::{AuditEvent, AuditStore, AuditWriter, StoreError};
    let dir = TempDir::new("audit-sqlite");
    let store = Arc::new(fresh(&dir).await);
    let (writer, task) = AuditWriter::start(store.clone(), Default::default(), None).await.unwrap();
    let events = (0..20).map(|i| AuditEvent::builder("a.b", format!("u{i}")).build().unwrap()).collect();
    writer.record_all_durable(events).await.unwrap();
    writer.shutdown(task).await;
    let exec = exec(&store);
    exec("UPDATE audit_events SET id = upper(id) WHERE seq = 7".into()).await;
    let link = &store.scan_chain(6, 1).await.unwrap()[0];
    assert_ne!(link.computed, Some(link.hash), "the stored text is not the canonical one");
    let report = sightline_audit::verify::verify(store.as_ref()).await.unwrap();
    assert!(report.ok && report.checked == 20, "{report:?}");
    exec("UPDATE audit_events SET hash = x'00' WHERE seq = 12".into()).await;
    let error = sightline_audit::verify::verify(store.as_ref()).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { seq: 12, .. }), "{error}");
}

#[tokio::test]
async fn verify_spans_batches() {
    let dir = TempDir::new("audit-sqlite");
    let store = fresh(&dir).await;
    let exec = exec(&store);
    suite::verify_spans_batches(store, exec).await;
}

/// `scan_chain` reads a batch in two halves on two threads; gaps around and across the middle of a batch
/// are still found where they start, with the events before them counted.
#[tokio::test]
async fn verify_finds_gaps_around_the_middle_of_a_batch() {
    use sightline_audit::verify::ProblemKind;
    use sightline_audit::{AuditEvent, AuditWriter, Redaction, WriterConfig};
    let dir = TempDir::new("audit-sqlite");
    let store = Arc::new(fresh(&dir).await);
    let config = WriterConfig { redaction: Redaction::off(), ..WriterConfig::default() };
    let (writer, task) = AuditWriter::start(store.clone(), config, None).await.unwrap();
    let events = (0..12_000).map(|i| AuditEvent::builder("a.b", format!("u{i}")).build().unwrap()).collect();
    writer.record_all_durable(events).await.unwrap();
    writer.shutdown(task).await;
    let links = sightline_audit::AuditStore::scan_chain(store.as_ref(), 0, 10_000).await.unwrap();
    assert_eq!(links.iter().map(|l| l.seq).collect::<Vec<_>>(), (1..=10_000).collect::<Vec<_>>());
    assert!(links.iter().all(|l| l.computed == Some(l.hash)));
    let exec = exec(&store);
    // Across the middle of the first batch (seq 5,000).
    exec("DELETE FROM audit_events WHERE seq BETWEEN 4990 AND 5020".into()).await;
    let links = sightline_audit::AuditStore::scan_chain(store.as_ref(), 0, 10_000).await.unwrap();
    assert!(links.windows(2).all(|w| w[0].seq < w[1].seq) && links.len() <= 10_000);
    let report = sightline_audit::verify::verify(store.as_ref()).await.unwrap();
    let problem = report.problem.unwrap();
    assert_eq!((problem.kind, problem.seq, report.checked), (ProblemKind::Missing, 4_990, 4_990));
    // A gap longer than half a batch: the first half is empty.
    exec("DELETE FROM audit_events WHERE seq BETWEEN 100 AND 6000".into()).await;
    let links = sightline_audit::AuditStore::scan_chain(store.as_ref(), 0, 10_000).await.unwrap();
    assert_eq!(links.first().map(|l| l.seq), Some(1));
    assert_eq!(links.get(99).map(|l| l.seq), Some(6_001), "the events after the gap follow");
    let problem = sightline_audit::verify::verify(store.as_ref()).await.unwrap().problem.unwrap();
    assert_eq!((problem.kind, problem.seq), (ProblemKind::Missing, 100));
}
