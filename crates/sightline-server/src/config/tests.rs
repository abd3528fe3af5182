use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("sightline.yaml"))
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn every_setting_has_a_default() {
    assert_eq!(parse("").expect("empty"), Config::default());
    assert_eq!(parse("# only a comment\n\n").expect("comments"), Config::default());
    let config = Config::default();
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:9750");
    assert_eq!(config.server.data_dir, Path::new("./sightline-data"));
    assert_eq!(config.metrics.cardinality_limit, 10_000);
    assert!(config.api.tokens.is_empty());
}

#[test]
fn a_full_file_parses() {
    let config = parse(
        "server:\n  listen: 0.0.0.0:9000\n  data_dir: /var/lib/sightline\napi:\n  tokens: [abc, def]\n\
         metrics:\n  cardinality_limit: 50\n  buckets:\n    - prefix: http_\n      buckets: [0.1, 1]\n\
         log:\n  level: debug\n  format: text\n",
    )
    .expect("valid");
    assert_eq!(config.server.listen.port(), 9000);
    assert_eq!(config.api.tokens, vec!["abc", "def"]);
    assert_eq!(config.metrics.buckets[0].buckets, vec![0.1, 1.0]);
    assert_eq!(config.log.format, LogFormat::Text);
}

#[test]
fn tracing_settings_parse_and_build_a_redactor() {
    let config = parse(
        "log:\n  output: file\n  file:\n    rotation: hourly\n    max_files: 3\n  access_log: false\n  redaction:\n    patterns:\n      - name: ticket\n        regex: 'T-\\d{6}'\n    deny_fields: [pin]\n\
         traces:\n  store_capacity: 500\n  sampling_ratio: 0.25\n  service_name: edge\n  resource:\n    deployment.environment: prod\n  otlp:\n    endpoint: http://127.0.0.1:4317\n    protocol: grpc\n    timeout: 3s\n",
    )
    .expect("valid");
    assert_eq!(config.log.output, LogOutputKind::File);
    assert_eq!(config.log.file.rotation, LogRotation::Hourly);
    assert!(!config.log.access_log);
    assert_eq!(config.traces.store_capacity, 500);
    assert_eq!(config.traces.otlp.protocol.as_deref(), Some("grpc"));
    let redactor = config.log.redaction.redactor().expect("valid patterns");
    assert_eq!(redactor.redact("see T-123456 now"), "see [REDACTED:ticket] now");
    assert_eq!(redactor.redact_field("pin", "1234"), "[REDACTED]");
    let overridden = Config::default()
        .with_env(env(&[("SIGHTLINE_TRACES__OTLP__ENDPOINT", "http://collector:4318")]))
        .unwrap();
    assert_eq!(overridden.traces.otlp.endpoint.as_deref(), Some("http://collector:4318"));
}

#[test]
fn errors_name_file_line_and_reason() {
    let cases = [
        ("server:\n  listen: 127.0.0.1:9750\n  lisen: x\n", 3, "unknown field `lisen`"),
        ("server:\n  listen: nonsense\n", 2, "invalid socket address"),
        ("servr: {}\n", 1, "unknown field `servr`"),
        ("metrics:\n  cardinality_limit: 0\n", 2, "must be at least 1"),
        ("metrics:\n  cardinality_limit: many\n", 2, "invalid type"),
        ("metrics:\n  default_buckets: [1, 0.5]\n", 2, "strictly increasing"),
        ("api:\n  tokens: ['has space']\n", 2, "no white space"),
        ("log:\n  format: xml\n", 2, "unknown variant `xml`"),
        ("server:\n\tlisten: x\n", 2, "cannot start any token"),
        (
            "log:\n  level: info\n  redaction:\n    patterns:\n      - name: ticket\n        regex: 'T-(\\d+'\n",
            5,
            "ticket",
        ),
        ("log:\n  level: 'info,=bogus=x'\n", 2, "invalid log filter"),
        ("traces:\n  span_metrics:\n    patterns: ['(unclosed']\n", 3, "invalid span-metrics pattern"),
        ("traces:\n  sampling_ratio: 1.5\n", 2, "out of range"),
        ("traces:\n  otlp:\n    protocol: http/json\n", 3, "use `grpc` or `http/protobuf`"),
        ("log:\n  output: syslog\n", 2, "unknown variant `syslog`"),
        ("storage:\n  url: mysql://db/audit\n", 2, "unsupported storage URL"),
        ("audit:\n  max_request_bytes: 0\n", 2, "must be at least 1"),
        ("audit:\n  max_age: forever\n", 2, "invalid duration"),
        ("audit:\n  redact:\n    emails: true\n", 3, "unknown field `emails`"),
    ];
    for (text, line, reason) in cases {
        let err = parse(text).expect_err(text);
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("sightline.yaml:{line}:")), "{text:?} gave {shown}");
        assert!(shown.contains(reason), "{text:?} gave {shown}");
    }
    let err = parse("metrics:\n  buckets:\n    - buckets: [1]\n").expect_err("no matcher");
    assert!(err.to_string().contains("metrics.buckets[0]: give exactly one of"), "{err}");
}

