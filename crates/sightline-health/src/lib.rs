//! Health checks for Rust services.
//!
//! A [`HealthCheck`] probes one thing (a TCP port, an HTTP endpoint, a database, a directory, an
//! in-process component) and returns a [`Probe`]. The registry runs every check in the background on its
//! own interval and timeout, damps flapping with failure and success thresholds, reports dependents of an
//! unhealthy check as skipped rather than failing twice, keeps history, and aggregates the results into
//! an overall status, readiness and groups.

mod check;
pub mod checks;
mod heartbeat;
mod registry;

pub use check::{BoxFuture, HealthCheck, Observed, Probe};
pub use heartbeat::Heartbeat;
pub use registry::{
    CheckOptions, CheckReport, CheckResult, DEFAULT_HISTORY, Health, HealthBuilder, HealthError, History,
    Report, Running, Transition,
};

/// The health of one check or of a whole service.
///
/// Ordered from best to worst, so that the worst of several is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Working.
    Healthy,
    /// Working, but worse than it should be; or failing, but not yet for `failure_threshold` probes.
    Degraded,
    /// Not run yet, or skipped because a dependency is unhealthy.
    Unknown,
    /// Not working.
    Unhealthy,
}

impl Status {
    /// The lowercase name: `healthy`, `degraded`, `unknown`, `unhealthy`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unknown => "unknown",
            Status::Unhealthy => "unhealthy",
        }
    }

    /// The health-check draft's (`application/health+json`) name: `pass`, `warn` or `fail`.
    pub const fn as_draft(self) -> &'static str {
        match self {
            Status::Healthy => "pass",
            Status::Degraded => "warn",
            Status::Unknown | Status::Unhealthy => "fail",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
