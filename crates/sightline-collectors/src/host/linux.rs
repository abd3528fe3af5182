//! The Linux host collector: /proc, `statfs` and `uname`.
//!
//! Every handle is cached per label set (CPU, device, mount point), so that a collection after the first
//! parses text and stores numbers without building keys, validating names or allocating.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::CStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge};
use sightline_core::{BaseUnit, Descriptor, FloatCounter, MetricError, Registry};

use super::parse::{self, CPU_MODES, CpuTicks, GUEST_MODES};
use super::statfs::{Statfs, StatfsError};
use super::{Filter, HostConfig};
use crate::CollectError;

/// How a family is stored.
#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
    FloatCounter,
}

/// A family: name, kind, node_exporter's help text, unit.
type Family = (&'static str, Kind, &'static str, Option<BaseUnit>);

const CPU_SECONDS: &str = "node_cpu_seconds_total";
const CPU_GUEST_SECONDS: &str = "node_cpu_guest_seconds_total";
const LOAD: [&str; 3] = ["node_load1", "node_load5", "node_load15"];
const MEMORY: [&str; 7] = [
    "node_memory_MemTotal_bytes",
    "node_memory_MemFree_bytes",
    "node_memory_MemAvailable_bytes",
    "node_memory_Buffers_bytes",
    "node_memory_Cached_bytes",
    "node_memory_SwapTotal_bytes",
    "node_memory_SwapFree_bytes",
];
const FS_SIZE: &str = "node_filesystem_size_bytes";
const FS_FREE: &str = "node_filesystem_free_bytes";
const FS_AVAIL: &str = "node_filesystem_avail_bytes";
const FS_FILES: &str = "node_filesystem_files";
const FS_FILES_FREE: &str = "node_filesystem_files_free";
const FS_READONLY: &str = "node_filesystem_readonly";
const FS_DEVICE_ERROR: &str = "node_filesystem_device_error";
const DISK_READ: &str = "node_disk_read_bytes_total";
const DISK_WRITTEN: &str = "node_disk_written_bytes_total";
const DISK_IO_TIME: &str = "node_disk_io_time_seconds_total";
const NET_RECEIVE_BYTES: &str = "node_network_receive_bytes_total";
const NET_TRANSMIT_BYTES: &str = "node_network_transmit_bytes_total";
const NET_RECEIVE_ERRS: &str = "node_network_receive_errs_total";
const NET_TRANSMIT_ERRS: &str = "node_network_transmit_errs_total";
const BOOT_TIME: &str = "node_boot_time_seconds";
const CONTEXT_SWITCHES: &str = "node_context_switches_total";
const FORKS: &str = "node_forks_total";
const PROCS_RUNNING: &str = "node_procs_running";
const PROCS_BLOCKED: &str = "node_procs_blocked";
const FILEFD_ALLOCATED: &str = "node_filefd_allocated";
const FILEFD_MAXIMUM: &str = "node_filefd_maximum";
const TIME: &str = "node_time_seconds";
const UNAME: &str = "node_uname_info";
const CPU_UTILISATION: &str = "sightline_host_cpu_utilisation_ratio";
const CPU_MODE_RATIO: &str = "sightline_host_cpu_mode_ratio";
const MEMORY_USED: &str = "sightline_host_memory_used_ratio";
const FS_USED: &str = "sightline_host_filesystem_used_ratio";

