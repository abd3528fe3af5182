//! The receivers' settings, one plain struct per integration, with Alertmanager's field names (`url`,
//! `send_resolved`, `max_alerts`, `http_config`, `api_url`, `routing_key`, `smarthost`, ...) so that a
//! receiver block of an Alertmanager configuration maps onto them field by field.
//!
//! Where Alertmanager takes a Go template (Slack's `title` and `text`, PagerDuty's `description` and
//! `details`, email's `html`, `text` and `headers`, ...) a field here holds the template's text, rendered
//! for each notification with the settings' [`Templates`]; a field left unset renders Alertmanager's
//! default template for it (`slack.default.title`, `email.default.html`, ...).

use std::time::Duration;

use crate::model::LabelSet;
use crate::notify::template::Templates;

/// Alertmanager's `http_config` (the subset that matters for sending notifications).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpConfig {
    /// `basic_auth`: sent as an `Authorization: Basic` header.
    pub basic_auth: Option<BasicAuth>,
    /// `authorization`: sent as `Authorization: <type> <credentials>`.
    pub authorization: Option<Authorization>,
    /// `bearer_token` (Alertmanager's older spelling of `authorization` with type `Bearer`).
    pub bearer_token: Option<String>,
    /// `tls_config`.
    pub tls_config: TlsConfig,
}

/// Alertmanager's `basic_auth`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BasicAuth {
    pub username: String,
    /// `password`; `password_file` is read by the configuration loader and its contents put here.
    pub password: Option<String>,
}

/// Alertmanager's `authorization`.
#[derive(Clone, Debug, PartialEq)]
pub struct Authorization {
    /// `type`, `Bearer` by default.
    pub kind: String,
    /// `credentials`; `credentials_file` is read by the configuration loader and its contents put here.
    pub credentials: String,
}

impl Default for Authorization {
    fn default() -> Self {
        Self { kind: "Bearer".to_owned(), credentials: String::new() }
    }
}

/// Alertmanager's `tls_config` (verification only: client certificates are not supported yet).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// `insecure_skip_verify`: accept any server certificate.
    pub insecure_skip_verify: bool,
}

/// How a delivery is tried: Alertmanager's `timeout` per attempt plus Sightline's retry policy, applied
/// by [`crate::notify::retry::Retrying`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySettings {
    /// The time one attempt may take (10s by default).
    pub timeout: Duration,
    /// Further attempts after the first one fails retryably (3 by default).
    pub retries: u32,
    /// The first backoff; each retry doubles it (500ms by default). The actual wait is drawn uniformly
    /// from zero to the backoff ("full jitter"), so that many receivers failing together spread out.
    pub backoff_base: Duration,
    /// The longest backoff (30s by default).
    pub backoff_max: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retries: 3,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Alertmanager's `webhook_configs` entry: POSTs the webhook payload, version 4.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSettings {
    /// `url` (or the contents of `url_file`).
    pub url: String,
    /// `send_resolved` (true by default, as in Alertmanager).
    pub send_resolved: bool,
    /// `max_alerts`: at most this many alerts per message, 0 for all.
    pub max_alerts: usize,
    /// `http_config`.
    pub http_config: HttpConfig,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self { url: String::new(), send_resolved: true, max_alerts: 0, http_config: HttpConfig::default() }
    }
}

