//! `sightline rules test`'s alerting half: a [`sightline_tsdb::unittest::RuleEvaluator`] that loads the
//! rule files with this module's parser and evaluates them with [`RuleGroup`], so that
//! `alert_rule_test`s run as in `promtool test rules`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use sightline_tsdb::Storage;
use sightline_tsdb::promql::Engine;
use sightline_tsdb::unittest::{RuleEvaluator, RuleSession, RuleSetup, RunSummary, UnitTestError};

use super::file::load_files;
use super::group::{AlertState, EvalContext, Rule, RuleGroup};
use crate::model::LabelSet;

/// Evaluates rule files for `sightline_tsdb::unittest`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlertingEvaluator;

/// Runs `promtool test rules` files with alerting: promtool's report on `out` and `err`.
pub fn run_test_files(
    paths: &[PathBuf],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<RunSummary, UnitTestError> {
    sightline_tsdb::unittest::run_test_files_with(paths, out, err, &AlertingEvaluator)
}

impl RuleEvaluator for AlertingEvaluator {
    fn load(&self, setup: &RuleSetup<'_>) -> Result<Box<dyn RuleSession>, Vec<String>> {
        let defs = load_files(setup.rule_files)
            .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        let mut groups = Vec::with_capacity(defs.len());
        for def in &defs {
            let mut g = RuleGroup::from_def(def, setup.eval_interval).map_err(|e| vec![e.to_string()])?;
            // There is no earlier run to restore from: ALERTS are written from the first step.
            g.set_restored();
            groups.push(g);
        }
        // Listed groups by their position, unlisted ones first (position 0), file order among equals,
        // as promtool orders them.
        groups.sort_by_key(|g| setup.group_eval_order.iter().position(|n| *n == g.name).unwrap_or(0));
        Ok(Box::new(Session {
            groups,
            engine: setup.engine.clone(),
            external_labels: setup.external_labels.clone(),
            external_url: setup.external_url.to_owned(),
        }))
    }
}

struct Session {
    groups: Vec<RuleGroup>,
    engine: Engine,
    external_labels: LabelSet,
    external_url: String,
}

impl RuleSession for Session {
    fn eval(&mut self, store: &dyn Storage, ts: i64) -> Vec<(String, String)> {
        let ctx = EvalContext {
            engine: &self.engine,
            storage: store,
            external_labels: &self.external_labels,
            external_url: &self.external_url,
        };
        self.groups.iter_mut().flat_map(|g| g.eval(&ctx, ts).errors).collect()
    }

    fn firing_alerts(&self, alertname: &str) -> Vec<(BTreeMap<String, String>, BTreeMap<String, String>)> {
        let mut out = Vec::new();
        for g in &self.groups {
            for rule in &g.rules {
                let Rule::Alerting(a) = rule else { continue };
                if a.name != alertname {
                    continue;
                }
                out.extend(
                    a.active
                        .values()
                        .filter(|x| x.state == AlertState::Firing)
                        .map(|x| (x.labels.clone(), x.annotations.clone())),
                );
            }
        }
        out
    }
}
