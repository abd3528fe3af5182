//! The in-process notification pipeline: Alertmanager's routing tree, grouping, deduplication, inhibition,
//! silences and time intervals, plus Sightline's acknowledgement and escalation policies.
//!
//! The configuration is Alertmanager's own syntax ([`config::Config`]), so the routing part of an existing
//! `alertmanager.yml` can be pasted in unchanged. The [`dispatch::Dispatcher`] is an [`crate::AlertSink`]:
//! rule evaluation hands it alerts, and it routes, groups and delivers them through [`crate::Notifier`]s
//! built by the caller's [`dispatch::NotifierFactory`]. Durable state sits behind [`store::PipelineStore`].

pub mod config;
pub mod dispatch;
pub mod duration;
pub mod inhibit;
pub mod matchers;
pub mod silence;
pub mod store;
pub mod timeinterval;

pub use config::{Config, ConfigError};
pub use dispatch::{
    AlertState, AlertStatusReport, Dispatcher, DispatcherOptions, IntegrationConfig, NotifierFactory,
    PipelineEvent,
};
pub use matchers::{MatchType, Matcher, Matchers};
pub use silence::{Silence, SilenceState};
pub use store::{MemoryStore, PipelineStore};

// Wiring, for the server:
//
// ```text
// let config = Config::parse(&text)?;                      // errors: ConfigError::line(&text) gives the line
// let dispatcher = Dispatcher::new(config, factory, DispatcherOptions { store, external_url, events, .. })?;
// rules.set_sink(Arc::new(dispatcher.clone()));           // AlertSink::send never blocks
// dispatcher.add_silence(..) / expire_silence(id) / silences() / ack(fp, by, comment) / alerts()
// dispatcher.apply_config(new_config)?;                   // on reload
// ```
