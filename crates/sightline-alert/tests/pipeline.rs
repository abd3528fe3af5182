//! The notification pipeline end to end with a recording fake notifier and tokio's paused clock: routing,
//! grouping timing, repeat, acknowledgement, escalation, inhibition, silences, time intervals, retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sightline_alert::model::BoxFuture;
use sightline_alert::pipeline::config::{GlobalConfig, IntegrationConfig, Receiver};
use sightline_alert::pipeline::dispatch::{AlertState, DispatchError};
use sightline_alert::pipeline::{
    Config, Dispatcher, DispatcherOptions, Matcher, MemoryStore, NotifierFactory, PipelineEvent,
    PipelineStore, Silence,
};
use sightline_alert::{
    Alert, AlertSink, AlertStatus, Fingerprint, LabelSet, Notification, Notifier, NotifyError,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One delivery attempt the fake saw: when (since the test's start), to whom, what.
#[derive(Clone, Debug)]
struct Sent {
    at: Duration,
    notification: Notification,
}

/// How a fake receiver behaves.
#[derive(Clone, Copy, Debug, Default)]
enum Behaviour {
    #[default]
    Ok,
    /// Fails (retryably) this many times, then succeeds.
    FailTimes(usize),
    /// Never answers within any timeout.
    Hang,
}

#[derive(Debug)]
struct Recorder {
    start: Instant,
    behaviour: Behaviour,
    attempts: Mutex<usize>,
    sent: Arc<Mutex<Vec<Sent>>>,
}

impl Notifier for Recorder {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let attempt = {
                let mut attempts = self.attempts.lock().expect("lock");
                *attempts += 1;
                *attempts
            };
            match self.behaviour {
                Behaviour::Hang => {
                    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
                    return Err(NotifyError::retryable("hung"));
                }
                Behaviour::FailTimes(n) if attempt <= n => {
                    return Err(NotifyError::retryable("503 from fake"));
                }
                _ => {}
            }
            self.sent
                .lock()
                .expect("lock")
                .push(Sent { at: self.start.elapsed(), notification: notification.clone() });
            Ok(())
        })
    }
}

/// Builds one recorder per receiver; all record into one shared log.
struct Fakes {
    start: Instant,
    behaviours: HashMap<String, Behaviour>,
    sent: Arc<Mutex<Vec<Sent>>>,
}

impl NotifierFactory for Fakes {
    fn build(
        &self,
        receiver: &Receiver,
        _integration: &IntegrationConfig,
        _global: &GlobalConfig,
    ) -> Result<Arc<dyn Notifier>, String> {
        Ok(Arc::new(Recorder {
            start: self.start,
            behaviour: self.behaviours.get(&receiver.name).copied().unwrap_or_default(),
            attempts: Mutex::new(0),
            sent: self.sent.clone(),
        }))
    }
}

/// (seconds since start, receiver, [(status, instance or alertname)]) of one notification.
type LogLine = (u64, String, Vec<(AlertStatus, String)>);

struct Harness {
    dispatcher: Dispatcher,
    sent: Arc<Mutex<Vec<Sent>>>,
    events: mpsc::UnboundedReceiver<PipelineEvent>,
    store: Arc<MemoryStore>,
}

impl Harness {
    fn new(yaml: &str) -> Self {
        Self::with(yaml, &[], None)
    }

    fn with(yaml: &str, behaviours: &[(&str, Behaviour)], wall: Option<SystemTime>) -> Self {
        let config = Config::parse(yaml).expect("valid config");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let factory = Fakes {
            start: Instant::now(),
            behaviours: behaviours.iter().map(|(n, b)| ((*n).to_owned(), *b)).collect(),
            sent: sent.clone(),
        };
        let (tx, events) = mpsc::unbounded_channel();
        let store = Arc::new(MemoryStore::new());
        let dispatcher = Dispatcher::new(
            config,
            Arc::new(factory),
            DispatcherOptions {
                store: store.clone(),
                external_url: "http://sightline.test".into(),
                events: Some(tx),
                wall_clock_start: wall,
            },
        )
        .expect("dispatcher");
        Self { dispatcher, sent, events, store }
    }