#[test]
fn environment_overrides_the_file() {
    let base = parse("server:\n  listen: 127.0.0.1:1\n").expect("valid");
    let config = base
        .with_env(env(&[
            ("SIGHTLINE_SERVER__LISTEN", "127.0.0.1:2"),
            ("SIGHTLINE_METRICS__CARDINALITY_LIMIT", "7"),
            ("SIGHTLINE_API_TOKENS", "one, two"),
            ("SIGHTLINE_LOG__LEVEL", "debug"),
            // Not configuration: no double underscore.
            ("SIGHTLINE_REQUIRE_PEERS", "1"),
            ("PATH", "/bin"),
        ]))
        .expect("valid");
    assert_eq!(config.server.listen.port(), 2);
    assert_eq!(config.metrics.cardinality_limit, 7);
    assert_eq!(config.api.tokens, vec!["one", "two"]);
    assert_eq!(config.log.level, "debug");
}

#[test]
fn bad_environment_overrides_name_the_variable() {
    let cases = [
        (("SIGHTLINE_SERVR__LISTEN", "x"), "unknown setting `servr.listen`"),
        (("SIGHTLINE_SERVER__LISTEN__PORT", "1"), "has no sub-settings"),
        (("SIGHTLINE_SERVER__LISTEN", "nope"), "invalid socket address"),
        (("SIGHTLINE_METRICS__CARDINALITY_LIMIT", "0"), "must be at least 1"),
    ];
    for ((var, value), reason) in cases {
        let err = Config::default().with_env(env(&[(var, value)])).expect_err(var);
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("environment variable {var}:")), "{shown}");
        assert!(shown.contains(reason), "{var} gave {shown}");
    }
}

#[test]
fn prometheus_durations() {
    let ms = |text: &str| PromDuration::parse(text).map(|d| d.0.as_millis());
    assert_eq!(ms("500ms"), Ok(500));
    assert_eq!(ms("15s"), Ok(15_000));
    assert_eq!(ms("1m"), Ok(60_000));
    assert_eq!(ms("1h30m"), Ok(5_400_000));
    assert_eq!(ms("2d"), Ok(172_800_000));
    assert_eq!(ms("1w"), Ok(604_800_000));
    assert_eq!(ms("0"), Ok(0));
    for bad in ["", "15", "s", "1.5s", "30m1h", "1s1s", "-1s", "1 s", "10x", "99999999999999999999y"] {
        assert!(PromDuration::parse(bad).is_err(), "{bad:?}");
    }
    for text in ["15s", "1h30m", "500ms", "2d3h4m5s6ms"] {
        assert_eq!(PromDuration::parse(text).map(|d| d.to_string()).as_deref(), Ok(text));
    }
}

#[test]
fn collectors_can_be_turned_off_and_unknown_ones_are_errors() {
    let config =
        parse("collectors:\n  process:\n    enabled: false\n  runtime:\n    interval: 1m\n").expect("valid");
    assert!(!config.collectors.process.enabled);
    assert_eq!(config.collectors.runtime.interval.0.as_secs(), 60);
    let err = parse("collectors:\n  prcess:\n    enabled: false\n").expect_err("unknown collector");
    assert!(err.to_string().starts_with("sightline.yaml:2:"), "{err}");
    let err = parse("collectors:\n  runtime:\n    interval: 15\n").expect_err("bad duration");
    assert!(
        err.to_string().contains("sightline.yaml:3:") && err.to_string().contains("invalid duration"),
        "{err}"
    );
}

#[test]
fn host_collector_patterns_are_checked_with_their_line() {
    let config =
        parse("collectors:\n  host:\n    network_devices_exclude: '^(lo|veth.*)$'\n").expect("valid");
    assert_eq!(config.collectors.host.network_devices_exclude, "^(lo|veth.*)$");
    assert!(config.collectors.host.to_host_config().is_ok());
    let err = parse("collectors:\n  host:\n    enabled: true\n    disk_devices_exclude: '^(sd'\n")
        .expect_err("bad regex");
    let shown = err.to_string();
    assert!(
        shown.starts_with("sightline.yaml:4:") && shown.contains("invalid regular expression"),
        "{shown}"
    );
    let err = parse("collectors:\n  host:\n    mount_points: x\n").expect_err("unknown key");
    assert!(err.to_string().contains("unknown field `mount_points`"), "{err}");
    let text = "collectors:\n  host:\n    enabled: true\n\n    network_devices_exclude: '^\\d+('\n";
    let shown = parse(text).expect_err("bad regex with a backslash").to_string();
    assert!(shown.starts_with("sightline.yaml:5:"), "{shown}");
}

