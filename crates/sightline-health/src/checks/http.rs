//! The HTTP check: a GET whose status, body, JSON field, response time and TLS certificate are checked.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use serde_json::{Value, json};

use super::{CheckConfigError, millis, truncate};
use crate::{BoxFuture, HealthCheck, Probe, Status};

/// How much of a body is read for `body_contains` and `json_pointer`.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The default of [`HttpCheckBuilder::cert_warn_days`].
pub const DEFAULT_CERT_WARN_DAYS: u32 = 14;

const SECONDS_PER_DAY: f64 = 86_400.0;

/// The status codes a response may have: a union of ranges, by default `200-399`.
///
/// ```
/// use sightline_health::checks::http::StatusSet;
///
/// let set = StatusSet::parse("2xx, 301, 400-404")?;
/// assert!(set.contains(204) && set.contains(402) && !set.contains(302));
/// assert_eq!(set.to_string(), "200-299,301,400-404");
/// assert!(StatusSet::default().contains(302));
/// # Ok::<(), sightline_health::checks::CheckConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<RangeInclusive<u16>>);

impl Default for StatusSet {
    fn default() -> Self {
        Self(vec![200..=399])
    }
}

impl StatusSet {
    /// Parses a comma-separated list of codes (`200`), ranges (`200-299`) and classes (`2xx`). The error
    /// names the `expect_status` parameter.
    pub fn parse(spec: &str) -> Result<Self, CheckConfigError> {
        let bad = |reason: String| CheckConfigError::new("expect_status", reason);
        let mut ranges = Vec::new();
        for part in spec.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(bad(format!("{spec:?} has an empty entry")));
            }
            let code = |text: &str| -> Result<u16, CheckConfigError> {
                match text.trim().parse::<u16>() {
                    Ok(code) if (100..=599).contains(&code) => Ok(code),
                    _ => Err(bad(format!("{text:?} is not an HTTP status code (100-599)"))),
                }
            };
            let range = if let Some(class) = part.strip_suffix("xx").or_else(|| part.strip_suffix("XX")) {
                match class.parse::<u16>() {
                    Ok(class @ 1..=5) => class * 100..=class * 100 + 99,
                    _ => return Err(bad(format!("{part:?} is not a status class (1xx-5xx)"))),
                }
            } else if let Some((low, high)) = part.split_once('-') {
                let (low, high) = (code(low)?, code(high)?);
                if low > high {
                    return Err(bad(format!("{part:?} is an empty range")));
                }
                low..=high
            } else {
                let code = code(part)?;
                code..=code
            };
            ranges.push(range);
        }
        Ok(Self(ranges))
    }

    /// Exactly these codes. The error names `expect_status`.
    pub fn codes(codes: impl IntoIterator<Item = u16>) -> Result<Self, CheckConfigError> {
        let mut ranges = Vec::new();
        for code in codes {
            if !(100..=599).contains(&code) {
                return Err(CheckConfigError::new(
                    "expect_status",
                    format!("{code} is not an HTTP status code"),
                ));
            }
            ranges.push(code..=code);
        }
        if ranges.is_empty() {
            return Err(CheckConfigError::new("expect_status", "no status codes"));
        }
        Ok(Self(ranges))
    }

    /// Whether `code` is one of the set.
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|range| range.contains(&code))
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if range.start() == range.end() {
                write!(f, "{}", range.start())?;
            } else {
                write!(f, "{}-{}", range.start(), range.end())?;
            }
        }
        Ok(())
    }
}

/// Builds an [`HttpCheck`]; every setting maps onto a configuration key.
#[derive(Clone)]
pub struct HttpCheckBuilder {
    url: String,
    expect_status: StatusSet,
    body_contains: Option<String>,
    json: Option<(String, Value)>,
    max_response_time: Option<Duration>,
    cert_warn_days: u32,
    accept_invalid_certs: bool,
    context_headers: Option<ContextHeaders>,
}

impl std::fmt::Debug for HttpCheckBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCheckBuilder")
            .field("url", &self.url)
            .field("expect_status", &self.expect_status)
            .field("context_headers", &self.context_headers.is_some())
            .finish_non_exhaustive()
    }
}

