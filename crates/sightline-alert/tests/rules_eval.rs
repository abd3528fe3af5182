//! Rule group evaluation: the alert state machine, `ALERTS`/`ALERTS_FOR_STATE`, recording rules,
//! staleness, limits, sending, `for` state restore and state kept across reloads.

use std::path::Path;

use sightline_alert::LabelSet;
use sightline_alert::rules::file::parse_text;
use sightline_alert::rules::group::RESOLVED_RETENTION_MS;
use sightline_alert::rules::{AlertState, EvalContext, Health, Rule, RuleEvent, RuleGroup};
use sightline_tsdb::mem::MemStorage;
use sightline_tsdb::promql::{Engine, Value};
use sightline_tsdb::sample::is_stale;
use sightline_tsdb::{Labels, Querier, Sample, SelectHints};

const MIN: i64 = 60_000;

fn group(text: &str) -> RuleGroup {
    let defs = parse_text(Path::new("test.yml"), text).expect("valid rules");
    RuleGroup::from_def(&defs[0], MIN).expect("group builds")
}

fn series(store: &MemStorage, name: &str, pairs: &[(&str, &str)], samples: &[(i64, f64)]) {
    let mut all: Vec<(&str, &str)> = vec![("__name__", name)];
    all.extend_from_slice(pairs);
    store.add(Labels::from_pairs(&all), samples.iter().map(|(t, v)| Sample::new(*t, *v)));
}

fn query(store: &MemStorage, q: &str, t: i64) -> Vec<(String, f64)> {
    match Engine::default().instant_query(store, q, t).expect("query") {
        Value::Vector(v) => v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
        other => panic!("not a vector: {other:?}"),
    }
}

fn eval(g: &mut RuleGroup, store: &MemStorage, t: i64) -> Vec<RuleEvent> {
    let engine = Engine::default();
    let external = LabelSet::new();
    let ctx = EvalContext {
        engine: &engine,
        storage: store,
        external_labels: &external,
        external_url: "http://prom",
    };
    let outcome = g.eval(&ctx, t);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    outcome.events
}

const DOWN: &str = "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 2m\n    labels: {severity: page}\n    annotations: {summary: '{{ $labels.instance }} is {{ $value }}'}\n";

#[test]
fn alerts_go_pending_firing_resolved_with_events_and_alerts_series() {
    let store = MemStorage::new();
    // Down from 1m to 4m, up again at 5m.
    let values = [(0, 1.0), (MIN, 0.0), (2 * MIN, 0.0), (3 * MIN, 0.0), (4 * MIN, 0.0), (5 * MIN, 1.0)];
    series(&store, "up", &[("instance", "a")], &values);
    let mut g = group(DOWN);
    g.set_restored();
    let transitions = |events: Vec<RuleEvent>| events.iter().map(|e| (e.from, e.to)).collect::<Vec<_>>();

    assert!(eval(&mut g, &store, 0).is_empty());
    assert_eq!(transitions(eval(&mut g, &store, MIN)), [(AlertState::Inactive, AlertState::Pending)]);
    assert!(eval(&mut g, &store, 2 * MIN).is_empty());
    assert_eq!(
        query(&store, "ALERTS", 2 * MIN),
        [(
            "ALERTS{alertname=\"Down\", alertstate=\"pending\", instance=\"a\", severity=\"page\"}"
                .to_owned(),
            1.0
        )]
    );
    let events = eval(&mut g, &store, 3 * MIN);
    assert_eq!(transitions(events.clone()), [(AlertState::Pending, AlertState::Firing)]);
    assert_eq!(events[0].alertname, "Down");
    assert_eq!(events[0].labels.get("severity").map(String::as_str), Some("page"));
    assert_eq!(query(&store, "ALERTS{alertstate=\"firing\"}", 3 * MIN).len(), 1);
    // ALERTS_FOR_STATE holds the time the alert became active, in seconds.
    assert_eq!(query(&store, "ALERTS_FOR_STATE", 3 * MIN)[0].1, 60.0);

    let Rule::Alerting(rule) = &g.rules[0] else { panic!("alerting rule") };
    let alert = rule.active.values().next().expect("one alert");
    assert_eq!(alert.annotations.get("summary").map(String::as_str), Some("a is 0"));

    assert_eq!(transitions(eval(&mut g, &store, 5 * MIN)), [(AlertState::Firing, AlertState::Resolved)]);
    // The ALERTS series of a resolved alert is marked stale.
    let raw =
        store.select(&[promql_matcher("ALERTS")], &SelectHints::range(5 * MIN, 5 * MIN)).expect("select");
    assert!(raw.iter().all(|s| s.samples.iter().all(|x| is_stale(x.v))), "{raw:?}");
    // Kept for sending for 15 minutes, then dropped.
    let Rule::Alerting(rule) = &g.rules[0] else { panic!("alerting rule") };
    assert_eq!(rule.active.len(), 1);
    eval(&mut g, &store, 5 * MIN + RESOLVED_RETENTION_MS + 1);
    let Rule::Alerting(rule) = &g.rules[0] else { panic!("alerting rule") };
    assert!(rule.active.is_empty());
}

