//! The HTTP client the webhook, Slack, PagerDuty and Alertmanager integrations share: reqwest on rustls
//! with the ring provider and the platform's CA roots, and the classification of responses into success,
//! retryable and permanent failures.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};

use crate::model::NotifyError;
use crate::notify::config::HttpConfig;

/// The response bodies quoted in errors are cut to this many bytes: enough for an API's error message.
const QUOTED_BODY: usize = 512;

/// An HTTP client configured from an `http_config`.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    config: HttpConfig,
}

// === impl HttpClient ===

impl HttpClient {
    pub(crate) fn new(config: &HttpConfig) -> Result<Self, NotifyError> {
        // Checked here so that a bad credential is reported as such, not as a failed request.
        let header_safe = |value: &str| HeaderValue::from_str(value).is_ok();
        if let Some(auth) = &config.authorization
            && !header_safe(&format!("{} {}", auth.kind, auth.credentials))
        {
            return Err(NotifyError::permanent(
                "http_config.authorization: the type or credentials hold characters an HTTP header cannot (a newline from a credentials file?)",
            ));
        }
        if let Some(token) = &config.bearer_token
            && !header_safe(token)
        {
            return Err(NotifyError::permanent(
                "http_config.bearer_token holds characters an HTTP header cannot (a newline from a token file?)",
            ));
        }
        let client = build_client(config.tls_config.insecure_skip_verify)
            .map_err(|e| NotifyError::permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client, config: config.clone() })
    }

    /// POSTs `body` as JSON to `url`; a 2xx answer is success, a 429 or 5xx answer or a transport error
    /// is retryable, any other answer is permanent. `timeout` bounds the whole exchange when given.
    pub(crate) async fn post_json(
        &self,
        url: &str,
        body: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<(), NotifyError> {
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, HeaderValue::from_static(concat!("Sightline/", env!("CARGO_PKG_VERSION"))))
            .body(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if let Some(auth) = &self.config.basic_auth {
            request = request.basic_auth(&auth.username, auth.password.as_ref());
        }
        if let Some(auth) = &self.config.authorization {
            request =
                request.header(reqwest::header::AUTHORIZATION, format!("{} {}", auth.kind, auth.credentials));
        } else if let Some(token) = &self.config.bearer_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            let builder_error = e.is_builder();
            let tls_error = tls_rejected(&e);
            let message = format!("POST {}: {}", redact_url(url), describe(e));
            if builder_error {
                NotifyError::permanent(format!("{message} (check the receiver's URL)"))
            } else if tls_error {
                NotifyError::permanent(format!(
                    "{message} (the TLS handshake failed: give the server a certificate the system trusts, \
                     or set tls_config.insecure_skip_verify)"
                ))
            } else {
                NotifyError::retryable(message)
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // The body usually says why (a bad routing key, an unknown channel); a failure to read it is no
        // worse than an empty one.
        let text = response.text().await.unwrap_or_default();
        let quoted = quote(&text);
        let message = format!("POST {} answered {status}{quoted}", redact_url(url));
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(NotifyError::retryable(message))
        } else {
            Err(NotifyError::permanent(format!(
                "{message}; fix the receiver's settings, retrying cannot help"
            )))
        }
    }
}

/// `: <body>` cut to [`QUOTED_BODY`] bytes on a character boundary, or "" for an empty body.
fn quote(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let mut end = body.len().min(QUOTED_BODY);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!(": {}", &body[..end])
}

/// The URL without its query string and user info, which often carry secrets (Slack's webhook path is
/// a secret too, so only the host is kept for it).
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "<invalid URL>".to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let path = rest[authority_end..].split(['?', '#']).next().unwrap_or("");
    if host.ends_with("hooks.slack.com") {
        return format!("{scheme}://{host}/<secret>");
    }
    format!("{scheme}://{host}{path}")
}

/// Whether a TLS handshake failed (an untrusted or mismatched certificate, no common protocol), which
/// trying again cannot fix: clients report those as connection errors, with rustls's error somewhere
/// in the chain, often inside an `io::Error`.
pub(crate) fn tls_rejected(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<rustls::Error>() {
            return true;
        }
        // `io::Error::source` skips the error it wraps (and io errors nest), so look inside explicitly.
        current = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

/// A reqwest error with its causes (reqwest's own message is often just "error sending request"), without
/// the URL, which may hold a secret (Slack's does).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

fn build_client(insecure_skip_verify: bool) -> Result<reqwest::Client, String> {
    let tls = sightline_tls::client_config(!insecure_skip_verify).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .pool_max_idle_per_host(1)
        .build()
        .map_err(|e| e.to_string())
}

/// Go's zero time as Alertmanager encodes an unset time in JSON.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A time as Go's `time.Time` marshals to JSON (RFC 3339 in UTC with nanoseconds, trailing zeros
/// dropped), so payloads look exactly like Alertmanager's; `None` is Go's zero time.
pub fn rfc3339(time: Option<SystemTime>) -> String {
    let Some(time) = time else { return ZERO_TIME.to_owned() };
    let (secs, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2), d.subsec_nanos()),
        Err(e) => {
            // Before 1970: floor to whole seconds below, with the nanoseconds counted upwards from there.
            let d = e.duration();
            let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2);
            if d.subsec_nanos() == 0 { (secs, 0) } else { (secs - 1, 1_000_000_000 - d.subsec_nanos()) }
        }
    };
    let (days, secs_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days: the crate has no date library and needs only this.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    );
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_like_go() {
        assert_eq!(rfc3339(None), ZERO_TIME);
        assert_eq!(rfc3339(Some(UNIX_EPOCH)), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339(Some(t)), "2023-11-14T22:13:20.12Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(Some(leap)), "2000-02-29T00:00:00Z");
        let before = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(rfc3339(Some(before)), "1969-12-31T23:59:58.5Z");
    }

    #[test]
    fn bad_credentials_are_reported_at_construction() {
        let config = HttpConfig {
            authorization: Some(crate::notify::config::Authorization {
                kind: "Bearer".into(),
                credentials: "tok\n".into(),
            }),
            ..HttpConfig::default()
        };
        let err = HttpClient::new(&config).expect_err("newline");
        assert!(err.message.contains("http_config.authorization"), "{}", err.message);
        let config = HttpConfig { bearer_token: Some("a\r\nb".into()), ..HttpConfig::default() };
        assert!(HttpClient::new(&config).is_err());
        assert!(HttpClient::new(&HttpConfig::default()).is_ok());
    }

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(redact_url("https://user:pw@example.org/hook?token=x"), "https://example.org/hook");
        assert_eq!(redact_url("https://hooks.slack.com/services/T/B/X"), "https://hooks.slack.com/<secret>");
        assert_eq!(redact_url("not a url"), "<invalid URL>");
    }

    #[test]
    fn quoted_bodies_are_cut_on_char_boundaries() {
        assert_eq!(quote("  "), "");
        let long = "é".repeat(600);
        let quoted = quote(&long);
        assert!(quoted.len() <= QUOTED_BODY + 2);
        assert!(quoted.starts_with(": é"));
    }
}
