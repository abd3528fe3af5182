//! Alerting in the server: the rule manager over the time-series store, the in-process notification
//! pipeline and external Alertmanagers, their HTTP API (`/api/v1/rules`, `/api/v1/alerts`,
//! `/api/v1/silences`, acknowledgement, history) and reloads.
//!
//! The pipeline's state (alerts, silences, acknowledgements, the notification log, escalation progress)
//! lives in the server's database next to the audit trail (`alert_pipeline_*` tables), so a restart
//! neither forgets a silence nor repeats a notification the log shows as sent.
//!
//! The alert history is kept in the audit trail as `alert.*` events (target `alert/<fingerprint>`,
//! actor `sightline`, or the person who acknowledged or silenced): it is then durable in the server's
//! database (SQLite or PostgreSQL), chained, searchable and bounded by the audit retention, with no second
//! store to run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sightline_alert::factory::DefaultNotifierFactory;
use sightline_alert::notify::{AlertmanagerClient, AlertmanagerSettings};
use sightline_alert::pipeline::{Dispatcher, DispatcherOptions, PipelineEvent, Silence};
use sightline_alert::rules::group::RuleEvent;
use sightline_alert::rules::manager::{ManagerOptions, RuleManager};
use sightline_alert::sqlstore::SqlPipelineStore;
use sightline_alert::{Alert, AlertSink, Fingerprint, LabelSet};
use sightline_audit::{AuditEvent, AuditStore as _, AuditWriter};

use crate::config::Config;
use crate::http::{ApiError, AppState};

/// Where rule alerts go: the in-process pipeline and every external Alertmanager.
struct FanOut(Vec<Arc<dyn AlertSink>>);

impl AlertSink for FanOut {
    fn send(&self, alerts: Vec<Alert>) {
        if let Some((last, rest)) = self.0.split_last() {
            for sink in rest {
                sink.send(alerts.clone());
            }
            last.send(alerts);
        }
    }
}

/// The running alerting parts.
#[derive(Clone)]
pub struct AlertingState {
    pub rules: RuleManager,
    /// The pipeline, when `alerting.route` is set.
    pub dispatcher: Option<Dispatcher>,
    forwarders: Vec<Arc<AlertmanagerClient>>,
    /// The pipeline's durable state, flushed at shutdown.
    pipeline_store: Option<Arc<SqlPipelineStore>>,
    /// Added to alerts as they are sent, so part of their fingerprints.
    external_labels: LabelSet,
    /// The configuration file, for reloads.
    config_path: Option<std::path::PathBuf>,
    /// Serialises reloads.
    reload_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for AlertingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertingState").field("pipeline", &self.dispatcher.is_some()).finish_non_exhaustive()
    }
}

/// Records a history event in the audit trail without waiting (a full queue drops it with a warning:
/// notification must never wait on the history).
fn record(
    writer: &AuditWriter,
    action: &str,
    actor: &str,
    fingerprint: Fingerprint,
    labels: &LabelSet,
    message: String,
) {
    let name = labels.get("alertname").cloned().unwrap_or_default();
    let event = AuditEvent::builder(action, actor)
        .actor_type(if actor == "sightline" { "system" } else { "user" })
        .target("alert", fingerprint.to_string())
        .component("alerting")
        .message(message)
        .attribute("alertname", name)
        .attribute("labels", serde_json::to_value(labels).unwrap_or(Value::Null))
        .build();
    match event {
        Ok(event) => {
            if let Err(err) = writer.try_record(event) {
                tracing::warn!(error = %err, action, "alert history event not recorded");
            }
        }
        Err(err) => tracing::warn!(error = %err, action, "alert history event is invalid"),
    }
}