    fn alert(&self, labels: &[(&str, &str)]) -> Alert {
        let now = self.dispatcher.now();
        Alert {
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            annotations: LabelSet::new(),
            starts_at: now,
            ends_at: Some(now + Duration::from_secs(100 * 86400)),
            generator_url: String::new(),
        }
    }

    fn fire(&self, labels: &[(&str, &str)]) -> Fingerprint {
        let alert = self.alert(labels);
        let fp = alert.fingerprint();
        self.dispatcher.send(vec![alert]);
        fp
    }

    fn resolve(&self, labels: &[(&str, &str)]) {
        let mut alert = self.alert(labels);
        alert.ends_at = Some(self.dispatcher.now());
        self.dispatcher.send(vec![alert]);
    }

    /// (seconds since start, receiver, [(status, alertname)]) of each notification so far.
    fn log(&self) -> Vec<LogLine> {
        self.sent
            .lock()
            .expect("lock")
            .iter()
            .map(|s| {
                let alerts = s
                    .notification
                    .alerts
                    .iter()
                    .map(|(st, a)| {
                        (
                            *st,
                            a.labels
                                .get("instance")
                                .or(a.labels.get("alertname"))
                                .cloned()
                                .unwrap_or_default(),
                        )
                    })
                    .collect();
                (s.at.as_secs(), s.notification.receiver.clone(), alerts)
            })
            .collect()
    }

    fn drain_events(&mut self) -> Vec<PipelineEvent> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }
}

async fn sleep_secs(s: u64) {
    tokio::time::sleep(Duration::from_secs(s)).await;
}

fn receivers(names: &[&str]) -> String {
    let mut out = String::from("receivers:\n");
    for name in names {
        out.push_str(&format!("- name: {name}\n  webhook_configs:\n  - url: http://127.0.0.1:9/{name}\n"));
    }
    out
}

use AlertStatus::{Firing, Resolved};

fn firing(names: &[&str]) -> Vec<(AlertStatus, String)> {
    names.iter().map(|n| (Firing, (*n).to_owned())).collect()
}

