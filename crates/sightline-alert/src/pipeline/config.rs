//! Alertmanager's configuration (`route`, `receivers`, `inhibit_rules`, `time_intervals`, and the `global`
//! and `templates` keys that pasted files carry) plus Sightline's additions (`escalations`,
//! `acknowledgement`, `silencing`, and per-receiver `timeout`, `retries`, `retry_backoff`, `max_alerts`).
//! [`Config::parse`] checks a file the way `amtool check-config` does; errors name the setting's path, and
//! [`locate`] finds that path's line in the YAML text.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml_ng::Value;

use super::duration::PromDuration;
use super::matchers::{MatchType, Matcher, MatcherError, Matchers, parse_matchers, valid_label_name};
use super::timeinterval::NamedTimeInterval;
use crate::notify::template::Templates;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The YAML did not parse or did not fit the schema; `line` is 1-based.
    #[error("{message}")]
    Yaml { message: String, line: Option<usize>, column: Option<usize> },
    /// A semantic check failed at `path` (like `route.routes[1].receiver`).
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl ConfigError {
    fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid { path: path.into(), message: message.into() }
    }

    /// The 1-based line in `text` the error points at, when known.
    pub fn line(&self, text: &str) -> Option<usize> {
        match self {
            ConfigError::Yaml { line, .. } => *line,
            ConfigError::Invalid { path, .. } => locate(text, path),
        }
    }
}

pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRIES: u32 = 3;
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub global: GlobalConfig,
    pub route: Option<Route>,
    #[serde(default)]
    pub receivers: Vec<Receiver>,
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRule>,
    #[serde(default)]
    pub time_intervals: Vec<NamedTimeInterval>,
    /// The older name of `time_intervals`, still accepted by Alertmanager.
    #[serde(default)]
    pub mute_time_intervals: Vec<NamedTimeInterval>,
    /// Notification template files (globs, relative to the working directory) whose `define`s receivers'
    /// fields can call; read by [`Config::load_templates`].
    #[serde(default)]
    pub templates: Vec<String>,
    /// Sightline: escalation policies.
    #[serde(default)]
    pub escalations: Vec<Escalation>,
    /// Sightline: what acknowledging an alert does.
    #[serde(default)]
    pub acknowledgement: Acknowledgement,
    /// Sightline: how silences treat resolved alerts.
    #[serde(default)]
    pub silencing: Silencing,
}

/// Alertmanager's `global` block: the defaults the pipeline and notifiers use are typed, the rest kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GlobalConfig {
    pub resolve_timeout: Option<PromDuration>,
    pub smtp_from: Option<String>,
    pub smtp_smarthost: Option<String>,
    pub smtp_auth_username: Option<String>,
    pub smtp_auth_password: Option<String>,
    pub smtp_require_tls: Option<bool>,
    pub slack_api_url: Option<String>,
    pub pagerduty_url: Option<String>,
    pub http_config: Option<Value>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
    /// Not a key of the block: the notification templates receivers render their fields with,
    /// Alertmanager's defaults plus the files of the configuration's `templates:` once
    /// [`Config::load_templates`] has read them. Carried here because every receiver is built from its
    /// own settings and the global block.
    #[serde(skip)]
    pub templates: Templates,
}

/// One node of the routing tree, as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub receiver: Option<String>,
    pub group_by: Option<Vec<String>>,
    pub group_wait: Option<PromDuration>,
    pub group_interval: Option<PromDuration>,
    pub repeat_interval: Option<PromDuration>,
    #[serde(default, skip_serializing_if = "MatcherList::is_empty")]
    pub matchers: MatcherList,
    /// Deprecated equality matchers.
    #[serde(default, rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub match_eq: BTreeMap<String, String>,
    /// Deprecated regex matchers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_re: BTreeMap<String, String>,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mute_time_intervals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_time_intervals: Vec<String>,
}

/// A list of matcher strings, each of which may hold several comma-separated matchers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatcherList(pub Vec<Matcher>);

