//! The writer: the trail's only appender. Events queue in a bounded channel; one task takes them in
//! batches (up to `max_batch`, or whatever arrived within `max_delay`), chains them (sequence number and
//! hash) and commits each batch in one transaction: group commit. Callers of `record_durable` hear back
//! after the commit, so an acknowledged event is on disk. Full-text indexing runs after the
//! acknowledgements, in larger batches, so it never holds up a commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use sightline_core::Registry;
use sightline_core::redact::Redactor;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::event::{AuditEvent, EventError, Hash, Outcome, StoredEvent};
use crate::store::{AuditStore, StoreError};

/// `sightline_audit_events_total{outcome}`: events committed.
pub const EVENTS_METRIC: &str = "sightline_audit_events_total";
/// `sightline_audit_commit_seconds`: time to commit one batch.
pub const COMMIT_METRIC: &str = "sightline_audit_commit_seconds";
/// `sightline_audit_queue_depth`: events waiting for a commit.
pub const QUEUE_METRIC: &str = "sightline_audit_queue_depth";
/// `sightline_audit_rejected_total{reason}`: events refused (invalid, queue_full, unavailable, duplicate,
/// too_large, ...).
pub const REJECTED_METRIC: &str = "sightline_audit_rejected_total";
/// `sightline_security_events_total{event_type,result}`: committed security-relevant events: actions under
/// `auth.`, `security.` or `ratelimit.`, and every denial.
pub const SECURITY_METRIC: &str = "sightline_security_events_total";

/// Writer settings.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Most events in one commit (a multi-event request is never split).
    pub max_batch: usize,
    /// How long the first event of a batch waits for company.
    pub max_delay: Duration,
    /// Events that may wait for a commit; `record` waits for room beyond it.
    pub queue_capacity: usize,
    /// Events indexed for full text per indexing transaction.
    pub index_batch: usize,
    /// How often the full-text indexer looks for pending events while ingest is busy or after a failed
    /// pass (a commit wakes it at once; once ingest has been quiet for 30 s it looks every 30 s only);
    /// a tenth of it is how long it lets a burst of commits gather before a pass.
    pub index_interval: Duration,
    /// Redaction applied on ingest.
    pub redaction: Redaction,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 4096,
            max_delay: Duration::from_millis(5),
            queue_capacity: 65_536,
            index_batch: 50_000,
            index_interval: Duration::from_millis(250),
            redaction: Redaction::default(),
        }
    }
}

/// Which fields are redacted on ingest, with which rules.
#[derive(Debug, Clone)]
pub struct Redaction {
    /// The rules (shared with logs and traces).
    pub redactor: Redactor,
    /// Redact `message`.
    pub message: bool,
    /// Redact string values inside `attributes` (and mask values whose key is on the deny list).
    pub attributes: bool,
    /// Redact `actor.user_agent`.
    pub user_agent: bool,
    /// Redact `target.id`.
    pub target_id: bool,
}

impl Default for Redaction {
    fn default() -> Self {
        Self {
            redactor: Redactor::default(),
            message: true,
            attributes: true,
            user_agent: false,
            target_id: false,
        }
    }
}

impl Redaction {
    /// No redaction at all.
    pub fn off() -> Self {
        Self {
            redactor: Redactor::disabled(),
            message: false,
            attributes: false,
            user_agent: false,
            target_id: false,
        }
    }

    /// Applies the rules to `event`'s chosen fields.
    pub fn apply(&self, event: &mut AuditEvent) {
        if !self.redactor.is_enabled() {
            return;
        }
        if self.message {
            redact_string(&self.redactor, &mut event.message);
        }
        if self.user_agent
            && let Some(agent) = &mut event.actor.user_agent
        {
            redact_string(&self.redactor, agent);
        }
        if self.target_id
            && let Some(target) = &mut event.target
        {
            redact_string(&self.redactor, &mut target.id);
        }
        if self.attributes {
            for (key, value) in event.attributes.iter_mut() {
                redact_value(&self.redactor, key, value);
            }
        }
    }
}

