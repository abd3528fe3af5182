//! The host collector against the real thing: Debian's `prometheus-node-exporter`, started with the same
//! filters, scraped between two Sightline collections; and `promtool check metrics` on the exposition.
#![cfg(target_os = "linux")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use sightline_collectors::Collector;
use sightline_collectors::host::{
    DEFAULT_DISK_DEVICES_EXCLUDE, DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNT_POINTS_EXCLUDE, HostCollector,
    HostConfig,
};
use sightline_core::Registry;
use sightline_export::{Format, render};
use sightline_testkit::{ChildGuard, free_port, http_get, require_peer, wait_for_port};

type Labels = BTreeMap<String, String>;

/// A parsed Prometheus text exposition.
#[derive(Debug, Default)]
struct Exposition {
    help: BTreeMap<String, String>,
    kind: BTreeMap<String, String>,
    samples: BTreeMap<String, BTreeMap<Labels, f64>>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                out.help.insert(name.into(), help.replace("\\n", "\n").replace("\\\\", "\\"));
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                out.kind.insert(name.into(), kind.into());
            } else if !line.starts_with('#') {
                let (name, labels, value) = parse_sample(line).unwrap_or_else(|| panic!("bad line: {line}"));
                out.samples.entry(name).or_default().insert(labels, value);
            }
        }
        out
    }

    fn family(&self, name: &str) -> BTreeMap<Labels, f64> {
        self.samples.get(name).cloned().unwrap_or_default()
    }

    /// The value of an unlabelled metric.
    fn scalar(&self, name: &str) -> Option<f64> {
        self.samples.get(name)?.get(&Labels::new()).copied()
    }
}

/// `name{a="b",...} value [timestamp]`.
fn parse_sample(line: &str) -> Option<(String, Labels, f64)> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = Labels::new();
    let mut rest = &line[name_end..];
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            inner = inner.trim_start_matches([',', ' ']);
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = inner.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (i, '"') => break i + 1,
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.trim().to_owned(), value);
            inner = &after[end..];
        }
    }
    let value = rest.split_whitespace().next()?;
    Some((name, labels, value.parse().ok()?))
}

