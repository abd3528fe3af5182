//! `SqlPipelineStore` against SQLite (a file in a temp dir) and PostgreSQL (a schema of its own per test):
//! every record kind survives a reopen, deletes persist, a put then a delete of one key stays deleted, and a
//! dispatcher restarted on the same store does not resend what it already sent and keeps its silence and ack.
#![cfg(feature = "sql")]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sightline_alert::model::BoxFuture;
use sightline_alert::pipeline::config::{GlobalConfig, IntegrationConfig, Receiver};
use sightline_alert::pipeline::store::{AckRecord, AlertRecord, EscalationRecord, NflogRecord};
use sightline_alert::pipeline::{
    Config, Dispatcher, DispatcherOptions, Matcher, NotifierFactory, PipelineStore, Silence, SilenceState,
};
use sightline_alert::sqlstore::{SqlPipelineStore, SqlStoreError};
use sightline_alert::{Alert, AlertSink, LabelSet, Notification, Notifier, NotifyError};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn alert_record(fingerprint: u64) -> AlertRecord {
    AlertRecord {
        fingerprint,
        labels: labels(&[("alertname", "Disk"), ("instance", "a")]),
        annotations: labels(&[("summary", "disk \"full\" / ünïcode")]),
        starts_at: at(1_700_000_000),
        ends_at: at(1_700_003_600),
        timeout: true,
        generator_url: "http://sightline.test/graph?g0.expr=up".into(),
        updated_at: at(1_700_000_100),
        firing_since: at(1_700_000_000) + Duration::from_nanos(123_456_789),
    }
}

