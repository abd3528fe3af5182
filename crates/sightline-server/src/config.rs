//! The server's configuration: a YAML file, `SIGHTLINE_*` environment overrides and defaults.
//!
//! Precedence, highest first: command-line flags, environment variables, the file, defaults. Every
//! setting has a default, so no file is needed. Unknown keys are errors, reported with file, line and
//! column, so a typo never silently falls back to a default.
//!
//! Environment overrides name a setting by its path in upper case, sections joined by a double
//! underscore: `SIGHTLINE_SERVER__LISTEN=0.0.0.0:9750`, `SIGHTLINE_METRICS__CARDINALITY_LIMIT=5000`.
//! Values are read as YAML scalars; a comma-separated value fills a list. `SIGHTLINE_API_TOKENS` (one
//! underscore, as documented for operators) is accepted as an alias of `SIGHTLINE_API__TOKENS`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use serde_yaml_ng::Value;

/// The prefix of every environment variable the server reads.
pub const ENV_PREFIX: &str = "SIGHTLINE_";

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where to listen and keep data.
    pub server: ServerConfig,
    /// API access.
    pub api: ApiConfig,
    /// The metric registry.
    pub metrics: MetricsConfig,
    /// The server's own logs.
    pub log: LogConfig,
    /// Host, process and runtime metrics.
    pub collectors: CollectorsConfig,
    /// Health checks.
    pub health: HealthConfig,
    /// The server's own spans: the span store, span metrics and OTLP export.
    pub traces: TracesConfig,
    /// Where the server keeps audit events.
    pub storage: StorageConfig,
    /// The audit trail: limits, retention, redaction.
    pub audit: AuditConfig,
    /// The time-series store, the PromQL engine and the server's own metrics history.
    pub tsdb: TsdbConfig,
    /// Prometheus-style scrape jobs, with Prometheus's own keys, so a block from a `prometheus.yml`
    /// pastes in. Not settable from the environment (see [`Config::with_env`]).
    #[serde(skip_serializing)]
    pub scrape_configs: Vec<sightline_tsdb::scrape::ScrapeConfig>,
    /// Rules, and notification routing in Alertmanager's own syntax.
    pub alerting: AlertingConfig,
    /// The file this configuration was loaded from, for reloads.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Config {
    /// The scrape defaults (Prometheus's `global` block) from `tsdb:`.
    pub fn scrape_global(&self) -> sightline_tsdb::scrape::GlobalConfig {
        sightline_tsdb::scrape::GlobalConfig {
            scrape_interval: sightline_tsdb::scrape::PromDuration(self.tsdb.scrape_interval.0),
            scrape_timeout: sightline_tsdb::scrape::PromDuration(self.tsdb.scrape_timeout.0),
            ..Default::default()
        }
    }
}

/// `server:` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The address of the HTTP listener.
    pub listen: SocketAddr,
    /// Where the server keeps its data (audit log, time series, alert state).
    pub data_dir: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([127, 0, 0, 1], 9750)), data_dir: PathBuf::from("./sightline-data") }
    }
}

/// `api:` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer tokens accepted by write endpoints. With none, write endpoints refuse every request.
    #[serde(deserialize_with = "tokens")]
    pub tokens: Vec<String>,
}

/// `metrics:` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// How many label sets one metric name may hold before further ones fold into an overflow series.
    #[serde(deserialize_with = "positive")]
    pub cardinality_limit: usize,
    /// Buckets for histograms without buckets of their own.
    #[serde(deserialize_with = "buckets")]
    pub default_buckets: Vec<f64>,
    /// Buckets for chosen histograms: `{name|prefix|suffix: ..., buckets: [...]}`.
    pub buckets: Vec<BucketRule>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            cardinality_limit: sightline_core::DEFAULT_CARDINALITY_LIMIT,
            default_buckets: sightline_core::DEFAULT_BUCKETS.to_vec(),
            buckets: Vec::new(),
        }
    }
}

/// Buckets for the histograms one matcher chooses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketRule {
    /// Exactly this metric name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Metric names starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Metric names ending with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// Upper bounds, strictly increasing.
    #[serde(deserialize_with = "buckets")]
    pub buckets: Vec<f64>,
}

impl BucketRule {
    /// The matcher, when exactly one of `name`, `prefix` and `suffix` is set.
    pub fn matcher(&self) -> Option<sightline_core::Matcher> {
        use sightline_core::Matcher;
        match (&self.name, &self.prefix, &self.suffix) {
            (Some(n), None, None) => Some(Matcher::Full(n.clone())),
            (None, Some(p), None) => Some(Matcher::Prefix(p.clone())),
            (None, None, Some(s)) => Some(Matcher::Suffix(s.clone())),
            _ => None,
        }
    }
}

/// `health:` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Whether to add the built-in checks: the data directory is writable (`data-dir-writable`) and
    /// has space (`data-dir-disk`), and the audit store answers (`audit-storage`).
    pub builtin_checks: bool,
    /// The checks.
    pub checks: Vec<CheckConfig>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self { builtin_checks: true, checks: Vec::new() }
    }
}

/// The kinds of health check the configuration can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// A TCP connect to `address`.
    Tcp,
    /// An HTTP(S) request to `url`.
    Http,
    /// A query against the PostgreSQL at `url`.
    Postgres,
    /// A PING to the Redis at `address` or `url`.
    Redis,
    /// `path` is a writable directory.
    Filesystem,
    /// Free space where `path` lives.
    Disk,
    /// Host memory use (`warn_ratio`/`fail_ratio`) or the server's own (`warn_bytes`/`fail_bytes`).
    Memory,
    /// Host CPU use.
    Cpu,
    /// `command` exits 0.
    Command,
    /// A push heartbeat: POST `/api/v1/health/heartbeat/{name}` at least every `window`.
    Heartbeat,
}

