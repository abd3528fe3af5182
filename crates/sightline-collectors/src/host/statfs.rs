//! `statfs` with a timeout, so that a hung network filesystem cannot block the host collector.
//!
//! One helper thread runs the calls. When a call outlives the timeout, the collector gives up on that
//! thread (which stays blocked in the kernel until the call returns, then exits) and starts a new one
//! for the next call; the hung mount point is skipped until its call returns. This is node_exporter's
//! `stuckMounts` logic, with a thread where it has a goroutine.

use std::collections::HashSet;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one filesystem reported, in node_exporter's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FsStats {
    pub(crate) size: f64,
    pub(crate) free: f64,
    pub(crate) avail: f64,
    pub(crate) files: f64,
    pub(crate) files_free: f64,
}

/// Why there are no stats.
#[derive(Debug)]
pub(crate) enum StatfsError {
    /// The call failed.
    Failed(std::io::Error),
    /// The call has not returned within the timeout (now or in an earlier collection).
    Stuck,
}

type Reply = Result<FsStats, std::io::Error>;

struct Worker {
    requests: mpsc::Sender<Arc<str>>,
    replies: mpsc::Receiver<Reply>,
}

/// Runs `statfs` calls on a helper thread with a timeout.
pub(crate) struct Statfs {
    worker: Option<Worker>,
    /// Mount points whose call is in flight; one left here after a timeout is stuck.
    in_flight: Arc<Mutex<HashSet<Arc<str>>>>,
    timeout: Duration,
    /// `statfs` itself; tests put a slow stand-in here.
    call: fn(&str) -> Reply,
}

impl std::fmt::Debug for Statfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statfs").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl Statfs {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { worker: None, in_flight: Arc::default(), timeout, call: statfs }
    }

    /// `statfs(path)`, unless it takes longer than the timeout or an earlier call on `path` still hangs.
    pub(crate) fn stat(&mut self, path: &Arc<str>) -> Result<FsStats, StatfsError> {
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if in_flight.contains(path) {
                return Err(StatfsError::Stuck);
            }
            // Marked before the call, cleared by the helper when the call returns: a mark that outlives
            // the timeout means stuck, however the timeout and the return race.
            in_flight.insert(path.clone());
        }
        let worker = match &self.worker {
            Some(worker) => worker,
            None => match self.spawn() {
                Ok(worker) => self.worker.insert(worker),
                Err(err) => {
                    self.clear(path);
                    return Err(StatfsError::Failed(err));
                }
            },
        };
        if worker.requests.send(path.clone()).is_err() {
            self.worker = None;
            self.clear(path);
            return Err(StatfsError::Failed(std::io::Error::other("the statfs thread exited")));
        }
        match worker.replies.recv_timeout(self.timeout) {
            Ok(result) => result.map_err(StatfsError::Failed),
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    mountpoint = &**path,
                    timeout = ?self.timeout,
                    "statfs did not return in time; skipping this mount point until it does"
                );
                // Abandon the blocked thread: it exits once its call returns and its reply fails.
                self.worker = None;
                Err(StatfsError::Stuck)
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.worker = None;
                self.clear(path);
                Err(StatfsError::Failed(std::io::Error::other("the statfs thread exited")))
            }
        }
    }

    fn clear(&self, path: &Arc<str>) {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(path);
    }

    fn spawn(&self) -> std::io::Result<Worker> {
        let (requests, jobs) = mpsc::channel::<Arc<str>>();
        let (done, replies) = mpsc::channel::<Reply>();
        let (in_flight, call) = (self.in_flight.clone(), self.call);
        std::thread::Builder::new().name("sightline-statfs".into()).spawn(move || {
            for path in jobs {
                let result = call(&path);
                in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&path);
                if done.send(result).is_err() {
                    return;
                }
            }
        })?;
        Ok(Worker { requests, replies })
    }
}

fn statfs(path: &str) -> Reply {
    let st = rustix::fs::statfs(path)?;
    // node_exporter multiplies by f_bsize (not f_frsize), in floating point.
    let block = st.f_bsize as f64;
    Ok(FsStats {
        size: st.f_blocks as f64 * block,
        free: st.f_bfree as f64 * block,
        avail: st.f_bavail as f64 * block,
        files: st.f_files as f64,
        files_free: st.f_ffree as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_the_root_filesystem_and_fails_on_a_missing_path() {
        let mut statfs = Statfs::new(Duration::from_secs(5));
        let root = statfs.stat(&Arc::from("/")).unwrap();
        assert!(root.size > 0.0 && root.avail <= root.free && root.free <= root.size, "{root:?}");
        let missing = statfs.stat(&Arc::from("/no/such/mount/point"));
        assert!(matches!(missing, Err(StatfsError::Failed(_))), "{missing:?}");
        // The helper thread is reused, and nothing is left in flight.
        assert!(statfs.stat(&Arc::from("/")).is_ok());
        assert!(statfs.in_flight.lock().unwrap().is_empty());
    }

    #[test]
    fn a_call_still_in_flight_counts_as_stuck() {
        let mut statfs = Statfs::new(Duration::from_secs(5));
        let hung: Arc<str> = Arc::from("/hung");
        statfs.in_flight.lock().unwrap().insert(hung.clone());
        assert!(matches!(statfs.stat(&hung), Err(StatfsError::Stuck)));
        statfs.in_flight.lock().unwrap().remove(&hung);
        assert!(matches!(statfs.stat(&hung), Err(StatfsError::Failed(_))));
    }

    fn slow(path: &str) -> Reply {
        if path == "/slow" {
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(FsStats { size: 1.0, free: 1.0, avail: 1.0, files: 1.0, files_free: 1.0 })
    }

    #[test]
    fn a_hung_mount_is_skipped_until_its_call_returns_and_others_go_on() {
        let mut statfs = Statfs { call: slow, ..Statfs::new(Duration::from_millis(50)) };
        let (hung, fine): (Arc<str>, Arc<str>) = (Arc::from("/slow"), Arc::from("/fine"));
        assert!(matches!(statfs.stat(&hung), Err(StatfsError::Stuck)));
        // Skipped at once while its call hangs; the other mount points are served by a new thread.
        let start = std::time::Instant::now();
        assert!(matches!(statfs.stat(&hung), Err(StatfsError::Stuck)));
        assert!(start.elapsed() < Duration::from_millis(40));
        assert!(statfs.stat(&fine).is_ok());
        // Once the hung call returns, the mount point is tried again.
        std::thread::sleep(Duration::from_millis(400));
        assert!(!statfs.in_flight.lock().unwrap().contains(&hung));
        statfs.timeout = Duration::from_secs(5);
        assert!(statfs.stat(&hung).is_ok());
    }
}
