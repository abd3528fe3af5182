//! Cross-check: the same configurations, valid and broken, go to Debian's `amtool check-config`
//! (Alertmanager 0.25) and to Sightline's parser, and both must accept or refuse each one.

use std::process::Command;

use sightline_alert::pipeline::Config;
use sightline_testkit::{TempDir, require_peer};

const BASE: &str = r#"global:
  smtp_from: alerts@example.org
  smtp_smarthost: mail.example.org:25
route:
  receiver: a
  group_by: ['alertname', 'cluster']
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
  - matchers: ['severity=~"crit|page"', 'team!="x"']
    receiver: b
    continue: true
    mute_time_intervals: [offhours]
  - match: {team: db}
    match_re: {env: "prod|stage"}
    receiver: a
    group_by: ['...']
    active_time_intervals: [offhours]
receivers:
- name: a
  email_configs:
  - to: oncall@example.org
    headers:
      Subject: alert
- name: b
  webhook_configs:
  - url: http://127.0.0.1:5001/hook
    max_alerts: 3
    send_resolved: false
  slack_configs:
  - api_url: https://hooks.slack.example/x
    channel: '#alerts'
    title: '{{ .CommonLabels.alertname }}'
  pagerduty_configs:
  - routing_key: abc
    severity: critical
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [cluster]
- source_match: {severity: page}
  target_match_re: {severity: "info|warning"}
time_intervals:
- name: offhours
  time_intervals:
  - weekdays: ['saturday', 'sunday']
  - weekdays: ['monday:friday']
    times:
    - start_time: 18:00
      end_time: 24:00
    days_of_month: ['1:5', '-3:-1']
    months: ['may:august', '12']
    years: ['2024:2030']
    location: Europe/Berlin
"#;

/// (what the variant is, the text to replace, its replacement); an empty `from` means BASE as is.
const VARIANTS: &[(&str, &str, &str)] = &[
    ("valid", "", ""),
    ("undefined receiver", "    receiver: b\n", "    receiver: c\n"),
    ("duplicate receiver", "- name: b\n", "- name: a\n"),
    ("bad matcher regex", r#"'severity=~"crit|page"'"#, r#"'severity=~"(crit"'"#),
    ("bad matcher syntax", r#"'team!="x"'"#, r#"'team!!"x"'"#),
    ("bad duration", "group_wait: 30s", "group_wait: 30 seconds"),
    ("zero group interval", "group_interval: 5m", "group_interval: 0s"),
    ("unknown time interval", "mute_time_intervals: [offhours]", "mute_time_intervals: [holidays]"),
    ("wildcard with labels", "group_by: ['...']", "group_by: ['...', 'job']"),
    ("bad label in group_by", "group_by: ['alertname', 'cluster']", "group_by: ['alert-name']"),
    ("matchers on the root", "  group_wait: 30s\n", "  group_wait: 30s\n  matchers: [a=\"b\"]\n"),
    ("continue on the root", "  group_wait: 30s\n", "  group_wait: 30s\n  continue: true\n"),
    ("unknown route field", "    continue: true\n", "    continue: true\n    recevier: a\n"),
    ("webhook without url", "  - url: http://127.0.0.1:5001/hook\n", "  - send_resolved: true\n"),
    (
        "pagerduty without key",
        "  - routing_key: abc\n",
        "  - url: https://events.pagerduty.example/v2/enqueue\n",
    ),
    ("slack without api url", "  - api_url: https://hooks.slack.example/x\n", "  - username: bot\n"),
    ("email without from", "  smtp_from: alerts@example.org\n", ""),
    ("bad weekday", "['saturday', 'sunday']", "['saturday', 'funday']"),
    ("bad day of month", "['1:5', '-3:-1']", "['0:5']"),
    ("bad month", "'12'", "'decembre'"),
    ("month range backwards", "'may:august'", "'august:may'"),
    ("stricter: month 13", "'12'", "'13'"),
    ("bad time", "end_time: 24:00", "end_time: 25:00"),
    ("unknown location", "Europe/Berlin", "Mars/Olympus"),
    (
        "duplicate time interval",
        "time_intervals:\n- name: offhours\n",
        "time_intervals:\n- name: dup\n  time_intervals: []\n- name: dup\n",
    ),
    ("bad equal label", "equal: [cluster]", "equal: ['clu-ster']"),
    ("bad inhibit regex", "{severity: \"info|warning\"}", "{severity: \"(info\"}"),
    ("no route", "route:\n  receiver: a\n", "xroute:\n  receiver: a\n"),
    (
        "legacy mute_time_intervals key",
        "time_intervals:\n- name: offhours",
        "mute_time_intervals:\n- name: offhours",
    ),
];

#[test]
fn amtool_and_sightline_agree_on_example_configs() {
    let Some(amtool) = require_peer("amtool", "prometheus-alertmanager") else { return };
    let dir = TempDir::new("pipeline-amtool");
    let mut disagreements = Vec::new();
    for (i, (name, from, to)) in VARIANTS.iter().enumerate() {
        let text = if from.is_empty() {
            BASE.to_owned()
        } else {
            assert!(BASE.contains(from), "variant {name:?}: {from:?} is not in the base config");
            BASE.replacen(from, to, 1)
        };
        let path = dir.path().join(format!("config-{i}.yml"));
        std::fs::write(&path, &text).expect("write config");
        let output = Command::new(&amtool).arg("check-config").arg(&path).output().expect("run amtool");
        let amtool_ok = output.status.success();
        let ours = Config::parse(&text);
        // Alertmanager 0.25 does not range-check numeric months, so a month that can never match passes
        // amtool; Sightline refuses it on purpose.
        if name.starts_with("stricter:") {
            assert!(ours.is_err(), "{name}: Sightline must refuse it");
            continue;
        }
        if amtool_ok != ours.is_ok() {
            disagreements.push(format!(
                "{name}: amtool {} ({}), sightline {:?}",
                if amtool_ok { "accepts" } else { "refuses" },
                String::from_utf8_lossy(&output.stdout).trim(),
                ours.err().map(|e| e.to_string()),
            ));
        }
        if *name == "valid" {
            assert!(
                amtool_ok,
                "the base config must be valid for amtool: {}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
    }
    assert!(disagreements.is_empty(), "amtool and Sightline disagree:\n{}", disagreements.join("\n"));
}
