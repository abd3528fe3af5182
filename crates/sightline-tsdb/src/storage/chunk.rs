//! Compressed chunks: Gorilla-style delta-of-delta timestamps and, for values, either Gorilla XOR floats
//! or scaled decimal integers.
//!
//! The bit writer and reader are hand-written: they are ~80 lines, the chunk format needs exactly
//! MSB-first bit packing with an appendable last byte, and the crates.io bit-stream crates either do not
//! allow appending to a stream that is read concurrently (the head chunk is read while it grows) or add a
//! generic layer the hot path does not need.
//!
//! # Format
//!
//! Byte 0 is the value encoding: `0` = XOR floats, `1 + d` = decimal integers scaled by `10^-d`. The bit
//! stream follows:
//!
//! - sample 0: the timestamp (64 bits) and the value (64 bits: the float's bits, or the integer);
//! - sample 1 on: the timestamp's delta-of-delta in Prometheus's buckets (`0`; `10` + 14 bits;
//!   `110` + 17 bits; `1110` + 20 bits; `1111` + 64 bits), then the value:
//!   - XOR: `0` when equal to the previous; else `1`, then `0` + the meaningful bits inside the previous
//!     leading/trailing-zero window, or `1` + 5 bits leading zeros + 6 bits length + the bits (Gorilla);
//!   - decimal: the integer's delta from the previous in buckets (`0`; `10` + 7 bits; `110` + 14 bits;
//!     `1110` + 24 bits; `1111` + 64 bits).
//!
//! Why decimal integers: scraped values are mostly short decimals (`0.25`, `45.6`, byte counts). Their
//! XOR differs in nearly all mantissa bits (`45.6` has no short binary expansion), so Gorilla spends
//! ~6-7 bytes on each; as integers scaled by a power of ten their deltas take 1-2 bytes. A value is
//! stored as decimal only when `m as f64 / 10^d` gives back the exact same bits, so the encoding is
//! lossless; a value that fits no scale (NaN, the staleness marker, infinities, `-0.0`, long binary
//! fractions) re-encodes the chunk (at most 120 samples) as XOR.

use crate::sample::Sample;

/// Samples per chunk before a new one is cut (Prometheus's default).
pub(crate) const MAX_SAMPLES: u16 = 120;

const ENC_XOR: u8 = 0;
const MAX_SCALE: u8 = 9;
const POW10: [f64; 10] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Integers of magnitude below 2^53 convert to `f64` exactly.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

const DOD_BUCKETS: [u32; 3] = [14, 17, 20];
const INT_BUCKETS: [u32; 3] = [7, 14, 24];

// === impl BitWriter ===

/// An MSB-first bit stream whose last byte may be partly filled.
#[derive(Debug, Clone, Default)]
struct BitWriter {
    buf: Vec<u8>,
    /// Free bits in the last byte (0 when a new byte is needed).
    free: u32,
}

impl BitWriter {
    #[inline]
    fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.buf.push(0);
            self.free = 8;
        }
        self.free -= 1;
        if bit {
            if let Some(last) = self.buf.last_mut() {
                *last |= 1 << self.free;
            }
        }
    }

    /// Writes the low `n` bits of `value` (n <= 64), most significant first.
    #[inline]
    fn write_bits(&mut self, value: u64, n: u32) {
        let mut n = n;
        while n > 0 {
            if self.free == 0 {
                self.buf.push(0);
                self.free = 8;
            }
            let take = n.min(self.free);
            let shift = n - take;
            let bits = ((value >> shift) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.buf.last_mut() {
                *last |= bits << (self.free - take);
            }
            self.free -= take;
            n -= take;
        }
    }
}

// === impl BitReader ===

