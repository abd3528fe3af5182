//! Helpers shared by the end-to-end tests of the `sightline` binary.

// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sightline_testkit::{ChildGuard, TempDir, http_get};

/// A running `sightline serve` on a free port, with its data dir.
#[derive(Debug)]
pub struct Server {
    pub child: ChildGuard,
    pub addr: SocketAddr,
    pub start_line: serde_json::Value,
    /// The temporary directory holding the data dir, when the server made its own.
    _dir: Option<TempDir>,
}

pub fn start(extra_env: &[(&str, &str)]) -> Server {
    start_with(&[], extra_env)
}

/// `sightline serve` with extra arguments (such as `--config FILE`) and environment, on a fresh data dir.
pub fn start_with(args: &[&str], extra_env: &[(&str, &str)]) -> Server {
    let dir = TempDir::new("serve");
    let data_dir = dir.path().join("data");
    spawn(&data_dir, args, extra_env, Some(dir))
}

/// `sightline serve --config CONFIG` on `data_dir`, which outlives the server so that a test can restart
/// it on the same data.
pub fn start_in(data_dir: &Path, config: &Path, extra_env: &[(&str, &str)]) -> Server {
    let config = config.to_str().expect("a UTF-8 config path");
    spawn(data_dir, &["--config", config], extra_env, None)
}

fn spawn(data_dir: &Path, args: &[&str], extra_env: &[(&str, &str)], dir: Option<TempDir>) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sightline"));
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir).args(args);
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

/// `GET path` as JSON; panics with the body when it is not.
pub fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let response = http_get(addr, path, &[]).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {}", response.body))
}

/// Polls `check` until it returns `Some`, for at most `timeout`.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
