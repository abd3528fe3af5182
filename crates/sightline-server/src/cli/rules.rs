//! `sightline rules test FILE...`: rule unit tests in `promtool test rules` format.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RulesCommand {
    /// Run rule unit tests written for `promtool test rules` (input_series, promql_expr_test, recording
    /// rules from rule_files). Exit code: 0 all passed, 1 any failure; each failure names the expression,
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
    }
}

fn test(files: &[PathBuf]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    match sightline_tsdb::unittest::run_test_files_split(files, &mut out, &mut err) {
        Ok(summary) => ExitCode::from(u8::try_from(summary.exit_code()).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
