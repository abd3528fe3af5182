//! PostgreSQL-only behaviour of `PgStore` that the shared suite does not see: `scan_chain`'s two-halves
//! read (the same links as one read, gaps or not) and the store's own `VACUUM` after a burst. Each test
//! runs in a schema of its own, dropped after it; without `SIGHTLINE_TEST_POSTGRES_URL` they are skipped.
#![allow(clippy::unwrap_used)] // Test helpers unwrap: a failure is the test failing.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_audit::store::{AuditStore, ChainLink};
use sightline_audit::{AuditEvent, AuditWriter, Facet, Query, Redaction, WriterConfig};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// A schema made for one test, dropped with everything in it when the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    async fn create() -> Option<Self> {
        let url = sightline_testkit::postgres_url()?;
        let name = format!("audit_pg_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        Some(Self { url, name })
    }

    fn options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url).unwrap().options([("search_path", self.name.as_str())])
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
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