fn silence(id: &str) -> Silence {
    Silence {
        id: id.to_owned(),
        matchers: vec![Matcher::parse(r#"instance=~"a|b""#).expect("matcher")],
        starts_at: at(1_700_000_000),
        ends_at: at(1_700_007_200),
        created_by: "carol".into(),
        comment: "deploy".into(),
        updated_at: at(1_700_000_000),
    }
}

fn ack(fingerprint: u64) -> AckRecord {
    AckRecord { fingerprint, by: "alice".into(), comment: "on it".into(), at: at(1_700_000_500) }
}

fn nflog(group_key: &str, integration: &str) -> NflogRecord {
    NflogRecord {
        group_key: group_key.to_owned(),
        integration: integration.to_owned(),
        firing: BTreeSet::from([1, u64::MAX]),
        resolved: BTreeSet::from([7]),
        sent_at: at(1_700_000_600),
    }
}

fn escalation(fingerprint: u64, name: &str, levels_sent: usize) -> EscalationRecord {
    EscalationRecord { fingerprint, escalation: name.to_owned(), levels_sent, updated_at: at(1_700_000_700) }
}

fn sorted<T: Clone, K: Ord>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut items = items;
    items.sort_by_key(|item| key(item));
    items
}

/// Puts one or more records of every kind, reopens, and expects exactly them back.
async fn round_trip(url: &str) {
    let store = SqlPipelineStore::open(url).await.expect("open");
    store.put_alert(alert_record(u64::MAX));
    store.put_alert(alert_record(42));
    store.put_silence(silence("s-1"));
    store.put_ack(ack(42));
    // Keys with a slash, quotes and a composite that would collide if joined naively.
    store.put_nflog(nflog(r#"{}/{team="a/b"}:{alertname="Disk"}"#, "team/webhook/0"));
    store.put_nflog(nflog(r#"{}/{team="a"}"#, "b/team/webhook/0"));
    store.put_escalation(escalation(42, "oncall", 2));
    store.put_escalation(escalation(42, "managers", 1));
    // An update of an existing key replaces it.
    let mut updated = alert_record(42);
    updated.timeout = false;
    store.put_alert(updated.clone());
    store.flush().await;
    drop(store);

    let reopened = SqlPipelineStore::open(url).await.expect("reopen");
    assert_eq!(sorted(reopened.alerts(), |a| a.fingerprint), vec![updated, alert_record(u64::MAX)]);
    assert_eq!(reopened.silences(), vec![silence("s-1")]);
    assert_eq!(reopened.acks(), vec![ack(42)]);
    assert_eq!(
        sorted(reopened.nflog_entries(), |e| e.group_key.clone()),
        vec![
            nflog(r#"{}/{team="a"}"#, "b/team/webhook/0"),
            nflog(r#"{}/{team="a/b"}:{alertname="Disk"}"#, "team/webhook/0")
        ]
    );
    assert_eq!(reopened.nflog(r#"{}/{team="a"}"#, "team/webhook/0"), None);
    assert_eq!(
        sorted(reopened.escalations(), |e| e.escalation.clone()),
        vec![escalation(42, "managers", 1), escalation(42, "oncall", 2)]
    );
}

/// Deletes reach the database, and the order of changes to one key is kept (also within one batch).
async fn deletes_and_order(url: &str) {
    let store = SqlPipelineStore::open(url).await.expect("open");
    store.put_alert(alert_record(1));
    store.put_alert(alert_record(2));
    store.put_silence(silence("gone"));
    store.put_silence(silence("kept"));
    store.put_ack(ack(1));
    store.put_ack(ack(2));
    store.put_nflog(nflog("g", "r/webhook/0"));
    store.put_nflog(nflog("g", "r/webhook/1"));
    store.put_escalation(escalation(1, "oncall", 1));
    store.put_escalation(escalation(1, "managers", 1));
    store.put_escalation(escalation(2, "oncall", 3));
    // Committed first, then deleted in a later transaction.
    store.flush().await;
    store.delete_alert(1);
    store.delete_silence("gone");
    store.delete_ack(1);
    store.delete_nflog("g", "r/webhook/0");
    store.delete_escalations(1);
    // Put then delete (and delete then put) of one key, queued together: the last change wins.
    for _ in 0..3 {
        store.put_alert(alert_record(3));
        store.delete_alert(3);
        store.delete_ack(4);
        store.put_ack(ack(4));
    }
    store.flush().await;
    drop(store);

    let reopened = SqlPipelineStore::open(url).await.expect("reopen");
    assert_eq!(sorted(reopened.alerts(), |a| a.fingerprint), vec![alert_record(2)]);
    assert_eq!(reopened.silences(), vec![silence("kept")]);
    assert_eq!(sorted(reopened.acks(), |a| a.fingerprint), vec![ack(2), ack(4)]);
    assert_eq!(reopened.nflog_entries(), vec![nflog("g", "r/webhook/1")]);
    assert_eq!(reopened.escalations(), vec![escalation(2, "oncall", 3)]);
}

fn sqlite_url(dir: &sightline_testkit::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("pipeline.db").display())
}

#[tokio::test]
async fn sqlite_round_trip_of_every_record_kind() {
    let dir = sightline_testkit::TempDir::new("sqlstore");
    let url = sqlite_url(&dir);
    round_trip(&url).await;
    assert!(dir.path().join("pipeline.db").exists(), "the file is created");
}

#[tokio::test]
async fn sqlite_deletes_persist_and_order_is_kept() {
    let dir = sightline_testkit::TempDir::new("sqlstore");
    deletes_and_order(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn bad_urls_and_rows_are_reported() {
    let err = SqlPipelineStore::open("mysql://u:secret@h/db").await.expect_err("unsupported");
    assert!(matches!(err, SqlStoreError::Url(ref u) if u == "mysql://u@h/db"), "{err}");
    assert!(err.to_string().contains("sqlite://PATH"), "{err}");

    let dir = sightline_testkit::TempDir::new("sqlstore");
    let url = sqlite_url(&dir);
    let store = SqlPipelineStore::open(&url).await.expect("open");
    store.put_silence(silence("s-1"));
    store.flush().await;
    drop(store);
    let mut conn = sqlx::sqlite::SqliteConnection::connect(&url).await.expect("connect");
    sqlx::query("UPDATE alert_pipeline_silences SET record = '{\"id\": 5}'")
        .execute(&mut conn)
        .await
        .expect("corrupt the row");
    conn.close().await.expect("close");
    let err = SqlPipelineStore::open(&url).await.expect_err("a corrupt row");
    assert!(
        matches!(err, SqlStoreError::Decode { table: "alert_pipeline_silences", ref key, .. } if key == "s-1")
    );
    assert!(err.to_string().contains("delete that row"), "{err}");
}

/// A schema made for one PostgreSQL test, dropped with everything in it when the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    async fn create() -> Option<Self> {
        let url = sightline_testkit::postgres_url()?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
        let name = format!("alert_sqlstore_{}_{nanos}", std::process::id());
        let mut conn = PgConnection::connect(&url).await.expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.expect("create schema");
        conn.close().await.expect("close");
        Some(Self { url, name })
    }

    /// The URL with this schema as the search path, as a server would give one in `storage.url`.
    fn store_url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-c%20search_path%3D{}", self.url, self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop runs outside async code (also while a failed test unwinds), so the cleanup gets its own thread
        // and runtime.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&url).await?;
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

#[tokio::test]
async fn postgres_round_trip_of_every_record_kind() {
    let Some(schema) = Schema::create().await else { return };
    let url = schema.store_url();
    round_trip(&url).await;
    // The tables went into the test's schema, not `public`.
    let mut conn = PgConnection::connect(&schema.url).await.expect("connect");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name LIKE 'alert_pipeline_%'",
    )
    .bind(&schema.name)
    .fetch_one(&mut conn)
    .await
    .expect("count tables");
    assert_eq!(tables, 5);
}

#[tokio::test]
async fn postgres_deletes_persist_and_order_is_kept() {
    let Some(schema) = Schema::create().await else { return };
    deletes_and_order(&schema.store_url()).await;
}

/// A notifier that records the instances it was told about.
#[derive(Debug)]
struct Recorder {
    sent: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Notifier for Recorder {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let instances = notification
                .alerts
                .iter()
                .map(|(_, a)| a.labels.get("instance").cloned().unwrap_or_default());
            self.sent.lock().expect("lock").push(instances.collect());
            Ok(())
        })
    }
}

struct Fakes {
    sent: Arc<Mutex<Vec<Vec<String>>>>,
}

impl NotifierFactory for Fakes {
    fn build(
        &self,
        _receiver: &Receiver,
        _integration: &IntegrationConfig,
        _global: &GlobalConfig,
    ) -> Result<Arc<dyn Notifier>, String> {
        Ok(Arc::new(Recorder { sent: self.sent.clone() }))
    }
}

/// Group per instance; a short group wait (the clock runs for real: the store's I/O uses tokio's timers),
/// and intervals far longer than the test.
const CONFIG: &str = r#"
route:
  receiver: team
  group_by: [instance]
  group_wait: 100ms
  group_interval: 1h
  repeat_interval: 4h
receivers:
- name: team
  webhook_configs:
  - url: http://127.0.0.1:9/team
"#;

fn dispatcher(store: Arc<SqlPipelineStore>, sent: &Arc<Mutex<Vec<Vec<String>>>>) -> Dispatcher {
    Dispatcher::new(
        Config::parse(CONFIG).expect("config"),
        Arc::new(Fakes { sent: sent.clone() }),
        DispatcherOptions {
            store,
            external_url: "http://sightline.test".into(),
            events: None,
            wall_clock_start: None,
        },
    )
    .expect("dispatcher")
}

fn firing(dispatcher: &Dispatcher, instance: &str) -> Alert {
    let now = dispatcher.now();
    Alert {
        labels: labels(&[("alertname", "Disk"), ("instance", instance)]),
        annotations: LabelSet::new(),
        starts_at: now,
        ends_at: Some(now + Duration::from_secs(86400)),
        generator_url: String::new(),
    }
}

/// Polls `done` every 10 ms for up to 10 s.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_restarted_dispatcher_does_not_resend_and_keeps_silences_and_acks() {
    let dir = sightline_testkit::TempDir::new("sqlstore");
    let url = sqlite_url(&dir);
    let sent = Arc::new(Mutex::new(Vec::new()));

    let store = SqlPipelineStore::open_shared(&url).await.expect("open");
    let first = dispatcher(store.clone(), &sent);
    let alert = firing(&first, "a");
    let fp = alert.fingerprint();
    first.send(vec![alert]);
    eventually("the first notification", || sent.lock().expect("lock").len() == 1).await;
    eventually("the notification log entry", || !store.nflog_entries().is_empty()).await;
    first.ack(fp, "alice", "on it").expect("ack");
    let silence_id = first
        .add_silence(Silence {
            id: String::new(),
            matchers: vec![Matcher::parse(r#"instance="c""#).expect("matcher")],
            starts_at: first.now(),
            ends_at: first.now() + Duration::from_secs(3600),
            created_by: "carol".into(),
            comment: "maintenance".into(),
            updated_at: first.now(),
        })
        .expect("silence");
    first.sync().await;
    store.flush().await;
    drop(first);
    drop(store);
    assert_eq!(*sent.lock().expect("lock"), vec![vec!["a".to_owned()]]);

    // The restart: a new store on the same file, a new dispatcher, and the rule engine sending the same
    // firing alert again, as it does on every evaluation.
    let store = SqlPipelineStore::open_shared(&url).await.expect("reopen");
    let second = dispatcher(store.clone(), &sent);
    second.send(vec![firing(&second, "a")]);
    // A new alert in a group of its own goes out after the group wait: the restarted pipeline does send.
    second.send(vec![firing(&second, "b")]);
    eventually("the new alert's notification", || sent.lock().expect("lock").len() >= 2).await;
    // Several group waits more, for a resend of `a` to show up if the notification log had been lost.
    tokio::time::sleep(Duration::from_millis(500)).await;
    second.sync().await;
    assert_eq!(*sent.lock().expect("lock"), vec![vec!["a".to_owned()], vec!["b".to_owned()]]);

    let silences: HashMap<String, SilenceState> =
        second.silences().into_iter().map(|(s, state)| (s.id, state)).collect();
    assert_eq!(silences, HashMap::from([(silence_id, SilenceState::Active)]));
    let report = second.alerts().into_iter().find(|a| a.fingerprint == fp).expect("alert a is kept");
    let acked = report.acked.expect("the ack survived the restart");
    assert_eq!((acked.by.as_str(), acked.comment.as_str()), ("alice", "on it"));
    drop(second);
    store.flush().await;
}

#[tokio::test]
async fn a_failing_write_is_retried_without_blocking_and_lands_once_the_database_recovers() {
    let dir = sightline_testkit::TempDir::new("sqlstore");
    let url = sqlite_url(&dir);
    let store = SqlPipelineStore::open(&url).await.expect("open");
    store.put_ack(ack(1));
    store.flush().await;

    // Take the acks table away, so that the writer's next transaction fails.
    let mut conn = sqlx::sqlite::SqliteConnection::connect(&url).await.expect("connect");
    sqlx::query("DROP TABLE alert_pipeline_acks").execute(&mut conn).await.expect("drop the table");

    // The calls return at once (the dispatcher is never held up) and reads see the change meanwhile.
    let started = std::time::Instant::now();
    store.put_ack(ack(2));
    store.put_silence(silence("during-outage"));
    assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
    assert_eq!(sorted(store.acks(), |a| a.fingerprint), vec![ack(1), ack(2)]);
    // Nothing is committed while the table is missing (the batch is all or nothing), so flush waits.
    assert!(tokio::time::timeout(Duration::from_millis(400), store.flush()).await.is_err(), "flush waits");

    // The database recovers: the retried batch commits and the flush completes.
    sqlx::query(
        "CREATE TABLE alert_pipeline_acks (fingerprint TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (fingerprint))",
    )
    .execute(&mut conn)
    .await
    .expect("recreate the table");
    conn.close().await.expect("close");
    tokio::time::timeout(Duration::from_secs(10), store.flush()).await.expect("the retry succeeds");
    drop(store);

    let reopened = SqlPipelineStore::open(&url).await.expect("reopen");
    // Ack 1 went with the dropped table; ack 2 and the silence were retried into the database.
    assert_eq!(reopened.acks(), vec![ack(2)]);
    assert_eq!(reopened.silences(), vec![silence("during-outage")]);
}
