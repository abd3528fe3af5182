//! Heartbeats: a check that is healthy while something keeps saying it is alive.
//!
//! In-process, a component calls [`Heartbeat::beat`] from its loop; a supervisor restarts it when the
//! check turns Unhealthy (see `examples/supervisor.rs`). From outside, a cron job or batch run POSTs to the
//! server's `/api/v1/health/heartbeat/{name}`, which calls `beat()`: a dead-man's switch that alarms when
//! the job stops running.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{BoxFuture, HealthCheck, Probe};

/// A heartbeat and the check that watches it. Clone it to hand the beating side to a component.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// When the heartbeat was created; beats are stored as milliseconds since then.
    origin: Instant,
    /// Milliseconds since `origin` of the last beat, plus one (0: never).
    last: AtomicU64,
    window: Duration,
}

impl Heartbeat {
    /// A heartbeat expected every `interval`; missing beats for `missed` intervals (at least 1) make its
    /// check Unhealthy. Before the first beat, the clock runs from creation, so a component that never
    /// starts beating is noticed too.
    pub fn new(interval: Duration, missed: u32) -> Self {
        let window = interval.saturating_mul(missed.max(1));
        Self { inner: Arc::new(Inner { origin: Instant::now(), last: AtomicU64::new(0), window }) }
    }

    /// Records a beat now.
    pub fn beat(&self) {
        let millis = u64::try_from(self.inner.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.inner.last.store(millis + 1, Ordering::Relaxed);
    }

    /// How long ago the last beat was, or `None` before the first.
    pub fn since_last_beat(&self) -> Option<Duration> {
        match self.inner.last.load(Ordering::Relaxed) {
            0 => None,
            stamp => {
                let beat = Duration::from_millis(stamp - 1);
                Some(self.inner.origin.elapsed().saturating_sub(beat))
            }
        }
    }

    /// How long without a beat before the check fails.
    pub fn window(&self) -> Duration {
        self.inner.window
    }
}

impl HealthCheck for Heartbeat {
    fn check(&self) -> BoxFuture<'_, Probe> {
        let window = self.inner.window;
        let probe = match self.since_last_beat() {
            Some(age) if age <= window => Probe::healthy(format!("last beat {} ago", human(age))),
            Some(age) => Probe::unhealthy(format!(
                "no heartbeat for {} (expected within {})",
                human(age),
                human(window)
            )),
            None if self.inner.origin.elapsed() <= window => Probe::healthy("waiting for the first beat"),
            None => Probe::unhealthy(format!("no heartbeat since start (expected within {})", human(window))),
        };
        let observed = self.since_last_beat().map(|age| age.as_millis() as f64);
        Box::pin(async move {
            match observed {
                Some(ms) => probe.with_observed(ms, "ms"),
                None => probe,
            }
        })
    }
}

/// `850 ms` below ten seconds, `42 s` above.
fn human(duration: Duration) -> String {
    if duration < Duration::from_secs(10) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{} s", duration.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    #[tokio::test]
    async fn beats_keep_it_healthy_and_silence_fails_it() {
        let heartbeat = Heartbeat::new(Duration::from_millis(20), 2);
        assert_eq!(heartbeat.check().await.status, Status::Healthy, "grace period before the first beat");
        tokio::time::sleep(Duration::from_millis(60)).await;
        let probe = heartbeat.check().await;
        assert_eq!(probe.status, Status::Unhealthy);
        assert!(probe.message.contains("no heartbeat since start"), "{}", probe.message);
        heartbeat.clone().beat();
        let probe = heartbeat.check().await;
        assert_eq!(probe.status, Status::Healthy);
        assert!(probe.observed.is_some());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(heartbeat.check().await.status, Status::Unhealthy);
    }
}
