//! The host reporter: the one Weave Scope `host` node of this machine.
//!
//! Everything comes from procfs under `--proc-root` (so a containerised collector reports the
//! host it has mounted), except the OS name, read from `os-release` beside that procfs first,
//! and the local networks, which `getifaddrs` gives for the collector's own network
//! namespace (with sysfs telling which of them stay inside the host, [`is_host_local`]). Any
//! file that cannot be read leaves its field out and is counted; the host node is still
//! reported.

use std::{
    collections::BTreeSet,
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
        match interfaces::interface_networks() {
            Ok(addresses) => {
                let sys_class_net = Path::new(SYS_CLASS_NET);
                let mut networks = BTreeSet::new();
                let mut host_local = BTreeSet::new();
                for (interface, cidr) in addresses {
                    if is_host_local(sys_class_net, &interface) {
                        host_local.insert(cidr.clone());
                    }
                    networks.insert(cidr);
                }
                node.sets
                    .insert(keys::LOCAL_NETWORKS.into(), networks.into_iter().collect());
                node.sets.insert(
                    keys::HOST_LOCAL_NETWORKS.into(),
                    host_local.into_iter().collect(),
                );
            }
            Err(error) => tracing::warn!(%error, "could not list interface addresses"),
        }
        self.node = Some(node);
    }

    pub fn nodes(&self) -> &[Node] {
        self.node.as_slice()
    }
}

/// The interfaces of the collector's network namespace: sysfs lists those of the namespace it
/// was mounted in, which `ip netns exec` and a host-network pod keep the same as getifaddrs'.
const SYS_CLASS_NET: &str = "/sys/class/net";

/// Whether the network on `interface` stays inside this host, so that the same range on
/// another host is another network and its addresses name a machine only with the host.
///
/// The rule: a Linux bridge (docker0, cni0, podman0, virbr0, a Compose network's `br-…`) all
/// of whose ports are virtual interfaces of this host (veth, tap: no `device`, no `DEVTYPE`).
/// Such a bridge switches only between this host's containers and VMs; anything beyond it is
/// reached through the host's routing or NAT, with the host's addresses. A bridge with a
/// physical port (a NIC, or a VLAN or bond of one: a hypervisor's `br0`) or a tunnel port
/// (vxlan, geneve, gretap: an overlay stretched across hosts) carries one network across
/// machines, and no other kind of interface is host-local. Weave Scope scoped Docker's bridge
/// only (`--probe.docker.bridge`), and nothing under Kubernetes, whose pod bridges are routed
/// between nodes; here the renderer scopes a connection end only when both its addresses are
/// inside one host-local network, so a routed pod bridge (a subnet of its own per node) still
/// pairs across nodes and every such bridge can be marked. Anything unreadable is not
/// host-local: unscoped is how every address was paired before.
pub(crate) fn is_host_local(sys_class_net: &Path, interface: &str) -> bool {
    let plain = |name: &str| !name.is_empty() && name != "." && name != ".." && !name.contains('/');
    if !plain(interface) || !sys_class_net.join(interface).join("bridge").is_dir() {
        return false;
    }
    let Ok(ports) = fs::read_dir(sys_class_net.join(interface).join("brif")) else {
        return false;
    };
    ports.into_iter().all(|port| {
        let Ok(port) = port else { return false };
        let Some(name) = port.file_name().to_str().map(str::to_owned) else {
            return false;
        };
        let dir = sys_class_net.join(&name);
        plain(&name)
            && !dir.join("device").exists()
            && fs::read_to_string(dir.join("uevent"))
                .is_ok_and(|uevent| !uevent.lines().any(|l| l.starts_with("DEVTYPE=")))
    })
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
    // Checked: sizes no machine has are a malformed file, not an overflow.
    let total = kib("MemTotal:")?.checked_mul(1024)?;
    let available = kib("MemAvailable:")?.saturating_mul(1024);
    Some((total, total.saturating_sub(available)))
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
    // Checked: counts that overflow a u64 are a malformed line, not a panic.
    let total = values.iter().try_fold(0u64, |sum, &v| sum.checked_add(v))?;
    Some((total, values[3].checked_add(values[4])?))
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
        // Values no kernel writes, which overflowed (a panic in debug builds).
        let max = u64::MAX;
        assert_eq!(parse_cpu_line(&format!("cpu  {max} 0 0 {max} 1\n")), None);
        assert_eq!(parse_cpu_line(&format!("cpu  0 0 0 {max} 1\n")), None);
        assert_eq!(
            parse_meminfo(&format!("MemTotal: {max} kB\nMemAvailable: 1 kB\n")),
            None
        );
        assert_eq!(cpu_percent((1000, 850), (1200, 950)), Some(50.0));
        assert_eq!(cpu_percent((1000, 850), (1000, 850)), None);
    }

    /// A sysfs tree as the kernel lays it out: `<if>/bridge/` on a bridge, `<if>/brif/<port>`
    /// per port, `device` on a physical interface, `DEVTYPE=` in `uevent` on a typed one.
    fn sysfs(interfaces: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (name, kind) in interfaces {
            let dir = root.path().join(name);
            fs::create_dir_all(&dir).unwrap();
            let devtype = match *kind {
                "bridge" | "vxlan" => format!("DEVTYPE={kind}\n"),
                _ => String::new(),
            };
            fs::write(dir.join("uevent"), format!("{devtype}INTERFACE={name}\n")).unwrap();
            if *kind == "bridge" {
                fs::create_dir_all(dir.join("bridge")).unwrap();
                fs::create_dir_all(dir.join("brif")).unwrap();
            }
            if *kind == "nic" {
                fs::create_dir_all(dir.join("device")).unwrap();
            }
        }
        root
    }

    fn attach(root: &Path, bridge: &str, port: &str) {
        fs::create_dir_all(root.join(bridge).join("brif").join(port)).unwrap();
    }

    #[test]
    fn bridges_of_this_hosts_veths_and_taps_only_are_host_local() {
        let root = sysfs(&[
            ("docker0", "bridge"),
            ("cni0", "bridge"),
            ("br0", "bridge"),
            ("overlay", "bridge"),
            ("vethA", "veth"),
            ("tap0", "tap"),
            ("eth0", "nic"),
            ("vx0", "vxlan"),
        ]);
        let root = root.path();
        attach(root, "cni0", "vethA");
        attach(root, "cni0", "tap0");
        attach(root, "br0", "eth0");
        attach(root, "overlay", "vx0");
        assert!(is_host_local(root, "docker0"), "a bridge with no port yet");
        assert!(is_host_local(root, "cni0"));
        assert!(!is_host_local(root, "br0"), "a physical port");
        assert!(!is_host_local(root, "overlay"), "a tunnel port");
        for interface in ["eth0", "vethA", "lo", "missing", "..", "a/b", ""] {
            assert!(!is_host_local(root, interface), "{interface}");
        }
        attach(root, "docker0", "gone");
        assert!(
            !is_host_local(root, "docker0"),
            "a port that cannot be read"
        );
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
        assert!(!node.sets[keys::HOST_LOCAL_NETWORKS].contains(&"127.0.0.1/8".to_owned()));
        assert_eq!(
            stats
                .proc_read_errors
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}
