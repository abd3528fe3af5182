//! `cargo xtask bench-health`: `GET /health` latency under load, measured with `wrk` against a release
//! build of `sightline serve` holding 50 health checks (every 10 s), one of which hangs on every probe.
//!
//! The load generator must not steal the server's CPU, or the test measures the scheduler rather than the
//! server: on a machine with two or more cores (and `taskset`), wrk runs on CPU 0 and the server on CPU 1
//! with one tokio worker (`TOKIO_WORKER_THREADS=1`), as a load generator on another machine would leave
//! the server its cores. Without `taskset`, both share every core and the numbers say so.
//!
//! Each run also measures the floor: the `health_floor` example, a bare axum server answering `/health`
//! with as many bytes as the real answer and nothing else, pinned the same way. What separates the two
//! rows is what Sightline adds; what the floor itself takes is the machine's.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

/// Connections wrk keeps open, as the target states.
const CONNECTIONS: u32 = 32;
/// The target for the 99th percentile.
const P99_TARGET_MS: f64 = 1.0;

/// Kills the server when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(root: &Path, target_dir: &Path, seconds: u32, runs: u32) -> Result<()> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("`wrk` is not installed; install Debian's package: apt-get install wrk");
    }
    build_release_server(root, target_dir)?;
    build_floor(root, target_dir)?;

    // 49 TCP checks against a listener that accepts, and one HTTP check against a listener that accepts
    // and never answers: it hangs until its 5 s timeout on every probe.
    let accepting = TcpListener::bind("127.0.0.1:0")?;
    let accepting_addr = accepting.local_addr()?;
    std::thread::spawn(move || {
        for stream in accepting.incoming().flatten() {
            drop(stream);
        }
    });
    let silent = TcpListener::bind("127.0.0.1:0")?;
    let silent_addr = silent.local_addr()?;
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let dir = target_dir.join("bench/health");
    std::fs::create_dir_all(&dir)?;
    let mut yaml = String::from("health:\n  checks:\n");
    for i in 0..49 {
        yaml.push_str(&format!(
            "    - {{name: tcp-{i}, type: tcp, address: '{accepting_addr}', interval: 10s}}\n"
        ));
    }
    yaml.push_str(&format!(
        "    - {{name: hanging, type: http, url: 'http://{silent_addr}/', interval: 10s, timeout: 5s, critical: false}}\n"
    ));
    let config = dir.join("sightline.yaml");
    std::fs::write(&config, yaml)?;

    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let binary = target_dir.join("release/sightline");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = cores >= 2 && Command::new("taskset").arg("--version").output().is_ok();
    let mut server = server_command(&binary, pinned);
    println!(
        "{}",
        if pinned {
            "server pinned to CPU 1 (one tokio worker), wrk to CPU 0"
        } else {
            "not pinned: server and wrk share the cores"
        }
    );
    let _server = Server(
        server
            .args(["serve", "--listen", &addr.to_string(), "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("SIGHTLINE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?,
    );
    wait_listening(addr, Duration::from_secs(30), "sightline")?;
    // Let every check run (and the hanging one start hanging) before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let mut probe = TcpStream::connect(addr)?;
    std::io::Write::write_all(&mut probe, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    probe.read_to_string(&mut answer)?;
    let checks = answer.matches("\"name\":").count();
    println!("GET /health lists {checks} checks");

    let server_pid = _server.0.id();
    let answer_bytes = answer.split_once("\r\n\r\n").map_or(0, |(_, body)| body.len());

    // The floor: a bare axum server with an answer of the same size, measured in the same runs.
    let floor_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let floor_addr = SocketAddr::from(([127, 0, 0, 1], floor_port));
    let floor_binary = target_dir.join("release/examples/health_floor");
    let mut floor = server_command(&floor_binary, pinned);
    let floor = Server(
        floor
            .arg(floor_addr.to_string())
            .arg(answer_bytes.to_string())
            .spawn()
            .with_context(|| format!("could not start {}", floor_binary.display()))?,
    );
    wait_listening(floor_addr, Duration::from_secs(10), "the health_floor example")?;

    let mut rows = Vec::new();
    let mut floor_rows = Vec::new();
    println!(
        "| run | server | connections | checks | p50 | p90 | p99 | requests/s | server CPU per request | target | verdict |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for run in 1..=runs {
        let m = measure(addr, server_pid, seconds, pinned)?;
        let met = m.p99_ms <= P99_TARGET_MS;
        println!(
            "| {run} of {runs} | sightline | {CONNECTIONS} | {checks} | {} | p99 <= {P99_TARGET_MS} ms | {} |",
            m.cells(),
            if met { "met" } else { "MISSED" }
        );
        rows.push(json!({
            "run": run, "p50_ms": m.p50_ms, "p90_ms": m.p90_ms, "p99_ms": m.p99_ms,
            "requests_per_s": m.requests_per_s, "server_cpu_us_per_request": m.cpu_us_per_request, "met": met,
        }));
        let f = measure(floor_addr, floor.0.id(), seconds, pinned)?;
        println!(
            "| {run} of {runs} | bare axum, {answer_bytes}-byte answer | {CONNECTIONS} | - | {} | (floor) | |",
            f.cells()
        );
        floor_rows.push(json!({
            "run": run, "p50_ms": f.p50_ms, "p90_ms": f.p90_ms, "p99_ms": f.p99_ms,
            "requests_per_s": f.requests_per_s, "server_cpu_us_per_request": f.cpu_us_per_request,
        }));
    }
    let met_runs = rows.iter().filter(|r| r["met"] == json!(true)).count();
    let floor_met =
        floor_rows.iter().filter(|r| r["p99_ms"].as_f64().is_some_and(|p| p <= P99_TARGET_MS)).count();
    println!(
        "p99 <= {P99_TARGET_MS} ms in {met_runs} of {runs} runs (the bare axum floor: {floor_met} of {runs})"
    );
    let out = json!({
        "benchmark": "GET /health", "connections": CONNECTIONS, "checks": checks, "duration_s": seconds,
        "pinned": pinned, "target_p99_ms": P99_TARGET_MS, "runs": rows, "met_runs": met_runs,
        "answer_bytes": answer_bytes, "floor_runs": floor_rows,
    });
    let path = target_dir.join("bench/health.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out)?)?;
    println!("Written to {}", path.display());
    Ok(())
}

/// A server on CPU 1 with one tokio worker when `pinned`, else as it is.
fn server_command(binary: &Path, pinned: bool) -> Command {
    if pinned {
        let mut command = Command::new("taskset");
        command.args(["-c", "1"]).arg(binary).env("TOKIO_WORKER_THREADS", "1");
        command
    } else {
        Command::new(binary)
    }
}

/// Waits until something accepts connections at `addr`.
fn wait_listening(addr: SocketAddr, within: Duration, what: &str) -> Result<()> {
    let deadline = Instant::now() + within;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not start listening on {addr}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// One wrk run's results.
struct Measurement {
    p50_ms: Option<f64>,
    p90_ms: Option<f64>,
    p99_ms: f64,
    requests_per_s: Option<f64>,
    cpu_us_per_request: Option<f64>,
}

impl Measurement {
    /// The table cells from p50 to the CPU time per request.
    fn cells(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3} ms"));
        format!(
            "{} | {} | {:.3} ms | {} | {}",
            ms(self.p50_ms),
            ms(self.p90_ms),
            self.p99_ms,
            self.requests_per_s.map_or("-".into(), |v| format!("{v:.0}")),
            self.cpu_us_per_request.map_or("-".into(), |v| format!("{v:.1} us")),
        )
    }
}

/// Runs wrk against `GET /health` at `addr` for `seconds`, and reads the CPU time process `pid` used.
fn measure(addr: SocketAddr, pid: u32, seconds: u32, pinned: bool) -> Result<Measurement> {
    let cpu_before = process_cpu_seconds(pid);
    let mut wrk = if pinned {
        let mut command = Command::new("taskset");
        command.args(["-c", "0", "wrk"]);
        command
    } else {
        Command::new("wrk")
    };
    let output = wrk
        .args(["-t1", &format!("-c{CONNECTIONS}"), &format!("-d{seconds}s"), "--latency"])
        .arg(format!("http://{addr}/health"))
        .output()
        .context("could not run wrk")?;
    let cpu_after = process_cpu_seconds(pid);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!("wrk failed: {}{report}", String::from_utf8_lossy(&output.stderr));
    }
    let percentile = |label: &str| -> Option<f64> {
        let line = report.lines().find(|l| l.trim_start().starts_with(label))?;
        parse_latency(line.split_whitespace().nth(1)?)
    };
    let requests_per_s = report
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok());
    let completed = report
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok());
    let cpu_us_per_request = match (cpu_before, cpu_after, completed) {
        (Some(before), Some(after), Some(n)) if n > 0.0 => Some((after - before) * 1e6 / n),
        _ => None,
    };
    let p99_ms = percentile("99%").with_context(|| format!("wrk printed no 99% latency:\n{report}"))?;
    Ok(Measurement {
        p50_ms: percentile("50%"),
        p90_ms: percentile("90%"),
        p99_ms,
        requests_per_s,
        cpu_us_per_request,
    })
}

