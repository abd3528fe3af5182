//! The bearer-token guard that every write endpoint uses.
//!
//! Tokens are compared as SHA-256 digests in constant time, against every configured token without
//! stopping at the first match, so neither the content nor the length of a token leaks through timing.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::ApiError;

/// The accepted API tokens, kept as digests.
#[derive(Clone)]
pub struct Tokens {
    digests: Arc<[[u8; 32]]>,
    failures: sightline_core::Registry,
    audit: Option<sightline_audit::AuditWriter>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("count", &self.digests.len()).finish_non_exhaustive()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A bearer token that matches none of the configured ones.
    Invalid,
}

impl Tokens {
    /// Digests `tokens`; `registry` receives `sightline_auth_failures_total`.
    pub fn new(tokens: &[String], registry: sightline_core::Registry) -> Self {
        let _ = registry.describe(&sightline_core::Descriptor::counter(
            "sightline_auth_failures_total",
            "Requests to protected endpoints refused for a missing or invalid bearer token.",
        ));
        let digests = tokens.iter().map(|t| digest(t.as_bytes())).collect();
        Self { digests, failures: registry, audit: None }
    }

    /// Records every refusal in the audit trail too (`auth.token`, outcome `denied`).
    #[must_use]
    pub fn with_audit(mut self, writer: sightline_audit::AuditWriter) -> Self {
        self.audit = Some(writer);
        self
    }

    /// Audits a refusal without waiting: when the queue is full the event is dropped and counted.
    fn audit_refusal(&self, refusal: Refusal, request: &Request) {
        let Some(writer) = &self.audit else { return };
        let reason = match refusal {
            Refusal::Missing => "missing",
            Refusal::Invalid => "invalid",
        };
        let user_agent = request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok());
        let mut event = sightline_audit::AuditEvent::builder("auth.token", "anonymous")
            .actor_type("client")
            .outcome(sightline_audit::Outcome::Denied)
            .severity(sightline_audit::Severity::Medium)
            .component("api")
            .target("endpoint", request.uri().path())
            .message(format!("refused a request with a {reason} bearer token"))
            .attribute("reason", reason)
            .attribute("method", request.method().as_str());
        if let Some(agent) = user_agent {
            event = event.user_agent(agent);
        }
        if let Some(ip) = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>() {
            event = event.actor_ip(ip.0.ip().to_string());
        }
        if let Some(trace) = sightline_trace::current_trace_id() {
            event = event.trace_id(trace.to_string());
        }
        if let Ok(event) = event.build() {
            let _ = writer.try_record(event);
        }
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> Result<(), Refusal> {
        let token = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(Refusal::Missing)?;
        let presented = digest(token.as_bytes());
        let matched = self.digests.iter().fold(subtle::Choice::from(0), |acc, d| acc | d.ct_eq(&presented));
        if bool::from(matched) { Ok(()) } else { Err(Refusal::Invalid) }
    }

    fn count_failure(&self, refusal: Refusal) {
        let reason = match refusal {
            Refusal::Missing => "missing",
            Refusal::Invalid => "invalid",
        };
        if let Ok(counter) = self.failures.counter("sightline_auth_failures_total", &[("reason", reason)]) {
            counter.increment(1);
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Middleware: passes requests with a valid bearer token, answers 401 otherwise.
///
/// Apply it with `axum::middleware::from_fn_with_state(tokens, require_token)` to the write routes.
pub async fn require_token(State(tokens): State<Tokens>, request: Request, next: Next) -> Response {
    match tokens.check(request.headers().get(header::AUTHORIZATION)) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tokens.count_failure(refusal);
            tokens.audit_refusal(refusal, &request);
            tracing::warn!(
                path = request.uri().path(),
                reason = ?refusal,
                "refused a request without a valid bearer token"
            );
            let message = match refusal {
                Refusal::Missing => "this endpoint needs an `Authorization: Bearer <token>` header",
                Refusal::Invalid => "the bearer token is not one of the server's API tokens",
            };
            let mut response =
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}
