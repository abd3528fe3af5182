//! The disk check: free space on the filesystem of a path, against thresholds.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::CheckConfigError;
use crate::{BoxFuture, HealthCheck, Probe, Status};

/// The default of [`DiskCheckBuilder::warn_ratio`].
pub const DEFAULT_WARN_RATIO: f64 = 0.80;
/// The default of [`DiskCheckBuilder::fail_ratio`].
pub const DEFAULT_FAIL_RATIO: f64 = 0.95;

/// Builds a [`DiskCheck`]; every setting maps onto a configuration key.
#[derive(Debug, Clone)]
pub struct DiskCheckBuilder {
    path: PathBuf,
    warn_ratio: f64,
    fail_ratio: f64,
    warn_free_bytes: Option<u64>,
    fail_free_bytes: Option<u64>,
}

impl DiskCheckBuilder {
    /// `warn_ratio`: Degraded when the used share reaches this (0 < ratio <= 1; default 0.80).
    #[must_use]
    pub fn warn_ratio(mut self, ratio: f64) -> Self {
        self.warn_ratio = ratio;
        self
    }

    /// `fail_ratio`: Unhealthy when the used share reaches this (0 < ratio <= 1; default 0.95).
    #[must_use]
    pub fn fail_ratio(mut self, ratio: f64) -> Self {
        self.fail_ratio = ratio;
        self
    }

    /// `warn_free_bytes`: Degraded when fewer bytes than this are available (none by default).
    #[must_use]
    pub fn warn_free_bytes(mut self, bytes: u64) -> Self {
        self.warn_free_bytes = Some(bytes);
        self
    }

    /// `fail_free_bytes`: Unhealthy when fewer bytes than this are available (none by default).
    #[must_use]
    pub fn fail_free_bytes(mut self, bytes: u64) -> Self {
        self.fail_free_bytes = Some(bytes);
        self
    }

    /// Validates the thresholds: ratios in (0, 1] with `warn_ratio < fail_ratio`, and `warn_free_bytes >
    /// fail_free_bytes` when both are set. The error names the parameter.
    pub fn build(self) -> Result<DiskCheck, CheckConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(CheckConfigError::new("path", "is empty"));
        }
        for (name, ratio) in [("warn_ratio", self.warn_ratio), ("fail_ratio", self.fail_ratio)] {
            if !(ratio > 0.0 && ratio <= 1.0) {
                return Err(CheckConfigError::new(name, format!("{ratio} is not a ratio in (0, 1]")));
            }
        }
        if self.warn_ratio >= self.fail_ratio {
            return Err(CheckConfigError::new(
                "warn_ratio",
                format!("{} must be below fail_ratio ({})", self.warn_ratio, self.fail_ratio),
            ));
        }
        if let (Some(warn), Some(fail)) = (self.warn_free_bytes, self.fail_free_bytes)
            && warn <= fail
        {
            return Err(CheckConfigError::new(
                "warn_free_bytes",
                format!("{warn} must be above fail_free_bytes ({fail}): it warns before failing"),
            ));
        }
        Ok(DiskCheck {
            path: self.path,
            warn_ratio: self.warn_ratio,
            fail_ratio: self.fail_ratio,
            warn_free_bytes: self.warn_free_bytes,
            fail_free_bytes: self.fail_free_bytes,
        })
    }
}

/// The space on the filesystem that holds `path`, from `statvfs`.
///
/// The used ratio is computed as `df` does: used / (used + available to unprivileged users), so that a
/// filesystem whose reserved blocks are all that is left counts as full. Unhealthy when it reaches
/// `fail_ratio` or fewer than `fail_free_bytes` are available, Degraded at `warn_ratio` or below
/// `warn_free_bytes`, and Unhealthy when `statvfs` fails (a missing path). Observed: the used ratio
/// (`ratio`); details: total, free, available and used bytes.
///
/// ```
/// use sightline_health::checks::disk::DiskCheck;
///
/// let check = DiskCheck::builder("/var/lib").warn_ratio(0.7).fail_ratio(0.9).fail_free_bytes(1 << 30).build()?;
/// let err = DiskCheck::builder("/").warn_ratio(0.99).build().unwrap_err(); // above the default fail_ratio
/// assert_eq!(err.parameter, "warn_ratio");
/// # Ok::<(), sightline_health::checks::CheckConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DiskCheck {
    path: PathBuf,
    warn_ratio: f64,
    fail_ratio: f64,
    warn_free_bytes: Option<u64>,
    fail_free_bytes: Option<u64>,
}

/// What `statvfs` says, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Space {
    total: u64,
    free: u64,
    available: u64,
}

impl Space {
    fn used(&self) -> u64 {
        self.total.saturating_sub(self.free)
    }

    fn used_ratio(&self) -> f64 {
        let denominator = self.used() + self.available;
        if denominator == 0 { 0.0 } else { self.used() as f64 / denominator as f64 }
    }
}

