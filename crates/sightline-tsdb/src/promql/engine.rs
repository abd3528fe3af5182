//! Evaluation. (Being written: this placeholder only fixes the public signatures the rest of the crate
//! builds against; it must be replaced before the crate is released.)

use std::time::Duration;

use crate::promql::value::{QueryError, Value};
use crate::traits::Querier;

/// Engine limits and defaults.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus: 5 m).
    pub lookback_delta: Duration,
    /// A query running longer fails with [`QueryError::Timeout`] (Prometheus: 2 m).
    pub timeout: Duration,
    /// The most samples a query may hold at once (Prometheus: 50,000,000).
    pub max_samples: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta: Duration::from_secs(300),
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
        }
    }
}

/// Evaluates PromQL.
#[derive(Clone, Debug, Default)]
pub struct Engine {
    options: EngineOptions,
}

impl Engine {
    pub fn new(options: EngineOptions) -> Self {
        Self { options }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Evaluates `query` at `time` (milliseconds).
    pub fn instant_query(
        &self,
        _querier: &dyn Querier,
        _query: &str,
        _time: i64,
    ) -> Result<Value, QueryError> {
        Err(QueryError::Execution("the PromQL engine is not built yet".into()))
    }

    /// Evaluates `query` at every `step` from `start` to `end` (milliseconds, inclusive); the result is a
    /// [`Value::Matrix`].
    pub fn range_query(
        &self,
        _querier: &dyn Querier,
        _query: &str,
        _start: i64,
        _end: i64,
        _step: i64,
    ) -> Result<Value, QueryError> {
        Err(QueryError::Execution("the PromQL engine is not built yet".into()))
    }
}
