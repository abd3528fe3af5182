//! The email integration: an HTML message (Alertmanager's `email.default.html` unless `html` is set) with a
//! plain-text alternative (Sightline's `email.default.text` unless `text` is set), its subject and headers
//! rendered from templates, sent over SMTP with lettre (implicit TLS, STARTTLS or plain, with PLAIN/LOGIN
//! authentication), as Alertmanager's email receiver chooses them.

use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::model::{BoxFuture, Notification, Notifier, NotifyError};
use crate::notify::config::{EmailSettings, SmtpSecurity};
use crate::notify::prepare;
use crate::notify::template::{FieldTemplate, compile_field, compile_or, data, render_field};

/// The SMTP conversation's own timeout per command; the retry wrapper bounds the whole delivery.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends notifications by email.
#[derive(Debug)]
pub struct EmailNotifier {
    settings: EmailSettings,
    fields: Fields,
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

// === impl EmailNotifier ===

impl EmailNotifier {
    /// Fails when `smarthost` is not `host:port` or `to`/`from` do not parse as addresses.
    pub fn new(settings: EmailSettings) -> Result<Self, NotifyError> {
        let bad = |message: String| NotifyError::permanent(format!("email receiver: {message}"));
        let (host, port) = settings
            .smarthost
            .rsplit_once(':')
            .and_then(|(host, port)| {
                Some((host.trim_start_matches('[').trim_end_matches(']'), port.parse::<u16>().ok()?))
            })
            .filter(|(host, _)| !host.is_empty())
            .ok_or_else(|| bad(format!("`smarthost` must be host:port, got {:?}", settings.smarthost)))?;
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| bad(format!("`from` {:?} is not an email address: {e}", settings.from)))?;
        let to: Mailboxes = settings
            .to
            .parse()
            .map_err(|e| bad(format!("`to` {:?} is not a list of email addresses: {e}", settings.to)))?;
        let to: Vec<Mailbox> = to.into_iter().collect();
        if to.is_empty() {
            return Err(bad("`to` is empty; give at least one address".to_owned()));
        }
        for name in settings.headers.keys() {
            HeaderName::new_from_ascii(name.clone())
                .map_err(|_| bad(format!("header name {name:?} is not a valid email header name")))?;
        }
        let tls_parameters = || {
            TlsParameters::builder(host.to_owned())
                .dangerous_accept_invalid_certs(settings.tls_config.insecure_skip_verify)
                .build()
                .map_err(|e| bad(format!("cannot set up TLS for {host}: {e}")))
        };
        let tls = match settings.security() {
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters()?),
            SmtpSecurity::StartTls => Tls::Required(tls_parameters()?),
            SmtpSecurity::Plain => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .hello_name(ClientId::Domain(settings.hello.clone()))
            .timeout(Some(SMTP_TIMEOUT));
        if let Some(username) = &settings.auth_username {
            builder = builder
                .credentials(Credentials::new(
                    username.clone(),
                    settings.auth_password.clone().unwrap_or_default(),
                ))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        let fields = compile(&settings)?;
        Ok(Self { transport: builder.build(), settings, fields, from, to })
    }

