//! Host metrics with node_exporter's names, labels, units and help texts, plus a few derived ratios.
//!
//! # Exported
//!
//! From node_exporter's collectors, with its names and label sets, so that existing dashboards, alerts
//! and recording rules (such as node-mixin's) work unchanged:
//!
//! | collector  | metrics |
//! | ---------- | ------- |
//! | cpu        | `node_cpu_seconds_total{cpu,mode}`, `node_cpu_guest_seconds_total{cpu,mode}` |
//! | loadavg    | `node_load1`, `node_load5`, `node_load15` |
//! | meminfo    | `node_memory_{MemTotal,MemFree,MemAvailable,Buffers,Cached,SwapTotal,SwapFree}_bytes` |
//! | filesystem | `node_filesystem_{size,free,avail}_bytes`, `node_filesystem_{files,files_free,readonly,device_error}{device,fstype,mountpoint}` |
//! | diskstats  | `node_disk_{read_bytes,written_bytes,io_time_seconds}_total{device}` |
//! | netdev     | `node_network_{receive,transmit}_{bytes,errs}_total{device}` |
//! | stat       | `node_boot_time_seconds`, `node_context_switches_total`, `node_forks_total`, `node_procs_{running,blocked}` |
//! | filefd     | `node_filefd_allocated`, `node_filefd_maximum` |
//! | time       | `node_time_seconds` |
//! | uname      | `node_uname_info{domainname,machine,nodename,release,sysname,version}` |
//!
//! CPU seconds are `/proc/stat` ticks divided by the kernel's `USER_HZ` (`sysconf(_SC_CLK_TCK)`: 100 on
//! every mainstream architecture, which node_exporter assumes). As in the kernel and node_exporter, `mode="user"` and
//! `mode="nice"` include the time spent running guests, which `node_cpu_guest_seconds_total` shows again.
//!
//! The `node_memory_*` names are node_exporter's (the `/proc/meminfo` field names), which `promtool check
//! metrics` reports as camelCase; that is the price of compatibility.
//!
//! Derived gauges, computed once per collection rather than per scrape:
//!
//! - `sightline_host_cpu_utilisation_ratio`: `1 - (idle + iowait + steal) / total` over the last
//!   collection interval, all CPUs together, as node-mixin's `instance:node_cpu_utilisation:rate5m`.
//! - `sightline_host_cpu_mode_ratio{mode}`: each mode's share of CPU time over the last interval (they add
//!   up to 1). These two need two samples, so they appear from the second collection on.
//! - `sightline_host_memory_used_ratio`: `1 - MemAvailable / MemTotal`, as node-mixin's
//!   `instance:node_memory_utilisation:ratio`.
//! - `sightline_host_filesystem_used_ratio{mountpoint}`: the `Use%` that `df` shows, `used / (used +
//!   avail)` with `used = size - free`, so that blocks reserved for root count neither way and 1 means
//!   "full for everyone but root". `1 - node_filesystem_avail_bytes / node_filesystem_size_bytes` is the
//!   other common definition; it counts reserved blocks as used.
//!
//! # Which filesystems, disks and interfaces
//!
//! [`HostConfig`] holds node_exporter's include and exclude regular expressions, with node_exporter's
//! current upstream defaults (see the `DEFAULT_*` constants). Debian's 1.5.0 package ships other defaults
//! for some of them (it also excludes `/run`, `/mnt`, `/media` and the `lo` interface, and keeps `zram`
//! devices); pass the same expressions to both to compare them.
//!
//! # Differences from node_exporter
//!
//! - A series, once exported, stays until the process exits: an unmounted filesystem or a removed
//!   interface keeps its last values, where node_exporter drops it at the next scrape.
//! - A filesystem whose `statfs` fails or hangs (past [`HostConfig::with_mount_timeout`], 5 s by default,
//!   as node_exporter's `--collector.filesystem.mount-timeout`) gets `node_filesystem_device_error` 1
//!   and keeps its last sizes, if any. A hung mount is skipped until its `statfs` returns.
//! - A CPU whose counters jump backwards (hot-plug) keeps its highest values: counters never decrease.
//!
//! # Errors
//!
//! A missing or unreadable /proc file (containers, `hidepid`, permissions) costs only the metrics read
//! from it; the rest are still collected, and [`Collector::collect`] returns an error naming every file
//! that failed. A filesystem that cannot be `statfs`ed is not an error (node_exporter logs it at debug
//! level): `node_filesystem_device_error` shows it.
//!
//! Off Linux the collector reports itself unavailable and exports nothing.

