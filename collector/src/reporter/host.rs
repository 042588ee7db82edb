//! The host reporter: the one Weave Scope `host` node of this machine.
//!
//! Everything comes from procfs under `--proc-root` (so a containerised collector reports the
//! host it has mounted), except the OS name, read from `os-release` beside that procfs first,
//! and the local networks, which `getifaddrs` gives for the collector's own network
//! namespace. Any file that cannot be read leaves its field out and is counted; the host
//! node is still reported.

use std::{
    fs,
    path::{Path, PathBuf},
};

use scope_schemas::{
    Metric, Node,
    report::{host_node_id, keys},
};

use crate::{interfaces, stats::Stats, tracker::TrackerMode};

#[derive(Debug)]
pub struct HostReporter {
    host_id: String,
    hostname: String,
    proc_root: PathBuf,
    tracker_mode: TrackerMode,
    /// (total, idle) jiffies of the previous `/proc/stat` sample.
    previous_cpu: Option<(u64, u64)>,
    node: Option<Node>,
}

impl HostReporter {
    pub fn new(
        host_id: impl Into<String>,
        hostname: impl Into<String>,
        proc_root: &Path,
        tracker_mode: TrackerMode,
    ) -> Self {
        HostReporter {
            host_id: host_id.into(),
            hostname: hostname.into(),
            proc_root: proc_root.to_owned(),
            tracker_mode,
            previous_cpu: None,
            node: None,
        }
    }

    /// Reported as `tracker_mode` from the next sample on.
    pub fn set_tracker_mode(&mut self, mode: TrackerMode) {
        self.tracker_mode = mode;
    }

    /// Samples the host.
    pub fn observe(&mut self, now_us: i64, stats: &Stats) {
        let read = |rest: &str| match fs::read_to_string(self.proc_root.join(rest)) {
            Ok(text) => Some(text),
            Err(error) => {
                stats.proc_read_error();
                tracing::debug!(file = rest, %error, "could not read a host file");
                None
            }
        };
        let mut node = Node::new(keys::HOST, host_node_id(&self.host_id))
            .with_latest(keys::HOST_NAME, &self.hostname, now_us)
            .with_latest(keys::TRACKER_MODE, self.tracker_mode.as_str(), now_us);
        if let Some(os) = os_name(&self.proc_root) {
            node = node.with_latest(keys::OS, os, now_us);
        }
        if let Some(release) = read("sys/kernel/osrelease") {
            let version = read("sys/kernel/version").unwrap_or_default();
            let kernel = format!("{} {}", release.trim(), version.trim());
            node = node.with_latest(keys::KERNEL_VERSION, kernel.trim(), now_us);
        }
        if let Some(uptime) = read("uptime").as_deref().and_then(parse_uptime) {
            node = node.with_latest(keys::UPTIME_SECONDS, uptime, now_us);
        }
        let mut metric = |key: &str, value: Option<f64>| {
            if let Some(value) = value {
                node.metrics
                    .insert(key.to_owned(), Metric::single(now_us, value));
            }
        };
        metric(
            keys::LOAD1,
            read("loadavg").as_deref().and_then(parse_load1),
        );
        if let Some((total, used)) = read("meminfo").as_deref().and_then(parse_meminfo) {
            metric(keys::MEMORY_TOTAL_BYTES, Some(total as f64));
            metric(keys::MEMORY_USAGE_BYTES, Some(used as f64));
        }
        if let Some(sample) = read("stat").as_deref().and_then(parse_cpu_line) {
            let percent = self
                .previous_cpu
                .and_then(|before| cpu_percent(before, sample));
            metric(keys::CPU_USAGE_PERCENT, percent);
            self.previous_cpu = Some(sample);
        }
        match interfaces::local_networks() {
            Ok(networks) => {
                node.sets.insert(keys::LOCAL_NETWORKS.into(), networks);
            }
            Err(error) => tracing::warn!(%error, "could not list interface addresses"),
        }
        self.node = Some(node);
    }

    pub fn nodes(&self) -> &[Node] {
        self.node.as_slice()
    }
}

