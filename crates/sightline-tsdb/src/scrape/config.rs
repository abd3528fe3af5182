//! Scrape configuration in Prometheus's YAML shape, so that a `scrape_configs` block from a
//! `prometheus.yml` pastes in unchanged (for the fields Sightline supports; any other field is rejected by
//! name rather than silently ignored).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::labels::{Label, Labels};
use crate::scrape::relabel::{self, RelabelConfig};

/// Sightline's default scrape interval. Prometheus's is one minute; Sightline samples its own registry on
/// the same clock, and 15 s is what most Prometheus set-ups configure anyway.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(15);
/// The default scrape timeout, as in Prometheus.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response body read when `body_size_limit` is not set: a scrape never holds more than this
/// in memory. Prometheus has no default limit; a runaway target should not take the server down with it.
pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 64 << 20;

/// A bad scrape configuration. Each message names the job and field, so the server can prefix the file
/// and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{context}: scrape_timeout {timeout} is greater than scrape_interval {interval}; \
         lower scrape_timeout or raise scrape_interval"
    )]
    TimeoutExceedsInterval { context: String, timeout: PromDuration, interval: PromDuration },
    #[error("job {job:?} is defined more than once in scrape_configs; give each job a unique job_name")]
    DuplicateJob { job: String },
    #[error("job {job:?}: invalid target {target:?} in static_configs: {reason}")]
    Target { job: String, target: String, reason: String },
    #[error("{context}: invalid `{field}`: {reason}")]
    Field { context: String, field: &'static str, reason: String },
}

/// A duration in Prometheus's notation: `1y2w3d4h5m6s7ms` with any non-empty subset of the units in that
/// order (`15s`, `1m`, `500ms`, `1h30m`), or `0`. A year is 365 days and a week 7 days, as in Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration(pub Duration);

// === impl PromDuration ===

impl PromDuration {
    /// The wrapped duration.
    pub const fn get(self) -> Duration {
        self.0
    }
}

/// Prometheus's notation, read by the one parser all of Sightline uses
/// ([`sightline_core::duration::parse_prometheus`]); the error is the reason alone.
impl FromStr for PromDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        sightline_core::duration::parse_prometheus(s).map(Self).map_err(|e| e.reason)
    }
}

/// Prometheus's canonical form (`model.Duration`): the largest units first, years and weeks only when
/// they divide it exactly (`90d`, not `12w6d`), `0s` for zero.
impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&promql_parser::util::display_duration(&self.0))
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|reason: String| {
            serde::de::Error::custom(format!("invalid duration {text:?}: {reason}"))
        })
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A size in Prometheus's `body_size_limit` notation: a number with `B`, `KB`, `MB`, `GB` or `TB`
/// (powers of 1024, as Prometheus reads them) or `KiB`, `MiB`, `GiB`, `TiB`; `0` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteSize(pub u64);

// === impl ByteSize ===

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let number: u64 = s[..digits].parse().map_err(|_| format!("{s:?} does not start with a number"))?;
        let shift = match &s[digits..] {
            "" if number == 0 => 0,
            "B" => 0,
            "KB" | "KiB" => 10,
            "MB" | "MiB" => 20,
            "GB" | "GiB" => 30,
            "TB" | "TiB" => 40,
            other => return Err(format!("unknown unit {other:?}; use B, KB, MB, GB or TB (powers of 1024)")),
        };
        number.checked_mul(1 << shift).map(Self).ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|reason: String| serde::de::Error::custom(format!("invalid size {text:?}: {reason}")))
    }
}

/// A password or token: kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

// === impl Secret ===

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// Prometheus's `global` block, for the fields that concern scraping.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    /// How often to scrape targets by default (Sightline: 15 s; Prometheus: 1 m).
    pub scrape_interval: PromDuration,
    /// How long a scrape may take by default (10 s).
    pub scrape_timeout: PromDuration,
    /// Labels the server adds when it talks to the outside (federation, remote write, alerts); scraped
    /// samples are stored without them, as in Prometheus.
    pub external_labels: BTreeMap<String, String>,
}

// === impl GlobalConfig ===

impl Default for GlobalConfig {
    fn default() -> Self {
        Self {
            scrape_interval: PromDuration(DEFAULT_SCRAPE_INTERVAL),
            scrape_timeout: PromDuration(DEFAULT_SCRAPE_TIMEOUT),
            external_labels: BTreeMap::new(),
        }
    }
}