fn redact_string(redactor: &Redactor, text: &mut String) {
    if let std::borrow::Cow::Owned(redacted) = redactor.redact(text) {
        *text = redacted;
    }
}

fn redact_value(redactor: &Redactor, key: &str, value: &mut serde_json::Value) {
    use serde_json::Value;
    if redactor.is_denied_field(key) && !value.is_null() {
        *value = Value::String("[REDACTED]".into());
        return;
    }
    match value {
        Value::String(text) => redact_string(redactor, text),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(redactor, key, v)),
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| redact_value(redactor, k, v)),
        _ => {}
    }
}

/// Why an event was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The event is invalid; nothing was stored.
    #[error("invalid audit event: {0}")]
    Invalid(#[from] EventError),
    /// The queue is full (`try_record` only).
    #[error("the audit queue is full ({0} events waiting); retry later")]
    QueueFull(usize),
    /// The database is unreachable; the writer retries queued events, but takes no new durable ones.
    #[error("audit storage is unavailable: {0}; retry later")]
    Unavailable(String),
    /// An event with this id is stored already.
    #[error("an audit event with id {0} is stored already")]
    Duplicate(Uuid),
    /// The database refused the events themselves (not a connection problem); nothing of them was stored.
    #[error("the audit database refused the events: {0}")]
    Refused(String),
    /// The writer has stopped.
    #[error("the audit writer has stopped")]
    Stopped,
}

impl WriteError {
    /// A short reason for `sightline_audit_rejected_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            WriteError::Invalid(_) => "invalid",
            WriteError::QueueFull(_) => "queue_full",
            WriteError::Unavailable(_) => "unavailable",
            WriteError::Duplicate(_) => "duplicate",
            WriteError::Refused(_) => "refused",
            WriteError::Stopped => "stopped",
        }
    }
}

type Ack = oneshot::Sender<Result<(), WriteError>>;

/// A unit of work: events committed together, and who to tell. A unit with `close` set asks the task
/// to commit what is queued and stop, even while other handles are alive.
struct Unit {
    events: Vec<AuditEvent>,
    ack: Option<Ack>,
    close: bool,
}

struct Shared {
    depth: AtomicI64,
    unavailable: AtomicBool,
    last_error: std::sync::Mutex<String>,
    queue_gauge: metrics::Gauge,
    registry: Option<Registry>,
}

impl Shared {
    fn reject(&self, reason: &str, n: usize) {
        if let Some(registry) = &self.registry
            && let Ok(counter) = registry.counter(REJECTED_METRIC, &[("reason", reason)])
        {
            counter.increment(n as u64);
        }
    }

    fn queued(&self, delta: i64) {
        let depth = self.depth.fetch_add(delta, Ordering::Relaxed) + delta;
        self.queue_gauge.set(depth as f64);
    }
}

/// The handle applications record through. Cheap to clone.
#[derive(Clone)]
pub struct AuditWriter {
    sender: mpsc::Sender<Unit>,
    shared: Arc<Shared>,
    redaction: Arc<Redaction>,
    capacity: usize,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter").field("queued", &self.queued()).finish_non_exhaustive()
    }
}

/// The writer's task; await [`WriterTask::join`] after dropping every [`AuditWriter`] (or call
/// [`AuditWriter::shutdown`]) to drain the queue.
#[derive(Debug)]
pub struct WriterTask {
    handle: JoinHandle<()>,
}

impl WriterTask {
    /// Waits until every queued event is committed and the task has stopped.
    pub async fn join(self) {
        let _ = self.handle.await;
    }
}

