//! Helpers shared by the end-to-end tests of the `sightline` binary.

// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use sightline_testkit::{ChildGuard, TempDir};

/// A running `sightline serve` on a free port, with its data dir.
#[derive(Debug)]
pub struct Server {
    pub child: ChildGuard,
    pub addr: SocketAddr,
    pub start_line: serde_json::Value,
    _dir: TempDir,
}

pub fn start(extra_env: &[(&str, &str)]) -> Server {
    start_with(&[], extra_env)
}

/// `sightline serve` with extra arguments (such as `--config FILE`) and environment.
pub fn start_with(args: &[&str], extra_env: &[(&str, &str)]) -> Server {
    let dir = TempDir::new("serve");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sightline"));
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path().join("data")).args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SIGHTLINE_") {
            command.env_remove(key);
        }
    }
    command.envs(extra_env.iter().copied());
    let mut child = ChildGuard::spawn(command).expect("spawn sightline");
    let line = child.wait_for_line("sightline listening", Duration::from_secs(30)).unwrap_or_else(|| {
        panic!("sightline did not start; its output:\n{}", child.seen.join("\n"));
    });
    let start_line: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    let addr = start_line["listen"].as_str().expect("listen field").parse().expect("an address");
    Server { child, addr, start_line, _dir: dir }
}