impl CheckType {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckType::Tcp => "tcp",
            CheckType::Http => "http",
            CheckType::Postgres => "postgres",
            CheckType::Redis => "redis",
            CheckType::Filesystem => "filesystem",
            CheckType::Disk => "disk",
            CheckType::Memory => "memory",
            CheckType::Cpu => "cpu",
            CheckType::Command => "command",
            CheckType::Heartbeat => "heartbeat",
        }
    }
}

/// One entry of `health.checks`. Which keys apply depends on `type`; a key that the type does not use,
/// or a missing one it needs, is an error reported at the entry's line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawCheck", into = "RawCheck")]
pub struct CheckConfig {
    /// A unique name: letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// What kind of check.
    pub kind: CheckType,
    /// How often it runs. Default 30s.
    pub interval: PromDuration,
    /// How long one probe may take. Default 5s.
    pub timeout: PromDuration,
    /// Whether it counts for readiness. Default true.
    pub critical: bool,
    /// Failed probes in a row before Unhealthy. Default 3.
    pub failure_threshold: u32,
    /// Passing probes in a row before Healthy again. Default 1.
    pub success_threshold: u32,
    /// Checks this one depends on.
    pub depends_on: Vec<String>,
    /// Groups, served at `/health/{group}`.
    pub groups: Vec<String>,
    /// The type's own parameters.
    pub params: CheckParams,
}

/// The per-type keys of a check entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckParams {
    /// `host:port` (tcp, redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// A URL (http, postgres, redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Accepted HTTP status codes (http; default 200-399).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<Vec<u16>>,
    /// A substring the body must contain (http).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// A JSON pointer into the body (http), compared with `equals`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_pointer: Option<String>,
    /// The value at `json_pointer` (http).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
    /// Slower answers are Degraded (http).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_time: Option<PromDuration>,
    /// Days before a TLS certificate's expiry at which the check is Degraded (http; default 14).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_warn_days: Option<u32>,
    /// Accept a certificate that does not verify, still checking its expiry (http; default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_invalid_certs: Option<bool>,
    /// A query (postgres; default `SELECT 1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// A directory (filesystem, disk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Used ratio at which the check is Degraded (disk, memory, cpu).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warn_ratio: Option<f64>,
    /// Used ratio at which the check is Unhealthy (disk, memory, cpu).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_ratio: Option<f64>,
    /// The server's resident memory at which the check is Degraded (memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warn_bytes: Option<u64>,
    /// The server's resident memory at which the check is Unhealthy (memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_bytes: Option<u64>,
    /// The program and its arguments (command).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The longest gap between beats (heartbeat; default 5m).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<PromDuration>,
}

/// The YAML form of a check entry: every key flat, validated into a [`CheckConfig`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: String,
    #[serde(rename = "type")]
    kind: CheckType,
    #[serde(default = "default_check_interval")]
    interval: PromDuration,
    #[serde(default = "default_check_timeout")]
    timeout: PromDuration,
    #[serde(default = "default_true")]
    critical: bool,
    #[serde(default = "default_failure_threshold")]
    failure_threshold: u32,
    #[serde(default = "default_success_threshold")]
    success_threshold: u32,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(flatten)]
    params: CheckParams,
}

fn default_check_interval() -> PromDuration {
    PromDuration(std::time::Duration::from_secs(30))
}

fn default_check_timeout() -> PromDuration {
    PromDuration(std::time::Duration::from_secs(5))
}

fn default_true() -> bool {
    true
}

fn default_failure_threshold() -> u32 {
    3
}

fn default_success_threshold() -> u32 {
    1
}

impl TryFrom<RawCheck> for CheckConfig {
    type Error = String;

    fn try_from(raw: RawCheck) -> Result<Self, String> {
        let name = &raw.name;
        if raw.failure_threshold == 0 || raw.success_threshold == 0 {
            return Err(format!(
                "check {name:?}: failure_threshold and success_threshold must be at least 1"
            ));
        }
        if raw.interval.0.is_zero() || raw.timeout.0.is_zero() {
            return Err(format!("check {name:?}: interval and timeout must be more than 0"));
        }
        let p = &raw.params;
        let given: Vec<(&str, bool)> = vec![
            ("address", p.address.is_some()),
            ("url", p.url.is_some()),
            ("expect_status", p.expect_status.is_some()),
            ("body_contains", p.body_contains.is_some()),
            ("json_pointer", p.json_pointer.is_some()),
            ("equals", p.equals.is_some()),
            ("max_response_time", p.max_response_time.is_some()),
            ("cert_warn_days", p.cert_warn_days.is_some()),
            ("accept_invalid_certs", p.accept_invalid_certs.is_some()),
            ("query", p.query.is_some()),
            ("path", p.path.is_some()),
            ("warn_ratio", p.warn_ratio.is_some()),
            ("fail_ratio", p.fail_ratio.is_some()),
            ("warn_bytes", p.warn_bytes.is_some()),
            ("fail_bytes", p.fail_bytes.is_some()),
            ("command", p.command.is_some()),
            ("window", p.window.is_some()),
        ];
        let (allowed, required): (&[&str], &[&[&str]]) = match raw.kind {
            CheckType::Tcp => (&["address"], &[&["address"]]),
            CheckType::Http => (
                &[
                    "url",
                    "expect_status",
                    "body_contains",
                    "json_pointer",
                    "equals",
                    "max_response_time",
                    "cert_warn_days",
                    "accept_invalid_certs",
                ],
                &[&["url"]],
            ),
            CheckType::Postgres => (&["url", "query"], &[&["url"]]),
            CheckType::Redis => (&["address", "url"], &[&["address", "url"]]),
            CheckType::Filesystem => (&["path"], &[&["path"]]),
            CheckType::Disk => (&["path", "warn_ratio", "fail_ratio"], &[&["path"]]),
            CheckType::Memory => (&["warn_ratio", "fail_ratio", "warn_bytes", "fail_bytes"], &[]),
            CheckType::Cpu => (&["warn_ratio", "fail_ratio"], &[]),
            CheckType::Command => (&["command"], &[&["command"]]),
            CheckType::Heartbeat => (&["window"], &[]),
        };
        let kind = raw.kind.as_str();
        if let Some((key, _)) = given.iter().find(|(key, set)| *set && !allowed.contains(key)) {
            return Err(format!(
                "check {name:?}: `{key}` does not apply to type {kind}; it takes: {}",
                allowed.join(", ")
            ));
        }
        for alternatives in required {
            if !given.iter().any(|(key, set)| *set && alternatives.contains(key)) {
                return Err(format!("check {name:?}: type {kind} needs `{}`", alternatives.join("` or `")));
            }
        }
        if p.json_pointer.is_some() != p.equals.is_some() {
            return Err(format!("check {name:?}: `json_pointer` and `equals` go together"));
        }
        if p.command.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!("check {name:?}: `command` needs at least the program"));
        }
        if (p.warn_bytes.is_some() || p.fail_bytes.is_some())
            && (p.warn_ratio.is_some() || p.fail_ratio.is_some())
        {
            return Err(format!(
                "check {name:?}: give ratios (host memory) or bytes (the server's memory), not both"
            ));
        }
        let config = CheckConfig {
            name: raw.name,
            kind: raw.kind,
            interval: raw.interval,
            timeout: raw.timeout,
            critical: raw.critical,
            failure_threshold: raw.failure_threshold,
            success_threshold: raw.success_threshold,
            depends_on: raw.depends_on,
            groups: raw.groups,
            params: raw.params,
        };
        // Build the check once, so that a bad URL, address or threshold is reported with its line.
        crate::health::instantiate(&config, &sightline_core::Registry::new())?;
        Ok(config)
    }
}

