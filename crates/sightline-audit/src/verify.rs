//! Verification of the hash chain: every stored event's hash is recomputed from its fields and linked to
//! the one before, from the latest retention checkpoint (or the genesis) to the head.

use crate::event::Hash;
use crate::store::{AuditStore, StoreError};

/// Events read per batch while verifying.
const BATCH: usize = 10_000;

/// What went wrong first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// Events are missing: the sequence jumps.
    Missing,
    /// The event's fields no longer match its stored hash.
    Altered,
    /// The event does not follow the one before it (its `prev_hash` is another event's hash).
    Reordered,
}

impl ProblemKind {
    /// `missing`, `altered` or `reordered`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            ProblemKind::Missing => "missing",
            ProblemKind::Altered => "altered",
            ProblemKind::Reordered => "reordered",
        }
    }
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// The chain position where it shows.
    pub seq: i64,
    /// The id of the event at that position, when there is one.
    pub id: Option<String>,
    /// A sentence for people.
    pub detail: String,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Whether the whole chain checked out.
    pub ok: bool,
    /// Events checked (up to and including the first problem).
    pub checked: u64,
    /// Where verification started: the checkpoint's seq, or 0.
    pub from_seq: i64,
    /// The last seq checked.
    pub head_seq: i64,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// Walks the whole chain. Stops at the first problem.
pub async fn verify<S: AuditStore>(store: &S) -> Result<Report, StoreError> {
    let (from_seq, mut expected_prev) = match store.checkpoint().await? {
        Some(checkpoint) => (checkpoint.seq, checkpoint.hash),
        None => (0, Hash::GENESIS),
    };
    let mut last_seq = from_seq;
    let mut checked = 0u64;
    loop {
        let batch = store.scan(last_seq, BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for stored in &batch {
            checked += 1;
            let id = Some(stored.event.id.to_string());
            let problem = if stored.seq != last_seq + 1 {
                Some(Problem {
                    kind: ProblemKind::Missing,
                    seq: last_seq + 1,
                    id: None,
                    detail: format!(
                        "events {} to {} are missing (the next stored event is {})",
                        last_seq + 1,
                        stored.seq - 1,
                        stored.seq
                    ),
                })
            } else if stored.event.chain_hash(&stored.prev_hash) != stored.hash {
                Some(Problem {
                    kind: ProblemKind::Altered,
                    seq: stored.seq,
                    id,
                    detail: format!(
                        "event {} was changed after it was stored: its hash does not match",
                        stored.seq
                    ),
                })
            } else if stored.prev_hash != expected_prev {
                Some(Problem {
                    kind: ProblemKind::Reordered,
                    seq: stored.seq,
                    id,
                    detail: format!(
                        "event {} does not follow event {}: it was moved, or the events before it were replaced",
                        stored.seq, last_seq
                    ),
                })
            } else {
                None
            };
            if let Some(problem) = problem {
                return Ok(Report {
                    ok: false,
                    checked,
                    from_seq,
                    head_seq: stored.seq,
                    problem: Some(problem),
                });
            }
            expected_prev = stored.hash;
            last_seq = stored.seq;
        }
    }
    Ok(Report { ok: true, checked, from_seq, head_seq: last_seq, problem: None })
}