fn describe(registry: &Registry) {
    use sightline_core::{BaseUnit, Descriptor};
    for descriptor in [
        Descriptor::counter(EVENTS_METRIC, "Audit events committed, by outcome."),
        Descriptor::histogram(COMMIT_METRIC, "Time to commit one batch of audit events.")
            .with_unit(BaseUnit::Seconds),
        Descriptor::gauge(QUEUE_METRIC, "Audit events waiting for a commit."),
        Descriptor::counter(REJECTED_METRIC, "Audit events refused, by reason."),
        Descriptor::counter(SECURITY_METRIC, "Security-relevant audit events, by action and outcome."),
    ] {
        let _ = registry.describe(&descriptor);
    }
}

impl AuditWriter {
    /// Starts the writer task on the current tokio runtime, continuing the chain from the store's head.
    pub async fn start<S: AuditStore>(
        store: Arc<S>,
        config: WriterConfig,
        registry: Option<&Registry>,
    ) -> Result<(AuditWriter, WriterTask), StoreError> {
        let head = store.head().await?.unwrap_or((0, Hash::GENESIS));
        if let Some(registry) = registry {
            describe(registry);
        }
        let queue_gauge =
            registry.and_then(|r| r.gauge(QUEUE_METRIC, &[]).ok()).unwrap_or_else(metrics::Gauge::noop);
        let shared = Arc::new(Shared {
            depth: AtomicI64::new(0),
            unavailable: AtomicBool::new(false),
            last_error: std::sync::Mutex::new(String::new()),
            queue_gauge,
            registry: registry.cloned(),
        });
        let capacity = config.queue_capacity.max(1);
        let (sender, receiver) = mpsc::channel(capacity);
        let task = Task { store, config: config.clone(), shared: shared.clone(), head };
        let handle = tokio::spawn(task.run(receiver));
        let writer = AuditWriter { sender, shared, redaction: Arc::new(config.redaction), capacity };
        Ok((writer, WriterTask { handle }))
    }

    /// Counts `n` events refused before they reached the writer (for example a malformed request) in
    /// `sightline_audit_rejected_total{reason}`.
    pub fn count_rejected(&self, reason: &str, n: usize) {
        self.shared.reject(reason, n);
    }