impl From<CheckConfig> for RawCheck {
    fn from(check: CheckConfig) -> Self {
        RawCheck {
            name: check.name,
            kind: check.kind,
            interval: check.interval,
            timeout: check.timeout,
            critical: check.critical,
            failure_threshold: check.failure_threshold,
            success_threshold: check.success_threshold,
            depends_on: check.depends_on,
            groups: check.groups,
            params: check.params,
        }
    }
}

/// `collectors:` settings: which collectors run, and how often.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorsConfig {
    /// The machine: node_exporter's `node_*` metrics and `sightline_host_*` ratios.
    pub host: HostCollectorConfig,
    /// The server's own process: `process_*`.
    pub process: CollectorToggle,
    /// The server's tokio runtime: `sightline_tokio_*`.
    pub runtime: CollectorToggle,
}

/// `collectors.host:` settings. The patterns are regular expressions with node_exporter's meaning and
/// defaults; an empty pattern matches nothing (so an empty `*_include` keeps everything).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostCollectorConfig {
    /// Whether the collector runs.
    pub enabled: bool,
    /// How often it collects.
    pub interval: PromDuration,
    /// Mount points to report (`--collector.filesystem.mount-points-include`).
    #[serde(deserialize_with = "pattern")]
    pub mount_points_include: String,
    /// Mount points to leave out (`--collector.filesystem.mount-points-exclude`).
    #[serde(deserialize_with = "pattern")]
    pub mount_points_exclude: String,
    /// Filesystem types to report.
    #[serde(deserialize_with = "pattern")]
    pub fs_types_include: String,
    /// Filesystem types to leave out (`--collector.filesystem.fs-types-exclude`).
    #[serde(deserialize_with = "pattern")]
    pub fs_types_exclude: String,
    /// Disk devices to report (`--collector.diskstats.device-include`).
    #[serde(deserialize_with = "pattern")]
    pub disk_devices_include: String,
    /// Disk devices to leave out (`--collector.diskstats.device-exclude`).
    #[serde(deserialize_with = "pattern")]
    pub disk_devices_exclude: String,
    /// Network devices to report (`--collector.netdev.device-include`).
    #[serde(deserialize_with = "pattern")]
    pub network_devices_include: String,
    /// Network devices to leave out (`--collector.netdev.device-exclude`).
    #[serde(deserialize_with = "pattern")]
    pub network_devices_exclude: String,
    /// How long one filesystem's statfs may take before it counts as stuck.
    pub mount_timeout: PromDuration,
}

impl Default for HostCollectorConfig {
    fn default() -> Self {
        use sightline_collectors::host;
        Self {
            enabled: true,
            interval: PromDuration(std::time::Duration::from_secs(15)),
            mount_points_include: String::new(),
            mount_points_exclude: host::DEFAULT_MOUNT_POINTS_EXCLUDE.to_owned(),
            fs_types_include: String::new(),
            fs_types_exclude: host::DEFAULT_FS_TYPES_EXCLUDE.to_owned(),
            disk_devices_include: String::new(),
            disk_devices_exclude: host::DEFAULT_DISK_DEVICES_EXCLUDE.to_owned(),
            network_devices_include: String::new(),
            network_devices_exclude: String::new(),
            mount_timeout: PromDuration(host::DEFAULT_MOUNT_TIMEOUT),
        }
    }
}

impl HostCollectorConfig {
    /// The collector's configuration. The patterns were checked when the file was read.
    pub fn to_host_config(
        &self,
    ) -> Result<sightline_collectors::HostConfig, sightline_collectors::HostConfigError> {
        let opt = |p: &str| (!p.is_empty()).then(|| p.to_owned());
        Ok(sightline_collectors::HostConfig::new()
            .with_mount_points(
                opt(&self.mount_points_include).as_deref(),
                opt(&self.mount_points_exclude).as_deref(),
            )?
            .with_fs_types(opt(&self.fs_types_include).as_deref(), opt(&self.fs_types_exclude).as_deref())?
            .with_disk_devices(
                opt(&self.disk_devices_include).as_deref(),
                opt(&self.disk_devices_exclude).as_deref(),
            )?
            .with_network_devices(
                opt(&self.network_devices_include).as_deref(),
                opt(&self.network_devices_exclude).as_deref(),
            )?
            .with_mount_timeout(self.mount_timeout.0))
    }
}

