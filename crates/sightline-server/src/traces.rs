//! `/api/v1/traces`: the server's own recent traces from the span store, with critical paths; and the
//! conversion back from that JSON for `sightline traces`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sightline_trace::store::{TraceQuery, TraceSummary};
use sightline_trace::{FieldValue, SpanId, SpanRecord, SpanStatus, TraceId, critical_path};

use crate::config::PromDuration;
use crate::http::{ApiError, AppState};

/// The most traces one query returns.
pub const MAX_LIMIT: usize = 1000;

fn bad(parameter: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_data", format!("invalid parameter {parameter:?}: {message}"))
}

fn no_store() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the span store is off (traces.store_capacity: 0); set a capacity to keep traces",
    )
}

/// Parses the query parameters of `GET /api/v1/traces`.
pub fn parse_query(params: &HashMap<String, String>) -> Result<TraceQuery, ApiError> {
    let mut query = TraceQuery::default();
    for (key, value) in params {
        match key.as_str() {
            "service" => query.service = Some(value.clone()),
            "name" => query.name = Some(value.clone()),
            "min_duration" => {
                query.min_duration = Some(PromDuration::parse(value).map_err(|e| bad(key, e))?.0);
            }
            "error" => {
                query.error = Some(match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad(key, format!("{value:?} is not a boolean; use true or false"))),
                });
            }
            "limit" => {
                let limit: usize =
                    value.parse().map_err(|_| bad(key, format!("{value:?} is not a whole number")))?;
                if limit == 0 || limit > MAX_LIMIT {
                    return Err(bad(key, format!("{limit} is out of range: use 1 to {MAX_LIMIT}")));
                }
                query.limit = limit;
            }
            _ => {
                return Err(bad(key, "unknown parameter; use service, name, min_duration, error or limit"));
            }
        }
    }
    Ok(query)
}

/// `GET /api/v1/traces?service=&name=&min_duration=&error=&limit=`: recent traces, newest first.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let query = parse_query(&params)?;
    let store = state.traces.store().ok_or_else(no_store)?;
    let data: Vec<Value> = store.query(&query).iter().map(summary_json).collect();
    Ok(Json(json!({ "status": "success", "data": data })))
}

fn summary_json(summary: &TraceSummary) -> Value {
    json!({
        "traceID": summary.trace_id.to_string(),
        "rootName": summary.root_name,
        "service": summary.service.as_ref(),
        "start": humantime::format_rfc3339_micros(summary.start).to_string(),
        "durationMs": summary.duration.as_secs_f64() * 1000.0,
        "spanCount": summary.span_count,
        "errorCount": summary.error_count,
    })
}

/// `GET /api/v1/traces/{trace_id}`: every stored span of the trace and its critical path;
/// `?format=otlp` answers in the OTLP JSON shape instead.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(trace_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let id: TraceId = trace_id.parse().map_err(|e| bad("trace_id", e))?;
    let store = state.traces.store().ok_or_else(no_store)?;
    let trace = store.trace(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no trace {id} in the span store (it keeps the last {} spans)", store.capacity()),
        )
    })?;
    match params.get("format").map(String::as_str) {
        None | Some("sightline") => {}
        Some("otlp") => return Ok(Json(state.traces.otlp_json(&trace.spans))),
        Some(other) => return Err(bad("format", format!("{other:?}: use sightline or otlp"))),
    }
    let path = critical_path(&trace.spans);
    let critical: std::collections::HashSet<SpanId> = path.iter().map(|s| s.span_id).collect();
    let spans: Vec<Value> = trace.spans.iter().map(|s| span_json(s, critical.contains(&s.span_id))).collect();
    let segments: Vec<Value> = path
        .iter()
        .map(|segment| {
            json!({
                "spanID": segment.span_id.to_string(),
                "name": segment.name,
                "startUnixNano": unix_nanos(segment.start).to_string(),
                "durationNanos": duration_nanos(segment.end.duration_since(segment.start).unwrap_or_default()),
            })
        })
        .collect();
    Ok(Json(json!({
        "status": "success",
        "data": { "traceID": id.to_string(), "spans": spans, "criticalPath": segments },
    })))
}

