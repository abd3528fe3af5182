//! The webhook integration: POSTs Alertmanager's webhook payload, version 4, so that receivers written
//! for Alertmanager work unchanged.

use serde::Serialize;

use crate::model::{AlertStatus, BoxFuture, LabelSet, Notification, Notifier, NotifyError};
use crate::notify::config::WebhookSettings;
use crate::notify::http::{HttpClient, rfc3339};
use crate::notify::prepare;

/// Alertmanager's webhook message (`template.Data` plus `version`, `groupKey`, `truncatedAlerts`), with
/// its field order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage<'a> {
    pub receiver: &'a str,
    pub status: &'static str,
    pub alerts: Vec<WebhookAlert<'a>>,
    pub group_labels: &'a LabelSet,
    pub common_labels: &'a LabelSet,
    pub common_annotations: &'a LabelSet,
    #[serde(rename = "externalURL")]
    pub external_url: &'a str,
    pub version: &'static str,
    pub group_key: &'a str,
    pub truncated_alerts: usize,
}

/// One alert of a [`WebhookMessage`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert<'a> {
    pub status: &'static str,
    pub labels: &'a LabelSet,
    pub annotations: &'a LabelSet,
    pub starts_at: String,
    /// Go's zero time while the alert fires: Alertmanager does not expose an end time it has not reached.
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: &'a str,
    pub fingerprint: String,
}

impl<'a> WebhookMessage<'a> {
    /// The message for `notification`, as Alertmanager builds it.
    pub fn new(notification: &'a Notification) -> Self {
        let alerts = notification
            .alerts
            .iter()
            .map(|(status, alert)| WebhookAlert {
                status: status.as_str(),
                labels: &alert.labels,
                annotations: &alert.annotations,
                starts_at: rfc3339(Some(alert.starts_at)),
                ends_at: rfc3339(if *status == AlertStatus::Resolved { alert.ends_at } else { None }),
                generator_url: &alert.generator_url,
                fingerprint: alert.fingerprint().to_string(),
            })
            .collect();
        Self {
            receiver: &notification.receiver,
            status: notification.status.as_str(),
            alerts,
            group_labels: &notification.group_labels,
            common_labels: &notification.common_labels,
            common_annotations: &notification.common_annotations,
            external_url: &notification.external_url,
            version: "4",
            group_key: &notification.group_key,
            truncated_alerts: notification.truncated_alerts,
        }
    }
}

/// POSTs Alertmanager's webhook payload to `url`.
#[derive(Debug)]
pub struct WebhookNotifier {
    settings: WebhookSettings,
    client: HttpClient,
}

// === impl WebhookNotifier ===

impl WebhookNotifier {
    /// Fails when `url` is not an http(s) URL.
    pub fn new(settings: WebhookSettings) -> Result<Self, NotifyError> {
        check_url("webhook", "url", &settings.url)?;
        let client = HttpClient::new(&settings.http_config)?;
        Ok(Self { settings, client })
    }

    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        let Some(notification) = prepare(notification, self.settings.send_resolved, self.settings.max_alerts)
        else {
            return Ok(());
        };
        let body = serde_json::to_vec(&WebhookMessage::new(&notification))
            .map_err(|e| NotifyError::permanent(format!("cannot encode the webhook payload: {e}")))?;
        self.client.post_json(&self.settings.url, body, None).await
    }
}

impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(self.send(notification))
    }
}

/// Checks that `url` (the `field` of a `kind` receiver) is an absolute http(s) URL.
pub(crate) fn check_url(kind: &str, field: &str, url: &str) -> Result<(), NotifyError> {
    let valid = url.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.starts_with('/')
    });
    if valid {
        Ok(())
    } else {
        Err(NotifyError::permanent(format!(
            "{kind} receiver: `{field}` must be an http:// or https:// URL, got {:?}",
            crate::notify::http::redact_url(url)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("webhook", "url", "http://127.0.0.1:9/x").is_ok());
        let err = check_url("webhook", "url", "ftp://x").expect_err("not http");
        assert!(err.message.contains("`url` must be an http"), "{}", err.message);
        assert!(!err.retryable);
        assert!(check_url("webhook", "url", "").is_err());
        assert!(WebhookNotifier::new(WebhookSettings::default()).is_err());
    }
}
