//! The store suite against PostgreSQL, each test in a schema of its own (created for it, dropped after it),
//! so tests run in parallel and leave nothing behind; then the PostgreSQL-only behaviour of `PgStore` the
//! suite does not see: `scan_chain`'s two-halves read (the same links as one read, gaps or not) and the
//! store's own `VACUUM` after a burst.
#![allow(clippy::unwrap_used)] // Test helpers unwrap: a failure is the test failing.

mod suite;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_audit::store::{AuditStore, ChainLink};
use sightline_audit::{AuditEvent, AuditWriter, Facet, PgStore, Query, Redaction, WriterConfig};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// A schema made for one test, dropped (with everything in it) when the test ends, passed or failed.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    /// A new empty schema on the test database; `None` (after the testkit's SKIPPED) without one.
    async fn create() -> Option<Self> {
        let url = sightline_testkit::postgres_url()?;
        let name = format!("audit_t_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        Some(Self { url, name })
    }

    /// Connection options whose `search_path` is this schema alone.
    fn options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url).unwrap().options([("search_path", self.name.as_str())])
    }

    async fn store(&self) -> PgStore {
        PgStore::connect_with(self.options()).await.unwrap()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop runs outside async code (and also while a failed test unwinds), so the cleanup gets a
        // thread and a runtime of its own. The lock timeout keeps a transaction left open by a failed test
        // from hanging it; the schema is then left behind, and named in the output.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&url).await?;
                sqlx::query("SET lock_timeout = '10s'").execute(&mut conn).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).execute(&mut conn).await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}

fn exec(store: &PgStore) -> suite::Exec {
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
    let Some(schema) = Schema::create().await else { return };
    suite::ingest_search_and_count(schema.store().await).await;
}

#[tokio::test]
async fn a_rejected_batch_stores_nothing() {
    let Some(schema) = Schema::create().await else { return };
    suite::a_rejected_batch_stores_nothing(schema.store().await).await;
}

