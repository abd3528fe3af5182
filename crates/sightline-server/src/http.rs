//! The HTTP API: routes, their handlers and the request-metrics middleware.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sightline_core::{BaseUnit, Descriptor, Registry};
use sightline_export::Format;

use crate::auth::Tokens;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The registry served at `/metrics`; in `sightline serve` it is also the global recorder.
    pub registry: Registry,
    /// The API tokens for write endpoints.
    pub tokens: Tokens,
    /// Health checks and push heartbeats.
    pub health: crate::health::HealthState,
    /// The span store behind `/api/v1/traces`.
    pub traces: sightline_trace::TraceReader,
    /// Whether each request writes an access-log line.
    pub access_log: bool,
    /// The audit trail, when the server keeps one.
    pub audit: Option<crate::audit::AuditState>,
    /// Whether audit reads need a token (`audit.protect_reads`).
    pub protect_audit_reads: bool,
    /// The time-series store and PromQL engine, when the server keeps one.
    pub query: Option<crate::query::QueryState>,
    /// Rules, the notification pipeline and their API.
    pub alerting: Option<crate::alerting::AlertingState>,
    request_metrics: Arc<RequestMetrics>,
}

impl AppState {
    /// Registers the server's own metrics in `registry`.
    pub fn new(
        registry: Registry,
        tokens: &[String],
        health: crate::health::HealthState,
        traces: sightline_trace::TraceReader,
    ) -> Self {
        describe_http_metrics(&registry);
        let build_info = registry.gauge(
            "sightline_build_info",
            &[("version", env!("CARGO_PKG_VERSION")), ("revision", crate::REVISION)],
        );
        if let Ok(gauge) = build_info {
            gauge.set(1.0);
        }
        Self {
            tokens: Tokens::new(tokens, registry.clone()),
            registry,
            health,
            traces,
            access_log: true,
            audit: None,
            protect_audit_reads: false,
            query: None,
            alerting: None,
            request_metrics: Arc::default(),
        }
    }

    /// Serves the audit API from `audit`.
    #[must_use]
    pub fn with_audit(mut self, audit: crate::audit::AuditState) -> Self {
        self.tokens = self.tokens.with_audit(audit.writer.clone());
        self.audit = Some(audit);
        self
    }

    /// Serves the query API from `query`.
    #[must_use]
    pub fn with_query(mut self, query: crate::query::QueryState) -> Self {
        self.query = Some(query);
        self
    }

    /// Turns the access log on or off (`log.access_log`).
    #[must_use]
    pub fn with_access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }
}

fn describe_http_metrics(registry: &Registry) {
    let descriptors = [
        Descriptor::gauge("sightline_build_info", "Sightline's version and git revision; always 1."),
        Descriptor::counter(
            "sightline_http_requests_total",
            "HTTP requests served, by route, method and status.",
        ),
        Descriptor::histogram(
            "sightline_http_request_duration_seconds",
            "HTTP request latency, by route and method.",
        )
        .with_unit(BaseUnit::Seconds),
    ];
    for descriptor in &descriptors {
        // These descriptors are constants that satisfy the naming rules.
        let _ = registry.describe(descriptor);
    }
}

/// The router with every endpoint.
pub fn router(state: AppState) -> Router {
    let state = Arc::new(state);
    let guard = middleware::from_fn_with_state(state.tokens.clone(), crate::auth::require_token);
    let heartbeat = post(crate::health::heartbeat).layer(guard.clone());
    // Reads of the audit trail need a token too when `audit.protect_reads` is on.
    let protect_reads = state.protect_audit_reads;
    let audit_read = |route: axum::routing::MethodRouter<Arc<AppState>>| {
        if protect_reads { route.layer(guard.clone()) } else { route }
    };
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/health", get(crate::health::overall))
        .route("/health/live", get(live))
        .route("/health/ready", get(crate::health::ready))
        .route("/health/{group}", get(crate::health::group))
        .route("/api/v1/health/history", get(crate::health::history))
        .route("/api/v1/health/heartbeat/{name}", heartbeat)
        .route(
            "/api/v1/audit/events",
            audit_read(get(crate::audit::search)).merge(post(crate::audit::post_events).layer(guard.clone())),
        )
        .route("/api/v1/audit/export", audit_read(get(crate::audit::export)))
        .route("/api/v1/audit/verify", audit_read(get(crate::audit::verify)))
        .route("/api/v1/traces", get(crate::traces::list))
        .route("/api/v1/traces/{trace_id}", get(crate::traces::get))
        .route("/api/v1/query", get(crate::query::instant).post(crate::query::instant))
        .route("/api/v1/query_range", get(crate::query::range).post(crate::query::range))
        .route("/api/v1/series", get(crate::query::series).post(crate::query::series))
        .route("/api/v1/labels", get(crate::query::labels).post(crate::query::labels))
        .route("/api/v1/label/{name}/values", get(crate::query::label_values))
        .route("/api/v1/status/buildinfo", get(crate::query::buildinfo))
        .route("/api/v1/targets", get(crate::query::targets))
        .route("/api/v1/rules", get(crate::alerting::rules))
        .route("/api/v1/alerts", get(crate::alerting::alerts))
        .route("/api/v1/alerts/history", audit_read(get(crate::alerting::history)))
        .route("/api/v1/alerts/{fingerprint}/ack", post(crate::alerting::ack).layer(guard.clone()))
        .route(
            "/api/v1/silences",
            get(crate::alerting::list_silences)
                .merge(post(crate::alerting::add_silence).layer(guard.clone())),
        )
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(crate::alerting::expire_silence).layer(guard.clone()),
        )
        .route("/-/reload", post(crate::alerting::reload).layer(guard.clone()))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), track_requests))
        .with_state(state)
}

