//! The PagerDuty integration: Events API v2 `trigger` while the group fires and `resolve` when it has
//! resolved, with Alertmanager's dedup key (the sha256 of the group key, in hex), so that PagerDuty keeps
//! one incident per group.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::{AlertStatus, BoxFuture, Notification, Notifier, NotifyError};
use crate::notify::config::PagerDutySettings;
use crate::notify::http::HttpClient;
use crate::notify::webhook::check_url;
use crate::notify::{alerts_with, counts, prepare, subject, text_alert_list};

/// PagerDuty caps a summary at 1024 characters; Alertmanager cuts it there too.
const MAX_SUMMARY: usize = 1024;

/// The severities the Events API v2 accepts.
const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// An Events API v2 event, in Alertmanager's field order.
#[derive(Debug, Serialize, PartialEq)]
pub struct PagerDutyEvent {
    pub routing_key: String,
    pub event_action: &'static str,
    pub dedup_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<PagerDutyPayload>,
    pub client: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_url: String,
}

/// The event's payload (sent with `trigger` only, as Alertmanager does).
#[derive(Debug, Serialize, PartialEq)]
pub struct PagerDutyPayload {
    pub summary: String,
    pub source: String,
    pub severity: String,
    pub custom_details: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// Sends Events API v2 events.
#[derive(Debug)]
pub struct PagerDutyNotifier {
    settings: PagerDutySettings,
    client: HttpClient,
}

// === impl PagerDutyNotifier ===

impl PagerDutyNotifier {
    /// Fails without a `routing_key` or with a `url` that is not http(s).
    pub fn new(settings: PagerDutySettings) -> Result<Self, NotifyError> {
        if settings.routing_key.trim().is_empty() {
            return Err(NotifyError::permanent(
                "pagerduty receiver: `routing_key` is empty; set it to the integration key of an Events API v2 integration",
            ));
        }
        check_url("pagerduty", "url", &settings.url)?;
        if let Some(severity) = &settings.severity
            && !SEVERITIES.contains(&severity.as_str())
        {
            return Err(NotifyError::permanent(format!(
                "pagerduty receiver: `severity` {severity:?} is not one PagerDuty accepts; use one of {}",
                SEVERITIES.join(", ")
            )));
        }
        let client = HttpClient::new(&settings.http_config)?;
        Ok(Self { settings, client })
    }

    /// The event for `notification` (already prepared for `send_resolved` and `max_alerts`).
    pub fn event(&self, notification: &Notification) -> PagerDutyEvent {
        let s = &self.settings;
        let client_url = s.client_url.clone().unwrap_or_else(|| notification.external_url.clone());
        let firing = notification.status == AlertStatus::Firing;
        let payload = firing.then(|| {
            let (num_firing, num_resolved) = counts(notification);
            let mut custom_details: BTreeMap<String, serde_json::Value> = BTreeMap::new();
            custom_details.insert(
                "firing".into(),
                text_alert_list(alerts_with(notification, AlertStatus::Firing)).into(),
            );
            custom_details.insert(
                "resolved".into(),
                text_alert_list(alerts_with(notification, AlertStatus::Resolved)).into(),
            );
            custom_details.insert("num_firing".into(), num_firing.to_string().into());
            custom_details.insert("num_resolved".into(), num_resolved.to_string().into());
            for (name, value) in &s.details {
                custom_details.insert(name.clone(), value.clone().into());
            }
            let summary = s.description.clone().unwrap_or_else(|| subject(notification));
            PagerDutyPayload {
                summary: cut(&summary, MAX_SUMMARY),
                source: s.source.clone().unwrap_or_else(|| s.client.clone()),
                severity: s.severity.clone().unwrap_or_else(|| default_severity(notification).to_owned()),
                custom_details,
                class: s.class.clone(),
                component: s.component.clone(),
                group: s.group.clone(),
            }
        });
        PagerDutyEvent {
            routing_key: s.routing_key.clone(),
            event_action: if firing { "trigger" } else { "resolve" },
            dedup_key: dedup_key(&notification.group_key),
            payload,
            client: s.client.clone(),
            client_url,
        }
    }

    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        let Some(notification) = prepare(notification, self.settings.send_resolved, self.settings.max_alerts)
        else {
            return Ok(());
        };
        let body = serde_json::to_vec(&self.event(&notification))
            .map_err(|e| NotifyError::permanent(format!("cannot encode the PagerDuty event: {e}")))?;
        self.client.post_json(&self.settings.url, body, None).await
    }
}

impl Notifier for PagerDutyNotifier {
    fn kind(&self) -> &'static str {
        "pagerduty"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(self.send(notification))
    }
}

/// Alertmanager's `GroupKey.Hash()`: the sha256 of the group key, in lower-case hex.
pub fn dedup_key(group_key: &str) -> String {
    Sha256::digest(group_key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The common `severity` label when PagerDuty knows it, else `error`, Alertmanager's default.
fn default_severity(notification: &Notification) -> &'static str {
    match notification.common_labels.get("severity").map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("critical") => "critical",
        Some("warning") => "warning",
        Some("info") => "info",
        _ => "error",
    }
}

/// `text` cut to at most `max` characters, the last one `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keys_are_sha256_hex() {
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(dedup_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn summaries_are_cut() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "ab…");
    }

    #[test]
    fn a_routing_key_is_required() {
        let err = PagerDutyNotifier::new(PagerDutySettings::default()).expect_err("no key");
        assert!(err.message.contains("routing_key"), "{}", err.message);
    }

    #[test]
    fn severities_are_checked() {
        let settings = PagerDutySettings { routing_key: "k".into(), ..PagerDutySettings::default() };
        let bad = PagerDutySettings { severity: Some("page".into()), ..settings.clone() };
        let err = PagerDutyNotifier::new(bad).expect_err("not a PagerDuty severity");
        assert!(err.message.contains("critical, error, warning, info"), "{}", err.message);
        assert!(
            PagerDutyNotifier::new(PagerDutySettings { severity: Some("info".into()), ..settings }).is_ok()
        );
    }
}
