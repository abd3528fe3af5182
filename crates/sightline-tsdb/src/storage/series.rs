//! One series' data: raw chunks, the open head chunk, and the downsampled tiers; appending, reading a
//! range, downsampling, retention, and the checkpoint encoding.

use crate::sample::{Sample, is_stale};

use super::chunk::{Chunk, ChunkEncoder, MAX_SAMPLES};
use super::wal::{Cursor, Put};

/// One downsampled point: the aggregates of the raw samples (staleness markers left out) of one bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct AggPoint {
    /// The timestamp of the bucket's last sample, as Thanos does, so that rates over points stay right.
    pub t: i64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// The bucket's last value.
    pub last: f64,
    /// The counter increase from the series' previous sample (before the bucket) to the bucket's last
    /// sample, counting a drop as a reset (as `increase` does). Values for counter functions are rebuilt
    /// from it on read.
    pub inc: f64,
}

/// A tier's points and how far it has been filled.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TierData {
    pub points: Vec<AggPoint>,
    /// Buckets starting before this are aggregated (`i64::MIN`: none yet).
    pub done_until: i64,
    /// The last value aggregated into this tier, for the next point's `inc` (retention may have deleted
    /// the point itself).
    pub prev_last: Option<f64>,
}

impl TierData {
    pub fn new() -> Self {
        Self { points: Vec::new(), done_until: i64::MIN, prev_last: None }
    }
}

/// Which aggregate a read of downsampled points returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pick {
    /// Reset-adjusted counter values (rate, increase, irate, resets, changes, deriv-like functions).
    Counter,
    Min,
    Max,
    Sum,
    Count,
    Avg,
    Last,
}

impl Pick {
    /// The aggregate for the function a selection feeds; see the module docs of [`super`].
    pub fn for_func(func: Option<&str>) -> Self {
        match func {
            Some("rate" | "increase" | "irate" | "resets" | "changes") => Self::Counter,
            Some("min_over_time") => Self::Min,
            Some("max_over_time") => Self::Max,
            Some("sum_over_time") => Self::Sum,
            Some("count_over_time") => Self::Count,
            Some("avg_over_time" | "quantile_over_time" | "stddev_over_time" | "stdvar_over_time") => {
                Self::Avg
            }
            _ => Self::Last,
        }
    }

    fn value(self, p: &AggPoint) -> f64 {
        match self {
            Self::Counter | Self::Last => p.last,
            Self::Min => p.min,
            Self::Max => p.max,
            Self::Sum => p.sum,
            Self::Count => p.count as f64,
            Self::Avg => p.sum / p.count as f64,
        }
    }
}

/// Tier layout the series code needs: bucket width of each tier.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// Raw chunks never span a boundary of this width (the first tier's resolution).
    pub chunk_range: i64,
    pub resolutions: Vec<i64>,
}

pub(crate) fn floor_to(t: i64, res: i64) -> i64 {
    t.div_euclid(res).saturating_mul(res)
}

/// The increase from `prev` to `cur`, counting a drop as a counter reset.
fn counter_delta(prev: f64, cur: f64) -> f64 {
    if cur >= prev { cur - prev } else { cur }
}

// === impl SeriesData ===

#[derive(Clone, Debug)]
pub(crate) struct SeriesData {
    pub chunks: Vec<Chunk>,
    pub head: ChunkEncoder,
    /// The seek points of the last chunk in `chunks`, while it is the most recently closed one: a query
    /// window that starts just before the head chunk reads only the end of that chunk.
    pub last_closed_seeks: Vec<super::chunk::SeekPoint>,
    pub tiers: Vec<TierData>,
    /// The last appended sample (`i64::MIN` when none).
    pub last_t: i64,
    pub last_v: f64,
}

/// What appending a sample did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AppendOutcome {
    Appended,
    /// Same timestamp and value as the last sample: accepted, nothing stored.
    Duplicate,
    OutOfOrder,
    /// Same timestamp, different value.
    Conflict,
}

impl SeriesData {
    pub fn new(tiers: usize) -> Self {
        Self {
            chunks: Vec::new(),
            head: ChunkEncoder::default(),
            last_closed_seeks: Vec::new(),
            tiers: (0..tiers).map(|_| TierData::new()).collect(),
            last_t: i64::MIN,
            last_v: 0.0,
        }
    }

    /// Whether a sample at `(t, v)` would be accepted.
    #[inline]
    pub fn check(&self, t: i64, v: f64) -> AppendOutcome {
        if self.last_t == i64::MIN || t > self.last_t {
            AppendOutcome::Appended
        } else if t < self.last_t {
            AppendOutcome::OutOfOrder
        } else if v.to_bits() == self.last_v.to_bits() {
            AppendOutcome::Duplicate
        } else {
            AppendOutcome::Conflict
        }
    }

