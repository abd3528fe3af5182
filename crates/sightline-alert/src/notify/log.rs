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
    use std::fmt::Debug;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use super::*;
    use crate::model::Alert;

    /// Records each event's level and fields (a hand-written subscriber, so that the crate needs no
    /// tracing-subscriber just for this test).
    #[derive(Default, Clone)]
    struct Capture(Arc<Mutex<Vec<Captured>>>);

    /// An event's level and its fields by name.
    type Captured = (tracing::Level, Vec<(String, String)>);

    struct Fields<'a>(&'a mut Vec<(String, String)>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_owned(), value.to_owned()));
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Vec::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().expect("lock").push((*event.metadata().level(), fields));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn one_event_per_alert() {
        let mut notification = crate::notify::test_notification("ops");
        let resolved = Alert {
            labels: [("alertname".to_owned(), "Gone".to_owned())].into(),
            ends_at: Some(std::time::SystemTime::UNIX_EPOCH),
            ..notification.alerts[0].1.clone()
        };
        notification.alerts.push((AlertStatus::Resolved, resolved));
        let capture = Capture::default();
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        tracing::subscriber::with_default(capture.clone(), || {
            runtime.block_on(LogNotifier::new(LogSettings::default()).notify(&notification)).expect("logged");
            let quiet = LogNotifier::new(LogSettings { send_resolved: false });
            runtime.block_on(quiet.notify(&notification)).expect("logged");
        });
        let events = capture.0.lock().expect("lock").clone();
        let field = |i: usize, name: &str| {
            events[i].1.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
        };
        assert_eq!(events.len(), 3, "two alerts, then only the firing one without send_resolved");
        assert_eq!(events[0].0, tracing::Level::WARN);
        assert_eq!(field(0, "alertname"), "SightlineTestAlert");
        assert_eq!(field(0, "receiver"), "ops");
        assert!(field(0, "annotations").contains("summary=\"Test notification for receiver ops\""));
        assert_eq!(events[1].0, tracing::Level::INFO);
        assert_eq!(field(1, "alertname"), "Gone");
        assert_eq!(field(1, "ends_at"), "1970-01-01T00:00:00Z");
        assert_eq!(field(2, "alertname"), "SightlineTestAlert");
    }

    #[test]
    fn sets_print_like_prometheus() {
        let set: LabelSet = [("a".to_owned(), "x\"y".to_owned()), ("b".to_owned(), "1".to_owned())].into();
        assert_eq!(format_set(&set), r#"{a="x\"y", b="1"}"#);
        assert_eq!(format_set(&LabelSet::new()), "{}");
    }
}