#[tokio::test(start_paused = true)]
async fn routing_tree_with_continue_inheritance_and_matchers() {
    let yaml = format!(
        r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  routes:
  - matchers: ['team="db"']
    receiver: db
    group_wait: 20s
    continue: true
    routes:
    - match: {{severity: critical}}
      receiver: db-pager
  - matchers: ['team=~"db|web"', 'env!="dev"']
    receiver: web
  - match_re: {{service: "^(api|auth)$"}}
    receiver: api
{}"#,
        receivers(&["default", "db", "db-pager", "web", "api"])
    );
    let h = Harness::new(&yaml);
    h.fire(&[("alertname", "A"), ("team", "db"), ("severity", "critical")]);
    h.fire(&[("alertname", "B"), ("team", "db"), ("env", "prod")]);
    h.fire(&[("alertname", "C"), ("team", "db"), ("env", "dev")]);
    h.fire(&[("alertname", "D"), ("service", "auth")]);
    h.fire(&[("alertname", "E"), ("service", "authx")]);
    h.dispatcher.sync().await;
    let mut routed: Vec<(String, Vec<String>)> =
        h.dispatcher.alerts().into_iter().map(|a| (a.alert.name().to_owned(), a.receivers)).collect();
    routed.sort();
    let expect = |n: &str, r: &[&str]| (n.to_owned(), r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    assert_eq!(
        routed,
        vec![
            // The db-pager child wins over its parent; `continue` on the db route lets web match too.
            expect("A", &["db-pager", "web"]),
            expect("B", &["db", "web"]),
            expect("C", &["db"]),
            expect("D", &["api"]),
            expect("E", &["default"]),
        ]
    );
    // The children inherit group_wait 20s from the db route; web and the root use 10s.
    sleep_secs(15).await;
    let early: Vec<String> = h.log().into_iter().map(|(_, r, _)| r).collect();
    assert!(!early.iter().any(|r| r.starts_with("db")), "{early:?}");
    assert!(early.contains(&"web".to_owned()) && early.contains(&"api".to_owned()), "{early:?}");
    sleep_secs(10).await;
    let log = h.log();
    assert!(log.iter().any(|(t, r, a)| *t == 20 && r == "db-pager" && *a == firing(&["A"])), "{log:?}");
    // Grouped by alertname: one notification per alert name per receiver.
    assert_eq!(log.iter().filter(|(_, r, _)| r == "web").count(), 2);
}

const TIMING: &str = r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
"#;

#[tokio::test(start_paused = true)]
async fn group_wait_interval_and_repeat() {
    let h = Harness::new(&format!("{TIMING}{}", receivers(&["team"])));
    h.fire(&[("alertname", "Disk"), ("instance", "a")]);
    sleep_secs(10).await;
    h.fire(&[("alertname", "Disk"), ("instance", "b")]);
    sleep_secs(25).await;
    assert_eq!(h.log(), vec![(30, "team".to_owned(), firing(&["a", "b"]))], "both wait for the first flush");
    h.fire(&[("alertname", "Disk"), ("instance", "c")]);
    // Nothing before the next group interval, then one notification with all three.
    sleep_secs(200).await;
    assert_eq!(h.log().len(), 1);
    sleep_secs(100).await;
    assert_eq!(h.log()[1], (330, "team".to_owned(), firing(&["a", "b", "c"])));
    // No change: nothing until the repeat interval (1h after the last notification, at a group tick).
    sleep_secs(3000).await;
    assert_eq!(h.log().len(), 2);
    sleep_secs(700).await;
    assert_eq!(h.log().len(), 3);
    assert_eq!(h.log()[2].0, 330 + 3600);
    // A resolved alert is sent at the next tick (webhooks send resolved by default), then dropped.
    h.resolve(&[("alertname", "Disk"), ("instance", "a")]);
    sleep_secs(300).await;
    let log = h.log();
    assert_eq!(
        log[3].2,
        vec![(Resolved, "a".to_owned()), (Firing, "b".to_owned()), (Firing, "c".to_owned())]
    );
    sleep_secs(600).await;
    assert_eq!(h.log().len(), 4, "no duplicates of an unchanged group");
    assert_eq!(h.dispatcher.alerts().len(), 2, "the resolved alert was garbage-collected");
}

/// A resolution is sent once per integration: the resolved alert stays in its group until the flush after
/// the notification that carried it, and another alert changing in between must not carry it again
/// (Alertmanager drops it from the group once that notification succeeded).
#[tokio::test(start_paused = true)]
async fn a_resolution_is_not_repeated_when_another_alert_of_the_group_changes() {
    let h = Harness::new(&format!("{TIMING}{}", receivers(&["team"])));
    h.fire(&[("alertname", "Disk"), ("instance", "a")]);
    h.fire(&[("alertname", "Disk"), ("instance", "b")]);
    sleep_secs(31).await;
    assert_eq!(h.log(), vec![(30, "team".to_owned(), firing(&["a", "b"]))]);
    h.resolve(&[("alertname", "Disk"), ("instance", "a")]);
    sleep_secs(300).await;
    assert_eq!(h.log()[1].2, vec![(Resolved, "a".to_owned()), (Firing, "b".to_owned())]);
    // b resolves before the next flush, while a is still in the group.
    h.resolve(&[("alertname", "Disk"), ("instance", "b")]);
    sleep_secs(300).await;
    let log = h.log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[2].2, vec![(Resolved, "b".to_owned())], "a's resolution was already sent");
    sleep_secs(3600).await;
    assert_eq!(h.log().len(), 3, "nothing more for a resolved group");
}

