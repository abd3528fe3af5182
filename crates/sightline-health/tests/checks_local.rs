//! The local checks: writable directories, disk space and external commands.

// The helpers outside #[test] functions (servers, certificates) unwrap too.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use sightline_health::checks::command::CommandCheck;
use sightline_health::checks::disk::DiskCheck;
use sightline_health::checks::filesystem::FilesystemCheck;
use sightline_health::{HealthCheck, Probe, Status};
use sightline_testkit::TempDir;

fn assert_status(probe: &Probe, status: Status) {
    assert_eq!(probe.status, status, "{probe:#?}");
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

// --------------------------------------------------------------------------------------- filesystem

#[tokio::test]
async fn filesystem_writable_missing_and_read_only() {
    let dir = TempDir::new("health-fs");
    let probe = FilesystemCheck::new(dir.path()).unwrap().check().await;
    assert_status(&probe, Status::Healthy);
    assert_eq!(probe.observed.as_ref().unwrap().unit, "ms");
    // The probe file is gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let missing = dir.path().join("missing");
    let probe = FilesystemCheck::new(&missing).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.contains("No such file or directory"), "{}", probe.message);

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let probe = FilesystemCheck::new(&file).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let read_only = dir.path().join("read-only");
        std::fs::create_dir(&read_only).unwrap();
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
        let probe = FilesystemCheck::new(&read_only).unwrap().check().await;
        // Root writes through permission bits (CI runs as root), so only an unprivileged user sees the
        // refusal; as root the directory is simply writable.
        if is_root() {
            assert_status(&probe, Status::Healthy);
        } else {
            assert_status(&probe, Status::Unhealthy);
            assert!(probe.message.contains("Permission denied"), "{}", probe.message);
        }
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    assert_eq!(FilesystemCheck::new("").unwrap_err().parameter, "path");
}

// --------------------------------------------------------------------------------------------- disk

/// A directory on a real filesystem with some data on it (this crate's sources).
fn real_path() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn disk_reports_the_used_ratio() {
    // Thresholds that only a completely full disk reaches, so that the machine's fill level does not matter.
    let check = DiskCheck::builder(real_path()).warn_ratio(0.9999).fail_ratio(1.0).build().unwrap();
    let probe = check.check().await;
    assert_status(&probe, Status::Healthy);
    let observed = probe.observed.clone().unwrap();
    assert_eq!(observed.unit, "ratio");
    assert!(observed.value > 0.0 && observed.value < 1.0, "{observed:?}");
    let total = probe.details["total_bytes"].as_u64().unwrap();
    let free = probe.details["free_bytes"].as_u64().unwrap();
    let available = probe.details["available_bytes"].as_u64().unwrap();
    assert!(total > 0 && free <= total && available <= free, "{}", probe.details);
}

#[tokio::test]
async fn disk_thresholds_force_degraded_and_unhealthy() {
    let probe =
        DiskCheck::builder(real_path()).warn_ratio(1e-9).fail_ratio(1.0).build().unwrap().check().await;
    assert_status(&probe, Status::Degraded);
    assert!(probe.message.contains("(warn_ratio "), "{}", probe.message);

    let probe =
        DiskCheck::builder(real_path()).warn_ratio(1e-9).fail_ratio(2e-9).build().unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.contains("(fail_ratio "), "{}", probe.message);

    let relaxed = || DiskCheck::builder(real_path()).warn_ratio(0.9999).fail_ratio(1.0);
    let probe = relaxed().warn_free_bytes(u64::MAX).build().unwrap().check().await;
    assert_status(&probe, Status::Degraded);
    let probe = relaxed().fail_free_bytes(u64::MAX).build().unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.contains("(fail_free_bytes "), "{}", probe.message);

    let probe = DiskCheck::new("/no/such/path/anywhere").unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.contains("No such file or directory"), "{}", probe.message);
}

#[test]
fn disk_rejects_bad_thresholds() {
    let param = |b: sightline_health::checks::disk::DiskCheckBuilder| b.build().unwrap_err().parameter;
    assert_eq!(param(DiskCheck::builder("/").warn_ratio(0.0)), "warn_ratio");
    assert_eq!(param(DiskCheck::builder("/").warn_ratio(f64::NAN)), "warn_ratio");
    assert_eq!(param(DiskCheck::builder("/").fail_ratio(1.5)), "fail_ratio");
    assert_eq!(param(DiskCheck::builder("/").warn_ratio(0.9).fail_ratio(0.5)), "warn_ratio");
    assert_eq!(param(DiskCheck::builder("/").warn_ratio(0.9).fail_ratio(0.9)), "warn_ratio");
    assert_eq!(param(DiskCheck::builder("/").warn_free_bytes(10).fail_free_bytes(20)), "warn_free_bytes");
    assert_eq!(param(DiskCheck::builder("")), "path");
    assert!(DiskCheck::builder("/").warn_ratio(0.5).fail_ratio(1.0).build().is_ok());
}

// ------------------------------------------------------------------------------------------ command

#[tokio::test]
async fn command_exit_codes() {
    let probe = CommandCheck::new(["true"]).unwrap().check().await;
    assert_status(&probe, Status::Healthy);
    assert_eq!(probe.details["exit_code"], 0);
    assert_eq!(probe.observed.as_ref().unwrap().unit, "ms");

    let probe = CommandCheck::new(["false"]).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert_eq!(probe.message, "false exited with 1");
    assert_eq!(probe.details["exit_code"], 1);

    // The last line of standard error, else of standard output.
    let script = "echo starting; echo 'disk is full' >&2; echo done; exit 3";
    let probe = CommandCheck::new(["sh", "-c", script]).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert_eq!(probe.message, "sh exited with 3: disk is full");
    assert_eq!(probe.details["stdout"], "done");
    let probe = CommandCheck::new(["sh", "-c", "echo accepting connections"]).unwrap().check().await;
    assert_status(&probe, Status::Healthy);
    assert_eq!(probe.message, "sh exited with 0: accepting connections");

    // Long output is cut.
    let probe = CommandCheck::new(["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; exit 1"])
        .unwrap()
        .check()
        .await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.len() < 600, "{} bytes", probe.message.len());

    let probe = CommandCheck::builder("sh")
        .args(["-c", "test \"$PROBE\" = yes"])
        .env("PROBE", "yes")
        .build()
        .unwrap();
    assert_status(&probe.check().await, Status::Healthy);

    let probe = CommandCheck::new(["/no/such/program", "--flag"]).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.starts_with("cannot run /no/such/program: "), "{}", probe.message);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn command_is_killed_when_the_probe_is_dropped() {
    let dir = TempDir::new("health-cmd");
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
    let check = CommandCheck::new(["sh", "-c", &script]).unwrap();

    let pid = {
        let mut probe = check.check();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            tokio::select! {
                probe = &mut probe => panic!("the command finished early: {probe:?}"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            let written = std::fs::read_to_string(&pid_file).unwrap_or_default();
            if let Ok(pid) = written.trim().parse::<u32>() {
                break pid;
            }
            assert!(Instant::now() < deadline, "the command did not start");
        }
        // The probe (and with it the child) is dropped here, as the registry's timeout would.
    };

    // Gone, or a zombie that tokio reaps later: either way no longer sleeping.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        if matches!(state, None | Some("Z" | "X")) {
            break;
        }
        assert!(Instant::now() < deadline, "process {pid} still alive: {stat}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