/// Reads an MSB-first bit stream; every read past the end gives `None`, never a panic.
#[derive(Debug, Clone)]
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    #[inline]
    fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// The next 64 bits, left-aligned (at least 57 of them real when that many remain; zeros past the end).
    #[inline(always)]
    fn peek(&self) -> u64 {
        let byte = self.pos >> 3;
        let word = match self.data.get(byte..byte + 8) {
            Some(b) => <[u8; 8]>::try_from(b).map_or(0, u64::from_be_bytes),
            None => {
                let mut buf = [0u8; 8];
                let rest = self.data.get(byte..).unwrap_or_default();
                buf[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(buf)
            }
        };
        word << (self.pos & 7)
    }

    #[inline]
    fn read_bit(&mut self) -> Option<bool> {
        Some(self.read_bits(1)? == 1)
    }

    #[inline(always)]
    fn read_bits(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if n as usize > self.remaining() {
            return None;
        }
        if n <= 56 {
            let v = self.peek() >> (64 - n);
            self.pos += n as usize;
            Some(v)
        } else {
            let hi = self.read_bits(32)?;
            let lo = self.read_bits(n - 32)?;
            Some((hi << (n - 32)) | lo)
        }
    }

    /// Reads a bucketed signed number: `0` is zero; `10`, `110`, `1110` select the three buckets;
    /// `1111` means 64 bits. Prefix and value come from one 64-bit peek (every bucket fits in 57 bits).
    #[inline(always)]
    fn read_bucketed(&mut self, buckets: &[u32; 3]) -> Option<i64> {
        let w = self.peek();
        let ones = w.leading_ones();
        let (prefix, width) = match ones {
            0 => {
                if self.remaining() == 0 {
                    return None;
                }
                self.pos += 1;
                return Some(0);
            }
            1 => (2, buckets[0]),
            2 => (3, buckets[1]),
            3 => (4, buckets[2]),
            _ => (4, 64),
        };
        if width == 64 {
            if self.remaining() < 4 {
                return None;
            }
            self.pos += 4;
            return self.read_bits(64).map(|b| b as i64);
        }
        if (prefix + width) as usize > self.remaining() {
            return None;
        }
        let bits = (w << prefix) >> (64 - width);
        self.pos += (prefix + width) as usize;
        Some(sign_extend(bits, width))
    }
}

fn sign_extend(bits: u64, width: u32) -> i64 {
    if width == 64 {
        return bits as i64;
    }
    // Values were written as two's complement in `width` bits, within [-(2^(w-1)) + 1, 2^(w-1)].
    if bits > (1u64 << (width - 1)) { bits as i64 - (1i64 << width) } else { bits as i64 }
}

fn fits(x: i64, width: u32) -> bool {
    let half = 1i64 << (width - 1);
    -half < x && x <= half
}

/// Writes a signed number in buckets (see [`BitReader::read_bucketed`]).
fn write_bucketed(w: &mut BitWriter, x: i64, buckets: &[u32; 3]) {
    if x == 0 {
        w.write_bit(false);
        return;
    }
    for (i, &width) in buckets.iter().enumerate() {
        if fits(x, width) {
            // `1` * (i + 1), then `0`: 10, 110, 1110.
            w.write_bits((1u64 << (i + 2)) - 2, i as u32 + 2);
            w.write_bits(x as u64, width);
            return;
        }
    }
    w.write_bits(0b1111, 4);
    w.write_bits(x as u64, 64);
}

/// The integer `m` with `m / 10^d == v` exactly (same bits), if any.
#[inline]
fn to_decimal(v: f64, d: u8) -> Option<i64> {
    let scale = POW10[usize::from(d)];
    let m = (v * scale).round();
    if m.is_nan() || m.abs() >= MAX_EXACT {
        return None;
    }
    let m = m as i64;
    (from_decimal(m, d).to_bits() == v.to_bits()).then_some(m)
}

#[inline]
fn from_decimal(m: i64, d: u8) -> f64 {
    // Integers (counters, mostly) skip the division, whose result would be the same bits.
    if d == 0 { m as f64 } else { m as f64 / POW10[usize::from(d)] }
}

