//! The PromQL engine: queries parsed by the `promql-parser` crate and evaluated here over a
//! [`crate::Querier`], with Prometheus 3.x semantics (left-open range selectors, a 5 minute lookback,
//! staleness markers).

mod engine;
mod value;

pub use engine::{Engine, EngineOptions};
pub use value::{InstantSample, QueryError, Value};
