//! A bounded in-memory store of recently finished spans, indexed by trace.
//!
//! The tracing layer calls [`SpanStore::insert`] on every span close, so insertion is a short critical
//! section under one mutex: a move into a ring buffer plus at most one hash-map lookup (none when the span
//! belongs to the same trace as the previous insert), with no allocation once the buffers have grown to
//! their working size. When the store is full the oldest span is evicted (FIFO) and
//! dropped after the lock is released, so freeing its fields never delays other inserts.
//!
//! Spans of one trace are chained through the ring buffer (each slot knows the sequence number of the next
//! span of its trace), and a per-trace entry records the first and last link. Looking up a trace therefore
//! walks only its own spans, and evicting the oldest span only unlinks the head of its trace's chain. The
//! per-trace entries live in a slab next to the ring, so an eviction does not hash; the index never holds
//! more entries than there are stored spans.

use std::cmp::{Ordering, Reverse};
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::critical_path::{in_trace_parents, span_end};
use crate::record::{SpanRecord, SpanStatus, TraceId};

#[cfg(test)]
mod tests;

/// The ring's first reservation; it then doubles toward the capacity, so a large capacity costs memory only
/// once spans actually arrive.
const INITIAL_SLOTS: usize = 1024;

/// A bounded, shared store of recently finished spans.
///
/// Cloning is cheap and shares the same store, so the tracing layer and a query endpoint can each hold a
/// handle. Memory is bounded by `capacity_spans` spans (plus the size of what each span carries): the
/// oldest spans are evicted first when the store is full.
#[derive(Clone)]
pub struct SpanStore {
    shared: Arc<Shared>,
}

/// A whole trace as stored: every span the store still holds for the trace id.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The trace's id.
    pub trace_id: TraceId,
    /// The spans, sorted by start time; spans starting at the same instant put parents before children.
    pub spans: Vec<SpanRecord>,
}

/// Which traces [`SpanStore::query`] returns. Every filter that is set must match; unset filters match
/// everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceQuery {
    /// Keep traces in which any span was recorded by this service (exact match). Any span rather than the
    /// root, so a trace that passed through the service is found even when another service started it.
    pub service: Option<String>,
    /// Keep traces containing a span with exactly this name.
    pub name: Option<String>,
    /// Keep traces whose end-to-end duration (latest span end minus earliest span start) is at least this.
    pub min_duration: Option<Duration>,
    /// `Some(true)` keeps traces with at least one errored span, `Some(false)` traces with none.
    pub error: Option<bool>,
    /// The most traces to return (newest first); `0` returns none.
    pub limit: usize,
}

/// One trace as a line in a search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    /// The trace's id.
    pub trace_id: TraceId,
    /// The root span's name; the earliest span's when the root has not arrived or lives in another process.
    pub root_name: String,
    /// The service of the span `root_name` comes from.
    pub service: Arc<str>,
    /// The earliest start among the trace's stored spans.
    pub start: SystemTime,
    /// End to end: the latest span end minus `start`.
    pub duration: Duration,
    /// How many spans the store holds for the trace.
    pub span_count: usize,
    /// How many of them have [`SpanStatus::Error`].
    pub error_count: usize,
}

struct Shared {
    capacity: usize,
    /// Inserts into a zero-capacity store, which never takes the lock.
    discarded: AtomicU64,
    inner: Mutex<Inner>,
}

/// The ring and its index. Every span gets a sequence number when inserted; the span with sequence
/// number `seq` sits at `slots[seq - head_seq]`.
struct Inner {
    slots: VecDeque<Slot>,
    head_seq: u64,
    /// Per-trace chains; an entry with `count == 0` is free and listed in `free`.
    entries: Vec<TraceEntry>,
    free: Vec<usize>,
    index: HashMap<TraceId, usize, TraceIdState>,
    /// The trace of the previous insert and its entry. A trace's spans tend to close back to back (children
    /// just before their parent), so this often saves the index lookup; it is only a hint, checked against
    /// the entry before use.
    last: Option<(TraceId, usize)>,
    /// Spans evicted so far; counted under the lock because an atomic add here would be the most
    /// expensive instruction of an insert after the lock itself.
    evicted: u64,
}

struct Slot {
    span: SpanRecord,
    /// The sequence number of the next span of the same trace, if the store holds one.
    next: Option<u64>,
    /// The slot's trace entry in `Inner::entries`.
    entry: usize,
}

#[derive(Clone, Copy)]
struct TraceEntry {
    trace_id: TraceId,
    first: u64,
    last: u64,
    count: usize,
}

// === impl SpanStore ===