/// A regular expression setting, checked when the file is read so that an error carries its line.
fn pattern<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if !text.is_empty() {
        // Any of the host filters compiles patterns the same way; the error names the reason.
        sightline_collectors::HostConfig::new().with_network_devices(Some(&text), None).map_err(|e| {
            serde::de::Error::custom(format!("invalid regular expression {text:?}: {}", e.reason()))
        })?;
    }
    Ok(text)
}

/// On or off, and the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorToggle {
    /// Whether the collector runs.
    pub enabled: bool,
    /// How often it collects.
    pub interval: PromDuration,
}

impl Default for CollectorToggle {
    fn default() -> Self {
        Self { enabled: true, interval: PromDuration(std::time::Duration::from_secs(15)) }
    }
}

/// A duration written as Prometheus writes them: `500ms`, `15s`, `1m`, `1h30m`, `2d`, `1w`, `1y`, `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PromDuration(pub std::time::Duration);

impl PromDuration {
    /// Parses Prometheus's duration syntax: units `y` (365 d), `w`, `d`, `h`, `m`, `s`, `ms`, largest
    /// first, each at most once.
    pub fn parse(text: &str) -> Result<Self, String> {
        sightline_core::duration::parse_prometheus(text).map(Self).map_err(|e| e.to_string())
    }
}

/// Prometheus's canonical form (`1h30m`, `90d`, `1w`, `0s`).
impl std::fmt::Display for PromDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&promql_parser::util::display_duration(&self.0))
    }
}

impl Serialize for PromDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PromDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `log:` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A filter in `RUST_LOG` syntax, such as `info` or `info,sightline_server=debug`. `SIGHTLINE_LOG`
    /// overrides it.
    #[serde(deserialize_with = "log_filter")]
    pub level: String,
    /// `json` (one object per line) or `text` (for terminals).
    pub format: LogFormat,
    /// `stdout`, `stderr` or `file`.
    pub output: LogOutputKind,
    /// Rotating files, when `output` is `file`.
    pub file: LogFileConfig,
    /// One line per HTTP request (method, route, status, duration, bytes, trace id).
    pub access_log: bool,
    /// What is masked before a line is written or a span exported.
    pub redaction: RedactionConfig,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Json,
            output: LogOutputKind::Stdout,
            file: LogFileConfig::default(),
            access_log: true,
            redaction: RedactionConfig::default(),
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogOutputKind {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Rotating files (`log.file`).
    File,
}

/// `log.file:` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogFileConfig {
    /// The directory; relative paths are under the data directory.
    pub directory: PathBuf,
    /// File names start with this, followed by the date: `sightline.log.2026-11-30`.
    pub prefix: String,
    /// `minutely`, `hourly`, `daily` or `never`.
    pub rotation: LogRotation,
    /// Files kept; older ones are deleted. 0 keeps all.
    pub max_files: usize,
}

impl Default for LogFileConfig {
    fn default() -> Self {
        Self {
            directory: PathBuf::from("logs"),
            prefix: "sightline.log".into(),
            rotation: LogRotation::Daily,
            max_files: 7,
        }
    }
}

/// When log files rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogRotation {
    /// Every minute.
    Minutely,
    /// Every hour.
    Hourly,
    /// Every day (UTC).
    Daily,
    /// One file.
    Never,
}

/// `log.redaction:` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactionConfig {
    /// Whether to redact at all. The built-in rules mask emails, phone numbers, card numbers
    /// (Luhn-checked), JWTs, bearer credentials and cloud access keys, and the values of fields named like
    /// secrets (`password`, `token`, `api_key`, `authorization`, `cookie`, ...).
    pub enabled: bool,
    /// Extra patterns: `{name, regex}`; matches become `[REDACTED:<name>]`.
    #[serde(deserialize_with = "redaction_patterns")]
    pub patterns: Vec<RedactionPattern>,
    /// Extra field names whose values are always masked.
    pub deny_fields: Vec<String>,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self { enabled: true, patterns: Vec::new(), deny_fields: Vec::new() }
    }
}

/// An extra redaction pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionPattern {
    /// A short name, shown in the mask.
    pub name: String,
    /// A regular expression (Rust `regex` syntax).
    pub regex: String,
}

impl RedactionConfig {
    /// The redactor these settings describe.
    pub fn redactor(&self) -> Result<sightline_core::redact::Redactor, sightline_core::redact::RedactError> {
        use sightline_core::redact::Redactor;
        if !self.enabled {
            return Ok(Redactor::disabled());
        }
        let mut builder = Redactor::builder();
        for pattern in &self.patterns {
            builder = builder.with_pattern(&pattern.name, &pattern.regex)?;
        }
        for field in &self.deny_fields {
            builder = builder.with_denied_field(field);
        }
        Ok(builder.build())
    }
}

/// Redaction patterns, compiled when the file is read so that a bad one is reported at its line.
fn redaction_patterns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RedactionPattern>, D::Error> {
    let patterns = Vec::<RedactionPattern>::deserialize(d)?;
    for pattern in &patterns {
        let _ = sightline_core::redact::Redactor::builder()
            .with_pattern(&pattern.name, &pattern.regex)
            .map_err(serde::de::Error::custom)?;
    }
    Ok(patterns)
}

/// A `RUST_LOG`-syntax filter, checked when the file is read.
fn log_filter<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    let _ = sightline_trace::builder().with_log_filter(&text).map_err(serde::de::Error::custom)?;
    Ok(text)
}

