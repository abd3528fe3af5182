//! Forwarding rule alerts to an existing Alertmanager cluster, as Prometheus does: every alert the rule
//! manager sends (firing ones every resend interval, resolved ones with their `endsAt`) is POSTed to
//! `/api/v2/alerts` of every configured Alertmanager, which then owns routing, grouping, silencing and
//! high availability.
//!
//! [`AlertmanagerClient::send`] never blocks rule evaluation: alerts go into a bounded queue (the oldest
//! dropped and counted when it overflows) that a background task drains in batches.
//!
//! Metrics: `sightline_alertmanager_notifications_sent_total{alertmanager}` and
//! `sightline_alertmanager_notification_errors_total{alertmanager}` count alerts per Alertmanager,
//! `sightline_alertmanager_notifications_dropped_total` counts alerts dropped by a full queue or given up
//! on by every Alertmanager, and `sightline_alertmanager_notification_queue_length` is the queue's length.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use crate::model::{Alert, AlertSink, LabelSet, NotifyError};
use crate::notify::config::AlertmanagerSettings;
use crate::notify::http::{HttpClient, redact_url, rfc3339};
use crate::notify::retry::backoff_between;
use crate::notify::webhook::check_url;

const SENT_TOTAL: &str = "sightline_alertmanager_notifications_sent_total";
const ERRORS_TOTAL: &str = "sightline_alertmanager_notification_errors_total";
const DROPPED_TOTAL: &str = "sightline_alertmanager_notifications_dropped_total";
const QUEUE_LENGTH: &str = "sightline_alertmanager_notification_queue_length";

/// An alert as Alertmanager's API v2 takes it (`postableAlert`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert<'a> {
    pub labels: &'a LabelSet,
    pub annotations: &'a LabelSet,
    pub starts_at: String,
    /// Omitted while open-ended, so that Alertmanager applies its `resolve_timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Omitted when empty: Alertmanager's API validates it as a URI.
    #[serde(rename = "generatorURL", skip_serializing_if = "str::is_empty")]
    pub generator_url: &'a str,
}

impl<'a> PostableAlert<'a> {
    pub fn new(alert: &'a Alert) -> Self {
        Self {
            labels: &alert.labels,
            annotations: &alert.annotations,
            starts_at: rfc3339(Some(alert.starts_at)),
            ends_at: alert.ends_at.map(|t| rfc3339(Some(t))),
            generator_url: &alert.generator_url,
        }
    }
}

/// Sends alerts to one or more Alertmanagers from a background task. Dropping it (or calling
/// [`AlertmanagerClient::shutdown`]) lets the task send what is queued and stop.
#[derive(Debug)]
pub struct AlertmanagerClient {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    settings: AlertmanagerSettings,
    /// `<url>/api/v2/alerts` of each Alertmanager.
    endpoints: Vec<String>,
    client: HttpClient,
    queue: Mutex<VecDeque<Alert>>,
    wake: Notify,
    closed: AtomicBool,
    dropped: AtomicU64,
    sent: AtomicU64,
}

// === impl AlertmanagerClient ===

impl AlertmanagerClient {
    /// Starts the client's sender task on the current tokio runtime. Fails without a URL, with a URL that
    /// is not http(s), with a zero queue capacity or batch size, or outside a runtime.
    pub fn new(settings: AlertmanagerSettings) -> Result<Self, NotifyError> {
        if settings.urls.is_empty() {
            return Err(NotifyError::permanent(
                "alertmanager client: no Alertmanager URL configured; give at least one, such as http://alertmanager:9093",
            ));
        }
        if settings.queue_capacity == 0 || settings.max_batch_size == 0 {
            return Err(NotifyError::permanent(
                "alertmanager client: `queue_capacity` and `max_batch_size` must be at least 1",
            ));
        }
        let mut endpoints = Vec::with_capacity(settings.urls.len());
        for url in &settings.urls {
            check_url("alertmanager", "urls", url)?;
            endpoints.push(format!("{}/api/v2/alerts", url.trim_end_matches('/')));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            NotifyError::permanent(
                "alertmanager client: must be started inside a tokio runtime (a bug in the caller)",
            )
        })?;
        let client = HttpClient::new(&settings.http_config)?;
        let shared = Arc::new(Shared {
            settings,
            endpoints,
            client,
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        });
        let task = runtime.spawn(run(shared.clone()));
        Ok(Self { shared, task: Mutex::new(Some(task)) })
    }

    /// Alerts dropped so far: by a full queue, or after every Alertmanager failed to take them.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Alerts that at least one Alertmanager accepted so far.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// Alerts waiting to be sent.
    pub fn queue_len(&self) -> usize {
        self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Sends what is queued (within `timeout`), then stops the sender task; alerts sent afterwards are
    /// dropped and counted.
    pub async fn shutdown(&self, timeout: Duration) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(mut task) = task
            && tokio::time::timeout(timeout, &mut task).await.is_err()
        {
            task.abort();
            let left = self.queue_len();
            tracing::warn!(left, "alertmanager client: shutdown timed out, queued alerts dropped");
        }
    }
}