impl GlobalConfig {
    /// Checks the global block on its own.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let context = "global".to_owned();
        if self.scrape_interval.0.is_zero() {
            return Err(ConfigError::Field {
                context,
                field: "scrape_interval",
                reason: "must be greater than zero".into(),
            });
        }
        if self.scrape_timeout > self.scrape_interval {
            return Err(ConfigError::TimeoutExceedsInterval {
                context,
                timeout: self.scrape_timeout,
                interval: self.scrape_interval,
            });
        }
        for name in self.external_labels.keys() {
            if !is_valid_label_name(name) {
                return Err(ConfigError::Field {
                    context,
                    field: "external_labels",
                    reason: format!("{name:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                });
            }
        }
        Ok(())
    }
}

/// The URL scheme of a job's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

// === impl Scheme ===

impl Scheme {
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One entry of `static_configs`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels added to every series of these targets.
    pub labels: BTreeMap<String, String>,
}

/// `basic_auth`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub username_file: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Read at every scrape, so a rotated password is picked up without a reload.
    #[serde(default)]
    pub password_file: Option<String>,
}

/// `authorization`: an `Authorization: <type> <credentials>` header.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme; `Bearer` by default.
    #[serde(default = "default_auth_type", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub credentials: Option<Secret>,
    /// Read at every scrape.
    #[serde(default)]
    pub credentials_file: Option<String>,
}

fn default_auth_type() -> String {
    "Bearer".into()
}

/// `tls_config`, for the fields Sightline supports.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Accept any server certificate (handshake signatures are still checked).
    pub insecure_skip_verify: bool,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

fn default_true() -> bool {
    true
}

/// One entry of `scrape_configs`, with Prometheus's field names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label of every series scraped, and the scrape pool's name.
    pub job_name: String,
    /// Falls back to the global interval.
    #[serde(default)]
    pub scrape_interval: Option<PromDuration>,
    /// Falls back to the global timeout, capped at this job's interval.
    #[serde(default)]
    pub scrape_timeout: Option<PromDuration>,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    #[serde(default)]
    pub scheme: Scheme,
    /// Scraped `job`, `instance` and static labels win over the target's own (`true`), or are kept as
    /// `exported_<name>` (`false`, the default).
    #[serde(default)]
    pub honor_labels: bool,
    /// Use timestamps the target exposes (`true`, the default) or the scrape time.
    #[serde(default = "default_true")]
    pub honor_timestamps: bool,
    /// URL query parameters.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Legacy form of `authorization: {credentials: ...}`.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// Legacy form of `authorization: {credentials_file: ...}`.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// More samples than this in one scrape fails the scrape (0: no limit).
    #[serde(default)]
    pub sample_limit: usize,
    /// More labels than this on one series fails the scrape (0: no limit).
    #[serde(default)]
    pub label_limit: usize,
    /// A label name longer than this fails the scrape (0: no limit).
    #[serde(default)]
    pub label_name_length_limit: usize,
    /// A label value longer than this fails the scrape (0: no limit).
    #[serde(default)]
    pub label_value_length_limit: usize,
    /// A larger (uncompressed) body fails the scrape; 0 means Sightline's default of 64 MiB.
    #[serde(default)]
    pub body_size_limit: ByteSize,
    /// Ask for gzip bodies (`true`, the default).
    #[serde(default = "default_true")]
    pub enable_compression: bool,
    /// Follow HTTP redirects (`true`, the default).
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    /// The format of a body whose `Content-Type` is neither format's. Without it such a scrape fails, as
    /// in Prometheus 3 (a missing `Content-Type` is read as the text format, which Prometheus 3 refuses).
    #[serde(default)]
    pub fallback_scrape_protocol: Option<ScrapeProtocol>,
    /// The formats asked for, most wanted first (they make the `Accept` header). Unset: OpenMetrics 1.0,
    /// then the text format 0.0.4.
    #[serde(default)]
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    /// Rules applied to each target's discovered labels (`__address__`, `__scheme__`,
    /// `__metrics_path__`, `__param_<name>`, static labels, `job`) before it is scraped; a dropped
    /// target is not scraped. `__scrape_interval__` and `__scrape_timeout__` changes are not honoured.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Rules applied to each scraped series' labels (after `job`, `instance` and static labels); a
    /// dropped series is not stored.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

