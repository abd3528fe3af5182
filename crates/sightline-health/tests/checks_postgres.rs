//! The PostgreSQL check against a real server: `SIGHTLINE_TEST_POSTGRES_URL`, or the machine's own at
//! `postgres://postgres@127.0.0.1:5432/test` (trust authentication).
//!
//! When the server cannot be reached or started, each test prints `SKIPPED: PostgreSQL unavailable` and
//! passes, unless `SIGHTLINE_REQUIRE_PEERS=1`, which makes it fail.

#![cfg(feature = "postgres")]

use std::net::TcpListener;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sightline_health::checks::postgres::{Expect, PostgresCheck};
use sightline_health::{HealthCheck, Probe, Status};
use sqlx::postgres::PgConnectOptions;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test server's URL (the shared testkit finds or starts it, or prints SKIPPED), once per process.
fn postgres_url() -> Option<String> {
    static FOUND: OnceLock<Option<String>> = OnceLock::new();
    FOUND.get_or_init(sightline_testkit::postgres_url).clone()
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("a bound address").port()
}

async fn probe(check: &PostgresCheck) -> Probe {
    check.check().await
}

fn with_port(url: &str, port: u16) -> String {
    let options = PgConnectOptions::from_str(url).expect("a PostgreSQL URL");
    let user = options.get_username();
    let database = options.get_database().unwrap_or(user);
    format!("postgres://{user}@127.0.0.1:{port}/{database}")
}

#[tokio::test]
async fn select_one_is_healthy() {
    let Some(url) = postgres_url() else { return };
    let check = PostgresCheck::new(&url).unwrap();
    assert_eq!(check.query(), "SELECT 1");
    let probe = probe(&check).await;
    assert_eq!(probe.status, Status::Healthy, "{probe:?}");
    assert!(probe.message.starts_with("query returned a row in "), "{}", probe.message);
    let observed = probe.observed.unwrap();
    assert_eq!(observed.unit, "ms");
    assert!(observed.value >= 0.0);
    assert_eq!(probe.details["first_value"], "1");
    assert_eq!(probe.details["query"], "SELECT 1");
    assert_eq!(probe.details["reused_connection"], false);
    assert!(probe.details["connect_ms"].is_number());
}

#[tokio::test]
async fn syntax_error_is_unhealthy_and_names_the_error() {
    let Some(url) = postgres_url() else { return };
    let check = PostgresCheck::new(&url).unwrap().with_query("SELEC 1").unwrap();
    let probe = probe(&check).await;
    assert_eq!(probe.status, Status::Unhealthy);
    assert!(probe.message.contains("query failed"), "{}", probe.message);
    assert!(probe.message.contains("syntax error at or near \"SELEC\""), "{}", probe.message);
    assert!(probe.details["error"].as_str().unwrap().contains("syntax error"), "{}", probe.details);
    assert_eq!(probe.observed, None);
}