use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use sightline_core::Registry;

use crate::{CollectError, Collector};

#[cfg(target_os = "linux")]
mod linux;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod parse;
#[cfg(target_os = "linux")]
mod statfs;

/// node_exporter's default `--collector.filesystem.mount-points-exclude`.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";

/// node_exporter's default `--collector.filesystem.fs-types-exclude`.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|\
fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|\
tracefs)$";

/// node_exporter's default `--collector.diskstats.device-exclude`: partitions, RAM disks, loop and
/// floppy devices.
pub const DEFAULT_DISK_DEVICES_EXCLUDE: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

/// node_exporter's default `--collector.filesystem.mount-timeout`.
pub const DEFAULT_MOUNT_TIMEOUT: Duration = Duration::from_secs(5);

/// A setting of [`HostConfig`], named in [`HostConfigError`]. Its `Display` is node_exporter's flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HostSetting {
    /// Mount points to include (node_exporter 1.5 has no such flag; the name follows its others).
    MountPointsInclude,
    /// Mount points to exclude.
    MountPointsExclude,
    /// Filesystem types to include (node_exporter 1.5 has no such flag; the name follows its others).
    FsTypesInclude,
    /// Filesystem types to exclude.
    FsTypesExclude,
    /// Disk devices to include.
    DiskDevicesInclude,
    /// Disk devices to exclude.
    DiskDevicesExclude,
    /// Network devices to include.
    NetworkDevicesInclude,
    /// Network devices to exclude.
    NetworkDevicesExclude,
}

impl HostSetting {
    /// node_exporter's command-line flag for this setting.
    pub const fn flag(self) -> &'static str {
        match self {
            HostSetting::MountPointsInclude => "--collector.filesystem.mount-points-include",
            HostSetting::MountPointsExclude => "--collector.filesystem.mount-points-exclude",
            HostSetting::FsTypesInclude => "--collector.filesystem.fs-types-include",
            HostSetting::FsTypesExclude => "--collector.filesystem.fs-types-exclude",
            HostSetting::DiskDevicesInclude => "--collector.diskstats.device-include",
            HostSetting::DiskDevicesExclude => "--collector.diskstats.device-exclude",
            HostSetting::NetworkDevicesInclude => "--collector.netdev.device-include",
            HostSetting::NetworkDevicesExclude => "--collector.netdev.device-exclude",
        }
    }
}

impl std::fmt::Display for HostSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.flag())
    }
}

/// An invalid regular expression in a [`HostConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: invalid regular expression {pattern:?}: {reason}")]
pub struct HostConfigError {
    setting: HostSetting,
    pattern: String,
    reason: String,
}

impl HostConfigError {
    /// The setting whose expression is invalid.
    pub fn setting(&self) -> HostSetting {
        self.setting
    }

    /// The invalid expression.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// What is wrong with it, from the regex parser.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Include and exclude expressions for one kind of name, node_exporter's `deviceFilter`: a name is kept
/// when it matches the include expression (if any) and does not match the exclude expression (if any).
/// Expressions are unanchored searches, as Go's `MatchString`; anchor them with `^...$`.
#[derive(Debug, Clone, Default)]
struct Filter {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl Filter {
    fn new(
        include: Option<&str>,
        exclude: Option<&str>,
        settings: (HostSetting, HostSetting),
    ) -> Result<Self, HostConfigError> {
        Ok(Self { include: compile(include, settings.0)?, exclude: compile(exclude, settings.1)? })
    }

