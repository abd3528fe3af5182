//! Receivers: the integrations that deliver notifications ([`webhook`] in Alertmanager's webhook format,
//! [`slack`], [`pagerduty`], [`email`], [`log`]), the [`retry`] wrapper that gives any of them a timeout,
//! retries with backoff and metrics, and the [`alertmanager`] client that forwards rule alerts to an
//! existing Alertmanager cluster instead.
//!
//! Each integration is built from its settings struct in [`config`], whose fields carry Alertmanager's
//! names; [`build`] builds any of them from [`ReceiverSettings`].

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::model::{Alert, AlertStatus, LabelSet, Notification, Notifier, NotifyError};

pub mod alertmanager;
pub mod config;
pub mod email;
pub(crate) mod http;
pub mod log;
pub mod pagerduty;
pub mod retry;
pub mod slack;
pub mod template;
pub mod webhook;

pub use alertmanager::AlertmanagerClient;
pub use config::{
    AlertmanagerSettings, Authorization, BasicAuth, EmailSettings, HttpConfig, LogSettings,
    PagerDutySettings, RetrySettings, SlackSettings, SmtpSecurity, TlsConfig, WebhookSettings,
};
pub use email::EmailNotifier;
pub use http::{ZERO_TIME, rfc3339};
pub use log::LogNotifier;
pub use pagerduty::PagerDutyNotifier;
pub use retry::{Retrying, truncate};
pub use slack::SlackNotifier;
pub use webhook::WebhookNotifier;

/// The settings of one integration of a receiver, for [`build`].
#[derive(Clone, Debug, PartialEq)]
pub enum ReceiverSettings {
    Webhook(WebhookSettings),
    Slack(SlackSettings),
    PagerDuty(PagerDutySettings),
    Email(EmailSettings),
    Log(LogSettings),
}

/// Builds the integration `settings` describe, wrapped in [`Retrying`] with `retry`. Fails (with what to
/// fix) when the settings cannot work, such as a URL that is not one or an email address that does not
/// parse.
pub fn build(settings: &ReceiverSettings, retry: &RetrySettings) -> Result<Arc<dyn Notifier>, NotifyError> {
    let inner: Arc<dyn Notifier> = match settings {
        ReceiverSettings::Webhook(s) => Arc::new(WebhookNotifier::new(s.clone())?),
        ReceiverSettings::Slack(s) => Arc::new(SlackNotifier::new(s.clone())?),
        ReceiverSettings::PagerDuty(s) => Arc::new(PagerDutyNotifier::new(s.clone())?),
        ReceiverSettings::Email(s) => Arc::new(EmailNotifier::new(s.clone())?),
        ReceiverSettings::Log(s) => Arc::new(LogNotifier::new(s.clone())),
    };
    Ok(Arc::new(Retrying::new(inner, retry.clone())))
}

/// The synthetic notification `sightline notify test RECEIVER` sends: one firing alert named
/// `SightlineTestAlert`, so that whoever receives it can tell it from a real one.
pub fn test_notification(receiver_name: &str) -> Notification {
    let now = SystemTime::now();
    let labels: LabelSet = [
        ("alertname".to_owned(), "SightlineTestAlert".to_owned()),
        ("severity".to_owned(), "info".to_owned()),
        ("receiver".to_owned(), receiver_name.to_owned()),
    ]
    .into();
    let annotations: LabelSet = [
        ("summary".to_owned(), format!("Test notification for receiver {receiver_name}")),
        (
            "description".to_owned(),
            "Sent by `sightline notify test`: if you can read this, the receiver works. No action is needed."
                .to_owned(),
        ),
    ]
    .into();
    let alert = Alert {
        labels: labels.clone(),
        annotations: annotations.clone(),
        starts_at: now,
        // The test alert vouches for itself for five minutes, so that a receiver that tracks end times
        // (PagerDuty, Alertmanager) does not keep it open forever.
        ends_at: Some(now + Duration::from_secs(300)),
        generator_url: String::new(),
    };
    Notification {
        receiver: receiver_name.to_owned(),
        group_key: format!("{{}}/{{}}:{{alertname=\"SightlineTestAlert\",receiver=\"{receiver_name}\"}}"),
        group_labels: [("alertname".to_owned(), "SightlineTestAlert".to_owned())].into(),
        common_labels: labels,
        common_annotations: annotations,
        status: AlertStatus::Firing,
        alerts: vec![(AlertStatus::Firing, alert)],
        truncated_alerts: 0,
        external_url: String::new(),
    }
}

