//! Alerting for Rust services and the `sightline` server: Prometheus-format alerting and recording rules
//! evaluated by `sightline-tsdb`'s PromQL engine, and an Alertmanager-compatible notification pipeline
//! (routing, grouping, inhibition, silences, acknowledgement, escalation) with its notifiers.

pub mod factory;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod rules;
pub mod sqlstore;

pub use model::{Alert, AlertSink, AlertStatus, Fingerprint, LabelSet, Notification, Notifier, NotifyError};