    /// Events waiting for a commit.
    pub fn queued(&self) -> usize {
        usize::try_from(self.shared.depth.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Whether the last commit failed (the database is unreachable); cleared by the next success.
    pub fn is_unavailable(&self) -> bool {
        self.shared.unavailable.load(Ordering::Relaxed)
    }

    /// The last commit error, when [`is_unavailable`](Self::is_unavailable).
    pub fn last_error(&self) -> String {
        self.shared.last_error.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn prepare(&self, mut event: AuditEvent) -> Result<AuditEvent, WriteError> {
        self.redaction.apply(&mut event);
        if let Err(error) = event.validate() {
            self.shared.reject("invalid", 1);
            return Err(error.into());
        }
        Ok(event)
    }

    /// Queues `event`, waiting for room when the queue is full (backpressure). Returns its id once
    /// queued; the commit follows within `max_delay` plus commit time.
    pub async fn record(&self, event: AuditEvent) -> Result<Uuid, WriteError> {
        let event = self.prepare(event)?;
        let id = event.id;
        self.shared.queued(1);
        if self.sender.send(Unit { events: vec![event], ack: None, close: false }).await.is_err() {
            self.shared.queued(-1);
            return Err(WriteError::Stopped);
        }
        Ok(id)
    }

    /// Queues `event` without waiting: [`WriteError::QueueFull`] when there is no room.
    pub fn try_record(&self, event: AuditEvent) -> Result<Uuid, WriteError> {
        let event = self.prepare(event)?;
        let id = event.id;
        self.shared.queued(1);
        match self.sender.try_send(Unit { events: vec![event], ack: None, close: false }) {
            Ok(()) => Ok(id),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.queued(-1);
                self.shared.reject("queue_full", 1);
                Err(WriteError::QueueFull(self.capacity))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.queued(-1);
                Err(WriteError::Stopped)
            }
        }
    }

    /// Records `event` and returns after it is committed.
    pub async fn record_durable(&self, event: AuditEvent) -> Result<Uuid, WriteError> {
        self.record_all_durable(vec![event]).await.map(|ids| ids[0])
    }

    /// Records `events` as one unit, all or nothing, and returns their ids after the commit. While the
    /// database is unreachable it refuses at once with [`WriteError::Unavailable`] rather than queue.
    pub async fn record_all_durable(&self, events: Vec<AuditEvent>) -> Result<Vec<Uuid>, WriteError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if self.is_unavailable() {
            self.shared.reject("unavailable", events.len());
            return Err(WriteError::Unavailable(self.last_error()));
        }
        let events = events.into_iter().map(|e| self.prepare(e)).collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let n = events.len();
        let (ack, done) = oneshot::channel();
        self.shared.queued(n as i64);
        if self.sender.send(Unit { events, ack: Some(ack), close: false }).await.is_err() {
            self.shared.queued(-(n as i64));
            return Err(WriteError::Stopped);
        }
        match done.await {
            Ok(Ok(())) => Ok(ids),
            Ok(Err(error)) => {
                self.shared.reject(error.reason(), n);
                Err(error)
            }
            Err(_) => Err(WriteError::Stopped),
        }
    }

    /// Commits everything queued, stops the task (other handles then get [`WriteError::Stopped`]), and
    /// waits for it to end.
    pub async fn shutdown(self, task: WriterTask) {
        let _ = self.sender.send(Unit { events: Vec::new(), ack: None, close: true }).await;
        drop(self);
        task.join().await;
    }
}

struct Task<S> {
    store: Arc<S>,
    config: WriterConfig,
    shared: Arc<Shared>,
    head: (i64, Hash),
}

impl<S: AuditStore> Task<S> {
    async fn run(mut self, mut receiver: mpsc::Receiver<Unit>) {
        // Full-text indexing runs beside the commits, on its own connection, so ingest is bounded by the
        // slower of the two rather than their sum. It is told after each commit and also wakes on a timer.
        let committed = Arc::new(tokio::sync::Notify::new());
        let (stop_indexer, stop) = tokio::sync::watch::channel(());
        let indexer =
            tokio::spawn(index_loop(self.store.clone(), self.config.clone(), committed.clone(), stop));
        let mut closing = false;
        loop {
            let Some(first) = receiver.recv().await else { break };
            closing |= first.close;
            let mut units = vec![first];
            let mut count = units[0].events.len();
            let deadline = tokio::time::Instant::now() + self.config.max_delay;
            while count < self.config.max_batch {
                let next = match receiver.try_recv() {
                    Ok(unit) => Some(unit),
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                    // Closing: take what is queued, without waiting for more.
                    Err(mpsc::error::TryRecvError::Empty) if closing => None,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        tokio::time::timeout_at(deadline, receiver.recv()).await.ok().flatten()
                    }
                };
                let Some(unit) = next else { break };
                closing |= unit.close;
                count += unit.events.len();
                units.push(unit);
            }
            units.retain(|u| !u.close || !u.events.is_empty());
            if !units.is_empty() {
                self.commit(units).await;
                committed.notify_one();
            }
            if closing && receiver.is_empty() {
                receiver.close();
                // Whatever raced in between the check and the close is still committed.
                let mut rest = Vec::new();
                while let Ok(unit) = receiver.try_recv() {
                    rest.push(unit);
                }
                if !rest.is_empty() {
                    self.commit(rest).await;
                }
                break;
            }
        }
        // The indexer stops between passes, not in the middle of one: a query cancelled halfway can leave
        // its pooled connection out of step with the server (seen on PostgreSQL as "expected
        // ParseComplete, got ReadyForQuery" on the connection's next query).
        drop(stop_indexer);
        let _ = indexer.await;
        // Index what the last commits added before the task ends.
        index(self.store.as_ref(), &self.config, usize::MAX).await;
    }

    fn chain(&self, units: &[Unit]) -> Vec<StoredEvent> {
        let (mut seq, mut hash) = self.head;
        let mut stored = Vec::with_capacity(units.iter().map(|u| u.events.len()).sum());
        for event in units.iter().flat_map(|u| u.events.iter()) {
            seq += 1;
            let next = StoredEvent::chain(seq, event.clone(), hash);
            hash = next.hash;
            stored.push(next);
        }
        stored
    }