    /// The message for `notification` (already prepared for `send_resolved` and `max_alerts`), its subject,
    /// headers and bodies rendered.
    pub fn message(&self, notification: &Notification) -> Result<Message, NotifyError> {
        let data = data(notification);
        let t = &self.settings.templates;
        let f = &self.fields;
        let mut builder = Message::builder().subject(render_field(t, "email", &f.subject, &data, false)?);
        // `From` and `To` headers set in `headers` replace the ones made from the settings.
        if !f.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("From")) {
            builder = builder.from(self.from.clone());
        }
        if !f.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("To")) {
            for to in &self.to {
                builder = builder.to(to.clone());
            }
        }
        // The envelope goes to `to` whatever a `To` header override says, as in Alertmanager.
        let recipients: Vec<Address> = self.to.iter().map(|m| m.email.clone()).collect();
        let envelope = Envelope::new(Some(self.from.email.clone()), recipients)
            .map_err(|e| NotifyError::permanent(format!("email receiver: bad envelope: {e}")))?;
        builder = builder.envelope(envelope);
        for (name, template) in &f.headers {
            let name = HeaderName::new_from_ascii(name.clone())
                .map_err(|_| NotifyError::permanent(format!("email receiver: bad header name {name:?}")))?;
            builder =
                builder.raw_header(HeaderValue::new(name, render_field(t, "email", template, &data, false)?));
        }
        let html = render_field(t, "email", &f.html, &data, true)?;
        let text = render_field(t, "email", &f.text, &data, false)?;
        let built = match (text.is_empty(), html.is_empty()) {
            (false, false) => builder.multipart(MultiPart::alternative_plain_html(text, html)),
            (true, false) => builder.singlepart(SinglePart::html(html)),
            _ => builder.singlepart(SinglePart::plain(text)),
        };
        built.map_err(|e| NotifyError::permanent(format!("email receiver: cannot build the message: {e}")))
    }

    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        let Some(notification) = prepare(notification, self.settings.send_resolved, self.settings.max_alerts)
        else {
            return Ok(());
        };
        let message = self.message(&notification)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let message = format!("email to {} via {}: {e}", self.settings.to, self.settings.smarthost);
                // A 5xx reply (a rejected recipient, failed authentication), a server without the
                // STARTTLS that `require_tls` asks for, or a failed TLS handshake will fail again; a 4xx
                // reply, a timeout or a dropped connection may not.
                if e.is_permanent() || e.is_client() || e.is_tls() || crate::notify::http::tls_rejected(&e) {
                    Err(NotifyError::permanent(format!("{message}; fix the receiver's settings")))
                } else {
                    Err(NotifyError::retryable(message))
                }
            }
        }
    }
}

impl Notifier for EmailNotifier {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(self.send(notification))
    }
}

/// The settings' templated fields, parsed.
#[derive(Debug)]
struct Fields {
    subject: FieldTemplate,
    /// Every header but `Subject`.
    headers: Vec<(String, FieldTemplate)>,
    html: FieldTemplate,
    text: FieldTemplate,
}

/// Parses the templated fields, with Alertmanager's defaults for the unset ones.
fn compile(s: &EmailSettings) -> Result<Fields, NotifyError> {
    let t = &s.templates;
    let subject =
        s.headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("Subject")).map(|(_, v)| v.as_str());
    let mut headers = Vec::new();
    for (name, text) in s.headers.iter().filter(|(name, _)| !name.eq_ignore_ascii_case("Subject")) {
        headers.push((name.clone(), compile_field(t, "email", &format!("headers.{name}"), text)?));
    }
    Ok(Fields {
        subject: compile_or(
            t,
            "email",
            "headers.Subject",
            subject,
            r#"{{ template "email.default.subject" . }}"#,
        )?,
        headers,
        html: compile_or(t, "email", "html", s.html.as_deref(), r#"{{ template "email.default.html" . }}"#)?,
        text: compile_or(t, "email", "text", s.text.as_deref(), r#"{{ template "email.default.text" . }}"#)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EmailSettings {
        EmailSettings {
            to: "ops@example.org, dev@example.org".into(),
            from: "sightline@example.org".into(),
            smarthost: "127.0.0.1:2525".into(),
            require_tls: false,
            ..Default::default()
        }
    }

    #[test]
    fn bad_settings_say_what_to_fix() {
        let err =
            EmailNotifier::new(EmailSettings { smarthost: "nohost".into(), ..settings() }).expect_err("port");
        assert!(err.message.contains("`smarthost` must be host:port"), "{}", err.message);
        let err = EmailNotifier::new(EmailSettings { from: "not an address".into(), ..settings() })
            .expect_err("from");
        assert!(err.message.contains("`from`"), "{}", err.message);
        let err = EmailNotifier::new(EmailSettings { to: String::new(), ..settings() }).expect_err("to");
        assert!(err.message.contains("`to`"), "{}", err.message);
        assert!(EmailNotifier::new(settings()).is_ok());
    }
}