    fn excluding(pattern: &str) -> Self {
        // The defaults are constants covered by a test.
        Self { include: None, exclude: Regex::new(pattern).ok() }
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn keeps(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|re| re.is_match(name))
            && !self.exclude.as_ref().is_some_and(|re| re.is_match(name))
    }
}

/// Compiles a setting's expression; an empty one means "no expression", as node_exporter treats it.
fn compile(pattern: Option<&str>, setting: HostSetting) -> Result<Option<Regex>, HostConfigError> {
    match pattern.filter(|p| !p.is_empty()) {
        None => Ok(None),
        Some(pattern) => Regex::new(pattern).map(Some).map_err(|err| HostConfigError {
            setting,
            pattern: pattern.to_owned(),
            reason: err.to_string(),
        }),
    }
}

/// Which filesystems, disks and network devices the [`HostCollector`] reports, and where it reads /proc.
///
/// The default is node_exporter's: the `DEFAULT_*` exclude expressions, no include expressions, every
/// network device, a 5 second `statfs` timeout and `/proc`.
///
/// ```
/// use sightline_collectors::host::{HostConfig, DEFAULT_MOUNT_POINTS_EXCLUDE};
///
/// let config = HostConfig::default()
///     .with_mount_points(None, Some(&format!("{DEFAULT_MOUNT_POINTS_EXCLUDE}|^/boot")))?
///     .with_network_devices(None, Some("^(lo|veth.*)$"))?;
/// # Ok::<(), sightline_collectors::host::HostConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub struct HostConfig {
    mount_points: Filter,
    fs_types: Filter,
    disk_devices: Filter,
    network_devices: Filter,
    mount_timeout: Duration,
    proc_root: PathBuf,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            mount_points: Filter::excluding(DEFAULT_MOUNT_POINTS_EXCLUDE),
            fs_types: Filter::excluding(DEFAULT_FS_TYPES_EXCLUDE),
            disk_devices: Filter::excluding(DEFAULT_DISK_DEVICES_EXCLUDE),
            network_devices: Filter::default(),
            mount_timeout: DEFAULT_MOUNT_TIMEOUT,
            proc_root: PathBuf::from("/proc"),
        }
    }
}

impl HostConfig {
    /// node_exporter's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces both mount point expressions (`None` or `""`: no expression). A filesystem is reported
    /// when both its mount point and its type are kept.
    pub fn with_mount_points(
        mut self,
        include: Option<&str>,
        exclude: Option<&str>,
    ) -> Result<Self, HostConfigError> {
        let settings = (HostSetting::MountPointsInclude, HostSetting::MountPointsExclude);
        self.mount_points = Filter::new(include, exclude, settings)?;
        Ok(self)
    }

    /// Replaces both filesystem type expressions (`None` or `""`: no expression).
    pub fn with_fs_types(
        mut self,
        include: Option<&str>,
        exclude: Option<&str>,
    ) -> Result<Self, HostConfigError> {
        let settings = (HostSetting::FsTypesInclude, HostSetting::FsTypesExclude);
        self.fs_types = Filter::new(include, exclude, settings)?;
        Ok(self)
    }

    /// Replaces both disk device expressions (`None` or `""`: no expression), matched against the
    /// names in `/proc/diskstats` (`sda`, `nvme0n1`).
    pub fn with_disk_devices(
        mut self,
        include: Option<&str>,
        exclude: Option<&str>,
    ) -> Result<Self, HostConfigError> {
        let settings = (HostSetting::DiskDevicesInclude, HostSetting::DiskDevicesExclude);
        self.disk_devices = Filter::new(include, exclude, settings)?;
        Ok(self)
    }

    /// Replaces both network device expressions (`None` or `""`: no expression), matched against the
    /// names in `/proc/net/dev` (`eth0`, `lo`).
    pub fn with_network_devices(
        mut self,
        include: Option<&str>,
        exclude: Option<&str>,
    ) -> Result<Self, HostConfigError> {
        let settings = (HostSetting::NetworkDevicesInclude, HostSetting::NetworkDevicesExclude);
        self.network_devices = Filter::new(include, exclude, settings)?;
        Ok(self)
    }

    /// How long one filesystem's `statfs` may take before the filesystem counts as stuck (at least 1 ms).
    #[must_use]
    pub fn with_mount_timeout(mut self, timeout: Duration) -> Self {
        self.mount_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Reads /proc from `root` instead of `/proc`, as node_exporter's `--path.procfs`: for a container
    /// that sees the host's /proc mounted elsewhere. Mount points are still `statfs`ed at their own
    /// paths.
    #[must_use]
    pub fn with_proc_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.proc_root = root.into();
        self
    }
}

