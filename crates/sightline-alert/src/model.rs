//! The alert model shared by rules, the notification pipeline and receivers, in the shape of
//! Alertmanager's API (`labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL`).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

/// Labels or annotations, sorted by name.
pub type LabelSet = BTreeMap<String, String>;

/// An alert's identity: FNV-1a 64 over its sorted label names and values, each followed by `0xff`, as
/// Alertmanager's `model.LabelSet.Fingerprint` computes it, so fingerprints agree with Alertmanager's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    /// The fingerprint of a label set.
    pub fn of(labels: &LabelSet) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut write = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for (name, value) in labels {
            write(name.as_bytes());
            write(&[0xff]);
            write(value.as_bytes());
            write(&[0xff]);
        }
        Self(h)
    }
}

/// Sixteen lower-case hex digits, as Alertmanager prints fingerprints.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(Self)
    }
}

/// One alert as rules send it and receivers get it.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    /// When the alert started firing.
    pub starts_at: SystemTime,
    /// When it resolved, or (while firing) until when the sender vouches for it; `None`: open-ended.
    pub ends_at: Option<SystemTime>,
    /// A link back to the rule's expression.
    pub generator_url: String,
}

impl Alert {
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.labels)
    }

    /// The alert's name (`alertname` label), or "".
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// Whether the alert has ended at `now`.
    pub fn is_resolved_at(&self, now: SystemTime) -> bool {
        self.ends_at.is_some_and(|end| end <= now)
    }
}

/// `firing` or `resolved`, as in Alertmanager's webhook payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// What one receiver is asked to deliver: the alerts of one aggregation group (Alertmanager's webhook
/// payload, version 4, is built from it).
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The receiver's name in the configuration.
    pub receiver: String,
    /// The group's key (route path and group labels), stable across notifications of the group.
    pub group_key: String,
    /// The labels the route groups by, with this group's values.
    pub group_labels: LabelSet,
    /// Labels every alert of the group shares.
    pub common_labels: LabelSet,
    /// Annotations every alert of the group shares.
    pub common_annotations: LabelSet,
    /// `firing` when any alert is firing.
    pub status: AlertStatus,
    /// The alerts, each with its status, at most the receiver's `max_alerts`.
    pub alerts: Vec<(AlertStatus, Alert)>,
    /// Alerts left out because of `max_alerts`.
    pub truncated_alerts: usize,
    /// The server's external URL, for links back.
    pub external_url: String,
}

/// Why a delivery failed, and whether trying again could help (a 5xx or a timeout can; a 4xx cannot).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct NotifyError {
    pub message: String,
    pub retryable: bool,
}

impl NotifyError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: true }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: false }
    }
}

/// A boxed future, so that receivers are object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One integration of a receiver (a webhook URL, a Slack channel, an SMTP server, ...).
pub trait Notifier: Send + Sync + fmt::Debug {
    /// The integration's kind, for metrics and logs: `webhook`, `slack`, `pagerduty`, `email`, `log`,
    /// `alertmanager`.
    fn kind(&self) -> &'static str;

    /// Delivers one notification once (retries are the caller's).
    fn notify<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>>;
}

/// Where rule evaluation sends its alerts: firing ones on every evaluation, resolved ones for a while
/// after they resolve, as Prometheus sends them to Alertmanager.
pub trait AlertSink: Send + Sync {
    fn send(&self, alerts: Vec<Alert>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_alertmanagers() {
        // Alertmanager: model.LabelSet{"alertname": "a"}.Fingerprint() and the empty set.
        let empty = LabelSet::new();
        assert_eq!(Fingerprint::of(&empty).to_string(), "cbf29ce484222325");
        let one: LabelSet = [("alertname".to_owned(), "a".to_owned())].into();
        let fp = Fingerprint::of(&one);
        assert_eq!(fp.to_string().parse::<Fingerprint>().expect("hex"), fp);
        assert_ne!(fp, Fingerprint::of(&empty));
    }
}
