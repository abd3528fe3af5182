//! Query results and errors.

use crate::labels::Labels;
use crate::traits::{Series, StorageError};

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    pub v: f64,
}

/// The result of a query, in Prometheus's four result types.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<InstantSample>),
    Matrix(Vec<Series>),
}

// === impl Value ===

impl Value {
    /// Prometheus's name for the type: `scalar`, `string`, `vector` or `matrix`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// Why a query failed. [`QueryError::error_type`] gives the `errorType` of Prometheus's HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse or does not type-check. `position` is a byte offset into the query when
    /// the parser reports one.
    #[error("{message}")]
    BadData { message: String, position: Option<usize> },
    #[error("query timed out in {0}; narrow the selection or raise the query timeout")]
    Timeout(&'static str),
    #[error(
        "query processing would load too many samples into memory in {stage} (limit {limit}); narrow the selection or raise the max samples limit"
    )]
    TooManySamples { stage: &'static str, limit: usize },
    /// A runtime error: many-to-many matching, duplicate series, ...
    #[error("{0}")]
    Execution(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

// === impl QueryError ===

impl QueryError {
    /// The `errorType` Prometheus's API returns for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData { .. } => "bad_data",
            QueryError::Timeout(_) => "timeout",
            QueryError::TooManySamples { .. } | QueryError::Execution(_) => "execution",
            QueryError::Storage(_) => "internal",
        }
    }
}
