//! The health endpoints: `/health`, `/health/ready`, `/health/{group}`, the history API and push
//! heartbeats.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sightline_health::{CheckReport, CheckResult, Health, Heartbeat, Report, Status};

use crate::http::{ApiError, AppState};

/// The health registry and the heartbeats that `/api/v1/health/heartbeat/{name}` feeds.
#[derive(Debug, Clone)]
pub struct HealthState {
    /// The checks.
    pub health: Health,
    /// Push heartbeats by check name.
    pub heartbeats: Arc<HashMap<String, Heartbeat>>,
    /// Rendered answers by endpoint and shape, valid while the registry's generation stands still.
    cache: Arc<std::sync::Mutex<HashMap<String, Cached>>>,
}

#[derive(Debug, Clone)]
struct Cached {
    generation: u64,
    status: StatusCode,
    content_type: &'static str,
    body: axum::body::Bytes,
    /// A background render of a newer generation is under way.
    refreshing: bool,
}

impl HealthState {
    /// The state for `health` and its push heartbeats.
    pub fn new(health: Health, heartbeats: HashMap<String, Heartbeat>) -> Self {
        Self { health, heartbeats: Arc::new(heartbeats), cache: Arc::default() }
    }

    /// Serves `key`'s answer from cache, so that polling `/health` hard costs one render per change
    /// rather than one per request. When a check has recorded a result since the answer was rendered,
    /// the previous answer is served while one background render replaces it (stale while revalidate):
    /// an answer is at most one render behind, and a render never holds up other requests.
    fn cached<F>(&self, key: &str, render: F) -> Response
    where
        F: FnOnce(&Health) -> (StatusCode, &'static str, String) + Send + 'static,
    {
        let generation = self.health.generation();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = cache.get_mut(key) {
            let answer = entry.clone();
            if entry.generation != generation && !entry.refreshing {
                entry.refreshing = true;
                let (cache, health, key) = (self.cache.clone(), self.health.clone(), key.to_owned());
                tokio::task::spawn_blocking(move || {
                    let generation = health.generation();
                    let (status, content_type, body) = render(&health);
                    let fresh =
                        Cached { generation, status, content_type, body: body.into(), refreshing: false };
                    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, fresh);
                });
            }
            return answer.into_response();
        }
        drop(cache);
        // The first request for this key renders in line.
        let (status, content_type, body) = render(&self.health);
        let entry = Cached { generation, status, content_type, body: body.into(), refreshing: false };
        // Bounded by the endpoints, shapes and groups, all fixed by configuration.
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_owned(), entry.clone());
        entry.into_response()
    }
}

impl IntoResponse for Cached {
    fn into_response(self) -> Response {
        (self.status, [(header::CONTENT_TYPE, self.content_type)], self.body).into_response()
    }
}

/// The media type of the IETF health-check draft.
pub const HEALTH_JSON: &str = "application/health+json";

fn http_status(status: Status) -> StatusCode {
    match status {
        Status::Healthy | Status::Degraded => StatusCode::OK,
        Status::Unknown | Status::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// One check in Sightline's shape. Fields without a value (no observation, no groups, no details) are
/// left out rather than written as null, which keeps a 50-check answer small.
fn check_json(check: &CheckReport) -> Value {
    let last = check.last.as_ref();
    let observed = last.and_then(|r| r.observed.as_ref());
    let entry = json!({
        "name": check.name,
        "status": check.status().as_str(),
        "message": last.map(|r| r.message.as_str()),
        "observed_value": observed.map(|o| o.value),
        "observed_unit": observed.map(|o| o.unit.as_str()),
        "duration_ms": last.map(|r| (r.duration.as_secs_f64() * 1e6).round() / 1e3),
        "checked_at": last.map(|r| rfc3339(r.checked_at)),
        "consecutive_failures": check.consecutive_failures,
        "critical": check.critical,
        "groups": (!check.groups.is_empty()).then_some(&check.groups),
        "depends_on": (!check.depends_on.is_empty()).then_some(&check.depends_on),
        "details": last.map(|r| &r.details).filter(|d| !d.is_null()),
    });
    strip_nulls(entry)
}

fn wants_draft(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|r| r.trim().starts_with(HEALTH_JSON)))
}