/// `traces:` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// Which spans are kept and exported, in `RUST_LOG` syntax.
    #[serde(deserialize_with = "log_filter")]
    pub filter: String,
    /// Finished spans kept in memory for `/api/v1/traces` (0 turns the store off).
    pub store_capacity: usize,
    /// `service.name`; otherwise `OTEL_SERVICE_NAME`, then `sightline`.
    pub service_name: Option<String>,
    /// Extra resource attributes (`deployment.environment: prod`), added to `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource: std::collections::BTreeMap<String, String>,
    /// Parent-based sampling ratio for new traces (0.0 to 1.0); otherwise `OTEL_TRACES_SAMPLER(_ARG)`.
    #[serde(deserialize_with = "ratio")]
    pub sampling_ratio: Option<f64>,
    /// Spans that get `sightline_span_duration_seconds{span}` and `sightline_spans_total{span,status}`.
    pub span_metrics: SpanMetricsSettings,
    /// OTLP export; on when an endpoint is set here or in `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp: OtlpSettings,
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            store_capacity: sightline_trace::DEFAULT_STORE_CAPACITY,
            service_name: None,
            resource: std::collections::BTreeMap::new(),
            sampling_ratio: None,
            span_metrics: SpanMetricsSettings::default(),
            otlp: OtlpSettings::default(),
        }
    }
}

/// `traces.span_metrics:` settings.
/// None by default: HTTP requests already have `sightline_http_request_duration_seconds`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpanMetricsSettings {
    /// Exact span names.
    pub names: Vec<String>,
    /// Regular expressions over span names.
    #[serde(deserialize_with = "span_patterns")]
    pub patterns: Vec<String>,
}

fn span_patterns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let patterns = Vec::<String>::deserialize(d)?;
    for pattern in &patterns {
        sightline_trace::SpanMetricsConfig::new()
            .with_pattern(pattern.clone())
            .map_err(serde::de::Error::custom)?;
    }
    Ok(patterns)
}

fn ratio<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let value = Option::<f64>::deserialize(d)?;
    match value {
        Some(r) if !(0.0..=1.0).contains(&r) => {
            Err(serde::de::Error::custom(format!("sampling_ratio {r} is out of range: use 0.0 to 1.0")))
        }
        other => Ok(other),
    }
}

/// `traces.otlp:` settings. Unset ones fall back to the standard `OTEL_EXPORTER_OTLP_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpSettings {
    /// The collector's base URL, e.g. `http://127.0.0.1:4318` (HTTP) or `http://127.0.0.1:4317` (gRPC).
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`.
    #[serde(deserialize_with = "protocol")]
    pub protocol: Option<String>,
    /// Extra request headers, e.g. an API key.
    pub headers: std::collections::BTreeMap<String, String>,
    /// How long one export may take.
    pub timeout: Option<PromDuration>,
}

fn protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    if let Some(text) = &value {
        sightline_trace::Protocol::parse(text).map_err(serde::de::Error::custom)?;
    }
    Ok(value)
}

/// `storage:` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; unset means `sqlite://<data_dir>/audit.db`.
    #[serde(deserialize_with = "storage_url")]
    pub url: Option<String>,
}

impl StorageConfig {
    /// The URL in effect.
    pub fn url_in(&self, data_dir: &Path) -> String {
        self.url.clone().unwrap_or_else(|| format!("sqlite://{}", data_dir.join("audit.db").display()))
    }
}

fn storage_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    if let Some(url) = &value {
        let known = ["sqlite:", "postgres://", "postgresql://"];
        if !known.iter().any(|k| url.starts_with(k)) {
            return Err(serde::de::Error::custom(format!(
                "unsupported storage URL {url:?}: use sqlite://PATH or postgres://USER@HOST/DB"
            )));
        }
    }
    Ok(value)
}

/// `audit:` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Delete events older than this (unset: keep).
    pub max_age: Option<PromDuration>,
    /// Keep at most this many events (unset: no limit).
    pub max_events: Option<u64>,
    /// How often retention runs.
    pub retention_interval: PromDuration,
    /// Whether reading the trail (search, export, verify) needs an API token too.
    pub protect_reads: bool,
    /// Largest `POST /api/v1/audit/events` body, in bytes.
    #[serde(deserialize_with = "positive_u64")]
    pub max_request_bytes: u64,
    /// Most events in one `POST /api/v1/audit/events`.
    #[serde(deserialize_with = "positive")]
    pub max_request_events: usize,
    /// How long a durable write may wait before the API answers 503.
    pub commit_timeout: PromDuration,
    /// Which fields are redacted on ingest (with `log.redaction`'s rules).
    pub redact: AuditRedactFields,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            max_age: None,
            max_events: None,
            retention_interval: PromDuration(std::time::Duration::from_secs(60)),
            protect_reads: false,
            max_request_bytes: 10 * 1024 * 1024,
            max_request_events: 10_000,
            commit_timeout: PromDuration(std::time::Duration::from_secs(10)),
            redact: AuditRedactFields::default(),
        }
    }
}

/// `audit.redact:` the fields redacted on ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditRedactFields {
    /// `message`.
    pub message: bool,
    /// String values in `attributes`, and values under secret-like keys.
    pub attributes: bool,
    /// `actor.user_agent`.
    pub user_agent: bool,
    /// `target.id`.
    pub target_id: bool,
}

impl Default for AuditRedactFields {
    fn default() -> Self {
        Self { message: true, attributes: true, user_agent: false, target_id: false }
    }
}

fn positive_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(d)?;
    if value == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(value)
}

/// `tsdb:` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TsdbConfig {
    /// Whether the server keeps time series and serves the query API.
    pub enabled: bool,
    /// How often the server's own registry is written into the store (job `sightline`).
    pub self_scrape_interval: PromDuration,
    /// How long each tier keeps data.
    pub retention: RetentionConfig,
    /// How far back an instant selector looks for a sample.
    pub lookback_delta: PromDuration,
    /// A query running longer fails with `timeout`.
    pub query_timeout: PromDuration,
    /// The most samples one query may hold in memory.
    #[serde(deserialize_with = "positive")]
    pub query_max_samples: usize,
    /// How often `scrape_configs` jobs are scraped unless they say otherwise (Prometheus's
    /// `global.scrape_interval`).
    pub scrape_interval: PromDuration,
    /// How long a scrape may take unless its job says otherwise (`global.scrape_timeout`).
    pub scrape_timeout: PromDuration,
}