/// `GET /metrics`: Prometheus text or OpenMetrics, as the `Accept` header asks.
async fn metrics_handler(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let body = sightline_export::render(&state.registry.snapshot(), format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// `GET /health/live`: the process answers. It never depends on anything outside the process.
async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "healthy" }))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no endpoint at {}", request.uri().path()))
}

/// Traces, counts and times every request, and writes its access-log line. Metrics are labelled by route
/// template rather than raw path, so that path parameters cannot explode the series count. The request's
/// span joins the caller's trace when a valid `traceparent` header came with it (a malformed one starts a
/// new trace), and the answer's `traceparent` header tells the caller the trace id.
async fn track_requests(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    use tracing::Instrument as _;
    let start = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "http.request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    let parent = {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        sightline_trace::propagation::extract(
            header(sightline_trace::propagation::TRACEPARENT),
            header(sightline_trace::propagation::TRACESTATE),
        )
    };
    if let Some(parent) = parent {
        sightline_trace::propagation::set_parent(&span, &parent);
    }
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
    if let Some(value) = sightline_trace::propagation::traceparent(&span)
        .and_then(|v| axum::http::HeaderValue::from_str(&v).ok())
    {
        response.headers_mut().insert(sightline_trace::propagation::TRACEPARENT, value);
    }
    if state.access_log {
        let bytes = axum::body::HttpBody::size_hint(response.body()).exact();
        span.in_scope(|| {
            tracing::info!(
                target: "sightline::access",
                method = %method,
                route = %route,
                status,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                bytes,
                "request"
            );
        });
    }
    let key = (route, method, status);
    let handles = state.request_metrics.read().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
    let handles = match handles {
        Some(handles) => handles,
        None => {
            let (route, method, status) = (&key.0, key.1.as_str(), key.2.to_string());
            let labels = [("route", route.as_str()), ("method", method)];
            let histogram = state.registry.histogram("sightline_http_request_duration_seconds", &labels);
            let labels = [labels[0], labels[1], ("status", status.as_str())];
            let counter = state.registry.counter("sightline_http_requests_total", &labels);
            let handles = (
                counter.unwrap_or_else(|_| metrics::Counter::noop()),
                histogram.unwrap_or_else(|_| metrics::Histogram::noop()),
            );
            let mut cache = state.request_metrics.write().unwrap_or_else(|e| e.into_inner());
            // Routes are templates and statuses few, but methods come from clients: stop caching (the
            // registry's cardinality limit still applies) rather than grow without bound.
            if cache.len() < MAX_CACHED_REQUEST_SERIES {
                cache.insert(key, handles.clone());
            }
            handles
        }
    };
    handles.1.record(elapsed.as_secs_f64());
    handles.0.increment(1);
    response
}

/// How many (route, method, status) handle pairs the request middleware keeps.
const MAX_CACHED_REQUEST_SERIES: usize = 1024;

/// Request-metric handles by route template, method and status, so that counting a request does not
/// look its series up by name each time.
type RequestMetrics = std::sync::RwLock<
    std::collections::HashMap<(String, axum::http::Method, u16), (metrics::Counter, metrics::Histogram)>,
>;

/// An error answer in the shape of Prometheus's API: `{"status":"error","errorType":...,"error":...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    /// An error with an HTTP status, a short machine-readable type and a message for people.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "status": "error", "errorType": self.kind, "error": self.message });
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests;
