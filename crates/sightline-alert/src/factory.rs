//! The [`NotifierFactory`] that builds [`notify`](crate::notify) integrations from the receivers of an
//! Alertmanager configuration ([`pipeline::config`](crate::pipeline::config)): each `*_configs` entry maps
//! field by field onto its settings struct, with the `global` block's defaults (SMTP, Slack and PagerDuty
//! URLs) and `*_file` fields read at build time, as Alertmanager does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_yaml_ng::Value;

use crate::model::Notifier;
use crate::notify::{self, ReceiverSettings, RetrySettings};
use crate::pipeline::config::{GlobalConfig, IntegrationConfig, Receiver};
use crate::pipeline::dispatch::NotifierFactory;

/// Builds webhook, Slack, PagerDuty and email integrations, each wrapped in the retry policy of its
/// receiver (`timeout`, `retries`, `retry_backoff`).
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultNotifierFactory;

impl NotifierFactory for DefaultNotifierFactory {
    fn build(
        &self,
        receiver: &Receiver,
        integration: &IntegrationConfig,
        global: &GlobalConfig,
    ) -> Result<Arc<dyn Notifier>, String> {
        let settings = settings(receiver, integration, global)?;
        notify::build(&settings, &retry_settings(receiver)).map_err(|e| e.to_string())
    }
}

/// The retry policy of `receiver`.
pub fn retry_settings(receiver: &Receiver) -> RetrySettings {
    let defaults = RetrySettings::default();
    RetrySettings {
        timeout: receiver.timeout.map_or(defaults.timeout, |d| d.0),
        retries: receiver.retries.unwrap_or(defaults.retries),
        backoff_base: receiver.retry_backoff.map_or(defaults.backoff_base, |d| d.0),
        backoff_max: defaults.backoff_max.max(receiver.retry_backoff.map_or(Duration::ZERO, |d| d.0)),
    }
}

/// The settings of one integration, with the receiver's `max_alerts` and the global defaults applied.
pub fn settings(
    receiver: &Receiver,
    integration: &IntegrationConfig,
    global: &GlobalConfig,
) -> Result<ReceiverSettings, String> {
    let max_alerts = receiver.max_alerts.unwrap_or(0);
    Ok(match integration {
        IntegrationConfig::Webhook(c) => ReceiverSettings::Webhook(notify::WebhookSettings {
            url: secret(c.url.as_deref(), c.url_file.as_deref(), "url")?
                .ok_or("webhook_configs: set `url` or `url_file`")?,
            send_resolved: c.send_resolved.unwrap_or(true),
            max_alerts: if c.max_alerts > 0 { c.max_alerts } else { max_alerts },
            http_config: http_config(c.http_config.as_ref())?,
        }),
        IntegrationConfig::Slack(c) => ReceiverSettings::Slack(notify::SlackSettings {
            api_url: secret(c.api_url.as_deref(), c.api_url_file.as_deref(), "api_url")?
                .or_else(|| global.slack_api_url.clone())
                .ok_or("slack_configs: set `api_url`, `api_url_file` or global.slack_api_url")?,
            send_resolved: c.send_resolved.unwrap_or(false),
            channel: c.channel.clone(),
            username: c.username.clone(),
            icon_emoji: string_extra(&c.extra, "icon_emoji"),
            icon_url: string_extra(&c.extra, "icon_url"),
            title: c.title.clone(),
            title_link: string_extra(&c.extra, "title_link"),
            pretext: string_extra(&c.extra, "pretext"),
            text: c.text.clone(),
            fallback: string_extra(&c.extra, "fallback"),
            color: c.color.clone(),
            footer: string_extra(&c.extra, "footer"),
            callback_id: string_extra(&c.extra, "callback_id"),
            image_url: string_extra(&c.extra, "image_url"),
            thumb_url: string_extra(&c.extra, "thumb_url"),
            fields: slack_fields(&c.extra)?,
            short_fields: c.extra.get("short_fields").and_then(Value::as_bool).unwrap_or(false),
            link_names: c.extra.get("link_names").and_then(Value::as_bool).unwrap_or(false),
            mrkdwn_in: c
                .extra
                .get("mrkdwn_in")
                .and_then(Value::as_sequence)
                .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            max_alerts,
            http_config: http_config(c.http_config.as_ref())?,
            templates: global.templates.clone(),
        }),
        IntegrationConfig::PagerDuty(c) => {
            let key = secret(c.routing_key.as_deref(), c.routing_key_file.as_deref(), "routing_key")?
                .or(secret(c.service_key.as_deref(), c.service_key_file.as_deref(), "service_key")?)
                .ok_or("pagerduty_configs: set `routing_key` or `routing_key_file`")?;
            ReceiverSettings::PagerDuty(notify::PagerDutySettings {
                routing_key: key,
                url: c
                    .url
                    .clone()
                    .or_else(|| global.pagerduty_url.clone())
                    .unwrap_or_else(|| notify::config::PAGERDUTY_EVENTS_URL.to_owned()),
                send_resolved: c.send_resolved.unwrap_or(true),
                severity: c.severity.clone(),
                client: string_extra(&c.extra, "client"),
                client_url: string_extra(&c.extra, "client_url"),
                description: string_extra(&c.extra, "description"),
                details: string_map_extra(&c.extra, "details"),
                source: string_extra(&c.extra, "source"),
                class: string_extra(&c.extra, "class"),
                component: string_extra(&c.extra, "component"),
                group: string_extra(&c.extra, "group"),
                max_alerts,
                http_config: http_config(c.http_config.as_ref())?,
                templates: global.templates.clone(),
            })
        }
        IntegrationConfig::Email(c) => {
            let defaults = notify::EmailSettings::default();
            ReceiverSettings::Email(notify::EmailSettings {
                to: c.to.clone().ok_or("email_configs: set `to`")?,
                from: c
                    .from
                    .clone()
                    .or_else(|| global.smtp_from.clone())
                    .ok_or("email_configs: set `from` or global.smtp_from")?,
                smarthost: c
                    .smarthost
                    .clone()
                    .or_else(|| global.smtp_smarthost.clone())
                    .ok_or("email_configs: set `smarthost` or global.smtp_smarthost")?,
                auth_username: c.auth_username.clone().or_else(|| global.smtp_auth_username.clone()),
                auth_password: c.auth_password.clone().or_else(|| global.smtp_auth_password.clone()),
                require_tls: c.require_tls.or(global.smtp_require_tls).unwrap_or(true),
                headers: c.headers.clone().into_iter().collect(),
                send_resolved: c.send_resolved.unwrap_or(false),
                hello: string_extra(&c.extra, "hello").unwrap_or(defaults.hello),
                html: string_extra(&c.extra, "html"),
                text: string_extra(&c.extra, "text"),
                max_alerts,
                templates: global.templates.clone(),
                ..defaults
            })
        }
    })
}