/// A `scrape_protocols` or `fallback_scrape_protocol` value, with Prometheus's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ScrapeProtocol {
    #[serde(rename = "PrometheusText0.0.4")]
    PrometheusText004,
    #[serde(rename = "PrometheusText1.0.0")]
    PrometheusText100,
    #[serde(rename = "OpenMetricsText0.0.1")]
    OpenMetricsText001,
    #[serde(rename = "OpenMetricsText1.0.0")]
    OpenMetricsText100,
    /// Prometheus's protobuf format: accepted in the YAML so that a pasted config gets a clear error,
    /// which validation gives (Sightline reads the text formats only).
    #[serde(rename = "PrometheusProto")]
    PrometheusProto,
}

// === impl ScrapeProtocol ===

impl ScrapeProtocol {
    /// The media type asked for in `Accept`.
    pub const fn media_type(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusText004 => "text/plain;version=0.0.4",
            ScrapeProtocol::PrometheusText100 => "text/plain;version=1.0.0",
            ScrapeProtocol::OpenMetricsText001 => "application/openmetrics-text;version=0.0.1",
            ScrapeProtocol::OpenMetricsText100 => "application/openmetrics-text;version=1.0.0",
            ScrapeProtocol::PrometheusProto => "application/vnd.google.protobuf",
        }
    }

    /// The format a body of this protocol is read as (`None` for protobuf).
    pub const fn format(self) -> Option<crate::scrape::parse::Format> {
        use crate::scrape::parse::Format;
        match self {
            ScrapeProtocol::PrometheusText004 | ScrapeProtocol::PrometheusText100 => Some(Format::Prometheus),
            ScrapeProtocol::OpenMetricsText001 | ScrapeProtocol::OpenMetricsText100 => {
                Some(Format::OpenMetrics)
            }
            ScrapeProtocol::PrometheusProto => None,
        }
    }
}

// === impl ScrapeConfig ===

impl ScrapeConfig {
    /// A job with defaults for everything but its name and targets.
    pub fn new(job_name: impl Into<String>, targets: &[&str]) -> Self {
        Self {
            job_name: job_name.into(),
            scrape_interval: None,
            scrape_timeout: None,
            metrics_path: default_metrics_path(),
            scheme: Scheme::Http,
            honor_labels: false,
            honor_timestamps: true,
            params: BTreeMap::new(),
            static_configs: vec![StaticConfig {
                targets: targets.iter().map(|t| (*t).to_owned()).collect(),
                labels: BTreeMap::new(),
            }],
            basic_auth: None,
            authorization: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: TlsConfig::default(),
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            body_size_limit: ByteSize(0),
            enable_compression: true,
            follow_redirects: true,
            fallback_scrape_protocol: None,
            scrape_protocols: None,
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
        }
    }

    /// The interval in force under `global`.
    pub fn interval(&self, global: &GlobalConfig) -> Duration {
        self.scrape_interval.unwrap_or(global.scrape_interval).0
    }

    /// The timeout in force under `global`: the job's own, or the global one capped at the job's interval
    /// (as Prometheus does, so a short job interval does not need its own timeout).
    pub fn timeout(&self, global: &GlobalConfig) -> Duration {
        match self.scrape_timeout {
            Some(t) => t.0,
            None => global.scrape_timeout.0.min(self.interval(global)),
        }
    }