fn history_from_pipeline(writer: &AuditWriter, event: &PipelineEvent) {
    match event {
        PipelineEvent::Resolved { fingerprint, labels, .. } => {
            record(writer, "alert.resolved", "sightline", *fingerprint, labels, "resolved".into());
        }
        PipelineEvent::Silenced { fingerprint, labels, silence_ids, .. } => record(
            writer,
            "alert.silenced",
            "sightline",
            *fingerprint,
            labels,
            format!("silenced by {}", silence_ids.join(", ")),
        ),
        PipelineEvent::Inhibited { fingerprint, labels, inhibited_by, .. } => {
            let by: Vec<String> = inhibited_by.iter().map(ToString::to_string).collect();
            record(
                writer,
                "alert.inhibited",
                "sightline",
                *fingerprint,
                labels,
                format!("inhibited by {}", by.join(", ")),
            );
        }
        PipelineEvent::Unsuppressed { fingerprint, labels, .. } => {
            record(
                writer,
                "alert.unsuppressed",
                "sightline",
                *fingerprint,
                labels,
                "no longer suppressed".into(),
            );
        }
        PipelineEvent::Acked { fingerprint, labels, by, comment, .. } => {
            record(writer, "alert.acked", by, *fingerprint, labels, format!("acknowledged: {comment}"));
        }
        PipelineEvent::Escalated { fingerprint, labels, escalation, level, receivers, .. } => record(
            writer,
            "alert.escalated",
            "sightline",
            *fingerprint,
            labels,
            format!("escalation {escalation} level {level} to {}", receivers.join(", ")),
        ),
        PipelineEvent::Notified { receiver, integration, firing, resolved, attempts, .. } => {
            for (fps, state) in [(firing, "firing"), (resolved, "resolved")] {
                for fp in fps {
                    record(
                        writer,
                        "alert.notified",
                        "sightline",
                        *fp,
                        &LabelSet::new(),
                        format!("{state} sent to {receiver} ({integration}) after {attempts} attempt(s)"),
                    );
                }
            }
        }
        PipelineEvent::DeliveryFailed { receiver, integration, fingerprints, error, attempts, .. } => {
            for fp in fingerprints {
                record(
                    writer,
                    "alert.delivery_failed",
                    "sightline",
                    *fp,
                    &LabelSet::new(),
                    format!("{receiver} ({integration}) failed after {attempts} attempt(s): {error}"),
                );
            }
        }
        _ => {}
    }
}

/// Starts the rule manager, the pipeline (its state in the server's database, `storage.url`) and the
/// Alertmanager clients. Rule files that do not load stop start-up with their file:line.
pub async fn start(
    config: &Config,
    config_path: Option<&std::path::Path>,
    storage: Arc<dyn sightline_tsdb::Storage>,
    engine: Arc<sightline_tsdb::promql::Engine>,
    audit: AuditWriter,
    listen: std::net::SocketAddr,
) -> anyhow::Result<AlertingState> {
    let alerting = &config.alerting;
    let external_url = alerting.external_url.clone().unwrap_or_else(|| format!("http://{listen}"));
    let mut sinks: Vec<Arc<dyn AlertSink>> = Vec::new();
    let mut pipeline_store = None;
    let dispatcher = match alerting.routing() {
        Some(routing) => {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PipelineEvent>();
            let writer = audit.clone();
            tokio::spawn(async move {
                while let Some(event) = rx.recv().await {
                    history_from_pipeline(&writer, &event);
                }
            });
            let url = config.storage.url_in(&config.server.data_dir);
            let store = SqlPipelineStore::open_shared(&url).await.with_context(|| {
                format!(
                    "cannot open the alert pipeline's state in {}",
                    sightline_audit::any::redact_url(&url)
                )
            })?;
            pipeline_store = Some(store.clone());
            let options = DispatcherOptions {
                store,
                external_url: external_url.clone(),
                events: Some(tx),
                wall_clock_start: None,
            };
            let dispatcher = Dispatcher::new(routing, Arc::new(DefaultNotifierFactory), options)
                .context("alerting: cannot start the notification pipeline")?;
            sinks.push(Arc::new(dispatcher.clone()));
            Some(dispatcher)
        }
        None => None,
    };
    let mut forwarders = Vec::new();
    if !alerting.alertmanagers.is_empty() {
        let settings = AlertmanagerSettings {
            urls: alerting.alertmanagers.iter().map(|a| a.url.clone()).collect(),
            ..AlertmanagerSettings::default()
        };
        let client = Arc::new(AlertmanagerClient::new(settings).context("alerting.alertmanagers")?);
        sinks.push(client.clone());
        forwarders.push(client);
    }
    let options = ManagerOptions {
        evaluation_interval: alerting.evaluation_interval.0,
        external_labels: alerting.external_labels.clone().into_iter().collect(),
        external_url,
        ..ManagerOptions::default()
    };
    let rules = RuleManager::new(storage, engine, Arc::new(FanOut(sinks)), options);
    let writer = audit;
    rules.on_event(Arc::new(move |event: &RuleEvent| {
        let action = format!("alert.{}", format!("{:?}", event.to).to_ascii_lowercase());
        let message = format!("{:?} -> {:?}", event.from, event.to).to_ascii_lowercase();
        record(&writer, &action, "sightline", event.fingerprint, &event.labels, message);
    }));
    let paths = alerting.rule_paths().map_err(anyhow::Error::msg)?;
    rules.reload(&paths).map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(rule_files = paths.len(), pipeline = dispatcher.is_some(), "alerting started");
    Ok(AlertingState {
        rules,
        dispatcher,
        forwarders,
        pipeline_store,
        external_labels: alerting.external_labels.clone().into_iter().collect(),
        config_path: config_path.map(ToOwned::to_owned),
        reload_lock: Arc::default(),
    })
}