/// Headers computed for each probe request, such as W3C `traceparent` for the probe's span. A function
/// rather than a dependency on a tracing crate, so health stays a layer over core alone.
pub type ContextHeaders = std::sync::Arc<dyn Fn() -> Vec<(&'static str, String)> + Send + Sync>;

impl HttpCheckBuilder {
    /// Adds the headers `source` returns to every probe request, computed inside the probe's span (so a
    /// `traceparent` from it links the probe to the target's traces).
    pub fn context_headers(mut self, source: ContextHeaders) -> Self {
        self.context_headers = Some(source);
        self
    }

    /// `expect_status`: the acceptable status codes (default `200-399`). Redirects are followed first
    /// (up to 10), so a 3xx is seen only when a redirect cannot be followed.
    #[must_use]
    pub fn expect_status(mut self, set: StatusSet) -> Self {
        self.expect_status = set;
        self
    }

    /// `body_contains`: the body (its first [`MAX_BODY_BYTES`]) must contain this text.
    #[must_use]
    pub fn body_contains(mut self, text: impl Into<String>) -> Self {
        self.body_contains = Some(text.into());
        self
    }

    /// `json_pointer` + `equals`: the body must be JSON with `equals` at the RFC 6901 `pointer`
    /// (`/status`, `/checks/0/ok`). A string compares equal to a JSON string of that text and also to a
    /// number or boolean whose JSON form is that text, so that `equals = "3"` matches `3`.
    #[must_use]
    pub fn json_pointer(mut self, pointer: impl Into<String>, equals: impl Into<Value>) -> Self {
        self.json = Some((pointer.into(), equals.into()));
        self
    }

    /// `max_response_time`: a slower response (headers and the body, if it is read) is Degraded, with the
    /// observed milliseconds.
    #[must_use]
    pub fn max_response_time(mut self, max: Duration) -> Self {
        self.max_response_time = Some(max);
        self
    }

    /// `cert_warn_days`: for `https`, a certificate that expires within this many days is Degraded
    /// (default [`DEFAULT_CERT_WARN_DAYS`]); an expired one is Unhealthy. `0` turns the warning off.
    #[must_use]
    pub fn cert_warn_days(mut self, days: u32) -> Self {
        self.cert_warn_days = days;
        self
    }

    /// `accept_invalid_certs`: do not verify the server's certificate chain and name (self-signed
    /// certificates, tests). Its expiry is still checked.
    #[must_use]
    pub fn accept_invalid_certs(mut self, accept: bool) -> Self {
        self.accept_invalid_certs = accept;
        self
    }

    /// Validates the settings and builds the check with its own connection pool.
    pub fn build(self) -> Result<HttpCheck, CheckConfigError> {
        let url = Url::parse(self.url.trim())
            .map_err(|e| CheckConfigError::new("url", format!("{:?}: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(CheckConfigError::new(
                "url",
                format!("{:?}: the scheme must be http or https, not {}", self.url, url.scheme()),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(CheckConfigError::new("url", format!("{:?} has no host", self.url)));
        }
        if self.body_contains.as_deref() == Some("") {
            return Err(CheckConfigError::new("body_contains", "is empty"));
        }
        if let Some((pointer, _)) = &self.json
            && !pointer.is_empty()
            && !pointer.starts_with('/')
        {
            return Err(CheckConfigError::new(
                "json_pointer",
                format!("{pointer:?} is not a JSON pointer (RFC 6901): it must be empty or start with '/'"),
            ));
        }
        if self.max_response_time == Some(Duration::ZERO) {
            return Err(CheckConfigError::new("max_response_time", "must be more than zero"));
        }
        let client = build_client(self.accept_invalid_certs)
            .map_err(|e| CheckConfigError::new("url", format!("cannot set up an HTTP client: {e}")))?;
        Ok(HttpCheck {
            client,
            url,
            expect_status: self.expect_status,
            body_contains: self.body_contains,
            json: self.json,
            max_response_time: self.max_response_time,
            cert_warn_days: self.cert_warn_days,
            context_headers: self.context_headers,
        })
    }
}

/// GETs `url` and checks the response; see [`HttpCheckBuilder`] for the settings.
///
/// - Unhealthy: the request fails (connection refused, TLS handshake, ...), the status is not expected,
///   the body lacks `body_contains`, the JSON value at `json_pointer` is missing or differs from `equals`,
///   the TLS certificate has expired.
/// - Degraded: slower than `max_response_time`, or the certificate expires within `cert_warn_days`.
///
/// The observed value is the response time in `ms`, or the certificate's days to expiry (`days`) when
/// that decided the status. Details carry the URL, host, status code, response time and, for `https`, the
/// certificate's `notAfter` and days left. One client (and its connection pool) serves every probe;
/// proxies from the environment are not used, so the probe reaches the target itself.
///
/// ```
/// use std::time::Duration;
/// use sightline_health::checks::http::{HttpCheck, StatusSet};
///
/// let check = HttpCheck::builder("https://example.com/healthz")
///     .expect_status(StatusSet::parse("200,204")?)
///     .json_pointer("/status", "up")
///     .max_response_time(Duration::from_millis(500))
///     .build()?;
/// assert!(HttpCheck::builder("ftp://example.com").build().is_err());
/// # Ok::<(), sightline_health::checks::CheckConfigError>(())
/// ```
#[derive(Clone)]
pub struct HttpCheck {
    client: reqwest::Client,
    url: Url,
    expect_status: StatusSet,
    body_contains: Option<String>,
    json: Option<(String, Value)>,
    max_response_time: Option<Duration>,
    cert_warn_days: u32,
    context_headers: Option<ContextHeaders>,
}

impl std::fmt::Debug for HttpCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCheck")
            .field("url", &redacted(&self.url))
            .field("expect_status", &self.expect_status)
            .field("max_response_time", &self.max_response_time)
            .field("context_headers", &self.context_headers.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpCheck {
    /// A builder for a check of `url` (`http` or `https`), with the defaults: status 200-399, no body
    /// or time limits, certificate warning 14 days before expiry, certificates verified.
    pub fn builder(url: impl Into<String>) -> HttpCheckBuilder {
        HttpCheckBuilder {
            url: url.into(),
            expect_status: StatusSet::default(),
            body_contains: None,
            json: None,
            max_response_time: None,
            cert_warn_days: DEFAULT_CERT_WARN_DAYS,
            accept_invalid_certs: false,
            context_headers: None,
        }
    }

    /// A check of `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Result<Self, CheckConfigError> {
        Self::builder(url).build()
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    async fn probe(&self) -> Probe {
        let mut details = serde_json::Map::new();
        details.insert("url".into(), json!(redacted(&self.url)));
        details.insert("host".into(), json!(self.url.host_str().unwrap_or_default()));
        let start = Instant::now();
        let mut request = self.client.get(self.url.clone());
        if let Some(source) = &self.context_headers {
            for (name, value) in source() {
                request = request.header(name, value);
            }
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let message = describe_error(&e);
                details.insert("error".into(), json!(message));
                return Probe::unhealthy(message).with_details(Value::Object(details));
            }
        };
        let status = response.status().as_u16();
        details.insert("status_code".into(), json!(status));
        if response.url() != &self.url {
            details.insert("final_url".into(), json!(redacted(response.url())));
        }
        let cert = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .map(cert_not_after);

        let mut problems = Vec::new();
        if !self.expect_status.contains(status) {
            problems.push(Problem::unhealthy(format!("HTTP {status}, expected {}", self.expect_status)));
        }
        if problems.is_empty() && (self.body_contains.is_some() || self.json.is_some()) {
            match read_body(&mut response).await {
                Ok((body, truncated)) => {
                    if truncated {
                        details.insert("body_truncated".into(), json!(true));
                    }
                    problems.extend(self.check_body(&body, truncated));
                }
                Err(e) => {
                    problems.push(Problem::unhealthy(format!("cannot read the body: {}", error_chain(&e))))
                }
            }
        }
        let elapsed = millis(start.elapsed());
        details.insert("response_time_ms".into(), json!(elapsed));

        if let Some(max) = self.max_response_time
            && start.elapsed() > max
        {
            problems
                .push(Problem::degraded(format!("slow: {elapsed:.0} ms, more than {} ms", max.as_millis())));
        }
        match cert {
            Some(Ok(not_after)) => {
                let days_left = (not_after as f64 - unix_now()) / SECONDS_PER_DAY;
                details.insert("cert_not_after".into(), json!(rfc3339(not_after)));
                details.insert("cert_days_left".into(), json!(days_left));
                if days_left <= 0.0 {
                    problems.push(Problem::cert(
                        Status::Unhealthy,
                        format!(
                            "TLS certificate expired {:.0} days ago ({})",
                            -days_left,
                            rfc3339(not_after)
                        ),
                        days_left,
                    ));
                } else if days_left < f64::from(self.cert_warn_days) {
                    problems.push(Problem::cert(
                        Status::Degraded,
                        format!("TLS certificate expires in {days_left:.1} days ({})", rfc3339(not_after)),
                        days_left,
                    ));
                }
            }
            Some(Err(e)) => {
                details.insert("cert_error".into(), json!(e));
            }
            None => {}
        }

        let details = Value::Object(details);
        let worst = problems.iter().map(|p| p.status).max();
        let Some(worst) = worst else {
            return Probe::healthy(format!("HTTP {status} in {elapsed:.0} ms"))
                .with_details(details)
                .with_observed(elapsed, "ms");
        };
        let decisive: Vec<&Problem> = problems.iter().filter(|p| p.status == worst).collect();
        let message = decisive.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ");
        let probe = match worst {
            Status::Unhealthy => Probe::unhealthy(message),
            _ => Probe::degraded(message),
        }
        .with_details(details);
        match decisive.first().and_then(|p| p.cert_days) {
            Some(days) => probe.with_observed(days, "days"),
            None => probe.with_observed(elapsed, "ms"),
        }
    }

    fn check_body(&self, body: &[u8], truncated: bool) -> Vec<Problem> {
        let mut problems = Vec::new();
        let within =
            if truncated { format!(" (in its first {MAX_BODY_BYTES} bytes)") } else { String::new() };
        if let Some(needle) = &self.body_contains
            && !contains(body, needle.as_bytes())
        {
            problems.push(Problem::unhealthy(format!("body does not contain {needle:?}{within}")));
        }
        if let Some((pointer, expected)) = &self.json {
            if truncated {
                problems.push(Problem::unhealthy(format!(
                    "body is larger than {MAX_BODY_BYTES} bytes, not parsed"
                )));
                return problems;
            }
            match serde_json::from_slice::<Value>(body) {
                Err(e) => problems.push(Problem::unhealthy(format!("body is not JSON: {e}"))),
                Ok(document) => match document.pointer(pointer) {
                    None => problems.push(Problem::unhealthy(format!("no JSON value at {pointer:?}"))),
                    Some(actual) if json_matches(actual, expected) => {}
                    Some(actual) => problems.push(Problem::unhealthy(format!(
                        "JSON {pointer:?} is {}, expected {}",
                        truncate(&actual.to_string(), 200),
                        truncate(&expected.to_string(), 200)
                    ))),
                },
            }
        }
        problems
    }
}

impl HealthCheck for HttpCheck {
    fn check(&self) -> BoxFuture<'_, Probe> {
        Box::pin(self.probe())
    }
}

/// One reason a probe is not healthy.
struct Problem {
    status: Status,
    message: String,
    /// Days to certificate expiry, when the problem is the certificate.
    cert_days: Option<f64>,
}

impl Problem {
    fn unhealthy(message: String) -> Self {
        Self { status: Status::Unhealthy, message, cert_days: None }
    }

    fn degraded(message: String) -> Self {
        Self { status: Status::Degraded, message, cert_days: None }
    }

    fn cert(status: Status, message: String, days: f64) -> Self {
        Self { status, message, cert_days: Some(days) }
    }
}

/// Whether `actual` is `expected`, a string also matching the JSON form of a number or boolean.
fn json_matches(actual: &Value, expected: &Value) -> bool {
    if actual == expected {
        return true;
    }
    match (actual, expected) {
        (Value::Number(_) | Value::Bool(_), Value::String(text)) => {
            // Not `actual == text`: serde_json compares a Value with a str only when it is a string.
            let json_form = actual.to_string();
            json_form == text.trim()
        }
        // 1 and 1.0 are different serde_json values but the same JSON number.
        (Value::Number(a), Value::Number(b)) => a.as_f64().is_some_and(|a| Some(a) == b.as_f64()),
        _ => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|window| window == needle)
}

/// Reads up to [`MAX_BODY_BYTES`] of the body; `true` when there was more.
async fn read_body(response: &mut reqwest::Response) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// The URL without its password, for details.
fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("xxx"));
    }
    url.to_string()
}

