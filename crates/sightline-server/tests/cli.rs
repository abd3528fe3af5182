//! The `sightline` binary's command line: help, version, config checking and start-up failures.

use std::process::Command;

use sightline_testkit::TempDir;

fn sightline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sightline"));
    // The test runner's own SIGHTLINE_* variables must not leak into the binary under test.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SIGHTLINE_") {
            command.env_remove(key);
        }
    }
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let out = command.output().expect("run sightline");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

#[test]
fn help_and_version() {
    let (code, stdout, _) = run(sightline().arg("--help"));
    assert_eq!(code, 0);
    for word in ["serve", "check-config"] {
        assert!(stdout.contains(word), "{word} missing from --help:\n{stdout}");
    }
    let (code, stdout, _) = run(sightline().args(["serve", "--help"]));
    assert_eq!(code, 0);
    for flag in ["--listen", "--config", "--data-dir", "127.0.0.1:9750", "./sightline-data"] {
        assert!(stdout.contains(flag), "{flag} missing from serve --help:\n{stdout}");
    }
    let (code, stdout, _) = run(sightline().arg("--version"));
    assert_eq!(code, 0);
    assert!(stdout.starts_with(&format!("sightline {}", env!("CARGO_PKG_VERSION"))), "{stdout}");
    let (code, _, stderr) = run(sightline().arg("frobnicate"));
    assert_eq!(code, 2, "usage errors exit 2");
    assert!(stderr.contains("unrecognized subcommand"), "{stderr}");
}

#[test]
fn check_config_accepts_a_valid_file() {
    let dir = TempDir::new("check-ok");
    let file = dir.path().join("ok.yaml");
    std::fs::write(&file, "server:\n  listen: 127.0.0.1:9999\nmetrics:\n  cardinality_limit: 10\n").unwrap();
    let (code, stdout, stderr) = run(sightline().arg("check-config").arg(&file));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
}

#[test]
fn check_config_names_file_line_and_reason() {
    let dir = TempDir::new("check-bad");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "server:\n  listen: 127.0.0.1:9999\n\nmetrics:\n  cardinalty_limit: 10\n").unwrap();
    let (code, _, stderr) = run(sightline().arg("check-config").arg(&file));
    assert_eq!(code, 1);
    let expected = format!("{}:5:", file.display());
    assert!(stderr.contains(&expected), "{expected} missing from {stderr}");
    assert!(stderr.contains("unknown field `cardinalty_limit`"), "{stderr}");

    let (code, _, stderr) = run(sightline().arg("check-config").arg(dir.path().join("missing.yaml")));
    assert_eq!(code, 1);
    assert!(stderr.contains("missing.yaml: cannot read the configuration file"), "{stderr}");
}

#[test]
fn serve_refuses_an_invalid_config_and_names_it() {
    let dir = TempDir::new("serve-bad");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "log:\n  format: xml\n").unwrap();
    let (code, _, stderr) = run(sightline().arg("serve").arg("--config").arg(&file));
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("{}:2:", file.display())), "{stderr}");
    assert!(stderr.contains("unknown variant `xml`"), "{stderr}");
}

#[test]
fn serve_refuses_a_bad_environment_override() {
    let (code, _, stderr) = run(sightline().arg("serve").env("SIGHTLINE_SERVER__LISTN", "127.0.0.1:1"));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("environment variable SIGHTLINE_SERVER__LISTN: unknown setting `server.listn`"),
        "{stderr}"
    );
    let (code, _, stderr) = run(sightline().arg("serve").env("SIGHTLINE_LOG", "info,[broken"));
    assert_eq!(code, 1);
    assert!(stderr.contains("invalid log filter"), "{stderr}");
}

#[test]
fn serve_fails_clearly_when_the_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = TempDir::new("serve-taken");
    let (code, _, stderr) =
        run(sightline().args(["serve", "--listen", &addr, "--data-dir"]).arg(dir.path().join("data")));
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
}

#[test]
fn the_shipped_example_config_is_valid_and_all_defaults() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/sightline.example.yaml");
    let (code, stdout, stderr) = run(sightline().arg("check-config").arg(example));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(": ok"));
    // The file promises that every value shown is the default; keep that true.
    let mut parsed =
        sightline_server::config::Config::load(Some(std::path::Path::new(example)), std::iter::empty())
            .expect("valid");
    assert_eq!(parsed.source.as_deref(), Some(std::path::Path::new(example)), "load remembers its file");
    parsed.source = None;
    assert_eq!(parsed, sightline_server::config::Config::default());
}
