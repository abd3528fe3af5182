//! The Prometheus-compatible query API: `/api/v1/query`, `/api/v1/query_range`, `/api/v1/series`,
//! `/api/v1/labels`, `/api/v1/label/{name}/values`, `/api/v1/status/buildinfo` and `/api/v1/targets`,
//! with Prometheus's JSON shapes, so that Grafana and other Prometheus clients work unchanged.
//!
//! Parameters come from the URL and, for POST, from an `application/x-www-form-urlencoded` body, as in
//! Prometheus. Times are Unix seconds (with a fraction) or RFC 3339; durations are seconds or
//! Prometheus durations (`5m`). Errors have Prometheus's shape and status codes: `bad_data` 400,
//! `execution` 422, `timeout` 503, `internal` 500.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::Expr;
use serde_json::{Map, Value, json};
use sightline_tsdb::promql::{Engine, EngineOptions, QueryError, Value as QueryValue};
use sightline_tsdb::{Labels, Querier, Series, Storage};

use crate::http::{ApiError, AppState};

/// The most points a range query may return per series (Prometheus's limit).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// The largest form body the query endpoints read.
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// The earliest and latest times the metadata endpoints use when none are given.
const MIN_TIME: i64 = i64::MIN / 4;
const MAX_TIME: i64 = i64::MAX / 4;

/// The time-series store and the engine behind the query API.
#[derive(Clone)]
pub struct QueryState {
    /// Where series are read.
    pub storage: Arc<dyn Storage>,
    /// The engine, with the server's limits.
    pub engine: Engine,
    /// Scrape targets, for `/api/v1/targets`.
    pub scrape: Option<Arc<sightline_tsdb::scrape::ScrapeManager>>,
}

impl std::fmt::Debug for QueryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryState").field("engine", &self.engine).finish_non_exhaustive()
    }
}

fn bad_data(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_data", message)
}

fn query_state(state: &AppState) -> Result<&QueryState, ApiError> {
    state.query.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the time-series store is disabled (tsdb.enabled)",
        )
    })
}

/// Maps an engine error to Prometheus's status code and `errorType`.
fn query_error(err: QueryError) -> ApiError {
    let status = match err.error_type() {
        "bad_data" => StatusCode::BAD_REQUEST,
        "execution" => StatusCode::UNPROCESSABLE_ENTITY,
        "timeout" | "canceled" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    // The engine's parse and type errors (`1:5: parse error: ...`) name the parameter in the API, as in
    // Prometheus; its own parameter checks already do.
    let message = match &err {
        QueryError::BadData { message, .. } if !message.starts_with("invalid parameter") => {
            format!("invalid parameter \"query\": {message}")
        }
        _ => err.to_string(),
    };
    ApiError::new(status, err.error_type(), message)
}

fn success(data: Value) -> Json<Value> {
    Json(json!({ "status": "success", "data": data }))
}

// === parameters ===

/// The request's parameters: the URL's query string, then a form body for POST.
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    async fn from_request(request: Request) -> Result<Self, ApiError> {
        let mut pairs: Vec<(String, String)> = request
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if request.method() == Method::POST && is_form {
            let body: Bytes =
                axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await.map_err(|e| {
                    bad_data(format!("cannot read the form body (limit {MAX_FORM_BYTES} bytes): {e}"))
                })?;
            pairs.extend(form_urlencoded::parse(&body).into_owned());
        }
        Ok(Self(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| parse_time(v).map_err(|e| bad_data(format!("invalid parameter \"{name}\": {e}"))))
            .transpose()
    }

    fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| parse_duration_ms(v).map_err(|e| bad_data(format!("invalid parameter \"{name}\": {e}"))))
            .transpose()
    }

    fn matchers(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        self.all("match[]").into_iter().map(parse_series_selector).collect::<Result<Vec<_>, _>>().map(
            |sets| {
                // Each selector's `or` alternatives become separate sets.
                sets.into_iter().flatten().collect()
            },
        )
    }
}

/// Now, in milliseconds since the epoch.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Parses a time as Prometheus does: Unix seconds with an optional fraction, or RFC 3339.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() {
            return Err(format!("cannot parse {text:?} to a valid timestamp"));
        }
        // Rounded to the millisecond, as Prometheus does.
        return Ok((seconds * 1000.0).round() as i64);
    }
    parse_rfc3339(text).ok_or_else(|| format!("cannot parse {text:?} to a valid timestamp"))
}

