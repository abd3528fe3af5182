//! SQLite only: the full-text index in a file of its own (`<name>-fts.db`). It is derived from the events,
//! so whatever happens to its file (missing, another trail's, ahead of the trail, an old store whose index
//! was in the events' file) the store rebuilds it and searches give what the events say.
#![allow(clippy::unwrap_used)] // Test helpers unwrap: a failure is the test failing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sightline_audit::sqlite::fts_path;
use sightline_audit::{
    AuditEvent, AuditStore, AuditWriter, Hash, Query, SqliteStore, StoredEvent, WriterConfig,
};
use sightline_testkit::TempDir;

fn words(word: &str) -> Query {
    Query { terms: vec![word.into()], ..Query::default() }
}

/// `n` events, each saying `common` and `<tag><i>`.
fn events(tag: &str, n: usize) -> Vec<AuditEvent> {
    (0..n)
        .map(|i| {
            AuditEvent::builder("doc.read", "alice")
                .message(format!("common {tag}{i}"))
                .attribute("tag", tag)
                .build()
                .unwrap()
        })
        .collect()
}

/// Stores `events` through a writer (which indexes them before it stops) and closes the store.
async fn fill(path: &Path, events: Vec<AuditEvent>) {
    let store = Arc::new(SqliteStore::open(path).await.unwrap());
    let (writer, task) = AuditWriter::start(store.clone(), WriterConfig::default(), None).await.unwrap();
    writer.record_all_durable(events).await.unwrap();
    writer.shutdown(task).await;
    store.pool().close().await;
}

async fn index_all(store: &SqliteStore) {
    while store.index_pending(1_000).await.unwrap() > 0 {}
}

async fn found(store: &SqliteStore, word: &str) -> Vec<i64> {
    let mut seqs: Vec<i64> =
        store.search(&words(word), 1_000, None).await.unwrap().events.iter().map(|e| e.seq).collect();
    seqs.sort_unstable();
    seqs
}