    #[inline]
    pub fn append(&mut self, t: i64, v: f64, layout: &Layout) -> AppendOutcome {
        let outcome = self.check(t, v);
        if outcome != AppendOutcome::Appended {
            return outcome;
        }
        if self.head.count() > 0
            && (self.head.count() >= MAX_SAMPLES
                || floor_to(t, layout.chunk_range) != floor_to(self.head.min_t(), layout.chunk_range))
        {
            let head = std::mem::take(&mut self.head);
            let (chunk, seeks) = head.finish_with_seeks();
            self.chunks.push(chunk);
            self.last_closed_seeks = seeks;
        }
        self.head.append(t, v);
        self.last_t = t;
        self.last_v = v;
        AppendOutcome::Appended
    }

    pub fn raw_samples(&self) -> usize {
        self.chunks.iter().map(|c| usize::from(c.count)).sum::<usize>() + usize::from(self.head.count())
    }

    pub fn raw_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.data.len()).sum::<usize>() + self.head.bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.head.count() == 0 && self.tiers.iter().all(|t| t.points.is_empty())
    }

    fn raw_min_t(&self) -> Option<i64> {
        self.chunks.first().map(|c| c.min_t).or((self.head.count() > 0).then(|| self.head.min_t()))
    }

    /// The oldest and newest timestamps held in any tier.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let mut min = self.raw_min_t();
        for tier in &self.tiers {
            if let Some(p) = tier.points.first() {
                min = Some(min.map_or(p.t, |m| m.min(p.t)));
            }
        }
        let mut max = (self.head.count() > 0).then_some(self.last_t).or(self.chunks.last().map(|c| c.max_t));
        for tier in &self.tiers {
            if let Some(p) = tier.points.last() {
                max = Some(max.map_or(p.t, |m| m.max(p.t)));
            }
        }
        Some((min?, max?))
    }

    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.time_range().is_some_and(|(min, max)| min <= end && max >= start)
    }

    /// Raw samples in `[start, end]` appended to `out`, decoding only the chunks that overlap.
    fn read_raw(&self, start: i64, end: i64, out: &mut Vec<Sample>) {
        let first = self.chunks.partition_point(|c| c.max_t < start);
        // Room for every sample of the chunks the range touches, so that a long read allocates once
        // instead of doubling (and copying, and faulting in fresh pages) a dozen times.
        let upto = first + self.chunks[first..].partition_point(|c| c.min_t <= end);
        let touched: usize = self.chunks[first..upto].iter().map(|c| usize::from(c.count)).sum();
        out.reserve(touched + usize::from(self.head.count()));
        let last = self.chunks.len().saturating_sub(1);
        for (i, chunk) in self.chunks.iter().enumerate().skip(first) {
            if chunk.min_t > end {
                return;
            }
            let iter = if i == last { chunk.iter_from(start, &self.last_closed_seeks) } else { chunk.iter() };
            extend_range(out, iter, start, end);
        }
        if self.head.count() > 0 && self.head.max_t() >= start && self.head.min_t() <= end {
            extend_range(out, self.head.iter_from(start), start, end);
        }
    }

    /// Samples in `[start, end]`: raw where raw data exists, and for older parts the finest tier that
    /// has points, valued by `pick`.
    pub fn read(&self, start: i64, end: i64, pick: Pick, layout: &Layout, out: &mut Vec<Sample>) {
        // Each source covers whole buckets of the next coarser tier from its first point on; a coarser
        // tier is read only for buckets before that.
        let mut bound = i64::MAX;
        if let Some(min) = self.raw_min_t() {
            bound = layout.resolutions.first().map_or(min, |&res| floor_to(min, res));
        }
        let mut parts: Vec<&[AggPoint]> = Vec::new();
        for (i, tier) in self.tiers.iter().enumerate() {
            let res = layout.resolutions.get(i).copied().unwrap_or(1).max(1);
            let upto = tier.points.partition_point(|p| floor_to(p.t, res) < bound);
            let from = tier.points.partition_point(|p| p.t < start);
            if from < upto {
                parts.push(&tier.points[from..upto]);
            }
            if let Some(p) = tier.points.first() {
                let coarser = layout.resolutions.get(i + 1).copied().unwrap_or(res).max(1);
                bound = bound.min(floor_to(p.t, coarser));
            }
        }
        // Coarsest first, so `out` stays in time order.
        let before = out.len();
        for part in parts.iter().rev() {
            let to = part.partition_point(|p| p.t <= end);
            match pick {
                Pick::Counter => push_counter(out, &part[..to]),
                _ => out.extend(part[..to].iter().map(|p| Sample::new(p.t, pick.value(p)))),
            }
        }
        if pick == Pick::Counter && out.len() - before > 0 {
            rebuild_counter_chain(&mut out[before..], &parts);
        }
        self.read_raw(start, end, out);
    }

    /// Downsamples complete buckets and applies retention. `now` is in milliseconds; `retention[0]` is
    /// raw's, `retention[i + 1]` tier i's. Returns (raw samples removed, points removed).
    pub fn compact(&mut self, now: i64, layout: &Layout, retention: &[i64]) -> (usize, usize) {
        self.downsample(now, layout);
        let mut removed_samples = 0;
        let mut removed_points = 0;
        // Raw: whole chunks older than the cutoff, and only once downsampled.
        if let Some(&raw_ret) = retention.first() {
            let mut cutoff = floor_to(now.saturating_sub(raw_ret), layout.chunk_range);
            if let Some(t0) = self.tiers.first() {
                cutoff = cutoff.min(t0.done_until);
            }
            let keep_from = self.chunks.partition_point(|c| c.max_t < cutoff);
            removed_samples += self.chunks.drain(..keep_from).map(|c| usize::from(c.count)).sum::<usize>();
            if self.chunks.is_empty() {
                self.last_closed_seeks.clear();
            }
            if self.chunks.is_empty() && self.head.count() > 0 && self.head.max_t() < cutoff {
                removed_samples += usize::from(self.head.count());
                self.head = ChunkEncoder::default();
            }
        }
        for i in 0..self.tiers.len() {
            let Some(&ret) = retention.get(i + 1) else { continue };
            let coarser =
                layout.resolutions.get(i + 1).or(layout.resolutions.get(i)).copied().unwrap_or(1).max(1);
            let mut cutoff = floor_to(now.saturating_sub(ret), coarser);
            if let Some(next) = self.tiers.get(i + 1) {
                cutoff = cutoff.min(next.done_until);
            }
            let tier = &mut self.tiers[i];
            let keep_from = tier.points.partition_point(|p| p.t < cutoff);
            removed_points += keep_from;
            tier.points.drain(..keep_from);
        }
        (removed_samples, removed_points)
    }

    fn downsample(&mut self, now: i64, layout: &Layout) {
        let Some(&res0) = layout.resolutions.first() else { return };
        if self.tiers.is_empty() || self.last_t == i64::MIN {
            return;
        }
        // A bucket is complete once a later sample exists (out-of-order samples are refused) or once it
        // ended a whole bucket ago.
        let limit = floor_to(self.last_t, res0).max(floor_to(now.saturating_sub(res0), res0));
        let tier = &mut self.tiers[0];
        if tier.done_until < limit {
            let from = tier.done_until;
            let mut acc: Option<(i64, Acc)> = None;
            let mut prev = tier.prev_last;
            let mut new_points = Vec::new();
            let skip = self.chunks.partition_point(|c| c.max_t < from);
            let chunks = self.chunks[skip..].iter().map(Chunk::iter);
            let head = (self.head.count() > 0).then(|| self.head.iter());
            for s in chunks.chain(head).flatten() {
                if s.t < from || is_stale(s.v) {
                    continue;
                }
                if s.t >= limit {
                    break;
                }
                let bucket = floor_to(s.t, res0);
                if let Some((b, a)) = &acc {
                    if *b != bucket {
                        new_points.push(a.point());
                        acc = None;
                    }
                }
                let (_, a) = acc.get_or_insert_with(|| (bucket, Acc::new()));
                a.add(s, &mut prev);
            }
            if let Some((_, a)) = acc {
                new_points.push(a.point());
            }
            tier.points.extend(new_points);
            tier.prev_last = prev;
            tier.done_until = limit;
        }
        for i in 1..self.tiers.len() {
            let Some(&res) = layout.resolutions.get(i) else { break };
            let (finer, coarser) = self.tiers.split_at_mut(i);
            let (finer, coarser) = (&finer[i - 1], &mut coarser[0]);
            let limit = floor_to(finer.done_until, res);
            if coarser.done_until >= limit {
                continue;
            }
            let from = coarser.done_until;
            let mut acc: Option<(i64, AggPoint)> = None;
            let mut new_points = Vec::new();
            for p in finer.points.iter().filter(|p| p.t >= from && p.t < limit) {
                let bucket = floor_to(p.t, res);
                match &mut acc {
                    Some((b, a)) if *b == bucket => {
                        a.t = p.t;
                        a.count += p.count;
                        a.sum += p.sum;
                        a.min = a.min.min(p.min);
                        a.max = a.max.max(p.max);
                        a.last = p.last;
                        a.inc += p.inc;
                    }
                    _ => {
                        if let Some((_, a)) = acc.take() {
                            new_points.push(a);
                        }
                        acc = Some((bucket, *p));
                    }
                }
            }
            if let Some((_, a)) = acc {
                new_points.push(a);
            }
            if let Some(p) = new_points.last() {
                coarser.prev_last = Some(p.last);
            }
            coarser.points.extend(new_points);
            coarser.done_until = limit;
        }
    }

    // === checkpoint encoding ===

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_uvarint(self.chunks.len() as u64);
        for c in &self.chunks {
            encode_chunk(out, c);
        }
        encode_chunk(out, &self.head.clone().finish());
        out.put_uvarint(self.tiers.len() as u64);
        for tier in &self.tiers {
            out.put_varint(tier.done_until);
            match tier.prev_last {
                Some(v) => {
                    out.put_u8(1);
                    out.put_f64(v);
                }
                None => out.put_u8(0),
            }
            out.put_uvarint(tier.points.len() as u64);
            for p in &tier.points {
                out.put_varint(p.t);
                out.put_uvarint(p.count);
                for v in [p.sum, p.min, p.max, p.last, p.inc] {
                    out.put_f64(v);
                }
            }
        }
    }

    /// Decodes what [`Self::encode`] wrote, shaped to `tiers` tiers (extra stored tiers are dropped, missing
    /// ones start empty). The head chunk is re-appended so that it stays appendable.
    pub fn decode(c: &mut Cursor<'_>, tiers: usize, layout: &Layout) -> Option<Self> {
        let mut data = Self::new(tiers);
        let n = c.uvarint()?;
        for _ in 0..n {
            let chunk = decode_chunk(c)?;
            if chunk.count > 0 {
                data.last_t = chunk.max_t;
                data.last_v = chunk.iter().last().map_or(0.0, |s| s.v);
                data.chunks.push(chunk);
            }
        }
        let head = decode_chunk(c)?;
        for s in head.iter() {
            data.append(s.t, s.v, layout);
        }
        let n = c.uvarint()?;
        for i in 0..n {
            let done_until = c.varint()?;
            let prev_last = match c.u8()? {
                0 => None,
                _ => Some(c.f64()?),
            };
            let len = c.uvarint()?;
            let mut points = Vec::with_capacity(len.min(1 << 16) as usize);
            for _ in 0..len {
                let t = c.varint()?;
                let count = c.uvarint()?;
                let (sum, min, max, last, inc) = (c.f64()?, c.f64()?, c.f64()?, c.f64()?, c.f64()?);
                points.push(AggPoint { t, count, sum, min, max, last, inc });
            }
            if let Some(tier) = data.tiers.get_mut(i as usize) {
                *tier = TierData { points, done_until, prev_last };
            }
        }
        Some(data)
    }
}