#[tokio::test]
async fn redaction_on_ingest() {
    let Some(schema) = Schema::create().await else { return };
    suite::redaction_on_ingest(schema.store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_mid_stream_keep_one_chain() {
    let Some(schema) = Schema::create().await else { return };
    suite::refusals_mid_stream_keep_one_chain(schema.store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_build_one_chain() {
    let Some(schema) = Schema::create().await else { return };
    suite::concurrent_writers_build_one_chain(schema.store().await).await;
}

#[tokio::test]
async fn verify_finds_tampering_and_retention_keeps_the_chain() {
    let Some(schema) = Schema::create().await else { return };
    let store = schema.store().await;
    let exec = exec(&store);
    suite::verify_finds_tampering_and_retention_keeps_the_chain(store, exec).await;
}

#[tokio::test]
async fn severity_filters() {
    let Some(schema) = Schema::create().await else { return };
    suite::severity_filters(schema.store().await).await;
}

#[tokio::test]
async fn reopening_continues_the_chain() {
    let Some(schema) = Schema::create().await else { return };
    {
        let store = Arc::new(schema.store().await);
        let (writer, task) =
            sightline_audit::AuditWriter::start(store, Default::default(), None).await.unwrap();
        writer
            .record_durable(sightline_audit::AuditEvent::builder("a.b", "x").build().unwrap())
            .await
            .unwrap();
        writer.shutdown(task).await;
    }
    let store = Arc::new(schema.store().await);
    let (writer, task) =
        sightline_audit::AuditWriter::start(store.clone(), Default::default(), None).await.unwrap();
    writer.record_durable(sightline_audit::AuditEvent::builder("a.c", "x").build().unwrap()).await.unwrap();
    writer.shutdown(task).await;
    let report = sightline_audit::verify::verify(store.as_ref()).await.unwrap();
    assert!(report.ok && report.checked == 2, "{report:?}");
}

#[tokio::test]
async fn shutdown_drains_while_other_handles_live_on() {
    let Some(schema) = Schema::create().await else { return };
    let store = Arc::new(schema.store().await);
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

/// The searches of `full_text_words_phrases_and_plans`, each with every matching seq in order (all pages
/// of 100), and the count of `common` events by actor.
async fn text_answers(store: &PgStore) -> Vec<(String, Vec<i64>)> {
    let now = std::time::SystemTime::now();
    let mut answers = Vec::new();
    for text in TEXT_SEARCHES {
        let seqs = suite::all_pages(store, &Query::parse(text, now).unwrap(), 100).await;
        answers.push((text.to_string(), seqs));
    }
    let counts = store.count_by(&Query::parse("common", now).unwrap(), Facet::Actor, 10).await.unwrap();
    answers.push(("count_by common".into(), counts.iter().map(|(_, n)| *n as i64).collect()));
    answers
}

const TEXT_SEARCHES: &[&str] = &[
    "example",
    "passwd",
    "etc/passwd",
    "alice@example.com",
    "EXAMPLE",
    "\"https example com\"",
    "passwd/etc",
    "ÜBERLAUF",
    "disk note",
    "\"full note\"",
    "\"::\"",
    "\"::\" disk",
    "common",
    "\"common run 17\"",
    "key",
    "kilo",
    "IDLE",
    "\"run run\"",
];

/// PostgreSQL's own full-text rules: the words the store indexes (runs of letters and digits, lower-cased,
/// as SQLite's `unicode61`), phrases, and both plans of a newest-first text search. Every search gives the
/// same answer before the indexer has run (the store checks events past the index one by one), with half
/// of the events indexed, and with all of them.
#[tokio::test]
async fn full_text_words_phrases_and_plans() {
    let Some(schema) = Schema::create().await else { return };
    let store = Arc::new(schema.store().await);
    let mut events = vec![
        AuditEvent::builder("auth.login", "alice")
            .message("Login for alice@example.com reading /etc/passwd via https://example.com/a?b=1")
            .build()
            .unwrap(),
        AuditEvent::builder("disk.alert", "monitor")
            .message("disk full")
            .attribute("note", "Überlauf")
            .build()
            .unwrap(),
        // The Kelvin sign is `k` to the indexer; a Turkish locale's ILIKE does not fold `I` to `i`.
        AuditEvent::builder("x.y", "z").message("\u{212A}ey KILO Idle run run").build().unwrap(),
    ];
    for i in 0..300 {
        events.push(AuditEvent::builder("job.run", "ci").message(format!("common run {i}")).build().unwrap());
    }
    store.append(&suite::chained(events)).await.unwrap();

    let unindexed = text_answers(&store).await;
    assert_eq!(store.index_pending(150).await.unwrap(), 150);
    let half = text_answers(&store).await;
    while store.index_pending(10_000).await.unwrap() > 0 {}
    let indexed = text_answers(&store).await;
    assert_eq!(unindexed, indexed, "before indexing");
    assert_eq!(half, indexed, "half indexed");

    let answer = |text: &str| indexed.iter().find(|(t, _)| t == text).unwrap().1.clone();
    // Every word of an address, a path or a URL is a word; case does not matter; phrases keep order.
    for text in ["example", "passwd", "etc/passwd", "alice@example.com", "EXAMPLE", "\"https example com\""] {
        assert_eq!(answer(text), [1], "{text}");
    }
    assert!(answer("passwd/etc").is_empty(), "a phrase keeps its order");
    assert_eq!(answer("ÜBERLAUF"), [2], "lower case beyond ASCII");
    assert_eq!(answer("disk note"), [2], "terms anywhere, message or attributes");
    assert!(answer("\"full note\"").is_empty(), "a phrase does not run from message to attributes");
    assert!(answer("\"::\"").is_empty(), "a term without words matches nothing");
    assert!(answer("\"::\" disk").is_empty(), "... even next to one that matches");
    for text in ["key", "kilo", "IDLE", "\"run run\""] {
        assert_eq!(answer(text), [3], "{text}");
    }
    let vector: String = sqlx::query_scalar("SELECT doc::text FROM audit_fts WHERE seq = 2")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(vector, "'disk':1 'full':2 'note':4 'überlauf':5");
    // A common word: pages of 100 (the newest events checked one by one), then the last page (looked up
    // in the GIN index, as for a rare word) cover every match once, newest first.
    assert_eq!(answer("common"), (4..=303).rev().collect::<Vec<i64>>());
    assert_eq!(answer("\"common run 17\""), [21]);
    assert_eq!(answer("count_by common"), [300]);
}

/// A tail of unindexed events longer than one read (a stalled indexer): a rare word far back is found
/// (past thousands of events that contain it only inside longer words, so that they pass the `ILIKE` and
/// fail the word check), a common word pages through all of it in order, counts cover it, and all of it
/// answers as once indexed.
#[tokio::test]
async fn a_long_unindexed_tail_is_read_in_chunks() {
    let Some(schema) = Schema::create().await else { return };
    let store = Arc::new(schema.store().await);
    let n = 12_000_i64;
    let stored = suite::chained((1..=n).map(|seq| {
        let message = if seq == 3 { "needle in the hay".to_owned() } else { format!("haystack {seq}") };
        AuditEvent::builder("a.b", "x").message(message).build().unwrap()
    }));
    for chunk in stored.chunks(4_000) {
        store.append(chunk).await.unwrap();
    }
    let now = std::time::SystemTime::now();
    let answers = || async {
        let hay = store.search(&Query::parse("hay", now).unwrap(), 10, None).await.unwrap();
        let haystack = suite::all_pages(store.as_ref(), &Query::parse("haystack", now).unwrap(), 1_000).await;
        let counts = store.count_by(&Query::parse("hay", now).unwrap(), Facet::Actor, 10).await.unwrap();
        (hay.events.iter().map(|e| e.seq).collect::<Vec<_>>(), haystack, counts)
    };
    let unindexed = answers().await;
    assert_eq!(unindexed.0, [3]);
    assert_eq!(unindexed.1, (1..=n).rev().filter(|seq| *seq != 3).collect::<Vec<_>>());
    assert_eq!(unindexed.2, [("x".to_owned(), 1)]);
    while store.index_pending(5_000).await.unwrap() > 0 {}
    assert_eq!(answers().await, unindexed);
}

/// Under load the index runs behind the commits: an event acknowledged by the writer is found by search at
/// once all the same, while the indexer has not reached it.
#[tokio::test]
async fn acknowledged_events_are_found_before_they_are_indexed() {
    let Some(schema) = Schema::create().await else { return };
    let store = Arc::new(schema.store().await);
    // An indexer that waits an hour between passes (its first pass, at start, finds nothing).
    let config = WriterConfig { index_interval: Duration::from_secs(3600), ..WriterConfig::default() };
    let (writer, task) = AuditWriter::start(store.clone(), config, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let event =
        AuditEvent::builder("scan.start", "bob").message("scan of zebrafish started").build().unwrap();
    let id = writer.record_durable(event).await.unwrap();
    let indexed: i64 = sqlx::query_scalar("SELECT value FROM audit_meta WHERE key = 'fts_seq'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(indexed, 0, "the indexer has not run");
    let now = std::time::SystemTime::now();
    let page = store.search(&Query::parse("zebrafish actor:bob", now).unwrap(), 10, None).await.unwrap();
    assert_eq!(page.events.iter().map(|e| e.event.id).collect::<Vec<_>>(), [id]);
    let counts = store.count_by(&Query::parse("zebrafish", now).unwrap(), Facet::Actor, 10).await.unwrap();
    assert_eq!(counts, [("bob".to_owned(), 1)]);
    assert!(store.search(&Query::parse("zebra", now).unwrap(), 10, None).await.unwrap().events.is_empty());
    writer.shutdown(task).await;
}

#[tokio::test]
async fn full_text_plans() {
    let Some(schema) = Schema::create().await else { return };
    suite::full_text_plans(schema.store().await).await;
}

#[tokio::test]
async fn verify_spans_batches() {
    let Some(schema) = Schema::create().await else { return };
    let store = schema.store().await;
    let exec = exec(&store);
    suite::verify_spans_batches(store, exec).await;
}

/// Records `n` events through a writer (redaction off) and waits until they are committed and indexed.
async fn fill<S: AuditStore>(store: Arc<S>, n: usize) {
    let config = WriterConfig { redaction: Redaction::off(), ..WriterConfig::default() };
    let (writer, task) = AuditWriter::start(store, config, None).await.unwrap();
    let events: Vec<AuditEvent> = (0..n)
        .map(|i| {
            AuditEvent::builder("doc.edit", if i % 3 == 0 { "alice" } else { "bob" })
                .message(format!("edit number {i}"))
                .attribute("n", i)
                .build()
                .unwrap()
        })
        .collect();
    for chunk in events.chunks(5_000) {
        writer.record_all_durable(chunk.to_vec()).await.unwrap();
    }
    writer.shutdown(task).await;
}

/// What `scan_chain` must return: `scan`'s events, hashed.
async fn links_of_scan<S: AuditStore>(store: &S, after: i64, limit: usize) -> Vec<ChainLink> {
    store.scan(after, limit).await.unwrap().iter().map(ChainLink::of).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_chain_returns_the_links_scan_gives_with_or_without_gaps() {
    let Some(schema) = Schema::create().await else { return };
    let store = Arc::new(sightline_audit::PgStore::connect_with(schema.options()).await.unwrap());
    fill(store.clone(), 12_000).await;
    let exec = |sql: &'static str| {
        let pool = store.pool().clone();
        async move { sqlx::query(sql).execute(&pool).await.unwrap() }
    };
    // (after, limit): whole batches split in two, an odd limit, a batch running past the end, one too
    // small to split, a start in the middle.
    let cases = [(0, 10_000), (0, 4_001), (9_000, 10_000), (0, 1_999), (123, 2_000), (11_990, 10_000)];
    let check = |label: &'static str| {
        let store = store.clone();
        async move {
            for (after, limit) in cases {
                let links = store.scan_chain(after, limit).await.unwrap();
                assert_eq!(
                    links,
                    links_of_scan(store.as_ref(), after, limit).await,
                    "{label}: ({after}, {limit})"
                );
                assert!(
                    links.iter().all(|l| l.computed == Some(l.hash)),
                    "{label}: every link hashes as stored"
                );
            }
        }
    };
    check("no gaps").await;
    assert_eq!(store.scan_chain(0, 10_000).await.unwrap().len(), 10_000);
    // Gaps: the last event of the lower half, the first of the upper half, and a run that crosses from one
    // into the other. Whatever is missing, the next `limit` events are returned, as `scan` returns them.
    exec("DELETE FROM audit_events WHERE seq IN (5000, 5001) OR seq BETWEEN 2990 AND 3010").await;
    check("gaps").await;
    let links = store.scan_chain(0, 10_000).await.unwrap();
    assert_eq!((links.len(), links.last().map(|l| l.seq)), (10_000, Some(10_023)));
    // A row that no longer hashes as stored is returned all the same, with its own computed hash.
    exec("UPDATE audit_events SET message = 'changed' WHERE seq = 7000").await;
    let links = store.scan_chain(0, 10_000).await.unwrap();
    assert_eq!(links, links_of_scan(store.as_ref(), 0, 10_000).await);
    let changed = links.iter().find(|l| l.seq == 7_000).unwrap();
    assert!(changed.computed.is_some() && changed.computed != Some(changed.hash));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_vacuums_the_events_after_a_burst_once_indexing_caught_up() {
    let Some(schema) = Schema::create().await else { return };
    let store = sightline_audit::PgStore::connect_with(schema.options()).await.unwrap();
    let store = Arc::new(store.with_vacuum_after(Some(1_000)));
    fill(store.clone(), 3_000).await;
    let vacuumed = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relid = 'audit_events'::regclass",
        )
        .fetch_one(store.pool())
        .await
        .unwrap()
    };
    // The statistics that count inserts lag commits by up to a second or so; the indexer looks again each
    // time it finds nothing to index.
    let started = Instant::now();
    while !vacuumed().await {
        assert!(started.elapsed() < Duration::from_secs(30), "no VACUUM within 30 s");
        assert_eq!(store.index_pending(1_000).await.unwrap(), 0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_visible: bool =
        sqlx::query_scalar("SELECT relallvisible > 0 FROM pg_class WHERE oid = 'audit_events'::regclass")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(all_visible, "the visibility map is set");
    let counts = store.count_by(&Query::default(), Facet::Actor, 10).await.unwrap();
    assert_eq!(counts, vec![("bob".to_owned(), 2_000), ("alice".to_owned(), 1_000)]);
}