const FAMILIES: [Family; 39] = {
    use BaseUnit::{Bytes, Ratio, Seconds};
    use Kind::{Counter, FloatCounter, Gauge};
    [
        (CPU_SECONDS, FloatCounter, "Seconds the CPUs spent in each mode.", Some(Seconds)),
        (
            CPU_GUEST_SECONDS,
            FloatCounter,
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            Some(Seconds),
        ),
        (LOAD[0], Gauge, "1m load average.", None),
        (LOAD[1], Gauge, "5m load average.", None),
        (LOAD[2], Gauge, "15m load average.", None),
        (MEMORY[0], Gauge, "Memory information field MemTotal_bytes.", Some(Bytes)),
        (MEMORY[1], Gauge, "Memory information field MemFree_bytes.", Some(Bytes)),
        (MEMORY[2], Gauge, "Memory information field MemAvailable_bytes.", Some(Bytes)),
        (MEMORY[3], Gauge, "Memory information field Buffers_bytes.", Some(Bytes)),
        (MEMORY[4], Gauge, "Memory information field Cached_bytes.", Some(Bytes)),
        (MEMORY[5], Gauge, "Memory information field SwapTotal_bytes.", Some(Bytes)),
        (MEMORY[6], Gauge, "Memory information field SwapFree_bytes.", Some(Bytes)),
        (FS_SIZE, Gauge, "Filesystem size in bytes.", Some(Bytes)),
        (FS_FREE, Gauge, "Filesystem free space in bytes.", Some(Bytes)),
        (FS_AVAIL, Gauge, "Filesystem space available to non-root users in bytes.", Some(Bytes)),
        (FS_FILES, Gauge, "Filesystem total file nodes.", None),
        (FS_FILES_FREE, Gauge, "Filesystem total free file nodes.", None),
        (FS_READONLY, Gauge, "Filesystem read-only status.", None),
        (
            FS_DEVICE_ERROR,
            Gauge,
            "Whether an error occurred while getting statistics for the given device.",
            None,
        ),
        (DISK_READ, Counter, "The total number of bytes read successfully.", Some(Bytes)),
        (DISK_WRITTEN, Counter, "The total number of bytes written successfully.", Some(Bytes)),
        (DISK_IO_TIME, FloatCounter, "Total seconds spent doing I/Os.", Some(Seconds)),
        (NET_RECEIVE_BYTES, Counter, "Network device statistic receive_bytes.", Some(Bytes)),
        (NET_TRANSMIT_BYTES, Counter, "Network device statistic transmit_bytes.", Some(Bytes)),
        (NET_RECEIVE_ERRS, Counter, "Network device statistic receive_errs.", None),
        (NET_TRANSMIT_ERRS, Counter, "Network device statistic transmit_errs.", None),
        (BOOT_TIME, Gauge, "Node boot time, in unixtime.", Some(Seconds)),
        (CONTEXT_SWITCHES, Counter, "Total number of context switches.", None),
        (FORKS, Counter, "Total number of forks.", None),
        (PROCS_RUNNING, Gauge, "Number of processes in runnable state.", None),
        (PROCS_BLOCKED, Gauge, "Number of processes blocked waiting for I/O to complete.", None),
        (FILEFD_ALLOCATED, Gauge, "File descriptor statistics: allocated.", None),
        (FILEFD_MAXIMUM, Gauge, "File descriptor statistics: maximum.", None),
        (TIME, Gauge, "System time in seconds since epoch (1970).", Some(Seconds)),
        (UNAME, Gauge, "Labeled system information as provided by the uname system call.", None),
        (
            CPU_UTILISATION,
            Gauge,
            "Share of CPU time, all CPUs together, spent neither idle, waiting for I/O nor stolen, over \
             the last collection interval.",
            Some(Ratio),
        ),
        (
            CPU_MODE_RATIO,
            Gauge,
            "Share of CPU time spent in each mode over the last collection interval.",
            Some(Ratio),
        ),
        (MEMORY_USED, Gauge, "Share of memory in use: 1 - MemAvailable / MemTotal.", Some(Ratio)),
        (
            FS_USED,
            Gauge,
            "Share of the filesystem's space in use, as df shows it: used / (used + available to \
             non-root users).",
            Some(Ratio),
        ),
    ]
};

/// A handle the registry hands out.
trait Handle: Sized {
    fn register(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Result<Self, MetricError>;
}

impl Handle for Gauge {
    fn register(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Result<Self, MetricError> {
        registry.gauge(name, labels)
    }
}

impl Handle for Counter {
    fn register(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Result<Self, MetricError> {
        registry.counter(name, labels)
    }
}

impl Handle for FloatCounter {
    fn register(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Result<Self, MetricError> {
        registry.float_counter(name, labels)
    }
}

/// The registry and the errors of one collection.
struct Ctx<'a> {
    registry: &'a Registry,
    errors: Errors,
}

impl Ctx<'_> {
    /// The handle in `slot`, registered on first use. A failed registration is reported and retried at
    /// the next collection.
    fn get<'s, H: Handle>(
        &mut self,
        slot: &'s mut Option<H>,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<&'s H> {
        if slot.is_none() {
            match H::register(self.registry, name, labels) {
                Ok(handle) => *slot = Some(handle),
                Err(err) => self.errors.push(CollectError::Metric(err)),
            }
        }
        slot.as_ref()
    }

    fn set(&mut self, slot: &mut Option<Gauge>, name: &str, labels: &[(&str, &str)], value: f64) {
        if let Some(gauge) = self.get(slot, name, labels) {
            gauge.set(value);
        }
    }

    fn raise(&mut self, slot: &mut Option<Counter>, name: &str, labels: &[(&str, &str)], value: u64) {
        if let Some(counter) = self.get(slot, name, labels) {
            counter.absolute(value);
        }
    }

    fn raise_float(
        &mut self,
        slot: &mut Option<FloatCounter>,
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        if let Some(counter) = self.get(slot, name, labels) {
            counter.absolute(value);
        }
    }

    fn read_error(&mut self, path: &Path, source: std::io::Error) {
        self.errors.push(CollectError::Read { what: path.display().to_string(), source });
    }

    fn malformed(&mut self, path: &Path, what: &str) {
        let source = std::io::Error::new(std::io::ErrorKind::InvalidData, format!("no {what} in it"));
        self.read_error(path, source);
    }
}

/// The errors of one collection: the first is returned, naming the others.
#[derive(Default)]
struct Errors {
    first: Option<CollectError>,
    others: Vec<String>,
}

impl Errors {
    fn push(&mut self, err: CollectError) {
        match &self.first {
            None => self.first = Some(err),
            Some(_) => self.others.push(match err {
                CollectError::Read { what, .. } => what,
                other => other.to_string(),
            }),
        }
    }