impl DiskCheck {
    /// A builder for a check of `path` with the default thresholds (0.80 / 0.95 used).
    pub fn builder(path: impl Into<PathBuf>) -> DiskCheckBuilder {
        DiskCheckBuilder {
            path: path.into(),
            warn_ratio: DEFAULT_WARN_RATIO,
            fail_ratio: DEFAULT_FAIL_RATIO,
            warn_free_bytes: None,
            fail_free_bytes: None,
        }
    }

    /// A check of `path` with the default thresholds.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, CheckConfigError> {
        Self::builder(path).build()
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn judge(&self, space: Space) -> Probe {
        let ratio = space.used_ratio();
        let (status, why) = if ratio >= self.fail_ratio {
            (Status::Unhealthy, format!(" (fail_ratio {})", self.fail_ratio))
        } else if self.fail_free_bytes.is_some_and(|min| space.available < min) {
            (Status::Unhealthy, format!(" (fail_free_bytes {})", self.fail_free_bytes.unwrap_or_default()))
        } else if ratio >= self.warn_ratio {
            (Status::Degraded, format!(" (warn_ratio {})", self.warn_ratio))
        } else if self.warn_free_bytes.is_some_and(|min| space.available < min) {
            (Status::Degraded, format!(" (warn_free_bytes {})", self.warn_free_bytes.unwrap_or_default()))
        } else {
            (Status::Healthy, String::new())
        };
        let message = format!(
            "{}: {:.1}% used, {} available of {}{why}",
            self.path.display(),
            ratio * 100.0,
            human_bytes(space.available),
            human_bytes(space.total)
        );
        let probe = match status {
            Status::Healthy => Probe::healthy(message),
            Status::Degraded => Probe::degraded(message),
            _ => Probe::unhealthy(message),
        };
        probe
            .with_details(json!({
                "path": self.path.display().to_string(),
                "total_bytes": space.total,
                "free_bytes": space.free,
                "available_bytes": space.available,
                "used_bytes": space.used(),
                "used_ratio": ratio,
            }))
            .with_observed(ratio, "ratio")
    }
}

impl HealthCheck for DiskCheck {
    fn check(&self) -> BoxFuture<'_, Probe> {
        let path = self.path.clone();
        Box::pin(async move {
            // statvfs can block on a hung network mount: keep it off the runtime's threads.
            match tokio::task::spawn_blocking(move || space(&path)).await {
                Ok(Ok(space)) => self.judge(space),
                Ok(Err(message)) => Probe::unhealthy(message.clone())
                    .with_details(json!({ "path": self.path.display().to_string(), "error": message })),
                Err(e) => Probe::unhealthy(format!("statvfs of {} failed: {e}", self.path.display())),
            }
        })
    }
}

#[cfg(unix)]
fn space(path: &Path) -> Result<Space, String> {
    let stat = rustix::fs::statvfs(path).map_err(|e| {
        format!("cannot stat the filesystem of {}: {}", path.display(), std::io::Error::from(e))
    })?;
    // f_frsize is the unit of the block counts; some systems leave it 0 and mean f_bsize.
    let unit = if stat.f_frsize == 0 { stat.f_bsize } else { stat.f_frsize };
    Ok(Space {
        total: stat.f_blocks.saturating_mul(unit),
        free: stat.f_bfree.saturating_mul(unit),
        available: stat.f_bavail.saturating_mul(unit),
    })
}

#[cfg(not(unix))]
fn space(path: &Path) -> Result<Space, String> {
    Err(format!("cannot stat the filesystem of {}: the disk check needs statvfs (Unix)", path.display()))
}

/// `1.5 GiB` and the like.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_as_df_computes_it() {
        // 100 blocks, 30 free of which 25 available to users: used 70 / (70 + 25).
        let space = Space { total: 100, free: 30, available: 25 };
        assert!((space.used_ratio() - 70.0 / 95.0).abs() < 1e-12);
        assert_eq!(Space { total: 0, free: 0, available: 0 }.used_ratio(), 0.0);
    }

    #[test]
    fn thresholds() {
        let check = DiskCheck::builder("/x").warn_free_bytes(50).fail_free_bytes(10).build().unwrap();
        let status = |free, available| check.judge(Space { total: 100, free, available }).status;
        assert_eq!(status(60, 60), Status::Healthy);
        assert_eq!(status(40, 40), Status::Degraded); // below warn_free_bytes
        assert_eq!(status(15, 15), Status::Degraded); // 85% used
        assert_eq!(status(9, 9), Status::Unhealthy); // below fail_free_bytes
        assert_eq!(status(4, 4), Status::Unhealthy); // 96% used
        let probe = check.judge(Space { total: 100, free: 60, available: 60 });
        assert_eq!(probe.observed.map(|o| o.unit), Some("ratio".to_owned()));
        assert_eq!(probe.details["available_bytes"], 60);
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
