//! Shared helpers for Sightline's end-to-end tests.
//!
//! Tests that need a real peer (Debian's `promtool` or `prometheus`, PostgreSQL, Redis) call
//! [`require_peer`] with a probe. When the peer is missing and cannot be installed, the test prints a loud
//! `SKIPPED: <peer> unavailable` and returns early, so `cargo test --workspace` passes on a fresh machine;
//! under `SIGHTLINE_REQUIRE_PEERS=1` (set by `.ci/run`) a missing peer fails the test instead.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[cfg(feature = "otlp")]
pub mod otlp;

/// Whether a missing peer fails the test (`SIGHTLINE_REQUIRE_PEERS=1`) rather than skipping it.
pub fn peers_required() -> bool {
    std::env::var("SIGHTLINE_REQUIRE_PEERS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Finds an executable on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// Finds `program`, installing Debian `package` with apt when it is missing and we are root.
///
/// Returns `None` (after printing `SKIPPED: ...`) when the peer is unavailable and peers are optional;
/// panics with the reason when `SIGHTLINE_REQUIRE_PEERS=1`.
pub fn require_peer(program: &str, package: &str) -> Option<PathBuf> {
    if let Some(found) = which(program) {
        return Some(found);
    }
    let install = try_apt_install(package);
    if let Some(found) = which(program) {
        return Some(found);
    }
    let reason = format!("{program} (Debian package {package}) unavailable: {install}");
    if peers_required() {
        panic!("SIGHTLINE_REQUIRE_PEERS=1 but {reason}");
    }
    // Written to the stderr handle rather than with eprintln!, which the test harness captures and hides
    // for passing tests: a skip must be seen.
    let banner = format!("\n==================== SKIPPED: {reason} ====================\n\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), banner.as_bytes());
    None
}

/// Installs a Debian package, serialised across test processes with a lock file. Returns what happened.
fn try_apt_install(package: &str) -> String {
    if which("apt-get").is_none() {
        return "no apt-get on this machine".into();
    }
    // Only root can install; `id -u` avoids a libc dependency.
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if uid.as_deref() != Some("0") {
        return "not root, cannot apt-get install".into();
    }
    // apt holds its own lock; flock serialises the update+install of concurrent test binaries.
    let script = format!(
        "apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         --no-install-recommends {package} >/dev/null 2>&1"
    );
    let status = Command::new("flock").args(["/tmp/sightline-apt.lock", "sh", "-c", &script]).status();
    match status {
        Ok(s) if s.success() => format!("installed {package}"),
        Ok(s) => format!("apt-get install {package} failed ({s})"),
        Err(e) => format!("cannot run apt-get: {e}"),
    }
}

/// Runs `promtool check metrics` on an exposition in the text format and returns what it complained
/// about, leaving out one known complaint: node_exporter's meminfo names (`node_memory_MemTotal_bytes`,
/// ...) are /proc/meminfo's field names, which promtool calls camelCase; node_exporter's own output draws
/// the same lint, and dashboards depend on the names. Anything else is returned, so a test can assert it
/// is empty.
pub fn promtool_check_metrics(promtool: &Path, body: &str) -> Vec<String> {
    use std::io::Write;
    let mut child = match Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return vec![format!("cannot run {}: {e}", promtool.display())],
    };
    if let Some(mut stdin) = child.stdin.take()
        && let Err(e) = stdin.write_all(body.as_bytes())
    {
        return vec![format!("cannot write to promtool: {e}")];
    }
    let out = match child.wait_with_output() {
        Ok(out) => out,
        Err(e) => return vec![format!("promtool did not finish: {e}")],
    };
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut problems: Vec<String> = printed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !(l.starts_with("node_memory_")
                && l.ends_with("metric names should be written in 'snake_case' not 'camelCase'"))
        })
        .map(str::to_owned)
        .collect();
    if problems.is_empty() && !out.status.success() && !printed.contains("camelCase") {
        problems.push(format!("promtool exited with {} and printed nothing", out.status));
    }
    problems
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Waits until something accepts TCP connections at `addr`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A child process that is killed when dropped, with its stdout lines readable.
pub struct ChildGuard {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stdout line read so far.
    pub seen: Vec<String>,
}

impl std::fmt::Debug for ChildGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildGuard").field("pid", &self.child.id()).finish_non_exhaustive()
    }
}

impl ChildGuard {
    /// Spawns `command` with stdout piped and stderr inherited, so that failures show in test output.
    pub fn spawn(command: Command) -> std::io::Result<Self> {
        Self::spawn_with_stderr(command, Stdio::inherit())
    }

    /// Spawns a chatty peer (such as Prometheus) whose stderr would drown the test output.
    pub fn spawn_quiet(command: Command) -> std::io::Result<Self> {
        Self::spawn_with_stderr(command, Stdio::null())
    }

    fn spawn_with_stderr(mut command: Command, stderr: Stdio) -> std::io::Result<Self> {
        let mut child = command.stdout(Stdio::piped()).stderr(stderr).stdin(Stdio::null()).spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines, seen: Vec::new() })
    }

    /// Waits for a stdout line containing `needle` and returns it.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the process with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Alertmanager (Debian's `prometheus-alertmanager`) on a free port, killed when dropped.
#[derive(Debug)]
pub struct Alertmanager {
    /// Where its API listens.
    pub addr: SocketAddr,
    _child: ChildGuard,
}