/// Alertmanager's `slack_configs` entry: an incoming-webhook message with one attachment. The text fields
/// are templates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlackSettings {
    /// `api_url` (or the contents of `api_url_file`): the incoming webhook's URL.
    pub api_url: String,
    /// `send_resolved` (false by default, as in Alertmanager).
    pub send_resolved: bool,
    /// `channel`: overrides the webhook's channel.
    pub channel: Option<String>,
    /// `username`; by default `slack.default.username` (`Sightline`).
    pub username: Option<String>,
    /// `icon_emoji`; by default `slack.default.iconemoji` (empty).
    pub icon_emoji: Option<String>,
    /// `icon_url`; by default `slack.default.iconurl` (empty).
    pub icon_url: Option<String>,
    /// `title`; by default `slack.default.title` (`[FIRING:N] alertname (other common label values)`).
    pub title: Option<String>,
    /// `title_link`; by default `slack.default.titlelink` (the external URL).
    pub title_link: Option<String>,
    /// `pretext`; by default `slack.default.pretext` (empty).
    pub pretext: Option<String>,
    /// `text`; by default `slack.default.text` (Sightline's: each alert and its annotations).
    pub text: Option<String>,
    /// `fallback`; by default `slack.default.fallback` (`title | title_link`).
    pub fallback: Option<String>,
    /// `color`; by default `slack.default.color`: `danger` (firing), `warning` (only warnings firing),
    /// `good` (resolved).
    pub color: Option<String>,
    /// `footer`; by default `slack.default.footer` (empty).
    pub footer: Option<String>,
    /// `callback_id`; by default `slack.default.callbackid` (empty).
    pub callback_id: Option<String>,
    /// `image_url`.
    pub image_url: Option<String>,
    /// `thumb_url`.
    pub thumb_url: Option<String>,
    /// `fields`: the attachment's fields, title and value templated.
    pub fields: Vec<SlackField>,
    /// `short_fields`: whether fields without their own `short` are short.
    pub short_fields: bool,
    /// `link_names`.
    pub link_names: bool,
    /// `mrkdwn_in`; by default `fallback`, `pretext` and `text`.
    pub mrkdwn_in: Vec<String>,
    /// Sightline's addition: at most this many alerts in the message, 0 for all.
    pub max_alerts: usize,
    /// `http_config`.
    pub http_config: HttpConfig,
    /// The named templates the fields are rendered with.
    pub templates: Templates,
}

/// One of Slack's attachment `fields`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlackField {
    pub title: String,
    pub value: String,
    /// `short`; by default the receiver's `short_fields`.
    pub short: Option<bool>,
}

/// The PagerDuty Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Alertmanager's `pagerduty_configs` entry, Events API v2 (`routing_key`).
#[derive(Clone, Debug, PartialEq)]
pub struct PagerDutySettings {
    /// `routing_key` (or the contents of `routing_key_file`): the integration key.
    pub routing_key: String,
    /// `url` ([`PAGERDUTY_EVENTS_URL`] by default).
    pub url: String,
    /// `send_resolved` (true by default, as in Alertmanager).
    pub send_resolved: bool,
    /// `client`; by default `pagerduty.default.client` (`Sightline`).
    pub client: Option<String>,
    /// `client_url`; by default `pagerduty.default.clientURL` (the external URL).
    pub client_url: Option<String>,
    /// `description`: the event's summary; by default `pagerduty.default.description`
    /// (`[FIRING:N] alertname (...)`).
    pub description: Option<String>,
    /// `details`: `custom_details` templates, added to (or replacing) Alertmanager's `firing`,
    /// `resolved`, `num_firing` and `num_resolved`.
    pub details: LabelSet,
    /// `source`; by default the rendered client.
    pub source: Option<String>,
    /// `severity`: must render to `critical`, `error`, `warning` or `info`; by default the alerts' common
    /// `severity` label when it is one of those, else `error` (Alertmanager's default).
    pub severity: Option<String>,
    /// `class`.
    pub class: Option<String>,
    /// `component`.
    pub component: Option<String>,
    /// `group`.
    pub group: Option<String>,
    /// Sightline's addition: at most this many alerts in the details, 0 for all.
    pub max_alerts: usize,
    /// `http_config`.
    pub http_config: HttpConfig,
    /// The named templates the fields are rendered with.
    pub templates: Templates,
}

impl Default for PagerDutySettings {
    fn default() -> Self {
        Self {
            routing_key: String::new(),
            url: PAGERDUTY_EVENTS_URL.to_owned(),
            send_resolved: true,
            client: None,
            client_url: None,
            description: None,
            details: LabelSet::new(),
            source: None,
            severity: None,
            class: None,
            component: None,
            group: None,
            max_alerts: 0,
            http_config: HttpConfig::default(),
            templates: Templates::default(),
        }
    }
}

/// How the SMTP connection is secured. Alertmanager derives it: port 465 or `force_implicit_tls` is
/// [`SmtpSecurity::Tls`], `require_tls` (the default) is [`SmtpSecurity::StartTls`], otherwise
/// [`SmtpSecurity::Plain`]; see [`EmailSettings::security`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte ("SMTPS", usually port 465).
    Tls,
    /// Plain connection upgraded with STARTTLS, which the server must offer.
    StartTls,
    /// No encryption at all (a local relay).
    Plain,
}

