//! The rules target: one evaluation cycle of 1,000 rules (half recording, half alerting with
//! templated annotations) over 100,000 series in `sightline_tsdb::storage::Db` (in memory) takes at most
//! one second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use sightline_alert::rules::file::parse_text;
use sightline_alert::rules::{EvalContext, RuleGroup};
use sightline_tsdb::Labels;
use sightline_tsdb::Storage;
use sightline_tsdb::promql::Engine;
use sightline_tsdb::storage::{Db, TsdbOptions};

const METRICS: usize = 1_000;
const SERIES_PER_METRIC: usize = 100;
const T0: i64 = 1_700_000_000_000;

fn store() -> Db {
    let db = Db::in_memory(TsdbOptions::default()).expect("db");
    let mut app = db.appender();
    for m in 0..METRICS {
        for s in 0..SERIES_PER_METRIC {
            let labels = Labels::from_pairs(&[
                ("__name__", format!("m_{m}")),
                ("instance", format!("host-{s}:9100")),
                ("job", format!("job-{}", s % 10)),
            ]);
            let mut r = 0;
            for k in 0..5i64 {
                r = app.append(r, &labels, T0 + k * 15_000, (s as f64) + k as f64 * 10.0).expect("append");
            }
        }
    }
    app.commit().expect("commit");
    db
}

fn rules_text() -> String {
    let mut text = String::from("groups:\n  - name: bench\n    rules:\n");
    for m in 0..METRICS {
        if m % 2 == 0 {
            text.push_str(&format!(
                "      - record: job:m_{m}:rate1m\n        expr: sum by (job) (rate(m_{m}[1m]))\n"
            ));
        } else {
            text.push_str(&format!(
                "      - alert: High{m}\n        expr: m_{m} > 125\n        for: 5m\n        labels:\n          severity: page\n        annotations:\n          summary: \"{{{{ $labels.instance }}}} is at {{{{ $value | humanize }}}}\"\n"
            ));
        }
    }
    text
}

fn bench(c: &mut Criterion) {
    let db = store();
    let defs = parse_text(Path::new("bench.yml"), &rules_text()).expect("rules");
    let mut group = RuleGroup::from_def(&defs[0], 60_000).expect("group");
    group.set_restored();
    let engine = Engine::default();
    let external = Default::default();
    let ctx = EvalContext { engine: &engine, storage: &db, external_labels: &external, external_url: "" };
    // Each cycle one millisecond later, so that the rules' own samples are appended in order.
    let ts = Cell::new(T0 + 60_000);
    let mut g = c.benchmark_group("rules");
    g.sample_size(10);
    g.bench_function("1000_rules_100k_series_cycle", |b| {
        b.iter(|| {
            let t = ts.get();
            ts.set(t + 1);
            let outcome = group.eval(&ctx, t);
            assert!(outcome.errors.is_empty(), "{:?}", outcome.errors.first());
            outcome.samples
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
