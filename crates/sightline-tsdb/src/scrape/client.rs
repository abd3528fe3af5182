//! The HTTP side of a scrape: one client per job, with its authentication, timeout and body limit.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};

use crate::scrape::config::{
    ConfigError, DEFAULT_BODY_SIZE_LIMIT, GlobalConfig, PromDuration, ScrapeConfig, ScrapeProtocol,
};
use crate::scrape::parse::Format;
use crate::scrape::scrape_loop::ScrapeError;

/// What Prometheus 3 asks for: OpenMetrics first, then the text format.
pub const ACCEPT_HEADER: &str =
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// How a job authenticates.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic {
        username: String,
        username_file: Option<String>,
        password: Option<String>,
        password_file: Option<String>,
    },
    Header {
        kind: String,
        credentials: Option<String>,
        file: Option<String>,
    },
}

/// Fetches bodies for one job's targets.
#[derive(Debug, Clone)]
pub(crate) struct HttpScraper {
    client: reqwest::Client,
    auth: Auth,
    timeout: Duration,
    timeout_header: HeaderValue,
    accept: HeaderValue,
    body_limit: u64,
    fallback: Option<Format>,
}

// === impl HttpScraper ===

impl HttpScraper {
    pub(crate) fn new(job: &ScrapeConfig, global: &GlobalConfig) -> Result<Self, ConfigError> {
        let client = build_client(job).map_err(|reason| ConfigError::Field {
            context: format!("job {:?}", job.job_name),
            field: "tls_config",
            reason: format!("cannot build the HTTP client: {reason}"),
        })?;
        let auth = if let Some(basic) = &job.basic_auth {
            Auth::Basic {
                username: basic.username.clone(),
                username_file: basic.username_file.clone(),
                password: basic.password.as_ref().map(|s| s.0.clone()),
                password_file: basic.password_file.clone(),
            }
        } else if let Some(authz) = &job.authorization {
            Auth::Header {
                kind: authz.kind.clone(),
                credentials: authz.credentials.as_ref().map(|s| s.0.clone()),
                file: authz.credentials_file.clone(),
            }
        } else if job.bearer_token.is_some() || job.bearer_token_file.is_some() {
            Auth::Header {
                kind: "Bearer".into(),
                credentials: job.bearer_token.as_ref().map(|s| s.0.clone()),
                file: job.bearer_token_file.clone(),
            }
        } else {
            Auth::None
        };
        let timeout = job.timeout(global);
        let timeout_header =
            HeaderValue::from_str(&format!("{}", timeout.as_secs_f64())).map_err(|e| ConfigError::Field {
                context: format!("job {:?}", job.job_name),
                field: "scrape_timeout",
                reason: e.to_string(),
            })?;
        let body_limit =
            if job.body_size_limit.0 == 0 { DEFAULT_BODY_SIZE_LIMIT } else { job.body_size_limit.0 };
        let fallback = job.fallback_scrape_protocol.and_then(ScrapeProtocol::format);
        let accept = match &job.scrape_protocols {
            None => HeaderValue::from_static(ACCEPT_HEADER),
            Some(protocols) => accept_header(protocols),
        };
        Ok(Self { client, auth, timeout, timeout_header, accept, body_limit, fallback })
    }

    /// Fetches `url` into `body` (cleared first) within the scrape timeout; returns the body's format.
    pub(crate) async fn fetch(&self, url: &reqwest::Url, body: &mut Vec<u8>) -> Result<Format, ScrapeError> {
        body.clear();
        match tokio::time::timeout(self.timeout, self.fetch_inner(url, body)).await {
            Ok(result) => result,
            Err(_) => Err(ScrapeError::Timeout { timeout: PromDuration(self.timeout) }),
        }
    }