async fn fts_seq(store: &SqliteStore) -> i64 {
    sqlx::query_scalar("SELECT value FROM fts.audit_fts_meta WHERE key = 'fts_seq'")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn remove_fts(path: &Path) {
    let fts = fts_path(path);
    for suffix in ["", "-wal", "-shm"] {
        let mut name = fts.clone().into_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}

#[test]
fn the_index_file_sits_beside_the_events() {
    assert_eq!(fts_path(Path::new("/data/audit.db")), Path::new("/data/audit-fts.db"));
    assert_eq!(fts_path(Path::new("trail")), Path::new("trail-fts"));
    assert_eq!(fts_path(Path::new("a/b.c.sqlite")), Path::new("a/b.c-fts.sqlite"));
}

#[tokio::test]
async fn the_index_lives_in_its_own_file() {
    let dir = TempDir::new("audit-fts-file");
    let path = dir.path().join("audit.db");
    fill(&path, events("w", 30)).await;
    assert!(fts_path(&path).exists());
    let store = SqliteStore::open(&path).await.unwrap();
    let main: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM main.sqlite_master WHERE name LIKE 'audit_fts%'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(main, 0, "nothing of the index is left in the events' file");
    assert_eq!(fts_seq(&store).await, 30);
    assert_eq!(found(&store, "common").await, (1..=30).collect::<Vec<_>>());
    assert_eq!(found(&store, "w7").await, vec![8]);
}

/// Commits do not wait for indexing: a pass holding the index's write lock leaves the events' file free.
#[tokio::test]
async fn commits_go_on_while_the_index_is_written() {
    let dir = TempDir::new("audit-fts-lock");
    let store = SqliteStore::open(&dir.path().join("audit.db")).await.unwrap();
    let mut indexer = store.pool().begin().await.unwrap();
    sqlx::query("UPDATE fts.audit_fts_meta SET value = value WHERE key = 'fts_seq'")
        .execute(&mut *indexer)
        .await
        .unwrap();
    let batch: Vec<StoredEvent> = {
        let mut prev = Hash::GENESIS;
        events("x", 10)
            .into_iter()
            .zip(1..)
            .map(|(event, seq)| {
                let stored = StoredEvent::chain(seq, event, prev);
                prev = stored.hash;
                stored
            })
            .collect()
    };
    // The busy timeout is 10 s: an append that waited for the index's lock would time out here.
    tokio::time::timeout(Duration::from_secs(2), store.append(&batch)).await.expect("not blocked").unwrap();
    indexer.rollback().await.unwrap();
    assert_eq!(store.count().await.unwrap(), 10);
    index_all(&store).await;
    assert_eq!(found(&store, "x3").await, vec![4]);
}

#[tokio::test]
async fn a_missing_index_is_rebuilt() {
    let dir = TempDir::new("audit-fts-missing");
    let path = dir.path().join("audit.db");
    fill(&path, events("w", 25)).await;
    remove_fts(&path);
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(fts_seq(&store).await, 0);
    assert!(found(&store, "common").await.is_empty(), "nothing is indexed yet");
    index_all(&store).await;
    assert_eq!(found(&store, "common").await, (1..=25).collect::<Vec<_>>());
    // The writer does it on its own when it starts.
    store.pool().close().await;
    remove_fts(&path);
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let (writer, task) = AuditWriter::start(store.clone(), WriterConfig::default(), None).await.unwrap();
    writer.shutdown(task).await;
    assert_eq!(found(&store, "w24").await, vec![25]);
}

#[tokio::test]
async fn another_trails_index_is_not_trusted() {
    let dir = TempDir::new("audit-fts-foreign");
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    fill(&a, events("a", 40)).await;
    fill(&b, events("b", 20)).await;
    remove_fts(&b);
    std::fs::copy(fts_path(&a), fts_path(&b)).unwrap();
    let store = SqliteStore::open(&b).await.unwrap();
    assert!(found(&store, "a5").await.is_empty(), "the other trail's words are gone");
    index_all(&store).await;
    assert_eq!(found(&store, "common").await, (1..=20).collect::<Vec<_>>());
    assert_eq!(found(&store, "b5").await, vec![6]);
    assert!(found(&store, "a30").await.is_empty());
}

#[tokio::test]
async fn an_index_ahead_of_the_trail_is_rebuilt() {
    let dir = TempDir::new("audit-fts-ahead");
    let path = dir.path().join("audit.db");
    fill(&path, events("w", 12)).await;
    // As if the events' file had been restored from a copy older than the index.
    let store = SqliteStore::open(&path).await.unwrap();
    sqlx::query("DELETE FROM main.audit_events WHERE seq > 8").execute(store.pool()).await.unwrap();
    store.pool().close().await;
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(fts_seq(&store).await, 0);
    index_all(&store).await;
    assert_eq!(fts_seq(&store).await, 8);
    assert_eq!(found(&store, "common").await, (1..=8).collect::<Vec<_>>());
}

/// A store made by the first schema, with its index inside the events' file, is migrated: the old index is
/// dropped and the new one built from the events.
#[tokio::test]
async fn a_store_from_the_first_schema_is_migrated() {
    let dir = TempDir::new("audit-fts-migrate");
    let path = dir.path().join("audit.db");
    {
        let migrations = dir.path().join("migrations");
        std::fs::create_dir_all(&migrations).unwrap();
        let first = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite/0001_audit_events.sql");
        std::fs::copy(first, migrations.join("0001_audit_events.sql")).unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(migrations.as_path()).await.unwrap().run(&pool).await.unwrap();
        let mut prev = Hash::GENESIS;
        for (event, seq) in events("old", 15).into_iter().zip(1i64..) {
            let stored = StoredEvent::chain(seq, event, prev);
            prev = stored.hash;
            let e = &stored.event;
            sqlx::query(
                "INSERT INTO audit_events (seq, id, ts, actor_id, actor_type, action, outcome, severity, \
                 message, attributes, hash, prev_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(seq)
            .bind(e.id.to_string())
            .bind(e.timestamp_micros())
            .bind(&e.actor.id)
            .bind(&e.actor.kind)
            .bind(&e.action)
            .bind(e.outcome.as_str())
            .bind(e.severity.as_str())
            .bind(&e.message)
            .bind(serde_json::to_string(&e.attributes).unwrap())
            .bind(stored.hash.0.as_slice())
            .bind(stored.prev_hash.0.as_slice())
            .execute(&pool)
            .await
            .unwrap();
        }
        // The old index covered the first 10.
        sqlx::query(
            "INSERT INTO audit_fts (rowid, message, attributes) \
             SELECT seq, message, attributes FROM audit_events WHERE seq <= 10",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("UPDATE audit_meta SET value = 10 WHERE key = 'fts_seq'").execute(&pool).await.unwrap();
        pool.close().await;
    }
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let (writer, task) = AuditWriter::start(store.clone(), WriterConfig::default(), None).await.unwrap();
    writer.record_all_durable(events("new", 5)).await.unwrap();
    writer.shutdown(task).await;
    assert_eq!(found(&store, "common").await, (1..=20).collect::<Vec<_>>());
    assert_eq!(found(&store, "old12").await, vec![13]);
    assert_eq!(found(&store, "new2").await, vec![18]);
    let report = sightline_audit::verify::verify(store.as_ref()).await.unwrap();
    assert!(report.ok && report.checked == 20, "{report:?}");
    let main: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM main.sqlite_master WHERE name LIKE 'audit_fts%'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(main, 0, "the old index is dropped");
}

/// Retention removes what it deletes from the index too, and only that.
#[tokio::test]
async fn retention_forgets_deleted_events_in_the_index() {
    use sightline_audit::retention::{self, RetentionPolicy};
    let dir = TempDir::new("audit-fts-retention");
    let path = dir.path().join("audit.db");
    fill(&path, events("w", 30)).await;
    let store = SqliteStore::open(&path).await.unwrap();
    // Ten more, not indexed yet, so that retention meets the index's edge.
    let mut prev = store.head().await.unwrap().unwrap().1;
    let more: Vec<StoredEvent> = events("late", 10)
        .into_iter()
        .zip(31..)
        .map(|(event, seq)| {
            let stored = StoredEvent::chain(seq, event, prev);
            prev = stored.hash;
            stored
        })
        .collect();
    store.append(&more).await.unwrap();
    let policy = RetentionPolicy { max_events: Some(5), batch: 7, ..Default::default() };
    assert_eq!(retention::apply(&store, &policy, std::time::SystemTime::now()).await.unwrap(), 35);
    let indexed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM fts.audit_fts WHERE audit_fts MATCH 'common'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(indexed, 0, "the indexed events that were deleted are gone from the index");
    index_all(&store).await;
    assert_eq!(found(&store, "common").await, (36..=40).collect::<Vec<_>>());
    assert!(sightline_audit::verify::verify(&store).await.unwrap().ok);
}

#[tokio::test]
async fn an_in_memory_store_has_an_in_memory_index() {
    let store = Arc::new(SqliteStore::connect("sqlite::memory:").await.unwrap());
    let (writer, task) = AuditWriter::start(store.clone(), WriterConfig::default(), None).await.unwrap();
    writer.record_all_durable(events("m", 3)).await.unwrap();
    writer.shutdown(task).await;
    assert_eq!(found(&store, "m1").await, vec![2]);
}
