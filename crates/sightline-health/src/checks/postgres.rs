//! PostgreSQL: run a query over a connection that is kept between probes.
//!
//! ```no_run
//! use sightline_health::checks::postgres::{Expect, PostgresCheck};
//!
//! let check = PostgresCheck::new("postgres://app@db.internal:5432/app")?
//!     .with_query("SELECT count(*) FROM pg_stat_activity")?
//!     .with_expect(Expect::Rows);
//! # Ok::<(), sightline_health::checks::CheckConfigError>(())
//! ```
//!
//! # Connection reuse
//!
//! Each check keeps one connection and reuses it, so a probe costs one round trip rather than a TCP
//! handshake and an authentication exchange. It is a one-connection slot rather than an `sqlx` pool on
//! purpose: a pool retries a refused connection silently until its acquire timeout and then reports only
//! "pool timed out", where a health check must say "connection refused" at once. The connection is taken
//! out of the slot while a probe uses it and put back only when the probe finishes with the connection
//! intact, so a probe that the registry's timeout cancels mid-query drops (closes) it instead of leaving a
//! half-read connection behind. When the kept connection has died while idle (server restart, idle
//! timeout, `pg_terminate_backend`), the probe reconnects once and runs the query on the fresh connection.
//!
//! # Timeouts
//!
//! The check sets none: the registry bounds every probe by the check's timeout, and a server that
//! accepts TCP but never answers makes the probe wait until then.
//!
//! # TLS
//!
//! The URL's `sslmode` decides, as with libpq: `prefer` (the default) uses TLS when the server offers it,
//! without checking its certificate; `require` insists on TLS; `verify-ca` and `verify-full` check the
//! certificate against `sslrootcert` if given, else the Mozilla roots built in; `disable` never uses TLS.
//!
//! # Passwords
//!
//! Messages, details and `Debug` name the server as `postgres://user@host:port/database`, never with the
//! password, and any text that sqlx returns is scrubbed of it as well.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::{ConnectOptions, Executor, Row};
use tokio::sync::Mutex;

use super::{CheckConfigError, millis, truncate};
use crate::{BoxFuture, HealthCheck, Probe};

/// The query run when none is configured.
pub const DEFAULT_QUERY: &str = "SELECT 1";

/// The `application_name` the check's connection reports, as seen in `pg_stat_activity`.
pub const DEFAULT_APPLICATION_NAME: &str = "sightline-health";

/// How many bytes of the first value the probe's details keep.
const MAX_VALUE_BYTES: usize = 200;

/// How a URL should look, for configuration errors.
const URL_FORM: &str = "postgres://user[:password]@host[:port]/database";

/// What the query must return for the probe to pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Expect {
    /// The query succeeds, whatever it returns.
    Success,
    /// The query succeeds and returns at least one row (the default).
    #[default]
    Rows,
    /// The first column of the first row, in PostgreSQL's text form (`1`, `t`, `on`), equals this.
    FirstValue(String),
}

/// Runs a query against PostgreSQL: Healthy when it succeeds and returns what [`Expect`] asks,
/// Unhealthy when the server cannot be reached, refuses the login, or the query fails.
///
/// The observed value is the query's round trip in milliseconds (`ms`), not counting the connection
/// set-up, which the details give as `connect_ms` when the probe had to connect.
///
/// The query is sent with the simple query protocol (no prepared statement is left on the server) and
/// may hold several statements; the first row of all their results is the one that counts.
pub struct PostgresCheck {
    options: PgConnectOptions,
    /// `postgres://user@host:port/database`, for messages.
    target: String,
    /// The password given in the URL, raw and percent-decoded, to scrub from error text.
    secrets: Vec<String>,
    query: String,
    expect: Expect,
    connection: Mutex<Option<PgConnection>>,
}

// === impl PostgresCheck ===

