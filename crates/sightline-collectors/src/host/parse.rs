//! Parsers for the /proc files the host collector reads. They borrow from the text and allocate nothing
//! (except into the caller's reusable buffers), and skip what they do not understand rather than fail:
//! a kernel that adds a column or a line must not cost the metrics that still parse.

use std::borrow::Cow;

/// The CPU modes of `/proc/stat`, in column order, as node_exporter names them.
pub(crate) const CPU_MODES: [&str; 8] =
    ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];

/// The guest modes of `/proc/stat` (columns 9 and 10), as node_exporter names them.
pub(crate) const GUEST_MODES: [&str; 2] = ["user", "nice"];

/// Ticks of one `cpu` line: the eight modes, then guest and guest_nice. Missing columns (old kernels)
/// read as zero.
pub(crate) type CpuTicks = [u64; 10];

/// What the host collector uses from `/proc/stat`.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Stat {
    /// The aggregate `cpu` line.
    pub(crate) total: Option<CpuTicks>,
    /// The `cpuN` lines, as (N, ticks), in file order.
    pub(crate) cpus: Vec<(usize, CpuTicks)>,
    pub(crate) context_switches: Option<u64>,
    pub(crate) boot_time: Option<u64>,
    pub(crate) forks: Option<u64>,
    pub(crate) procs_running: Option<u64>,
    pub(crate) procs_blocked: Option<u64>,
}

/// Parses `/proc/stat` into `out`, reusing its CPU vector.
pub(crate) fn stat(text: &str, out: &mut Stat) {
    out.total = None;
    out.cpus.clear();
    out.context_switches = None;
    out.boot_time = None;
    out.forks = None;
    out.procs_running = None;
    out.procs_blocked = None;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        if let Some(cpu) = key.strip_prefix("cpu") {
            let mut ticks = [0u64; 10];
            for (slot, field) in ticks.iter_mut().zip(fields) {
                *slot = field.parse().unwrap_or(0);
            }
            if cpu.is_empty() {
                out.total = Some(ticks);
            } else if let Ok(n) = cpu.parse() {
                out.cpus.push((n, ticks));
            }
            continue;
        }
        let slot = match key {
            "ctxt" => &mut out.context_switches,
            "btime" => &mut out.boot_time,
            "processes" => &mut out.forks,
            "procs_running" => &mut out.procs_running,
            "procs_blocked" => &mut out.procs_blocked,
            _ => continue,
        };
        *slot = fields.next().and_then(|v| v.parse().ok());
    }
}

/// What the host collector uses from `/proc/meminfo`, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meminfo {
    pub(crate) mem_total: Option<u64>,
    pub(crate) mem_free: Option<u64>,
    pub(crate) mem_available: Option<u64>,
    pub(crate) buffers: Option<u64>,
    pub(crate) cached: Option<u64>,
    pub(crate) swap_total: Option<u64>,
    pub(crate) swap_free: Option<u64>,
}

impl Meminfo {
    /// The share of memory in use: `1 - MemAvailable / MemTotal`, or with `MemFree + Buffers + Cached`
    /// standing in for `MemAvailable` on kernels older than 3.14, which lack it.
    pub(crate) fn used_ratio(&self) -> Option<f64> {
        let total = self.mem_total.filter(|&t| t > 0)? as f64;
        let available = match self.mem_available {
            Some(available) => available,
            None => self.mem_free? + self.buffers.unwrap_or(0) + self.cached.unwrap_or(0),
        };
        Some((1.0 - available as f64 / total).clamp(0.0, 1.0))
    }
}

/// Parses `/proc/meminfo`. Values in `kB` are multiplied by 1024, as node_exporter does.
pub(crate) fn meminfo(text: &str) -> Meminfo {
    let mut out = Meminfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else { continue };
        let slot = match key {
            "MemTotal" => &mut out.mem_total,
            "MemFree" => &mut out.mem_free,
            "MemAvailable" => &mut out.mem_available,
            "Buffers" => &mut out.buffers,
            "Cached" => &mut out.cached,
            "SwapTotal" => &mut out.swap_total,
            "SwapFree" => &mut out.swap_free,
            _ => continue,
        };
        let mut fields = rest.split_ascii_whitespace();
        let value = fields.next().and_then(|v| v.parse::<u64>().ok());
        *slot = match fields.next() {
            Some("kB") => value.map(|v| v.saturating_mul(1024)),
            _ => value,
        };
    }
    out
}

