//! Timeouts, retries with exponential backoff and full jitter, and delivery metrics for any
//! [`Notifier`]; and [`truncate`], which cuts a notification to a receiver's `max_alerts`.
//!
//! Metrics: `sightline_notifications_total{receiver,outcome}` counts attempts by outcome (`success`,
//! `retry` for a failed attempt that will be tried again, `failure` for a delivery given up on) and
//! `sightline_notification_latency_seconds{receiver}` times each attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::{BoxFuture, Notification, Notifier, NotifyError};
use crate::notify::config::RetrySettings;

/// Counts delivery attempts by receiver and outcome.
pub const NOTIFICATIONS_TOTAL: &str = "sightline_notifications_total";
/// Times delivery attempts by receiver.
pub const NOTIFICATION_LATENCY_SECONDS: &str = "sightline_notification_latency_seconds";

/// A [`Notifier`] that tries its inner one with a timeout per attempt, and again after a retryable
/// failure (at most `retries` more times, waiting a jittered, doubling backoff in between).
#[derive(Debug, Clone)]
pub struct Retrying {
    inner: Arc<dyn Notifier>,
    settings: RetrySettings,
}

// === impl Retrying ===

impl Retrying {
    pub fn new(inner: Arc<dyn Notifier>, settings: RetrySettings) -> Self {
        Self { inner, settings }
    }

    /// The wrapped integration.
    pub fn inner(&self) -> &Arc<dyn Notifier> {
        &self.inner
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), NotifyError> {
        let receiver = notification.receiver.clone();
        let attempts = self.settings.retries.saturating_add(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let result = match tokio::time::timeout(self.settings.timeout, self.inner.notify(notification))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(NotifyError::retryable(format!(
                    "{} integration did not answer within {:?} (raise the receiver's timeout if it is just slow)",
                    self.inner.kind(),
                    self.settings.timeout
                ))),
            };
            metrics::histogram!(NOTIFICATION_LATENCY_SECONDS, "receiver" => receiver.clone())
                .record(started.elapsed().as_secs_f64());
            let error = match result {
                Ok(()) => {
                    metrics::counter!(NOTIFICATIONS_TOTAL, "receiver" => receiver, "outcome" => "success")
                        .increment(1);
                    return Ok(());
                }
                Err(error) => error,
            };
            if !error.retryable || attempt >= attempts {
                metrics::counter!(NOTIFICATIONS_TOTAL, "receiver" => receiver.clone(), "outcome" => "failure")
                    .increment(1);
                tracing::warn!(
                    receiver = %receiver,
                    integration = self.inner.kind(),
                    attempts = attempt,
                    error = %error.message,
                    "notification failed"
                );
                let message = if error.retryable {
                    format!("{} (gave up after {attempt} attempts)", error.message)
                } else {
                    error.message
                };
                return Err(NotifyError { message, retryable: error.retryable });
            }
            metrics::counter!(NOTIFICATIONS_TOTAL, "receiver" => receiver.clone(), "outcome" => "retry")
                .increment(1);
            let wait = backoff(&self.settings, attempt);
            tracing::debug!(
                receiver = %receiver,
                integration = self.inner.kind(),
                attempt,
                error = %error.message,
                wait_ms = wait.as_millis() as u64,
                "notification attempt failed, retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

impl Notifier for Retrying {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(self.deliver(notification))
    }
}

/// The wait after failed attempt `attempt` (1-based): uniform in `[0, min(max, base * 2^(attempt-1))]`,
/// "full jitter", which spreads out receivers that failed together better than a fixed backoff.
pub fn backoff(settings: &RetrySettings, attempt: u32) -> Duration {
    backoff_between(settings.backoff_base, settings.backoff_max, attempt)
}

pub(crate) fn backoff_between(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(31);
    let ceiling = base.saturating_mul(1u32 << exponent).min(max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

/// `notification` with at most `max_alerts` alerts (0: all), the first ones kept, and the number left
/// out added to `truncated_alerts`, as Alertmanager's `max_alerts` does.
pub fn truncate(notification: &Notification, max_alerts: usize) -> Notification {
    let mut out = notification.clone();
    if max_alerts > 0 && out.alerts.len() > max_alerts {
        out.truncated_alerts += out.alerts.len() - max_alerts;
        out.alerts.truncate(max_alerts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_max_with_jitter() {
        let s = RetrySettings {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(350),
            ..RetrySettings::default()
        };
        for _ in 0..200 {
            assert!(backoff(&s, 1) <= Duration::from_millis(100));
            assert!(backoff(&s, 2) <= Duration::from_millis(200));
            assert!(backoff(&s, 3) <= Duration::from_millis(350));
            assert!(backoff(&s, 40) <= Duration::from_millis(350));
        }
        // Jitter: 200 draws of the third backoff are not all the same.
        let draws: std::collections::BTreeSet<Duration> = (0..200).map(|_| backoff(&s, 3)).collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn truncate_counts_what_it_leaves_out() {
        let mut n = crate::notify::test_notification("r");
        let alert = n.alerts[0].clone();
        n.alerts = vec![alert.clone(), alert.clone(), alert];
        let cut = truncate(&n, 2);
        assert_eq!((cut.alerts.len(), cut.truncated_alerts), (2, 1));
        assert_eq!(truncate(&n, 0), n);
        assert_eq!(truncate(&n, 5), n);
    }
}
