//! Correlation contexts: fields such as `workflow_id` or `user_id` that every log line and span inside a
//! unit of work should carry, with a generated `correlation_id` when the caller has none.

use std::borrow::Cow;
use std::future::Future;

use tracing::Instrument;

use crate::layer::set_span_field;
use crate::record::FieldValue;

/// The field that ties together everything done for one request or job.
pub const CORRELATION_ID: &str = "correlation_id";

/// A set of correlation fields. Running work in it opens a `context` span carrying the fields, so every
/// log line inside (at any depth, across `.await`s) carries them too.
///
/// ```
/// # async fn demo() {
/// use sightline_trace::Correlation;
///
/// let context = Correlation::new().with("workflow_id", "wf-42").with("user_id", "u-7");
/// context
///     .run(async {
///         tracing::info!("step finished"); // carries workflow_id, user_id and a correlation_id
///     })
///     .await;
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Correlation {
    fields: Vec<(Cow<'static, str>, String)>,
}

impl Correlation {
    /// An empty context; a `correlation_id` is generated when the work starts unless one is set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field (`workflow_id`, `run_id`, `project_id`, `plugin`, `node_id`, `correlation_id`,
    /// `user_id`, or any other name). A later value for the same name replaces the earlier one.
    pub fn with(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        let name = name.into();
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name, value)),
        }
        self
    }

    /// The correlation id, if one was set.
    pub fn correlation_id(&self) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == CORRELATION_ID).map(|(_, v)| v.as_str())
    }

    /// The span that carries the fields; enter it (or `instrument` work with it) to run inside the context.
    pub fn span(&self) -> tracing::Span {
        let span = tracing::info_span!(target: "sightline_trace::context", "context");
        let mut has_id = false;
        for (name, value) in &self.fields {
            has_id |= name == CORRELATION_ID;
            set_span_field(&span, name.clone(), FieldValue::Str(value.clone()));
        }
        if !has_id {
            set_span_field(&span, CORRELATION_ID, FieldValue::Str(generate_id()));
        }
        span
    }

    /// Runs `future` inside the context.
    pub fn run<F: Future>(&self, future: F) -> tracing::instrument::Instrumented<F> {
        future.instrument(self.span())
    }

    /// Runs `f` inside the context, synchronously.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        self.span().in_scope(f)
    }
}

/// A random 128-bit id in hex, like a trace id: unique enough to find one request in a day of logs.
pub fn generate_id() -> String {
    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
    RandomIdGenerator::default().new_trace_id().to_string()
}