impl Default for TsdbConfig {
    fn default() -> Self {
        let secs = |s| PromDuration(std::time::Duration::from_secs(s));
        Self {
            enabled: true,
            self_scrape_interval: secs(15),
            retention: RetentionConfig::default(),
            lookback_delta: secs(300),
            query_timeout: secs(120),
            query_max_samples: 50_000_000,
            scrape_interval: secs(15),
            scrape_timeout: secs(10),
        }
    }
}

/// `alerting:` rule files and their evaluation, external Alertmanagers, and the in-process notification
/// pipeline, whose keys (`global`, `route`, `receivers`, `inhibit_rules`, `time_intervals`) are
/// Alertmanager's own, so the routing part of an `alertmanager.yml` pastes in; `escalations`,
/// `acknowledgement` and `silencing` are Sightline's additions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingConfig {
    /// Rule files in Prometheus's format; globs, relative to the working directory.
    pub rule_files: Vec<String>,
    /// How often rule groups are evaluated unless a group says otherwise.
    pub evaluation_interval: PromDuration,
    /// The server's URL as people reach it, for links in notifications (default: the listen address).
    pub external_url: Option<String>,
    /// Labels added to every alert sent out.
    pub external_labels: std::collections::BTreeMap<String, String>,
    /// External Alertmanagers that get every alert (`POST /api/v2/alerts`), as Prometheus sends them.
    pub alertmanagers: Vec<AlertmanagerTarget>,
    pub global: sightline_alert::pipeline::config::GlobalConfig,
    pub route: Option<sightline_alert::pipeline::config::Route>,
    pub receivers: Vec<sightline_alert::pipeline::config::Receiver>,
    pub inhibit_rules: Vec<sightline_alert::pipeline::config::InhibitRule>,
    pub time_intervals: Vec<sightline_alert::pipeline::timeinterval::NamedTimeInterval>,
    pub mute_time_intervals: Vec<sightline_alert::pipeline::timeinterval::NamedTimeInterval>,
    pub escalations: Vec<sightline_alert::pipeline::config::Escalation>,
    pub acknowledgement: sightline_alert::pipeline::config::Acknowledgement,
    pub silencing: sightline_alert::pipeline::config::Silencing,
    /// Notification template files (globs, relative to the working directory), as Alertmanager's
    /// `templates:`; receivers' fields can call the templates they define.
    pub templates: Vec<String>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            rule_files: Vec::new(),
            evaluation_interval: PromDuration(std::time::Duration::from_secs(60)),
            external_url: None,
            external_labels: Default::default(),
            alertmanagers: Vec::new(),
            global: Default::default(),
            route: None,
            receivers: Vec::new(),
            inhibit_rules: Vec::new(),
            time_intervals: Vec::new(),
            mute_time_intervals: Vec::new(),
            escalations: Vec::new(),
            acknowledgement: Default::default(),
            silencing: Default::default(),
            templates: Vec::new(),
        }
    }
}

impl AlertingConfig {
    /// The notification pipeline's configuration, when a `route` is set.
    pub fn routing(&self) -> Option<sightline_alert::pipeline::Config> {
        self.route.as_ref()?;
        Some(sightline_alert::pipeline::Config {
            global: self.global.clone(),
            route: self.route.clone(),
            receivers: self.receivers.clone(),
            inhibit_rules: self.inhibit_rules.clone(),
            time_intervals: self.time_intervals.clone(),
            mute_time_intervals: self.mute_time_intervals.clone(),
            templates: self.templates.clone(),
            escalations: self.escalations.clone(),
            acknowledgement: self.acknowledgement.clone(),
            silencing: self.silencing.clone(),
        })
    }

    /// The rule files the globs name, sorted; a glob that matches nothing is an error (a typo would
    /// otherwise silently load no rules).
    pub fn rule_paths(&self) -> Result<Vec<PathBuf>, String> {
        let mut paths = Vec::new();
        for pattern in &self.rule_files {
            let matches: Vec<PathBuf> = glob::glob(pattern)
                .map_err(|e| format!("alerting.rule_files: {pattern:?} is not a valid glob: {e}"))?
                .filter_map(Result::ok)
                .collect();
            if matches.is_empty() {
                return Err(format!("alerting.rule_files: {pattern:?} matches no file"));
            }
            paths.extend(matches);
        }
        paths.sort();
        paths.dedup();
        Ok(paths)
    }
}

/// An external Alertmanager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerTarget {
    /// Its base URL, e.g. `http://127.0.0.1:9093`.
    pub url: String,
}

/// `tsdb.retention:` how long raw samples and downsampled aggregates are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Raw samples.
    pub raw: PromDuration,
    /// One-hour aggregates (min, max, sum, count, last, counter).
    pub hourly: PromDuration,
    /// One-day aggregates.
    pub daily: PromDuration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        let hours = |h: u64| PromDuration(std::time::Duration::from_secs(h * 3600));
        Self { raw: hours(24), hourly: hours(7 * 24), daily: hours(30 * 24) }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the configuration file: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid YAML or does not match the schema.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid { path: PathBuf, line: usize, column: usize, message: String },
    /// The file is invalid, and the parser could not tell where.
    #[error("{}: {message}", path.display())]
    InvalidNoLocation { path: PathBuf, message: String },
    /// A `SIGHTLINE_*` variable names an unknown setting or holds a bad value.
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