#[tokio::test]
async fn connection_refused_is_unhealthy() {
    // Needs no server: a closed port refuses at once.
    let url = postgres_url().unwrap_or_else(|| DEFAULT_URL.to_owned());
    let check = PostgresCheck::new(&with_port(&url, closed_port())).unwrap();
    let started = Instant::now();
    let probe = probe(&check).await;
    assert_eq!(probe.status, Status::Unhealthy);
    assert!(probe.message.contains("cannot connect"), "{}", probe.message);
    assert!(probe.message.to_lowercase().contains("connection refused"), "{}", probe.message);
    // Refused is reported as refused, not retried until some timeout (generous bound, not a timing test).
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn login_errors_name_the_cause_without_the_password() {
    let Some(url) = postgres_url() else { return };
    let options = PgConnectOptions::from_str(&url).unwrap();
    let (host, port) = (options.get_host(), options.get_port());

    let check =
        PostgresCheck::new(&format!("postgres://no_such_role:s3cret%21pw@{host}:{port}/test")).unwrap();
    assert!(!format!("{check:?}").contains("s3cret"), "{check:?}");
    let refused = probe(&check).await;
    assert_eq!(refused.status, Status::Unhealthy);
    assert!(refused.message.contains("no_such_role"), "{}", refused.message);
    assert!(!refused.message.contains("s3cret"), "{}", refused.message);
    assert!(!refused.details.to_string().contains("s3cret"), "{}", refused.details);
    assert!(
        refused.message.starts_with(&format!("postgres://no_such_role@{host}:{port}/test: cannot connect: "))
    );

    let user = options.get_username();
    let check = PostgresCheck::new(&format!("postgres://{user}@{host}:{port}/no_such_database")).unwrap();
    let missing = probe(&check).await;
    assert_eq!(missing.status, Status::Unhealthy);
    assert!(missing.message.contains("database \"no_such_database\" does not exist"), "{}", missing.message);
}

/// A server that accepts TCP and never says a word: the probe waits until the registry's timeout.
#[tokio::test]
async fn silent_server_does_not_answer_within_two_seconds() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        // Holds the connection open, unread, until the test is over.
        let accepted = listener.accept();
        let _ = wait.recv();
        drop(accepted);
    });

    let check = PostgresCheck::new(&format!("postgres://postgres@127.0.0.1:{port}/test")).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(2), check.check()).await;
    assert!(outcome.is_err(), "probe finished against a silent server: {outcome:?}");
    drop(done);
    server.join().unwrap();
}

#[tokio::test]
async fn probes_reuse_one_connection() {
    let Some(url) = postgres_url() else { return };
    let check = PostgresCheck::new(&url).unwrap().with_query("SELECT pg_backend_pid()").unwrap();
    let first = probe(&check).await;
    let second = probe(&check).await;
    let third = probe(&check).await;
    for probe in [&first, &second, &third] {
        assert_eq!(probe.status, Status::Healthy, "{probe:?}");
    }
    assert_eq!(first.details["first_value"], second.details["first_value"]);
    assert_eq!(second.details["first_value"], third.details["first_value"]);
    assert_eq!(first.details["reused_connection"], false);
    assert_eq!(second.details["reused_connection"], true);
    assert!(second.details.get("connect_ms").is_none(), "{}", second.details);
}

#[tokio::test]
async fn application_name_from_the_url() {
    let Some(url) = postgres_url() else { return };
    let separator = if url.contains('?') { '&' } else { '?' };
    let check = PostgresCheck::new(&format!("{url}{separator}application_name=from-the-url"))
        .unwrap()
        .with_query("SELECT current_setting('application_name')")
        .unwrap();
    let named = probe(&check).await;
    assert_eq!(named.details["first_value"], "from-the-url", "{named:?}");

    let check =
        PostgresCheck::new(&url).unwrap().with_query("SELECT current_setting('application_name')").unwrap();
    assert_eq!(probe(&check).await.details["first_value"], "sightline-health");
}

#[tokio::test]
async fn application_name_shows_in_pg_stat_activity() {
    let Some(url) = postgres_url() else { return };
    let check = PostgresCheck::new(&url)
        .unwrap()
        .with_application_name("sightline-test-appname")
        .with_query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sightline-test-appname'")
        .unwrap();
    for _ in 0..3 {
        let probe = probe(&check).await;
        assert_eq!(probe.details["first_value"], "1", "{probe:?}");
    }
}

/// A kept connection that the server killed while idle costs no failed probe: the check reconnects.
#[tokio::test]
async fn terminated_connection_is_replaced() {
    let Some(url) = postgres_url() else { return };
    let check = PostgresCheck::new(&url).unwrap().with_query("SELECT pg_backend_pid()").unwrap();
    let before = probe(&check).await;
    let pid = before.details["first_value"].as_str().unwrap().to_owned();

    let killer = PostgresCheck::new(&url)
        .unwrap()
        .with_query(format!("SELECT pg_terminate_backend({pid})"))
        .unwrap()
        .with_expect(Expect::FirstValue("t".to_owned()));
    let killed = probe(&killer).await;
    assert_eq!(killed.status, Status::Healthy, "{killed:?}");

    let after = probe(&check).await;
    assert_eq!(after.status, Status::Healthy, "{after:?}");
    assert_ne!(after.details["first_value"], before.details["first_value"]);
    assert!(after.details["connect_ms"].is_number(), "{}", after.details);
}