fn promql_matcher(name: &str) -> promql_parser::label::Matcher {
    promql_parser::label::Matcher::new(promql_parser::label::MatchOp::Equal, "__name__", name)
}

#[test]
fn pending_alerts_that_stop_are_dropped_without_firing() {
    let store = MemStorage::new();
    series(&store, "up", &[("instance", "a")], &[(0, 0.0), (MIN, 1.0)]);
    let mut g = group(DOWN);
    g.set_restored();
    eval(&mut g, &store, 0);
    let events = eval(&mut g, &store, MIN);
    assert_eq!(
        events.iter().map(|e| (e.from, e.to)).collect::<Vec<_>>(),
        [(AlertState::Pending, AlertState::Inactive)]
    );
    let Rule::Alerting(rule) = &g.rules[0] else { panic!("alerting rule") };
    assert!(rule.active.is_empty());
}

#[test]
fn alerts_are_sent_like_prometheus() {
    let store = MemStorage::new();
    let values: Vec<(i64, f64)> = (0..8).map(|i| (i * MIN, if i < 6 { 0.0 } else { 1.0 })).collect();
    series(&store, "up", &[("instance", "a")], &values);
    let mut g = group(DOWN.replace("for: 2m", "for: 0s").as_str());
    g.set_restored();
    eval(&mut g, &store, 0);
    let sent = g.alerts_to_send(0, MIN, "http://prom/");
    assert_eq!(sent.len(), 1);
    let a = &sent[0];
    assert_eq!(a.starts_at, ms(0));
    // Valid for four times the larger of the interval and the resend delay.
    assert_eq!(a.ends_at, Some(ms(4 * MIN)));
    assert_eq!(a.generator_url, "http://prom/graph?g0.expr=up+%3D%3D+0&g0.tab=1");
    // Not again before the resend delay has passed.
    eval(&mut g, &store, MIN);
    assert!(g.alerts_to_send(MIN, MIN, "").is_empty());
    eval(&mut g, &store, 2 * MIN);
    assert_eq!(g.alerts_to_send(2 * MIN + 1, MIN, "").len(), 1);
    // Resolved: sent at once, ending at the resolution time.
    eval(&mut g, &store, 6 * MIN);
    let sent = g.alerts_to_send(6 * MIN, MIN, "");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].ends_at, Some(ms(6 * MIN)));
}

fn ms(t: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(t as u64)
}

#[test]
fn recording_rules_write_labelled_results_and_staleness_markers() {
    let store = MemStorage::new();
    series(&store, "up", &[("job", "a"), ("instance", "1")], &[(0, 1.0), (MIN, 1.0)]);
    series(&store, "up", &[("job", "b"), ("instance", "2")], &[(0, 1.0)]);
    let mut g = group(
        "groups:\n- name: g\n  labels: {team: t}\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n    labels: {source: rule}\n",
    );
    eval(&mut g, &store, 0);
    let got = query(&store, "job:up:sum", 0);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, "job:up:sum{job=\"a\", source=\"rule\", team=\"t\"}");
    // Job b's input goes stale after the lookback; its recorded series gets a staleness marker.
    eval(&mut g, &store, 6 * MIN);
    let got = query(&store, "job:up:sum", 6 * MIN);
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn limits_and_duplicates_fail_the_rule() {
    let store = MemStorage::new();
    for i in 0..3 {
        series(&store, "up", &[("instance", &i.to_string())], &[(0, 0.0)]);
    }
    let mut g = group(
        "groups:\n- name: g\n  limit: 2\n  rules:\n  - alert: Down\n    expr: up == 0\n  - record: r\n    expr: up\n  - record: dup\n    expr: up\n    labels: {instance: same}\n",
    );
    let engine = Engine::default();
    let external = LabelSet::new();
    let ctx = EvalContext { engine: &engine, storage: &store, external_labels: &external, external_url: "" };
    let outcome = g.eval(&ctx, 0);
    let errors: Vec<&str> = outcome.errors.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(
        errors,
        [
            "exceeded limit of 2 with 3 alerts",
            "exceeded limit of 2 with 3 series",
            "vector contains metrics with the same labelset after applying rule labels",
        ]
    );
    assert_eq!(g.rules[0].status().health, Health::Err);
}

