//! The Slack integration: one incoming-webhook message with one attachment, in the shape of
//! Alertmanager's default Slack template, colored by severity.

use serde::Serialize;

use crate::model::{AlertStatus, BoxFuture, Notification, Notifier, NotifyError};
use crate::notify::config::SlackSettings;
use crate::notify::http::HttpClient;
use crate::notify::webhook::check_url;
use crate::notify::{prepare, subject};

/// Slack's incoming-webhook message, with the fields Alertmanager sends.
#[derive(Debug, Serialize, PartialEq)]
pub struct SlackMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    pub attachments: Vec<SlackAttachment>,
}

/// The message's one attachment.
#[derive(Debug, Serialize, PartialEq)]
pub struct SlackAttachment {
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title_link: String,
    pub text: String,
    pub fallback: String,
    pub color: String,
    pub mrkdwn_in: Vec<&'static str>,
}

/// Posts to a Slack incoming webhook.
#[derive(Debug)]
pub struct SlackNotifier {
    settings: SlackSettings,
    client: HttpClient,
}

// === impl SlackNotifier ===

impl SlackNotifier {
    /// Fails when `api_url` is not an http(s) URL.
    pub fn new(settings: SlackSettings) -> Result<Self, NotifyError> {
        check_url("slack", "api_url", &settings.api_url)?;
        let client = HttpClient::new(&settings.http_config)?;
        Ok(Self { settings, client })
    }

    /// The message for `notification` (already prepared for `send_resolved` and `max_alerts`).
    pub fn message(&self, notification: &Notification) -> SlackMessage {
        let s = &self.settings;
        let title = s.title.clone().unwrap_or_else(|| subject(notification));
        let title_link = s.title_link.clone().unwrap_or_else(|| notification.external_url.clone());
        let text = s.text.clone().unwrap_or_else(|| default_text(notification));
        let color = s.color.clone().unwrap_or_else(|| default_color(notification).to_owned());
        let fallback = if title_link.is_empty() { title.clone() } else { format!("{title} | {title_link}") };
        SlackMessage {
            channel: s.channel.clone(),
            username: s.username.clone(),
            icon_emoji: s.icon_emoji.clone(),
            icon_url: s.icon_url.clone(),
            attachments: vec![SlackAttachment {
                title,
                title_link,
                text,
                fallback,
                color,
                mrkdwn_in: vec!["fallback", "pretext", "text"],
            }],
        }
    }

    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        let Some(notification) = prepare(notification, self.settings.send_resolved, self.settings.max_alerts)
        else {
            return Ok(());
        };
        let body = serde_json::to_vec(&self.message(&notification))
            .map_err(|e| NotifyError::permanent(format!("cannot encode the Slack message: {e}")))?;
        self.client.post_json(&self.settings.api_url, body, None).await
    }
}

impl Notifier for SlackNotifier {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(self.send(notification))
    }
}

/// `good` when resolved; while firing, `warning` when the most severe firing alert is a warning, else
/// `danger` (Alertmanager's default for anything firing).
fn default_color(notification: &Notification) -> &'static str {
    if notification.status == AlertStatus::Resolved {
        return "good";
    }
    let severities: Vec<&str> = notification
        .alerts
        .iter()
        .filter(|(status, _)| *status == AlertStatus::Firing)
        .filter_map(|(_, alert)| alert.labels.get("severity").map(String::as_str))
        .collect();
    let only_warnings = !severities.is_empty()
        && severities.iter().all(|s| s.eq_ignore_ascii_case("warning") || s.eq_ignore_ascii_case("info"))
        && severities.iter().any(|s| s.eq_ignore_ascii_case("warning"));
    if only_warnings { "warning" } else { "danger" }
}

/// Each alert's status and name, then its annotations, one per line, in Slack's markdown.
fn default_text(notification: &Notification) -> String {
    let mut out = Vec::new();
    for (status, alert) in &notification.alerts {
        let severity = alert.labels.get("severity").map(|s| format!(" - `{s}`")).unwrap_or_default();
        out.push(format!("*[{}]* {}{severity}", status.as_str().to_uppercase(), alert.name()));
        for (name, value) in &alert.annotations {
            out.push(format!("  • *{name}:* {value}"));
        }
    }
    if notification.truncated_alerts > 0 {
        out.push(format!("_…and {} more alerts_", notification.truncated_alerts));
    }
    out.join("\n")
}
