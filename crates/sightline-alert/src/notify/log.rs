//! The log integration: one `tracing` event per alert, for setups without any other receiver.

use crate::model::{AlertStatus, BoxFuture, LabelSet, Notification, Notifier, NotifyError};
use crate::notify::config::LogSettings;
use crate::notify::http::rfc3339;
use crate::notify::prepare;

/// Logs each alert of a notification at `warn` (firing) or `info` (resolved), under the target
/// `sightline_alert::notify::log`.
#[derive(Debug, Clone)]
pub struct LogNotifier {
    settings: LogSettings,
}

// === impl LogNotifier ===

impl LogNotifier {
    pub fn new(settings: LogSettings) -> Self {
        Self { settings }
    }
}

impl Notifier for LogNotifier {
    fn kind(&self) -> &'static str {
        "log"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let Some(notification) = prepare(notification, self.settings.send_resolved, 0) else {
                return Ok(());
            };
            for (status, alert) in &notification.alerts {
                let labels = format_set(&alert.labels);
                let annotations = format_set(&alert.annotations);
                let fingerprint = alert.fingerprint().to_string();
                let starts_at = rfc3339(Some(alert.starts_at));
                match status {
                    AlertStatus::Firing => tracing::warn!(
                        receiver = %notification.receiver,
                        alertname = alert.name(),
                        status = status.as_str(),
                        fingerprint = %fingerprint,
                        starts_at = %starts_at,
                        labels = %labels,
                        annotations = %annotations,
                        generator_url = %alert.generator_url,
                        "alert firing"
                    ),
                    AlertStatus::Resolved => tracing::info!(
                        receiver = %notification.receiver,
                        alertname = alert.name(),
                        status = status.as_str(),
                        fingerprint = %fingerprint,
                        starts_at = %starts_at,
                        ends_at = %rfc3339(alert.ends_at),
                        labels = %labels,
                        annotations = %annotations,
                        generator_url = %alert.generator_url,
                        "alert resolved"
                    ),
                }
            }
            Ok(())
        })
    }
}

/// `{name="value", ...}` with values quoted as JSON strings, the way Prometheus prints label sets.
fn format_set(set: &LabelSet) -> String {
    let pairs: Vec<String> = set
        .iter()
        .map(|(name, value)| format!("{name}={}", serde_json::Value::String(value.clone())))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_print_like_prometheus() {
        let set: LabelSet = [("a".to_owned(), "x\"y".to_owned()), ("b".to_owned(), "1".to_owned())].into();
        assert_eq!(format_set(&set), r#"{a="x\"y", b="1"}"#);
        assert_eq!(format_set(&LabelSet::new()), "{}");
    }
}
