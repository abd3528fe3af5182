//! The audit API: `POST /api/v1/audit/events` (JSON array or NDJSON; durable before it answers),
//! `GET /api/v1/audit/events` (search), `GET /api/v1/audit/export` (NDJSON), `GET /api/v1/audit/verify`;
//! the `audit-storage` health check; and the server's own security events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::{Query as QueryParams, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sightline_audit::{AnyStore, AuditEvent, AuditStore, AuditWriter, Cursor, Facet, Query, WriteError};
use sightline_health::{BoxFuture, HealthCheck, Probe};

use crate::http::{ApiError, AppState};

/// The most events one search page returns.
pub const MAX_PAGE: usize = 1000;

/// What the audit endpoints share.
#[derive(Debug, Clone)]
pub struct AuditState {
    /// The store, for reads.
    pub store: Arc<AnyStore>,
    /// The writer, for ingest.
    pub writer: AuditWriter,
    /// Largest request body.
    pub max_request_bytes: usize,
    /// Most events per request.
    pub max_request_events: usize,
    /// How long a durable write may wait.
    pub commit_timeout: Duration,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_data", message)
}

fn unavailable(message: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("audit storage is unavailable: {message}"),
    )
}

fn audit_state(state: &AppState) -> Result<&AuditState, ApiError> {
    state.audit.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "the audit trail is not enabled on this server")
    })
}

/// Parses a body of events: a JSON array, one JSON object, or NDJSON (one object per line). Every event
/// is validated before any is stored; errors name the event (from 0) and the field.
pub fn parse_events(body: &[u8], max_events: usize) -> Result<Vec<AuditEvent>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the body is not UTF-8: {e}"))?;
    let trimmed = text.trim_start();
    let values: Vec<Value> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| format!("the body is not a JSON array of events: {e}"))?
    } else {
        let mut values = Vec::new();
        for (line_number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line)
                .map_err(|e| format!("line {}: not a JSON object: {e}", line_number + 1))?;
            values.push(value);
            if values.len() > max_events {
                break;
            }
        }
        values
    };
    if values.is_empty() {
        return Err("no events in the body: send a JSON array or one JSON object per line".into());
    }
    if values.len() > max_events {
        return Err(format!("more than {max_events} events in one request; split the batch"));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            if !value.is_object() {
                return Err(format!("event {i}: not a JSON object"));
            }
            AuditEvent::from_json(value).map_err(|e| format!("event {i}: {e}"))
        })
        .collect()
}

/// `POST /api/v1/audit/events`: stores the events durably, all or nothing, and answers with their ids.
pub async fn post_events(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let audit = audit_state(&state)?;
    let body = axum::body::to_bytes(request.into_body(), audit.max_request_bytes).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is over {} bytes; send smaller batches", audit.max_request_bytes),
        )
    })?;
    let events = parse_events(&body, audit.max_request_events).map_err(|message| {
        audit.writer.count_rejected("invalid", 1);
        bad(message)
    })?;
    let count = events.len();
    let ids = match tokio::time::timeout(audit.commit_timeout, audit.writer.record_all_durable(events)).await
    {
        Ok(Ok(ids)) => ids,
        Ok(Err(WriteError::Invalid(e))) => return Err(bad(e.to_string())),
        Ok(Err(WriteError::Duplicate(id))) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("an event with id {id} is stored already; nothing of this batch was stored"),
            ));
        }
        Ok(Err(error)) => return Err(unavailable(error)),
        Err(_) => {
            audit.writer.count_rejected("timeout", count);
            return Err(unavailable(format!(
                "no commit within {:?}; the events may still be stored: retry with the same ids",
                audit.commit_timeout
            )));
        }
    };
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    Ok((StatusCode::OK, Json(json!({ "status": "success", "data": { "count": count, "ids": ids } })))
        .into_response())
}

fn parse_search(
    params: &HashMap<String, String>,
) -> Result<(Query, usize, Option<Cursor>, Option<Facet>), ApiError> {
    let mut query = Query::default();
    let mut limit = 100;
    let mut cursor = None;
    let mut facet = None;
    for (key, value) in params {
        match key.as_str() {
            "q" => {
                query = Query::parse(value, SystemTime::now())
                    .map_err(|e| bad(format!("parameter \"q\": {e}")))?
            }
            "limit" => {
                limit = value.parse().ok().filter(|l| (1..=MAX_PAGE).contains(l)).ok_or_else(|| {
                    bad(format!("parameter \"limit\": {value:?} is not a number from 1 to {MAX_PAGE}"))
                })?;
            }
            "cursor" => {
                cursor = Some(Cursor::decode(value).map_err(|e| bad(format!("parameter \"cursor\": {e}")))?)
            }
            "count_by" => {
                facet = Some(Facet::parse(value).map_err(|e| bad(format!("parameter \"count_by\": {e}")))?)
            }
            _ => return Err(bad(format!("unknown parameter {key:?}; use q, limit, cursor or count_by"))),
        }
    }
    Ok((query, limit, cursor, facet))
}