/// Alertmanager's `email_configs` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailSettings {
    /// `to`: one or more addresses, comma-separated.
    pub to: String,
    /// `from`.
    pub from: String,
    /// `smarthost`: `host:port` of the SMTP server.
    pub smarthost: String,
    /// `hello`: the name sent with EHLO (`localhost` by default).
    pub hello: String,
    /// `auth_username`; authentication (PLAIN or LOGIN) is used when it is set.
    pub auth_username: Option<String>,
    /// `auth_password` (or the contents of `auth_password_file`).
    pub auth_password: Option<String>,
    /// `require_tls` (true by default): STARTTLS, failing when the server does not offer it.
    pub require_tls: bool,
    /// `force_implicit_tls`: TLS from the first byte even on a port other than 465.
    pub force_implicit_tls: bool,
    /// `tls_config`.
    pub tls_config: TlsConfig,
    /// `headers`, templates: extra headers; `Subject` (by default `email.default.subject`), `To` and
    /// `From` here replace the defaults.
    pub headers: LabelSet,
    /// `html`: the HTML body, rendered with `html/template`'s escaping; by default `email.default.html`.
    /// `Some("")` sends no HTML part.
    pub html: Option<String>,
    /// `text`: the plain-text body; by default Sightline's `email.default.text` (Alertmanager sends none).
    /// `Some("")` sends no text part.
    pub text: Option<String>,
    /// `send_resolved` (false by default, as in Alertmanager).
    pub send_resolved: bool,
    /// Sightline's addition: at most this many alerts listed, 0 for all.
    pub max_alerts: usize,
    /// The named templates the headers and bodies are rendered with.
    pub templates: Templates,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            to: String::new(),
            from: String::new(),
            smarthost: String::new(),
            hello: "localhost".to_owned(),
            auth_username: None,
            auth_password: None,
            require_tls: true,
            force_implicit_tls: false,
            tls_config: TlsConfig::default(),
            headers: LabelSet::new(),
            html: None,
            text: None,
            send_resolved: false,
            max_alerts: 0,
            templates: Templates::default(),
        }
    }
}

impl EmailSettings {
    /// The connection security Alertmanager would use with these settings.
    pub fn security(&self) -> SmtpSecurity {
        let port_465 = self.smarthost.rsplit_once(':').is_some_and(|(_, port)| port == "465");
        if self.force_implicit_tls || port_465 {
            SmtpSecurity::Tls
        } else if self.require_tls {
            SmtpSecurity::StartTls
        } else {
            SmtpSecurity::Plain
        }
    }
}

/// The `log` receiver (Sightline's own): one `tracing` event per alert, for setups without any other
/// receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// `send_resolved` (true by default).
    pub send_resolved: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { send_resolved: true }
    }
}

/// Where and how rule evaluation forwards its alerts to Alertmanager, in the shape of Prometheus's
/// `alerting.alertmanagers` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertmanagerSettings {
    /// Each Alertmanager's base URL (`scheme://host:port` plus any `path_prefix`); alerts are POSTed to
    /// `<url>/api/v2/alerts` on every one of them, as Prometheus does for an Alertmanager cluster.
    pub urls: Vec<String>,
    /// `timeout` of one POST (10s by default).
    pub timeout: Duration,
    /// Further attempts per Alertmanager after a retryable failure (3 by default).
    pub retries: u32,
    /// The first backoff between attempts, doubled each time with full jitter (500ms by default).
    pub backoff_base: Duration,
    /// The longest backoff (10s by default).
    pub backoff_max: Duration,
    /// Alerts queued for sending at most (10000 by default, Prometheus's
    /// `--alertmanager.notification-queue-capacity`); the oldest are dropped beyond it.
    pub queue_capacity: usize,
    /// Alerts per POST at most (64 by default, as Prometheus sends them).
    pub max_batch_size: usize,
    /// `http_config`: authentication and TLS.
    pub http_config: HttpConfig,
}

impl Default for AlertmanagerSettings {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            timeout: Duration::from_secs(10),
            retries: 3,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            queue_capacity: 10_000,
            max_batch_size: 64,
            http_config: HttpConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_security_follows_alertmanager() {
        let mut s = EmailSettings { smarthost: "mail.example.org:587".into(), ..Default::default() };
        assert_eq!(s.security(), SmtpSecurity::StartTls);
        s.require_tls = false;
        assert_eq!(s.security(), SmtpSecurity::Plain);
        s.smarthost = "mail.example.org:465".into();
        assert_eq!(s.security(), SmtpSecurity::Tls);
        s.smarthost = "mail.example.org:2525".into();
        s.force_implicit_tls = true;
        assert_eq!(s.security(), SmtpSecurity::Tls);
    }
}