/// Sightline's own shape, or the IETF draft's (`application/health+json`) when `draft`.
fn render(report: &Report, draft: bool) -> (StatusCode, &'static str, String) {
    let code = http_status(report.status);
    if draft {
        let mut checks = serde_json::Map::new();
        for check in &report.checks {
            let last = check.last.as_ref();
            let measurement =
                last.and_then(|r| r.observed.as_ref()).map_or("status", |o| measurement_name(&o.unit));
            let entry = json!({
                "componentId": check.name,
                "status": check.status().as_draft(),
                "observedValue": last.and_then(|r| r.observed.as_ref()).map(|o| o.value),
                "observedUnit": last.and_then(|r| r.observed.as_ref()).map(|o| o.unit.as_str()),
                "time": last.map(|r| rfc3339(r.checked_at)),
                "output": last.filter(|r| r.status != Status::Healthy).map(|r| r.message.as_str()),
            });
            checks.insert(format!("{}:{measurement}", check.name), Value::Array(vec![strip_nulls(entry)]));
        }
        let body = json!({
            "status": report.status.as_draft(),
            "version": env!("CARGO_PKG_VERSION"),
            "releaseId": crate::REVISION,
            "serviceId": "sightline",
            "checks": checks,
        });
        return (code, HEALTH_JSON, body.to_string());
    }
    let body = json!({
        "status": report.status.as_str(),
        "checks": report.checks.iter().map(check_json).collect::<Vec<_>>(),
    });
    (code, "application/json", body.to_string())
}

/// The draft's measurement names for the units checks report.
fn measurement_name(unit: &str) -> &'static str {
    match unit {
        "ms" => "responseTime",
        "bytes" | "ratio" => "utilization",
        "days" => "certificateExpiry",
        _ => "status",
    }
}

fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

/// `GET /health`: every check, from cache.
pub async fn overall(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let draft = wants_draft(&headers);
    let health = &state.health;
    health.cached(if draft { "overall/draft" } else { "overall" }, move |h| render(&h.report(), draft))
}

/// `GET /health/ready`: the critical checks; 503 names the failing ones.
pub async fn ready(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let draft = wants_draft(&headers);
    let health = &state.health;
    health.cached(if draft { "ready/draft" } else { "ready" }, move |h| {
        let report = h.readiness();
        if draft || http_status(report.status) == StatusCode::OK {
            return render(&report, draft);
        }
        let failing: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| http_status(c.status()) != StatusCode::OK)
            .map(|c| c.name.as_str())
            .collect();
        let body = json!({
            "status": report.status.as_str(),
            "failing": failing,
            "checks": report.checks.iter().map(check_json).collect::<Vec<_>>(),
        });
        (StatusCode::SERVICE_UNAVAILABLE, "application/json", body.to_string())
    })
}

/// `GET /health/{group}`.
pub async fn group(
    State(state): State<Arc<AppState>>,
    Path(group): Path<String>,
    headers: HeaderMap,
) -> Response {
    let draft = wants_draft(&headers);
    let health = &state.health;
    // Checked without building a report, so that a cached answer costs no report.
    if health.health.has_group(&group) {
        return health.cached(&format!("group/{group}/{draft}"), move |h| {
            // Groups are fixed by configuration, so the group still exists here.
            h.group(&group).map_or_else(
                || (StatusCode::NOT_FOUND, "application/json", String::new()),
                |report| render(&report, draft),
            )
        });
    }
    let groups = health.health.groups().join(", ");
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no health group {group:?}; groups: {groups}"))
        .into_response()
}

fn result_json(result: &CheckResult) -> Value {
    json!({
        "status": result.status.as_str(),
        "message": result.message,
        "observed_value": result.observed.as_ref().map(|o| o.value),
        "observed_unit": result.observed.as_ref().map(|o| o.unit.as_str()),
        "duration_ms": result.duration.as_secs_f64() * 1000.0,
        "checked_at": rfc3339(result.checked_at),
    })
}

/// `GET /api/v1/health/history?check=NAME`: the check's last results and every transition kept.
pub async fn history(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(check) = query.get("check") else {
        return ApiError::new(StatusCode::BAD_REQUEST, "bad_data", "query parameter `check` is required")
            .into_response();
    };
    let Some(history) = state.health.health.history(check) else {
        let known = state.health.health.names().join(", ");
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no health check {check:?}; checks: {known}"),
        )
        .into_response();
    };
    let transitions: Vec<Value> = history
        .transitions
        .iter()
        .map(|t| json!({ "from": t.from.as_str(), "to": t.to.as_str(), "message": t.message, "at": rfc3339(t.at) }))
        .collect();
    let body = json!({
        "status": "success",
        "data": {
            "check": check,
            "results": history.results.iter().map(result_json).collect::<Vec<_>>(),
            "transitions": transitions,
        }
    });
    Json(body).into_response()
}

