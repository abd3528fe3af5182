//! Samples and staleness markers.

/// Prometheus's staleness marker: a NaN with this exact bit pattern. Any other NaN is an ordinary value.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a float.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (and not some other NaN).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One sample: a timestamp in milliseconds since the Unix epoch and a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

impl Sample {
    pub const fn new(t: i64, v: f64) -> Self {
        Self { t, v }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_marker_is_stale() {
        assert!(is_stale(stale_nan()));
        assert!(!is_stale(f64::NAN));
        assert!(!is_stale(1.0));
    }
}