/// A request error for people: "connection refused by 127.0.0.1:8080", or the chain of causes.
fn describe_error(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            let target = e.url().map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or_default(),
                    u.port_or_known_default().unwrap_or_default()
                )
            });
            return format!("connection refused by {}", target.unwrap_or_default());
        }
        source = cause.source();
    }
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_redirect() {
        "redirect failed"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    format!("{kind}: {}", error_chain(e))
}

/// The causes of `e` (without its own text, which repeats the URL), joined by ": ".
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper-util's "client error (Connect)" says nothing that the kind and the causes do not.
        if !text.starts_with("client error (") && !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

/// A certificate's `notAfter` in Unix seconds, from its DER.
pub(crate) fn cert_not_after(der: &[u8]) -> Result<i64, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("cannot parse the TLS certificate: {e}"))?;
    Ok(cert.validity().not_after.timestamp())
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

fn build_client(accept_invalid_certs: bool) -> Result<reqwest::Client, String> {
    let mut tls = sightline_tls::client_config(!accept_invalid_certs).map_err(|e| e.to_string())?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .tls_info(true)
        .no_proxy()
        .user_agent(concat!("sightline-health/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets() {
        let set = StatusSet::parse("2xx, 301,400-404").unwrap();
        assert!(set.contains(200) && set.contains(299) && set.contains(301) && set.contains(404));
        assert!(!set.contains(300) && !set.contains(405));
        assert_eq!(set.to_string(), "200-299,301,400-404");
        assert_eq!(StatusSet::default().to_string(), "200-399");
        for bad in ["", "2xx,", "600", "99", "6xx", "abc", "300-200", "200-"] {
            let e = StatusSet::parse(bad).unwrap_err();
            assert_eq!(e.parameter, "expect_status", "{bad:?}");
        }
        assert_eq!(StatusSet::codes([200, 204]).unwrap().to_string(), "200,204");
        assert!(StatusSet::codes([]).is_err());
        assert!(StatusSet::codes([1000]).is_err());
    }

    #[test]
    fn json_comparison() {
        assert!(json_matches(&json!("up"), &json!("up")));
        assert!(json_matches(&json!(3), &json!("3")));
        assert!(json_matches(&json!(true), &json!("true")));
        assert!(json_matches(&json!(1.0), &json!(1)));
        assert!(json_matches(&json!({"a": [1]}), &json!({"a": [1]})));
        assert!(!json_matches(&json!("3"), &json!(3)));
        assert!(!json_matches(&json!("up"), &json!("down")));
        assert!(!json_matches(&json!(null), &json!("null")));
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn certificate_expiry_from_der() {
        // Both encodings: UTCTime before 2050, GeneralizedTime from 2050 on.
        for (year, unix) in [(2030, 1_893_456_000_i64), (2051, 2_556_144_000)] {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(year, 1, 1);
            let cert = params.self_signed(&key).unwrap();
            assert_eq!(cert_not_after(cert.der()), Ok(unix));
            assert_eq!(rfc3339(unix), format!("{year}-01-01T00:00:00Z"));
        }
        assert!(cert_not_after(b"not a certificate").is_err());
    }

    #[test]
    fn validation_names_the_parameter() {
        let param = |b: HttpCheckBuilder| b.build().unwrap_err().parameter;
        assert_eq!(param(HttpCheck::builder("not a url")), "url");
        assert_eq!(param(HttpCheck::builder("ftp://example.com/")), "url");
        assert_eq!(param(HttpCheck::builder("http://example.com/").body_contains("")), "body_contains");
        assert_eq!(
            param(HttpCheck::builder("http://example.com/").json_pointer("status", "up")),
            "json_pointer"
        );
        assert_eq!(
            param(HttpCheck::builder("http://example.com/").max_response_time(Duration::ZERO)),
            "max_response_time"
        );
        assert!(HttpCheck::builder("https://example.com/").json_pointer("", json!({})).build().is_ok());
    }

    #[test]
    fn passwords_are_not_shown() {
        let url = Url::parse("https://user:secret@example.com/x").unwrap();
        assert_eq!(redacted(&url), "https://user:xxx@example.com/x");
    }
}