impl AlertingState {
    /// Re-reads the configuration file and applies its rules and routing; on any error the running
    /// configuration stays and the error is returned.
    pub fn reload(&self) -> Result<(), String> {
        let _guard = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let config = crate::config::Config::load(self.config_path.as_deref(), std::env::vars())
            .map_err(|e| e.to_string())?;
        let paths = config.alerting.rule_paths()?;
        // Check everything before changing anything.
        sightline_alert::rules::file::load_files(&paths).map_err(|diagnostics| {
            diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
        })?;
        match (&self.dispatcher, config.alerting.routing()) {
            (Some(dispatcher), Some(routing)) => {
                dispatcher.apply_config(routing).map_err(|e| e.to_string())?
            }
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => {
                return Err("adding or removing alerting.route needs a restart".to_owned());
            }
        }
        self.rules.reload(&paths).map_err(|e| e.to_string())?;
        tracing::info!(rule_files = paths.len(), "alerting configuration reloaded");
        Ok(())
    }

    /// Stops evaluation, flushes the Alertmanager queues and writes the pipeline's last state changes.
    pub async fn stop(&self) {
        self.rules.stop();
        for forwarder in &self.forwarders {
            forwarder.shutdown(Duration::from_secs(5)).await;
        }
        if let Some(store) = &self.pipeline_store {
            if tokio::time::timeout(Duration::from_secs(10), store.flush()).await.is_err() {
                tracing::error!("the alert pipeline's last state changes were not written within 10s");
            }
        }
    }
}

// === HTTP API ===

fn alerting(state: &AppState) -> Result<&AlertingState, ApiError> {
    state.alerting.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "alerting needs the time-series store (tsdb.enabled)",
        )
    })
}

fn pipeline(state: &AppState) -> Result<&Dispatcher, ApiError> {
    alerting(state)?.dispatcher.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the notification pipeline is off: set alerting.route (and receivers) to use silences and acknowledgement",
        )
    })
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_data", message)
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `GET /api/v1/rules`, in Prometheus's shape.
pub async fn rules(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let data = serde_json::to_value(alerting(&state)?.rules.rules_api()).unwrap_or(Value::Null);
    Ok(Json(json!({ "status": "success", "data": data })))
}

/// `GET /api/v1/alerts`, in Prometheus's shape, with each alert's fingerprint and what the pipeline
/// knows of it (`silencedBy`, `inhibitedBy`, `ackedBy`).
pub async fn alerts(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let alerting = alerting(&state)?;
    let reports: HashMap<Fingerprint, sightline_alert::pipeline::AlertStatusReport> = alerting
        .dispatcher
        .as_ref()
        .map(|d| d.alerts().into_iter().map(|r| (r.fingerprint, r)).collect())
        .unwrap_or_default();
    let mut alerts = Vec::new();
    for alert in alerting.rules.alerts_api().alerts {
        let mut labels = alert.labels.clone();
        for (k, v) in &alerting.external_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let fingerprint = Fingerprint::of(&labels);
        let mut value = serde_json::to_value(&alert).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("fingerprint".into(), json!(fingerprint.to_string()));
            if let Some(report) = reports.get(&fingerprint) {
                map.insert("silencedBy".into(), json!(report.silenced_by));
                let inhibited: Vec<String> = report.inhibited_by.iter().map(ToString::to_string).collect();
                map.insert("inhibitedBy".into(), json!(inhibited));
                if let Some(ack) = &report.acked {
                    map.insert("ackedBy".into(), json!(ack.by));
                    map.insert("ackedAt".into(), json!(rfc3339(ack.at)));
                }
            }
        }
        alerts.push(value);
    }
    Ok(Json(json!({ "status": "success", "data": { "alerts": alerts } })))
}