    /// Checks one job under `global`. [`validate_configs`] also checks that job names are unique.
    pub fn validate(&self, global: &GlobalConfig) -> Result<(), ConfigError> {
        let context = format!("job {:?}", self.job_name);
        let field = |field: &'static str, reason: String| ConfigError::Field {
            context: context.clone(),
            field,
            reason,
        };
        if self.job_name.is_empty() {
            return Err(ConfigError::Field {
                context: "scrape_configs".into(),
                field: "job_name",
                reason: "must not be empty".into(),
            });
        }
        let interval = self.interval(global);
        if interval.is_zero() {
            return Err(field("scrape_interval", "must be greater than zero".into()));
        }
        let timeout = self.timeout(global);
        if timeout.is_zero() {
            return Err(field("scrape_timeout", "must be greater than zero".into()));
        }
        if timeout > interval {
            return Err(ConfigError::TimeoutExceedsInterval {
                context,
                timeout: PromDuration(timeout),
                interval: PromDuration(interval),
            });
        }
        if !self.metrics_path.starts_with('/') {
            return Err(field("metrics_path", format!("{:?} must start with '/'", self.metrics_path)));
        }
        let auths = usize::from(self.basic_auth.is_some())
            + usize::from(self.authorization.is_some())
            + usize::from(self.bearer_token.is_some() || self.bearer_token_file.is_some());
        if auths > 1 {
            return Err(field(
                "basic_auth",
                "at most one of basic_auth, authorization and bearer_token/bearer_token_file may be set"
                    .into(),
            ));
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(field("bearer_token", "set bearer_token or bearer_token_file, not both".into()));
        }
        if let Some(basic) = &self.basic_auth {
            if basic.password.is_some() && basic.password_file.is_some() {
                return Err(field("basic_auth", "set password or password_file, not both".into()));
            }
            if !basic.username.is_empty() && basic.username_file.is_some() {
                return Err(field("basic_auth", "set username or username_file, not both".into()));
            }
        }
        if let Some(auth) = &self.authorization {
            if auth.kind.eq_ignore_ascii_case("basic") {
                return Err(field("authorization", "type Basic is not allowed here; use basic_auth".into()));
            }
            if auth.kind.is_empty() || auth.kind.contains(char::is_whitespace) {
                return Err(field(
                    "authorization",
                    format!("type {:?} must be one word, like Bearer", auth.kind),
                ));
            }
            if auth.credentials.is_some() && auth.credentials_file.is_some() {
                return Err(field("authorization", "set credentials or credentials_file, not both".into()));
            }
        }
        if self.fallback_scrape_protocol == Some(ScrapeProtocol::PrometheusProto) {
            return Err(field(
                "fallback_scrape_protocol",
                "PrometheusProto is not supported; Sightline reads the text formats".into(),
            ));
        }
        if let Some(protocols) = &self.scrape_protocols {
            if protocols.is_empty() {
                return Err(field("scrape_protocols", "must list at least one protocol".into()));
            }
            if protocols.contains(&ScrapeProtocol::PrometheusProto) {
                return Err(field(
                    "scrape_protocols",
                    "PrometheusProto is not supported; Sightline reads the text formats".into(),
                ));
            }
            if let Some(dup) = protocols.iter().enumerate().find(|(i, p)| protocols[..*i].contains(p)) {
                return Err(field("scrape_protocols", format!("{:?} is listed twice", dup.1)));
            }
        }
        for (field_name, rules) in [
            ("relabel_configs", &self.relabel_configs),
            ("metric_relabel_configs", &self.metric_relabel_configs),
        ] {
            for (i, rule) in rules.iter().enumerate() {
                rule.validate().map_err(|reason| field(field_name, format!("rule {}: {reason}", i + 1)))?;
            }
        }
        for config in &self.static_configs {
            for name in config.labels.keys() {
                if !is_valid_label_name(name) {
                    return Err(field(
                        "static_configs",
                        format!("label name {name:?} is not valid ([a-zA-Z_][a-zA-Z0-9_]*)"),
                    ));
                }
            }
            // With relabel_configs an address may be anything (a URL for a blackbox probe, say) until the
            // rules move it; what they give is checked below.
            if self.relabel_configs.is_empty() {
                for target in &config.targets {
                    target_url(self, target)?;
                }
            }
        }
        if !self.relabel_configs.is_empty() {
            self.targets(global)?;
        }
        Ok(())
    }

    /// The targets this job scrapes, with their labels.
    pub(crate) fn targets(&self, global: &GlobalConfig) -> Result<Vec<TargetSpec>, ConfigError> {
        let interval = PromDuration(self.interval(global));
        let timeout = PromDuration(self.timeout(global));
        let mut out = Vec::new();
        for config in &self.static_configs {
            for address in &config.targets {
                // The discovered labels, as Prometheus shows them before relabelling. Static labels come
                // last and win (a static `job` label overrides job_name, as in Prometheus), except the `__`
                // meta labels, which describe the URL actually scraped.
                let mut discovered = vec![
                    Label::new("__address__", address.as_str()),
                    Label::new("__metrics_path__", self.metrics_path.as_str()),
                    Label::new("__scheme__", self.scheme.as_str()),
                    Label::new("__scrape_interval__", interval.to_string()),
                    Label::new("__scrape_timeout__", timeout.to_string()),
                    Label::new("job", self.job_name.as_str()),
                ];
                for (name, values) in &self.params {
                    if let Some(first) = values.first() {
                        discovered.push(Label::new(format!("__param_{name}"), first.as_str()));
                    }
                }
                discovered.extend(
                    config
                        .labels
                        .iter()
                        .filter(|(name, _)| !name.starts_with("__"))
                        .map(|(name, value)| Label::new(name.as_str(), value.as_str())),
                );
                let discovered = Labels::new(discovered);
                let (url, relabelled) = if self.relabel_configs.is_empty() {
                    (target_url(self, address)?, discovered.clone())
                } else {
                    let Some(relabelled) = relabel::process(discovered.clone(), &self.relabel_configs) else {
                        continue;
                    };
                    (relabelled_url(self, address, &relabelled)?, relabelled)
                };
                // The target's labels: the relabelled ones without the `__` meta labels, and `instance`
                // defaulting to the address.
                let mut labels: Vec<Label> =
                    relabelled.iter().filter(|l| !l.name.starts_with("__")).cloned().collect();
                if !labels.iter().any(|l| l.name == "instance") {
                    let address = relabelled.get("__address__").unwrap_or(address);
                    labels.push(Label::new("instance", address));
                }
                out.push(TargetSpec { url, labels: Labels::new(labels), discovered });
            }
        }
        Ok(out)
    }
}