/// `POST /api/v1/health/heartbeat/{name}` (bearer token): records a beat of a `heartbeat` check.
pub async fn heartbeat(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match state.health.heartbeats.get(&name) {
        Some(heartbeat) => {
            heartbeat.beat();
            Json(json!({ "status": "success", "data": { "check": name } })).into_response()
        }
        None => {
            let mut known: Vec<&str> = state.health.heartbeats.keys().map(String::as_str).collect();
            known.sort_unstable();
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no heartbeat check {name:?}; heartbeat checks: {}", known.join(", ")),
            )
            .into_response()
        }
    }
}

// === building checks from configuration ===

/// A configured check, ready to add to the registry.
#[allow(missing_debug_implementations)] // `dyn HealthCheck` has no Debug; nothing prints an Instance.
pub struct Instance {
    /// The check.
    pub check: Arc<dyn sightline_health::HealthCheck>,
    /// For `heartbeat` checks: the handle that the push endpoint beats.
    pub heartbeat: Option<Heartbeat>,
}

/// Builds the check an entry of `health.checks` describes. `metrics` is read by the memory and cpu
/// checks. Errors name the bad key.
pub fn instantiate(
    config: &crate::config::CheckConfig,
    metrics: &sightline_core::Registry,
) -> Result<Instance, String> {
    use sightline_health::checks::{
        command::CommandCheck, disk::DiskCheck, filesystem::FilesystemCheck, http::HttpCheck,
        http::StatusSet, redis::RedisCheck, resources, tcp::TcpCheck,
    };

    use crate::config::CheckType;
    let p = &config.params;
    let name = &config.name;
    let err = |e: sightline_health::checks::CheckConfigError| format!("check {name:?}: {e}");
    let check: Arc<dyn sightline_health::HealthCheck> = match config.kind {
        CheckType::Tcp => Arc::new(TcpCheck::new(p.address.as_deref().unwrap_or_default()).map_err(err)?),
        CheckType::Http => {
            let mut builder = HttpCheck::builder(p.url.clone().unwrap_or_default());
            if let Some(codes) = &p.expect_status {
                builder = builder.expect_status(StatusSet::codes(codes.iter().copied()).map_err(err)?);
            }
            if let Some(text) = &p.body_contains {
                builder = builder.body_contains(text.clone());
            }
            if let (Some(pointer), Some(equals)) = (&p.json_pointer, &p.equals) {
                builder = builder.json_pointer(pointer.clone(), equals.clone());
            }
            if let Some(max) = p.max_response_time {
                builder = builder.max_response_time(max.0);
            }
            if let Some(days) = p.cert_warn_days {
                builder = builder.cert_warn_days(days);
            }
            if let Some(accept) = p.accept_invalid_certs {
                builder = builder.accept_invalid_certs(accept);
            }
            // Probes carry the probe span's `traceparent`, so a traced target links its work to them.
            builder = builder.context_headers(Arc::new(|| {
                sightline_trace::propagation::inject(&tracing::Span::current())
            }));
            Arc::new(builder.build().map_err(err)?)
        }
        CheckType::Postgres => {
            #[cfg(feature = "postgres")]
            {
                let mut check = sightline_health::checks::postgres::PostgresCheck::new(
                    p.url.as_deref().unwrap_or_default(),
                )
                .map_err(err)?;
                if let Some(query) = &p.query {
                    check = check.with_query(query.clone()).map_err(err)?;
                }
                Arc::new(check)
            }
            #[cfg(not(feature = "postgres"))]
            return Err(format!("check {name:?}: this build of sightline has no PostgreSQL support"));
        }
        CheckType::Redis => match (&p.url, &p.address) {
            (Some(url), _) => Arc::new(RedisCheck::from_url(url).map_err(err)?),
            (None, address) => {
                Arc::new(RedisCheck::from_address(address.as_deref().unwrap_or_default()).map_err(err)?)
            }
        },
        CheckType::Filesystem => {
            Arc::new(FilesystemCheck::new(p.path.clone().unwrap_or_default()).map_err(err)?)
        }
        CheckType::Disk => {
            let mut builder = DiskCheck::builder(p.path.clone().unwrap_or_default());
            if let Some(ratio) = p.warn_ratio {
                builder = builder.warn_ratio(ratio);
            }
            if let Some(ratio) = p.fail_ratio {
                builder = builder.fail_ratio(ratio);
            }
            Arc::new(builder.build().map_err(err)?)
        }
        CheckType::Memory => match (p.warn_bytes, p.fail_bytes) {
            (None, None) => Arc::new(
                resources::MemoryCheck::host_ratio(
                    metrics,
                    p.warn_ratio.unwrap_or(resources::DEFAULT_WARN_RATIO),
                    p.fail_ratio.unwrap_or(resources::DEFAULT_FAIL_RATIO),
                )
                .map_err(err)?,
            ),
            (warn, fail) => Arc::new(
                resources::MemoryCheck::process_bytes(
                    metrics,
                    warn.unwrap_or(resources::DEFAULT_PROCESS_WARN_BYTES),
                    fail.unwrap_or(resources::DEFAULT_PROCESS_FAIL_BYTES),
                )
                .map_err(err)?,
            ),
        },
        CheckType::Cpu => Arc::new(
            resources::CpuCheck::new(metrics)
                .with_thresholds(
                    p.warn_ratio.unwrap_or(resources::DEFAULT_WARN_RATIO),
                    p.fail_ratio.unwrap_or(resources::DEFAULT_FAIL_RATIO),
                )
                .map_err(err)?,
        ),
        CheckType::Command => {
            Arc::new(CommandCheck::new(p.command.clone().unwrap_or_default()).map_err(err)?)
        }
        CheckType::Heartbeat => {
            let window = p.window.map_or(std::time::Duration::from_secs(300), |w| w.0);
            let heartbeat = Heartbeat::new(window, 1);
            return Ok(Instance { check: Arc::new(heartbeat.clone()), heartbeat: Some(heartbeat) });
        }
    };
    Ok(Instance { check, heartbeat: None })
}

