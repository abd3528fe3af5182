//! The email receiver against a local SMTP sink (written in the test, so no mail server is needed):
//! envelope, authentication, headers and body; rejected recipients and missing STARTTLS fail permanently.

mod notify_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify_support::{SmtpSink, SmtpTls};
use sightline_alert::model::{Alert, AlertStatus, LabelSet, Notification, Notifier};
use sightline_alert::notify::{EmailNotifier, EmailSettings, SmtpSecurity, TlsConfig};

fn set(pairs: &[(&str, &str)]) -> LabelSet {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn notification() -> Notification {
    let alert = Alert {
        labels: set(&[("alertname", "DiskFull"), ("device", "sda1"), ("severity", "critical")]),
        annotations: set(&[("summary", "sda1 is 97% full")]),
        starts_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ends_at: None,
        generator_url: "http://sightline:9090/graph".into(),
    };
    Notification {
        receiver: "ops-mail".into(),
        group_key: "{}:{alertname=\"DiskFull\"}".into(),
        group_labels: set(&[("alertname", "DiskFull")]),
        common_labels: alert.labels.clone(),
        common_annotations: alert.annotations.clone(),
        status: AlertStatus::Firing,
        alerts: vec![(AlertStatus::Firing, alert)],
        truncated_alerts: 0,
        external_url: "http://sightline:9090".into(),
    }
}

fn settings(sink: &SmtpSink) -> EmailSettings {
    EmailSettings {
        to: "ops@example.org, oncall@example.org".into(),
        from: "sightline@example.org".into(),
        smarthost: sink.addr.to_string(),
        hello: "sightline.test".into(),
        require_tls: false,
        ..EmailSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_a_message_listing_the_alerts() {
    let sink = SmtpSink::start(vec![]).await;
    let notifier = EmailNotifier::new(EmailSettings {
        auth_username: Some("user".into()),
        auth_password: Some("pass".into()),
        headers: set(&[("X-Team", "storage")]),
        ..settings(&sink)
    })
    .expect("valid settings");
    notifier.notify(&notification()).await.expect("delivered");

    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.ehlo, "sightline.test");
    // "\0user\0pass" in base64.
    assert_eq!(mail.auth.as_deref(), Some("AUTH PLAIN AHVzZXIAcGFzcw=="));
    assert!(mail.mail_from.starts_with("MAIL FROM:<sightline@example.org>"), "{}", mail.mail_from);
    assert_eq!(mail.rcpt_to.len(), 2);
    assert!(
        mail.rcpt_to[0].contains("<ops@example.org>") && mail.rcpt_to[1].contains("<oncall@example.org>")
    );
    let data = &mail.data;
    assert!(data.contains("Subject: [FIRING:1] DiskFull (sda1 critical)\r\n"), "{data}");
    assert!(data.contains("From: sightline@example.org\r\n"), "{data}");
    assert!(data.contains("X-Team: storage\r\n"), "{data}");
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("text/plain") && data.contains("text/html"), "{data}");
    assert!(data.contains(" - summary = sda1 is 97% full"), "{data}");
    assert!(data.contains("1 firing:"), "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_groups_are_sent_only_with_send_resolved() {
    let sink = SmtpSink::start(vec![]).await;
    let mut resolved = notification();
    resolved.status = AlertStatus::Resolved;
    resolved.alerts[0].0 = AlertStatus::Resolved;
    resolved.alerts[0].1.ends_at = Some(SystemTime::now());
    let quiet = EmailNotifier::new(settings(&sink)).expect("valid settings");
    quiet.notify(&resolved).await.expect("nothing to send");
    assert!(sink.mails().is_empty(), "send_resolved is off by default, as in Alertmanager");
    let loud =
        EmailNotifier::new(EmailSettings { send_resolved: true, ..settings(&sink) }).expect("valid settings");
    loud.notify(&resolved).await.expect("delivered");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].data.contains("Subject: [RESOLVED] DiskFull (sda1 critical)"), "{}", mails[0].data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_upgrades_before_authenticating() {
    let sink = SmtpSink::start_with(vec![], SmtpTls::StartTls).await;
    let notifier = EmailNotifier::new(EmailSettings {
        require_tls: true,
        auth_username: Some("user".into()),
        auth_password: Some("pass".into()),
        // The sink's certificate is self-signed.
        tls_config: TlsConfig { insecure_skip_verify: true },
        ..settings(&sink)
    })
    .expect("valid settings");
    assert_eq!(EmailSettings { require_tls: true, ..settings(&sink) }.security(), SmtpSecurity::StartTls);
    notifier.notify(&notification()).await.expect("delivered over STARTTLS");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].encrypted, "the message went over TLS");
    assert_eq!(mails[0].auth.as_deref(), Some("AUTH PLAIN AHVzZXIAcGFzcw=="));
    assert!(mails[0].data.contains("Subject: [FIRING:1] DiskFull (sda1 critical)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_is_used_with_force_implicit_tls() {
    let sink = SmtpSink::start_with(vec![], SmtpTls::Implicit).await;
    let notifier = EmailNotifier::new(EmailSettings {
        force_implicit_tls: true,
        tls_config: TlsConfig { insecure_skip_verify: true },
        ..settings(&sink)
    })
    .expect("valid settings");
    notifier.notify(&notification()).await.expect("delivered over TLS");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].encrypted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_permanent_failure() {
    let sink = SmtpSink::start_with(vec![], SmtpTls::Implicit).await;
    let notifier = EmailNotifier::new(EmailSettings { force_implicit_tls: true, ..settings(&sink) })
        .expect("valid settings");
    let err = notifier.notify(&notification()).await.expect_err("self-signed");
    assert!(!err.retryable, "{}", err.message);
    assert!(sink.mails().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_recipient_is_a_permanent_failure() {
    let sink = SmtpSink::start(vec!["oncall@example.org".into()]).await;
    let notifier = EmailNotifier::new(settings(&sink)).expect("valid settings");
    let err = notifier.notify(&notification()).await.expect_err("550");
    assert!(!err.retryable, "{}", err.message);
    assert!(err.message.contains("No such user"), "{}", err.message);
    assert!(sink.mails().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_fails_without_starttls() {
    let sink = SmtpSink::start(vec![]).await;
    let notifier =
        EmailNotifier::new(EmailSettings { require_tls: true, ..settings(&sink) }).expect("valid settings");
    let err = notifier.notify(&notification()).await.expect_err("the sink offers no STARTTLS");
    assert!(!err.retryable, "{}", err.message);
    assert!(sink.mails().is_empty(), "nothing is sent in the clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_retryable() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port");
    let notifier = EmailNotifier::new(EmailSettings {
        to: "ops@example.org".into(),
        from: "sightline@example.org".into(),
        smarthost: addr.to_string(),
        require_tls: false,
        ..EmailSettings::default()
    })
    .expect("valid settings");
    let err = notifier.notify(&notification()).await.expect_err("connection refused");
    assert!(err.retryable, "{}", err.message);
}