/// The smallest scale at which `v` is an exact decimal.
fn decimal_scale(v: f64) -> Option<u8> {
    (0..=MAX_SCALE).find(|&d| to_decimal(v, d).is_some())
}

// === impl Chunk ===

/// A closed, immutable chunk.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chunk {
    pub min_t: i64,
    pub max_t: i64,
    pub count: u16,
    pub data: Box<[u8]>,
}

impl Chunk {
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(&self.data, self.count)
    }

    /// Like [`ChunkEncoder::iter_from`], with the seek points the chunk had while it was the head (kept
    /// for the most recently closed chunk only).
    pub fn iter_from<'a>(&'a self, start: i64, seeks: &[SeekPoint]) -> ChunkIter<'a> {
        seek(self.iter(), seeks, start)
    }
}

/// Moves a fresh iterator to the last seek point before `start`.
fn seek<'a>(mut it: ChunkIter<'a>, seeks: &[SeekPoint], start: i64) -> ChunkIter<'a> {
    let i = seeks.partition_point(|sp| sp.t < start);
    if let Some(sp) = i.checked_sub(1).and_then(|i| seeks.get(i)) {
        it.r.pos = sp.bit;
        it.read = sp.read;
        it.t = sp.t;
        it.t_delta = sp.t_delta;
        it.v_bits = sp.v_bits;
        it.m = sp.m;
        it.leading = sp.leading;
        it.trailing = sp.trailing;
    }
    it
}

// === impl ChunkEncoder ===

/// The open (head) chunk of a series: appendable and readable.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChunkEncoder {
    w: BitWriter,
    count: u16,
    /// `None` for XOR, `Some(d)` for decimals scaled by `10^-d`. Set by the first sample.
    scale: Option<u8>,
    min_t: i64,
    t: i64,
    t_delta: i64,
    v_bits: u64,
    leading: u8,
    trailing: u8,
    m: i64,
    /// Decoder states every [`SEEK_EVERY`] samples, so that reads of the recent end of the head chunk
    /// (the common case: alerts and dashboards) skip decoding its older samples. The series keeps them
    /// for its most recently closed chunk, which a window just after a chunk boundary still reads.
    seeks: Vec<SeekPoint>,
}

/// Samples between seek points of a head chunk.
const SEEK_EVERY: u16 = 32;

/// The decoder's state after reading `read` samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeekPoint {
    read: u16,
    bit: usize,
    t: i64,
    t_delta: i64,
    v_bits: u64,
    m: i64,
    leading: u32,
    trailing: u32,
}

impl ChunkEncoder {
    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn min_t(&self) -> i64 {
        self.min_t
    }

    pub fn max_t(&self) -> i64 {
        self.t
    }