/// The names of the built-in checks.
pub const BUILTIN_CHECKS: [&str; 2] = ["data-dir-writable", "data-dir-disk"];

/// The built-in check of the audit store (`storage.url`): the database answers and commits succeed.
pub const STORAGE_CHECK: &str = "audit-storage";

/// Builds the health registry from `health:`: the built-in checks on the data directory (unless
/// `builtin_checks: false`) and the configured ones.
pub fn build(
    config: &crate::config::HealthConfig,
    data_dir: &std::path::Path,
    metrics: &sightline_core::Registry,
    storage: Option<Arc<dyn sightline_health::HealthCheck>>,
) -> Result<HealthState, String> {
    use sightline_health::CheckOptions;
    use sightline_health::checks::{disk::DiskCheck, filesystem::FilesystemCheck};
    let mut builder = Health::builder(metrics);
    if config.builtin_checks {
        let writable = FilesystemCheck::new(data_dir).map_err(|e| format!("data directory check: {e}"))?;
        let disk = DiskCheck::new(data_dir).map_err(|e| format!("data directory check: {e}"))?;
        let options = CheckOptions::new().group("storage");
        builder = builder.check(BUILTIN_CHECKS[0], options.clone(), writable).check(
            BUILTIN_CHECKS[1],
            options.clone().interval(std::time::Duration::from_secs(60)),
            disk,
        );
        if let Some(storage) = storage {
            // Every 5 s, and unhealthy at the first failure: commits are failing or about to.
            let options = options.interval(std::time::Duration::from_secs(5)).thresholds(1, 1);
            builder = builder.check_arc(STORAGE_CHECK, options, storage);
        }
    }
    let mut heartbeats = HashMap::new();
    for check in &config.checks {
        let instance = instantiate(check, metrics)?;
        let mut options = CheckOptions::new()
            .interval(check.interval.0)
            .timeout(check.timeout.0)
            .critical(check.critical)
            .thresholds(check.failure_threshold, check.success_threshold);
        for dependency in &check.depends_on {
            options = options.depends_on(dependency.clone());
        }
        for group in &check.groups {
            options = options.group(group.clone());
        }
        if let Some(heartbeat) = instance.heartbeat {
            heartbeats.insert(check.name.clone(), heartbeat);
        }
        builder = builder.check_arc(check.name.clone(), options, instance.check);
    }
    let health = builder.build().map_err(|e| format!("health.checks: {e}"))?;
    Ok(HealthState::new(health, heartbeats))
}
