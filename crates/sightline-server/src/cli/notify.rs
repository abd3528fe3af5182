//! `sightline notify test RECEIVER`: send a test notification through every integration of a receiver of
//! the configuration, with its timeout and retries, and say which worked.

use std::path::PathBuf;
use std::process::ExitCode;

use sightline_alert::pipeline::dispatch::NotifierFactory as _;

#[derive(Debug, clap::Args)]
pub(super) struct NotifyArgs {
    #[command(subcommand)]
    command: NotifyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum NotifyCommand {
    /// Send a test alert to RECEIVER (from `alerting.receivers`). Exit code: 0 every integration
    /// delivered, 1 any failed (with the reason), 2 no such receiver or a bad configuration.
    Test {
        /// The receiver's name.
        receiver: String,
        /// The configuration file (YAML) that defines the receiver.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

pub(super) fn run(args: &NotifyArgs) -> ExitCode {
    let NotifyCommand::Test { receiver, config } = &args.command;
    let config = match crate::config::Config::load(config.as_deref(), super::environment()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let Some(found) = config.alerting.receivers.iter().find(|r| &r.name == receiver) else {
        let names: Vec<&str> = config.alerting.receivers.iter().map(|r| r.name.as_str()).collect();
        eprintln!("error: no receiver {receiver:?} in alerting.receivers (have: {})", names.join(", "));
        return ExitCode::from(2);
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let notification = sightline_alert::notify::test_notification(receiver);
    let mut failed = false;
    for (i, integration) in found.integrations().iter().enumerate() {
        let kind = integration.kind();
        let notifier = match sightline_alert::factory::DefaultNotifierFactory.build(
            found,
            integration,
            &config.alerting.global,
        ) {
            Ok(notifier) => notifier,
            Err(err) => {
                eprintln!("{receiver} {kind}[{i}]: cannot build: {err}");
                failed = true;
                continue;
            }
        };
        match runtime.block_on(notifier.notify(&notification)) {
            Ok(()) => println!("{receiver} {kind}[{i}]: delivered"),
            Err(err) => {
                eprintln!("{receiver} {kind}[{i}]: failed: {err}");
                failed = true;
            }
        }
    }
    if found.integrations().is_empty() {
        eprintln!("error: receiver {receiver:?} has no integrations (webhook_configs, slack_configs, ...)");
        return ExitCode::from(2);
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