/// A value given inline or in a file (whose contents are trimmed, as Alertmanager reads secrets).
fn secret(inline: Option<&str>, file: Option<&str>, field: &str) -> Result<Option<String>, String> {
    if let Some(value) = inline {
        return Ok(Some(value.to_owned()));
    }
    match file {
        Some(path) => std::fs::read_to_string(path)
            .map(|text| Some(text.trim().to_owned()))
            .map_err(|e| format!("{field}_file {path:?}: {e}")),
        None => Ok(None),
    }
}

fn string_extra(extra: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    extra.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A mapping of strings (PagerDuty's `details`).
fn string_map_extra(extra: &BTreeMap<String, Value>, key: &str) -> BTreeMap<String, String> {
    let Some(Value::Mapping(map)) = extra.get(key) else {
        return BTreeMap::new();
    };
    map.iter()
        .filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Bool(_) | Value::Number(_) => serde_yaml_ng::to_string(v).ok()?.trim().to_owned(),
                _ => return None,
            };
            Some((k.as_str()?.to_owned(), value))
        })
        .collect()
}

/// Slack's `fields`: a list of `{title, value, short}`.
fn slack_fields(extra: &BTreeMap<String, Value>) -> Result<Vec<notify::SlackField>, String> {
    let Some(value) = extra.get("fields") else {
        return Ok(Vec::new());
    };
    let Some(items) = value.as_sequence() else {
        return Err("slack_configs: `fields` must be a list of {title, value, short}".to_owned());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
            match (text("title"), text("value")) {
                (Some(title), Some(value)) => {
                    Ok(notify::SlackField { title, value, short: item.get("short").and_then(Value::as_bool) })
                }
                _ => Err(format!("slack_configs: fields[{i}] needs a `title` and a `value`")),
            }
        })
        .collect()
}

/// The templated texts of an integration's configuration, each with its setting's path below the
/// integration (`title`, `fields[0].value`, `details.firing`, `headers.Subject`), for checking them when
/// the configuration loads.
pub fn template_fields(integration: &IntegrationConfig) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |name: &str, text: Option<&str>| {
        if let Some(text) = text {
            out.push((name.to_owned(), text.to_owned()));
        }
    };
    let extra_keys =
        |extra: &BTreeMap<String, Value>, keys: &[&str], push: &mut dyn FnMut(&str, Option<&str>)| {
            for key in keys {
                push(key, extra.get(*key).and_then(Value::as_str));
            }
        };
    match integration {
        IntegrationConfig::Webhook(_) => {}
        IntegrationConfig::Slack(c) => {
            for (name, text) in [
                ("channel", &c.channel),
                ("username", &c.username),
                ("title", &c.title),
                ("text", &c.text),
                ("color", &c.color),
            ] {
                push(name, text.as_deref());
            }
            extra_keys(
                &c.extra,
                &[
                    "icon_emoji",
                    "icon_url",
                    "title_link",
                    "pretext",
                    "fallback",
                    "footer",
                    "callback_id",
                    "image_url",
                    "thumb_url",
                ],
                &mut push,
            );
            for (i, field) in slack_fields(&c.extra).unwrap_or_default().iter().enumerate() {
                push(&format!("fields[{i}].title"), Some(&field.title));
                push(&format!("fields[{i}].value"), Some(&field.value));
            }
        }
        IntegrationConfig::PagerDuty(c) => {
            push("severity", c.severity.as_deref());
            extra_keys(
                &c.extra,
                &["client", "client_url", "description", "source", "class", "component", "group"],
                &mut push,
            );
            for (name, text) in string_map_extra(&c.extra, "details") {
                push(&format!("details.{name}"), Some(&text));
            }
        }
        IntegrationConfig::Email(c) => {
            for (name, text) in &c.headers {
                push(&format!("headers.{name}"), Some(text));
            }
            extra_keys(&c.extra, &["html", "text"], &mut push);
        }
    }
    out
}

