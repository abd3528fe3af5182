//! Retention: deletes the oldest events by age and/or count, in batches, in the background. Each batch
//! leaves a checkpoint, so what remains still verifies. Ingest never waits for it: deletions are small
//! transactions, and SQLite's WAL lets the writer commit between them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::event::micros;
use crate::store::{AuditStore, StoreError};

/// What to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    /// Delete events older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many events.
    pub max_events: Option<u64>,
    /// Events deleted per transaction.
    pub batch: usize,
}

impl RetentionPolicy {
    /// Whether the policy deletes anything at all.
    pub fn is_active(&self) -> bool {
        self.max_age.is_some() || self.max_events.is_some()
    }
}

/// Deletes what `policy` says is too old or too many, as of `now`. Returns how many events it deleted.
pub async fn apply<S: AuditStore>(
    store: &S,
    policy: &RetentionPolicy,
    now: SystemTime,
) -> Result<u64, StoreError> {
    let Some(oldest) = store.oldest_seq().await? else { return Ok(0) };
    let Some((head, _)) = store.head().await? else { return Ok(0) };
    let mut through = oldest - 1;
    if let Some(max_age) = policy.max_age {
        let cutoff = micros(now.checked_sub(max_age).unwrap_or(std::time::UNIX_EPOCH));
        // Everything before the first event that is young enough; all of it when none is.
        let keep_from = store.first_seq_since(cutoff).await?.unwrap_or(head + 1);
        through = through.max(keep_from - 1);
    }
    if let Some(max_events) = policy.max_events {
        let keep = i64::try_from(max_events).unwrap_or(i64::MAX);
        through = through.max(head - keep);
    }
    let mut deleted = 0;
    let mut oldest = Some(oldest);
    while oldest.is_some_and(|o| o <= through) {
        let n = store.delete_through(through, policy.batch.max(1)).await?;
        if n == 0 {
            break;
        }
        deleted += n;
        // Let ingest have the database between batches.
        tokio::task::yield_now().await;
        oldest = store.oldest_seq().await?;
    }
    Ok(deleted)
}

/// Runs [`apply`] every `every` until the returned handle is aborted or dropped with the runtime.
pub fn spawn<S: AuditStore>(
    store: Arc<S>,
    policy: RetentionPolicy,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match apply(store.as_ref(), &policy, SystemTime::now()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(target: "sightline_audit", deleted = n, "audit retention removed old events")
                }
                Err(error) => {
                    tracing::warn!(target: "sightline_audit", %error, "audit retention failed; retrying later")
                }
            }
            tokio::time::sleep(every).await;
        }
    })
}