impl SpanStore {
    /// A store that keeps at most `capacity_spans` spans; `0` keeps nothing (every insert is counted as
    /// evicted), which turns the store off without changing the caller.
    pub fn new(capacity_spans: usize) -> Self {
        SpanStore {
            shared: Arc::new(Shared {
                capacity: capacity_spans,
                discarded: AtomicU64::new(0),
                inner: Mutex::new(Inner {
                    slots: VecDeque::new(),
                    head_seq: 0,
                    entries: Vec::new(),
                    free: Vec::new(),
                    index: HashMap::with_hasher(TraceIdState::new()),
                    last: None,
                    evicted: 0,
                }),
            }),
        }
    }

    /// Stores a finished span, evicting the oldest stored span when the store is full.
    ///
    /// This runs on every span close: it holds the lock only to move the span in and unlink the evicted
    /// one, and drops the evicted span after releasing the lock.
    pub fn insert(&self, span: SpanRecord) {
        let shared = &*self.shared;
        if shared.capacity == 0 {
            shared.discarded.fetch_add(1, AtomicOrdering::Relaxed);
            return;
        }
        let evicted = shared.lock().push(span, shared.capacity);
        drop(evicted);
    }

    /// How many spans the store holds now.
    pub fn len(&self) -> usize {
        self.shared.lock().slots.len()
    }

    /// Whether the store holds no spans.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most spans the store keeps.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// How many spans were dropped to stay within the capacity since the store was created.
    pub fn evicted_total(&self) -> u64 {
        let discarded = self.shared.discarded.load(AtomicOrdering::Relaxed);
        if self.shared.capacity == 0 { discarded } else { self.shared.lock().evicted }
    }

    /// Every stored span of the trace, sorted by start time (parents before children on ties); `None`
    /// when the store holds no span of it.
    pub fn trace(&self, id: TraceId) -> Option<Trace> {
        let mut spans = {
            let inner = self.shared.lock();
            let entry = inner.entries[*inner.index.get(&id)?];
            let mut spans = Vec::with_capacity(entry.count);
            spans.extend(inner.chain(&entry).map(|(_, span)| span.clone()));
            spans
        };
        sort_spans(&mut spans);
        Some(Trace { trace_id: id, spans })
    }

    /// Summaries of the stored traces that match `q`, newest (latest start) first, at most `q.limit`.
    ///
    /// This scans every stored span under the lock, so its cost grows with the number of stored spans and
    /// span closes wait for it meanwhile; it keeps only the best `q.limit` candidates while scanning and
    /// copies names only for those.
    pub fn query(&self, q: &TraceQuery) -> Vec<TraceSummary> {
        if q.limit == 0 {
            return Vec::new();
        }
        let inner = self.shared.lock();
        // One pass over the ring in storage order, folding every span into its trace's aggregate:
        // sequential memory access rather than hopping along each trace's chain.
        let mut aggregates: Vec<Option<Aggregate>> = vec![None; inner.entries.len()];
        for (seq, slot) in (inner.head_seq..).zip(&inner.slots) {
            match &mut aggregates[slot.entry] {
                Some(aggregate) => aggregate.add(seq, &slot.span, q),
                empty => *empty = Some(Aggregate::new(seq, &slot.span, q)),
            }
        }
        let mut best: BinaryHeap<Reverse<Candidate>> = BinaryHeap::new();
        for (entry, aggregate) in inner.entries.iter().zip(aggregates) {
            let Some(candidate) = aggregate.and_then(|a| a.finish(entry, q)) else { continue };
            if best.len() < q.limit {
                best.push(Reverse(candidate));
            } else if best.peek().is_some_and(|Reverse(worst)| candidate > *worst) {
                best.pop();
                best.push(Reverse(candidate));
            }
        }
        // `into_sorted_vec` on `Reverse` sorts best first.
        best.into_sorted_vec()
            .into_iter()
            .filter_map(|Reverse(c)| {
                let root = &inner.slot(c.root_seq)?.span;
                Some(TraceSummary {
                    trace_id: c.trace_id,
                    root_name: root.name.to_string(),
                    service: Arc::clone(&root.service),
                    start: c.start,
                    duration: c.duration,
                    span_count: c.span_count,
                    error_count: c.error_count,
                })
            })
            .collect()
    }
}

impl fmt::Debug for SpanStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (len, traces) = {
            let inner = self.shared.lock();
            (inner.slots.len(), inner.index.len())
        };
        f.debug_struct("SpanStore")
            .field("capacity", &self.shared.capacity)
            .field("len", &len)
            .field("traces", &traces)
            .field("evicted_total", &self.evicted_total())
            .finish()
    }
}

// === impl Shared ===

