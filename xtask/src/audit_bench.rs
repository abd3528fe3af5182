//! `cargo xtask bench-audit`: the audit trail's load test (`crates/sightline-audit/benches/audit.rs`)
//! against SQLite, PostgreSQL (skipped when unreachable) and over HTTP against a release build of
//! `sightline serve`, then one table of every target's verdict from `<target dir>/bench/audit.json`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// What `bench-audit` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Events stored per backend (the query and verify targets are stated for 1,000,000).
    pub events: u64,
    /// Events posted over HTTP.
    pub http_events: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { events: 1_000_000, http_events: 300_000 }
    }
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut number = |name: &str| {
                args.next()
                    .and_then(|v| v.replace('_', "").parse::<u64>().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("`{name}` takes a positive number"))
            };
            match arg.as_str() {
                "--events" => options.events = number("--events")?,
                "--http-events" => options.http_events = number("--http-events")?,
                "--quick" => options = Options { events: 100_000, http_events: 50_000 },
                other => return Err(format!("unknown option `{other}` for `bench-audit`")),
            }
        }
        Ok(options)
    }
}

pub fn run(root: &Path, target_dir: &Path, options: &Options) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = SystemTime::now();
    crate::health_bench::build_release_server(root, target_dir)?;
    let server = target_dir.join("release/sightline");
    let events = options.events.to_string();
    let http_events = options.http_events.to_string();
    let runs: [Vec<&str>; 3] = [
        vec!["--backend", "sqlite", "--events", &events],
        vec!["--backend", "postgres", "--events", &events],
        vec!["--http", "--events", &http_events],
    ];
    for args in runs {
        let mut command = Command::new(&cargo);
        command
            .args(["bench", "-p", "sightline-audit", "--bench", "audit", "--"])
            .args(&args)
            .current_dir(root)
            .env("CARGO_TARGET_DIR", target_dir);
        if args.contains(&"--http") {
            command.arg("--server").arg(&server);
        }
        let status = command.status().context("could not run cargo bench")?;
        if !status.success() {
            bail!("`cargo bench -p sightline-audit --bench audit -- {}` failed", args.join(" "));
        }
    }

    let path = target_dir.join("bench/audit.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("could not read {}", path.display()))?;
    let results: Value =
        serde_json::from_str(&text).with_context(|| format!("could not parse {}", path.display()))?;
    let since = started.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    println!("\n{}", summary(&results, since));
    println!("Written to {}", path.display());
    Ok(())
}

/// One table of the targets of every mode written at or after `since` (Unix seconds).
fn summary(results: &Value, since: u64) -> String {
    let mut out = String::from(
        "### Audit targets\n\n| mode | measurement | target | measured | verdict |\n|---|---|---|---:|---|\n",
    );
    for mode in ["sqlite", "postgres", "http"] {
        let entry = &results[mode];
        if entry["unix_time_s"].as_u64().is_none_or(|t| t < since) {
            continue;
        }
        if let Some(reason) = entry["skipped"].as_str() {
            let _ = writeln!(out, "| {mode} | skipped: {reason} | | | |");
            continue;
        }
        for row in entry["table"].as_array().into_iter().flatten() {
            let text = |key: &str| row[key].as_str().unwrap_or_default().to_owned();
            if text("target").is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "| {mode} | {} | {} | {} | {} |",
                text("measurement"),
                text("target"),
                text("measured"),
                text("verdict")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options() {
        assert_eq!(Options::parse(&[]), Ok(Options::default()));
        let options = Options::parse(&args(&["--events", "200_000"])).unwrap_or_default();
        assert_eq!(options.events, 200_000);
        assert!(Options::parse(&args(&["--events", "0"])).is_err());
        assert!(Options::parse(&args(&["--fast"])).is_err());
    }

    #[test]
    fn summary_lists_fresh_targets_only() {
        let results = json!({
            "sqlite": {"unix_time_s": 100, "table": [
                {"measurement": "ingest", "target": ">= 100k/s", "measured": "48k/s", "verdict": "MISSED"},
                {"measurement": "commits", "target": "", "measured": "245", "verdict": ""},
            ]},
            "postgres": {"unix_time_s": 100, "skipped": "PostgreSQL unreachable"},
            "http": {"unix_time_s": 5, "table": [
                {"measurement": "old", "target": ">= 30.0k/s", "measured": "1", "verdict": "MISSED"},
            ]},
        });
        let table = summary(&results, 50);
        assert!(table.contains("| sqlite | ingest | >= 100k/s | 48k/s | MISSED |"), "{table}");
        assert!(!table.contains("commits"), "{table}");
        assert!(table.contains("| postgres | skipped: PostgreSQL unreachable |"), "{table}");
        assert!(!table.contains("old"), "{table}");
    }
}