#[tokio::test(start_paused = true)]
async fn acknowledgement_stops_reminders_but_not_news() {
    let mut h = Harness::new(&format!("{TIMING}{}", receivers(&["team"])));
    let fp = h.fire(&[("alertname", "Disk"), ("instance", "a")]);
    sleep_secs(31).await;
    assert_eq!(h.log().len(), 1);
    let ack = h.dispatcher.ack(fp, "alice", "looking").expect("ack");
    assert_eq!(ack.by, "alice");
    assert!(h.drain_events().iter().any(|e| matches!(e, PipelineEvent::Acked { by, .. } if by == "alice")));
    assert_eq!(h.dispatcher.alerts()[0].acked.as_ref().map(|a| a.comment.as_str()), Some("looking"));
    sleep_secs(2 * 3600).await;
    assert_eq!(h.log().len(), 1, "acked: no reminder");
    h.fire(&[("alertname", "Disk"), ("instance", "b")]);
    sleep_secs(300).await;
    assert_eq!(h.log().len(), 2, "a new alert in the group is news");
    assert!(matches!(h.dispatcher.ack(Fingerprint(7), "x", ""), Err(DispatchError::UnknownAlert(_))));
}

#[tokio::test(start_paused = true)]
async fn escalation_after_unacked_timeout_two_levels() {
    let yaml = format!(
        r#"{TIMING}
escalations:
- name: critical
  matchers: ['severity="critical"']
  levels:
  - after: 15m
    receivers: [lead]
  - after: 1h
    receivers: [manager, lead]
{}"#,
        receivers(&["team", "lead", "manager"])
    );
    let mut h = Harness::new(&yaml);
    let fp = h.fire(&[("alertname", "Down"), ("severity", "critical")]);
    let acked_fp = h.fire(&[("alertname", "Down2"), ("severity", "critical")]);
    h.fire(&[("alertname", "Minor"), ("severity", "warning")]);
    sleep_secs(60).await;
    h.dispatcher.ack(acked_fp, "bob", "mine").expect("ack");
    sleep_secs(14 * 60 - 5).await;
    assert!(h.log().iter().all(|(_, r, _)| r != "lead"), "not before 15m");
    sleep_secs(10).await;
    let to = |h: &Harness, r: &str| {
        h.log().into_iter().filter(|(_, rr, _)| rr == r).map(|(t, _, a)| (t, a)).collect::<Vec<_>>()
    };
    assert_eq!(to(&h, "lead"), vec![(900, firing(&["Down"]))], "level 1 at 15m, only the unacked critical");
    sleep_secs(45 * 60).await;
    assert_eq!(to(&h, "manager"), vec![(3600, firing(&["Down"]))]);
    assert_eq!(to(&h, "lead").len(), 2);
    sleep_secs(3 * 3600).await;
    assert_eq!(to(&h, "lead").len(), 2, "each level once");
    let levels: Vec<usize> = h
        .drain_events()
        .into_iter()
        .filter_map(|e| match e {
            PipelineEvent::Escalated { fingerprint, level, .. } if fingerprint == fp => Some(level),
            _ => None,
        })
        .collect();
    assert_eq!(levels, vec![1, 2]);
    assert_eq!(h.store.escalations().len(), 1, "progress is in the store");
}

