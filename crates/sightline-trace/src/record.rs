//! Finished spans as the store, the critical path, the Gantt chart and the exporters see them.
//!
//! These are plain data: the tracing layer fills them in when a span closes, and everything downstream
//! only reads them. Identifiers follow W3C Trace Context: 16-byte trace ids and 8-byte span ids, written
//! as lower-case hex.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A 16-byte W3C trace id. The all-zero id is invalid and never generated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub u128);

/// An 8-byte W3C span id. The all-zero id is invalid and never generated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub u64);

/// Why a trace or span id did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {input:?}: expected {digits} lower-case hex digits, not all zero")]
pub struct IdParseError {
    kind: &'static str,
    digits: usize,
    input: String,
}

macro_rules! hex_id {
    ($ty:ident, $int:ty, $digits:literal, $kind:literal) => {
        impl $ty {
            /// The id as a number; zero means "invalid".
            pub const fn to_int(self) -> $int {
                self.0
            }

            /// Whether the id is valid (non-zero), as W3C Trace Context requires.
            pub const fn is_valid(self) -> bool {
                self.0 != 0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!("{:0", $digits, "x}"), self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({})"), self)
            }
        }

        impl FromStr for $ty {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let error = || IdParseError { kind: $kind, digits: $digits, input: s.to_owned() };
                if s.len() != $digits || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(error());
                }
                match <$int>::from_str_radix(s, 16) {
                    Ok(0) | Err(_) => Err(error()),
                    Ok(v) => Ok(Self(v)),
                }
            }
        }
    };
}

hex_id!(TraceId, u128, 32, "trace id");
hex_id!(SpanId, u64, 16, "span id");

/// A field value recorded on a span or an event.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A float.
    F64(f64),
    /// Text, already redacted.
    Str(String),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Bool(v) => write!(f, "{v}"),
            FieldValue::I64(v) => write!(f, "{v}"),
            FieldValue::U64(v) => write!(f, "{v}"),
            FieldValue::F64(v) => write!(f, "{v}"),
            FieldValue::Str(v) => f.write_str(v),
        }
    }
}

/// A field's name and value. Names are `&'static str` for fields declared at a `tracing` callsite, owned
/// for fields added at run time.
pub type Field = (Cow<'static, str>, FieldValue);

/// How a span ended, as OpenTelemetry's span status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpanStatus {
    /// Nothing said: the default.
    #[default]
    Unset,
    /// Marked successful (`otel.status_code = "ok"`).
    Ok,
    /// Failed: an `error` field, an ERROR-level event inside it, or `otel.status_code = "error"`.
    Error,
}

impl SpanStatus {
    /// `unset`, `ok` or `error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SpanStatus::Unset => "unset",
            SpanStatus::Ok => "ok",
            SpanStatus::Error => "error",
        }
    }
}

/// An event (a `tracing` event inside the span), with its message and fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    /// When it happened.
    pub time: SystemTime,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: &'static str,
    /// The event's message (the `message` field), redacted.
    pub message: String,
    /// The event's other fields.
    pub fields: Vec<Field>,
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    /// The trace the span belongs to.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
    /// The parent's id; `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// Whether the parent lives in another process (it came from a `traceparent` header).
    pub parent_is_remote: bool,
    /// The span's name (`otel.name` when set, otherwise the `tracing` span name).
    pub name: Cow<'static, str>,
    /// The `tracing` target (usually the module path).
    pub target: Cow<'static, str>,
    /// The service that recorded the span (`service.name`).
    pub service: Arc<str>,
    /// When the span was created.
    pub start: SystemTime,
    /// How long it was open, from creation to close.
    pub duration: Duration,
    /// The span's fields, redacted.
    pub fields: Vec<Field>,
    /// How it ended.
    pub status: SpanStatus,
    /// The error message when `status` is `Error`.
    pub error: Option<String>,
    /// Events recorded inside the span, oldest first (bounded; see `dropped_events`).
    pub events: Vec<SpanEvent>,
    /// Events beyond the per-span bound, counted rather than kept.
    pub dropped_events: u32,
}

impl SpanRecord {
    /// When the span closed.
    pub fn end(&self) -> SystemTime {
        self.start + self.duration
    }

    /// A field's value by name.
    pub fn field(&self, name: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}