/// A receiver: a name and its integrations, plus Sightline's delivery settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Receiver {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_configs: Vec<WebhookConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slack_configs: Vec<SlackConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pagerduty_configs: Vec<PagerDutyConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_configs: Vec<EmailConfig>,
    /// Sightline: how long one delivery attempt may take.
    pub timeout: Option<PromDuration>,
    /// Sightline: attempts after the first, with exponential backoff and jitter.
    pub retries: Option<u32>,
    /// Sightline: the first backoff, doubled after each failed attempt.
    pub retry_backoff: Option<PromDuration>,
    /// Sightline: the most alerts one message carries (0: all), for every integration of the receiver.
    pub max_alerts: Option<usize>,
    /// Other Alertmanager integrations (`opsgenie_configs`, ...), refused by validation with a clear error.
    #[serde(flatten)]
    pub unsupported: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub send_resolved: Option<bool>,
    pub url: Option<String>,
    pub url_file: Option<String>,
    #[serde(default)]
    pub max_alerts: usize,
    pub http_config: Option<Value>,
}

/// Slack's typed fields; Alertmanager's other Slack settings (`fields`, `actions`, ...) are kept in `extra`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlackConfig {
    pub send_resolved: Option<bool>,
    pub api_url: Option<String>,
    pub api_url_file: Option<String>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub title: Option<String>,
    pub text: Option<String>,
    pub color: Option<String>,
    pub http_config: Option<Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PagerDutyConfig {
    pub send_resolved: Option<bool>,
    pub routing_key: Option<String>,
    pub routing_key_file: Option<String>,
    pub service_key: Option<String>,
    pub service_key_file: Option<String>,
    pub url: Option<String>,
    pub severity: Option<String>,
    pub http_config: Option<Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EmailConfig {
    pub send_resolved: Option<bool>,
    pub to: Option<String>,
    pub from: Option<String>,
    pub smarthost: Option<String>,
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    pub require_tls: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    #[serde(default, skip_serializing_if = "MatcherList::is_empty")]
    pub source_matchers: MatcherList,
    #[serde(default, skip_serializing_if = "MatcherList::is_empty")]
    pub target_matchers: MatcherList,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_match: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_match_re: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_match: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_match_re: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equal: Vec<String>,
}

/// Sightline: an escalation policy. Matching firing alerts not acknowledged within a level's `after` (since
/// they started firing) are sent to that level's receivers, once per level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub name: String,
    #[serde(default, rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub match_eq: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_re: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "MatcherList::is_empty")]
    pub matchers: MatcherList,
    pub levels: Vec<EscalationLevel>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    pub after: PromDuration,
    pub receivers: Vec<String>,
}

/// Sightline: acknowledgement settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    /// Acknowledged firing alerts are not re-sent every `repeat_interval` (changes still are).
    #[serde(default = "yes")]
    pub stops_reminders: bool,
}

impl Default for Acknowledgement {
    fn default() -> Self {
        Self { stops_reminders: true }
    }
}

/// Sightline: silence settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silencing {
    /// Send the resolved notification of an alert that resolved while silenced to receivers that were told
    /// it was firing (Alertmanager drops it).
    #[serde(default)]
    pub send_resolved_while_silenced: bool,
}

fn yes() -> bool {
    true
}

/// One integration of a receiver, with its kind.
#[derive(Clone, Debug, PartialEq)]
pub enum IntegrationConfig {
    Webhook(WebhookConfig),
    Slack(SlackConfig),
    PagerDuty(PagerDutyConfig),
    Email(EmailConfig),
}

// === impl Config ===

