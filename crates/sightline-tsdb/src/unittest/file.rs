//! The YAML documents: test files (`promtool test rules` format) and the Prometheus rule files they
//! name. Unknown fields are errors, as promtool reads both strictly.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::notation::parse_duration;

/// A Prometheus duration in a YAML document, in milliseconds. Written as a string (`5m`); a bare `0`
/// is accepted as YAML reads it as a number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PromDuration(pub(crate) i64);

// === impl PromDuration ===

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Text(s) => s,
            Raw::Number(n) => n.to_string(),
        };
        parse_duration(&text).map(PromDuration).map_err(serde::de::Error::custom)
    }
}

/// A test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestFile {
    #[serde(default)]
    pub(crate) rule_files: Vec<String>,
    #[serde(default)]
    pub(crate) evaluation_interval: Option<PromDuration>,
    /// Prometheus 3.x: allow a one-ULP difference between expected and actual floats.
    #[serde(default)]
    pub(crate) fuzzy_compare: bool,
    #[serde(default)]
    pub(crate) group_eval_order: Vec<String>,
    #[serde(default)]
    pub(crate) tests: Vec<TestGroup>,
}

/// One test group: input series and the tests run over them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestGroup {
    #[serde(default)]
    pub(crate) interval: Option<PromDuration>,
    #[serde(default)]
    pub(crate) input_series: Vec<InputSeries>,
    #[serde(default)]
    pub(crate) alert_rule_test: Vec<AlertTestCase>,
    #[serde(default)]
    pub(crate) promql_expr_test: Vec<PromqlTestCase>,
    /// For alert templates (`$externalLabels`), passed to a [`super::RuleEvaluator`].
    #[serde(default)]
    pub(crate) external_labels: BTreeMap<String, String>,
    /// For alert templates (`$externalURL`), passed to a [`super::RuleEvaluator`].
    #[serde(default)]
    pub(crate) external_url: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Prometheus 3.x: the time that `0` stands for, as Unix seconds or RFC 3339.
    #[serde(default)]
    pub(crate) start_timestamp: Option<StartTimestamp>,
}

/// `start_timestamp`: Unix seconds or an RFC 3339 time.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum StartTimestamp {
    Seconds(i64),
    Text(String),
}

// === impl StartTimestamp ===

impl StartTimestamp {
    /// Milliseconds since the Unix epoch.
    pub(crate) fn millis(&self) -> Result<i64, String> {
        match self {
            StartTimestamp::Seconds(s) => {
                s.checked_mul(1000).ok_or_else(|| format!("start_timestamp {s} is out of range"))
            }
            StartTimestamp::Text(t) => {
                if let Ok(s) = t.trim().parse::<i64>() {
                    return StartTimestamp::Seconds(s).millis();
                }
                let time = humantime::parse_rfc3339_weak(t.trim()).map_err(|e| {
                    format!("start_timestamp {t:?} is neither Unix seconds nor an RFC 3339 time: {e}")
                })?;
                let since = time
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|_| format!("start_timestamp {t:?} is before 1970"))?;
                i64::try_from(since.as_millis()).map_err(|_| format!("start_timestamp {t:?} is out of range"))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputSeries {
    pub(crate) series: String,
    #[serde(default)]
    pub(crate) values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertTestCase {
    #[serde(default)]
    pub(crate) eval_time: PromDuration,
    #[serde(default)]
    pub(crate) alertname: String,
    #[serde(default)]
    pub(crate) exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpAlert {
    #[serde(default)]
    pub(crate) exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromqlTestCase {
    pub(crate) expr: String,
    #[serde(default)]
    pub(crate) eval_time: PromDuration,
    #[serde(default)]
    pub(crate) exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpSample {
    #[serde(default)]
    pub(crate) labels: String,
    #[serde(default)]
    pub(crate) value: f64,
    /// Prometheus 3.x native histogram expectations; read so that the error can say they are not
    /// supported.
    #[serde(default)]
    pub(crate) histogram: Option<String>,
}

/// A Prometheus rule file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleFile {
    #[serde(default)]
    pub(crate) groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleGroup {
    pub(crate) name: String,
    /// Ignored in tests: promtool evaluates every group at every `evaluation_interval`.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) interval: Option<PromDuration>,
    /// Prometheus 3.x: rules are evaluated this long before the evaluation time.
    #[serde(default)]
    pub(crate) query_offset: Option<PromDuration>,
    /// The most series a rule may return; more is an error (0 = no limit).
    #[serde(default)]
    pub(crate) limit: u64,
    /// Prometheus 3.x: labels added to every rule of the group (a rule's own labels win).
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) rules: Vec<RuleDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleDef {
    #[serde(default)]
    pub(crate) record: Option<String>,
    #[serde(default)]
    pub(crate) alert: Option<String>,
    #[serde(default)]
    pub(crate) expr: String,
    #[serde(default, rename = "for")]
    pub(crate) for_: Option<PromDuration>,
    #[serde(default)]
    pub(crate) keep_firing_for: Option<PromDuration>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) annotations: BTreeMap<String, String>,
}