/// `GET /api/v1/audit/events?q=&limit=&cursor=&count_by=`: newest first, a page at a time; with
/// `count_by`, counts grouped by that field instead.
pub async fn search(
    State(state): State<Arc<AppState>>,
    QueryParams(params): QueryParams<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let audit = audit_state(&state)?;
    let (query, limit, cursor, facet) = parse_search(&params)?;
    if let Some(facet) = facet {
        let counts = audit.store.count_by(&query, facet, limit).await.map_err(unavailable)?;
        let data: Vec<Value> =
            counts.iter().map(|(value, n)| json!({ "value": value, "count": n })).collect();
        return Ok(Json(json!({ "status": "success", "data": { "field": facet.as_str(), "counts": data } })));
    }
    let page = audit.store.search(&query, limit, cursor).await.map_err(unavailable)?;
    let events: Vec<Value> = page.events.iter().map(stored_json).collect();
    Ok(Json(json!({
        "status": "success",
        "data": { "events": events, "next_cursor": page.next_cursor.map(|c| c.encode()) },
    })))
}

fn stored_json(stored: &sightline_audit::StoredEvent) -> Value {
    let mut value = serde_json::to_value(&stored.event).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("seq".into(), json!(stored.seq));
        map.insert("hash".into(), json!(stored.hash.to_string()));
    }
    value
}

/// `GET /api/v1/audit/export?q=`: every matching event as NDJSON, oldest first without `q` (chain order),
/// newest first with it. Lines are the import format.
pub async fn export(
    State(state): State<Arc<AppState>>,
    QueryParams(params): QueryParams<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let audit = audit_state(&state)?;
    let query = match params.get("q") {
        Some(q) => {
            Some(Query::parse(q, SystemTime::now()).map_err(|e| bad(format!("parameter \"q\": {e}")))?)
        }
        None => None,
    };
    if let Some(key) = params.keys().find(|k| k.as_str() != "q") {
        return Err(bad(format!("unknown parameter {key:?}; use q")));
    }
    let store = audit.store.clone();
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut after = 0;
        let mut cursor = None;
        loop {
            let batch = match &query {
                None => store.scan(after, 1000).await.map(|events| (events, None)),
                Some(query) => {
                    store.search(query, 1000, cursor).await.map(|page| (page.events, page.next_cursor))
                }
            };
            let (events, next) = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    let _ = sender.send(Err(std::io::Error::other(error.to_string()))).await;
                    return;
                }
            };
            if events.is_empty() {
                return;
            }
            let mut chunk = Vec::new();
            for stored in &events {
                let _ = serde_json::to_writer(&mut chunk, &stored.event);
                chunk.push(b'\n');
            }
            after = events.last().map_or(after, |e| e.seq);
            if sender.send(Ok(chunk)).await.is_err() {
                return;
            }
            match (&query, next) {
                (None, _) => {}
                (Some(_), Some(next)) => cursor = Some(next),
                (Some(_), None) => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response())
}

/// `GET /api/v1/audit/verify`: walks the hash chain.
pub async fn verify(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let audit = audit_state(&state)?;
    let report = sightline_audit::verify::verify(audit.store.as_ref()).await.map_err(unavailable)?;
    Ok(Json(json!({
        "status": "success",
        "data": {
            "ok": report.ok,
            "checked": report.checked,
            "from_seq": report.from_seq,
            "head_seq": report.head_seq,
            "problem": report.problem.map(|p| json!({
                "kind": p.kind.as_str(),
                "seq": p.seq,
                "id": p.id,
                "detail": p.detail,
            })),
        }
    })))
}

/// The `audit-storage` health check: the database answers and the writer is committing.
#[derive(Debug)]
pub struct StorageCheck {
    /// The store.
    pub store: Arc<AnyStore>,
    /// The writer.
    pub writer: AuditWriter,
}

impl HealthCheck for StorageCheck {
    fn check(&self) -> BoxFuture<'_, Probe> {
        Box::pin(async move {
            if self.writer.is_unavailable() {
                return Probe::unhealthy(format!("audit commits are failing: {}", self.writer.last_error()));
            }
            match self.store.ping().await {
                Ok(()) => Probe::healthy(format!(
                    "{} answers; {} events queued",
                    self.store.backend(),
                    self.writer.queued()
                )),
                Err(error) => Probe::unhealthy(error.to_string()),
            }
        })
    }
}