#[test]
fn for_state_is_restored_after_a_restart() {
    let store = MemStorage::new();
    let hold = 30 * MIN;
    let text = format!(
        "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: {}m\n",
        hold / MIN
    );
    let start = 100 * MIN;
    let values: Vec<(i64, f64)> = (0..=60).map(|i| (start + i * MIN, 0.0)).collect();
    series(&store, "up", &[("instance", "a")], &values);
    // Before the restart: active since `start`, last evaluated at start + 20m (down 5 minutes).
    let mut before = group(&text);
    before.set_restored();
    for i in 0..=20 {
        eval(&mut before, &store, start + i * MIN);
    }
    let now = start + 25 * MIN;
    let mut after = group(&text);
    eval(&mut after, &store, now);
    let engine = Engine::default();
    let external = LabelSet::new();
    let ctx = EvalContext { engine: &engine, storage: &store, external_labels: &external, external_url: "" };
    after.restore_for_state(&ctx, now, 10 * MIN, 60 * MIN);
    let Rule::Alerting(rule) = &after.rules[0] else { panic!("alerting rule") };
    let alert = rule.active.values().next().expect("alert");
    // 20 of 30 minutes spent pending, 10 left (not under the grace period): the 5 minutes down are
    // added, so the alert fires at now + 10m.
    assert_eq!(alert.active_at, start + 5 * MIN);
    assert!(rule.restored);

    // With less than the grace period left, it gets the grace period.
    let mut before = group(&text);
    before.set_restored();
    let store2 = MemStorage::new();
    series(&store2, "up", &[("instance", "a")], &values);
    for i in 0..=25 {
        eval(&mut before, &store2, start + i * MIN);
    }
    let now = start + 27 * MIN;
    let mut after = group(&text);
    eval(&mut after, &store2, now);
    let ctx = EvalContext { engine: &engine, storage: &store2, external_labels: &external, external_url: "" };
    after.restore_for_state(&ctx, now, 10 * MIN, 60 * MIN);
    let Rule::Alerting(rule) = &after.rules[0] else { panic!("alerting rule") };
    assert_eq!(rule.active.values().next().expect("alert").active_at, now + 10 * MIN - hold);
}

#[test]
fn reload_keeps_the_state_of_rules_that_still_exist() {
    let store = MemStorage::new();
    series(&store, "up", &[("instance", "a")], &[(0, 0.0), (MIN, 0.0)]);
    let mut old = group(DOWN);
    old.set_restored();
    eval(&mut old, &store, 0);
    let mut same = group(&format!("{DOWN}  - record: extra\n    expr: up\n"));
    same.copy_state(&old);
    let Rule::Alerting(rule) = &same.rules[0] else { panic!("alerting rule") };
    assert_eq!(rule.active.len(), 1);
    let mut changed = group(&DOWN.replace("severity: page", "severity: ticket"));
    changed.copy_state(&old);
    let Rule::Alerting(rule) = &changed.rules[0] else { panic!("alerting rule") };
    assert!(rule.active.is_empty());
}

#[test]
fn keep_firing_for_holds_a_firing_alert() {
    let store = MemStorage::new();
    series(&store, "errors", &[], &[(0, 1.0), (MIN, 0.0), (2 * MIN, 0.0), (3 * MIN, 0.0)]);
    let mut g =
        group("groups:\n- name: g\n  rules:\n  - alert: E\n    expr: errors > 0\n    keep_firing_for: 2m\n");
    g.set_restored();
    eval(&mut g, &store, 0);
    assert!(eval(&mut g, &store, MIN).is_empty());
    assert!(eval(&mut g, &store, 2 * MIN).is_empty());
    let events = eval(&mut g, &store, 3 * MIN);
    assert_eq!(
        events.iter().map(|e| (e.from, e.to)).collect::<Vec<_>>(),
        [(AlertState::Firing, AlertState::Resolved)]
    );
}

#[test]
fn query_offset_queries_earlier_and_writes_at_the_query_time() {
    let store = MemStorage::new();
    // Down only at 0m..1m: with a one-minute offset, the evaluation at 2m sees the value of 1m.
    series(&store, "up", &[("instance", "a")], &[(0, 1.0), (MIN, 0.0), (2 * MIN, 1.0)]);
    let mut g =
        group("groups:\n- name: g\n  query_offset: 1m\n  rules:\n  - alert: Down\n    expr: up == 0\n");
    g.set_restored();
    let events = eval(&mut g, &store, 2 * MIN);
    assert_eq!(events.len(), 2, "{events:?}");
    let Rule::Alerting(rule) = &g.rules[0] else { panic!("alerting rule") };
    assert_eq!(rule.active.values().next().expect("alert").active_at, 2 * MIN);
    let raw = store.select(&[promql_matcher("ALERTS")], &SelectHints::range(0, 3 * MIN)).expect("select");
    assert_eq!(raw[0].samples, [Sample::new(MIN, 1.0)]);
}
