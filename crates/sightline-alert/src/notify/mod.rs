//! Receivers: the integrations that deliver notifications ([`webhook`] in Alertmanager's webhook format,
//! [`slack`], [`pagerduty`], [`email`], [`log`]), the [`retry`] wrapper that gives any of them a timeout,
//! retries with backoff and metrics, and the [`alertmanager`] client that forwards rule alerts to an
//! existing Alertmanager cluster instead.
//!
//! Each integration is built from its settings struct in [`config`], whose fields carry Alertmanager's
//! names; [`build`] builds any of them from [`ReceiverSettings`]. Their text fields are Alertmanager
//! templates, rendered per notification by [`template`] with Alertmanager's data and default templates.

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
    PagerDutySettings, RetrySettings, SlackField, SlackSettings, SmtpSecurity, TlsConfig, WebhookSettings,
};
pub use email::EmailNotifier;
pub use http::{ZERO_TIME, rfc3339};
pub use log::LogNotifier;
pub use pagerduty::PagerDutyNotifier;
pub use retry::{Retrying, truncate};
pub use slack::SlackNotifier;
pub use template::Templates;
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

/// `text` cut to at most `max` characters, the last one `…` when cut, as Alertmanager's
/// `TruncateInRunes` cuts titles and summaries.
pub(crate) fn cut_runes(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
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
}
