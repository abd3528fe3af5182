//! The filesystem check: can we write a file in a directory?

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::json;

use super::{CheckConfigError, millis};
use crate::{BoxFuture, HealthCheck, Probe};

/// Creates a uniquely named file in the directory `path`, writes a few bytes, syncs it to disk and
/// removes it.
///
/// Healthy with the time that took (`ms`); Unhealthy with the OS's error: a missing directory, permission
/// denied, a read-only or full filesystem. The IO runs on tokio's blocking pool, so a hung mount holds a
/// blocking thread rather than the runtime (the registry's timeout still ends the probe).
///
/// ```
/// use sightline_health::checks::filesystem::FilesystemCheck;
///
/// let check = FilesystemCheck::new("/var/lib/myservice")?;
/// assert!(FilesystemCheck::new("").is_err());
/// # Ok::<(), sightline_health::checks::CheckConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FilesystemCheck {
    path: PathBuf,
}

impl FilesystemCheck {
    /// A check of the directory `path`, which need not exist yet. The error names `path`.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, CheckConfigError> {
        let path = path.into();
        if path.as_os_str().is_empty() {
            return Err(CheckConfigError::new("path", "is empty"));
        }
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl HealthCheck for FilesystemCheck {
    fn check(&self) -> BoxFuture<'_, Probe> {
        let path = self.path.clone();
        Box::pin(async move {
            let shown = path.display().to_string();
            let result = tokio::task::spawn_blocking(move || {
                let start = Instant::now();
                write_probe_file(&path).map(|()| millis(start.elapsed()))
            })
            .await;
            match result {
                Ok(Ok(ms)) => Probe::healthy(format!("{shown} is writable ({ms:.1} ms)"))
                    .with_details(json!({ "path": shown, "write_ms": ms }))
                    .with_observed(ms, "ms"),
                Ok(Err(message)) => {
                    Probe::unhealthy(message.clone()).with_details(json!({ "path": shown, "error": message }))
                }
                Err(e) => Probe::unhealthy(format!("the write test of {shown} failed: {e}"))
                    .with_details(json!({ "path": shown })),
            }
        })
    }
}

/// Writes, syncs and removes a probe file in `dir`.
fn write_probe_file(dir: &Path) -> Result<(), String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
    let name = format!(
        ".sightline-health-{}-{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos.unwrap_or_default()
    );
    let file_path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file_path)
        .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))?;
    let written = file
        .write_all(b"sightline health check\n")
        .map_err(|e| format!("cannot write to {}: {e}", file_path.display()))
        .and_then(|()| file.sync_all().map_err(|e| format!("cannot sync {}: {e}", file_path.display())));
    drop(file);
    let removed =
        std::fs::remove_file(&file_path).map_err(|e| format!("cannot remove {}: {e}", file_path.display()));
    written.and(removed)
}