impl Config {
    /// Parses and checks a configuration file's text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut config: Config = serde_yaml_ng::from_str(text).map_err(|e| {
            let location = e.location();
            ConfigError::Yaml {
                message: e.to_string(),
                line: location.as_ref().map(|l| l.line()),
                column: location.as_ref().map(|l| l.column()),
            }
        })?;
        config.load_templates()?;
        config.validate()?;
        Ok(config)
    }

    /// Reads the files of `templates:` into `global.templates`; an error names the glob or the file and
    /// line that is wrong.
    pub fn load_templates(&mut self) -> Result<(), ConfigError> {
        self.global.templates =
            Templates::load(&self.templates).map_err(|e| ConfigError::invalid("templates", e.to_string()))?;
        Ok(())
    }

    /// Checks what `amtool check-config` checks, and Sightline's keys; and, beyond Alertmanager, that every
    /// templated receiver field parses and calls only templates that exist.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.global.templates.globs() != self.templates.as_slice() {
            return Err(ConfigError::invalid(
                "templates",
                "the template files were not read: call Config::load_templates after changing `templates`",
            ));
        }
        let mut names = BTreeSet::new();
        for (i, receiver) in self.receivers.iter().enumerate() {
            let path = format!("receivers[{i}]");
            if receiver.name.is_empty() {
                return Err(ConfigError::invalid(format!("{path}.name"), "missing name in receiver"));
            }
            if !names.insert(receiver.name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("{path}.name"),
                    format!(
                        "notification config name {:?} is not unique: rename one of the receivers",
                        receiver.name
                    ),
                ));
            }
            self.validate_receiver(receiver, &path)?;
        }
        let mut intervals = BTreeSet::new();
        for (key, list) in
            [("time_intervals", &self.time_intervals), ("mute_time_intervals", &self.mute_time_intervals)]
        {
            for (i, interval) in list.iter().enumerate() {
                let path = format!("{key}[{i}]");
                if interval.name.is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{path}.name"),
                        "missing name in time interval",
                    ));
                }
                if !intervals.insert(interval.name.as_str()) {
                    return Err(ConfigError::invalid(
                        format!("{path}.name"),
                        format!("time interval {:?} is not unique", interval.name),
                    ));
                }
                interval.compile().map_err(|e| ConfigError::invalid(path, e.to_string()))?;
            }
        }
        let Some(route) = &self.route else {
            return Err(ConfigError::invalid(
                "route",
                "no route provided in config: add a root route with a receiver",
            ));
        };
        if route.receiver.is_none() {
            return Err(ConfigError::invalid("route.receiver", "root route must specify a default receiver"));
        }
        if !route.matchers.is_empty() || !route.match_eq.is_empty() || !route.match_re.is_empty() {
            return Err(ConfigError::invalid("route", "root route must not have any matchers"));
        }
        if route.continue_matching {
            return Err(ConfigError::invalid("route.continue", "cannot have continue in root route"));
        }
        if !route.mute_time_intervals.is_empty() {
            return Err(ConfigError::invalid(
                "route.mute_time_intervals",
                "root route must not have any mute time intervals",
            ));
        }
        if !route.active_time_intervals.is_empty() {
            return Err(ConfigError::invalid(
                "route.active_time_intervals",
                "root route must not have any active time intervals",
            ));
        }
        self.validate_route(route, "route", &names, &intervals)?;
        for (i, rule) in self.inhibit_rules.iter().enumerate() {
            let path = format!("inhibit_rules[{i}]");
            for (key, map) in
                [("source_match_re", &rule.source_match_re), ("target_match_re", &rule.target_match_re)]
            {
                legacy_matchers(&BTreeMap::new(), map)
                    .map_err(|e| ConfigError::invalid(format!("{path}.{key}"), e.to_string()))?;
            }
            for (key, map) in [("source_match", &rule.source_match), ("target_match", &rule.target_match)] {
                legacy_matchers(map, &BTreeMap::new())
                    .map_err(|e| ConfigError::invalid(format!("{path}.{key}"), e.to_string()))?;
            }
            for (j, name) in rule.equal.iter().enumerate() {
                if !valid_label_name(name) {
                    return Err(ConfigError::invalid(
                        format!("{path}.equal[{j}]"),
                        format!("invalid label name {name:?}"),
                    ));
                }
            }
        }
        let mut escalation_names = BTreeSet::new();
        for (i, escalation) in self.escalations.iter().enumerate() {
            let path = format!("escalations[{i}]");
            if escalation.name.is_empty() || !escalation_names.insert(escalation.name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("{path}.name"),
                    format!("escalation name {:?} is missing or not unique", escalation.name),
                ));
            }
            legacy_matchers(&escalation.match_eq, &escalation.match_re)
                .map_err(|e| ConfigError::invalid(&path, e.to_string()))?;
            if escalation.levels.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{path}.levels"),
                    "an escalation needs at least one level",
                ));
            }
            let mut previous = Duration::ZERO;
            for (j, level) in escalation.levels.iter().enumerate() {
                let level_path = format!("{path}.levels[{j}]");
                if level.after.0 <= previous && (j > 0 || level.after.0.is_zero()) {
                    return Err(ConfigError::invalid(
                        format!("{level_path}.after"),
                        "each level's `after` must be greater than zero and than the previous level's",
                    ));
                }
                previous = level.after.0;
                if level.receivers.is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{level_path}.receivers"),
                        "a level needs at least one receiver",
                    ));
                }
                for (k, receiver) in level.receivers.iter().enumerate() {
                    if !names.contains(receiver.as_str()) {
                        return Err(ConfigError::invalid(
                            format!("{level_path}.receivers[{k}]"),
                            format!("undefined receiver {receiver:?} used in escalation"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_route(
        &self,
        route: &Route,
        path: &str,
        receivers: &BTreeSet<&str>,
        intervals: &BTreeSet<&str>,
    ) -> Result<(), ConfigError> {
        if let Some(receiver) = &route.receiver
            && !receivers.contains(receiver.as_str())
        {
            return Err(ConfigError::invalid(
                format!("{path}.receiver"),
                format!("undefined receiver {receiver:?} used in route: define it under receivers"),
            ));
        }
        if let Some(group_by) = &route.group_by {
            let mut seen = BTreeSet::new();
            for (i, label) in group_by.iter().enumerate() {
                if label == "..." {
                    if group_by.len() > 1 {
                        return Err(ConfigError::invalid(
                            format!("{path}.group_by"),
                            "cannot have wildcard group_by (`...`) and other labels at the same time",
                        ));
                    }
                } else if !valid_label_name(label) {
                    return Err(ConfigError::invalid(
                        format!("{path}.group_by[{i}]"),
                        format!("invalid label name {label:?} in group_by"),
                    ));
                }
                if !seen.insert(label) {
                    return Err(ConfigError::invalid(
                        format!("{path}.group_by[{i}]"),
                        format!("duplicated label {label:?} in group_by"),
                    ));
                }
            }
        }
        if route.group_interval.is_some_and(|d| d.0.is_zero()) {
            return Err(ConfigError::invalid(
                format!("{path}.group_interval"),
                "group_interval cannot be zero",
            ));
        }
        if route.repeat_interval.is_some_and(|d| d.0.is_zero()) {
            return Err(ConfigError::invalid(
                format!("{path}.repeat_interval"),
                "repeat_interval cannot be zero",
            ));
        }
        legacy_matchers(&route.match_eq, &route.match_re)
            .map_err(|e| ConfigError::invalid(path, e.to_string()))?;
        for (key, list) in [
            ("mute_time_intervals", &route.mute_time_intervals),
            ("active_time_intervals", &route.active_time_intervals),
        ] {
            for (i, name) in list.iter().enumerate() {
                if !intervals.contains(name.as_str()) {
                    return Err(ConfigError::invalid(
                        format!("{path}.{key}[{i}]"),
                        format!(
                            "undefined time interval {name:?} used in route: define it under time_intervals"
                        ),
                    ));
                }
            }
        }
        for (i, child) in route.routes.iter().enumerate() {
            self.validate_route(child, &format!("{path}.routes[{i}]"), receivers, intervals)?;
        }
        Ok(())
    }

    fn validate_receiver(&self, receiver: &Receiver, path: &str) -> Result<(), ConfigError> {
        if let Some(key) = receiver.unsupported.keys().next() {
            return Err(ConfigError::invalid(
                format!("{path}.{key}"),
                "not supported by Sightline: use webhook_configs, slack_configs, pagerduty_configs or email_configs",
            ));
        }
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for integration in receiver.integrations() {
            let kind = integration.kind();
            let slot = index.entry(kind).or_default();
            let at = format!("{kind}_configs[{slot}]");
            *slot += 1;
            for (field, text) in crate::factory::template_fields(&integration) {
                if let Err(e) = self.global.templates.compile(&field, &text) {
                    return Err(ConfigError::invalid(
                        format!("{path}.{at}.{field}"),
                        format!("receiver {:?}: invalid template in {at}.{field}: {e}", receiver.name),
                    ));
                }
            }
        }
        for (i, webhook) in receiver.webhook_configs.iter().enumerate() {
            let p = format!("{path}.webhook_configs[{i}]");
            match (&webhook.url, &webhook.url_file) {
                (None, None) => {
                    return Err(ConfigError::invalid(p, "one of url or url_file must be configured"));
                }
                (Some(_), Some(_)) => {
                    return Err(ConfigError::invalid(p, "at most one of url & url_file must be configured"));
                }
                (Some(url), None) => check_url(url, &format!("{p}.url"))?,
                (None, Some(_)) => {}
            }
        }
        for (i, slack) in receiver.slack_configs.iter().enumerate() {
            let p = format!("{path}.slack_configs[{i}]");
            match (&slack.api_url, &self.global.slack_api_url, &slack.api_url_file) {
                (Some(url), _, _) => check_url(url, &format!("{p}.api_url"))?,
                (None, Some(_), _) | (None, None, Some(_)) => {}
                (None, None, None) => {
                    return Err(ConfigError::invalid(
                        p,
                        "no global Slack API URL set: set api_url here or global.slack_api_url",
                    ));
                }
            }
        }
        for (i, pd) in receiver.pagerduty_configs.iter().enumerate() {
            let p = format!("{path}.pagerduty_configs[{i}]");
            if pd.routing_key.is_none()
                && pd.routing_key_file.is_none()
                && pd.service_key.is_none()
                && pd.service_key_file.is_none()
            {
                return Err(ConfigError::invalid(p, "missing service or routing key in PagerDuty config"));
            }
            if let Some(url) = &pd.url {
                check_url(url, &format!("{p}.url"))?;
            }
        }
        for (i, email) in receiver.email_configs.iter().enumerate() {
            let p = format!("{path}.email_configs[{i}]");
            if email.to.as_deref().is_none_or(str::is_empty) {
                return Err(ConfigError::invalid(format!("{p}.to"), "missing to address in email config"));
            }
            if email.from.is_none() && self.global.smtp_from.is_none() {
                return Err(ConfigError::invalid(
                    p,
                    "no global SMTP from set: set from here or global.smtp_from",
                ));
            }
            if email.smarthost.is_none() && self.global.smtp_smarthost.is_none() {
                return Err(ConfigError::invalid(
                    p,
                    "no global SMTP smarthost set: set smarthost here or global.smtp_smarthost",
                ));
            }
        }
        Ok(())
    }

    /// The resolve timeout: how long an alert without an end stays firing after its last update.
    pub fn resolve_timeout(&self) -> Duration {
        self.global.resolve_timeout.map_or(DEFAULT_RESOLVE_TIMEOUT, |d| d.0)
    }

    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }

    /// All named time intervals, from both keys.
    pub fn all_time_intervals(&self) -> impl Iterator<Item = &NamedTimeInterval> {
        self.time_intervals.iter().chain(&self.mute_time_intervals)
    }
}

fn check_url(url: &str, path: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::invalid(path, format!("unsupported scheme in URL {url:?}: use http:// or https://")))
    }
}

/// Turns `match` and `match_re` maps into matchers, sorted by name as Alertmanager does.
pub fn legacy_matchers(
    eq: &BTreeMap<String, String>,
    re: &BTreeMap<String, String>,
) -> Result<Vec<Matcher>, MatcherError> {
    let mut out = Vec::with_capacity(eq.len() + re.len());
    for (name, value) in eq {
        out.push(Matcher::new(name, MatchType::Equal, value)?);
    }
    for (name, value) in re {
        out.push(Matcher::new(name, MatchType::Regexp, value)?);
    }
    Ok(out)
}

// === impl Route ===

impl Route {
    /// The route's matchers: `matchers` plus the deprecated `match` and `match_re`.
    pub fn all_matchers(&self) -> Result<Matchers, MatcherError> {
        let mut all = self.matchers.0.clone();
        all.extend(legacy_matchers(&self.match_eq, &self.match_re)?);
        Ok(Matchers(all))
    }
}

// === impl Escalation ===

impl Escalation {
    pub fn all_matchers(&self) -> Result<Matchers, MatcherError> {
        let mut all = self.matchers.0.clone();
        all.extend(legacy_matchers(&self.match_eq, &self.match_re)?);
        Ok(Matchers(all))
    }
}

// === impl InhibitRule ===

impl InhibitRule {
    /// Source matchers from both syntaxes; `validate` has checked the legacy ones compile.
    pub fn source_matchers(&self) -> Matchers {
        let mut all = self.source_matchers.0.clone();
        all.extend(legacy_matchers(&self.source_match, &self.source_match_re).unwrap_or_default());
        Matchers(all)
    }

    pub fn target_matchers(&self) -> Matchers {
        let mut all = self.target_matchers.0.clone();
        all.extend(legacy_matchers(&self.target_match, &self.target_match_re).unwrap_or_default());
        Matchers(all)
    }
}

// === impl Receiver ===

impl Receiver {
    /// The receiver's integrations in Alertmanager's order (webhook, Slack, PagerDuty, email).
    pub fn integrations(&self) -> Vec<IntegrationConfig> {
        let mut out = Vec::new();
        out.extend(self.webhook_configs.iter().cloned().map(IntegrationConfig::Webhook));
        out.extend(self.slack_configs.iter().cloned().map(IntegrationConfig::Slack));
        out.extend(self.pagerduty_configs.iter().cloned().map(IntegrationConfig::PagerDuty));
        out.extend(self.email_configs.iter().cloned().map(IntegrationConfig::Email));
        out
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0)
    }

    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(DEFAULT_RETRIES)
    }

    pub fn retry_backoff(&self) -> Duration {
        self.retry_backoff.map_or(DEFAULT_RETRY_BACKOFF, |d| d.0)
    }
}

