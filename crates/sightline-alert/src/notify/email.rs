//! The email integration: a plain-text and HTML message listing the alerts, sent over SMTP with lettre
//! (implicit TLS, STARTTLS or plain, with PLAIN/LOGIN authentication), as Alertmanager's email receiver
//! chooses them.

use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::model::{Alert, AlertStatus, BoxFuture, Notification, Notifier, NotifyError};
use crate::notify::config::{EmailSettings, SmtpSecurity};
use crate::notify::{alerts_with, counts, prepare, subject, text_alert_list};

/// The SMTP conversation's own timeout per command; the retry wrapper bounds the whole delivery.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends notifications by email.
#[derive(Debug)]
pub struct EmailNotifier {
    settings: EmailSettings,
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
        Ok(Self { transport: builder.build(), settings, from, to })
    }

    /// The message for `notification` (already prepared for `send_resolved` and `max_alerts`).
    pub fn message(&self, notification: &Notification) -> Result<Message, NotifyError> {
        let mut builder = Message::builder().from(self.from.clone()).subject(subject(notification));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        // The envelope goes to `to` whatever a `To` header override says, as in Alertmanager.
        let recipients: Vec<Address> = self.to.iter().map(|m| m.email.clone()).collect();
        let envelope = Envelope::new(Some(self.from.email.clone()), recipients)
            .map_err(|e| NotifyError::permanent(format!("email receiver: bad envelope: {e}")))?;
        builder = builder.envelope(envelope);
        for (name, value) in &self.settings.headers {
            let name = HeaderName::new_from_ascii(name.clone())
                .map_err(|_| NotifyError::permanent(format!("email receiver: bad header name {name:?}")))?;
            builder = builder.raw_header(HeaderValue::new(name, value.clone()));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text_body(notification), html_body(notification)))
            .map_err(|e| NotifyError::permanent(format!("email receiver: cannot build the message: {e}")))
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

/// The plain-text body: the subject, then the firing and the resolved alerts in Alertmanager's text list
/// format.
pub fn text_body(notification: &Notification) -> String {
    let (firing, resolved) = counts(notification);
    let mut out = format!("{}\n", subject(notification));
    if !notification.external_url.is_empty() {
        out.push_str(&format!("{}\n", notification.external_url));
    }
    if firing > 0 {
        out.push_str(&format!("\n{firing} firing:\n\n"));
        out.push_str(&text_alert_list(alerts_with(notification, AlertStatus::Firing)));
    }
    if resolved > 0 {
        out.push_str(&format!("\n{resolved} resolved:\n\n"));
        out.push_str(&text_alert_list(alerts_with(notification, AlertStatus::Resolved)));
    }
    if notification.truncated_alerts > 0 {
        out.push_str(&format!("\n{} more alerts left out.\n", notification.truncated_alerts));
    }
    out
}

/// The HTML body: the same content as [`text_body`], as a simple document.
pub fn html_body(notification: &Notification) -> String {
    let (firing, resolved) = counts(notification);
    let mut out = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n");
    out.push_str(&format!("<h2>{}</h2>\n", escape(&subject(notification))));
    if !notification.external_url.is_empty() {
        let url = escape(&notification.external_url);
        out.push_str(&format!("<p><a href=\"{url}\">{url}</a></p>\n"));
    }
    for (status, count, heading) in
        [(AlertStatus::Firing, firing, "firing"), (AlertStatus::Resolved, resolved, "resolved")]
    {
        if count == 0 {
            continue;
        }
        out.push_str(&format!("<h3>{count} {heading}</h3>\n"));
        for alert in alerts_with(notification, status) {
            html_alert(&mut out, alert);
        }
    }
    if notification.truncated_alerts > 0 {
        out.push_str(&format!("<p>{} more alerts left out.</p>\n", notification.truncated_alerts));
    }
    out.push_str("</body></html>\n");
    out
}

fn html_alert(out: &mut String, alert: &Alert) {
    out.push_str(
        "<table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse;margin-bottom:1em\">\n",
    );
    for (kind, set) in [("label", &alert.labels), ("annotation", &alert.annotations)] {
        for (name, value) in set {
            out.push_str(&format!(
                "<tr><td>{kind}</td><td><b>{}</b></td><td>{}</td></tr>\n",
                escape(name),
                escape(value)
            ));
        }
    }
    if !alert.generator_url.is_empty() {
        let url = escape(&alert.generator_url);
        out.push_str(&format!(
            "<tr><td>source</td><td colspan=\"2\"><a href=\"{url}\">{url}</a></td></tr>\n"
        ));
    }
    out.push_str("</table>\n");
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
