//! The command check: run a program, healthy when it exits with 0 (as Nagios plugins and `pg_isready` do).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{CheckConfigError, millis, truncate};
use crate::{BoxFuture, HealthCheck, Probe};

/// The longest output line shown in a message.
pub const MAX_LINE_BYTES: usize = 512;

/// How much of the end of each output stream is kept.
const TAIL_BYTES: usize = 4096;

/// How long to wait for the output pipes to close once the program has exited (a background process it
/// started may hold them open).
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Builds a [`CommandCheck`].
#[derive(Debug, Clone)]
pub struct CommandCheckBuilder {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    current_dir: Option<PathBuf>,
}

impl CommandCheckBuilder {
    /// Adds an argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    #[must_use]
    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `env`: sets an environment variable for the program (the rest of the environment is inherited).
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the program in `dir` rather than the current directory.
    #[must_use]
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Validates the program, arguments and environment. The error names `command` or `env`.
    pub fn build(self) -> Result<CommandCheck, CheckConfigError> {
        if self.program.trim().is_empty() {
            return Err(CheckConfigError::new("command", "the program is empty"));
        }
        if let Some(bad) = std::iter::once(&self.program).chain(&self.args).find(|a| a.contains('\0')) {
            return Err(CheckConfigError::new("command", format!("{bad:?} contains a NUL byte")));
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
                return Err(CheckConfigError::new(
                    "env",
                    format!("{key:?} is not an environment variable name"),
                ));
            }
        }
        Ok(CommandCheck {
            program: self.program,
            args: self.args,
            env: self.env,
            current_dir: self.current_dir,
        })
    }
}

/// Runs a program with arguments (no shell), without standard input.
///
/// Healthy when it exits with 0, Unhealthy with the exit code (or the signal that killed it) and the last
/// line of its standard error, or else of its standard output, cut to [`MAX_LINE_BYTES`]; Unhealthy
/// "cannot run X: ..." when it cannot be started. Observed: how long it ran (`ms`). The program is killed
/// when the probe's future is dropped, as the registry does on a timeout.
///
/// ```
/// use sightline_health::checks::command::CommandCheck;
///
/// let check = CommandCheck::new(["pg_isready", "-h", "db", "-q"])?;
/// let with_env = CommandCheck::builder("/usr/local/bin/check-queue").arg("--max=100").env("LANG", "C").build()?;
/// assert_eq!(CommandCheck::new(Vec::<String>::new()).unwrap_err().parameter, "command");
/// # Ok::<(), sightline_health::checks::CheckConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CommandCheck {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    current_dir: Option<PathBuf>,
}

impl CommandCheck {
    /// A builder for a check that runs `program` (looked up on `PATH` unless it contains a `/`).
    pub fn builder(program: impl Into<String>) -> CommandCheckBuilder {
        CommandCheckBuilder { program: program.into(), args: Vec::new(), env: Vec::new(), current_dir: None }
    }

    /// A check that runs `command`: the program followed by its arguments. The error names `command`.
    pub fn new(command: impl IntoIterator<Item = impl Into<String>>) -> Result<Self, CheckConfigError> {
        let mut command = command.into_iter().map(Into::into);
        let program = command.next().ok_or_else(|| CheckConfigError::new("command", "is empty"))?;
        Self::builder(program).args(command).build()
    }

    /// The program and its arguments, joined by spaces (for people).
    pub fn command_line(&self) -> String {
        std::iter::once(&self.program).chain(&self.args).cloned().collect::<Vec<_>>().join(" ")
    }

    async fn run(&self) -> Probe {
        let command_line = self.command_line();
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        let start = Instant::now();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let message = format!("cannot run {}: {e}", self.program);
                return Probe::unhealthy(message.clone())
                    .with_details(json!({ "command": command_line, "error": message }));
            }
        };
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = {
            let mut readers = std::pin::pin!(async {
                tokio::join!(read_tail(stdout, &mut out), read_tail(stderr, &mut err))
            });
            let mut readers_done = false;
            let status = tokio::select! {
                status = child.wait() => status,
                _ = &mut readers => {
                    readers_done = true;
                    child.wait().await
                }
            };
            if !readers_done {
                let _ = tokio::time::timeout(OUTPUT_GRACE, &mut readers).await;
            }
            status
        };
        let ms = millis(start.elapsed());
        let status = match status {
            Ok(status) => status,
            Err(e) => {
                let message = format!("cannot wait for {}: {e}", self.program);
                return Probe::unhealthy(message.clone())
                    .with_details(json!({ "command": command_line, "error": message }));
            }
        };
        let line = last_line(&err).or_else(|| last_line(&out));
        let mut details = json!({
            "command": command_line,
            "exit_code": status.code(),
            "duration_ms": ms,
            "stdout": last_line(&out),
            "stderr": last_line(&err),
        });
        let suffix = line.map(|l| format!(": {l}")).unwrap_or_default();
        let probe = if status.success() {
            Probe::healthy(format!("{} exited with 0{suffix}", self.program))
        } else if let Some(code) = status.code() {
            Probe::unhealthy(format!("{} exited with {code}{suffix}", self.program))
        } else {
            let signal = signal(&status);
            details["signal"] = json!(signal);
            Probe::unhealthy(format!(
                "{} was killed by signal {}{suffix}",
                self.program,
                signal.map_or_else(|| "?".to_owned(), |s| s.to_string())
            ))
        };
        probe.with_details(details).with_observed(ms, "ms")
    }
}

impl HealthCheck for CommandCheck {
    fn check(&self) -> BoxFuture<'_, Probe> {
        Box::pin(self.run())
    }
}

/// Reads `pipe` to its end, keeping the last [`TAIL_BYTES`] (and what it had when the read is dropped).
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>, tail: &mut Vec<u8>) {
    let Some(mut pipe) = pipe else { return };
    let mut buffer = [0u8; 4096];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                tail.extend_from_slice(&buffer[..n]);
                if tail.len() > 2 * TAIL_BYTES {
                    tail.drain(..tail.len() - TAIL_BYTES);
                }
            }
        }
    }
}

/// The last non-blank line of `output`, trimmed and cut to [`MAX_LINE_BYTES`].
fn last_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    text.lines().map(str::trim).rfind(|l| !l.is_empty()).map(|l| truncate(l, MAX_LINE_BYTES))
}

#[cfg(unix)]
fn signal(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

#[cfg(not(unix))]
fn signal(_status: &std::process::ExitStatus) -> Option<i32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines() {
        assert_eq!(last_line(b"first\nsecond\n\n  \n"), Some("second".into()));
        assert_eq!(last_line(b""), None);
        assert_eq!(last_line(&[b'x'; 600]).map(|l| l.len()), Some(MAX_LINE_BYTES + "…".len()));
    }

    #[test]
    fn validation() {
        assert_eq!(CommandCheck::new([""]).unwrap_err().parameter, "command");
        assert_eq!(CommandCheck::new(["a\0b"]).unwrap_err().parameter, "command");
        assert_eq!(CommandCheck::builder("x").env("A=B", "1").build().unwrap_err().parameter, "env");
        assert_eq!(CommandCheck::new(["echo", "a b"]).unwrap().command_line(), "echo a b");
    }
}