impl Config {
    /// Loads `path` (if given), then applies the `SIGHTLINE_*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                Config::parse(&text, path)?
            }
            None => Config::default(),
        };
        let mut config = config.with_env(env)?;
        config.source = path.map(Path::to_owned);
        // Overrides went through serde, which does not carry the loaded templates.
        config.load_alerting_templates().map_err(|message| ConfigError::InvalidNoLocation {
            path: path.map(Path::to_owned).unwrap_or_default(),
            message,
        })?;
        Ok(config)
    }

    /// Reads the notification templates of `alerting.templates` into `alerting.global.templates`, which
    /// the receivers built from the global block render with (validation has read and checked them).
    fn load_alerting_templates(&mut self) -> Result<(), String> {
        self.alerting.global.templates = sightline_alert::notify::Templates::load(&self.alerting.templates)
            .map_err(|e| format!("alerting: templates: {e}"))?;
        Ok(())
    }

    /// Parses YAML text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        // An empty file (or one of only comments) means "all defaults", which serde_yaml treats as an error.
        let blank = text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        if blank {
            return Ok(Config::default());
        }
        let config: Config = serde_yaml_ng::from_str(text).map_err(|e| yaml_error(path, text, &e))?;
        config.validate().map_err(|message| {
            match locate_scrape_error(text, &message)
                .or_else(|| locate_alerting_error(text, &message))
                .or_else(|| locate_value(text, &message, 1))
            {
                Some((line, column)) => ConfigError::Invalid { path: path.to_owned(), line, column, message },
                None => ConfigError::InvalidNoLocation { path: path.to_owned(), message },
            }
        })?;
        let mut config = config;
        config
            .load_alerting_templates()
            .map_err(|message| ConfigError::InvalidNoLocation { path: path.to_owned(), message })?;
        Ok(config)
    }

    /// Applies `SIGHTLINE_<SECTION>__<KEY>` overrides.
    pub fn with_env(self, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut overrides: Vec<(String, Vec<String>, String)> = env
            .into_iter()
            .filter_map(|(var, value)| {
                let rest = var.strip_prefix(ENV_PREFIX)?;
                let path = if rest == "API_TOKENS" { "API__TOKENS" } else { rest };
                path.contains("__").then(|| {
                    let segments = path.split("__").map(str::to_ascii_lowercase).collect();
                    (var.clone(), segments, value)
                })
            })
            .collect();
        if overrides.is_empty() {
            return Ok(self);
        }
        overrides.sort();
        let env_err = |var: &str, message: String| ConfigError::Env { var: var.to_owned(), message };
        let mut tree = serde_yaml_ng::to_value(&self).map_err(|e| env_err("(all)", e.to_string()))?;
        for (var, segments, value) in &overrides {
            set_path(&mut tree, segments, value).map_err(|message| env_err(var, message))?;
            // Deserialise after each variable so that an error names the variable that caused it.
            let config: Config = serde_yaml_ng::from_value(tree.clone())
                .map_err(|e| env_err(var, strip_location(&e.to_string())))?;
            config.validate().map_err(|message| env_err(var, message))?;
        }
        let mut config: Config =
            serde_yaml_ng::from_value(tree).map_err(|e| env_err("(all)", e.to_string()))?;
        // Scrape jobs are lists of structures, which variables cannot express; they are not serialised
        // into the tree above, so carry them over.
        config.scrape_configs = self.scrape_configs;
        config.source = self.source;
        config.validate().map_err(|message| env_err("(all)", message))?;
        Ok(config)
    }

    /// Checks what the types alone cannot.
    fn validate(&self) -> Result<(), String> {
        sightline_tsdb::scrape::validate_configs(&self.scrape_global(), &self.scrape_configs)
            .map_err(|e| format!("scrape_configs: {e}"))?;
        if let Some(mut routing) = self.alerting.routing() {
            routing.load_templates().map_err(|e| format!("alerting: {e}"))?;
            routing.validate().map_err(|e| format!("alerting: {e}"))?;
        } else if !self.alerting.receivers.is_empty() {
            return Err("alerting: receivers are set but no `route` sends alerts to them; add `route: {receiver: NAME}`".to_owned());
        }
        for target in &self.alerting.alertmanagers {
            if !(target.url.starts_with("http://") || target.url.starts_with("https://")) {
                return Err(format!(
                    "alerting.alertmanagers: url {:?} must start with http:// or https://",
                    target.url
                ));
            }
        }
        // Names, dependencies (unknown ones, cycles): build the registry once, probing nothing.
        crate::health::build(&self.health, &self.server.data_dir, &sightline_core::Registry::new(), None)?;
        for (i, rule) in self.metrics.buckets.iter().enumerate() {
            if rule.matcher().is_none() {
                return Err(format!(
                    "metrics.buckets[{i}]: give exactly one of `name`, `prefix` or `suffix` to choose histograms"
                ));
            }
        }
        Ok(())
    }
}

/// Sets `segments` in `tree` to `value`, refusing paths the schema does not have.
fn set_path(tree: &mut Value, segments: &[String], value: &str) -> Result<(), String> {
    let dotted = segments.join(".");
    let mut node = tree;
    for (i, segment) in segments.iter().enumerate() {
        let Value::Mapping(map) = node else {
            return Err(format!(
                "unknown setting `{dotted}`: `{}` has no sub-settings",
                segments[..i].join(".")
            ));
        };
        let key = Value::String(segment.clone());
        if !map.contains_key(&key) {
            let known: Vec<String> = map.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect();
            return Err(format!(
                "unknown setting `{dotted}`; `{segment}` is not one of: {}",
                known.join(", ")
            ));
        }
        node = map.get_mut(&key).ok_or_else(|| format!("unknown setting `{dotted}`"))?;
    }
    *node = match node {
        // A list setting takes YAML flow syntax (`[a, b]`) or comma-separated items.
        Value::Sequence(_) if !value.trim_start().starts_with('[') => {
            Value::Sequence(value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(scalar).collect())
        }
        Value::String(_) => Value::String(value.to_owned()),
        _ => serde_yaml_ng::from_str(value).map_err(|e| format!("`{value}` is not valid YAML: {e}"))?,
    };
    Ok(())
}