#[test]
fn health_checks_parse_with_their_fixed_keys() {
    let config = parse(
        "health:\n  checks:\n    - name: db\n      type: postgres\n      url: postgres://postgres@127.0.0.1/test\n      \
         interval: 10s\n      timeout: 2s\n      critical: true\n      failure_threshold: 2\n      success_threshold: 2\n\
         \x20     groups: [storage]\n    - name: api\n      type: http\n      url: http://127.0.0.1:8080/health\n      \
         expect_status: [200, 204]\n      body_contains: ok\n      json_pointer: /status\n      equals: up\n      \
         max_response_time: 500ms\n      cert_warn_days: 30\n      accept_invalid_certs: true\n      \
         depends_on: [db]\n",
    )
    .expect("valid");
    let db = &config.health.checks[0];
    assert_eq!((db.name.as_str(), db.kind), ("db", CheckType::Postgres));
    assert_eq!((db.failure_threshold, db.success_threshold, db.interval.0.as_secs()), (2, 2, 10));
    let api = &config.health.checks[1];
    assert_eq!(api.params.expect_status, Some(vec![200, 204]));
    assert_eq!(api.params.equals, Some(serde_json::json!("up")));
    assert_eq!(api.depends_on, vec!["db"]);
    assert_eq!((api.params.cert_warn_days, api.params.accept_invalid_certs), (Some(30), Some(true)));
    assert_eq!(api.failure_threshold, 3, "default");
    assert!(config.health.builtin_checks);
}

#[test]
fn bad_health_checks_name_the_line_and_reason() {
    let cases = [
        ("health:\n  checks:\n    - name: x\n      type: smtp\n", 4, "unknown variant `smtp`"),
        ("health:\n  checks:\n    - name: x\n      type: tcp\n", 3, "type tcp needs `address`"),
        (
            "health:\n  checks:\n    - name: x\n      type: tcp\n      address: a:1\n      failure_threshold: 0\n",
            3,
            "at least 1",
        ),
        (
            "health:\n  checks:\n    - name: x\n      type: tcp\n      address: a:1\n      path: /tmp\n",
            3,
            "`path` does not apply to type tcp",
        ),
        (
            "health:\n  checks:\n    - name: x\n      type: tcp\n      adress: a:1\n",
            3,
            "unknown field `adress`",
        ),
        ("health:\n  checks:\n    - name: x\n      type: redis\n", 3, "needs `address` or `url`"),
        (
            "health:\n  checks:\n    - name: x\n      type: http\n      url: http://a\n      json_pointer: /a\n",
            3,
            "go together",
        ),
        (
            "health:\n  checks:\n    - name: x\n      type: tcp\n      address: a:1\n      interval: soon\n",
            6,
            "invalid duration",
        ),
    ];
    for (text, line, reason) in cases {
        let shown = parse(text).expect_err(text).to_string();
        assert!(shown.contains(reason), "{text:?} gave {shown}");
        assert!(shown.starts_with(&format!("sightline.yaml:{line}:")), "{text:?} gave {shown}");
    }
}

#[test]
fn check_parameters_and_dependencies_are_validated_at_load() {
    let cases = [
        (
            "health:\n  checks:\n    - name: x\n      type: http\n      url: ftp://example.com\n",
            3,
            "invalid `url`",
        ),
        (
            "health:\n  checks:\n    - name: x\n      type: disk\n      path: /\n      warn_ratio: 1.5\n",
            3,
            "warn_ratio",
        ),
        ("health:\n  checks:\n    - name: x\n      type: tcp\n      address: nohost\n", 3, "address"),
        (
            "health:\n  checks:\n    - name: a\n      type: tcp\n      address: a:1\n      depends_on: [ghost]\n",
            0,
            "depends on \"ghost\"",
        ),
        (
            "health:\n  checks:\n    - name: a\n      type: tcp\n      address: a:1\n      depends_on: [b]\n    \
             - name: b\n      type: tcp\n      address: a:1\n      depends_on: [a]\n",
            0,
            "cycle",
        ),
        (
            "health:\n  checks:\n    - name: data-dir-disk\n      type: tcp\n      address: a:1\n",
            3,
            "two health checks",
        ),
        ("metrics:\n  buckets:\n    - buckets: [1]\n", 0, "give exactly one of"),
    ];
    for (text, line, reason) in cases {
        let shown = parse(text).expect_err(text).to_string();
        assert!(shown.contains(reason), "{text:?} gave {shown}");
        if line > 0 {
            assert!(shown.starts_with(&format!("sightline.yaml:{line}:")), "{text:?} gave {shown}");
        } else {
            assert!(shown.starts_with("sightline.yaml:"), "{text:?} gave {shown}");
        }
    }
}