fn unix_nanos(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn field_json(value: &FieldValue) -> Value {
    match value {
        FieldValue::Bool(v) => json!(v),
        FieldValue::I64(v) => json!(v),
        FieldValue::U64(v) => json!(v),
        FieldValue::F64(v) => json!(v),
        FieldValue::Str(v) => json!(v),
    }
}

fn span_json(span: &SpanRecord, critical: bool) -> Value {
    let fields: serde_json::Map<String, Value> =
        span.fields.iter().map(|(k, v)| (k.to_string(), field_json(v))).collect();
    let events: Vec<Value> = span
        .events
        .iter()
        .map(|e| {
            let fields: serde_json::Map<String, Value> =
                e.fields.iter().map(|(k, v)| (k.to_string(), field_json(v))).collect();
            json!({
                "timeUnixNano": unix_nanos(e.time).to_string(),
                "level": e.level,
                "message": e.message,
                "fields": fields,
            })
        })
        .collect();
    json!({
        "spanID": span.span_id.to_string(),
        "parentSpanID": span.parent_span_id.map(|p| p.to_string()),
        "parentIsRemote": span.parent_is_remote,
        "name": span.name,
        "target": span.target,
        "service": span.service.as_ref(),
        "start": humantime::format_rfc3339_micros(span.start).to_string(),
        "startUnixNano": unix_nanos(span.start).to_string(),
        "durationNanos": duration_nanos(span.duration),
        "status": span.status.as_str(),
        "error": span.error,
        "fields": fields,
        "events": events,
        "droppedEvents": span.dropped_events,
        "critical": critical,
    })
}

/// Rebuilds the spans of a `GET /api/v1/traces/{id}` answer, for the CLI's Gantt chart.
pub fn spans_from_json(trace_id: TraceId, data: &Value) -> Result<Vec<SpanRecord>, String> {
    let spans = data["spans"].as_array().ok_or("the answer has no `data.spans` list")?;
    spans
        .iter()
        .enumerate()
        .map(|(i, span)| {
            let text = |key: &str| span[key].as_str().ok_or_else(|| format!("span {i}: no `{key}`"));
            let span_id: SpanId = text("spanID")?.parse().map_err(|e| format!("span {i}: {e}"))?;
            let parent_span_id = match span["parentSpanID"].as_str() {
                Some(p) => Some(p.parse::<SpanId>().map_err(|e| format!("span {i}: {e}"))?),
                None => None,
            };
            let start_nanos: u64 =
                text("startUnixNano")?.parse().map_err(|_| format!("span {i}: bad startUnixNano"))?;
            let duration =
                span["durationNanos"].as_u64().ok_or_else(|| format!("span {i}: no durationNanos"))?;
            let status = match span["status"].as_str() {
                Some("error") => SpanStatus::Error,
                Some("ok") => SpanStatus::Ok,
                _ => SpanStatus::Unset,
            };
            Ok(SpanRecord {
                trace_id,
                span_id,
                parent_span_id,
                parent_is_remote: span["parentIsRemote"].as_bool().unwrap_or(false),
                name: Cow::Owned(text("name")?.to_owned()),
                target: Cow::Owned(span["target"].as_str().unwrap_or_default().to_owned()),
                service: Arc::from(span["service"].as_str().unwrap_or_default()),
                start: UNIX_EPOCH + Duration::from_nanos(start_nanos),
                duration: Duration::from_nanos(duration),
                fields: Vec::new(),
                status,
                error: span["error"].as_str().map(str::to_owned),
                events: Vec::new(),
                dropped_events: 0,
            })
        })
        .collect()
}