impl PostgresCheck {
    /// A check of the server at `url` (`postgres://user[:password]@host[:port]/database`; every
    /// parameter sqlx's `PgConnectOptions` understands may follow as `?key=value`). Nothing connects
    /// until the first probe.
    ///
    /// A bad URL is a [`CheckConfigError`] for `url`, which never repeats the URL (it may hold a password).
    pub fn new(url: &str) -> Result<Self, CheckConfigError> {
        let secrets = url_password(url).map(|raw| secret_forms(&raw)).unwrap_or_default();
        // sqlx ignores the scheme, so `mysql://...` would otherwise be taken for a PostgreSQL server.
        let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("postgres" | "postgresql")) {
            return Err(CheckConfigError::new(
                "url",
                format!("the scheme must be postgres:// or postgresql:// (write {URL_FORM})"),
            ));
        }
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            CheckConfigError::new("url", format!("{} (write {URL_FORM})", scrub(&e.to_string(), &secrets)))
        })?;
        // A probe every few seconds would flood the logs at sqlx's default (every statement at INFO).
        let mut options = options.disable_statement_logging();
        if options.get_application_name().is_none() {
            options = options.application_name(DEFAULT_APPLICATION_NAME);
        }
        let target = describe(&options);
        Ok(Self {
            options,
            target,
            secrets,
            query: DEFAULT_QUERY.to_owned(),
            expect: Expect::default(),
            connection: Mutex::new(None),
        })
    }

    /// The query to run instead of `SELECT 1` (configuration key `query`).
    pub fn with_query(mut self, query: impl Into<String>) -> Result<Self, CheckConfigError> {
        let query = query.into();
        if query.trim().is_empty() {
            return Err(CheckConfigError::new("query", "is empty; give a statement such as `SELECT 1`"));
        }
        self.query = query;
        Ok(self)
    }

    /// What the query must return; [`Expect::Rows`] by default.
    #[must_use]
    pub fn with_expect(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }

    /// The `application_name` to connect with instead of the URL's `application_name` parameter or
    /// `sightline-health`.
    #[must_use]
    pub fn with_application_name(mut self, name: &str) -> Self {
        self.options = self.options.application_name(name);
        self
    }

    /// The server, as `postgres://user@host:port/database` (without the password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The query the check runs.
    pub fn query(&self) -> &str {
        &self.query
    }

    async fn probe(&self) -> Probe {
        // Held for the whole probe, so that overlapping probes of one check take turns on the
        // connection instead of opening a second one.
        let mut slot = self.connection.lock().await;
        // Taken out: if this future is dropped mid-query, the connection is dropped with it.
        let kept = slot.take();
        let reused = kept.is_some();
        let mut connect_ms = None;
        let mut conn = match kept {
            Some(conn) => conn,
            None => match self.connect(&mut connect_ms).await {
                Ok(conn) => conn,
                Err(probe) => return probe,
            },
        };
        let mut outcome = self.run(&mut conn).await;
        if reused && matches!(&outcome, Err(e) if connection_lost(e)) {
            // The kept connection died while idle; that says nothing about the server now.
            tracing::debug!(target = %self.target, "kept PostgreSQL connection is gone; reconnecting");
            drop(conn);
            conn = match self.connect(&mut connect_ms).await {
                Ok(conn) => conn,
                Err(probe) => return probe,
            };
            outcome = self.run(&mut conn).await;
        }
        let (row, elapsed) = match outcome {
            Ok(ok) => {
                *slot = Some(conn);
                ok
            }
            Err(e) => {
                if !connection_lost(&e) {
                    *slot = Some(conn);
                }
                return self.failure("query failed", &e, connect_ms, reused);
            }
        };
        drop(slot);

        let ms = millis(elapsed);
        let first = row.as_ref().and_then(first_value);
        let details = self.details(connect_ms, first.as_ref(), reused);
        let took = format_ms(ms);
        let probe = match (&self.expect, &row) {
            (Expect::Success, _) => Probe::healthy(format!("query succeeded in {took}")),
            (Expect::Rows | Expect::FirstValue(_), None) => {
                Probe::unhealthy(format!("query returned no rows in {took}; a row was expected"))
            }
            (Expect::Rows, Some(_)) => Probe::healthy(format!("query returned a row in {took}")),
            (Expect::FirstValue(want), Some(_)) => match first {
                Some(FirstValue::Text(ref got)) if got == want => {
                    Probe::healthy(format!("query returned {want:?} in {took}"))
                }
                Some(FirstValue::Text(ref got)) => {
                    Probe::unhealthy(format!("query returned {got:?} in {took}; expected {want:?}"))
                }
                Some(FirstValue::Null) => {
                    Probe::unhealthy(format!("query returned NULL in {took}; expected {want:?}"))
                }
                None => Probe::unhealthy(format!("query returned a row without columns; expected {want:?}")),
            },
        };
        probe.with_details(details).with_observed(ms, "ms")
    }

    async fn connect(&self, connect_ms: &mut Option<f64>) -> Result<PgConnection, Probe> {
        let started = Instant::now();
        match self.options.connect().await {
            Ok(conn) => {
                *connect_ms = Some(millis(started.elapsed()));
                Ok(conn)
            }
            Err(e) => Err(self.failure("cannot connect", &e, None, false)),
        }
    }

    async fn run(&self, conn: &mut PgConnection) -> Result<(Option<PgRow>, Duration), sqlx::Error> {
        let started = Instant::now();
        let row = conn.fetch_optional(sqlx::raw_sql(&self.query)).await?;
        Ok((row, started.elapsed()))
    }

    fn details(
        &self,
        connect_ms: Option<f64>,
        first: Option<&FirstValue>,
        reused: bool,
    ) -> serde_json::Value {
        let mut details = serde_json::json!({
            "target": self.target,
            "query": self.query,
            "reused_connection": reused,
        });
        if let Some(map) = details.as_object_mut() {
            if let Some(ms) = connect_ms {
                map.insert("connect_ms".to_owned(), serde_json::json!(ms));
            }
            match first {
                Some(FirstValue::Text(text)) => {
                    map.insert("first_value".to_owned(), serde_json::json!(text));
                }
                Some(FirstValue::Null) => {
                    map.insert("first_value".to_owned(), serde_json::Value::Null);
                }
                None => {}
            }
        }
        details
    }

    /// "postgres://user@host:port/db: cannot connect: <sqlx's error, without the password>".
    fn failure(&self, what: &str, error: &sqlx::Error, connect_ms: Option<f64>, reused: bool) -> Probe {
        let error = scrub(&error.to_string(), &self.secrets);
        let mut details = self.details(connect_ms, None, reused);
        if let Some(map) = details.as_object_mut() {
            map.insert("error".to_owned(), serde_json::json!(error));
        }
        Probe::unhealthy(format!("{}: {what}: {error}", self.target)).with_details(details)
    }
}