impl Shared {
    /// Locks the ring. A panic while holding the lock cannot leave it inconsistent in a way that matters
    /// (every update is a handful of field writes), so a poisoned lock is used as is rather than turning
    /// every later span close into a panic.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl Inner ===

impl Inner {
    /// Appends `span`, first evicting the oldest span when `capacity` spans are stored; returns the evicted
    /// span so the caller can drop it outside the lock.
    fn push(&mut self, span: SpanRecord, capacity: usize) -> Option<SpanRecord> {
        let evicted = if self.slots.len() >= capacity { self.evict_oldest() } else { None };
        self.reserve_slot(capacity);

        let seq = self.head_seq + self.slots.len() as u64;
        let id = span.trace_id;
        let cached = self.last.filter(|&(last_id, e)| {
            last_id == id && self.entries.get(e).is_some_and(|e| e.count > 0 && e.trace_id == id)
        });
        let entry = match cached.map(|(_, e)| e).or_else(|| self.index.get(&id).copied()) {
            Some(entry) => {
                let last = self.entries[entry].last;
                if let Some(prev) = self.slot_mut(last) {
                    prev.next = Some(seq);
                }
                let e = &mut self.entries[entry];
                e.last = seq;
                e.count += 1;
                entry
            }
            None => {
                let e = TraceEntry { trace_id: span.trace_id, first: seq, last: seq, count: 1 };
                let entry = match self.free.pop() {
                    Some(free) => {
                        self.entries[free] = e;
                        free
                    }
                    None => {
                        self.entries.push(e);
                        self.entries.len() - 1
                    }
                };
                self.index.insert(span.trace_id, entry);
                entry
            }
        };
        self.last = Some((id, entry));
        self.slots.push_back(Slot { span, next: None, entry });
        evicted
    }

    /// Grows the ring toward `capacity` without overshooting it, so a full store holds exactly `capacity`
    /// slots rather than the next power of two.
    fn reserve_slot(&mut self, capacity: usize) {
        let len = self.slots.len();
        if len == self.slots.capacity() && len < capacity {
            self.slots.reserve_exact(len.max(INITIAL_SLOTS).min(capacity - len));
        }
    }

    /// Removes the oldest span and unlinks it from its trace's chain, freeing the trace's entry when it was
    /// the trace's last stored span.
    fn evict_oldest(&mut self) -> Option<SpanRecord> {
        let slot = self.slots.pop_front()?;
        let seq = self.head_seq;
        self.head_seq += 1;
        self.evicted += 1;
        let entry = &mut self.entries[slot.entry];
        // The oldest span overall is the oldest of its trace, so it is always the head of the chain.
        debug_assert_eq!(entry.first, seq, "the evicted span must head its trace's chain");
        entry.count -= 1;
        match slot.next {
            Some(next) if entry.count > 0 => entry.first = next,
            _ => {
                entry.count = 0;
                let trace_id = entry.trace_id;
                self.index.remove(&trace_id);
                self.free.push(slot.entry);
            }
        }
        Some(slot.span)
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        let offset = usize::try_from(seq.checked_sub(self.head_seq)?).ok()?;
        self.slots.get(offset)
    }

    fn slot_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let offset = usize::try_from(seq.checked_sub(self.head_seq)?).ok()?;
        self.slots.get_mut(offset)
    }

    /// The spans of one trace with their sequence numbers, oldest insert first.
    fn chain<'a>(&'a self, entry: &TraceEntry) -> impl Iterator<Item = (u64, &'a SpanRecord)> + 'a {
        let mut next = Some(entry.first);
        let mut remaining = entry.count;
        std::iter::from_fn(move || {
            if remaining == 0 {
                return None;
            }
            remaining -= 1;
            let seq = next?;
            let slot = self.slot(seq)?;
            next = slot.next;
            Some((seq, &slot.span))
        })
    }
}

/// One trace's figures while [`SpanStore::query`] scans the ring.
#[derive(Clone)]
struct Aggregate {
    start: SystemTime,
    end: SystemTime,
    error_count: usize,
    service_seen: bool,
    name_seen: bool,
    /// The span naming the trace: the earliest parentless span, else the earliest span. Remembered by
    /// sequence number, so names are copied only for the results that make the cut.
    root: (SystemTime, u64, bool),
}

impl Aggregate {
    fn new(seq: u64, span: &SpanRecord, q: &TraceQuery) -> Self {
        let mut aggregate = Aggregate {
            start: span.start,
            end: span_end(span),
            error_count: 0,
            service_seen: q.service.is_none(),
            name_seen: q.name.is_none(),
            root: (span.start, seq, span.parent_span_id.is_none()),
        };
        aggregate.add(seq, span, q);
        aggregate
    }