/// RFC 3339 with `Z` or a `±HH:MM` offset (humantime only takes `Z`).
fn parse_rfc3339(text: &str) -> Option<i64> {
    let (base, offset_secs) = match text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        Some(base) => (base, 0i64),
        None => {
            let split = text.len().checked_sub(6)?;
            let (base, offset) = text.split_at(split);
            let sign = match offset.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = offset.get(1..3)?.parse().ok()?;
            let minutes: i64 = offset.get(4..6)?.parse().ok()?;
            (base, sign * (hours * 3600 + minutes * 60))
        }
    };
    let time = humantime::parse_rfc3339(&format!("{base}Z")).ok()?;
    let ms = match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_millis()).ok()?,
    };
    Some(ms - offset_secs * 1000)
}

/// Parses a duration as Prometheus's API does: seconds (with a fraction) or a Prometheus duration.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() || seconds * 1000.0 > i64::MAX as f64 {
            return Err(format!("cannot parse {text:?} to a valid duration. It overflows int64"));
        }
        return Ok((seconds * 1000.0).round() as i64);
    }
    let d = crate::config::PromDuration::parse(text)
        .map_err(|_| format!("cannot parse {text:?} to a valid duration"))?;
    i64::try_from(d.0.as_millis())
        .map_err(|_| format!("cannot parse {text:?} to a valid duration. It overflows int64"))
}

/// Parses a `match[]` series selector into its matcher sets (one per `or` alternative).
fn parse_series_selector(text: &str) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let invalid = |e: String| bad_data(format!("invalid parameter \"match[]\": {e}"));
    let expr = promql_parser::parser::parse(text).map_err(invalid)?;
    let Expr::VectorSelector(selector) = expr else {
        return Err(invalid(format!("{text:?} is not a series selector such as up{{job=\"node\"}}")));
    };
    let mut base = selector.matchers.matchers.clone();
    if let Some(name) = &selector.name {
        base.push(Matcher::new(MatchOp::Equal, sightline_tsdb::labels::METRIC_NAME, name));
    }
    if selector.matchers.or_matchers.is_empty() {
        return Ok(vec![base]);
    }
    Ok(selector
        .matchers
        .or_matchers
        .iter()
        .map(|alternative| {
            let mut set = alternative.clone();
            if let Some(name) = &selector.name {
                set.push(Matcher::new(MatchOp::Equal, sightline_tsdb::labels::METRIC_NAME, name));
            }
            set
        })
        .collect())
}

// === JSON shapes ===

/// A sample value as Prometheus writes it: Go's shortest decimal, `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

/// A timestamp as Prometheus writes it: seconds with up to three decimals.
fn format_time(t: i64) -> Value {
    if t % 1000 == 0 { json!(t / 1000) } else { json!(t as f64 / 1000.0) }
}

fn labels_json(labels: &Labels) -> Value {
    let map: Map<String, Value> =
        labels.iter().map(|l| (l.name.clone(), Value::String(l.value.clone()))).collect();
    Value::Object(map)
}

fn point(t: i64, v: f64) -> Value {
    json!([format_time(t), format_value(v)])
}

fn series_json(series: &Series) -> Value {
    let values: Vec<Value> = series.samples.iter().map(|s| point(s.t, s.v)).collect();
    json!({ "metric": labels_json(&series.labels), "values": values })
}

/// `data` for a query result.
pub fn result_json(value: &QueryValue) -> Value {
    let result = match value {
        QueryValue::Scalar { t, v } => point(*t, *v),
        QueryValue::String { t, v } => json!([format_time(*t), v]),
        QueryValue::Vector(samples) => Value::Array(
            samples
                .iter()
                .map(|s| json!({ "metric": labels_json(&s.labels), "value": point(s.t, s.v) }))
                .collect(),
        ),
        QueryValue::Matrix(series) => Value::Array(series.iter().map(series_json).collect()),
    };
    json!({ "resultType": value.type_name(), "result": result })
}

// === handlers ===