/// `PRETTY_NAME` of the `os-release` beside `proc_root` (`/host/etc` for `/host/proc`), else
/// of this system.
fn os_name(proc_root: &Path) -> Option<String> {
    let mut candidates = Vec::new();
    if let Some(root) = proc_root.parent() {
        candidates.push(root.join("etc/os-release"));
    }
    candidates.push(PathBuf::from("/etc/os-release"));
    candidates.push(PathBuf::from("/usr/lib/os-release"));
    candidates
        .iter()
        .find_map(|path| fs::read_to_string(path).ok())
        .and_then(|text| pretty_name(&text))
}

pub(crate) fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.trim().strip_prefix("PRETTY_NAME=")?;
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// Whole seconds from `/proc/uptime` (`12345.67 23456.78`).
pub(crate) fn parse_uptime(text: &str) -> Option<u64> {
    let seconds: f64 = text.split_whitespace().next()?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds as u64)
}

pub(crate) fn parse_load1(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// (total, used) bytes from `/proc/meminfo`: used = MemTotal - MemAvailable.
pub(crate) fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let kib = |key: &str| {
        text.lines().find_map(|line| {
            line.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    let total = kib("MemTotal:")?;
    let available = kib("MemAvailable:")?;
    Some((total * 1024, total.saturating_sub(available) * 1024))
}

/// (total, idle) jiffies from the aggregate `cpu` line of `/proc/stat`. Guest time is
/// already inside user and nice, so only the first eight columns are summed; iowait counts
/// as idle.
pub(crate) fn parse_cpu_line(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if values.len() < 5 {
        return None;
    }
    Some((values.iter().sum(), values[3] + values[4]))
}

pub(crate) fn cpu_percent(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let total = after.0.checked_sub(before.0)?;
    let idle = after.1.checked_sub(before.1)?;
    if total == 0 {
        return None;
    }
    Some(100.0 * total.saturating_sub(idle) as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_files() {
        assert_eq!(
            pretty_name(
                "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
            ),
            Some("Debian GNU/Linux 12 (bookworm)".into())
        );
        assert_eq!(pretty_name("NAME=x\n"), None);
        assert_eq!(parse_uptime("1283.52 2400.10\n"), Some(1283));
        assert_eq!(parse_uptime("nan 1"), None);
        assert_eq!(parse_load1("0.52 0.58 0.59 1/189 4242\n"), Some(0.52));
        let meminfo =
            "MemTotal:       24576000 kB\nMemFree:        1000 kB\nMemAvailable:   20480000 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            Some((24576000 * 1024, 4096000 * 1024))
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n";
        assert_eq!(parse_cpu_line(stat), Some((1000, 850)));
        assert_eq!(parse_cpu_line("cpu0 1 2 3\n"), None);
        assert_eq!(cpu_percent((1000, 850), (1200, 950)), Some(50.0));
        assert_eq!(cpu_percent((1000, 850), (1000, 850)), None);
    }

    #[test]
    fn reports_this_host() {
        let stats = Stats::default();
        let mut reporter = HostReporter::new("h1", "myhost", Path::new("/proc"), TrackerMode::Ebpf);
        reporter.observe(1, &stats);
        reporter.observe(2, &stats);
        let node = &reporter.nodes()[0];
        assert_eq!(
            (node.topology.as_str(), node.id.as_str()),
            ("host", "h1;<host>")
        );
        assert_eq!(node.latest(keys::HOST_NAME), Some("myhost"));
        assert_eq!(node.latest(keys::TRACKER_MODE), Some("ebpf"));
        assert!(
            node.latest(keys::KERNEL_VERSION)
                .is_some_and(|k| !k.is_empty())
        );
        assert!(node.latest(keys::UPTIME_SECONDS).is_some());
        assert!(node.latest(keys::OS).is_some());
        assert!(
            node.metric(keys::MEMORY_TOTAL_BYTES)
                .is_some_and(|m| m > 0.0)
        );
        assert!(node.metric(keys::LOAD1).is_some());
        assert!(node.sets[keys::LOCAL_NETWORKS].contains(&"127.0.0.1/8".to_owned()));
        assert_eq!(
            stats
                .proc_read_errors
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}