#[tokio::test(start_paused = true)]
async fn inhibition_of_warnings_by_a_critical_with_equal() {
    let yaml = format!(
        r#"{TIMING}
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [cluster]
{}"#,
        receivers(&["team"])
    );
    let mut h = Harness::new(&yaml);
    let crit = h.fire(&[("alertname", "Down"), ("severity", "critical"), ("cluster", "eu")]);
    h.fire(&[("alertname", "Slow"), ("instance", "eu-warn"), ("severity", "warning"), ("cluster", "eu")]);
    h.fire(&[("alertname", "Slow"), ("instance", "us-warn"), ("severity", "warning"), ("cluster", "us")]);
    sleep_secs(31).await;
    let sent: Vec<_> = h.log().into_iter().flat_map(|(_, _, a)| a).collect();
    assert!(sent.contains(&(Firing, "us-warn".to_owned())), "{sent:?}");
    assert!(!sent.contains(&(Firing, "eu-warn".to_owned())), "{sent:?}");
    let report = h.dispatcher.alerts();
    let eu =
        report.iter().find(|a| a.alert.labels.get("instance").is_some_and(|i| i == "eu-warn")).expect("eu");
    assert_eq!(eu.state, AlertState::Suppressed);
    assert_eq!(eu.inhibited_by, vec![crit]);
    assert!(
        h.drain_events().iter().any(
            |e| matches!(e, PipelineEvent::Inhibited { inhibited_by, .. } if *inhibited_by == vec![crit])
        )
    );
    // Once the critical resolves, the warning goes out at the next tick.
    h.resolve(&[("alertname", "Down"), ("severity", "critical"), ("cluster", "eu")]);
    sleep_secs(300).await;
    let sent: Vec<_> = h.log().into_iter().flat_map(|(_, _, a)| a).collect();
    assert!(sent.contains(&(Firing, "eu-warn".to_owned())), "{sent:?}");
}

fn silence(h: &Harness, matcher: &str, minutes: u64) -> Silence {
    let now = h.dispatcher.now();
    Silence {
        id: String::new(),
        matchers: vec![Matcher::parse(matcher).expect("matcher")],
        starts_at: now,
        ends_at: now + Duration::from_secs(minutes * 60),
        created_by: "carol".into(),
        comment: "deploy".into(),
        updated_at: now,
    }
}

