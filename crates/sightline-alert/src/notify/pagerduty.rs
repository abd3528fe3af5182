//! The PagerDuty integration: Events API v2 `trigger` while the group fires and `resolve` when it has
//! resolved, with Alertmanager's dedup key (the sha256 of the group key, in hex), so that PagerDuty keeps
//! one incident per group.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::{AlertStatus, BoxFuture, Notification, Notifier, NotifyError};
use crate::notify::config::PagerDutySettings;
use crate::notify::http::HttpClient;
use crate::notify::template::{FieldTemplate, compile_field, compile_or, data, render_field};
use crate::notify::webhook::check_url;
use crate::notify::{cut_runes, prepare};

/// PagerDuty caps a summary at 1024 characters; Alertmanager cuts it there too.
const MAX_SUMMARY: usize = 1024;

/// The severities the Events API v2 accepts.
const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// Alertmanager's default `details`, each a template.
const DEFAULT_DETAILS: [(&str, &str); 4] = [
    ("firing", r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#),
    ("resolved", r#"{{ template "pagerduty.default.instances" .Alerts.Resolved }}"#),
    ("num_firing", "{{ .Alerts.Firing | len }}"),
    ("num_resolved", "{{ .Alerts.Resolved | len }}"),
];

/// An Events API v2 event, in Alertmanager's field order.
#[derive(Debug, Serialize, PartialEq)]
pub struct PagerDutyEvent {
    pub routing_key: String,
    pub event_action: &'static str,
    pub dedup_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<PagerDutyPayload>,
    pub client: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_url: String,
}

/// The event's payload (sent with `trigger` only, as Alertmanager does).
#[derive(Debug, Serialize, PartialEq)]
pub struct PagerDutyPayload {
    pub summary: String,
    pub source: String,
    pub severity: String,
    pub custom_details: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub class: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub component: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
}

/// The settings' templated fields, parsed.
#[derive(Debug)]
struct Fields {
    client: FieldTemplate,
    client_url: FieldTemplate,
    description: FieldTemplate,
    source: Option<FieldTemplate>,
    severity: Option<FieldTemplate>,
    class: FieldTemplate,
    component: FieldTemplate,
    group: FieldTemplate,
    details: Vec<(String, FieldTemplate)>,
}

/// Sends Events API v2 events.
#[derive(Debug)]
pub struct PagerDutyNotifier {
    settings: PagerDutySettings,
    fields: Fields,
    client: HttpClient,
}

// === impl PagerDutyNotifier ===

impl PagerDutyNotifier {
    /// Fails without a `routing_key`, with a `url` that is not http(s), a `severity` PagerDuty does not
    /// know or a field that is not a valid template.
    pub fn new(settings: PagerDutySettings) -> Result<Self, NotifyError> {
        if settings.routing_key.trim().is_empty() {
            return Err(NotifyError::permanent(
                "pagerduty receiver: `routing_key` is empty; set it to the integration key of an Events API v2 integration",
            ));
        }
        check_url("pagerduty", "url", &settings.url)?;
        let fields = compile(&settings)?;
        if let Some(severity) = fields.severity.as_ref().and_then(FieldTemplate::literal) {
            check_severity(severity)?;
        }
        let client = HttpClient::new(&settings.http_config)?;
        Ok(Self { settings, fields, client })
    }

    /// The event for `notification` (already prepared for `send_resolved` and `max_alerts`). Fails when a
    /// field's template fails for this notification or `severity` renders to one PagerDuty refuses.
    pub fn event(&self, notification: &Notification) -> Result<PagerDutyEvent, NotifyError> {
        let s = &self.settings;
        let f = &self.fields;
        let data = data(notification);
        let render = |field: &FieldTemplate| render_field(&s.templates, "pagerduty", field, &data, false);
        let client = render(&f.client)?;
        let client_url = render(&f.client_url)?;
        let firing = notification.status == AlertStatus::Firing;
        let payload = if firing {
            let mut custom_details: BTreeMap<String, serde_json::Value> = BTreeMap::new();
            for (name, template) in &f.details {
                custom_details.insert(name.clone(), render(template)?.into());
            }
            let severity = match &f.severity {
                Some(template) => {
                    let severity = render(template)?;
                    check_severity(&severity)?;
                    severity
                }
                None => default_severity(notification).to_owned(),
            };
            Some(PagerDutyPayload {
                summary: cut_runes(&render(&f.description)?, MAX_SUMMARY),
                source: match &f.source {
                    Some(template) => render(template)?,
                    None => client.clone(),
                },
                severity,
                custom_details,
                class: render(&f.class)?,
                component: render(&f.component)?,
                group: render(&f.group)?,
            })
        } else {
            None
        };
        Ok(PagerDutyEvent {
            routing_key: s.routing_key.clone(),
            event_action: if firing { "trigger" } else { "resolve" },
            dedup_key: dedup_key(&notification.group_key),
            payload,
            client,
            client_url,
        })
    }

    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        let Some(notification) = prepare(notification, self.settings.send_resolved, self.settings.max_alerts)
        else {
            return Ok(());
        };
        let body = serde_json::to_vec(&self.event(&notification)?)
            .map_err(|e| NotifyError::permanent(format!("cannot encode the PagerDuty event: {e}")))?;
        self.client.post_json(&self.settings.url, body, None).await
    }
}

/// Parses the templated fields, with Alertmanager's defaults for the unset ones.
fn compile(s: &PagerDutySettings) -> Result<Fields, NotifyError> {
    let t = &s.templates;
    let field = |name: &str, text: &Option<String>, default: &str| {
        compile_or(t, "pagerduty", name, text.as_deref(), default)
    };
    let optional = |name: &str, text: &Option<String>| {
        text.as_deref().map(|text| compile_field(t, "pagerduty", name, text)).transpose()
    };
    let mut details: BTreeMap<String, &str> =
        DEFAULT_DETAILS.iter().map(|(name, text)| ((*name).to_owned(), *text)).collect();
    for (name, text) in &s.details {
        details.insert(name.clone(), text);
    }
    let details = details
        .into_iter()
        .map(|(name, text)| {
            let template = compile_field(t, "pagerduty", &format!("details.{name}"), text)?;
            Ok((name, template))
        })
        .collect::<Result<Vec<_>, NotifyError>>()?;
    Ok(Fields {
        client: field("client", &s.client, r#"{{ template "pagerduty.default.client" . }}"#)?,
        client_url: field("client_url", &s.client_url, r#"{{ template "pagerduty.default.clientURL" . }}"#)?,
        description: field(
            "description",
            &s.description,
            r#"{{ template "pagerduty.default.description" .}}"#,
        )?,
        source: optional("source", &s.source)?,
        severity: optional("severity", &s.severity)?,
        class: field("class", &s.class, "")?,
        component: field("component", &s.component, "")?,
        group: field("group", &s.group, "")?,
        details,
    })
}

fn check_severity(severity: &str) -> Result<(), NotifyError> {
    if SEVERITIES.contains(&severity) {
        Ok(())
    } else {
        Err(NotifyError::permanent(format!(
            "pagerduty receiver: `severity` {severity:?} is not one PagerDuty accepts; use one of {}",
            SEVERITIES.join(", ")
        )))
    }
}

impl Notifier for PagerDutyNotifier {
    fn kind(&self) -> &'static str {
        "pagerduty"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(self.send(notification))
    }
}

/// Alertmanager's `GroupKey.Hash()`: the sha256 of the group key, in lower-case hex.
pub fn dedup_key(group_key: &str) -> String {
    Sha256::digest(group_key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The common `severity` label when PagerDuty knows it, else `error`, Alertmanager's default.
fn default_severity(notification: &Notification) -> &'static str {
    match notification.common_labels.get("severity").map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("critical") => "critical",
        Some("warning") => "warning",
        Some("info") => "info",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keys_are_sha256_hex() {
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(dedup_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn summaries_are_cut() {
        assert_eq!(cut_runes("abc", 3), "abc");
        assert_eq!(cut_runes("abcd", 3), "ab…");
    }

    #[test]
    fn a_routing_key_is_required() {
        let err = PagerDutyNotifier::new(PagerDutySettings::default()).expect_err("no key");
        assert!(err.message.contains("routing_key"), "{}", err.message);
    }

    #[test]
    fn severities_are_checked() {
        let settings = PagerDutySettings { routing_key: "k".into(), ..PagerDutySettings::default() };
        let bad = PagerDutySettings { severity: Some("page".into()), ..settings.clone() };
        let err = PagerDutyNotifier::new(bad).expect_err("not a PagerDuty severity");
        assert!(err.message.contains("critical, error, warning, info"), "{}", err.message);
        assert!(
            PagerDutyNotifier::new(PagerDutySettings { severity: Some("info".into()), ..settings }).is_ok()
        );
    }
}
