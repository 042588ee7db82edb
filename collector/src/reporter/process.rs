//! The process reporter: one Weave Scope `process` node per process of the host.
//!
//! CPU usage is a rate, so it needs two samples of the same process: the reporter keeps each
//! process's CPU time from the previous spy, keyed by pid and start time so that a reused pid
//! does not inherit a stranger's history.
//!
//! A process the eBPF tracker saw connect or accept may be gone before the next spy (a cron
//! job's `curl`), while its connection stays on the map for the window. Such a process keeps a
//! node with its pid and name for [`EXITED_TTL`] after its last connection, so the edge still
//! has both ends.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use scope_schemas::{
    Metric, Node,
    report::{container_node_id, host_node_id, keys, process_node_id},
};

use crate::scan::{ProcessSample, Scan, clock_ticks};

/// How long a process seen only through its connections stays on the map after its last
/// one: twice the merger's default window, which keeps closed connections that long.
pub const EXITED_TTL: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct ProcessReporter {
    host_id: String,
    ticks_per_second: f64,
    /// pid -> (start time, CPU ticks, when sampled).
    previous: HashMap<i32, (u64, u64, Instant)>,
    /// pid -> (name, last connection): processes the tracker saw connect or accept.
    connected: HashMap<i32, (String, Instant)>,
    nodes: Vec<Node>,
}

impl ProcessReporter {
    pub fn new(host_id: impl Into<String>) -> Self {
        ProcessReporter {
            host_id: host_id.into(),
            ticks_per_second: clock_ticks(),
            previous: HashMap::new(),
            connected: HashMap::new(),
            nodes: Vec::new(),
        }
    }

    /// Notes that process `pid`, named `name`, made or accepted a connection at `at`.
    pub fn connected(&mut self, pid: i32, name: &str, at: Instant) {
        match self.connected.get_mut(&pid) {
            Some((known, last)) if known == name => *last = at,
            _ => {
                self.connected.insert(pid, (name.to_owned(), at));
            }
        }
    }

    /// Feeds one spy; the nodes describe it until the next one.
    pub fn observe(&mut self, scan: &Scan) {
        let mut previous = HashMap::with_capacity(scan.processes.len());
        let host = host_node_id(&self.host_id);
        self.nodes = scan
            .processes
            .iter()
            .map(|p| {
                let cpu = match self.previous.get(&p.pid) {
                    Some(&(start, ticks, at)) if start == p.start_ticks => {
                        cpu_percent(ticks, p.cpu_ticks, self.ticks_per_second, scan.at - at)
                    }
                    _ => None,
                };
                previous.insert(p.pid, (p.start_ticks, p.cpu_ticks, scan.at));
                process_node(&self.host_id, &host, p, cpu, scan.timestamp_us)
            })
            .collect();
        self.connected
            .retain(|_, (_, last)| scan.at.saturating_duration_since(*last) < EXITED_TTL);
        let mut exited: Vec<(&i32, &String)> = self
            .connected
            .iter()
            .filter(|(pid, _)| !previous.contains_key(pid))
            .map(|(pid, (name, _))| (pid, name))
            .collect();
        exited.sort();
        for (&pid, name) in exited {
            let mut node = Node::new(keys::PROCESS, process_node_id(&self.host_id, pid))
                .with_latest(keys::PID, pid, scan.timestamp_us)
                .with_latest(keys::NAME, name, scan.timestamp_us);
            node.parents.insert(keys::HOST.into(), vec![host.clone()]);
            self.nodes.push(node);
        }
        self.previous = previous;
    }

    /// The nodes of the latest spy.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
}

/// CPU use over an interval, in percent of one CPU (above 100 for multi-threaded work).
pub fn cpu_percent(
    before_ticks: u64,
    after_ticks: u64,
    ticks_per_second: f64,
    elapsed: std::time::Duration,
) -> Option<f64> {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 || ticks_per_second <= 0.0 {
        return None;
    }
    let used = after_ticks.saturating_sub(before_ticks) as f64 / ticks_per_second;
    Some(100.0 * used / seconds)
}

