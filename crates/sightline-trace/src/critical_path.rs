//! The critical path of a trace: the chain of spans that determined its end-to-end latency.
//!
//! The walk is the backwards one of Jaeger's and Uber's critical-path analysis. Starting at the root's
//! end, it repeatedly picks the child that finished last before the cursor: the time between that child's
//! end and the cursor belongs to the parent (nothing it waited for was running), the child's own window
//! is explained recursively, and the cursor moves to the child's start. Children that overlap a later
//! critical child did not delay the parent and are skipped. When no child is left, the time back to the
//! parent's start is the parent's own.
//!
//! A child ending exactly at the cursor counts as finished before it, so back-to-back sequential children
//! (the next one starting the instant the previous one ends) are all on the path.
//!
//! A child is clipped to its parent's (already clipped) window first, so a child that outlives its parent,
//! such as fire-and-forget work, only counts for the part that overlaps the parent.
//!
//! Which root: a span without a parent (`parent_span_id == None`); if several, the one ending last. When
//! there is none (the root has not arrived yet, or lives in another process), the spans whose parent is
//! missing from the input are the candidates instead, again the one ending last. Other parentless or
//! orphaned spans are roots of their own subtrees, which are not on the chosen root's path: their parent
//! link to the chosen root is unknown, and guessing one would invent causality.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use crate::record::{SpanId, SpanRecord};

/// One piece of the critical path: the time `span_id` itself was the reason the trace was not done yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriticalSegment {
    /// The span the time is attributed to.
    pub span_id: SpanId,
    /// The span's name.
    pub name: String,
    /// Where the segment starts.
    pub start: SystemTime,
    /// Where the segment ends; never before `start`.
    pub end: SystemTime,
}

impl CriticalSegment {
    /// How long the segment lasts.
    pub fn duration(&self) -> Duration {
        self.end.duration_since(self.start).unwrap_or(Duration::ZERO)
    }
}

/// The critical path of one trace's spans (in any order), as segments in chronological order.
///
/// The segments do not overlap, follow each other without gaps and cover exactly the chosen root's window
/// (see the module docs for which root). Segments never have zero length, except that a zero-length root
/// yields one zero-length segment, so any non-empty input has a path. Empty input yields an empty path.
pub fn critical_path(trace: &[SpanRecord]) -> Vec<CriticalSegment> {
    let parents = in_trace_parents(trace);
    let Some(root) = pick_root(trace, &parents) else { return Vec::new() };

    // Children sorted by end time, latest first; ties prefer the earlier start (the longer child), then
    // input order, so the result does not depend on hash order.
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); trace.len()];
    for (child, parent) in parents.iter().enumerate() {
        if let Some(parent) = *parent {
            children[parent].push(child);
        }
    }
    for list in &mut children {
        list.sort_by(|&a, &b| {
            span_end(&trace[b]).cmp(&span_end(&trace[a])).then(trace[a].start.cmp(&trace[b].start))
        });
    }

    struct Frame {
        span: usize,
        /// The span's window, clipped to its ancestors'.
        lo: SystemTime,
        hi: SystemTime,
        /// The time before which the span's children may still explain the wait; starts at the window's end.
        cursor: SystemTime,
        /// The next child (in `children[span]`) to consider.
        next_child: usize,
    }

    let root_span = &trace[root];
    let root_end = span_end(root_span);
    if root_end <= root_span.start {
        return vec![segment(root_span, root_span.start, root_span.start)];
    }

    // Segments are found latest first and reversed at the end. An explicit stack rather than recursion,
    // because traces of recursive code can nest thousands of spans deep.
    let mut reversed = Vec::new();
    let mut stack =
        vec![Frame { span: root, lo: root_span.start, hi: root_end, cursor: root_end, next_child: 0 }];
    while let Some(frame) = stack.last_mut() {
        let span = &trace[frame.span];
        let mut picked = None;
        while let Some(&child) = children[frame.span].get(frame.next_child) {
            frame.next_child += 1;
            let child_span = &trace[child];
            let lo = child_span.start.max(frame.lo);
            let hi = span_end(child_span).min(frame.hi);
            // A child ending after the cursor ran alongside a later critical child and delayed nothing; an
            // empty window is a zero-length child or one entirely outside the parent.
            if hi > frame.cursor || lo >= hi {
                continue;
            }
            picked = Some((child, lo, hi));
            break;
        }
        match picked {
            Some((child, lo, hi)) => {
                if hi < frame.cursor {
                    reversed.push(segment(span, hi, frame.cursor));
                }
                frame.cursor = lo;
                stack.push(Frame { span: child, lo, hi, cursor: hi, next_child: 0 });
            }
            None => {
                if frame.lo < frame.cursor {
                    reversed.push(segment(span, frame.lo, frame.cursor));
                }
                stack.pop();
            }
        }
    }
    reversed.reverse();
    reversed
}

/// The ids of the spans on the critical path, for highlighting (as [`crate::gantt::render_gantt`] does).
pub fn critical_span_ids(trace: &[SpanRecord]) -> HashSet<SpanId> {
    critical_path(trace).into_iter().map(|s| s.span_id).collect()
}

/// How much critical-path time each span accounts for: the sum of its segments' durations.
///
/// This is the span's share of the end-to-end latency, which is what to shorten first: time a span spent
/// waiting on a child is the child's, and time it ran alongside a later-finishing sibling is nobody's.
pub fn self_time(path: &[CriticalSegment]) -> HashMap<SpanId, Duration> {
    let mut times: HashMap<SpanId, Duration> = HashMap::new();
    for segment in path {
        *times.entry(segment.span_id).or_default() += segment.duration();
    }
    times
}

fn segment(span: &SpanRecord, start: SystemTime, end: SystemTime) -> CriticalSegment {
    CriticalSegment { span_id: span.span_id, name: span.name.to_string(), start, end }
}

/// The root the path starts from: a parentless span ending last, else an orphan ending last. Ties prefer
/// the earlier start, then input order.
fn pick_root(trace: &[SpanRecord], parents: &[Option<usize>]) -> Option<usize> {
    let best = |candidates: &mut dyn Iterator<Item = usize>| {
        candidates.fold(None, |best: Option<usize>, i| match best {
            Some(b)
                if (span_end(&trace[b]), std::cmp::Reverse(trace[b].start))
                    >= (span_end(&trace[i]), std::cmp::Reverse(trace[i].start)) =>
            {
                Some(b)
            }
            _ => Some(i),
        })
    };
    best(&mut (0..trace.len()).filter(|&i| trace[i].parent_span_id.is_none()))
        .or_else(|| best(&mut (0..trace.len()).filter(|&i| parents[i].is_none())))
}

/// When the span closed. Unlike [`SpanRecord::end`] this cannot panic: a duration that overflows the
/// clock (only possible in bad input) is treated as zero.
pub(crate) fn span_end(span: &SpanRecord) -> SystemTime {
    span.start.checked_add(span.duration).unwrap_or(span.start)
}

/// For each span, the index of its parent within `spans`: `None` for a root, for a span whose parent is
/// not in `spans` (an orphan), and for a span naming itself as its parent. When two spans share an id, the
/// first one is the parent.
pub(crate) fn in_trace_parents(spans: &[SpanRecord]) -> Vec<Option<usize>> {
    let mut by_id: HashMap<SpanId, usize> = HashMap::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        by_id.entry(span.span_id).or_insert(i);
    }
    spans
        .iter()
        .enumerate()
        .map(|(i, span)| span.parent_span_id.and_then(|p| by_id.get(&p).copied()).filter(|&p| p != i))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