#[test]
fn parses_samples() {
    let line = r##"node_uname_info{domainname="(none)",version="#1 SMP \"x\" a,b}"} 1"##;
    let (name, labels, value) = parse_sample(line).unwrap();
    assert_eq!(name, "node_uname_info");
    assert_eq!(labels["domainname"], "(none)");
    assert_eq!(labels["version"], "#1 SMP \"x\" a,b}");
    assert_eq!(value, 1.0);
    assert_eq!(parse_sample("node_load1 0.5 1700000000"), Some(("node_load1".into(), Labels::new(), 0.5)));
    assert_eq!(parse_sample("x{} 2.5e+06").map(|s| s.2), Some(2.5e6));
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn show(labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// Collects mismatches, to report them all at once.
#[derive(Default)]
struct Diff {
    problems: Vec<String>,
    compared: usize,
}

impl Diff {
    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        self.compared += 1;
        if !ok {
            self.problems.push(problem());
        }
    }

    /// The same label sets in both.
    fn same_series(&mut self, name: &str, node: &Exposition, ours: &Exposition) {
        let theirs: BTreeSet<String> = node.family(name).keys().map(show).collect();
        let mine: BTreeSet<String> = ours.family(name).keys().map(show).collect();
        self.check(theirs == mine, || {
            format!(
                "{name}: label sets differ\n    only node_exporter: {:?}\n    only sightline:     {:?}",
                theirs.difference(&mine).collect::<Vec<_>>(),
                mine.difference(&theirs).collect::<Vec<_>>()
            )
        });
    }

    /// Every series equal.
    fn exact(&mut self, name: &str, node: &Exposition, ours: &Exposition) {
        self.same_series(name, node, ours);
        for (labels, theirs) in node.family(name) {
            if let Some(mine) = ours.family(name).get(&labels) {
                self.check(theirs == *mine, || {
                    format!("{name}{}: node_exporter {theirs}, sightline {mine}", show(&labels))
                });
            }
        }
    }

    /// Every node_exporter value within `[min(before, after) - slack, max(before, after) + slack]`, where
    /// `before` and `after` are Sightline's collections on either side of the scrape.
    fn bracket(
        &mut self,
        name: &str,
        node: &Exposition,
        before: &Exposition,
        after: &Exposition,
        slack: impl Fn(f64) -> f64,
    ) {
        self.same_series(name, node, after);
        for (labels, theirs) in node.family(name) {
            let (Some(a), Some(b)) =
                (before.family(name).get(&labels).copied(), after.family(name).get(&labels).copied())
            else {
                continue;
            };
            let slack = slack(theirs);
            let (low, high) = (a.min(b) - slack, a.max(b) + slack);
            self.check((low..=high).contains(&theirs), || {
                format!(
                    "{name}{}: node_exporter {theirs} outside sightline's [{a}, {b}] ± {slack}",
                    show(&labels)
                )
            });
        }
    }
}

const COLLECTORS: [&str; 10] =
    ["cpu", "loadavg", "meminfo", "filesystem", "diskstats", "netdev", "stat", "time", "uname", "filefd"];

const MIB: f64 = 1024.0 * 1024.0;

fn collect(config: &HostConfig) -> (String, Exposition) {
    let registry = Registry::new();
    let mut collector = HostCollector::new(&registry, config.clone());
    collector.collect().expect("this machine's /proc is readable");
    let text = render(&registry.snapshot(), Format::PrometheusText);
    let parsed = Exposition::parse(&text);
    (text, parsed)
}

#[test]
fn matches_node_exporter() {
    let Some(exporter) = require_peer("prometheus-node-exporter", "prometheus-node-exporter") else { return };
    let port = free_port();
    let mut command = Command::new(exporter);
    command
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.disable-exporter-metrics")
        .arg("--collector.disable-defaults")
        .args(COLLECTORS.map(|c| format!("--collector.{c}")))
        // Debian's 1.5.0 defaults differ from upstream's (and so Sightline's); give both the same.
        .arg(format!("--collector.filesystem.mount-points-exclude={DEFAULT_MOUNT_POINTS_EXCLUDE}"))
        .arg(format!("--collector.filesystem.fs-types-exclude={DEFAULT_FS_TYPES_EXCLUDE}"))
        .arg(format!("--collector.diskstats.device-exclude={DEFAULT_DISK_DEVICES_EXCLUDE}"))
        .arg("--collector.netdev.device-exclude=");
    let _node_exporter = ChildGuard::spawn_quiet(command).expect("start prometheus-node-exporter");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(wait_for_port(addr, Duration::from_secs(20)), "node_exporter did not open {addr}");
    // A first scrape, so that the comparison scrape does not pay for node_exporter's start-up.
    http_get(addr, "/metrics", &[]).expect("first scrape");

    let config = HostConfig::default();
    let (_, before) = collect(&config);
    let response = http_get(addr, "/metrics", &[]).expect("scrape node_exporter");
    let (text, after) = collect(&config);
    assert_eq!(response.status, 200, "{}", response.body);
    let node = Exposition::parse(&response.body);

    let mut diff = Diff::default();

    // Every node_* family of ours is node_exporter's, with its type and help text.
    let ours: Vec<&String> = after.kind.keys().filter(|n| n.starts_with("node_")).collect();
    assert!(ours.len() >= 30, "only {} node_* families: {ours:?}", ours.len());
    for name in ours {
        diff.check(node.kind.get(name) == after.kind.get(name), || {
            format!(
                "{name}: TYPE node_exporter {:?}, sightline {:?}",
                node.kind.get(name),
                after.kind.get(name)
            )
        });
        diff.check(node.help.get(name) == after.help.get(name), || {
            format!(
                "{name}: HELP node_exporter {:?}, sightline {:?}",
                node.help.get(name),
                after.help.get(name)
            )
        });
    }

    // Sizes, totals and label sets that do not change within a second.
    for name in [
        "node_memory_MemTotal_bytes",
        "node_memory_SwapTotal_bytes",
        "node_boot_time_seconds",
        "node_uname_info",
        "node_filesystem_size_bytes",
        "node_filesystem_files",
        "node_filesystem_readonly",
        "node_filesystem_device_error",
        "node_filefd_maximum",
    ] {
        diff.exact(name, &node, &after);
    }
    for name in [
        "node_cpu_seconds_total",
        "node_disk_read_bytes_total",
        "node_network_receive_bytes_total",
        "node_filesystem_avail_bytes",
    ] {
        diff.same_series(name, &node, &after);
    }
    let cpus = node
        .family("node_cpu_seconds_total")
        .keys()
        .filter_map(|l| l.get("cpu").cloned())
        .collect::<BTreeSet<_>>();
    diff.check(!cpus.is_empty() && after.family("node_cpu_seconds_total").len() == cpus.len() * 8, || {
        format!("node_cpu_seconds_total: not 8 modes for each of the CPUs {cpus:?}")
    });

    // Things sampled a few milliseconds apart: within what changes between Sightline's two collections,
    // plus some slack.
    for name in ["node_cpu_seconds_total", "node_cpu_guest_seconds_total"] {
        diff.bracket(name, &node, &before, &after, |_| 2.0);
    }
    diff.bracket("node_context_switches_total", &node, &before, &after, |_| 1000.0);
    diff.bracket("node_forks_total", &node, &before, &after, |_| 10.0);
    diff.bracket("node_procs_running", &node, &before, &after, |_| 16.0);
    diff.bracket("node_procs_blocked", &node, &before, &after, |_| 16.0);
    diff.bracket("node_filefd_allocated", &node, &before, &after, |_| 512.0);
    for name in ["node_load1", "node_load5", "node_load15"] {
        diff.bracket(name, &node, &before, &after, |_| 0.5);
    }
    diff.bracket("node_time_seconds", &node, &before, &after, |_| 5.0);
    for name in [
        "node_memory_MemFree_bytes",
        "node_memory_MemAvailable_bytes",
        "node_memory_Buffers_bytes",
        "node_memory_Cached_bytes",
        "node_memory_SwapFree_bytes",
    ] {
        diff.bracket(name, &node, &before, &after, |v| (v * 0.05).max(16.0 * MIB));
    }
    for name in [
        "node_disk_read_bytes_total",
        "node_disk_written_bytes_total",
        "node_network_receive_bytes_total",
        "node_network_transmit_bytes_total",
    ] {
        diff.bracket(name, &node, &before, &after, |_| 8.0 * MIB);
    }
    diff.bracket("node_disk_io_time_seconds_total", &node, &before, &after, |_| 1.0);
    for name in ["node_network_receive_errs_total", "node_network_transmit_errs_total"] {
        diff.bracket(name, &node, &before, &after, |_| 0.0);
    }
    // Other builds write to these filesystems while the test runs.
    for name in ["node_filesystem_free_bytes", "node_filesystem_avail_bytes"] {
        diff.bracket(name, &node, &before, &after, |_| 256.0 * MIB);
    }
    diff.bracket("node_filesystem_files_free", &node, &before, &after, |_| 10_000.0);

    // The derived ratios agree with node_exporter's numbers.
    let total = node.scalar("node_memory_MemTotal_bytes").unwrap_or(f64::NAN);
    let available = node.scalar("node_memory_MemAvailable_bytes").unwrap_or(f64::NAN);
    let used = after.scalar("sightline_host_memory_used_ratio").unwrap_or(f64::NAN);
    diff.check((used - (1.0 - available / total)).abs() < 0.05, || {
        format!(
            "sightline_host_memory_used_ratio {used}, node_exporter's numbers give {}",
            1.0 - available / total
        )
    });
    for (series, size) in node.family("node_filesystem_size_bytes") {
        let free = node.family("node_filesystem_free_bytes")[&series];
        let avail = node.family("node_filesystem_avail_bytes")[&series];
        let mountpoint = labels(&[("mountpoint", &series["mountpoint"])]);
        let ratio = after.family("sightline_host_filesystem_used_ratio").get(&mountpoint).copied();
        let expected = (size - free) / (size - free + avail);
        diff.check(
            ratio.is_some_and(|r| (r - expected).abs() < 0.01) || (size == 0.0 && ratio.is_none()),
            || {
                format!(
                    "sightline_host_filesystem_used_ratio{}: {ratio:?}, df says {expected}",
                    show(&mountpoint)
                )
            },
        );
    }

    let report = format!(
        "{} checks against node_exporter; {} mismatches:\n  {}\n\nsightline's exposition:\n{text}",
        diff.compared,
        diff.problems.len(),
        diff.problems.join("\n  ")
    );
    assert!(diff.problems.is_empty(), "{report}");
    eprintln!("{} checks against node_exporter passed", diff.compared);
}

#[test]
fn promtool_finds_nothing_but_node_exporters_own_camel_case() {
    let Some(promtool) = require_peer("promtool", "prometheus") else { return };
    let registry = Registry::new();
    let mut collector = HostCollector::new(&registry, HostConfig::default());
    collector.collect().expect("first collection");
    std::thread::sleep(Duration::from_millis(50));
    collector.collect().expect("second collection, with the CPU ratios");
    let body = render(&registry.snapshot(), Format::PrometheusText);
    assert!(body.contains("sightline_host_cpu_mode_ratio"), "{body}");

    let problems = sightline_testkit::promtool_check_metrics(&promtool, &body);
    assert!(problems.is_empty(), "promtool said:\n{}\nfor:\n{body}", problems.join("\n"));
}