// === impl IntegrationConfig ===

impl IntegrationConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            IntegrationConfig::Webhook(_) => "webhook",
            IntegrationConfig::Slack(_) => "slack",
            IntegrationConfig::PagerDuty(_) => "pagerduty",
            IntegrationConfig::Email(_) => "email",
        }
    }

    /// `send_resolved` with Alertmanager's per-kind defaults (webhook and PagerDuty: true; Slack and email:
    /// false).
    pub fn send_resolved(&self) -> bool {
        match self {
            IntegrationConfig::Webhook(c) => c.send_resolved.unwrap_or(true),
            IntegrationConfig::Slack(c) => c.send_resolved.unwrap_or(false),
            IntegrationConfig::PagerDuty(c) => c.send_resolved.unwrap_or(true),
            IntegrationConfig::Email(c) => c.send_resolved.unwrap_or(false),
        }
    }

    /// The integration's own alert limit (0: none).
    pub fn max_alerts(&self) -> usize {
        match self {
            IntegrationConfig::Webhook(c) => c.max_alerts,
            _ => 0,
        }
    }
}

// === impl MatcherList ===

impl MatcherList {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for MatcherList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for MatcherList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        let mut all = Vec::new();
        for text in &texts {
            all.extend(parse_matchers(text).map_err(serde::de::Error::custom)?);
        }
        Ok(MatcherList(all))
    }
}