fn silence_json(silence: &Silence, state: &str) -> Value {
    let matchers: Vec<Value> = silence
        .matchers
        .iter()
        .map(|m| {
            let text = m.to_string();
            let (is_equal, is_regex) = if text.contains("!~") {
                (false, true)
            } else if text.contains("=~") {
                (true, true)
            } else if text.contains("!=") {
                (false, false)
            } else {
                (true, false)
            };
            json!({ "name": m.name, "value": m.value, "isEqual": is_equal, "isRegex": is_regex })
        })
        .collect();
    json!({
        "id": silence.id,
        "matchers": matchers,
        "startsAt": rfc3339(silence.starts_at),
        "endsAt": rfc3339(silence.ends_at),
        "updatedAt": rfc3339(silence.updated_at),
        "createdBy": silence.created_by,
        "comment": silence.comment,
        "status": { "state": state },
    })
}

/// `GET /api/v1/silences`, in Alertmanager's v2 shape.
pub async fn list_silences(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let dispatcher = pipeline(&state)?;
    let data: Vec<Value> = dispatcher
        .silences()
        .iter()
        .map(|(s, st)| silence_json(s, &format!("{st:?}").to_ascii_lowercase()))
        .collect();
    Ok(Json(json!({ "status": "success", "data": data })))
}

/// `POST /api/v1/silences`: `{"matchers": ["alertname=\"X\"", ...] or Alertmanager's objects,
/// "startsAt"?, "endsAt"? or "duration"?, "createdBy", "comment"}`.
pub async fn add_silence(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let dispatcher = pipeline(&state)?;
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .map_err(|e| bad(format!("cannot read the body: {e}")))?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    let created_by =
        field("createdBy").filter(|s| !s.is_empty()).ok_or_else(|| bad("createdBy: required"))?;
    let comment = field("comment").filter(|s| !s.is_empty()).ok_or_else(|| bad("comment: required"))?;
    let mut matchers = Vec::new();
    for (i, m) in body.get("matchers").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let text = match m {
            Value::String(text) => text.clone(),
            Value::Object(o) => {
                let name = o.get("name").and_then(Value::as_str).unwrap_or("");
                let value = o.get("value").and_then(Value::as_str).unwrap_or("");
                let regex = o.get("isRegex").and_then(Value::as_bool).unwrap_or(false);
                let equal = o.get("isEqual").and_then(Value::as_bool).unwrap_or(true);
                let op = match (equal, regex) {
                    (true, false) => "=",
                    (false, false) => "!=",
                    (true, true) => "=~",
                    (false, true) => "!~",
                };
                format!("{name}{op}{value:?}")
            }
            _ => return Err(bad(format!("matchers[{i}]: a string like name=\"value\" or an object"))),
        };
        let matcher = sightline_alert::pipeline::Matcher::parse(&text)
            .map_err(|e| bad(format!("matchers[{i}]: {e}")))?;
        matchers.push(matcher);
    }
    if matchers.is_empty() {
        return Err(bad("matchers: at least one is required"));
    }
    let now = dispatcher.now();
    let parse_time = |name: &str| -> Result<Option<SystemTime>, ApiError> {
        field(name)
            .map(|t| humantime::parse_rfc3339_weak(&t).map_err(|e| bad(format!("{name}: {e}"))))
            .transpose()
    };
    let starts_at = parse_time("startsAt")?.unwrap_or(now);
    let ends_at = match (parse_time("endsAt")?, field("duration")) {
        (Some(end), _) => end,
        (None, Some(d)) => {
            starts_at + crate::config::PromDuration::parse(&d).map_err(|e| bad(format!("duration: {e}")))?.0
        }
        (None, None) => return Err(bad("endsAt or duration: required")),
    };
    let silence = Silence {
        id: field("id").unwrap_or_default(),
        matchers,
        starts_at,
        ends_at,
        created_by: created_by.clone(),
        comment,
        updated_at: now,
    };
    let id = dispatcher.add_silence(silence).map_err(|e| bad(e.to_string()))?;
    audit_user_action(&state, "alert.silence.create", &created_by, "silence", &id);
    Ok(Json(json!({ "status": "success", "data": { "silenceID": id } })))
}

