//! `cargo xtask bench-tsdb`: the time-series store's benchmarks (`crates/sightline-tsdb/benches/`):
//! the criterion benches `storage`, `promql` and `scrape` (1 s warm-up, 3 s measurement), then
//! `prometheus_anchor`, which times the query targets in process and against Debian's Prometheus over
//! HTTP on the same samples. Prints one table of the criterion results this run wrote, with the issue's
//! targets, and the anchor's table; the anchor's numbers go to `<target dir>/bench/tsdb.json`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Result, bail};

/// What `bench-tsdb` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Timed runs of each query in the Prometheus comparison.
    pub runs: u32,
    /// Whether the criterion benches run too (`--anchor-only` turns them off).
    pub criterion: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { runs: 50, criterion: true }
    }
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--runs" => {
                    options.runs = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or("`--runs` takes a positive number")?;
                }
                "--anchor-only" => options.criterion = false,
                other => return Err(format!("unknown option `{other}` for `bench-tsdb`")),
            }
        }
        Ok(options)
    }
}

/// A criterion result the issue states a target for: group, case, target in nanoseconds (per iteration)
/// and the target's text.
type Row = (&'static str, &'static str, Option<f64>, &'static str);

/// The rows of the summary, in the order. Ingest is per scrape round of 10,000 samples, so
/// 1,000,000 samples/s is 10 ms a round.
const ROWS: [Row; 19] = [
    ("ingest", "in_memory_10k_series_scrape_round", Some(10e6), ">= 1M samples/s (10 ms per 10k)"),
    ("ingest", "wal_10k_series_scrape_round", Some(10e6), ">= 1M samples/s (10 ms per 10k)"),
    ("ingest", "first_scrape_creates_10k_series", None, ""),
    ("select_10k_series", "5m", None, ""),
    ("select_10k_series", "1h", None, ""),
    ("select_10k_series", "5m_one_job_1k_series", None, ""),
    ("instant_sum_rate_10k", "db", Some(20e6), "<= 20 ms"),
    ("instant_sum_rate_10k", "mem", None, ""),
    ("range_sum_rate_1k_24h", "db", Some(200e6), "<= 200 ms"),
    ("range_sum_rate_1k_24h", "mem", None, ""),
    ("scrape_parse_10k", "sightline_series_text", None, ""),
    ("scrape_parse_10k", "sightline_with_labels", None, ""),
    ("scrape_parse_10k", "openmetrics_parser_prometheus", None, ""),
    ("scrape_parse_10k", "openmetrics_parser_openmetrics", None, ""),
    ("scrape_append_10k", "first", Some(20e6), "<= 20 ms"),
    ("scrape_append_10k", "steady", Some(20e6), "<= 20 ms"),
    ("scrape_append_10k", "first_null_store", None, ""),
    ("scrape_append_10k", "steady_null_store", None, ""),
    ("maintenance_10k_series_1h", "checkpoint", None, ""),
];

pub fn run(root: &Path, target_dir: &Path, options: &Options) -> Result<()> {
    let started = SystemTime::now();
    if options.criterion {
        let mut command = Command::new(crate::cargo());
        command
            .args(["bench", "-p", "sightline-tsdb", "--bench", "storage", "--bench", "promql"])
            .args(["--bench", "scrape", "--", "--warm-up-time", "1", "--measurement-time", "3"])
            .current_dir(root)
            .env("CARGO_TARGET_DIR", target_dir);
        let code = crate::status(&mut command, "`cargo bench`")?;
        if code != 0 {
            bail!("`cargo bench -p sightline-tsdb` failed with exit code {code}");
        }
    }
    let runs = options.runs.to_string();
    let mut command = Command::new(crate::cargo());
    command
        .args(["bench", "-p", "sightline-tsdb", "--bench", "prometheus_anchor", "--", "--runs", &runs])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir);
    let code = crate::status(&mut command, "`cargo bench`")?;
    if code != 0 {
        bail!("`cargo bench -p sightline-tsdb --bench prometheus_anchor` failed with exit code {code}");
    }
    if options.criterion {
        println!("\n{}", summary(&target_dir.join("criterion"), started)?);
    }
    Ok(())
}

/// The criterion rows written at or after `since`, with their targets.
fn summary(criterion_dir: &Path, since: SystemTime) -> Result<String> {
    let mut out =
        String::from("| group | case | median | mean | target | verdict |\n|---|---|---:|---:|---|---|\n");
    for (group, case, target, target_text) in ROWS {
        let results = crate::read_group(&criterion_dir.join(group), since)?;
        let Some(measured) = results.iter().find(|m| m.name == case) else {
            eprintln!("warning: no fresh result for {group}/{case}");
            continue;
        };
        let verdict = match target {
            Some(limit) if measured.mean_ns <= limit => "met",
            Some(_) => "MISSED",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {group} | {case} | {} | {} | {target_text} | {verdict} |",
            millis(measured.median_ns),
            millis(measured.mean_ns)
        );
    }
    Ok(out)
}

fn millis(ns: f64) -> String {
    format!("{:.3} ms", ns / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options() {
        assert_eq!(Options::parse(&[]), Ok(Options::default()));
        assert_eq!(
            Options::parse(&args(&["--runs", "20", "--anchor-only"])),
            Ok(Options { runs: 20, criterion: false })
        );
        assert!(Options::parse(&args(&["--runs", "0"])).is_err());
        assert!(Options::parse(&args(&["--fast"])).is_err());
    }

    #[test]
    fn millis_are_three_decimals() {
        assert_eq!(millis(12_345_678.0), "12.346 ms");
    }
}