/// The 1-based line of a setting in YAML text, by a path such as `route.routes[1].matchers[0]`. Walks the
/// block structure by indentation, which covers the block style configuration files are written in; returns
/// the deepest line found when the path runs into flow style or a missing key.
pub fn locate(text: &str, path: &str) -> Option<usize> {
    enum Segment<'a> {
        Key(&'a str),
        Index(usize),
    }
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            segments.push(Segment::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            segments.push(Segment::Index(index.parse().ok()?));
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let meaningful: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            let t = lines[i].trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    // The column and text of a line's key; in "- key: v" the key sits after the dash.
    let key_at = |l: &str| -> (usize, String) {
        let t = l.trim_start();
        match t.strip_prefix("- ") {
            Some(rest) => (indent(l) + 2 + indent(rest), rest.trim_start().to_owned()),
            None => (indent(l), t.to_owned()),
        }
    };
    let is_item = |l: &str| l.trim_start().starts_with('-');
    // The lines after `line` (in `meaningful` order) while `inside` holds.
    let following = |line: usize, inside: &dyn Fn(&str) -> bool| -> Vec<usize> {
        meaningful.iter().copied().filter(|&i| i > line).take_while(|&i| inside(lines[i])).collect()
    };
    let mut scope = meaningful.clone();
    let mut found: Option<usize> = None;
    for segment in segments {
        let hit = match segment {
            Segment::Key(key) => {
                let column = scope.iter().map(|&i| key_at(lines[i]).0).min();
                scope.iter().copied().find(|&i| {
                    let (col, text) = key_at(lines[i]);
                    Some(col) == column
                        && (text.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with(':'))
                            || text.starts_with(&format!("\"{key}\":")))
                })
            }
            Segment::Index(n) => {
                let dash = scope.iter().filter(|&&i| is_item(lines[i])).map(|&i| indent(lines[i])).min();
                scope.iter().copied().filter(|&i| is_item(lines[i]) && Some(indent(lines[i])) == dash).nth(n)
            }
        };
        let Some(hit) = hit else { break };
        found = Some(hit);
        scope = match segment {
            Segment::Key(_) => {
                let column = key_at(lines[hit]).0;
                following(hit, &|l| indent(l) > column || (indent(l) == column && is_item(l)))
            }
            Segment::Index(_) => {
                let dash = indent(lines[hit]);
                let mut own = vec![hit];
                own.extend(following(hit, &|l| indent(l) > dash));
                own
            }
        };
    }
    found.map(|l| l + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
global:
  resolve_timeout: 5m
  smtp_from: alerts@example.org
  smtp_smarthost: mail.example.org:587
route:
  receiver: team-a
  group_by: ['alertname', 'cluster']
  routes:
  - matchers:
    - severity="critical"
    receiver: pager
    continue: true
  - match_re:
      service: ^(foo|bar)$
    receiver: team-b
    mute_time_intervals: [weekends]
receivers:
- name: team-a
  email_configs:
  - to: a@example.org
- name: team-b
  webhook_configs:
  - url: http://127.0.0.1:9/hook
    max_alerts: 10
  timeout: 5s
  retries: 2
- name: pager
  pagerduty_configs:
  - routing_key: abc
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [alertname]
time_intervals:
- name: weekends
  time_intervals:
  - weekdays: ['saturday', 'sunday']
    times:
    - start_time: 00:00
      end_time: 24:00
escalations:
- name: critical
  matchers: ['severity="critical"']
  levels:
  - after: 15m
    receivers: [team-a]
  - after: 1h
    receivers: [pager]
acknowledgement:
  stops_reminders: true
"#;

    #[test]
    fn parses_alertmanager_syntax_and_sightline_keys() {
        let config = Config::parse(EXAMPLE).expect("valid");
        let route = config.route.as_ref().expect("route");
        assert_eq!(route.routes.len(), 2);
        assert!(route.routes[0].continue_matching);
        assert_eq!(route.routes[0].matchers.0[0].to_string(), r#"severity="critical""#);
        assert_eq!(config.receivers[1].webhook_configs[0].max_alerts, 10);
        assert_eq!(config.receivers[1].retries(), 2);
        assert_eq!(config.escalations[0].levels[1].after.0, Duration::from_secs(3600));
        assert_eq!(config.time_intervals[0].time_intervals[0].times[0].end_time, "24:00");
        assert!(IntegrationConfig::Webhook(config.receivers[1].webhook_configs[0].clone()).send_resolved());
        assert!(!IntegrationConfig::Email(config.receivers[0].email_configs[0].clone()).send_resolved());
    }

    #[test]
    fn errors_name_the_path_and_line() {
        let bad = EXAMPLE.replace("receiver: team-b\n    mute", "receiver: team-c\n    mute");
        let err = Config::parse(&bad).expect_err("undefined receiver");
        assert!(
            err.to_string().starts_with("route.routes[1].receiver: undefined receiver \"team-c\""),
            "{err}"
        );
        let line = err.line(&bad).expect("line");
        assert_eq!(bad.lines().nth(line - 1).map(str::trim), Some("receiver: team-c"));

        let dup = EXAMPLE.replace("- name: pager", "- name: team-a");
        let err = Config::parse(&dup).expect_err("duplicate");
        assert!(err.to_string().contains("not unique"), "{err}");
        assert_eq!(err.line(&dup), Some(28));

        let bad_matcher = EXAMPLE.replace(
            r#"severity="critical"
    receiver"#,
            r#"severity=~"(crit"
    receiver"#,
        );
        let err = Config::parse(&bad_matcher).expect_err("bad regex");
        assert!(matches!(err, ConfigError::Yaml { line: Some(_), .. }), "{err:?}");

        let bad_duration = EXAMPLE.replace("after: 15m", "after: 15 minutes");
        assert!(
            Config::parse(&bad_duration).expect_err("bad duration").to_string().contains("invalid duration")
        );

        assert_eq!(locate(EXAMPLE, "receivers[1].webhook_configs[0].max_alerts"), Some(25));
        assert_eq!(locate(EXAMPLE, "escalations[0].levels[1].receivers"), Some(49));
        assert_eq!(locate(EXAMPLE, "route.routes[0].matchers[0]"), Some(11));
        assert_eq!(locate(EXAMPLE, "route.group_by[1]"), Some(8), "flow style: the key's line");

        let unknown_interval = EXAMPLE.replace("[weekends]", "[holidays]");
        let err = Config::parse(&unknown_interval).expect_err("unknown interval");
        assert_eq!(
            err.to_string(),
            "route.routes[1].mute_time_intervals[0]: undefined time interval \"holidays\" used in route: define it under time_intervals"
        );
        assert_eq!(err.line(&unknown_interval), Some(17));
    }
}