    fn finish(self) -> Result<(), CollectError> {
        let Some(first) = self.first else { return Ok(()) };
        if self.others.is_empty() {
            return Err(first);
        }
        let also = self.others.join(", ");
        Err(match first {
            CollectError::Read { what, source } => {
                CollectError::Read { what: format!("{what} (also: {also})"), source }
            }
            CollectError::Unavailable(what) => CollectError::Unavailable(format!("{what} (also: {also})")),
            other => other,
        })
    }
}

/// The files read, under the configured /proc.
#[derive(Debug)]
struct Paths {
    stat: PathBuf,
    meminfo: PathBuf,
    loadavg: PathBuf,
    file_nr: PathBuf,
    diskstats: PathBuf,
    net_dev: PathBuf,
    /// `1/mounts` (what node_exporter reads, the host's mounts when sharing its PID namespace), then
    /// `self/mounts`.
    mounts: [PathBuf; 2],
}

impl Paths {
    fn new(root: &Path) -> Self {
        Self {
            stat: root.join("stat"),
            meminfo: root.join("meminfo"),
            loadavg: root.join("loadavg"),
            file_nr: root.join("sys/fs/file-nr"),
            diskstats: root.join("diskstats"),
            net_dev: root.join("net/dev"),
            mounts: [root.join("1/mounts"), root.join("self/mounts")],
        }
    }
}

#[derive(Debug)]
struct CpuSeries {
    label: String,
    seconds: [Option<FloatCounter>; 8],
    guest: [Option<FloatCounter>; 2],
}

#[derive(Debug, Default)]
struct DiskSeries {
    read: Option<Counter>,
    written: Option<Counter>,
    io_time: Option<FloatCounter>,
}

#[derive(Debug, Default)]
struct NetSeries {
    receive_bytes: Option<Counter>,
    transmit_bytes: Option<Counter>,
    receive_errs: Option<Counter>,
    transmit_errs: Option<Counter>,
}

#[derive(Debug)]
struct MountSeries {
    device: String,
    fs_type: String,
    mount_point: Arc<str>,
    /// The collection that last reported this filesystem, so that a repeated line is reported once.
    seen: u64,
    size: Option<Gauge>,
    free: Option<Gauge>,
    avail: Option<Gauge>,
    files: Option<Gauge>,
    files_free: Option<Gauge>,
    readonly: Option<Gauge>,
    device_error: Option<Gauge>,
    used_ratio: Option<Gauge>,
}

/// Unlabelled series.
#[derive(Debug, Default)]
struct Scalars {
    load: [Option<Gauge>; 3],
    memory: [Option<Gauge>; 7],
    boot_time: Option<Gauge>,
    context_switches: Option<Counter>,
    forks: Option<Counter>,
    procs_running: Option<Gauge>,
    procs_blocked: Option<Gauge>,
    filefd_allocated: Option<Gauge>,
    filefd_maximum: Option<Gauge>,
    time: Option<Gauge>,
    cpu_utilisation: Option<Gauge>,
    cpu_modes: [Option<Gauge>; 8],
    memory_used: Option<Gauge>,
}

/// The uname labels and their series.
#[derive(Debug)]
struct Uname {
    /// domainname, machine, nodename, release, sysname, version: the label order.
    values: [String; 6],
    gauge: Gauge,
}

#[derive(Debug)]
pub(super) struct Linux {
    registry: Registry,
    mount_points: Filter,
    fs_types: Filter,
    disk_devices: Filter,
    network_devices: Filter,
    paths: Paths,
    ticks_per_second: f64,
    described: bool,
    /// The bytes of the file being parsed, kept for their capacity.
    buf: Vec<u8>,
    /// The parse of /proc/stat, kept for its capacity.
    stat: parse::Stat,
    previous_cpu: Option<CpuTicks>,
    scalars: Scalars,
    cpus: Vec<Option<CpuSeries>>,
    /// `None`: filtered out.
    disks: HashMap<String, Option<DiskSeries>>,
    networks: HashMap<String, Option<NetSeries>>,
    /// By `mountpoint \0 device \0 fstype`; `None`: filtered out.
    mounts: HashMap<String, Option<MountSeries>>,
    mount_key: String,
    generation: u64,
    statfs: Statfs,
    uname: Option<Uname>,
}

impl Linux {
    pub(super) fn new(registry: &Registry, config: HostConfig) -> Self {
        let HostConfig { mount_points, fs_types, disk_devices, network_devices, mount_timeout, proc_root } =
            config;
        Self {
            registry: registry.clone(),
            mount_points,
            fs_types,
            disk_devices,
            network_devices,
            paths: Paths::new(&proc_root),
            ticks_per_second: rustix::param::clock_ticks_per_second() as f64,
            described: false,
            buf: Vec::new(),
            stat: parse::Stat::default(),
            previous_cpu: None,
            scalars: Scalars::default(),
            cpus: Vec::new(),
            disks: HashMap::new(),
            networks: HashMap::new(),
            mounts: HashMap::new(),
            mount_key: String::new(),
            generation: 0,
            statfs: Statfs::new(mount_timeout),
            uname: None,
        }
    }

