//! Receiver templates: fields of a configuration with a `templates:` file rendered into each receiver's
//! payload, bad templates refused with the receiver, field and line, and the template language checked
//! against Debian's `amtool template render` (Alertmanager 0.25) on the same data.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sightline_alert::factory::settings;
use sightline_alert::model::{Alert, AlertStatus, LabelSet, Notification};
use sightline_alert::notify::template::{Templates, data};
use sightline_alert::notify::webhook::WebhookMessage;
use sightline_alert::notify::{EmailNotifier, PagerDutyNotifier, ReceiverSettings, SlackNotifier};
use sightline_alert::pipeline::Config;
use sightline_testkit::{TempDir, require_peer};

fn set(pairs: &[(&str, &str)]) -> LabelSet {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A group of three alerts grouped by `alertname`: two firing, one resolved.
fn notification() -> Notification {
    let alert = |instance: &str, ends: Option<u64>| Alert {
        labels: set(&[("alertname", "HighLatency"), ("instance", instance), ("severity", "critical")]),
        annotations: set(&[
            ("summary", &format!("p99 above 1s on {instance}")),
            ("runbook", "http://wiki/latency"),
        ]),
        starts_at: at(1_700_000_000),
        ends_at: ends.map(at),
        generator_url: "http://sightline:9090/graph?g0.expr=latency&g0.tab=1".into(),
    };
    Notification {
        receiver: "team".into(),
        group_key: "{}:{alertname=\"HighLatency\"}".into(),
        group_labels: set(&[("alertname", "HighLatency")]),
        common_labels: set(&[("alertname", "HighLatency"), ("severity", "critical")]),
        common_annotations: set(&[("runbook", "http://wiki/latency")]),
        status: AlertStatus::Firing,
        alerts: vec![
            (AlertStatus::Firing, alert("a:9090", Some(1_700_000_900))),
            (AlertStatus::Firing, alert("b:9090", None)),
            (AlertStatus::Resolved, alert("c:9090", Some(1_700_000_300))),
        ],
        truncated_alerts: 0,
        external_url: "http://sightline:9090".into(),
    }
}

const TEMPLATE_FILE: &str = r#"{{/* The team's templates. */}}
{{ define "custom.title" }}[{{ .Status | toUpper }}] {{ .GroupLabels.SortedPairs.Values | join " " }}{{ end }}
{{ define "custom.instances" }}{{ range $i, $a := . }}{{ if $i }}, {{ end }}{{ $a.Labels.instance }}{{ end }}{{ end }}
"#;

const CONFIG: &str = r#"
templates: ['DIR/*.tmpl']
route: {receiver: team}
receivers:
- name: team
  slack_configs:
  - api_url: http://127.0.0.1:1/slack
    channel: '#{{ .CommonLabels.severity }}'
    title: '{{ template "custom.title" . }}'
    pretext: '{{ len .Alerts.Firing }} firing, {{ len .Alerts.Resolved }} resolved'
    text: "{{ range .Alerts }}{{ .Annotations.summary }} since {{ .StartsAt.Format \"15:04\" }}\n{{ end }}"
    fields:
    - title: Severity
      value: '{{ .CommonLabels.severity | toUpper }}'
      short: true
    - title: Firing
      value: '{{ template "custom.instances" .Alerts.Firing }}'
    color: '{{ if eq .Status "firing" }}#ff0000{{ else }}#00ff00{{ end }}'
    send_resolved: true
  pagerduty_configs:
  - routing_key: key
    url: http://127.0.0.1:1/pd
    description: '{{ .CommonLabels.alertname }} on {{ .Alerts.Firing | len }} instances'
    severity: '{{ .CommonLabels.severity }}'
    client: 'Sightline for {{ .Receiver }}'
    client_url: '{{ .ExternalURL }}/alerts'
    details:
      runbook: '{{ .CommonAnnotations.runbook }}'
      num_firing: 'n={{ .Alerts.Firing | len }}'
  email_configs:
  - to: ops@example.org
    from: am@example.org
    smarthost: 127.0.0.1:25
    require_tls: false
    headers:
      Subject: '{{ template "custom.title" . }}'
      X-Firing: '{{ template "custom.instances" .Alerts.Firing }}'
    html: '<p>{{ .CommonLabels.alertname }} &amp; {{ "<b>" }} <a href="{{ (index .Alerts 0).GeneratorURL }}">graph</a></p>'
    text: '{{ template "email.default.subject" . }}'
"#;

/// The configuration with its template file in a temporary folder.
fn config(dir: &TempDir, text: &str, file: &str) -> Result<Config, String> {
    std::fs::write(dir.path().join("team.tmpl"), file).expect("write the template file");
    let text = text.replace("DIR", &dir.path().display().to_string());
    Config::parse(&text).map_err(|e| match e.line(&text) {
        Some(line) => format!("line {line}: {e}"),
        None => e.to_string(),
    })
}

fn receiver_settings(config: &Config) -> Vec<ReceiverSettings> {
    let receiver = config.receiver("team").expect("receiver");
    receiver.integrations().iter().map(|i| settings(receiver, i, &config.global).expect("settings")).collect()
}

#[test]
fn receivers_render_their_templated_fields() {
    let dir = TempDir::new("notify-templates");
    let config = config(&dir, CONFIG, TEMPLATE_FILE).unwrap_or_else(|e| panic!("{e}"));
    let all = receiver_settings(&config);
    let n = notification();

    let ReceiverSettings::Slack(slack) = &all[0] else { panic!("{all:?}") };
    let message = SlackNotifier::new(slack.clone()).expect("valid").message(&n).expect("renders");
    assert_eq!(
        serde_json::to_value(&message).expect("json"),
        json!({
            "channel": "#critical",
            "username": "Sightline",
            "attachments": [{
                "title": "[FIRING] HighLatency",
                "title_link": "http://sightline:9090",
                "pretext": "2 firing, 1 resolved",
                "text": "p99 above 1s on a:9090 since 22:13\np99 above 1s on b:9090 since 22:13\np99 above 1s on c:9090 since 22:13\n",
                "fallback": "[FIRING:2] HighLatency (critical) | http://sightline:9090",
                "fields": [
                    {"title": "Severity", "value": "CRITICAL", "short": true},
                    {"title": "Firing", "value": "a:9090, b:9090", "short": false}
                ],
                "color": "#ff0000",
                "mrkdwn_in": ["fallback", "pretext", "text"]
            }]
        })
    );

    let ReceiverSettings::PagerDuty(pd) = &all[1] else { panic!("{all:?}") };
    let event = PagerDutyNotifier::new(pd.clone()).expect("valid").event(&n).expect("renders");
    let event = serde_json::to_value(&event).expect("json");
    assert_eq!(event["client"], "Sightline for team");
    assert_eq!(event["client_url"], "http://sightline:9090/alerts");
    assert_eq!(event["payload"]["summary"], "HighLatency on 2 instances");
    assert_eq!(event["payload"]["severity"], "critical");
    assert_eq!(event["payload"]["source"], "Sightline for team");
    let details = &event["payload"]["custom_details"];
    assert_eq!(details["runbook"], "http://wiki/latency");
    assert_eq!(details["num_firing"], "n=2", "a configured detail replaces Alertmanager's");
    assert_eq!(details["num_resolved"], "1");
    assert_eq!(
        details["resolved"],
        "Labels:\n - alertname = HighLatency\n - instance = c:9090\n - severity = critical\nAnnotations:\n - runbook = http://wiki/latency\n - summary = p99 above 1s on c:9090\nSource: http://sightline:9090/graph?g0.expr=latency&g0.tab=1\n"
    );

    let ReceiverSettings::Email(email) = &all[2] else { panic!("{all:?}") };
    let mail = EmailNotifier::new(email.clone()).expect("valid").message(&n).expect("renders");
    let mail = String::from_utf8(mail.formatted()).expect("utf-8");
    assert!(mail.contains("Subject: [FIRING] HighLatency\r\n"), "{mail}");
    assert!(mail.contains("X-Firing: a:9090, b:9090\r\n"), "{mail}");
    assert!(mail.contains("[FIRING:2] HighLatency (critical)"), "the text part: {mail}");
    // The HTML part is quoted-printable: undo its soft line breaks and `=` escapes.
    let html = mail.replace("=\r\n", "").replace("=3D", "=");
    assert!(
        html.contains(
            "<p>HighLatency &amp; &lt;b&gt; <a href=\"http://sightline:9090/graph?g0.expr=latency&amp;g0.tab=1\">graph</a></p>"
        ),
        "the HTML part, escaped as html/template escapes: {mail}"
    );
}

#[test]
fn bad_templates_are_configuration_errors_naming_receiver_field_and_line() {
    let dir = TempDir::new("notify-templates-bad");
    let bad = CONFIG.replace("pretext: '{{ len .Alerts.Firing }}", "pretext: '{{ len .Alerts.Firing ");
    let err = config(&dir, &bad, TEMPLATE_FILE).expect_err("unclosed action");
    let line = bad.lines().position(|l| l.trim_start().starts_with("pretext:")).map(|i| i + 1);
    assert!(
        err.starts_with(&format!(
            "line {}: receivers[0].slack_configs[0].pretext: receiver \"team\": invalid template in slack_configs[0].pretext: template: pretext:1:",
            line.unwrap_or_default()
        )),
        "{err}"
    );

    let missing = CONFIG.replace(
        "Subject: '{{ template \"custom.title\" . }}'",
        "Subject: '{{ template \"custom.titel\" . }}'",
    );
    let err = config(&dir, &missing, TEMPLATE_FILE).expect_err("undefined template");
    assert!(err.contains("email_configs[0].headers.Subject"), "{err}");
    assert!(err.contains("template \"custom.titel\" not defined"), "{err}");

    let unknown =
        CONFIG.replace("'{{ .CommonLabels.severity | toUpper }}'", "'{{ .CommonLabels.severity | upper }}'");
    let err = config(&dir, &unknown, TEMPLATE_FILE).expect_err("unknown function");
    assert!(err.contains("fields[0].value") && err.contains("function \"upper\" not defined"), "{err}");

    let broken_file = "{{ define \"custom.title\" }}\n{{ if .Status }}unfinished{{ end }}";
    let err = config(&dir, CONFIG, broken_file).expect_err("bad template file");
    assert!(err.contains("templates: template: ") && err.contains("team.tmpl:1:1: unexpected EOF"), "{err}");
}

#[test]
fn templates_files_are_read_and_later_definitions_win() {
    let dir = TempDir::new("notify-templates-files");
    std::fs::write(
        dir.path().join("a.tmpl"),
        "{{ define \"x\" }}a{{ end }}{{ define \"__alertmanager\" }}ACME{{ end }}",
    )
    .expect("write");
    std::fs::write(dir.path().join("b.tmpl"), "{{ define \"x\" }}b{{ end }}").expect("write");
    let templates =
        Templates::load(&[format!("{}/*.tmpl", dir.path().display())]).unwrap_or_else(|e| panic!("{e}"));
    let n = data(&notification());
    assert_eq!(templates.render_named("x", &n, false).as_deref(), Ok("b"));
    assert_eq!(templates.render_named("slack.default.username", &n, false).as_deref(), Ok("ACME"));
    let none = Templates::load(&[format!("{}/*.nothing", dir.path().display())]).expect("no match is fine");
    assert_eq!(none.render_named("slack.default.username", &n, false).as_deref(), Ok("Sightline"));
    let err = Templates::load(&["[".to_owned()]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("not a valid glob"), "{err}");
}

/// Texts rendered by `amtool template render` and by Sightline with the same data and template file;
/// the file replaces `__alertmanager` and `__alertmanagerURL` so that both use the same product name.
#[test]
fn templates_render_as_alertmanager_renders_them() {
    let Some(amtool) = require_peer("amtool", "prometheus-alertmanager") else { return };
    let dir = TempDir::new("notify-templates-amtool");
    let file = dir.path().join("team.tmpl");
    std::fs::write(
        &file,
        format!(
            "{TEMPLATE_FILE}{{{{ define \"__alertmanager\" }}}}Sightline{{{{ end }}}}\n{{{{ define \"__alertmanagerURL\" }}}}{{{{ .ExternalURL }}}}/#/alerts?receiver={{{{ .Receiver | urlquery }}}}{{{{ end }}}}\n"
        ),
    )
    .expect("write the template file");
    let n = notification();
    let data_file = dir.path().join("data.json");
    std::fs::write(&data_file, serde_json::to_vec(&WebhookMessage::new(&n)).expect("json"))
        .expect("write data");
    let templates = Templates::load(&[file.display().to_string()]).unwrap_or_else(|e| panic!("{e}"));
    let cases: &[(&str, bool)] = &[
        (r#"{{ template "__subject" . }}"#, false),
        (r#"{{ template "__text_alert_list" .Alerts }}"#, false),
        (
            r#"{{ template "slack.default.title" . }}|{{ template "slack.default.fallback" . }}|{{ template "slack.default.username" . }}"#,
            false,
        ),
        (
            r#"{{ template "pagerduty.default.description" . }}|{{ template "pagerduty.default.instances" .Alerts.Firing }}"#,
            false,
        ),
        (r#"{{ template "opsgenie.default.description" . }}"#, false),
        (r#"{{ template "custom.title" . }}/{{ template "custom.instances" .Alerts }}"#, false),
        (
            r#"{{ range $i, $a := .Alerts }}{{ $i }}:{{ $a.Status }}:{{ .Fingerprint }}:{{ .StartsAt }}:{{ .EndsAt }};{{ end }}"#,
            false,
        ),
        (
            r#"{{ (index .Alerts 0).StartsAt.Format "Mon Jan _2 15:04:05.000 MST 2006" }} {{ (index .Alerts 2).EndsAt.Unix }}"#,
            false,
        ),
        (
            r#"{{ .CommonLabels.Remove .GroupLabels.Names | len }} {{ (.CommonLabels.Remove .GroupLabels.Names).Values | join "," }} {{ .CommonLabels.SortedPairs.Names }}"#,
            false,
        ),
        (
            r#"{{ title "hELLO wORLD" }} {{ toUpper .Status }} {{ toLower "ABC" }} {{ match "^High" .CommonLabels.alertname }}"#,
            false,
        ),
        (
            r#"{{ reReplaceAll "(\\w+):(\\d+)" "$2/$1" "a:9090" }} {{ stringSlice "a" "b" | join "-" }} {{ printf "%s=%d %q" .Status (len .Alerts) .Receiver }}"#,
            false,
        ),
        (
            r#"{{ if gt (len .Alerts.Resolved) 0 }}some resolved{{ else }}none{{ end }} {{ with .CommonAnnotations.runbook }}see {{ . }}{{ end }} {{ .CommonLabels.missing }}|"#,
            false,
        ),
        (
            r#"{{ $n := 0 }}{{ range .Alerts.Firing }}{{ $n = len .Labels }}{{ end }}{{ $n }} {{ urlquery "a b&c" }} {{ html "<a>" }}"#,
            false,
        ),
        (
            r#"<a href="{{ (index .Alerts 0).GeneratorURL }}">{{ "<b>&x'+" }}</a>{{ safeHtml "<i>ok</i>" }}<p title="{{ "a\"b" }}">{{ .Alerts.Firing | len }}</p><!-- gone -->"#,
            true,
        ),
        (r#"{{ template "email.default.html" . }}"#, true),
    ];
    for (text, html) in cases {
        let mut command = Command::new(&amtool);
        command.arg("template").arg("render");
        // amtool's `template render` does not load Alertmanager's default templates itself.
        for builtin in ["default.tmpl", "email.tmpl"] {
            command.arg(format!("--template.glob=/usr/share/prometheus/alertmanager/{builtin}"));
        }
        command
            .arg(format!("--template.glob={}", file.display()))
            .arg(format!("--template.data={}", data_file.display()))
            .arg(format!("--template.text={text}"));
        if *html {
            command.arg("--template.type=html");
        }
        let output = command.output().expect("run amtool");
        assert!(output.status.success(), "amtool on {text}: {}", String::from_utf8_lossy(&output.stderr));
        let expected = String::from_utf8_lossy(&output.stdout).into_owned();
        let field = templates.compile("text", text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let got = templates.render(&field, &data(&n), *html).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(got, expected, "{text}");
    }
}