    pub fn bytes(&self) -> usize {
        self.w.buf.len()
    }

    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(&self.w.buf, self.count)
    }

    /// An iterator that starts as late as the seek points allow while still yielding every sample at or
    /// after `start`.
    pub fn iter_from(&self, start: i64) -> ChunkIter<'_> {
        seek(self.iter(), &self.seeks, start)
    }

    fn mark_seek(&mut self) {
        if self.count % SEEK_EVERY == 0 {
            let stream_bits = (self.w.buf.len().saturating_sub(1)) * 8 - self.w.free as usize;
            let unset = self.leading == u8::MAX;
            self.seeks.push(SeekPoint {
                read: self.count,
                bit: stream_bits,
                t: self.t,
                t_delta: self.t_delta,
                v_bits: self.v_bits,
                m: self.m,
                leading: if unset { 0 } else { u32::from(self.leading) },
                trailing: if unset { 0 } else { u32::from(self.trailing) },
            });
        }
    }

    /// Appends a sample; `t` must be greater than the last one (the caller checks order).
    pub fn append(&mut self, t: i64, v: f64) {
        if self.count == 0 {
            self.start(t, v, decimal_scale(v));
            return;
        }
        if let Some(d) = self.scale {
            match to_decimal(v, d) {
                Some(m) => {
                    self.append_decimal(t, m);
                    self.mark_seek();
                }
                None => self.reencode(t, v),
            }
        } else {
            self.append_xor(t, v);
            self.mark_seek();
        }
    }

    /// Closes the chunk, giving the immutable form.
    pub fn finish(self) -> Chunk {
        self.finish_with_seeks().0
    }

    /// Closes the chunk and hands over its seek points, for [`Chunk::iter_from`].
    pub fn finish_with_seeks(self) -> (Chunk, Vec<SeekPoint>) {
        let chunk = Chunk {
            min_t: self.min_t,
            max_t: self.t,
            count: self.count,
            data: self.w.buf.into_boxed_slice(),
        };
        (chunk, self.seeks)
    }

    fn start(&mut self, t: i64, v: f64, scale: Option<u8>) {
        *self = Self { scale, min_t: t, t, count: 1, ..Self::default() };
        match scale {
            Some(d) => {
                self.w.buf.push(1 + d);
                let m = to_decimal(v, d).unwrap_or_default();
                self.m = m;
                self.w.write_bits(t as u64, 64);
                self.w.write_bits(m as u64, 64);
            }
            None => {
                self.w.buf.push(ENC_XOR);
                self.v_bits = v.to_bits();
                self.leading = u8::MAX;
                self.w.write_bits(t as u64, 64);
                self.w.write_bits(self.v_bits, 64);
            }
        }
    }

    #[inline]
    fn append_time(&mut self, t: i64) {
        let delta = t.wrapping_sub(self.t);
        let dod = delta.wrapping_sub(self.t_delta);
        write_bucketed(&mut self.w, dod, &DOD_BUCKETS);
        self.t = t;
        self.t_delta = delta;
        self.count += 1;
    }

    fn append_decimal(&mut self, t: i64, m: i64) {
        self.append_time(t);
        write_bucketed(&mut self.w, m.wrapping_sub(self.m), &INT_BUCKETS);
        self.m = m;
    }

    fn append_xor(&mut self, t: i64, v: f64) {
        self.append_time(t);
        let bits = v.to_bits();
        let xor = bits ^ self.v_bits;
        self.v_bits = bits;
        if xor == 0 {
            self.w.write_bit(false);
            return;
        }
        self.w.write_bit(true);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != u8::MAX && leading >= self.leading && trailing >= self.trailing {
            self.w.write_bit(false);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.w.write_bits(xor >> self.trailing, sig);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            self.w.write_bit(true);
            self.w.write_bits(u64::from(leading), 5);
            let sig = 64 - u32::from(leading) - u32::from(trailing);
            // 64 significant bits are written as 0 in the 6-bit field (as in Prometheus).
            self.w.write_bits(u64::from(sig & 63), 6);
            self.w.write_bits(xor >> trailing, sig);
        }
    }

    /// Re-encodes the chunk with a scale that fits every value, or as XOR.
    fn reencode(&mut self, t: i64, v: f64) {
        let mut samples: Vec<Sample> = self.iter().collect();
        samples.push(Sample::new(t, v));
        let mut scale = Some(0u8);
        for s in &samples {
            scale = match (scale, decimal_scale(s.v)) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        let mut it = samples.into_iter();
        if let Some(first) = it.next() {
            self.start(first.t, first.v, scale);
            for s in it {
                match self.scale {
                    Some(d) => self.append_decimal(s.t, to_decimal(s.v, d).unwrap_or_default()),
                    None => self.append_xor(s.t, s.v),
                }
                self.mark_seek();
            }
        }
    }
}

// === impl ChunkIter ===