    fn add(&mut self, seq: u64, span: &SpanRecord, q: &TraceQuery) {
        self.start = self.start.min(span.start);
        self.end = self.end.max(span_end(span));
        if span.status == SpanStatus::Error {
            self.error_count += 1;
        }
        self.service_seen = self.service_seen || q.service.as_deref() == Some(&*span.service);
        self.name_seen = self.name_seen || q.name.as_deref() == Some(&*span.name);
        let is_root = span.parent_span_id.is_none();
        let (root_start, _, root_is_root) = self.root;
        if (is_root, Reverse(span.start)) > (root_is_root, Reverse(root_start)) {
            self.root = (span.start, seq, is_root);
        }
    }

    /// The trace's candidate result when it matches `q`.
    fn finish(self, entry: &TraceEntry, q: &TraceQuery) -> Option<Candidate> {
        let duration = self.end.duration_since(self.start).unwrap_or(Duration::ZERO);
        let matches = self.service_seen
            && self.name_seen
            && q.min_duration.is_none_or(|min| duration >= min)
            && q.error.is_none_or(|error| error == (self.error_count > 0));
        matches.then_some(Candidate {
            start: self.start,
            trace_id: entry.trace_id,
            duration,
            root_seq: self.root.1,
            span_count: entry.count,
            error_count: self.error_count,
        })
    }
}

/// A matching trace while [`SpanStore::query`] scans. Ordered by rank: a later start is better, and on
/// equal starts the smaller trace id, so results are deterministic.
#[derive(Clone, Copy)]
struct Candidate {
    start: SystemTime,
    trace_id: TraceId,
    duration: Duration,
    root_seq: u64,
    span_count: usize,
    error_count: usize,
}

impl Candidate {
    fn rank(&self) -> (SystemTime, Reverse<TraceId>) {
        (self.start, Reverse(self.trace_id))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

// === impl TraceQuery ===

impl Default for TraceQuery {
    fn default() -> Self {
        TraceQuery { service: None, name: None, min_duration: None, error: None, limit: 20 }
    }
}

impl TraceQuery {
    /// Keeps traces in which any span was recorded by `service`.
    #[must_use]
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// Keeps traces containing a span named exactly `name`.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Keeps traces that took at least `min` end to end.
    #[must_use]
    pub fn with_min_duration(mut self, min: Duration) -> Self {
        self.min_duration = Some(min);
        self
    }

    /// Keeps traces with an errored span (`true`) or without one (`false`).
    #[must_use]
    pub fn with_error(mut self, error: bool) -> Self {
        self.error = Some(error);
        self
    }

    /// Returns at most `limit` traces.
    #[must_use]
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

/// Builds the index's hasher: one folded multiply per trace id, keyed at random per store.
///
/// Trace ids are random already, so the strong mixing of the standard SipHash buys little, but they can
/// also come from a remote `traceparent` header; the per-store random key keeps an attacker from choosing
/// ids that collide (the same construction as `foldhash`, hashbrown's default hasher).
#[derive(Clone)]
struct TraceIdState {
    seeds: [u64; 2],
}

impl TraceIdState {
    fn new() -> Self {
        let random = RandomState::new();
        TraceIdState { seeds: [random.hash_one(1_u64), random.hash_one(2_u64) | 1] }
    }
}

impl BuildHasher for TraceIdState {
    type Hasher = TraceIdHasher;

    fn build_hasher(&self) -> TraceIdHasher {
        TraceIdHasher { seeds: self.seeds, hash: 0 }
    }
}

struct TraceIdHasher {
    seeds: [u64; 2],
    hash: u64,
}

impl Hasher for TraceIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `TraceId` (which writes one `u128`), but correct for any input.
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.hash = folded_multiply(n ^ self.seeds[0] ^ self.hash, self.seeds[1]);
    }

    fn write_u128(&mut self, n: u128) {
        let (lo, hi) = (n as u64, (n >> 64) as u64);
        self.hash = folded_multiply(lo ^ self.seeds[0] ^ self.hash, hi ^ self.seeds[1]);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Multiplies to 128 bits and folds the halves together, so every input bit reaches every output bit.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Sorts spans by start time, parents before children on equal starts (depth within the trace breaks the
/// tie), and otherwise keeps the order they were stored in.
fn sort_spans(spans: &mut Vec<SpanRecord>) {
    let parents = in_trace_parents(spans);
    let depth: Vec<usize> = (0..spans.len())
        .map(|i| {
            // Bounded by the span count, so a parent cycle in bad input cannot loop forever.
            std::iter::successors(parents[i], |&p| parents[p]).take(spans.len()).count()
        })
        .collect();
    let mut keyed: Vec<(SystemTime, usize, SpanRecord)> =
        spans.drain(..).zip(depth).map(|(span, depth)| (span.start, depth, span)).collect();
    keyed.sort_by_key(|&(start, depth, _)| (start, depth));
    spans.extend(keyed.into_iter().map(|(_, _, span)| span));
}