#[tokio::test(start_paused = true)]
async fn silence_created_mid_group_and_expired() {
    let mut h = Harness::new(&format!("{TIMING}{}", receivers(&["team"])));
    h.fire(&[("alertname", "Disk"), ("instance", "a")]);
    h.fire(&[("alertname", "Disk"), ("instance", "b")]);
    sleep_secs(10).await;
    let id = h.dispatcher.add_silence(silence(&h, r#"instance=~"b|c""#, 60)).expect("silence");
    sleep_secs(25).await;
    assert_eq!(h.log(), vec![(30, "team".to_owned(), firing(&["a"]))]);
    let report = h.dispatcher.alerts();
    assert_eq!(report[1].silenced_by, vec![id.clone()]);
    assert!(h.drain_events().iter().any(
        |e| matches!(e, PipelineEvent::Silenced { silence_ids, .. } if *silence_ids == vec![id.clone()])
    ));
    assert_eq!(h.dispatcher.silences()[0].1, sightline_alert::pipeline::SilenceState::Active);
    h.dispatcher.expire_silence(&id).expect("expire");
    assert!(h.dispatcher.expire_silence(&id).is_err(), "already expired");
    sleep_secs(300).await;
    assert_eq!(h.log()[1].2, firing(&["a", "b"]), "unsilenced alert is news");
    // Validation: a silence that matches everything is refused with a clear message.
    let err = h.dispatcher.add_silence(silence(&h, r#"instance=~".*""#, 5)).expect_err("refused");
    assert!(err.to_string().contains("empty string"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn resolved_while_silenced_is_sent_when_configured() {
    for send in [false, true] {
        let yaml =
            format!("{TIMING}{}silencing:\n  send_resolved_while_silenced: {send}\n", receivers(&["team"]));
        let h = Harness::new(&yaml);
        h.fire(&[("alertname", "Disk"), ("instance", "a")]);
        sleep_secs(31).await;
        h.dispatcher.add_silence(silence(&h, r#"instance="a""#, 120)).expect("silence");
        sleep_secs(60).await;
        h.resolve(&[("alertname", "Disk"), ("instance", "a")]);
        sleep_secs(600).await;
        let log = h.log();
        if send {
            assert_eq!(log.len(), 2, "{log:?}");
            assert_eq!(log[1].2, vec![(Resolved, "a".to_owned())]);
        } else {
            assert_eq!(log.len(), 1, "Alertmanager's behaviour: {log:?}");
        }
        assert!(h.dispatcher.alerts().is_empty(), "resolved alert collected");
    }
}

#[tokio::test(start_paused = true)]
async fn time_intervals_mute_weekends_in_a_time_zone() {
    let yaml = format!(
        r#"
route:
  receiver: team
  group_wait: 30s
  group_interval: 5m
  routes:
  - matchers: [team="ops"]
    mute_time_intervals: [weekend]
  - matchers: [team="office"]
    active_time_intervals: [office-hours]
time_intervals:
- name: weekend
  time_intervals:
  - weekdays: ['saturday', 'sunday']
    location: America/New_York
- name: office-hours
  time_intervals:
  - weekdays: ['monday:friday']
    times:
    - start_time: '09:00'
      end_time: '17:00'
    location: Europe/Berlin
{}"#,
        receivers(&["team"])
    );
    // Monday 2026-11-30 03:00 UTC is still Sunday 22:00 in New York and 04:00 in Berlin.
    let start = SystemTime::from("2026-11-30T03:00:00Z".parse::<jiff::Timestamp>().expect("ts"));
    let h = Harness::with(&yaml, &[], Some(start));
    h.fire(&[("alertname", "A"), ("team", "ops")]);
    h.fire(&[("alertname", "B"), ("team", "office")]);
    sleep_secs(31).await;
    assert!(h.log().is_empty(), "{:?}", h.log());
    let report = h.dispatcher.alerts();
    assert!(report.iter().all(|a| a.muted && a.state == AlertState::Suppressed));
    // 05:05 UTC: Monday 00:05 in New York (weekend over); Berlin 06:05 still before office hours.
    sleep_secs(2 * 3600 + 5 * 60).await;
    assert_eq!(h.log().iter().map(|(_, _, a)| a.clone()).collect::<Vec<_>>(), vec![firing(&["A"])]);
    // 08:00 UTC is 09:00 in Berlin.
    sleep_secs(3 * 3600).await;
    assert_eq!(h.log().len(), 2);
    assert_eq!(h.log()[1].2, firing(&["B"]));
}

#[tokio::test(start_paused = true)]
async fn failing_receiver_is_retried_and_blocks_nobody() {
    let yaml = format!(
        r#"
route:
  receiver: flaky
  group_wait: 30s
  routes:
  - matchers: [team="a"]
    receiver: flaky
    continue: true
  - matchers: [team="a"]
    receiver: hung
    continue: true
  - matchers: [team="a"]
    receiver: good
{}- name: hung-unused
  webhook_configs:
  - url: http://127.0.0.1:9/x
"#,
        receivers(&["flaky", "hung", "good"])
    )
    .replace("- name: flaky\n  webhook_configs:\n  - url: http://127.0.0.1:9/flaky\n", "- name: flaky\n  webhook_configs:\n  - url: http://127.0.0.1:9/flaky\n  retries: 3\n  retry_backoff: 1s\n")
    .replace("- name: hung\n  webhook_configs:\n  - url: http://127.0.0.1:9/hung\n", "- name: hung\n  webhook_configs:\n  - url: http://127.0.0.1:9/hung\n  timeout: 5s\n  retries: 1\n");
    let mut h = Harness::with(&yaml, &[("flaky", Behaviour::FailTimes(2)), ("hung", Behaviour::Hang)], None);
    h.fire(&[("alertname", "A"), ("team", "a")]);
    sleep_secs(30).await;
    tokio::task::yield_now().await;
    let log = h.log();
    assert_eq!(
        log.iter().filter(|(_, r, _)| r == "good").map(|(t, _, _)| *t).collect::<Vec<_>>(),
        vec![30],
        "{log:?}"
    );
    sleep_secs(30).await;
    let log = h.log();
    let flaky: Vec<u64> = log.iter().filter(|(_, r, _)| r == "flaky").map(|(t, _, _)| *t).collect();
    // Two failures with backoffs of about 1s and 2s (jitter 0.5x-1.5x), then success.
    assert_eq!(flaky.len(), 1, "{log:?}");
    assert!((31..=35).contains(&flaky[0]), "{flaky:?}");
    let events = h.drain_events();
    assert!(
        events.iter().any(
            |e| matches!(e, PipelineEvent::Notified { receiver, attempts: 3, .. } if receiver == "flaky")
        ),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e, PipelineEvent::DeliveryFailed { receiver, attempts: 2, error, .. } if receiver == "hung" && error.contains("timed out"))),
        "{events:?}"
    );
    assert!(log.iter().all(|(_, r, _)| r != "hung"));
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_silences_acks_nflog_and_groups() {
    let yaml = format!("{TIMING}{}", receivers(&["team"]));
    let h = Harness::new(&yaml);
    let fp = h.fire(&[("alertname", "Disk"), ("instance", "a")]);
    sleep_secs(31).await;
    h.dispatcher.ack(fp, "dave", "on it").expect("ack");
    h.dispatcher.add_silence(silence(&h, r#"instance="zzz""#, 600)).expect("silence");
    let changed = yaml.replace("repeat_interval: 1h", "repeat_interval: 2h");
    h.dispatcher.apply_config(Config::parse(&changed).expect("valid")).expect("reload");
    sleep_secs(600).await;
    assert_eq!(h.log().len(), 1, "the notification log survived: nothing re-sent");
    assert_eq!(h.dispatcher.silences().len(), 1);
    assert!(h.dispatcher.alerts()[0].acked.is_some());
    assert_eq!(h.store.nflog_entries().len(), 1);
    // A config whose integration cannot be built is refused and the old one kept.
    let bad = Config::parse(&changed.replace("receiver: team", "receiver: nobody"));
    assert!(bad.is_err());
}

#[tokio::test(start_paused = true)]
async fn no_duplicates_across_many_flushes_and_max_alerts() {
    let yaml = format!("{TIMING}{}", receivers(&["team"]))
        .replace("- url: http://127.0.0.1:9/team\n", "- url: http://127.0.0.1:9/team\n    max_alerts: 2\n");
    let h = Harness::new(&yaml);
    for i in 0..5 {
        h.fire(&[("alertname", "Disk"), ("instance", &format!("i{i}"))]);
    }
    // Alerts re-sent by rule evaluation every 15s change nothing.
    for _ in 0..40 {
        sleep_secs(15).await;
        for i in 0..5 {
            h.fire(&[("alertname", "Disk"), ("instance", &format!("i{i}"))]);
        }
    }
    let sent = h.sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 1, "{:?}", h.log());
    assert_eq!(sent[0].notification.alerts.len(), 2);
    assert_eq!(sent[0].notification.truncated_alerts, 3);
    assert_eq!(sent[0].notification.group_labels.get("alertname").map(String::as_str), Some("Disk"));
    assert_eq!(sent[0].notification.common_labels.get("alertname").map(String::as_str), Some("Disk"));
}

#[tokio::test(start_paused = true)]
async fn alerts_without_an_end_resolve_after_the_resolve_timeout() {
    let yaml = format!("global:\n  resolve_timeout: 10m\n{TIMING}{}", receivers(&["team"]));
    let mut h = Harness::new(&yaml);
    let mut alert = h.alert(&[("alertname", "Disk"), ("instance", "a")]);
    alert.ends_at = None;
    h.dispatcher.send(vec![alert]);
    sleep_secs(31).await;
    assert_eq!(h.log(), vec![(30, "team".to_owned(), firing(&["a"]))]);
    assert_eq!(h.dispatcher.alerts()[0].alert.ends_at, None, "an open end is not shown while firing");
    // Not refreshed: resolved 10m after the last update, told at the next tick after that.
    sleep_secs(600).await;
    assert_eq!(h.log().last().map(|l| l.2.clone()), Some(vec![(Resolved, "a".to_owned())]));
    let events = h.drain_events();
    assert!(
        events.iter().any(|e| matches!(e, PipelineEvent::Notified { resolved, .. } if resolved.len() == 1))
    );
    // Resolved by its timeout, not by a message: still one Resolved event for the history.
    assert_eq!(
        events.iter().filter(|e| matches!(e, PipelineEvent::Resolved { .. })).count(),
        1,
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn state_in_the_store_survives_a_restart_without_duplicates() {
    let yaml = format!("{TIMING}{}", receivers(&["team"]));
    let h = Harness::new(&yaml);
    let fp = h.fire(&[("alertname", "Disk"), ("instance", "a")]);
    sleep_secs(31).await;
    h.dispatcher.ack(fp, "erin", "known").expect("ack");
    let sil = h.dispatcher.add_silence(silence(&h, r#"instance="b""#, 60)).expect("silence");
    assert_eq!(h.store.nflog_entries().len(), 1);
    // The records serialise, so a SQL backend can keep them as they are.
    let json = serde_json::to_string(&h.store.alerts()).expect("serialise");
    assert!(json.contains("\"instance\":\"a\""), "{json}");

    // A second dispatcher on the same store (a restarted server) picks everything up.
    let sent = Arc::new(Mutex::new(Vec::new()));
    let factory = Fakes { start: Instant::now(), behaviours: HashMap::new(), sent: sent.clone() };
    let restarted = Dispatcher::new(
        Config::parse(&yaml).expect("valid"),
        Arc::new(factory),
        DispatcherOptions {
            store: h.store.clone(),
            external_url: String::new(),
            events: None,
            wall_clock_start: Some(h.dispatcher.now()),
        },
    )
    .expect("restart");
    drop(h.dispatcher);
    let report = restarted.alerts();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].acked.as_ref().map(|a| a.by.as_str()), Some("erin"));
    assert_eq!(restarted.silences()[0].0.id, sil);
    sleep_secs(3 * 3600).await;
    assert!(
        sent.lock().expect("lock").is_empty(),
        "already notified and acked: nothing re-sent after the restart"
    );
}

#[tokio::test(start_paused = true)]
async fn silenced_alerts_do_not_escalate_until_the_silence_ends() {
    let yaml = format!(
        "{TIMING}\nescalations:\n- name: all\n  match: {{severity: critical}}\n  levels:\n  - after: 10m\n    receivers: [lead]\n{}",
        receivers(&["team", "lead"])
    );
    let h = Harness::new(&yaml);
    h.fire(&[("alertname", "Down"), ("severity", "critical")]);
    let id = h.dispatcher.add_silence(silence(&h, r#"alertname="Down""#, 20)).expect("silence");
    sleep_secs(15 * 60).await;
    assert!(h.log().is_empty(), "silenced: neither notified nor escalated: {:?}", h.log());
    h.dispatcher.expire_silence(&id).expect("expire");
    // Rechecked within a minute, and the route's next tick notifies the team.
    sleep_secs(5 * 60).await;
    let receivers: Vec<String> = h.log().into_iter().map(|(_, r, _)| r).collect();
    assert!(
        receivers.contains(&"lead".to_owned()) && receivers.contains(&"team".to_owned()),
        "{receivers:?}"
    );
    assert_eq!(receivers.iter().filter(|r| *r == "lead").count(), 1);
}