/// One target to scrape, resolved from a job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TargetSpec {
    pub url: reqwest::Url,
    pub labels: Labels,
    pub discovered: Labels,
}

/// The URL scraped for `address` in `job`.
fn target_url(job: &ScrapeConfig, address: &str) -> Result<reqwest::Url, ConfigError> {
    let bad = |reason: &str| ConfigError::Target {
        job: job.job_name.clone(),
        target: address.to_owned(),
        reason: reason.to_owned(),
    };
    if address.is_empty() {
        return Err(bad("the address is empty; write host:port"));
    }
    if address.contains("://") {
        return Err(bad("the address must not have a scheme; set `scheme: https` on the job instead"));
    }
    if address.contains(['/', '?', '#', '@']) || address.contains(char::is_whitespace) {
        return Err(bad("the address must be host:port, without a path, query, user or spaces"));
    }
    let mut url = reqwest::Url::parse(&format!("{}://{address}", job.scheme.as_str()))
        .map_err(|e| bad(&format!("{e}; write host:port")))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("the address has no host; write host:port"));
    }
    url.set_path(&job.metrics_path);
    if !job.params.is_empty() {
        let mut query = url.query_pairs_mut();
        for (name, values) in &job.params {
            for value in values {
                query.append_pair(name, value);
            }
        }
    }
    Ok(url)
}

/// The URL of a target after `relabel_configs`, from its `__scheme__`, `__address__`, `__metrics_path__`
/// and `__param_<name>` labels.
fn relabelled_url(job: &ScrapeConfig, original: &str, labels: &Labels) -> Result<reqwest::Url, ConfigError> {
    let bad = |reason: String| ConfigError::Target {
        job: job.job_name.clone(),
        target: original.to_owned(),
        reason,
    };
    let scheme = match labels.get("__scheme__") {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        other => {
            return Err(bad(format!("relabel_configs left __scheme__ {other:?}; it must be http or https")));
        }
    };
    let Some(address) = labels.get("__address__") else {
        return Err(bad("relabel_configs removed __address__; keep it or drop the target".into()));
    };
    let mut params = BTreeMap::new();
    for label in labels {
        if let Some(name) = label.name.strip_prefix("__param_") {
            params.insert(name.to_owned(), vec![label.value.clone()]);
        }
    }
    // Parameters with more than one value keep them all unless relabelling set a single one.
    for (name, values) in &job.params {
        if values.len() > 1 && labels.get(&format!("__param_{name}")) == values.first().map(String::as_str) {
            params.insert(name.clone(), values.clone());
        }
    }
    let shaped = ScrapeConfig {
        scheme,
        metrics_path: labels.get("__metrics_path__").unwrap_or("/metrics").to_owned(),
        params,
        ..ScrapeConfig::new(job.job_name.clone(), &[])
    };
    if !shaped.metrics_path.starts_with('/') {
        return Err(bad(format!(
            "relabel_configs left __metrics_path__ {:?}; it must start with '/'",
            shaped.metrics_path
        )));
    }
    target_url(&shaped, address)
}