impl Alertmanager {
    /// Starts `binary` with its state in `dir` and one route: everything, grouped by `alertname`
    /// (group_wait 200ms, group_interval 1s), to a webhook at `webhook_url` that is sent resolved
    /// notifications too. Returns once its port accepts connections (blocking; at most 30 s).
    pub fn start(binary: &Path, dir: &Path, webhook_url: &str) -> std::io::Result<Self> {
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 200ms\n  group_interval: 1s\n\
                 \x20 repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n\
                 \x20     - url: {webhook_url}\n        send_resolved: true\n"
            ),
        )?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("alertmanager-data").display()))
            .arg(format!("--web.listen-address={addr}"))
            // One instance, no gossip port.
            .arg("--cluster.listen-address=");
        let child = ChildGuard::spawn_quiet(command)?;
        if !wait_for_port(addr, Duration::from_secs(30)) {
            return Err(std::io::Error::other(format!("Alertmanager did not listen on {addr} within 30 s")));
        }
        Ok(Self { addr, _child: child })
    }
}

/// A minimal HTTP/1.1 GET over a plain TCP stream, for tests that should not pull in an HTTP client.
/// Returns the status code, the headers (lower-cased names) and the body.
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> std::io::Result<HttpResponse> {
    http_request(addr, "GET", path, headers, b"")
}

/// A minimal HTTP/1.1 request with a body (sent with `Content-Length`).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    use std::io::Write;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    HttpResponse::parse(&raw).ok_or_else(|| std::io::Error::other("malformed HTTP response"))
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: String,
}

impl HttpResponse {
    fn parse(raw: &[u8]) -> Option<Self> {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&raw[..split]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked")) {
            body = dechunk(&body)?;
        }
        Some(Self { status, headers, body: String::from_utf8(body).ok()? })
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// A fresh temporary directory under the system temp dir, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/sightline-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sightline-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        Self(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The machine's PostgreSQL for tests: `SIGHTLINE_TEST_POSTGRES_URL`, or
/// `postgres://postgres@127.0.0.1:5432/test` (trust auth, as on the project's machines). Starts Debian's
/// cluster when nothing answers and we are root. `None` after a loud SKIPPED when it cannot be had;
/// panics under `SIGHTLINE_REQUIRE_PEERS=1`.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("SIGHTLINE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    // host:port from scheme://[user[:pass]@]host[:port][/db]
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let address = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5432") };
    let start = || {
        let version =
            std::fs::read_dir("/etc/postgresql").ok()?.filter_map(Result::ok).map(|e| e.file_name()).max()?;
        let version = version.to_string_lossy().into_owned();
        Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", "start"])
            .status()
            .ok()
    };
    require_service("PostgreSQL", &address, start).then_some(url)
}

/// The machine's Redis for tests, `127.0.0.1:6379`, started (without persistence) when nothing answers
/// and `redis-server` exists. `None` after a loud SKIPPED when it cannot be had; panics under
/// `SIGHTLINE_REQUIRE_PEERS=1`.
pub fn redis_address() -> Option<String> {
    let address = "127.0.0.1:6379".to_owned();
    let start = || {
        let server = which("redis-server")?;
        Command::new(server)
            .args([
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .status()
            .ok()
    };
    require_service("Redis", &address, start).then_some(address)
}

fn require_service(
    what: &str,
    address: &str,
    start: impl FnOnce() -> Option<std::process::ExitStatus>,
) -> bool {
    let reachable = || {
        use std::net::ToSocketAddrs;
        address
            .to_socket_addrs()
            .map(|mut addrs| addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok()))
            .unwrap_or(false)
    };
    if reachable() {
        return true;
    }
    if start().is_some_and(|status| status.success()) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if reachable() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let reason = format!("{what} unavailable: nothing answers at {address}");
    if peers_required() {
        panic!("SIGHTLINE_REQUIRE_PEERS=1 but {reason}");
    }
    let banner = format!("\n==================== SKIPPED: {reason} ====================\n\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), banner.as_bytes());
    false
}

/// A TCP proxy for fault injection: forwards connections to `target` until [`TcpProxy::set_down`] cuts
/// every open connection and refuses new ones; [`TcpProxy::set_up`] lets them through again.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl TcpProxy {
    /// Starts a proxy on a free local port in front of `target`.
    pub fn start(target: SocketAddr) -> std::io::Result<Self> {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let generation = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (accept_down, accept_generation) = (down.clone(), generation.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if accept_down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else { continue };
                let born = accept_generation.load(Ordering::SeqCst);
                for (from, to) in
                    [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())]
                {
                    let (Ok(mut from), Ok(mut to)) = (from, to) else { continue };
                    let (down, generation) = (accept_down.clone(), accept_generation.clone());
                    std::thread::spawn(move || {
                        let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
                        let mut buffer = [0u8; 16 * 1024];
                        loop {
                            if down.load(Ordering::SeqCst) || generation.load(Ordering::SeqCst) != born {
                                break;
                            }
                            match from.read(&mut buffer) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if std::io::Write::write_all(&mut to, &buffer[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => break,
                            }
                        }
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Ok(Self { addr, down, generation })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every open connection and refuses new ones.
    pub fn set_down(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets connections through again.
    pub fn set_up(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