/// What an integration sends of `notification`: without `send_resolved` the resolved alerts are left out,
/// and nothing is sent (`None`) when none is firing, as Alertmanager does; then at most `max_alerts`
/// alerts (0: all) are kept.
pub(crate) fn prepare(
    notification: &Notification,
    send_resolved: bool,
    max_alerts: usize,
) -> Option<Cow<'_, Notification>> {
    let mut prepared = Cow::Borrowed(notification);
    if !send_resolved && notification.alerts.iter().any(|(status, _)| *status == AlertStatus::Resolved) {
        let mut owned = notification.clone();
        owned.alerts.retain(|(status, _)| *status == AlertStatus::Firing);
        prepared = Cow::Owned(owned);
    }
    if prepared.alerts.is_empty() {
        return None;
    }
    if max_alerts > 0 && prepared.alerts.len() > max_alerts {
        prepared = Cow::Owned(truncate(&prepared, max_alerts));
    }
    Some(prepared)
}

/// The number of firing and of resolved alerts.
pub(crate) fn counts(notification: &Notification) -> (usize, usize) {
    let firing = notification.alerts.iter().filter(|(status, _)| *status == AlertStatus::Firing).count();
    (firing, notification.alerts.len() - firing)
}

/// Alertmanager's default subject (its `__subject` template): `[FIRING:2] <group label values>
/// (<other common label values>)`, or `[RESOLVED] ...`.
pub fn subject(notification: &Notification) -> String {
    let (firing, _) = counts(notification);
    let mut out = match notification.status {
        AlertStatus::Firing => format!("[FIRING:{firing}] "),
        AlertStatus::Resolved => "[RESOLVED] ".to_owned(),
    };
    out.push_str(&notification.group_labels.values().map(String::as_str).collect::<Vec<_>>().join(" "));
    out.push(' ');
    let rest: Vec<&str> = notification
        .common_labels
        .iter()
        .filter(|(name, _)| !notification.group_labels.contains_key(*name))
        .map(|(_, value)| value.as_str())
        .collect();
    if !rest.is_empty() {
        out.push('(');
        out.push_str(&rest.join(" "));
        out.push(')');
    }
    out
}

/// Alertmanager's `__text_alert_list` template: each alert's labels, annotations and source.
pub fn text_alert_list<'a>(alerts: impl IntoIterator<Item = &'a Alert>) -> String {
    let mut out = String::new();
    for alert in alerts {
        out.push_str("Labels:\n");
        for (name, value) in &alert.labels {
            out.push_str(&format!(" - {name} = {value}\n"));
        }
        out.push_str("Annotations:\n");
        for (name, value) in &alert.annotations {
            out.push_str(&format!(" - {name} = {value}\n"));
        }
        out.push_str(&format!("Source: {}\n", alert.generator_url));
    }
    out
}

/// The alerts of `notification` with status `status`.
pub(crate) fn alerts_with(notification: &Notification, status: AlertStatus) -> impl Iterator<Item = &Alert> {
    notification.alerts.iter().filter(move |(s, _)| *s == status).map(|(_, alert)| alert)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn alert(name: &str) -> Alert {
        Alert {
            labels: labels(&[("alertname", name)]),
            annotations: LabelSet::new(),
            starts_at: SystemTime::UNIX_EPOCH,
            ends_at: None,
            generator_url: "http://x/graph".into(),
        }
    }

    #[test]
    fn subjects_match_alertmanagers_template() {
        let mut n = test_notification("team");
        n.group_labels = labels(&[("alertname", "HighLatency")]);
        n.common_labels =
            labels(&[("alertname", "HighLatency"), ("service", "api"), ("severity", "critical")]);
        assert_eq!(subject(&n), "[FIRING:1] HighLatency (api critical)");
        n.common_labels = n.group_labels.clone();
        n.status = AlertStatus::Resolved;
        assert_eq!(subject(&n), "[RESOLVED] HighLatency ");
    }

    #[test]
    fn prepare_drops_resolved_without_send_resolved_and_truncates() {
        let mut n = test_notification("r");
        n.alerts = vec![
            (AlertStatus::Firing, alert("a")),
            (AlertStatus::Resolved, alert("b")),
            (AlertStatus::Firing, alert("c")),
        ];
        let kept = prepare(&n, false, 0).expect("firing alerts are sent");
        assert_eq!(kept.alerts.len(), 2);
        let one = prepare(&n, true, 1).expect("sent");
        assert_eq!((one.alerts.len(), one.truncated_alerts), (1, 2));
        n.alerts.retain(|(s, _)| *s == AlertStatus::Resolved);
        assert!(prepare(&n, false, 0).is_none());
        assert!(prepare(&n, true, 0).is_some());
    }

    #[test]
    fn alert_lists_follow_the_text_template() {
        let mut a = alert("A");
        a.annotations = labels(&[("summary", "s")]);
        assert_eq!(
            text_alert_list([&a]),
            "Labels:\n - alertname = A\nAnnotations:\n - summary = s\nSource: http://x/graph\n"
        );
    }
}