/// `DELETE /api/v1/silences/{id}`.
pub async fn expire_silence(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let dispatcher = pipeline(&state)?;
    dispatcher
        .expire_silence(&id)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()))?;
    audit_user_action(&state, "alert.silence.expire", "api", "silence", &id);
    Ok(Json(json!({ "status": "success", "data": null })))
}

/// `POST /api/v1/alerts/{fingerprint}/ack` with `{"by": "...", "comment": "..."}`.
pub async fn ack(
    State(state): State<Arc<AppState>>,
    Path(fingerprint): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let dispatcher = pipeline(&state)?;
    let fp: Fingerprint = fingerprint
        .parse()
        .map_err(|_| bad(format!("{fingerprint:?} is not a fingerprint (16 hex digits)")))?;
    let body = axum::body::to_bytes(request.into_body(), 64 << 10)
        .await
        .map_err(|e| bad(format!("cannot read the body: {e}")))?;
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| bad(format!("the body is not JSON: {e}")))?
    };
    let by = body
        .get("by")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("by: required"))?;
    let comment = body.get("comment").and_then(Value::as_str).unwrap_or("");
    let record = dispatcher.ack(fp, by, comment).map_err(|e| match e {
        sightline_alert::pipeline::dispatch::DispatchError::UnknownAlert(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
        }
        other => bad(other.to_string()),
    })?;
    Ok(Json(json!({ "status": "success", "data": { "by": record.by, "at": rfc3339(record.at) } })))
}

fn audit_user_action(state: &AppState, action: &str, actor: &str, kind: &str, id: &str) {
    let Some(audit) = &state.audit else { return };
    if let Ok(event) = AuditEvent::builder(action, actor).target(kind, id).component("alerting").build() {
        if let Err(err) = audit.writer.try_record(event) {
            tracing::warn!(error = %err, action, "not audited");
        }
    }
}

/// `GET /api/v1/alerts/history?alertname=&fingerprint=&since=&limit=`: the `alert.*` events of the audit
/// trail, newest first. Deliveries (`notified`, `delivery_failed`) are recorded per fingerprint, so they
/// show with `fingerprint=` (or no filter), not with `alertname=`.
pub async fn history(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let audit = state.audit.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the alert history lives in the audit store, which is off",
        )
    })?;
    let mut query = String::from("action:alert.*");
    for (key, value) in &params {
        match key.as_str() {
            "alertname" => query.push_str(&format!(" {value:?}")),
            "fingerprint" => query.push_str(&format!(" target:alert/{value}")),
            "since" => query.push_str(&format!(" since:{value}")),
            "limit" => {}
            other => {
                return Err(bad(format!(
                    "unknown parameter {other:?}; use alertname, fingerprint, since or limit"
                )));
            }
        }
    }
    let limit: usize = match params.get("limit") {
        Some(l) => l.parse().map_err(|_| bad(format!("limit: {l:?} is not a number")))?,
        None => 100,
    };
    let parsed = sightline_audit::Query::parse(&query, SystemTime::now()).map_err(|e| bad(e.to_string()))?;
    let page = audit
        .store
        .search(&parsed, limit.min(1000), None)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()))?;
    let alertname = params.get("alertname");
    let events: Vec<Value> = page
        .events
        .iter()
        // Free text also matches other fields; keep the events of exactly this alert name. Delivery events
        // name fingerprints only: ask for them with `fingerprint=`.
        .filter(|stored| {
            alertname.is_none_or(|name| {
                stored.event.attributes.get("alertname").and_then(Value::as_str) == Some(name.as_str())
            })
        })
        .map(|stored| {
            json!({
                "at": rfc3339(stored.event.timestamp),
                "event": stored.event.action.trim_start_matches("alert."),
                "fingerprint": stored.event.target.as_ref().map(|t| t.id.clone()),
                "alertname": stored.event.attributes.get("alertname"),
                "labels": stored.event.attributes.get("labels"),
                "by": stored.event.actor.id,
                "message": stored.event.message,
            })
        })
        .collect();
    Ok(Json(json!({ "status": "success", "data": events })))
}

/// `POST /-/reload`: re-reads rules and routing; the old configuration stays on error.
pub async fn reload(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let alerting = alerting(&state)?.clone();
    tokio::task::spawn_blocking(move || alerting.reload())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| {
            tracing::error!(error = %e, "reload refused; the running configuration stays");
            bad(e)
        })?;
    Ok(Json(json!({ "status": "success", "data": null })))
}
