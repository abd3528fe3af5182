//! Verification of the hash chain: every stored event's hash is recomputed from its fields and linked to
//! the one before, from the latest retention checkpoint (or the genesis) to the head.

use crate::event::Hash;
use crate::store::{AuditStore, ChainLink, StoreError};

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

/// Where verification has got to.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// The last seq checked (the checkpoint's, or 0, at first).
    last_seq: i64,
    /// The hash the next event must name as its `prev_hash`.
    expected_prev: Hash,
    /// Events checked so far.
    checked: u64,
}

/// Walks the whole chain. Stops at the first problem.
///
/// Each batch is first read as [`ChainLink`]s, which backends hash straight from their rows. A batch in
/// which every link checks out is done with. Otherwise (or when the links cannot be read) the batch is
/// read again as whole events and checked event by event, as it always was: that is what finds and
/// describes the problem, so the report (kind, position, id, counts, and any error reading a row) is the
/// same whichever way the links went. A link's hash can only match its stored hash if its fields are the
/// ones the writer stored (the encoding is the canonical one, field by field), so a batch that checks out
/// as links checks out as events too.
pub async fn verify<S: AuditStore>(store: &S) -> Result<Report, StoreError> {
    let (from_seq, expected_prev) = match store.checkpoint().await? {
        Some(checkpoint) => (checkpoint.seq, checkpoint.hash),
        None => (0, Hash::GENESIS),
    };
    let mut at = Position { last_seq: from_seq, expected_prev, checked: 0 };
    loop {
        if let Ok(links) = store.scan_chain(at.last_seq, BATCH).await {
            if links.is_empty() {
                break;
            }
            if let Some(next) = follow(at, &links) {
                at = next;
                continue;
            }
        }
        match check_events(store, &mut at, from_seq).await? {
            Batch::Checked => {}
            Batch::End => break,
            Batch::Problem(report) => return Ok(report),
        }
    }
    Ok(finished(at, from_seq))
}

/// The report on a chain that checked out up to `at`.
fn finished(at: Position, from_seq: i64) -> Report {
    Report { ok: true, checked: at.checked, from_seq, head_seq: at.last_seq, problem: None }
}

/// Where the chain is after `links`, if every one of them checks out.
fn follow(mut at: Position, links: &[ChainLink]) -> Option<Position> {
    for link in links {
        if link.seq != at.last_seq + 1
            || link.computed != Some(link.hash)
            || link.prev_hash != at.expected_prev
        {
            return None;
        }
        at = Position { last_seq: link.seq, expected_prev: link.hash, checked: at.checked + 1 };
    }
    Some(at)
}

/// What checking a batch of events found.
enum Batch {
    /// Every event checked out; `at` moved past them.
    Checked,
    /// There are no more events.
    End,
    /// The first problem.
    Problem(Report),
}

/// Reads the batch after `at` as whole events and checks them one by one.
async fn check_events<S: AuditStore>(
    store: &S,
    at: &mut Position,
    from_seq: i64,
) -> Result<Batch, StoreError> {
    let batch = store.scan(at.last_seq, BATCH).await?;
    if batch.is_empty() {
        return Ok(Batch::End);
    }
    for stored in &batch {
        at.checked += 1;
        let last_seq = at.last_seq;
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
        } else if stored.prev_hash != at.expected_prev {
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
            return Ok(Batch::Problem(Report {
                ok: false,
                checked: at.checked,
                from_seq,
                head_seq: stored.seq,
                problem: Some(problem),
            }));
        }
        at.expected_prev = stored.hash;
        at.last_seq = stored.seq;
    }
    Ok(Batch::Checked)
}