/// Checks a whole `scrape_configs` list: each job, and that job names are unique.
pub fn validate_configs(global: &GlobalConfig, configs: &[ScrapeConfig]) -> Result<(), ConfigError> {
    global.validate()?;
    let mut seen = std::collections::HashSet::new();
    for config in configs {
        config.validate(global)?;
        if !seen.insert(config.job_name.as_str()) {
            return Err(ConfigError::DuplicateJob { job: config.job_name.clone() });
        }
    }
    Ok(())
}

/// Whether `name` is a valid (legacy, unquoted) label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Result<Duration, String> {
        s.parse::<PromDuration>().map(PromDuration::get)
    }

    #[test]
    fn durations_follow_prometheus_grammar() {
        assert_eq!(d("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(d("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("1d1ms"), Ok(Duration::from_millis(86_400_001)));
        assert_eq!(d("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        for bad in ["", "15", "1.5s", "1m1h", "5sec", "s", "-1s", "1 m", "1s1s"] {
            assert!(d(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(d("1m1h").unwrap_err().contains("out of order"));
        assert_eq!(PromDuration(Duration::from_secs(5400)).to_string(), "1h30m");
        assert_eq!(PromDuration(Duration::from_millis(1500)).to_string(), "1s500ms");
        assert_eq!(PromDuration(Duration::ZERO).to_string(), "0s");
    }

    #[test]
    fn byte_sizes_are_powers_of_1024() {
        assert_eq!("10MB".parse::<ByteSize>(), Ok(ByteSize(10 << 20)));
        assert_eq!("1KiB".parse::<ByteSize>(), Ok(ByteSize(1024)));
        assert_eq!("0".parse::<ByteSize>(), Ok(ByteSize(0)));
        assert!("10".parse::<ByteSize>().is_err());
        assert!("MB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn a_prometheus_block_pastes_in() {
        let yaml = r#"
- job_name: node
  scrape_interval: 30s
  scrape_timeout: 5s
  metrics_path: /metrics
  scheme: https
  honor_labels: true
  params:
    module: [http_2xx]
  static_configs:
    - targets: ["localhost:9100", "10.0.0.2:9100"]
      labels:
        env: prod
  basic_auth:
    username: prom
    password: hunter2
  tls_config:
    insecure_skip_verify: true
  sample_limit: 5000
  enable_compression: false
  fallback_scrape_protocol: PrometheusText0.0.4
  scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]
- job_name: api
  authorization:
    credentials_file: /etc/token
  static_configs:
    - targets: ["api:8080"]
"#;
        let configs: Vec<ScrapeConfig> = serde_yaml_ng::from_str(yaml).expect("parses");
        let global = GlobalConfig::default();
        validate_configs(&global, &configs).expect("valid");
        assert_eq!(configs[0].interval(&global), Duration::from_secs(30));
        assert_eq!(configs[1].interval(&global), Duration::from_secs(15));
        assert_eq!(configs[1].timeout(&global), Duration::from_secs(10));
        assert_eq!(configs[1].authorization.as_ref().map(|a| a.kind.as_str()), Some("Bearer"));
        assert!(!format!("{:?}", configs[0]).contains("hunter2"), "passwords stay out of Debug");
        let targets = configs[0].targets(&global).expect("targets");
        assert_eq!(targets[0].url.as_str(), "https://localhost:9100/metrics?module=http_2xx");
        assert_eq!(targets[0].labels.to_string(), r#"{env="prod", instance="localhost:9100", job="node"}"#);
        assert_eq!(targets[0].discovered.get("__scrape_interval__"), Some("30s"));

        // Static labels win over the job's own, but cannot move the URL.
        let mut job = ScrapeConfig::new("node", &["h:1"]);
        job.static_configs[0].labels = BTreeMap::from([
            ("job".to_owned(), "other".to_owned()),
            ("__address__".to_owned(), "x:2".to_owned()),
        ]);
        let target = &job.targets(&global).expect("targets")[0];
        assert_eq!(target.labels.to_string(), r#"{instance="h:1", job="other"}"#);
        assert_eq!(target.url.as_str(), "http://h:1/metrics");
    }

    #[test]
    fn target_relabelling_moves_urls_and_drops_targets() {
        let yaml = r#"
- job_name: blackbox
  metrics_path: /probe
  params:
    module: [http_2xx]
  static_configs:
    - targets: ["https://example.org", "skip.example.org"]
  relabel_configs:
    - source_labels: [__address__]
      regex: 'skip\..*'
      action: drop
    - source_labels: [__address__]
      target_label: __param_target
    - source_labels: [__param_target]
      target_label: instance
    - target_label: __address__
      replacement: 127.0.0.1:9115
"#;
        // A blackbox-style job: its "targets" are URLs until relabelling moves them to a parameter.
        let configs: Vec<ScrapeConfig> = serde_yaml_ng::from_str(yaml).expect("parses");
        let global = GlobalConfig::default();
        let job = configs[0].clone();
        job.validate(&global).expect("valid");
        let targets = job.targets(&global).expect("targets");
        assert_eq!(targets.len(), 1, "skip.example.org was dropped");
        assert_eq!(
            targets[0].url.as_str(),
            "http://127.0.0.1:9115/probe?module=http_2xx&target=https%3A%2F%2Fexample.org"
        );
        assert_eq!(targets[0].labels.to_string(), r#"{instance="https://example.org", job="blackbox"}"#);
        assert_eq!(targets[0].discovered.get("__address__"), Some("https://example.org"));

        let mut broken = job.clone();
        broken.relabel_configs =
            serde_yaml_ng::from_str("- target_label: __scheme__\n  replacement: ftp\n").expect("rule");
        let e = broken.validate(&global).expect_err("bad scheme");
        assert!(e.to_string().contains("__scheme__"), "{e}");
        broken.relabel_configs =
            serde_yaml_ng::from_str("- target_label: x\n  action: hashmod\n").expect("rule");
        let e = broken.validate(&global).expect_err("hashmod");
        assert!(e.to_string().contains("relabel_configs") && e.to_string().contains("rule 1"), "{e}");
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        let typo = serde_yaml_ng::from_str::<Vec<ScrapeConfig>>("- job_name: a\n  scrape_intervall: 1m\n");
        assert!(typo.unwrap_err().to_string().contains("scrape_intervall"));
        let bad = serde_yaml_ng::from_str::<Vec<ScrapeConfig>>("- job_name: a\n  scrape_interval: 1x\n");
        assert!(bad.unwrap_err().to_string().contains("unknown unit"));

        let global = GlobalConfig::default();
        let mut job = ScrapeConfig::new("a", &["localhost:1"]);
        job.scrape_interval = Some(PromDuration(Duration::from_secs(5)));
        job.scrape_timeout = Some(PromDuration(Duration::from_secs(6)));
        let e = job.validate(&global).unwrap_err().to_string();
        assert!(e.contains(r#"job "a""#) && e.contains("scrape_timeout 6s") && e.contains("5s"), "{e}");

        // A global timeout above the job's interval is capped rather than refused.
        job.scrape_timeout = None;
        job.scrape_interval = Some(PromDuration(Duration::from_secs(2)));
        assert_eq!(job.timeout(&global), Duration::from_secs(2));

        let dup = [ScrapeConfig::new("a", &[]), ScrapeConfig::new("a", &[])];
        assert_eq!(validate_configs(&global, &dup), Err(ConfigError::DuplicateJob { job: "a".into() }));

        for target in ["http://x:1", "x:1/metrics", "", "a b:1", "[::1"] {
            let e = ScrapeConfig::new("j", &[target]).validate(&global).unwrap_err();
            assert!(matches!(e, ConfigError::Target { ref job, .. } if job == "j"), "{target:?}: {e}");
        }
        let mut path = ScrapeConfig::new("j", &["x:1"]);
        path.metrics_path = "metrics".into();
        assert!(path.validate(&global).unwrap_err().to_string().contains("metrics_path"));
        let mut both = ScrapeConfig::new("j", &["x:1"]);
        both.bearer_token = Some(Secret("t".into()));
        both.basic_auth = Some(BasicAuth {
            username: "u".into(),
            username_file: None,
            password: None,
            password_file: None,
        });
        assert!(both.validate(&global).is_err());
        let mut proto = ScrapeConfig::new("j", &["x:1"]);
        proto.scrape_protocols = Some(vec![ScrapeProtocol::PrometheusProto]);
        assert!(
            proto.validate(&global).unwrap_err().to_string().contains("PrometheusProto is not supported")
        );
    }
}