fn encode_chunk(out: &mut Vec<u8>, c: &Chunk) {
    out.put_varint(c.min_t);
    out.put_varint(c.max_t);
    out.put_uvarint(u64::from(c.count));
    out.put_bytes(&c.data);
}

fn decode_chunk(c: &mut Cursor<'_>) -> Option<Chunk> {
    let min_t = c.varint()?;
    let max_t = c.varint()?;
    let count = u16::try_from(c.uvarint()?).ok()?;
    let data = c.bytes()?.to_vec().into_boxed_slice();
    Some(Chunk { min_t, max_t, count, data })
}

fn extend_range(out: &mut Vec<Sample>, it: impl Iterator<Item = Sample>, start: i64, end: i64) {
    for s in it {
        if s.t > end {
            break;
        }
        if s.t >= start {
            out.push(s);
        }
    }
}

/// Pushes counter points with their raw last values; [`rebuild_counter_chain`] then fixes the values.
fn push_counter(out: &mut Vec<Sample>, points: &[AggPoint]) {
    out.extend(points.iter().map(|p| Sample::new(p.t, p.last)));
}

/// Rewrites counter values so that consecutive differences are the stored reset-adjusted increases and
/// the newest point keeps its true value, which joins the raw samples that follow without a false reset.
fn rebuild_counter_chain(out: &mut [Sample], parts: &[&[AggPoint]]) {
    let incs: Vec<f64> = parts.iter().rev().flat_map(|p| p.iter().map(|a| a.inc)).collect();
    let n = out.len().min(incs.len());
    for i in (1..n).rev() {
        out[i - 1].v = out[i].v - incs[i];
    }
}

/// Running aggregates of one bucket.
#[derive(Debug)]
struct Acc {
    p: AggPoint,
}

impl Acc {
    fn new() -> Self {
        Self {
            p: AggPoint {
                t: 0,
                count: 0,
                sum: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                last: 0.0,
                inc: 0.0,
            },
        }
    }

    fn add(&mut self, s: Sample, prev: &mut Option<f64>) {
        let p = &mut self.p;
        p.t = s.t;
        p.count += 1;
        p.sum += s.v;
        p.min = p.min.min(s.v);
        p.max = p.max.max(s.v);
        p.last = s.v;
        if let Some(prev) = *prev {
            p.inc += counter_delta(prev, s.v);
        }
        *prev = Some(s.v);
    }

    fn point(&self) -> AggPoint {
        self.p
    }
}
