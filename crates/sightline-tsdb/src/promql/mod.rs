//! The PromQL engine: queries parsed by the `promql-parser` crate and evaluated here over a
//! [`crate::Querier`], with Prometheus 3.x semantics (left-open range selectors, a 5 minute lookback,
//! staleness markers).
//!
//! Modules: `engine` holds the entry points and limits, `eval` the evaluator and selectors, `functions`,
//! `aggregate` and `binary` the operators, `stream` range functions over a lazily read selection. Every
//! node is evaluated once over the whole grid of query timestamps, so a range query selects each series
//! once and slides windows over its samples; a range function over a plain selector reads its series one
//! at a time (through [`crate::Querier::select_lazy`]), on the engine's threads, instead of holding them
//! all.

mod aggregate;
mod binary;
mod engine;
mod eval;
mod functions;
mod stream;
mod value;

#[cfg(test)]
mod tests;

pub use engine::{Engine, EngineOptions, MAX_POINTS_PER_SERIES};
pub use value::{InstantSample, QueryError, Value};