impl HealthCheck for PostgresCheck {
    fn check(&self) -> BoxFuture<'_, Probe> {
        Box::pin(self.probe())
    }
}

impl fmt::Debug for PostgresCheck {
    // By hand: `PgConnectOptions`'s derived `Debug` prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresCheck")
            .field("target", &self.target)
            .field("query", &self.query)
            .field("expect", &self.expect)
            .finish_non_exhaustive()
    }
}

/// The first column of the first row.
enum FirstValue {
    Text(String),
    Null,
}

fn first_value(row: &PgRow) -> Option<FirstValue> {
    if row.is_empty() {
        return None;
    }
    // The simple query protocol returns every value in text form, so any column type decodes as its
    // text without a type check.
    match row.try_get_unchecked::<Option<String>, _>(0) {
        Ok(Some(text)) => Some(FirstValue::Text(truncate(&text, MAX_VALUE_BYTES))),
        Ok(None) => Some(FirstValue::Null),
        Err(_) => None,
    }
}

/// Whether the error means the connection can no longer be used.
fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        // Class 08 is connection exceptions; 57P01-57P05 are shutdowns and terminated backends.
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P"))
        }
        // A database error leaves the connection ready for the next query; anything else (I/O, protocol,
        // a decoding surprise) may have left it mid-message.
        _ => true,
    }
}

/// `postgres://user@host:port/database`, or `postgres://user@/database?host=/run/postgresql` for a socket.
fn describe(options: &PgConnectOptions) -> String {
    let user = options.get_username();
    let database = options.get_database().unwrap_or(user);
    match options.get_socket() {
        Some(socket) => format!("postgres://{user}@/{database}?host={}", socket.display()),
        None => format!("postgres://{user}@{}:{}/{database}", options.get_host(), options.get_port()),
    }
}

fn format_ms(ms: f64) -> String {
    if ms < 10.0 { format!("{ms:.1} ms") } else { format!("{ms:.0} ms") }
}

/// The password in `url`'s user info or its `password` query parameter, as written.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if let Some((_, password)) = userinfo.split_once(':') {
            if !password.is_empty() {
                return Some(password.to_owned());
            }
        }
    }
    let query = rest.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("password="))
        .filter(|password| !password.is_empty())
        .map(str::to_owned)
}

/// A password as written in a URL and percent-decoded, longest first.
fn secret_forms(raw: &str) -> Vec<String> {
    let decoded = percent_decode(raw);
    let mut forms = vec![raw.to_owned()];
    if decoded != raw {
        forms.push(decoded);
    }
    forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    forms
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: u8| char::from(b).to_digit(16);
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                // Both digits are below 16, so this fits in a byte.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or_default());
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn scrub(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), "***"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_password_in_user_info_or_query() {
        assert_eq!(url_password("postgres://u:p%40ss@h:5432/db").as_deref(), Some("p%40ss"));
        assert_eq!(url_password("postgres://u:a:b@h/db").as_deref(), Some("a:b"));
        assert_eq!(url_password("postgres://u@h/db?password=x&sslmode=disable").as_deref(), Some("x"));
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(url_password("postgres://u:@h/db"), None);
    }

    #[test]
    fn scrubs_raw_and_decoded_forms() {
        let secrets = secret_forms("p%40ss");
        assert_eq!(scrub("bad p@ss and p%40ss", &secrets), "bad *** and ***");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