/// Parses `/proc/loadavg`: the 1, 5 and 15 minute load averages.
pub(crate) fn loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// Parses `/proc/sys/fs/file-nr`: allocated and maximum file handles.
pub(crate) fn file_nr(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<u64>().ok());
    let allocated = fields.next()??;
    let _unused = fields.next()??;
    Some((allocated, fields.next()??))
}

/// One line of `/proc/diskstats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Disk<'a> {
    pub(crate) name: &'a str,
    pub(crate) sectors_read: u64,
    pub(crate) sectors_written: u64,
    /// Milliseconds spent doing I/Os.
    pub(crate) io_time_ms: u64,
}

/// The lines of `/proc/diskstats` that have at least the 14 fields every kernel since 2.6 writes.
pub(crate) fn diskstats(text: &str) -> impl Iterator<Item = Disk<'_>> {
    text.lines().filter_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let name = fields.nth(2)?;
        let mut numbers = [0u64; 10];
        for slot in &mut numbers {
            *slot = fields.next()?.parse().ok()?;
        }
        // After the name: reads, reads merged, sectors read, ms reading, writes, writes merged, sectors
        // written, ms writing, I/Os in progress, ms doing I/Os, ...
        Some(Disk { name, sectors_read: numbers[2], sectors_written: numbers[6], io_time_ms: numbers[9] })
    })
}

/// One interface of `/proc/net/dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NetDev<'a> {
    pub(crate) name: &'a str,
    pub(crate) receive_bytes: u64,
    pub(crate) receive_errs: u64,
    pub(crate) transmit_bytes: u64,
    pub(crate) transmit_errs: u64,
}

/// The interfaces of `/proc/net/dev` (the two header lines have no `:` before their `|`).
pub(crate) fn net_dev(text: &str) -> impl Iterator<Item = NetDev<'_>> {
    text.lines().filter_map(|line| {
        let (name, rest) = line.split_once(':')?;
        let name = name.trim();
        if name.is_empty() || name.contains('|') {
            return None;
        }
        let mut numbers = [0u64; 16];
        let mut fields = rest.split_ascii_whitespace();
        for slot in &mut numbers {
            *slot = fields.next()?.parse().ok()?;
        }
        Some(NetDev {
            name,
            receive_bytes: numbers[0],
            receive_errs: numbers[2],
            transmit_bytes: numbers[8],
            transmit_errs: numbers[10],
        })
    })
}

/// One line of `/proc/<pid>/mounts`, with the octal escapes of the device and mount point decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount<'a> {
    pub(crate) device: Cow<'a, str>,
    pub(crate) mount_point: Cow<'a, str>,
    pub(crate) fs_type: &'a str,
    pub(crate) options: &'a str,
}

impl Mount<'_> {
    /// Whether the mount options contain `ro`.
    pub(crate) fn read_only(&self) -> bool {
        self.options.split(',').any(|option| option == "ro")
    }
}

/// The lines of `/proc/<pid>/mounts`.
pub(crate) fn mounts(text: &str) -> impl Iterator<Item = Mount<'_>> {
    text.lines().filter_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        Some(Mount {
            device: unescape_octal(fields.next()?),
            mount_point: unescape_octal(fields.next()?),
            fs_type: fields.next()?,
            options: fields.next().unwrap_or(""),
        })
    })
}