/// The CPU time (user and system) a process has used so far, from `/proc` (Linux); `None` elsewhere.
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux architecture Sightline runs on.
    Some(ticks / 100.0)
}

/// Builds `target_dir/release/sightline`, which the load tests run.
pub fn build_release_server(root: &Path, target_dir: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(&cargo)
        .args(["build", "--release", "--bin", "sightline"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir)
        .status()
        .context("could not run cargo build")?;
    if !built.success() {
        bail!("`cargo build --release --bin sightline` failed");
    }
    Ok(())
}

/// Builds the `health_floor` example (a bare axum server) that the bench measures beside the server.
fn build_floor(root: &Path, target_dir: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(&cargo)
        .args(["build", "--release", "-p", "sightline-server", "--example", "health_floor"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir)
        .status()
        .context("could not run cargo build")?;
    if !built.success() {
        bail!("`cargo build --release -p sightline-server --example health_floor` failed");
    }
    Ok(())
}

/// wrk's latency cells: `812.00us`, `1.23ms`, `2.00s`.
fn parse_latency(cell: &str) -> Option<f64> {
    let (number, scale) = if let Some(v) = cell.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = cell.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = cell.strip_suffix('s') {
        (v, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_latency_cells() {
        assert_eq!(super::parse_latency("812.00us"), Some(0.812));
        assert_eq!(super::parse_latency("1.50ms"), Some(1.5));
        assert_eq!(super::parse_latency("2.00s"), Some(2000.0));
        assert_eq!(super::parse_latency("n/a"), None);
    }
}
