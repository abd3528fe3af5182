//! The Slack integration: one incoming-webhook message with one attachment, its fields rendered from
//! Alertmanager's templates (`slack.default.*` unless the receiver sets them), as Alertmanager's Slack
//! notifier builds it.

use serde::Serialize;

use crate::model::{BoxFuture, Notification, Notifier, NotifyError};
use crate::notify::config::SlackSettings;
use crate::notify::http::HttpClient;
use crate::notify::template::{FieldTemplate, compile_field, compile_or, data, render_field};
use crate::notify::webhook::check_url;
use crate::notify::{cut_runes, prepare};

/// Slack cuts titles longer than this; Alertmanager cuts them first (with `…`).
const MAX_TITLE_RUNES: usize = 1024;

/// Slack's incoming-webhook message, with the fields Alertmanager sends.
#[derive(Debug, Serialize, PartialEq)]
pub struct SlackMessage {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub icon_emoji: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub icon_url: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub link_names: bool,
    pub attachments: Vec<SlackAttachment>,
}

/// The message's one attachment.
#[derive(Debug, Serialize, PartialEq)]
pub struct SlackAttachment {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title_link: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pretext: String,
    pub text: String,
    pub fallback: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub callback_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<SlackAttachmentField>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub thumb_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub footer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub color: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mrkdwn_in: Vec<String>,
}

/// One of the attachment's fields.
#[derive(Debug, Serialize, PartialEq)]
pub struct SlackAttachmentField {
    pub title: String,
    pub value: String,
    pub short: bool,
}

/// The settings' templated fields, parsed.
#[derive(Debug)]
struct Fields {
    channel: FieldTemplate,
    username: FieldTemplate,
    icon_emoji: FieldTemplate,
    icon_url: FieldTemplate,
    title: FieldTemplate,
    title_link: FieldTemplate,
    pretext: FieldTemplate,
    text: FieldTemplate,
    fallback: FieldTemplate,
    color: FieldTemplate,
    footer: FieldTemplate,
    callback_id: FieldTemplate,
    image_url: FieldTemplate,
    thumb_url: FieldTemplate,
    fields: Vec<(FieldTemplate, FieldTemplate, bool)>,
}

/// Posts to a Slack incoming webhook.
#[derive(Debug)]
pub struct SlackNotifier {
    settings: SlackSettings,
    fields: Fields,
    client: HttpClient,
}

// === impl SlackNotifier ===

impl SlackNotifier {
    /// Fails when `api_url` is not an http(s) URL or a field is not a valid template.
    pub fn new(settings: SlackSettings) -> Result<Self, NotifyError> {
        check_url("slack", "api_url", &settings.api_url)?;
        let fields = compile(&settings)?;
        let client = HttpClient::new(&settings.http_config)?;
        Ok(Self { settings, fields, client })
    }

    /// The message for `notification` (already prepared for `send_resolved` and `max_alerts`). Fails when
    /// a field's template fails for this notification.
    pub fn message(&self, notification: &Notification) -> Result<SlackMessage, NotifyError> {
        let data = data(notification);
        let render =
            |field: &FieldTemplate| render_field(&self.settings.templates, "slack", field, &data, false);
        let f = &self.fields;
        let mut fields = Vec::with_capacity(f.fields.len());
        for (title, value, short) in &f.fields {
            fields.push(SlackAttachmentField { title: render(title)?, value: render(value)?, short: *short });
        }
        let mrkdwn_in = if self.settings.mrkdwn_in.is_empty() {
            vec!["fallback".to_owned(), "pretext".to_owned(), "text".to_owned()]
        } else {
            self.settings.mrkdwn_in.clone()
        };
        Ok(SlackMessage {
            channel: render(&f.channel)?,
            username: render(&f.username)?,
            icon_emoji: render(&f.icon_emoji)?,
            icon_url: render(&f.icon_url)?,
            link_names: self.settings.link_names,
            attachments: vec![SlackAttachment {
                title: cut_runes(&render(&f.title)?, MAX_TITLE_RUNES),
                title_link: render(&f.title_link)?,
                pretext: render(&f.pretext)?,
                text: render(&f.text)?,
                fallback: render(&f.fallback)?,
                callback_id: render(&f.callback_id)?,
                fields,
                image_url: render(&f.image_url)?,
                thumb_url: render(&f.thumb_url)?,
                footer: render(&f.footer)?,
                color: render(&f.color)?,
                mrkdwn_in,
            }],
        })
    }

    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        let Some(notification) = prepare(notification, self.settings.send_resolved, self.settings.max_alerts)
        else {
            return Ok(());
        };
        let body = serde_json::to_vec(&self.message(&notification)?)
            .map_err(|e| NotifyError::permanent(format!("cannot encode the Slack message: {e}")))?;
        self.client.post_json(&self.settings.api_url, body, None).await
    }
}

/// Parses the templated fields, with Alertmanager's defaults for the unset ones.
fn compile(s: &SlackSettings) -> Result<Fields, NotifyError> {
    let t = &s.templates;
    let field = |name: &str, text: &Option<String>, default: &str| {
        compile_or(t, "slack", name, text.as_deref(), default)
    };
    let mut fields = Vec::with_capacity(s.fields.len());
    for (i, f) in s.fields.iter().enumerate() {
        fields.push((
            compile_field(t, "slack", &format!("fields[{i}].title"), &f.title)?,
            compile_field(t, "slack", &format!("fields[{i}].value"), &f.value)?,
            f.short.unwrap_or(s.short_fields),
        ));
    }
    Ok(Fields {
        channel: field("channel", &s.channel, "")?,
        username: field("username", &s.username, r#"{{ template "slack.default.username" . }}"#)?,
        icon_emoji: field("icon_emoji", &s.icon_emoji, r#"{{ template "slack.default.iconemoji" . }}"#)?,
        icon_url: field("icon_url", &s.icon_url, r#"{{ template "slack.default.iconurl" . }}"#)?,
        title: field("title", &s.title, r#"{{ template "slack.default.title" . }}"#)?,
        title_link: field("title_link", &s.title_link, r#"{{ template "slack.default.titlelink" . }}"#)?,
        pretext: field("pretext", &s.pretext, r#"{{ template "slack.default.pretext" . }}"#)?,
        text: field("text", &s.text, r#"{{ template "slack.default.text" . }}"#)?,
        fallback: field("fallback", &s.fallback, r#"{{ template "slack.default.fallback" . }}"#)?,
        color: field("color", &s.color, r#"{{ template "slack.default.color" . }}"#)?,
        footer: field("footer", &s.footer, r#"{{ template "slack.default.footer" . }}"#)?,
        callback_id: field("callback_id", &s.callback_id, r#"{{ template "slack.default.callbackid" . }}"#)?,
        image_url: field("image_url", &s.image_url, "")?,
        thumb_url: field("thumb_url", &s.thumb_url, "")?,
        fields,
    })
}

impl Notifier for SlackNotifier {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(self.send(notification))
    }
}