    /// Commits `units` together, retrying while the database is unreachable. A unit that the database
    /// refuses for itself (a duplicate id) fails alone: the others are committed without it.
    async fn commit(&mut self, units: Vec<Unit>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let stored = self.chain(&units);
            let started = Instant::now();
            match self.store.append(&stored).await {
                Ok(()) => {
                    self.committed(&stored, started.elapsed());
                    for unit in units {
                        if let Some(ack) = unit.ack {
                            let _ = ack.send(Ok(()));
                        }
                    }
                    return;
                }
                Err(error) if !is_transient(&error) => {
                    if units.len() == 1 {
                        let n = units[0].events.len();
                        self.shared.queued(-(n as i64));
                        tracing::warn!(target: "sightline_audit", %error, "audit events refused by the database");
                        let refusal = if is_unique_violation(&error) {
                            WriteError::Duplicate(units[0].events.first().map_or(Uuid::nil(), |e| e.id))
                        } else {
                            WriteError::Refused(error.to_string())
                        };
                        match units.into_iter().next().and_then(|u| u.ack) {
                            Some(ack) => {
                                let _ = ack.send(Err(refusal));
                            }
                            None => self.shared.reject(refusal.reason(), n),
                        }
                        return;
                    }
                    // Find the offender: commit the units one by one.
                    for unit in units {
                        Box::pin(self.commit(vec![unit])).await;
                    }
                    return;
                }
                Err(error) => {
                    if !self.shared.unavailable.swap(true, Ordering::Relaxed) {
                        tracing::error!(target: "sightline_audit", %error, "audit commit failed; retrying until the database is back");
                    }
                    if let Ok(mut last) = self.shared.last_error.lock() {
                        *last = error.to_string();
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn committed(&mut self, stored: &[StoredEvent], took: Duration) {
        if let Some(last) = stored.last() {
            self.head = (last.seq, last.hash);
        }
        if self.shared.unavailable.swap(false, Ordering::Relaxed) {
            tracing::info!(target: "sightline_audit", "audit commits resumed");
        }
        self.shared.queued(-(stored.len() as i64));
        let Some(registry) = &self.shared.registry else { return };
        if let Ok(histogram) = registry.histogram(COMMIT_METRIC, &[]) {
            histogram.record(took.as_secs_f64());
        }
        for outcome in Outcome::ALL {
            let n = stored.iter().filter(|s| s.event.outcome == outcome).count();
            if n > 0
                && let Ok(counter) = registry.counter(EVENTS_METRIC, &[("outcome", outcome.as_str())])
            {
                counter.increment(n as u64);
            }
        }
        for s in stored.iter().filter(|s| is_security(&s.event)) {
            if let Ok(counter) = registry.counter(
                SECURITY_METRIC,
                &[("event_type", s.event.action.as_str()), ("result", s.event.outcome.as_str())],
            ) {
                counter.increment(1);
            }
        }
    }
}

/// How long the indexer keeps looking every `index_interval` after its last pass that found work. The
/// stores rely on a few calls after a burst: `PgStore` waits, while PostgreSQL's insert statistics catch
/// up, to decide on a `VACUUM`.
const INDEX_BUSY_FOR: Duration = Duration::from_secs(30);

/// How often an idle indexer (no commit of its own for `INDEX_BUSY_FOR`) looks for events to index anyway:
/// those another process committed to the same trail and left unindexed (it was killed before its own
/// indexer ran). Commits of this writer wake the indexer at once.
const INDEX_IDLE_RECHECK: Duration = Duration::from_secs(30);

/// Indexes pending events whenever a commit happens, first whatever a previous run left unindexed (a
/// crash between commit and indexing). Between commits it looks again every `index_interval` while busy or
/// after a failed pass, and every `INDEX_IDLE_RECHECK` once idle, so an idle store is not polled.
async fn index_loop<S: AuditStore>(
    store: Arc<S>,
    config: WriterConfig,
    committed: Arc<tokio::sync::Notify>,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    let mut last_work = tokio::time::Instant::now();
    loop {
        let wait = match index(store.as_ref(), &config, usize::MAX).await {
            Pass::Failed => config.index_interval,
            Pass::Indexed(n) => {
                if n > 0 {
                    last_work = tokio::time::Instant::now();
                }
                if last_work.elapsed() < INDEX_BUSY_FOR { config.index_interval } else { INDEX_IDLE_RECHECK }
            }
        };
        // `changed` fails once the writer drops the sender: time to stop.
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::timeout(wait, committed.notified()) => {}
        }
        // Let a burst of commits accumulate into one larger indexing batch.
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(config.index_interval / 10) => {}
        }
    }
}

/// What one indexing pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Indexed this many events, and found nothing more pending.
    Indexed(usize),
    /// Failed (logged); pending events wait for the next pass.
    Failed,
}

async fn index<S: AuditStore>(store: &S, config: &WriterConfig, limit: usize) -> Pass {
    let (mut left, mut done) = (limit, 0_usize);
    while left > 0 {
        match store.index_pending(left.min(config.index_batch.max(1))).await {
            Ok(0) => break,
            Ok(n) => {
                left = left.saturating_sub(n);
                done = done.saturating_add(n);
            }
            Err(error) => {
                tracing::warn!(target: "sightline_audit", %error, "full-text indexing failed; it will be retried");
                return Pass::Failed;
            }
        }
    }
    Pass::Indexed(done)
}

/// Security-relevant: authentication, security and rate-limiting actions, and every denial.
pub fn is_security(event: &AuditEvent) -> bool {
    event.outcome == Outcome::Denied
        || ["auth.", "security.", "ratelimit."].iter().any(|p| event.action.starts_with(p))
}

fn is_unique_violation(error: &StoreError) -> bool {
    match error {
        StoreError::Database(sqlx::Error::Database(db)) => {
            matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation)
        }
        _ => false,
    }
}