/// Alertmanager's `http_config`: basic auth, authorization (or the legacy bearer token) and
/// `tls_config.insecure_skip_verify`; anything else is refused rather than ignored.
fn http_config(value: Option<&Value>) -> Result<notify::HttpConfig, String> {
    let mut out = notify::HttpConfig::default();
    let Some(Value::Mapping(map)) = value else {
        return match value {
            None | Some(Value::Null) => Ok(out),
            Some(_) => Err("http_config must be a mapping".to_owned()),
        };
    };
    for (key, value) in map {
        let key = key.as_str().unwrap_or("");
        let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        match key {
            "basic_auth" => {
                let password =
                    secret(field("password").as_deref(), field("password_file").as_deref(), "password")?;
                out.basic_auth = Some(notify::BasicAuth {
                    username: field("username").ok_or("http_config.basic_auth: set `username`")?,
                    password,
                });
            }
            "authorization" => {
                let credentials = secret(
                    field("credentials").as_deref(),
                    field("credentials_file").as_deref(),
                    "credentials",
                )?
                .ok_or("http_config.authorization: set `credentials` or `credentials_file`")?;
                out.authorization = Some(notify::Authorization {
                    kind: field("type").unwrap_or_else(|| "Bearer".to_owned()),
                    credentials,
                });
            }
            "bearer_token" => out.bearer_token = value.as_str().map(str::to_owned),
            "tls_config" => {
                out.tls_config.insecure_skip_verify =
                    value.get("insecure_skip_verify").and_then(Value::as_bool).unwrap_or(false);
            }
            "follow_redirects" | "enable_http2" => {}
            other => return Err(format!("http_config.{other} is not supported by Sightline's receivers")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::config::Config;

    #[test]
    fn receivers_map_onto_notifier_settings_with_global_defaults() {
        let config = Config::parse(
            r#"
global:
  smtp_from: alerts@example.com
  smtp_smarthost: 127.0.0.1:25
  slack_api_url: http://127.0.0.1:1/slack
route: {receiver: all}
receivers:
  - name: all
    max_alerts: 5
    retries: 1
    webhook_configs:
      - url: http://127.0.0.1:1/hook
        http_config: {basic_auth: {username: u, password: p}}
    slack_configs: [{channel: '#ops'}]
    pagerduty_configs: [{routing_key: key, severity: critical}]
    email_configs: [{to: ops@example.com, require_tls: false}]
"#,
        )
        .expect("valid config");
        let receiver = config.receiver("all").expect("receiver");
        let all: Vec<ReceiverSettings> = receiver
            .integrations()
            .iter()
            .map(|i| settings(receiver, i, &config.global).expect("settings"))
            .collect();
        let ReceiverSettings::Webhook(webhook) = &all[0] else { panic!("{all:?}") };
        assert_eq!(webhook.url, "http://127.0.0.1:1/hook");
        assert_eq!(webhook.max_alerts, 5);
        assert_eq!(webhook.http_config.basic_auth.as_ref().map(|b| b.username.as_str()), Some("u"));
        let ReceiverSettings::Slack(slack) = &all[1] else { panic!("{all:?}") };
        assert_eq!(slack.api_url, "http://127.0.0.1:1/slack");
        assert_eq!(slack.channel.as_deref(), Some("#ops"));
        let ReceiverSettings::PagerDuty(pd) = &all[2] else { panic!("{all:?}") };
        assert_eq!((pd.routing_key.as_str(), pd.severity.as_deref()), ("key", Some("critical")));
        let ReceiverSettings::Email(email) = &all[3] else { panic!("{all:?}") };
        assert_eq!((email.from.as_str(), email.smarthost.as_str()), ("alerts@example.com", "127.0.0.1:25"));
        assert!(!email.require_tls);
        assert_eq!(retry_settings(receiver).retries, 1);
        for integration in receiver.integrations() {
            DefaultNotifierFactory.build(receiver, &integration, &config.global).expect("builds");
        }
    }

    #[test]
    fn missing_settings_and_unsupported_http_options_are_named() {
        let config = Config::parse(
            "route: {receiver: r}\nreceivers:\n  - name: r\n    webhook_configs:\n      - url: http://x\n        http_config: {proxy_url: http://p}\n",
        )
        .expect("valid config");
        let receiver = config.receiver("r").expect("receiver");
        let err = settings(receiver, &receiver.integrations()[0], &config.global).expect_err("refused");
        assert!(err.contains("proxy_url"), "{err}");
    }
}