/// An engine with the request's `timeout` when it is shorter than the server's.
fn engine_for(query: &QueryState, params: &Params) -> Result<Engine, ApiError> {
    let mut options: EngineOptions = query.engine.options().clone();
    if let Some(ms) = params.duration("timeout")? {
        let requested = Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0));
        if requested > Duration::ZERO && requested < options.timeout {
            options.timeout = requested;
        }
    }
    Ok(Engine::new(options))
}

/// Runs CPU-bound query work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("the query task failed: {e}"))
    })?
}

/// `GET|POST /api/v1/query`.
pub async fn instant(State(state): State<Arc<AppState>>, request: Request) -> Result<Json<Value>, ApiError> {
    let query_state = query_state(&state)?.clone();
    let params = Params::from_request(request).await?;
    let expr = params
        .get("query")
        .ok_or_else(|| bad_data("invalid parameter \"query\": query is required"))?
        .to_owned();
    let time = params.time("time")?.unwrap_or_else(now_ms);
    let engine = engine_for(&query_state, &params)?;
    let value = blocking(move || {
        let querier: &dyn Querier = &*query_state.storage;
        engine.instant_query(querier, &expr, time).map_err(query_error)
    })
    .await?;
    Ok(success(result_json(&value)))
}

/// `GET|POST /api/v1/query_range`.
pub async fn range(State(state): State<Arc<AppState>>, request: Request) -> Result<Json<Value>, ApiError> {
    let query_state = query_state(&state)?.clone();
    let params = Params::from_request(request).await?;
    let expr = params
        .get("query")
        .ok_or_else(|| bad_data("invalid parameter \"query\": query is required"))?
        .to_owned();
    let start =
        params.time("start")?.ok_or_else(|| bad_data("invalid parameter \"start\": start is required"))?;
    let end = params.time("end")?.ok_or_else(|| bad_data("invalid parameter \"end\": end is required"))?;
    if end < start {
        return Err(bad_data("invalid parameter \"end\": end timestamp must not be before start time"));
    }
    let step =
        params.duration("step")?.ok_or_else(|| bad_data("invalid parameter \"step\": step is required"))?;
    if step <= 0 {
        return Err(bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step >= MAX_POINTS_PER_SERIES {
        return Err(bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let engine = engine_for(&query_state, &params)?;
    let value = blocking(move || {
        let querier: &dyn Querier = &*query_state.storage;
        engine.range_query(querier, &expr, start, end, step).map_err(query_error)
    })
    .await?;
    Ok(success(result_json(&value)))
}

fn time_range(params: &Params) -> Result<(i64, i64), ApiError> {
    let start = params.time("start")?.unwrap_or(MIN_TIME);
    let end = params.time("end")?.unwrap_or(MAX_TIME);
    if end < start {
        return Err(bad_data("invalid parameter \"end\": end timestamp must not be before start time"));
    }
    Ok((start, end))
}

fn storage_error(err: sightline_tsdb::StorageError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", err.to_string())
}

/// `GET|POST /api/v1/series`.
pub async fn series(State(state): State<Arc<AppState>>, request: Request) -> Result<Json<Value>, ApiError> {
    let query_state = query_state(&state)?.clone();
    let params = Params::from_request(request).await?;
    let sets = params.matchers()?;
    if sets.is_empty() {
        return Err(bad_data("no match[] parameter provided"));
    }
    let (start, end) = time_range(&params)?;
    let limit = limit(&params)?;
    let labels = blocking(move || {
        let mut all: Vec<Labels> = Vec::new();
        for set in &sets {
            all.extend(query_state.storage.series(set, start, end).map_err(storage_error)?);
        }
        all.sort();
        all.dedup();
        Ok(all)
    })
    .await?;
    let data: Vec<Value> = labels.iter().take(limit).map(labels_json).collect();
    Ok(success(Value::Array(data)))
}

fn limit(params: &Params) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(usize::MAX),
        Some(text) => match text.parse::<usize>() {
            Ok(0) => Ok(usize::MAX),
            Ok(n) => Ok(n),
            Err(_) => {
                Err(bad_data(format!("invalid parameter \"limit\": cannot parse {text:?} as a number")))
            }
        },
    }
}

/// Names or values over every `match[]` set (all series when none is given), merged and sorted.
fn merged(
    sets: &[Vec<Matcher>],
    mut read: impl FnMut(&[Matcher]) -> Result<Vec<String>, sightline_tsdb::StorageError>,
) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    if sets.is_empty() {
        out = read(&[]).map_err(storage_error)?;
    }
    for set in sets {
        out.extend(read(set).map_err(storage_error)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(State(state): State<Arc<AppState>>, request: Request) -> Result<Json<Value>, ApiError> {
    let query_state = query_state(&state)?.clone();
    let params = Params::from_request(request).await?;
    let sets = params.matchers()?;
    let (start, end) = time_range(&params)?;
    let limit = limit(&params)?;
    let names = blocking(move || merged(&sets, |m| query_state.storage.label_names(m, start, end))).await?;
    Ok(success(json!(names.into_iter().take(limit).collect::<Vec<_>>())))
}

/// `GET /api/v1/label/{name}/values`.
pub async fn label_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let query_state = query_state(&state)?.clone();
    // Prometheus accepts UTF-8 names escaped as `U__...`; plain names are the common case.
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(bad_data(format!("invalid label name: {name:?}")));
    }
    let params = Params::from_request(request).await?;
    let sets = params.matchers()?;
    let (start, end) = time_range(&params)?;
    let limit = limit(&params)?;
    let values =
        blocking(move || merged(&sets, |m| query_state.storage.label_values(&name, m, start, end))).await?;
    Ok(success(json!(values.into_iter().take(limit).collect::<Vec<_>>())))
}

/// `GET /api/v1/targets?state=active|dropped|any&scrapePool=JOB`, in Prometheus's shape.
pub async fn targets(State(state): State<Arc<AppState>>, request: Request) -> Result<Json<Value>, ApiError> {
    let query_state = query_state(&state)?;
    let params = Params::from_request(request).await?;
    let wanted = params.get("state").unwrap_or("any").to_ascii_lowercase();
    if !["any", "active", "dropped"].contains(&wanted.as_str()) {
        return Err(bad_data(format!(
            "invalid parameter \"state\": {wanted:?} is not active, dropped or any"
        )));
    }
    let pool = params.get("scrapePool");
    let mut active: Vec<Value> = Vec::new();
    if wanted != "dropped" {
        let targets = query_state.scrape.as_ref().map(|s| s.targets()).unwrap_or_default();
        for target in targets.iter().filter(|t| pool.is_none_or(|p| p == t.scrape_pool)) {
            active.push(serde_json::to_value(target).map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("cannot encode a target: {e}"),
                )
            })?);
        }
    }
    // Static targets are never dropped: there is no relabelling that could drop them.
    Ok(success(json!({ "activeTargets": active, "droppedTargets": [] })))
}

