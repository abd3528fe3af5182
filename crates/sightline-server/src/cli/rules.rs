//! `sightline rules check|test FILE...`: rule files checked as `promtool check rules` does, and rule unit
//! tests in `promtool test rules` format (with `alert_rule_test`).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RulesCommand {
    /// Check rule files (Prometheus format): YAML, PromQL, templates, names, durations. Exit code: 0 all
    /// good, 1 any error, each printed with file:line.
    Check {
        /// Rule files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run rule unit tests written for `promtool test rules` (input_series, promql_expr_test,
    /// alert_rule_test, rules from rule_files). Exit code: 0 all passed, 1 any failure; each failure names the expression,
    /// the evaluation time, and what was expected and got.
    Test {
        /// Test files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub(super) fn run(args: &RulesArgs) -> ExitCode {
    match &args.command {
        RulesCommand::Test { files } => test(files),
        RulesCommand::Check { files } => check(files),
    }
}

fn test(files: &[PathBuf]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    match sightline_alert::rules::unittest::run_test_files(files, &mut out, &mut err) {
        Ok(summary) => ExitCode::from(u8::try_from(summary.exit_code()).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    match sightline_alert::rules::file::run_check(files, &mut out, &mut err) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: cannot write the report: {e}");
            ExitCode::FAILURE
        }
    }
}