impl AlertSink for AlertmanagerClient {
    fn send(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        if self.shared.closed.load(Ordering::SeqCst) {
            self.shared.drop_alerts(alerts.len());
            return;
        }
        let capacity = self.shared.settings.queue_capacity;
        let (overflow, len) = {
            let mut queue = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.extend(alerts);
            let overflow = queue.len().saturating_sub(capacity);
            // The newest alerts carry the freshest state, so the oldest go.
            queue.drain(..overflow);
            (overflow, queue.len())
        };
        if overflow > 0 {
            self.shared.drop_alerts(overflow);
            tracing::warn!(
                dropped = overflow,
                capacity,
                "alertmanager client: queue full, oldest alerts dropped (Alertmanager too slow or unreachable?)"
            );
        }
        metrics::gauge!(QUEUE_LENGTH).set(len as f64);
        self.shared.wake.notify_one();
    }
}

impl Drop for AlertmanagerClient {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }
}

// === impl Shared ===

impl Shared {
    fn drop_alerts(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!(DROPPED_TOTAL).increment(n as u64);
    }

    /// Up to `max_batch_size` alerts from the queue's front.
    fn next_batch(&self) -> Vec<Alert> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let n = queue.len().min(self.settings.max_batch_size);
        let batch: Vec<Alert> = queue.drain(..n).collect();
        metrics::gauge!(QUEUE_LENGTH).set(queue.len() as f64);
        batch
    }
}

/// The sender task: sends batches until the client is closed and the queue is empty.
async fn run(shared: Arc<Shared>) {
    loop {
        let batch = shared.next_batch();
        if batch.is_empty() {
            if shared.closed.load(Ordering::SeqCst) {
                return;
            }
            // `notify_one` stores a permit when nobody waits, so an alert queued between the check above
            // and this wait is not missed.
            shared.wake.notified().await;
            continue;
        }
        send_batch(&shared, batch).await;
    }
}

/// POSTs `batch` to every Alertmanager at once, each with its own retries.
async fn send_batch(shared: &Arc<Shared>, batch: Vec<Alert>) {
    let postable: Vec<PostableAlert<'_>> = batch.iter().map(PostableAlert::new).collect();
    let body = match serde_json::to_vec(&postable) {
        Ok(body) => Arc::new(body),
        Err(e) => {
            // Label sets of strings always encode; this is here so that a failure is not silent.
            tracing::error!(error = %e, "alertmanager client: cannot encode alerts");
            shared.drop_alerts(batch.len());
            return;
        }
    };
    let mut posts = JoinSet::new();
    for endpoint in shared.endpoints.clone() {
        let (shared, body) = (shared.clone(), body.clone());
        posts.spawn(async move {
            let result = post_with_retries(&shared, &endpoint, &body).await;
            (endpoint, result)
        });
    }
    let mut delivered = false;
    while let Some(joined) = posts.join_next().await {
        let Ok((endpoint, result)) = joined else { continue };
        let alertmanager = redact_url(&endpoint);
        match result {
            Ok(()) => {
                delivered = true;
                metrics::counter!(SENT_TOTAL, "alertmanager" => alertmanager).increment(batch.len() as u64);
            }
            Err(error) => {
                metrics::counter!(ERRORS_TOTAL, "alertmanager" => alertmanager.clone())
                    .increment(batch.len() as u64);
                tracing::warn!(alertmanager = %alertmanager, alerts = batch.len(), error = %error, "cannot send alerts to Alertmanager");
            }
        }
    }
    if delivered {
        shared.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
    } else {
        shared.drop_alerts(batch.len());
    }
}

async fn post_with_retries(shared: &Shared, endpoint: &str, body: &[u8]) -> Result<(), NotifyError> {
    let settings = &shared.settings;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match shared.client.post_json(endpoint, body.to_vec(), Some(settings.timeout)).await {
            Ok(()) => return Ok(()),
            Err(error) if error.retryable && attempt <= settings.retries => {
                tokio::time::sleep(backoff_between(settings.backoff_base, settings.backoff_max, attempt))
                    .await;
            }
            Err(error) => return Err(error),
        }
    }
}