/// Collects host metrics, node_exporter-compatible; see the [module docs](self).
#[derive(Debug)]
pub struct HostCollector {
    #[cfg(target_os = "linux")]
    inner: linux::Linux,
    #[cfg(not(target_os = "linux"))]
    _registry: Registry,
}

impl HostCollector {
    /// A collector writing into `registry`. Nothing is registered until the first collection, and a
    /// metric only once it has been read, so that what cannot be read is missing rather than zero.
    pub fn new(registry: &Registry, config: HostConfig) -> Self {
        #[cfg(target_os = "linux")]
        {
            Self { inner: linux::Linux::new(registry, config) }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = config;
            Self { _registry: registry.clone() }
        }
    }
}

impl Collector for HostCollector {
    fn name(&self) -> &'static str {
        "host"
    }

    #[cfg(target_os = "linux")]
    fn collect(&mut self) -> Result<(), CollectError> {
        self.inner.collect()
    }

    #[cfg(not(target_os = "linux"))]
    fn collect(&mut self) -> Result<(), CollectError> {
        Err(CollectError::Unavailable("host metrics read /proc, which only Linux has".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_expressions_compile_and_match_like_node_exporter() {
        for pattern in [DEFAULT_MOUNT_POINTS_EXCLUDE, DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_DISK_DEVICES_EXCLUDE]
        {
            Regex::new(pattern).unwrap();
        }
        let config = HostConfig::default();
        for excluded in ["/dev", "/dev/shm", "/proc", "/sys/fs/cgroup", "/run/credentials/x.service"] {
            assert!(!config.mount_points.keeps(excluded), "{excluded}");
        }
        for kept in ["/", "/home", "/run", "/devices", "/var/lib/docker", "/mnt/data"] {
            assert!(config.mount_points.keeps(kept), "{kept}");
        }
        for excluded in ["proc", "sysfs", "cgroup", "cgroup2", "overlay", "squashfs", "tracefs"] {
            assert!(!config.fs_types.keeps(excluded), "{excluded}");
        }
        for kept in ["ext4", "xfs", "tmpfs", "nfs4", "cgroup3"] {
            assert!(config.fs_types.keeps(kept), "{kept}");
        }
        for excluded in ["sda1", "loop0", "zram0", "ram1", "nvme0n1p2", "xvda3", "fd0"] {
            assert!(!config.disk_devices.keeps(excluded), "{excluded}");
        }
        for kept in ["sda", "vda", "nvme0n1", "dm-0", "md0", "mmcblk0"] {
            assert!(config.disk_devices.keeps(kept), "{kept}");
        }
        assert!(config.network_devices.keeps("lo"));
    }

    #[test]
    fn include_and_exclude_combine() {
        let config = HostConfig::default().with_network_devices(Some("^(eth|en)"), Some("^eth1$")).unwrap();
        assert!(config.network_devices.keeps("eth0"));
        assert!(config.network_devices.keeps("enp3s0"));
        assert!(!config.network_devices.keeps("eth1"));
        assert!(!config.network_devices.keeps("lo"));
        // Empty expressions are no expressions.
        let config = HostConfig::default().with_disk_devices(Some(""), None).unwrap();
        assert!(config.disk_devices.keeps("loop0"));
    }

    #[test]
    fn invalid_expressions_name_the_setting() {
        let err = HostConfig::default().with_fs_types(None, Some("^(ext4")).unwrap_err();
        assert_eq!(err.setting(), HostSetting::FsTypesExclude);
        assert_eq!(err.pattern(), "^(ext4");
        let message = err.to_string();
        assert!(message.starts_with("--collector.filesystem.fs-types-exclude: invalid regular expression"));
        assert!(message.contains("unclosed group"), "{message}");
        let err = HostConfig::default().with_mount_points(Some("[z-a]"), None).unwrap_err();
        assert_eq!(err.setting(), HostSetting::MountPointsInclude);
    }
}
