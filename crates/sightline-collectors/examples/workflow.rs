//! A toy workflow runner with execution tracking: each run is a `workflow` execution, and its steps are
//! `plugin` executions, one of which retries, one produces items (findings) and one is slow enough to
//! cross its warning threshold. Logs go to stderr, in the executions' spans; the metrics are printed at
//! the end in the Prometheus text format.
//!
//! ```sh
//! cargo run -p sightline-collectors --example workflow
//! ```

use std::time::Duration;

use sightline_collectors::execution::{Outcome, Tracker};
use sightline_core::Registry;
use sightline_export::{Format, render};

/// Why a step failed.
#[derive(Debug)]
struct StepError(&'static str);

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for StepError {}

/// Fetches the sources; the first attempt of the first run fails, and is retried.
async fn fetch(tracker: &Tracker, run: u32) -> Result<Vec<&'static str>, StepError> {
    let execution = tracker.execution("plugin", "fetch");
    let progress = execution.progress();
    execution
        .track(async move {
            for attempt in 1..=3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if run == 1 && attempt == 1 {
                    tracing::warn!(attempt, "source unavailable; retrying");
                    progress.retry();
                    continue;
                }
                return Ok(vec!["main.rs", "config.yaml", "secrets.env"]);
            }
            Err(StepError("source unavailable after 3 attempts"))
        })
        .await
}

/// Scans the files; each finding is an item.
async fn scan(tracker: &Tracker, files: &[&'static str]) -> Result<usize, StepError> {
    let execution = tracker.execution("plugin", "scan");
    let progress = execution.progress();
    let files = files.to_vec();
    execution
        .track(async move {
            let findings = files.iter().filter(|file| file.ends_with(".env")).count();
            tokio::time::sleep(Duration::from_millis(10)).await;
            progress.add_items(findings as u64);
            tracing::info!(findings, "scan done");
            Ok(findings)
        })
        .await
}

/// Renders the report, synchronously and slowly: it crosses the plugin warning threshold.
fn report(tracker: &Tracker, findings: usize) -> Result<(), StepError> {
    let guard = tracker.start("plugin", "report");
    std::thread::sleep(Duration::from_millis(60));
    tracing::info!(findings, "report written");
    guard.complete(Ok(()))
}

/// Notifies a webhook that never answers; the deadline classifies it as a timeout.
async fn notify(tracker: &Tracker) {
    let result = tracker
        .track_with_timeout("plugin", "notify", Duration::from_millis(20), std::future::pending::<()>())
        .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, "notification skipped");
    }
}

async fn run_workflow(tracker: &Tracker, run: u32) -> Result<(), StepError> {
    let files = fetch(tracker, run).await?;
    let findings = scan(tracker, &files).await?;
    report(tracker, findings)?;
    notify(tracker).await;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();

    let registry = Registry::new();
    // Tight thresholds so that the toy's steps cross them; the defaults are 10 s / 60 s for plugins.
    let tracker = Tracker::builder(&registry)
        .with_thresholds("plugin", Duration::from_millis(50), Duration::from_millis(500))
        .build();

    for run in 1..=2 {
        let workflow = tracker.execution("workflow", "nightly-scan").run_id(run);
        workflow.track(run_workflow(&tracker, run)).await?;
    }

    // A run abandoned half-way: dropped before completing, it counts as cancelled.
    let abandoned = tracker.execution("workflow", "nightly-scan").run_id(3).track(run_workflow(&tracker, 3));
    let _ = tokio::time::timeout(Duration::from_millis(1), abandoned).await;

    // A step that reports its own outcome explicitly.
    tracker.start("plugin", "cleanup").finish(Outcome::Success);

    print!("{}", render(&registry.snapshot(), Format::PrometheusText));
    Ok(())
}