    pub(super) fn collect(&mut self) -> Result<(), CollectError> {
        let registry = self.registry.clone();
        let mut ctx = Ctx { registry: &registry, errors: Errors::default() };
        if !self.described {
            self.described = describe(&mut ctx);
        }
        let mut buf = std::mem::take(&mut self.buf);

        if let Some(text) = read(&self.paths.stat, &mut buf, &mut ctx) {
            self.update_stat(&text, &mut ctx);
        }
        if let Some(text) = read(&self.paths.meminfo, &mut buf, &mut ctx) {
            self.update_meminfo(&text, &mut ctx);
        }
        if let Some(text) = read(&self.paths.loadavg, &mut buf, &mut ctx) {
            match parse::loadavg(&text) {
                Some(load) => {
                    for ((slot, name), value) in self.scalars.load.iter_mut().zip(LOAD).zip(load) {
                        ctx.set(slot, name, &[], value);
                    }
                }
                None => ctx.malformed(&self.paths.loadavg, "load averages"),
            }
        }
        if let Some(text) = read(&self.paths.file_nr, &mut buf, &mut ctx) {
            match parse::file_nr(&text) {
                Some((allocated, maximum)) => {
                    ctx.set(&mut self.scalars.filefd_allocated, FILEFD_ALLOCATED, &[], allocated as f64);
                    ctx.set(&mut self.scalars.filefd_maximum, FILEFD_MAXIMUM, &[], maximum as f64);
                }
                None => ctx.malformed(&self.paths.file_nr, "file handle counts"),
            }
        }
        if let Some(text) = read(&self.paths.diskstats, &mut buf, &mut ctx) {
            self.update_disks(&text, &mut ctx);
        }
        if let Some(text) = read(&self.paths.net_dev, &mut buf, &mut ctx) {
            self.update_networks(&text, &mut ctx);
        }
        let [primary, fallback] = &self.paths.mounts;
        let mounts = match read_quietly(primary, &mut buf) {
            Ok(()) => Some(text(&buf)),
            Err(_) => read(fallback, &mut buf, &mut ctx),
        };
        if let Some(text) = mounts {
            self.update_filesystems(&text, &mut ctx);
        }
        self.buf = buf;

        if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
            ctx.set(&mut self.scalars.time, TIME, &[], now.as_secs_f64());
        }
        self.update_uname(&mut ctx);
        ctx.errors.finish()
    }

    fn update_stat(&mut self, text: &str, ctx: &mut Ctx<'_>) {
        parse::stat(text, &mut self.stat);
        let stat = &self.stat;
        let hz = self.ticks_per_second;
        for &(cpu, ticks) in &stat.cpus {
            // /proc/stat numbers CPUs from 0; a number past any real machine is not from the kernel.
            if cpu >= 1 << 16 {
                continue;
            }
            if self.cpus.len() <= cpu {
                self.cpus.resize_with(cpu + 1, || None);
            }
            let series = self.cpus[cpu].get_or_insert_with(|| CpuSeries {
                label: cpu.to_string(),
                seconds: Default::default(),
                guest: Default::default(),
            });
            for ((slot, mode), value) in series.seconds.iter_mut().zip(CPU_MODES).zip(&ticks[..8]) {
                let labels = [("cpu", series.label.as_str()), ("mode", mode)];
                ctx.raise_float(slot, CPU_SECONDS, &labels, *value as f64 / hz);
            }
            for ((slot, mode), value) in series.guest.iter_mut().zip(GUEST_MODES).zip(&ticks[8..]) {
                let labels = [("cpu", series.label.as_str()), ("mode", mode)];
                ctx.raise_float(slot, CPU_GUEST_SECONDS, &labels, *value as f64 / hz);
            }
        }
        if let Some(total) = stat.total {
            if let Some(ratios) = self.previous_cpu.and_then(|previous| parse::cpu_ratios(&previous, &total))
            {
                let scalars = &mut self.scalars;
                ctx.set(&mut scalars.cpu_utilisation, CPU_UTILISATION, &[], ratios.utilisation);
                for ((slot, mode), value) in scalars.cpu_modes.iter_mut().zip(CPU_MODES).zip(ratios.modes) {
                    ctx.set(slot, CPU_MODE_RATIO, &[("mode", mode)], value);
                }
            }
            self.previous_cpu = Some(total);
        }
        let scalars = &mut self.scalars;
        if let Some(boot_time) = stat.boot_time {
            ctx.set(&mut scalars.boot_time, BOOT_TIME, &[], boot_time as f64);
        }
        if let Some(switches) = stat.context_switches {
            ctx.raise(&mut scalars.context_switches, CONTEXT_SWITCHES, &[], switches);
        }
        if let Some(forks) = stat.forks {
            ctx.raise(&mut scalars.forks, FORKS, &[], forks);
        }
        if let Some(running) = stat.procs_running {
            ctx.set(&mut scalars.procs_running, PROCS_RUNNING, &[], running as f64);
        }
        if let Some(blocked) = stat.procs_blocked {
            ctx.set(&mut scalars.procs_blocked, PROCS_BLOCKED, &[], blocked as f64);
        }
    }