fn process_node(
    host_id: &str,
    host_node: &str,
    p: &ProcessSample,
    cpu: Option<f64>,
    now_us: i64,
) -> Node {
    let mut node = Node::new(keys::PROCESS, process_node_id(host_id, p.pid))
        .with_latest(keys::PID, p.pid, now_us)
        .with_latest(keys::PPID, p.ppid, now_us)
        .with_latest(keys::NAME, &p.name, now_us)
        .with_latest(keys::THREADS, p.threads, now_us);
    if !p.cmdline.is_empty() {
        node = node.with_latest(keys::CMDLINE, &p.cmdline, now_us);
    }
    if let Some(cpu) = cpu {
        node.metrics
            .insert(keys::CPU_USAGE_PERCENT.into(), Metric::single(now_us, cpu));
    }
    node.metrics.insert(
        keys::MEMORY_USAGE_BYTES.into(),
        Metric::single(now_us, p.rss_bytes as f64),
    );
    if let Some(open) = p.open_files {
        node.metrics.insert(
            keys::OPEN_FILES_COUNT.into(),
            Metric::single(now_us, open as f64),
        );
    }
    node.parents
        .insert(keys::HOST.into(), vec![host_node.to_owned()]);
    if let Some(container) = &p.container {
        node = node.with_latest(keys::CONTAINER_ID, &container.id, now_us);
        node.parents.insert(
            keys::CONTAINER.into(),
            vec![container_node_id(&container.id)],
        );
    }
    node
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn cpu_percent_is_a_rate() {
        assert_eq!(
            cpu_percent(100, 150, 100.0, Duration::from_secs(1)),
            Some(50.0)
        );
        assert_eq!(
            cpu_percent(100, 500, 100.0, Duration::from_secs(2)),
            Some(200.0)
        );
        assert_eq!(
            cpu_percent(100, 50, 100.0, Duration::from_secs(1)),
            Some(0.0)
        );
        assert_eq!(cpu_percent(0, 1, 100.0, Duration::ZERO), None);
    }

    #[test]
    fn builds_process_nodes_with_cpu_from_the_previous_spy() {
        let mut reporter = ProcessReporter::new("h1");
        reporter.ticks_per_second = 100.0;
        let t0 = Instant::now();
        reporter.observe(&Scan::example(
            t0,
            vec![
                ProcessSample::example(42, 7, 100),
                ProcessSample::example(43, 7, 0),
            ],
        ));
        let node = &reporter.nodes()[0];
        assert_eq!(
            (node.topology.as_str(), node.id.as_str()),
            ("process", "h1;42")
        );
        assert_eq!(node.latest(keys::PID), Some("42"));
        assert_eq!(node.latest(keys::PPID), Some("1"));
        assert_eq!(node.latest(keys::NAME), Some("python3"));
        assert_eq!(node.latest(keys::CMDLINE), Some("python3 -m http.server"));
        assert_eq!(node.latest(keys::THREADS), Some("2"));
        assert_eq!(node.metric(keys::MEMORY_USAGE_BYTES), Some(4096.0));
        assert_eq!(node.metric(keys::OPEN_FILES_COUNT), Some(5.0));
        assert_eq!(node.parents[keys::HOST], ["h1;<host>"]);
        // One sample: no rate yet.
        assert_eq!(node.metric(keys::CPU_USAGE_PERCENT), None);

        // pid 43 was replaced by a new process with the same pid (other start time).
        let t1 = t0 + Duration::from_secs(1);
        reporter.observe(&Scan::example(
            t1,
            vec![
                ProcessSample::example(42, 7, 125),
                ProcessSample::example(43, 9, 50),
            ],
        ));
        assert_eq!(
            reporter.nodes()[0].metric(keys::CPU_USAGE_PERCENT),
            Some(25.0)
        );
        assert_eq!(reporter.nodes()[1].metric(keys::CPU_USAGE_PERCENT), None);
    }

    #[test]
    fn a_connected_process_outlives_its_exit_until_the_ttl() {
        let mut reporter = ProcessReporter::new("h1");
        let t0 = Instant::now();
        reporter.connected(42, "python3", t0);
        reporter.connected(77, "curl", t0);
        // 42 is still running: its real node. 77 exited: a node with its pid and name.
        reporter.observe(&Scan::example(t0, vec![ProcessSample::example(42, 7, 100)]));
        let ids: Vec<&str> = reporter.nodes().iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["h1;42", "h1;77"]);
        let exited = &reporter.nodes()[1];
        assert_eq!(exited.latest(keys::NAME), Some("curl"));
        assert_eq!(exited.latest(keys::PID), Some("77"));
        assert_eq!(exited.parents[keys::HOST], ["h1;<host>"]);

        reporter.observe(&Scan::example(
            t0 + EXITED_TTL,
            vec![ProcessSample::example(42, 7, 100)],
        ));
        let ids: Vec<&str> = reporter.nodes().iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["h1;42"]);
    }
}