/// A probe cancelled mid-query (as the registry's timeout cancels it) leaves the check usable.
#[tokio::test]
async fn cancelled_probe_does_not_wedge_the_check() {
    let Some(url) = postgres_url() else { return };
    let check =
        PostgresCheck::new(&url).unwrap().with_query("SELECT pg_sleep(0.5), pg_backend_pid()").unwrap();
    let warm = probe(&check).await;
    assert_eq!(warm.status, Status::Healthy, "{warm:?}");
    let cancelled = tokio::time::timeout(Duration::from_millis(100), check.check()).await;
    assert!(cancelled.is_err());
    let after = probe(&check).await;
    assert_eq!(after.status, Status::Healthy, "{after:?}");
    assert_eq!(after.details["reused_connection"], false);
}

#[tokio::test]
async fn expectations() {
    let Some(url) = postgres_url() else { return };
    let run = |query: &str, expect: Expect| {
        let check = PostgresCheck::new(&url).unwrap().with_query(query).unwrap().with_expect(expect);
        async move { probe(&check).await }
    };

    let none = run("SELECT 1 WHERE false", Expect::Rows).await;
    assert_eq!(none.status, Status::Unhealthy);
    assert!(none.message.starts_with("query returned no rows"), "{}", none.message);
    assert_eq!(run("SELECT 1 WHERE false", Expect::Success).await.status, Status::Healthy);

    assert_eq!(run("SELECT 1", Expect::FirstValue("1".to_owned())).await.status, Status::Healthy);
    assert_eq!(run("SELECT true", Expect::FirstValue("t".to_owned())).await.status, Status::Healthy);
    let wrong = run("SELECT 2", Expect::FirstValue("1".to_owned())).await;
    assert_eq!(wrong.status, Status::Unhealthy);
    assert!(wrong.message.starts_with("query returned \"2\" in "), "{}", wrong.message);
    assert!(wrong.message.ends_with("; expected \"1\""), "{}", wrong.message);
    let null = run("SELECT NULL", Expect::FirstValue("1".to_owned())).await;
    assert_eq!(null.status, Status::Unhealthy);
    assert!(null.message.starts_with("query returned NULL"), "{}", null.message);
    assert_eq!(null.details["first_value"], serde_json::Value::Null);

    // Several statements: the first row of all of them counts.
    let several = run("SET statement_timeout = '5s'; SELECT 'ok'", Expect::FirstValue("ok".to_owned())).await;
    assert_eq!(several.status, Status::Healthy, "{several:?}");
}

#[test]
fn invalid_configuration() {
    for url in ["", "not a url", "mysql://root@localhost/test", "postgres://u:hunter2@host:notaport/db"] {
        let err = PostgresCheck::new(url).unwrap_err();
        assert_eq!(err.parameter, "url", "{url}: {err}");
        let text = err.to_string();
        assert!(text.starts_with("invalid `url`: "), "{text}");
        assert!(text.ends_with("(write postgres://user[:password]@host[:port]/database)"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    let check = PostgresCheck::new(DEFAULT_URL).unwrap();
    assert_eq!(check.with_query("  ").unwrap_err().parameter, "query");

    let check = PostgresCheck::new("postgresql://app:hunter2@db.example:6543/app?sslmode=disable").unwrap();
    assert_eq!(check.target(), "postgres://app@db.example:6543/app");
    assert!(!format!("{check:?}").contains("hunter2"));
}