    fn update_meminfo(&mut self, text: &str, ctx: &mut Ctx<'_>) {
        let memory = parse::meminfo(text);
        let values = [
            memory.mem_total,
            memory.mem_free,
            memory.mem_available,
            memory.buffers,
            memory.cached,
            memory.swap_total,
            memory.swap_free,
        ];
        for ((slot, name), value) in self.scalars.memory.iter_mut().zip(MEMORY).zip(values) {
            if let Some(value) = value {
                ctx.set(slot, name, &[], value as f64);
            }
        }
        match memory.used_ratio() {
            Some(ratio) => ctx.set(&mut self.scalars.memory_used, MEMORY_USED, &[], ratio),
            None => ctx.malformed(&self.paths.meminfo, "MemTotal and MemAvailable"),
        }
    }

    fn update_disks(&mut self, text: &str, ctx: &mut Ctx<'_>) {
        for disk in parse::diskstats(text) {
            if !self.disks.contains_key(disk.name) {
                let series = self.disk_devices.keeps(disk.name).then(DiskSeries::default);
                self.disks.insert(disk.name.to_owned(), series);
            }
            let Some(Some(series)) = self.disks.get_mut(disk.name) else { continue };
            let labels = [("device", disk.name)];
            // node_exporter: "standard UNIX 512-byte sectors", and milliseconds.
            ctx.raise(&mut series.read, DISK_READ, &labels, disk.sectors_read.saturating_mul(512));
            ctx.raise(&mut series.written, DISK_WRITTEN, &labels, disk.sectors_written.saturating_mul(512));
            ctx.raise_float(&mut series.io_time, DISK_IO_TIME, &labels, disk.io_time_ms as f64 / 1000.0);
        }
    }

    fn update_networks(&mut self, text: &str, ctx: &mut Ctx<'_>) {
        for dev in parse::net_dev(text) {
            if !self.networks.contains_key(dev.name) {
                let series = self.network_devices.keeps(dev.name).then(NetSeries::default);
                self.networks.insert(dev.name.to_owned(), series);
            }
            let Some(Some(series)) = self.networks.get_mut(dev.name) else { continue };
            let labels = [("device", dev.name)];
            ctx.raise(&mut series.receive_bytes, NET_RECEIVE_BYTES, &labels, dev.receive_bytes);
            ctx.raise(&mut series.transmit_bytes, NET_TRANSMIT_BYTES, &labels, dev.transmit_bytes);
            ctx.raise(&mut series.receive_errs, NET_RECEIVE_ERRS, &labels, dev.receive_errs);
            ctx.raise(&mut series.transmit_errs, NET_TRANSMIT_ERRS, &labels, dev.transmit_errs);
        }
    }

    fn update_filesystems(&mut self, text: &str, ctx: &mut Ctx<'_>) {
        self.generation += 1;
        for mount in parse::mounts(text) {
            let key = &mut self.mount_key;
            key.clear();
            key.push_str(&mount.mount_point);
            key.push('\0');
            key.push_str(&mount.device);
            key.push('\0');
            key.push_str(mount.fs_type);
            if !self.mounts.contains_key(key.as_str()) {
                let keep = self.mount_points.keeps(&mount.mount_point) && self.fs_types.keeps(mount.fs_type);
                let series = keep.then(|| MountSeries {
                    device: mount.device.clone().into_owned(),
                    fs_type: mount.fs_type.to_owned(),
                    mount_point: Arc::from(&*mount.mount_point),
                    seen: 0,
                    size: None,
                    free: None,
                    avail: None,
                    files: None,
                    files_free: None,
                    readonly: None,
                    device_error: None,
                    used_ratio: None,
                });
                self.mounts.insert(key.clone(), series);
            }
            let Some(Some(series)) = self.mounts.get_mut(key.as_str()) else { continue };
            if series.seen == self.generation {
                continue;
            }
            series.seen = self.generation;
            let labels = [
                ("device", series.device.as_str()),
                ("fstype", series.fs_type.as_str()),
                ("mountpoint", &*series.mount_point),
            ];
            match self.statfs.stat(&series.mount_point) {
                Ok(fs) => {
                    ctx.set(&mut series.size, FS_SIZE, &labels, fs.size);
                    ctx.set(&mut series.free, FS_FREE, &labels, fs.free);
                    ctx.set(&mut series.avail, FS_AVAIL, &labels, fs.avail);
                    ctx.set(&mut series.files, FS_FILES, &labels, fs.files);
                    ctx.set(&mut series.files_free, FS_FILES_FREE, &labels, fs.files_free);
                    let readonly = if mount.read_only() { 1.0 } else { 0.0 };
                    ctx.set(&mut series.readonly, FS_READONLY, &labels, readonly);
                    ctx.set(&mut series.device_error, FS_DEVICE_ERROR, &labels, 0.0);
                    if let Some(ratio) = parse::filesystem_used_ratio(fs.size, fs.free, fs.avail) {
                        let labels = [("mountpoint", &*series.mount_point)];
                        ctx.set(&mut series.used_ratio, FS_USED, &labels, ratio);
                    }
                }
                Err(err) => {
                    if let StatfsError::Failed(err) = &err {
                        tracing::debug!(mountpoint = &*series.mount_point, error = %err, "statfs failed");
                    }
                    ctx.set(&mut series.device_error, FS_DEVICE_ERROR, &labels, 1.0);
                }
            }
        }
    }