/// Whether a failed commit is worth retrying as it is: the database is unreachable, restarting, out of
/// resources or busy. Anything else (a constraint, a value the database cannot store) is about the events
/// themselves, and retrying would block the writer forever.
fn is_transient(error: &StoreError) -> bool {
    match error {
        StoreError::Database(sqlx::Error::Database(db)) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            // PostgreSQL: connection exceptions (08), insufficient resources (53), operator intervention
            // (57), serialization failures (40). SQLite: BUSY (5), LOCKED (6), IOERR (10), FULL (13),
            // CANTOPEN (14), PROTOCOL (15), in their extended forms too.
            ["08", "53", "57", "40"].iter().any(|class| code.starts_with(class))
                || code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14 | 15))
        }
        StoreError::Database(_) => true,
        StoreError::Migrate(_) | StoreError::Url(_) | StoreError::Corrupt { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::AtomicUsize;

    use crate::query::{Cursor, Facet, Query};
    use crate::store::{ChainLink, Checkpoint, Page};

    /// A store that keeps nothing and counts `index_pending` calls; events "committed by another process"
    /// are `pending`.
    #[derive(Debug, Default)]
    struct Counting {
        index_calls: AtomicUsize,
        pending: AtomicUsize,
        appended: AtomicUsize,
    }

    impl AuditStore for Counting {
        async fn head(&self) -> Result<Option<(i64, Hash)>, StoreError> {
            Ok(None)
        }
        async fn append(&self, batch: &[StoredEvent]) -> Result<(), StoreError> {
            self.appended.fetch_add(batch.len(), Ordering::Relaxed);
            self.pending.fetch_add(batch.len(), Ordering::Relaxed);
            Ok(())
        }
        async fn index_pending(&self, _limit: usize) -> Result<usize, StoreError> {
            self.index_calls.fetch_add(1, Ordering::Relaxed);
            Ok(self.pending.swap(0, Ordering::Relaxed))
        }
        async fn search(&self, _: &Query, _: usize, _: Option<Cursor>) -> Result<Page, StoreError> {
            Ok(Page { events: Vec::new(), next_cursor: None })
        }
        async fn count_by(&self, _: &Query, _: Facet, _: usize) -> Result<Vec<(String, u64)>, StoreError> {
            Ok(Vec::new())
        }
        async fn scan(&self, _: i64, _: usize) -> Result<Vec<StoredEvent>, StoreError> {
            Ok(Vec::new())
        }
        async fn scan_chain(&self, _: i64, _: usize) -> Result<Vec<ChainLink>, StoreError> {
            Ok(Vec::new())
        }
        async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
            Ok(None)
        }
        async fn delete_through(&self, _: i64, _: usize) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn oldest_seq(&self) -> Result<Option<i64>, StoreError> {
            Ok(None)
        }
        async fn first_seq_since(&self, _: i64) -> Result<Option<i64>, StoreError> {
            Ok(None)
        }
        async fn count(&self) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn calls(store: &Counting) -> usize {
        store.index_calls.load(Ordering::Relaxed)
    }

    /// The indexer looks every `index_interval` while ingest is busy, then only every `INDEX_IDLE_RECHECK`
    /// (still finding what another process left), and a commit wakes it at once. (Paused time: the clock
    /// moves only when every task waits.)
    #[tokio::test(start_paused = true)]
    async fn an_idle_indexer_does_not_poll_the_store() {
        let store = Arc::new(Counting::default());
        let config = WriterConfig::default();
        let (writer, task) = AuditWriter::start(store.clone(), config.clone(), None).await.unwrap();
        writer.record_durable(AuditEvent::builder("a.b", "alice").build().unwrap()).await.unwrap();
        tokio::time::sleep(config.index_interval).await;
        assert_eq!(store.pending.load(Ordering::Relaxed), 0, "the commit was indexed");
        // Busy: a look every interval (each look is a pass: one call that finds nothing).
        let busy_start = calls(&store);
        tokio::time::sleep(INDEX_BUSY_FOR).await;
        let busy = calls(&store) - busy_start;
        let expected = (INDEX_BUSY_FOR.as_millis() / (config.index_interval * 11 / 10).as_millis()) as usize;
        assert!(busy.abs_diff(expected) <= 2, "{busy} looks while busy, expected about {expected}");
        // Idle for ten minutes: a look every `INDEX_IDLE_RECHECK`.
        tokio::time::sleep(INDEX_BUSY_FOR).await;
        let idle_start = calls(&store);
        tokio::time::sleep(Duration::from_secs(600)).await;
        let idle = calls(&store) - idle_start;
        assert!((19..=21).contains(&idle), "{idle} looks in 10 idle minutes");
        // Another process's events are found at the next look.
        store.pending.store(5, Ordering::Relaxed);
        tokio::time::sleep(INDEX_IDLE_RECHECK + config.index_interval).await;
        assert_eq!(store.pending.load(Ordering::Relaxed), 0, "found by the idle look");
        // A commit wakes the idle indexer at once: indexed within a tenth of the interval.
        tokio::time::sleep(INDEX_BUSY_FOR * 2).await;
        writer.record_durable(AuditEvent::builder("a.b", "bob").build().unwrap()).await.unwrap();
        tokio::time::sleep(config.index_interval / 5).await;
        assert_eq!(store.pending.load(Ordering::Relaxed), 0, "indexed after the commit");
        writer.shutdown(task).await;
        assert_eq!(store.appended.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn only_connection_and_resource_problems_are_retried() {
        assert!(is_transient(&StoreError::Database(sqlx::Error::PoolTimedOut)));
        assert!(is_transient(&StoreError::Database(sqlx::Error::Io(std::io::Error::other("reset")))));
        assert!(!is_transient(&StoreError::Url("x".into())));
    }
}