/// `GET /api/v1/status/buildinfo`, with Prometheus's keys.
pub async fn buildinfo() -> Json<Value> {
    success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": crate::REVISION,
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "application": "sightline",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_prometheus_does() {
        assert_eq!(parse_time("1435781451.781"), Ok(1_435_781_451_781));
        assert_eq!(parse_time("1435781451"), Ok(1_435_781_451_000));
        assert_eq!(parse_time("2015-07-01T20:10:51.781Z"), Ok(1_435_781_451_781));
        assert_eq!(parse_time("2015-07-01T22:10:51.781+02:00"), Ok(1_435_781_451_781));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn durations_take_seconds_or_prometheus_units() {
        assert_eq!(parse_duration_ms("15"), Ok(15_000));
        assert_eq!(parse_duration_ms("0.5"), Ok(500));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert!(parse_duration_ms("five").is_err());
    }

    #[test]
    fn values_format_as_go_does() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_time(1_500), json!(1.5));
        assert_eq!(format_time(2_000), json!(2));
    }

    #[test]
    fn series_selectors_become_matcher_sets() {
        let sets = parse_series_selector(r#"up{job="node"}"#).expect("selector");
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].len(), 2);
        let err = parse_series_selector("sum(up)").expect_err("not a selector");
        assert!(format!("{err:?}").contains("not a series selector"), "{err:?}");
        assert!(parse_series_selector("up{").is_err());
    }
}
