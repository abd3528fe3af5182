//! Receiver template benchmarks: what rendering a notification's fields costs each delivery, with
//! Alertmanager's default templates (no receiver field set), for a group of 100 firing alerts (four labels,
//! two annotations each).
//!
//! - `slack_message_100_alerts`: the Slack message (title, text, fallback, color, ... from `slack.default.*`).
//! - `pagerduty_event_100_alerts`: the PagerDuty event (description, client, `details` listing every alert).
//! - `email_message_100_alerts`: the email (subject, `email.default.html` escaped as `html/template` does,
//!   the plain-text part), built into a MIME message.
//!
//! Results are in `docs/benchmarks.md` (Alerting section).

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use sightline_alert::model::{Alert, AlertStatus, LabelSet, Notification};
use sightline_alert::notify::{
    EmailNotifier, EmailSettings, PagerDutyNotifier, PagerDutySettings, SlackNotifier, SlackSettings,
};

fn set(pairs: &[(&str, &str)]) -> LabelSet {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn notification(alerts: usize) -> Notification {
    let alerts = (0..alerts)
        .map(|i| {
            let instance = format!("host-{i}:9100");
            let alert = Alert {
                labels: set(&[
                    ("alertname", "HighLatency"),
                    ("instance", &instance),
                    ("job", "api"),
                    ("severity", "critical"),
                ]),
                annotations: set(&[
                    ("summary", &format!("p99 latency above 1s on {instance}")),
                    ("runbook_url", "https://wiki.example.org/runbooks/latency"),
                ]),
                starts_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                ends_at: None,
                generator_url: "http://sightline:9090/graph?g0.expr=latency&g0.tab=1".into(),
            };
            (AlertStatus::Firing, alert)
        })
        .collect();
    Notification {
        receiver: "team-api".into(),
        group_key: "{}:{alertname=\"HighLatency\"}".into(),
        group_labels: set(&[("alertname", "HighLatency")]),
        common_labels: set(&[("alertname", "HighLatency"), ("job", "api"), ("severity", "critical")]),
        common_annotations: set(&[("runbook_url", "https://wiki.example.org/runbooks/latency")]),
        status: AlertStatus::Firing,
        alerts,
        truncated_alerts: 0,
        external_url: "http://sightline:9090".into(),
    }
}

fn bench(c: &mut Criterion) {
    let n = notification(100);
    let slack = SlackNotifier::new(SlackSettings {
        api_url: "http://127.0.0.1:9/slack".into(),
        ..Default::default()
    })
    .expect("valid settings");
    c.bench_function("slack_message_100_alerts", |b| {
        b.iter(|| black_box(slack.message(black_box(&n)).expect("renders")))
    });
    let pagerduty =
        PagerDutyNotifier::new(PagerDutySettings { routing_key: "key".into(), ..Default::default() })
            .expect("valid settings");
    c.bench_function("pagerduty_event_100_alerts", |b| {
        b.iter(|| black_box(pagerduty.event(black_box(&n)).expect("renders")))
    });
    let email = EmailNotifier::new(EmailSettings {
        to: "ops@example.org".into(),
        from: "sightline@example.org".into(),
        smarthost: "127.0.0.1:25".into(),
        require_tls: false,
        ..Default::default()
    })
    .expect("valid settings");
    c.bench_function("email_message_100_alerts", |b| {
        b.iter(|| black_box(email.message(black_box(&n)).expect("renders")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