/// Decodes the kernel's `\ooo` escapes (space, tab, newline and backslash in mount fields).
fn unescape_octal(field: &str) -> Cow<'_, str> {
    if !field.contains('\\') {
        return Cow::Borrowed(field);
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match escape {
            Some(digits) => {
                let value = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The share of each CPU mode between two samples of the aggregate `cpu` line, and the utilisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuRatios {
    /// Per mode, in [`CPU_MODES`] order; they add up to 1.
    pub(crate) modes: [f64; 8],
    /// `1 - (idle + iowait + steal) / total`.
    pub(crate) utilisation: f64,
}

/// The CPU ratios over the interval from `previous` to `current`, or `None` when no tick passed (or the
/// counters went backwards, as after a CPU hot-unplug).
pub(crate) fn cpu_ratios(previous: &CpuTicks, current: &CpuTicks) -> Option<CpuRatios> {
    let mut deltas = [0u64; 8];
    for (i, delta) in deltas.iter_mut().enumerate() {
        *delta = current[i].saturating_sub(previous[i]);
    }
    let total: u64 = deltas.iter().sum();
    if total == 0 {
        return None;
    }
    let total = total as f64;
    let modes = deltas.map(|d| d as f64 / total);
    // idle, iowait, steal: time this machine could not or did not use, as node-mixin's
    // instance:node_cpu_utilisation:rate5m counts it.
    let utilisation = (1.0 - (modes[3] + modes[4] + modes[7])).clamp(0.0, 1.0);
    Some(CpuRatios { modes, utilisation })
}

/// The share of a filesystem's space in use as `df` shows it: `used / (used + avail)`, where
/// `used = size - free`. Blocks reserved for root count neither as used nor as available. `None` for
/// filesystems without blocks (such as some FUSE mounts).
pub(crate) fn filesystem_used_ratio(size: f64, free: f64, avail: f64) -> Option<f64> {
    let used = (size - free).max(0.0);
    let usable = used + avail;
    (usable > 0.0).then(|| (used / usable).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "\
cpu  234974 3 27797 437420 1731 5 219 154 7 1
cpu0 100659 1 13039 236421 433 2 40 67 7 0
cpu1 134315 2 14758 200998 1297 3 178 86 0 1
intr 2347220 0 0 0 0 0
ctxt 2807072
btime 1795989812
processes 77401
procs_running 3
procs_blocked 1
softirq 1 2 3
";

    #[test]
    fn parses_proc_stat() {
        let mut out = Stat::default();
        stat(STAT, &mut out);
        assert_eq!(out.total, Some([234974, 3, 27797, 437420, 1731, 5, 219, 154, 7, 1]));
        assert_eq!(out.cpus.len(), 2);
        assert_eq!(out.cpus[1], (1, [134315, 2, 14758, 200998, 1297, 3, 178, 86, 0, 1]));
        assert_eq!(out.context_switches, Some(2807072));
        assert_eq!(out.boot_time, Some(1795989812));
        assert_eq!(out.forks, Some(77401));
        assert_eq!(out.procs_running, Some(3));
        assert_eq!(out.procs_blocked, Some(1));

        // Reuse clears the previous parse; old kernels have fewer columns.
        stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n", &mut out);
        assert_eq!(out.total, Some([1, 2, 3, 4, 0, 0, 0, 0, 0, 0]));
        assert_eq!(out.cpus, vec![(0, [1, 2, 3, 4, 0, 0, 0, 0, 0, 0])]);
        assert_eq!(out.context_switches, None);
        assert_eq!(out.boot_time, None);
    }

    #[test]
    fn parses_meminfo_in_bytes() {
        let text = "MemTotal:       24684084 kB\nMemFree:        22691972 kB\nMemAvailable:   24035848 kB\n\
                    Buffers:           21516 kB\nCached:          1471792 kB\nSwapCached:            0 kB\n\
                    SwapTotal:       1000 kB\nSwapFree:         500 kB\nHugePages_Total:       0\n";
        let m = meminfo(text);
        assert_eq!(m.mem_total, Some(24684084 * 1024));
        assert_eq!(m.mem_free, Some(22691972 * 1024));
        assert_eq!(m.mem_available, Some(24035848 * 1024));
        assert_eq!(m.buffers, Some(21516 * 1024));
        assert_eq!(m.cached, Some(1471792 * 1024));
        assert_eq!(m.swap_total, Some(1000 * 1024));
        assert_eq!(m.swap_free, Some(500 * 1024));
        assert_eq!(meminfo(""), Meminfo::default());
    }

    #[test]
    fn memory_used_ratio() {
        let m = Meminfo { mem_total: Some(1000), mem_available: Some(250), ..Meminfo::default() };
        assert_eq!(m.used_ratio(), Some(0.75));
        // Before MemAvailable (Linux 3.14): free + buffers + cached.
        let old = Meminfo {
            mem_total: Some(1000),
            mem_free: Some(100),
            buffers: Some(50),
            cached: Some(350),
            ..Meminfo::default()
        };
        assert_eq!(old.used_ratio(), Some(0.5));
        assert_eq!(Meminfo { mem_total: Some(0), ..m }.used_ratio(), None);
        assert_eq!(Meminfo::default().used_ratio(), None);
    }

    #[test]
    fn parses_loadavg_and_file_nr() {
        assert_eq!(loadavg("0.31 0.89 1.01 1/139 9061\n"), Some([0.31, 0.89, 1.01]));
        assert_eq!(loadavg("0.31 x 1.01"), None);
        assert_eq!(loadavg(""), None);
        assert_eq!(file_nr("672\t0\t2466170\n"), Some((672, 2466170)));
        assert_eq!(file_nr("672\t0"), None);
    }

    #[test]
    fn parses_diskstats() {
        let text = "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
                    254       0 vda 380337 17093 19584842 676058 49575 63722 24170688 98305 0 31480 777602 \
                    22018 26 4903808 2960 5957 277\n\
                    8 0 short 1 2 3\n";
        let disks: Vec<_> = diskstats(text).collect();
        assert_eq!(disks.len(), 2);
        assert_eq!(
            disks[1],
            Disk { name: "vda", sectors_read: 19584842, sectors_written: 24170688, io_time_ms: 31480 }
        );
    }

    #[test]
    fn parses_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:  412609    3728    0    0    0     0          0         0   412609    3728    0    0    0     0       0          0\n  \
eth0:224609779    9458    4    0    0     0          0         0   646077    6260    5    0    0     0       0          0\n";
        let devs: Vec<_> = net_dev(text).collect();
        assert_eq!(devs.len(), 2);
        assert_eq!(devs[0].name, "lo");
        assert_eq!(
            devs[1],
            NetDev {
                name: "eth0",
                receive_bytes: 224609779,
                receive_errs: 4,
                transmit_bytes: 646077,
                transmit_errs: 5
            }
        );
    }

    #[test]
    fn parses_mounts_with_escapes() {
        let text = "/dev/vda / ext4 rw,relatime 0 0\n\
                    //srv/share /mnt/my\\040share cifs ro,relatime 0 0\n\
                    odd /a\\134b\\011c\\9 tmpfs rw 0 0\n\
                    broken\n";
        let mounts: Vec<_> = mounts(text).collect();
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].mount_point, "/");
        assert!(matches!(mounts[0].mount_point, Cow::Borrowed(_)));
        assert!(!mounts[0].read_only());
        assert_eq!(mounts[1].mount_point, "/mnt/my share");
        assert_eq!(mounts[1].fs_type, "cifs");
        assert!(mounts[1].read_only());
        // Backslash and tab decoded; a backslash not followed by three octal digits is kept.
        assert_eq!(mounts[2].mount_point, "/a\\b\tc\\9");
    }

    #[test]
    fn cpu_ratios_over_an_interval() {
        let previous = [100, 0, 50, 800, 20, 0, 10, 20, 5, 0];
        let current = [160, 0, 70, 900, 40, 0, 10, 20, 9, 0];
        // Deltas: user 60, system 20, idle 100, iowait 20; total 200.
        let ratios = cpu_ratios(&previous, &current).unwrap();
        assert_eq!(ratios.modes, [0.3, 0.0, 0.1, 0.5, 0.1, 0.0, 0.0, 0.0]);
        assert!((ratios.utilisation - 0.4).abs() < 1e-12, "{}", ratios.utilisation);
        assert!((ratios.modes.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // No tick passed, or the counters went backwards: nothing to report.
        assert_eq!(cpu_ratios(&current, &current), None);
        assert_eq!(cpu_ratios(&current, &previous), None);
        // Steal counts as not utilised.
        let stolen = cpu_ratios(&[0; 10], &[50, 0, 0, 0, 0, 0, 0, 50, 0, 0]).unwrap();
        assert_eq!(stolen.utilisation, 0.5);
    }

    #[test]
    fn filesystem_used_ratio_as_df_shows_it() {
        // 100 blocks, 30 free of which 10 reserved for root (avail 20): used 70 of 90 usable.
        let ratio = filesystem_used_ratio(100.0, 30.0, 20.0).unwrap();
        assert!((ratio - 70.0 / 90.0).abs() < 1e-12);
        assert_eq!(filesystem_used_ratio(100.0, 10.0, 0.0), Some(1.0));
        assert_eq!(filesystem_used_ratio(0.0, 0.0, 0.0), None);
    }
}
