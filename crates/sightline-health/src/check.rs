//! What a health check is: the [`HealthCheck`] trait and the [`Probe`] it returns.

use std::future::Future;
use std::pin::Pin;

use crate::Status;

/// A boxed future, as [`HealthCheck::check`] returns (the trait must be object-safe so that checks of
/// different types live in one registry).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One way to find out whether something is healthy.
///
/// A check probes once per call; the registry decides when to call it, bounds it by a timeout, damps
/// flapping and keeps history. A check should not retry or sleep on its own.
///
/// ```
/// use sightline_health::{BoxFuture, HealthCheck, Probe};
///
/// struct AlwaysFine;
///
/// impl HealthCheck for AlwaysFine {
///     fn check(&self) -> BoxFuture<'_, Probe> {
///         Box::pin(async { Probe::healthy("fine") })
///     }
/// }
/// ```
pub trait HealthCheck: Send + Sync + 'static {
    /// Probes once.
    fn check(&self) -> BoxFuture<'_, Probe>;
}

/// The result of one probe, before flap damping.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// What the probe found.
    pub status: Status,
    /// A short sentence for people: "connected in 3 ms", "HTTP 503".
    pub message: String,
    /// Structured details, such as `{"status_code": 503}`.
    pub details: serde_json::Value,
    /// A measured value with its unit, such as a response time or free bytes.
    pub observed: Option<Observed>,
}

/// A measured value and its unit, as in the health-check draft's `observedValue` / `observedUnit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The value.
    pub value: f64,
    /// The unit: `ms`, `bytes`, `ratio`, `percent`, `days`.
    pub unit: String,
}

impl Probe {
    fn new(status: Status, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), details: serde_json::Value::Null, observed: None }
    }

    /// Everything is fine.
    pub fn healthy(message: impl Into<String>) -> Self {
        Self::new(Status::Healthy, message)
    }

    /// Working, but worse than it should be (slow, nearly full).
    pub fn degraded(message: impl Into<String>) -> Self {
        Self::new(Status::Degraded, message)
    }

    /// Not working.
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self::new(Status::Unhealthy, message)
    }

    /// Adds structured details.
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Adds an observed value.
    #[must_use]
    pub fn with_observed(mut self, value: f64, unit: impl Into<String>) -> Self {
        self.observed = Some(Observed { value, unit: unit.into() });
        self
    }
}