fn scalar(item: &str) -> Value {
    serde_yaml_ng::from_str(item).unwrap_or_else(|_| Value::String(item.to_owned()))
}

fn yaml_error(path: &Path, text: &str, err: &serde_yaml_ng::Error) -> ConfigError {
    let message = strip_location(&err.to_string());
    match err.location() {
        Some(loc) => {
            let (line, column) =
                locate_value(text, &message, loc.line()).unwrap_or((loc.line(), loc.column()));
            ConfigError::Invalid { path: path.to_owned(), line, column, message }
        }
        None => ConfigError::InvalidNoLocation { path: path.to_owned(), message },
    }
}

/// serde_yaml places errors raised by a field's own validation (a bad duration or regular expression) at
/// the start of the enclosing mapping rather than at the field. Those messages quote the bad value, so
/// the first line from there on that holds it is where the reader should look.
fn locate_value(text: &str, message: &str, from_line: usize) -> Option<(usize, usize)> {
    let start = message.find('"')? + 1;
    let end = start + message[start..].find('"')?;
    // The message quotes the value in Rust's debug form, which doubles backslashes.
    let value = message[start..end].replace("\\\\", "\\");
    if value.is_empty() {
        return None;
    }
    text.lines()
        .enumerate()
        .skip(from_line.saturating_sub(1))
        .find_map(|(i, line)| line.find(&value).map(|column| (i + 1, column + 1)))
}

/// A `scrape_configs` error names its job (`job "node": ...`) and then the setting or value at fault:
/// point at that setting within the job's entry, or at the job's name.
fn locate_scrape_error(text: &str, message: &str) -> Option<(usize, usize)> {
    let rest = message.strip_prefix("scrape_configs: job \"")?;
    let job = &rest[..rest.find('"')?];
    let detail = &rest[job.len() + 1..];
    let lines: Vec<&str> = text.lines().collect();
    let is_job_line =
        |line: &str| line.trim_start().trim_start_matches("- ").trim_start().starts_with("job_name:");
    let start = lines.iter().position(|line| {
        is_job_line(line)
            && line.split_once(':').is_some_and(|(_, v)| v.trim().trim_matches(['"', '\'']) == job)
    })?;
    let end = lines
        .iter()
        .skip(start + 1)
        .position(|line| is_job_line(line))
        .map_or(lines.len(), |i| start + 1 + i);
    // Quoted values first (a bad target), then setting names the message mentions (`scrape_timeout`).
    let quoted: Vec<&str> = detail.split('"').skip(1).step_by(2).filter(|v| !v.is_empty()).collect();
    let words: Vec<String> = detail
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.contains('_') || w.len() > 3)
        .map(|w| format!("{w}:"))
        .collect();
    for needle in quoted.iter().map(|q| q.to_string()).chain(words) {
        for (i, line) in lines.iter().enumerate().take(end).skip(start) {
            if let Some(column) = line.find(&needle) {
                return Some((i + 1, column + 1));
            }
        }
    }
    let column = lines[start].find("job_name").unwrap_or(0);
    Some((start + 1, column + 1))
}

/// An `alerting:` error names the setting's path in the pipeline's configuration
/// (`alerting: receivers[0].slack_configs[0].title: ...`): point at that setting.
fn locate_alerting_error(text: &str, message: &str) -> Option<(usize, usize)> {
    let rest = message.strip_prefix("alerting: ")?;
    let (path, _) = rest.split_once(": ")?;
    if path.contains(' ') {
        return None;
    }
    let line = sightline_alert::pipeline::config::locate(text, &format!("alerting.{path}"))?;
    let column = text.lines().nth(line - 1).map_or(1, |l| l.len() - l.trim_start().len() + 1);
    Some((line, column))
}

/// serde_yaml appends " at line L column C" to messages; the location is reported separately.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

fn buckets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let bounds = Vec::<f64>::deserialize(d)?;
    sightline_core::naming::validate_buckets("(config)", &bounds)
        .map_err(|e| serde::de::Error::custom(e.to_string().replace(" for histogram \"(config)\"", "")))
}

fn tokens<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let tokens = Vec::<String>::deserialize(d)?;
    if tokens.iter().any(|t| t.trim().is_empty() || t.chars().any(char::is_whitespace)) {
        return Err(serde::de::Error::custom("API tokens must be non-empty and contain no white space"));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod alerting_templates_tests {
    use super::*;

    /// `alerting.templates` files are read at load, receivers' fields can call their templates, and a
    /// field that does not parse is an error at the field's line.
    #[test]
    fn alerting_templates_load_and_bad_fields_point_at_their_line() {
        let dir = sightline_testkit::TempDir::new("config-alerting-templates");
        std::fs::write(dir.path().join("team.tmpl"), "{{ define \"team.title\" }}T {{ .Status }}{{ end }}")
            .expect("write the template file");
        let text = |title: &str| {
            format!(
                "alerting:\n  templates: ['{}/*.tmpl']\n  route: {{receiver: team}}\n  receivers:\n  - name: team\n    slack_configs:\n    - api_url: http://127.0.0.1:1/x\n      title: '{title}'\n",
                dir.path().display()
            )
        };
        let config =
            Config::parse(&text(r#"{{ template "team.title" . }}"#), Path::new("s.yml")).expect("valid");
        let data =
            sightline_alert::notify::template::data(&sightline_alert::notify::test_notification("team"));
        let rendered = config.alerting.global.templates.render_named("team.title", &data, false);
        assert_eq!(rendered.as_deref(), Ok("T firing"));

        let err = Config::parse(&text(r#"{{ template "team.titel" . }}"#), Path::new("s.yml"))
            .expect_err("undefined template");
        let ConfigError::Invalid { line, message, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*line, 8, "{err}");
        assert!(
            message.starts_with(
                "alerting: receivers[0].slack_configs[0].title: receiver \"team\": invalid template"
            ),
            "{err}"
        );
        assert!(message.contains("template \"team.titel\" not defined"), "{err}");
    }
}