    fn update_uname(&mut self, ctx: &mut Ctx<'_>) {
        let uts = rustix::system::uname();
        let current: [&CStr; 6] =
            [uts.domainname(), uts.machine(), uts.nodename(), uts.release(), uts.sysname(), uts.version()];
        if let Some(known) = &self.uname
            && known.values.iter().zip(current).all(|(known, now)| known.as_bytes() == now.to_bytes())
        {
            return;
        }
        let values = current.map(|c| c.to_string_lossy().into_owned());
        let labels = [
            ("domainname", values[0].as_str()),
            ("machine", values[1].as_str()),
            ("nodename", values[2].as_str()),
            ("release", values[3].as_str()),
            ("sysname", values[4].as_str()),
            ("version", values[5].as_str()),
        ];
        let mut slot: Option<Gauge> = None;
        let Some(gauge) = ctx.get(&mut slot, UNAME, &labels) else { return };
        gauge.set(1.0);
        // The registry keeps every series; the old labels (after a host name change) read 0.
        if let Some(old) = self.uname.replace(Uname { values: values.clone(), gauge: gauge.clone() }) {
            old.gauge.set(0.0);
        }
    }
}

/// Describes every family; `false` if one could not be (it is retried at the next collection).
fn describe(ctx: &mut Ctx<'_>) -> bool {
    let mut ok = true;
    for (name, kind, help, unit) in FAMILIES {
        let descriptor = match kind {
            Kind::Gauge => Descriptor::gauge(name, help),
            Kind::Counter => Descriptor::counter(name, help),
            Kind::FloatCounter => Descriptor::float_counter(name, help),
        };
        let descriptor = match unit {
            Some(unit) => descriptor.with_unit(unit),
            None => descriptor,
        };
        if let Err(err) = ctx.registry.describe(&descriptor) {
            ctx.errors.push(CollectError::Metric(err));
            ok = false;
        }
    }
    ok
}

/// Reads `path` into `buf` and returns its text, or reports the failure in `ctx`.
fn read<'b>(path: &Path, buf: &'b mut Vec<u8>, ctx: &mut Ctx<'_>) -> Option<Cow<'b, str>> {
    match read_quietly(path, buf) {
        Ok(()) => Some(text(buf)),
        Err(err) => {
            ctx.read_error(path, err);
            None
        }
    }
}

fn read_quietly(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    std::fs::File::open(path)?.read_to_end(buf).map(drop)
}

/// The file's text. Names in /proc are bytes (a mount point or an interface may be any non-UTF-8 name);
/// such bytes become U+FFFD rather than costing the whole file.
fn text(buf: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Collector;
    use crate::host::HostCollector;
    use sightline_core::{Snapshot, Value};
    use sightline_testkit::TempDir;

    fn value(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match &snapshot.family(name)?.series_with(labels)?.value {
            Value::Gauge(v) | Value::FloatCounter(v) => Some(*v),
            Value::Counter(n) => Some(*n as f64),
            _ => None,
        }
    }

    fn series(snapshot: &Snapshot, name: &str) -> usize {
        snapshot.family(name).map_or(0, |f| f.series.len())
    }

    /// A /proc with the given files.
    fn fake_proc(files: &[(&str, &str)]) -> TempDir {
        let dir = TempDir::new("host-proc");
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    const STAT: &str = "cpu  300 0 100 500 100 0 0 0 0 0\ncpu0 200 0 50 250 50 0 0 0 7 0\n\
                        cpu1 100 0 50 250 50 0 0 0 0 0\nctxt 1000\nbtime 1700000000\nprocesses 42\n\
                        procs_running 2\nprocs_blocked 0\n";

    #[test]
    fn collects_the_real_host_and_derives_ratios_from_the_second_collection() {
        let registry = Registry::new();
        let mut collector = HostCollector::new(&registry, HostConfig::default());
        collector.collect().expect("this machine's /proc is readable");
        let snapshot = registry.snapshot();
        assert!(value(&snapshot, CPU_SECONDS, &[("cpu", "0"), ("mode", "idle")]).unwrap() > 0.0);
        assert_eq!(series(&snapshot, CPU_SECONDS) % 8, 0);
        assert!(value(&snapshot, MEMORY[0], &[]).unwrap() > 1e6);
        assert!(value(&snapshot, BOOT_TIME, &[]).unwrap() > 1e9);
        assert!(value(&snapshot, FILEFD_ALLOCATED, &[]).unwrap() > 0.0);
        let used = value(&snapshot, MEMORY_USED, &[]).unwrap();
        assert!((0.0..=1.0).contains(&used), "{used}");
        assert!(series(&snapshot, FS_SIZE) > 0, "no filesystem at all");
        let uname = &snapshot.family(UNAME).unwrap().series[0];
        assert_eq!(uname.label("sysname"), Some("Linux"));
        assert_eq!(uname.value, Value::Gauge(1.0));
        // No previous sample yet.
        assert_eq!(series(&snapshot, CPU_UTILISATION), 0);
        assert_eq!(series(&snapshot, CPU_MODE_RATIO), 0);

        // Some ticks must pass between the samples (10 ms each at USER_HZ=100, per CPU).
        std::thread::sleep(std::time::Duration::from_millis(60));
        let before = registry.series_count();
        collector.collect().unwrap();
        let snapshot = registry.snapshot();
        let utilisation = value(&snapshot, CPU_UTILISATION, &[]).unwrap();
        assert!((0.0..=1.0).contains(&utilisation), "{utilisation}");
        let modes: f64 =
            CPU_MODES.iter().map(|m| value(&snapshot, CPU_MODE_RATIO, &[("mode", m)]).unwrap()).sum();
        assert!((modes - 1.0).abs() < 1e-9, "{modes}");
        // Only the ratios are new: every other handle was cached.
        assert_eq!(registry.series_count(), before + 9);
    }

    #[test]
    fn an_empty_proc_costs_the_proc_metrics_and_names_every_missing_file() {
        let proc = fake_proc(&[]);
        let registry = Registry::new();
        let mut collector = HostCollector::new(&registry, HostConfig::default().with_proc_root(proc.path()));
        let err = collector.collect().unwrap_err();
        let message = err.to_string();
        for file in
            ["/stat", "/meminfo", "/loadavg", "/sys/fs/file-nr", "/diskstats", "/net/dev", "/self/mounts"]
        {
            assert!(message.contains(file), "{file} in {message}");
        }
        assert!(matches!(err, CollectError::Read { .. }));
        let snapshot = registry.snapshot();
        // What does not come from /proc is still there; nothing unread is exported as zero.
        assert!(value(&snapshot, TIME, &[]).is_some());
        assert_eq!(series(&snapshot, UNAME), 1);
        for (name, ..) in FAMILIES {
            if name != TIME && name != UNAME {
                assert_eq!(series(&snapshot, name), 0, "{name}");
            }
        }
        // And again, without panicking or registering anything more.
        assert!(collector.collect().is_err());
        assert_eq!(registry.snapshot().families.len(), snapshot.families.len());
    }

    #[test]
    fn a_partial_proc_exports_what_it_has() {
        let proc = fake_proc(&[
            ("stat", STAT),
            ("meminfo", "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 250 kB\nBuffers: 1 kB\n"),
            ("loadavg", "garbage\n"),
        ]);
        let registry = Registry::new();
        let mut collector = HostCollector::new(&registry, HostConfig::default().with_proc_root(proc.path()));
        let message = collector.collect().unwrap_err().to_string();
        assert!(message.contains("loadavg") && message.contains("diskstats"), "{message}");
        assert!(!message.contains("meminfo") && !message.contains("/stat"), "{message}");
        let snapshot = registry.snapshot();
        // USER_HZ is 100 on every architecture this runs on.
        assert_eq!(value(&snapshot, CPU_SECONDS, &[("cpu", "0"), ("mode", "user")]), Some(2.0));
        assert_eq!(value(&snapshot, CPU_SECONDS, &[("cpu", "1"), ("mode", "iowait")]), Some(0.5));
        assert_eq!(value(&snapshot, CPU_GUEST_SECONDS, &[("cpu", "0"), ("mode", "user")]), Some(0.07));
        assert_eq!(series(&snapshot, CPU_SECONDS), 16);
        assert_eq!(value(&snapshot, CONTEXT_SWITCHES, &[]), Some(1000.0));
        assert_eq!(value(&snapshot, FORKS, &[]), Some(42.0));
        assert_eq!(value(&snapshot, BOOT_TIME, &[]), Some(1.7e9));
        assert_eq!(value(&snapshot, PROCS_RUNNING, &[]), Some(2.0));
        assert_eq!(value(&snapshot, MEMORY[0], &[]), Some(1024000.0));
        assert_eq!(value(&snapshot, MEMORY[2], &[]), Some(256000.0));
        assert_eq!(value(&snapshot, MEMORY_USED, &[]), Some(0.75));
        // Fields the file lacks are missing, not zero.
        assert_eq!(series(&snapshot, MEMORY[5]), 0);
        assert_eq!(series(&snapshot, LOAD[0]), 0);

        // The second sample gives the CPU ratios over the interval.
        let later = STAT.replacen("cpu  300 0 100 500 100", "cpu  360 0 120 600 120", 1);
        std::fs::write(proc.path().join("stat"), later).unwrap();
        let _ = collector.collect();
        let snapshot = registry.snapshot();
        assert_eq!(value(&snapshot, CPU_MODE_RATIO, &[("mode", "user")]), Some(0.3));
        assert_eq!(value(&snapshot, CPU_MODE_RATIO, &[("mode", "idle")]), Some(0.5));
        let utilisation = value(&snapshot, CPU_UTILISATION, &[]).unwrap();
        assert!((utilisation - 0.4).abs() < 1e-12, "{utilisation}");
    }

    #[test]
    fn filters_disks_interfaces_and_filesystems() {
        let proc = fake_proc(&[
            (
                "diskstats",
                "7 0 loop0 1 0 8 0 0 0 0 0 0 0 0\n254 0 vda 10 0 4 0 5 0 2 0 0 1500 0\n\
                 254 1 vda1 1 0 8 0 0 0 0 0 0 0 0\n",
            ),
            (
                "net/dev",
                "Inter-| Receive | Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n\
                 lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\neth0: 100 1 2 0 0 0 0 0 200 1 3 0 0 0 0 0\n",
            ),
            (
                "1/mounts",
                "/dev/root / ext4 ro,relatime 0 0\nproc /proc proc rw 0 0\n/dev/root / ext4 ro,relatime 0 0\n\
                 tmpfs /tmp tmpfs rw 0 0\n/dev/gone /no/such/dir ext4 rw 0 0\n",
            ),
        ]);
        let config = HostConfig::default()
            .with_proc_root(proc.path())
            .with_network_devices(None, Some("^lo$"))
            .unwrap()
            .with_fs_types(None, Some("^(proc|tmpfs)$"))
            .unwrap();
        let registry = Registry::new();
        let mut collector = HostCollector::new(&registry, config);
        let _ = collector.collect();
        let snapshot = registry.snapshot();

        assert_eq!(series(&snapshot, DISK_READ), 1);
        assert_eq!(value(&snapshot, DISK_READ, &[("device", "vda")]), Some(2048.0));
        assert_eq!(value(&snapshot, DISK_WRITTEN, &[("device", "vda")]), Some(1024.0));
        assert_eq!(value(&snapshot, DISK_IO_TIME, &[("device", "vda")]), Some(1.5));

        assert_eq!(series(&snapshot, NET_RECEIVE_BYTES), 1);
        assert_eq!(value(&snapshot, NET_RECEIVE_BYTES, &[("device", "eth0")]), Some(100.0));
        assert_eq!(value(&snapshot, NET_RECEIVE_ERRS, &[("device", "eth0")]), Some(2.0));
        assert_eq!(value(&snapshot, NET_TRANSMIT_BYTES, &[("device", "eth0")]), Some(200.0));
        assert_eq!(value(&snapshot, NET_TRANSMIT_ERRS, &[("device", "eth0")]), Some(3.0));

        // "/" once although listed twice, read-only from its options; /proc and tmpfs filtered out; a
        // mount point that cannot be stat'ed has only the error gauge.
        let root = [("device", "/dev/root"), ("fstype", "ext4"), ("mountpoint", "/")];
        assert_eq!(series(&snapshot, FS_SIZE), 1);
        assert!(value(&snapshot, FS_SIZE, &root).unwrap() > 0.0);
        assert_eq!(value(&snapshot, FS_READONLY, &root), Some(1.0));
        assert_eq!(value(&snapshot, FS_DEVICE_ERROR, &root), Some(0.0));
        let used = value(&snapshot, FS_USED, &[("mountpoint", "/")]).unwrap();
        assert!((0.0..=1.0).contains(&used), "{used}");
        let gone = [("device", "/dev/gone"), ("fstype", "ext4"), ("mountpoint", "/no/such/dir")];
        assert_eq!(value(&snapshot, FS_DEVICE_ERROR, &gone), Some(1.0));
        assert_eq!(series(&snapshot, FS_DEVICE_ERROR), 2);
    }

    #[test]
    fn a_mount_point_that_is_not_utf8_costs_only_itself() {
        let proc = fake_proc(&[]);
        std::fs::create_dir_all(proc.path().join("1")).unwrap();
        std::fs::write(
            proc.path().join("1/mounts"),
            b"/dev/root / ext4 rw 0 0\n/dev/x /mnt/\xff ext4 rw 0 0\n",
        )
        .unwrap();
        let registry = Registry::new();
        let mut collector = HostCollector::new(&registry, HostConfig::default().with_proc_root(proc.path()));
        let _ = collector.collect();
        let snapshot = registry.snapshot();
        let root = [("device", "/dev/root"), ("fstype", "ext4"), ("mountpoint", "/")];
        assert_eq!(value(&snapshot, FS_DEVICE_ERROR, &root), Some(0.0));
        let odd = [("device", "/dev/x"), ("fstype", "ext4"), ("mountpoint", "/mnt/\u{FFFD}")];
        assert_eq!(value(&snapshot, FS_DEVICE_ERROR, &odd), Some(1.0));
    }

    #[test]
    fn errors_name_the_first_failure_and_the_others() {
        let mut errors = Errors::default();
        assert!(std::mem::take(&mut errors).finish().is_ok());
        errors.push(CollectError::Read { what: "/proc/stat".into(), source: std::io::Error::other("gone") });
        errors.push(CollectError::Read { what: "/proc/meminfo".into(), source: std::io::Error::other("x") });
        errors.push(CollectError::Unavailable("uname".into()));
        let message = errors.finish().unwrap_err().to_string();
        assert_eq!(message, "cannot read /proc/stat (also: /proc/meminfo, uname): gone");
    }
}