/// Decodes a chunk's samples in order. Corrupt data ends the iteration early instead of panicking.
#[derive(Debug, Clone)]
pub(crate) struct ChunkIter<'a> {
    r: BitReader<'a>,
    remaining: u16,
    read: u16,
    scale: Option<u8>,
    t: i64,
    t_delta: i64,
    v_bits: u64,
    leading: u32,
    trailing: u32,
    m: i64,
}

impl<'a> ChunkIter<'a> {
    fn new(data: &'a [u8], count: u16) -> Self {
        let (scale, rest, remaining) = match data.split_first() {
            Some((&ENC_XOR, rest)) => (None, rest, count),
            Some((&b, rest)) if b <= 1 + MAX_SCALE => (Some(b - 1), rest, count),
            _ => (None, &[][..], 0),
        };
        Self {
            r: BitReader::new(rest),
            remaining,
            read: 0,
            scale,
            t: 0,
            t_delta: 0,
            v_bits: 0,
            leading: 0,
            trailing: 0,
            m: 0,
        }
    }

    #[inline(always)]
    fn next_sample(&mut self) -> Option<Sample> {
        if self.read == 0 {
            self.t = self.r.read_bits(64)? as i64;
            let raw = self.r.read_bits(64)?;
            return Some(match self.scale {
                Some(d) => {
                    self.m = raw as i64;
                    Sample::new(self.t, from_decimal(self.m, d))
                }
                None => {
                    self.v_bits = raw;
                    Sample::new(self.t, f64::from_bits(raw))
                }
            });
        }
        let dod = self.r.read_bucketed(&DOD_BUCKETS)?;
        self.t_delta = self.t_delta.wrapping_add(dod);
        self.t = self.t.wrapping_add(self.t_delta);
        match self.scale {
            Some(d) => {
                let delta = self.r.read_bucketed(&INT_BUCKETS)?;
                self.m = self.m.wrapping_add(delta);
                Some(Sample::new(self.t, from_decimal(self.m, d)))
            }
            None => {
                if self.r.read_bit()? {
                    if self.r.read_bit()? {
                        self.leading = self.r.read_bits(5)? as u32;
                        let mut sig = self.r.read_bits(6)? as u32;
                        if sig == 0 {
                            sig = 64;
                        }
                        self.trailing = 64u32.checked_sub(self.leading + sig)?;
                    }
                    let sig = 64 - self.leading - self.trailing;
                    let bits = self.r.read_bits(sig)?;
                    self.v_bits ^= bits.checked_shl(self.trailing).unwrap_or(0);
                }
                Some(Sample::new(self.t, f64::from_bits(self.v_bits)))
            }
        }
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Sample;

    #[inline]
    fn next(&mut self) -> Option<Sample> {
        if self.read >= self.remaining {
            return None;
        }
        match self.next_sample() {
            Some(s) => {
                self.read += 1;
                Some(s)
            }
            None => {
                self.remaining = 0;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::stale_nan;

    fn roundtrip(samples: &[Sample]) -> ChunkEncoder {
        let mut enc = ChunkEncoder::default();
        for s in samples {
            enc.append(s.t, s.v);
        }
        let got: Vec<Sample> = enc.iter().collect();
        assert_eq!(got.len(), samples.len());
        for (a, b) in got.iter().zip(samples) {
            assert_eq!(a.t, b.t);
            assert_eq!(a.v.to_bits(), b.v.to_bits(), "value at {}", a.t);
        }
        for start in samples.iter().map(|s| s.t).step_by(7).chain([i64::MIN, i64::MAX]) {
            let from: Vec<u64> =
                enc.iter_from(start).filter(|s| s.t >= start).map(|s| s.v.to_bits()).collect();
            let want: Vec<u64> = samples.iter().filter(|s| s.t >= start).map(|s| s.v.to_bits()).collect();
            assert_eq!(from, want, "seeking to {start}");
        }
        let (chunk, seeks) = enc.clone().finish_with_seeks();
        assert_eq!(chunk.iter().count(), samples.len());
        // A closed chunk read from its kept seek points gives the same samples.
        for start in samples.iter().map(|s| s.t).step_by(5).chain([i64::MIN, i64::MAX]) {
            let from: Vec<u64> =
                chunk.iter_from(start, &seeks).filter(|s| s.t >= start).map(|s| s.v.to_bits()).collect();
            let want: Vec<u64> = samples.iter().filter(|s| s.t >= start).map(|s| s.v.to_bits()).collect();
            assert_eq!(from, want, "seeking a closed chunk to {start}");
        }
        enc
    }

    #[test]
    fn decimal_counter_is_small_and_exact() {
        let samples: Vec<Sample> = (0..120)
            .map(|i| Sample::new(1_700_000_000_000 + i * 15_000, 1000.0 + (i * 3 % 7) as f64))
            .collect();
        let enc = roundtrip(&samples);
        assert!(enc.scale.is_some());
        assert!(enc.bytes() < 2 * 120, "{} bytes", enc.bytes());
    }

    #[test]
    fn decimal_gauge_with_three_digits() {
        let samples: Vec<Sample> =
            (0..120).map(|i| Sample::new(i * 15_000, f64::from((i % 50) as i32 + 400) / 10.0)).collect();
        let enc = roundtrip(&samples);
        assert_eq!(enc.scale, Some(1));
    }

    #[test]
    fn special_values_switch_to_xor_and_stay_exact() {
        let mut samples: Vec<Sample> = (0..10).map(|i| Sample::new(i * 1000, i as f64 * 0.5)).collect();
        samples.push(Sample::new(10_000, stale_nan()));
        samples.push(Sample::new(11_000, -0.0));
        samples.push(Sample::new(12_000, f64::INFINITY));
        samples.push(Sample::new(13_000, std::f64::consts::PI));
        samples.push(Sample::new(14_000, f64::NAN));
        samples.push(Sample::new(15_000, 1e300));
        let enc = roundtrip(&samples);
        assert_eq!(enc.scale, None);
    }

    #[test]
    fn growing_scale_reencodes() {
        let samples = [Sample::new(0, 1.0), Sample::new(1, 1.5), Sample::new(2, 1.25), Sample::new(3, 0.125)];
        let enc = roundtrip(&samples);
        assert_eq!(enc.scale, Some(3));
    }

    #[test]
    fn irregular_timestamps_and_big_jumps() {
        let ts = [-5_000_000_000_000i64, -1, 0, 7, 9, 100_000, 100_001, 9_000_000_000, i64::MAX / 2];
        let samples: Vec<Sample> =
            ts.iter().enumerate().map(|(i, &t)| Sample::new(t, (i as f64).sin())).collect();
        roundtrip(&samples);
        let ints: Vec<Sample> = ts
            .iter()
            .enumerate()
            .map(|(i, &t)| Sample::new(t, if i % 2 == 0 { 1e15 } else { -1e15 }))
            .collect();
        roundtrip(&ints);
    }

    #[test]
    fn pseudo_random_samples_round_trip() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..300u32 {
            let mut t = (next() % 1_000_000) as i64 - 500_000;
            let samples: Vec<Sample> = (0..120)
                .map(|_| {
                    t += (next() % (1u64 << (round % 40))) as i64 + 1;
                    let v = match (next() % 5, round % 3) {
                        (0, _) => f64::from_bits(next()),
                        (1, 0) => (next() % 1000) as f64 / 100.0,
                        (2, _) => (next() % 100_000) as f64,
                        (3, _) => (next() as i64) as f64,
                        _ => 42.0,
                    };
                    Sample::new(t, v)
                })
                .collect();
            roundtrip(&samples);
        }
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..64usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            for first in [0u8, 1, 5, 10, 200] {
                let mut d = data.clone();
                if let Some(b) = d.first_mut() {
                    *b = first;
                }
                let _ = ChunkIter::new(&d, 120).count();
            }
        }
    }
}