    async fn fetch_inner(&self, url: &reqwest::Url, body: &mut Vec<u8>) -> Result<Format, ScrapeError> {
        let mut request = self
            .client
            .get(url.clone())
            .header(ACCEPT, self.accept.clone())
            .header(USER_AGENT, concat!("Sightline/", env!("CARGO_PKG_VERSION")))
            .header("X-Prometheus-Scrape-Timeout-Seconds", self.timeout_header.clone());
        match &self.auth {
            Auth::None => {}
            Auth::Basic { username, username_file, password, password_file } => {
                let username = match username_file {
                    Some(path) => read_secret("basic_auth.username_file", path)?,
                    None => username.clone(),
                };
                let password = match (password, password_file) {
                    (_, Some(path)) => Some(read_secret("basic_auth.password_file", path)?),
                    (Some(p), None) => Some(p.clone()),
                    (None, None) => None,
                };
                request = request.basic_auth(username, password);
            }
            Auth::Header { kind, credentials, file } => {
                let credentials = match (credentials, file) {
                    (_, Some(path)) => read_secret("authorization.credentials_file", path)?,
                    (Some(c), None) => c.clone(),
                    (None, None) => String::new(),
                };
                // As Prometheus: no credentials, no header (rather than a bare "Bearer ").
                if credentials.is_empty() {
                    return self.send(request, body).await;
                }
                let mut value = HeaderValue::from_str(&format!("{kind} {credentials}")).map_err(|_| {
                    ScrapeError::Credentials {
                        field: "authorization",
                        path: "(inline)".into(),
                        reason: "the credentials contain characters not allowed in an HTTP header".into(),
                    }
                })?;
                value.set_sensitive(true);
                request = request.header(AUTHORIZATION, value);
            }
        }
        self.send(request, body).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        body: &mut Vec<u8>,
    ) -> Result<Format, ScrapeError> {
        let mut response =
            request.send().await.map_err(|e| ScrapeError::Request { message: describe(&e) })?;
        let status = response.status();
        if !status.is_success() {
            return Err(ScrapeError::Status { status: status.to_string() });
        }
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let Some(format) = Format::from_content_type(content_type).or(self.fallback) else {
            return Err(ScrapeError::ContentType { content_type: content_type.to_owned() });
        };
        if response.content_length().is_some_and(|len| len > self.body_limit) {
            return Err(ScrapeError::BodyTooLarge { limit: self.body_limit });
        }
        // Read chunk by chunk so that an oversized (or endlessly streaming) body is cut off at the limit
        // instead of being buffered whole; with gzip the limit applies to the decompressed bytes.
        while let Some(chunk) =
            response.chunk().await.map_err(|e| ScrapeError::Request { message: describe(&e) })?
        {
            if (body.len() + chunk.len()) as u64 > self.body_limit {
                return Err(ScrapeError::BodyTooLarge { limit: self.body_limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(format)
    }
}

/// An `Accept` header asking for `protocols` in order, as Prometheus builds it: falling q-values, then
/// anything at the lowest.
fn accept_header(protocols: &[ScrapeProtocol]) -> HeaderValue {
    let mut weight = protocols.len() + 1;
    let mut parts = Vec::with_capacity(protocols.len() + 1);
    for protocol in protocols {
        parts.push(format!("{};q=0.{weight}", protocol.media_type()));
        weight = weight.saturating_sub(1);
    }
    parts.push(format!("*/*;q=0.{weight}"));
    // Built from fixed ASCII media types and digits, so always a valid header value.
    HeaderValue::from_str(&parts.join(",")).unwrap_or_else(|_| HeaderValue::from_static(ACCEPT_HEADER))
}

/// Reads a password or token file, as Prometheus does at each request (so rotations need no reload).
fn read_secret(field: &'static str, path: &str) -> Result<String, ScrapeError> {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).map_err(|e| ScrapeError::Credentials {
        field,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A reqwest error with its causes (reqwest's own message is often just "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
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

fn build_client(job: &ScrapeConfig) -> Result<reqwest::Client, String> {
    let insecure_skip_verify = job.tls_config.insecure_skip_verify;
    let tls = sightline_tls::client_config(!insecure_skip_verify).map_err(|e| e.to_string())?;
    let mut builder = reqwest::Client::builder().tls_backend_preconfigured(tls).no_proxy().redirect(
        if job.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        },
    );
    if !job.enable_compression {
        builder = builder.no_gzip();
    }
    builder
        // Scrapes are periodic; keeping the connection saves a handshake per scrape.
        .pool_max_idle_per_host(1)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_follow_the_protocol_order() {
        let header = accept_header(&[ScrapeProtocol::PrometheusText004, ScrapeProtocol::OpenMetricsText100]);
        assert_eq!(
            header.to_str().expect("ascii"),
            "text/plain;version=0.0.4;q=0.3,application/openmetrics-text;version=1.0.0;q=0.2,*/*;q=0.1"
        );
    }
}
