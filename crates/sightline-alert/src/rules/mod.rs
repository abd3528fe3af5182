//! Prometheus-format alerting and recording rules over `sightline-tsdb`'s PromQL engine.
//!
//! - [`file`]: rule files read and validated as `promtool check rules` does, errors with file:line
//!   ([`check_files`], [`run_check`] for `sightline rules check`).
//! - [`template`]: the Go `text/template` subset of alert labels and annotations, with Prometheus's
//!   functions (`humanize`, `humanizeDuration`, `printf`, ...), and its Alertmanager dialect for
//!   notification templates ([`crate::notify::template`]).
//! - [`group`]: a group's evaluation at a time: recording rules append their results, alerting rules
//!   run the inactive -> pending -> firing -> resolved state machine and append `ALERTS` and
//!   `ALERTS_FOR_STATE`; `for` state is restored from `ALERTS_FOR_STATE` after a restart.
//! - [`manager`]: [`RuleManager`] runs groups on their intervals, sends alerts to an
//!   [`crate::AlertSink`], reloads keeping state, and gives the `/api/v1/rules` and `/api/v1/alerts`
//!   views.
//! - [`unittest`]: the alerting half of `sightline rules test` (`alert_rule_test`), plugged into
//!   `sightline_tsdb::unittest`.

pub mod file;
mod gofmt;
pub mod group;
pub mod manager;
pub mod template;
mod template_time;
pub mod unittest;

pub use file::{Diagnostic, GroupDef, RuleDef, RuleKind, check_files, load_files, run_check};
pub use gofmt::{format_duration, parse_duration};
pub use group::{ActiveAlert, AlertState, EvalContext, Health, Rule, RuleEvent, RuleGroup};
pub use manager::{AlertsData, ManagerOptions, ReloadError, RuleManager, RulesData};
pub use unittest::{AlertingEvaluator, run_test_files};
