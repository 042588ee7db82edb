//! The merged state of every host, and how each input message changes it.
//!
//! Pure: no Kafka, no clock, no files. The consumer loop feeds decoded messages in with the
//! Kafka timestamp they carried, and cuts a snapshot every tick; a benchmark or a test can do
//! the same without a broker. Application is idempotent, because a merger re-reads the recent
//! past of its partitions whenever it is assigned them:
//!
//! - a [`ReportDelta`] whose `seq` is not above the last applied one of its (host, reporter)
//!   changes nothing;
//! - a [`ConnectionEvent`] only moves a socket's times outwards (`first_seen` down, `last_seen`
//!   up), or closes or reopens it, so applying it twice is the same as once.
//!
//! ```
//! use scope_merger::state::{Applied, State};
//! use scope_merger::window::Window;
//! use scope_schemas::{AddressFamily, ConnectionEvent, ConnectionEventKind, EventSource};
//! use std::time::Duration;
//!
//! let t = 1_700_000_000_000_000; // µs since the epoch
//! let open = ConnectionEvent {
//!     host_id: "h1".into(), kind: ConnectionEventKind::Connect, timestamp_us: t - 5_000_000,
//!     refresh: false, netns: 4026531840, pid: Some(42), process_name: Some("curl".into()),
//!     family: AddressFamily::Ipv4, local_addr: "10.0.0.1".into(), local_port: 40000,
//!     remote_addr: "10.0.0.2".into(), remote_port: 80, source: EventSource::Procfs,
//! };
//! let mut state = State::new();
//! assert_eq!(state.apply_connection(open.clone(), Some(t - 5_000_000)), Applied::Changed);
//! // A replayed message changes nothing.
//! assert_eq!(state.apply_connection(open, Some(t - 5_000_000)), Applied::Duplicate);
//!
//! let window = Window::new(Duration::from_secs(15), Duration::from_secs(15));
//! let tables = state.cut(t, &window);
//! assert_eq!(tables.sockets.len(), 1);
//! assert_eq!(tables.sockets[0].state(), "open");
//! ```

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use scope_schemas::report::keys;
use scope_schemas::{
    AddressFamily, ConnectionEvent, ConnectionEventKind, EventSource, Node, ReportDelta, topics,
};

use crate::window::Window;

/// What applying one message did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The state changed.
    Changed,
    /// The message was already applied (a replay or a duplicate): nothing changed.
    Duplicate,
    /// The message refers to something the merger does not know, e.g. the close of a socket
    /// whose open it never saw. Nothing changed.
    Ignored,
}

/// The two input topics; a host's state from each can be dropped on its own when the
/// partition it came from is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    Connections,
    Reports,
}

impl Input {
    pub const ALL: [Input; 2] = [Input::Connections, Input::Reports];

    pub fn topic(self) -> &'static str {
        match self {
            Input::Connections => topics::CONNECTIONS,
            Input::Reports => topics::REPORTS,
        }
    }

    pub fn from_topic(topic: &str) -> Option<Input> {
        match topic {
            topics::CONNECTIONS => Some(Input::Connections),
            topics::REPORTS => Some(Input::Reports),
            _ => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Input::Connections => 0,
            Input::Reports => 1,
        }
    }
}

/// Which end of a TCP connection a socket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// This host connected (it is the client).
    Outbound,
    /// This host accepted (it is the server).
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Text of an [`AddressFamily`] in the `sockets` table.
pub fn family_str(family: AddressFamily) -> &'static str {
    match family {
        AddressFamily::Ipv4 => "ipv4",
        AddressFamily::Ipv6 => "ipv6",
    }
}

/// Identity of a socket within its host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SocketKey {
    pub netns: i64,
    pub family: AddressFamily,
    pub local_addr: String,
    pub local_port: i32,
    pub remote_addr: String,
    pub remote_port: i32,
}

#[derive(Clone, Debug)]
struct Socket {
    direction: Direction,
    pid: Option<i32>,
    process_name: Option<String>,
    first_seen_us: i64,
    last_seen_us: i64,
    closed_at_us: Option<i64>,
    /// When the previous connection on the same addresses closed, if this one reopened
    /// them: events up to then belong to that one, and are replays here.
    prev_closed_at_us: Option<i64>,
    source: EventSource,
}

#[derive(Debug, Default)]
struct Reporter {
    last_seq: Option<i64>,
    last_seen_us: i64,
    nodes: HashMap<String, Node>,
}

#[derive(Debug)]
struct Host {
    /// First and last report (any reporter), by the later of the report's and the Kafka
    /// message's timestamp. `i64::MAX` / `i64::MIN` until the host reports.
    first_seen_us: i64,
    last_seen_us: i64,
    reporters: HashMap<String, Reporter>,
    sockets: HashMap<SocketKey, Socket>,
    /// Earlier connections on the addresses of a socket that reopened them: closed, and
    /// connections of their own until they leave the window. A client that reuses its port
    /// as soon as the server closed first makes one every few hundred connections.
    predecessors: Vec<(SocketKey, Socket)>,
    /// Partition of each [`Input`] this host's messages last came from.
    partitions: [Option<i32>; 2],
}

impl Default for Host {
    fn default() -> Self {
        Host {
            first_seen_us: i64::MAX,
            last_seen_us: i64::MIN,
            reporters: HashMap::new(),
            sockets: HashMap::new(),
            predecessors: Vec::new(),
            partitions: [None; 2],
        }
    }
}

impl Host {
    fn reported(&self) -> bool {
        self.last_seen_us != i64::MIN
    }

    fn has_sockets(&self) -> bool {
        !self.sockets.is_empty() || !self.predecessors.is_empty()
    }

    fn forget_reports(&mut self) {
        self.reporters.clear();
        self.first_seen_us = i64::MAX;
        self.last_seen_us = i64::MIN;
    }
}

/// The merged state of every host this merger consumes.
#[derive(Debug, Default)]
pub struct State {
    hosts: HashMap<String, Host>,
}

/// One row of the `hosts` table, without `snapshot_time`.
#[derive(Clone, Debug, PartialEq)]
pub struct HostRow {
    pub host_id: String,
    pub host_name: Option<String>,
    pub os: Option<String>,
    pub kernel_version: Option<String>,
    pub uptime_seconds: Option<i64>,
    pub load1: Option<f64>,
    pub cpu_usage_percent: Option<f64>,
    pub memory_usage_bytes: Option<i64>,
    pub memory_total_bytes: Option<i64>,
    pub tracker_mode: Option<String>,
    pub last_seen_us: i64,
}

/// One row of the `processes` table, without `snapshot_time`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessRow {
    pub host_id: String,
    pub pid: i32,
    pub ppid: Option<i32>,
    pub name: Option<String>,
    pub cmdline: Option<String>,
    pub threads: Option<i32>,
    pub cpu_usage_percent: Option<f64>,
    pub memory_usage_bytes: Option<i64>,
    pub open_files_count: Option<i32>,
    pub last_seen_us: i64,
}

/// One row of the `sockets` table, without `snapshot_time`.
#[derive(Clone, Debug, PartialEq)]
pub struct SocketRow {
    pub host_id: String,
    pub key: SocketKey,
    pub pid: Option<i32>,
    pub process_name: Option<String>,
    pub direction: Direction,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    /// Set only when the socket was closed at or before the snapshot time.
    pub closed_at_us: Option<i64>,
    pub source: EventSource,
}

impl SocketRow {
    /// `open` or `closed`, at the snapshot time.
    pub fn state(&self) -> &'static str {
        if self.closed_at_us.is_some() {
            "closed"
        } else {
            "open"
        }
    }
}

/// One row of the `local_networks` table, without `snapshot_time`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNetworkRow {
    pub host_id: String,
    pub cidr: String,
}

/// The rows of one snapshot, sorted, ready to become Arrow batches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotTables {
    pub snapshot_time_us: i64,
    pub window_us: i64,
    pub hosts: Vec<HostRow>,
    pub processes: Vec<ProcessRow>,
    pub sockets: Vec<SocketRow>,
    pub local_networks: Vec<LocalNetworkRow>,
    /// Open sockets dropped by this cut because no message confirmed them for too long.
    pub expired_sockets: u64,
}

impl State {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of hosts with any state (reported, or with sockets).
    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    /// Number of sockets held, open or recently closed.
    pub fn socket_count(&self) -> usize {
        self.hosts
            .values()
            .map(|h| h.sockets.len() + h.predecessors.len())
            .sum()
    }

    /// Applies one connection event. `msg_ts_us` is the Kafka message timestamp (µs), which
    /// confirms an open socket as of when the collector published it (refreshes carry the
    /// first-seen time, so their own timestamp confirms nothing new).
    ///
    /// Rules, per socket `(netns, family, local, remote)` of the host:
    /// - connect/accept of an unknown socket opens it;
    /// - connect/accept of an open socket widens its `[first_seen, last_seen]`;
    /// - connect/accept of a closed socket with a time after the close is a new connection on
    ///   the same addresses (it reopens); otherwise it is a replay and ignored;
    /// - close of an open socket closes it; of a closed one, keeps the later close time; of
    ///   an unknown one is ignored (no direction or open time to report).
    ///
    /// A reopened socket remembers when its predecessor closed, so replayed events of the
    /// predecessor are recognised; the predecessor stays in the window as a closed connection
    /// of its own.
    pub fn apply_connection(&mut self, ev: ConnectionEvent, msg_ts_us: Option<i64>) -> Applied {
        self.apply_connection_inner(ev, msg_ts_us, None)
    }

    /// [`Self::apply_connection`] for a message read from `partition` of
    /// [`Input::Connections`], so that [`Self::revoke`] can drop it later.
    pub fn apply_connection_from(
        &mut self,
        partition: i32,
        ev: ConnectionEvent,
        msg_ts_us: Option<i64>,
    ) -> Applied {
        self.apply_connection_inner(ev, msg_ts_us, Some(partition))
    }

    fn apply_connection_inner(
        &mut self,
        ev: ConnectionEvent,
        msg_ts_us: Option<i64>,
        partition: Option<i32>,
    ) -> Applied {
        let ts = ev.timestamp_us;
        let seen = msg_ts_us.map_or(ts, |m| m.max(ts));
        let host = self.hosts.entry(ev.host_id).or_default();
        if partition.is_some() {
            host.partitions[Input::Connections.index()] = partition;
        }
        let key = SocketKey {
            netns: ev.netns,
            family: ev.family,
            local_addr: ev.local_addr,
            local_port: ev.local_port,
            remote_addr: ev.remote_addr,
            remote_port: ev.remote_port,
        };
        let direction = match ev.kind {
            ConnectionEventKind::Connect => Direction::Outbound,
            ConnectionEventKind::Accept => Direction::Inbound,
            ConnectionEventKind::Close => {
                let Some(s) = host.sockets.get_mut(&key) else {
                    return Applied::Ignored;
                };
                let replay = s.prev_closed_at_us.is_some_and(|prev| ts <= prev);
                return match s.closed_at_us {
                    _ if replay => Applied::Duplicate,
                    Some(closed) if ts <= closed => Applied::Duplicate,
                    _ => {
                        let closed = ts.max(s.first_seen_us);
                        s.closed_at_us = Some(closed);
                        s.last_seen_us = s.last_seen_us.max(closed);
                        Applied::Changed
                    }
                };
            }
        };
        let fresh = Socket {
            direction,
            pid: ev.pid,
            process_name: ev.process_name,
            first_seen_us: ts,
            last_seen_us: seen,
            closed_at_us: None,
            prev_closed_at_us: None,
            source: ev.source,
        };
        match host.sockets.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(fresh);
                Applied::Changed
            }
            Entry::Occupied(slot) => {
                let key = slot.key().clone();
                let s = slot.into_mut();
                match s.closed_at_us {
                    Some(closed) if ts > closed => {
                        let predecessor = std::mem::replace(
                            s,
                            Socket {
                                prev_closed_at_us: Some(closed),
                                ..fresh
                            },
                        );
                        host.predecessors.push((key, predecessor));
                        Applied::Changed
                    }
                    Some(_) => Applied::Duplicate,
                    None if s.prev_closed_at_us.is_some_and(|prev| ts <= prev) => {
                        Applied::Duplicate
                    }
                    None => {
                        let before = (s.first_seen_us, s.last_seen_us, s.direction, s.pid);
                        s.first_seen_us = s.first_seen_us.min(ts);
                        s.last_seen_us = s.last_seen_us.max(seen);
                        s.direction = direction;
                        s.source = fresh.source;
                        if fresh.pid.is_some() {
                            s.pid = fresh.pid;
                        }
                        let mut changed =
                            before != (s.first_seen_us, s.last_seen_us, s.direction, s.pid);
                        if fresh.process_name.is_some() && s.process_name != fresh.process_name {
                            s.process_name = fresh.process_name;
                            changed = true;
                        }
                        if changed {
                            Applied::Changed
                        } else {
                            Applied::Duplicate
                        }
                    }
                }
            }
        }
    }

    /// Applies one report delta. A `seq` not above the last applied one of the same (host,
    /// reporter) is a duplicate. A full delta replaces everything the reporter said before;
    /// otherwise removals are applied, then upserts replace whole nodes.
    pub fn apply_report(&mut self, delta: ReportDelta, msg_ts_us: Option<i64>) -> Applied {
        self.apply_report_inner(delta, msg_ts_us, None)
    }

    /// [`Self::apply_report`] for a message read from `partition` of [`Input::Reports`].
    pub fn apply_report_from(
        &mut self,
        partition: i32,
        delta: ReportDelta,
        msg_ts_us: Option<i64>,
    ) -> Applied {
        self.apply_report_inner(delta, msg_ts_us, Some(partition))
    }

    fn apply_report_inner(
        &mut self,
        delta: ReportDelta,
        msg_ts_us: Option<i64>,
        partition: Option<i32>,
    ) -> Applied {
        let seen = msg_ts_us.map_or(delta.timestamp_us, |m| m.max(delta.timestamp_us));
        let host = self.hosts.entry(delta.host_id).or_default();
        if partition.is_some() {
            host.partitions[Input::Reports.index()] = partition;
        }
        let reporter = host.reporters.entry(delta.reporter).or_default();
        if reporter.last_seq.is_some_and(|last| delta.seq <= last) {
            return Applied::Duplicate;
        }
        reporter.last_seq = Some(delta.seq);
        reporter.last_seen_us = reporter.last_seen_us.max(seen);
        if delta.full {
            reporter.nodes.clear();
        } else {
            for id in &delta.removals {
                reporter.nodes.remove(id);
            }
        }
        for node in delta.upserts {
            match reporter.nodes.get_mut(&node.id) {
                Some(old) => *old = node,
                None => {
                    reporter.nodes.insert(node.id.clone(), node);
                }
            }
        }
        host.first_seen_us = host.first_seen_us.min(seen);
        host.last_seen_us = host.last_seen_us.max(seen);
        Applied::Changed
    }

    /// Drops what came from `partition` of `input`: the partition was revoked and another
    /// merger now owns those hosts. Returns how many hosts lost state.
    pub fn revoke(&mut self, input: Input, partition: i32) -> usize {
        let mut affected = 0;
        self.hosts.retain(|_, host| {
            if host.partitions[input.index()] != Some(partition) {
                return true;
            }
            affected += 1;
            host.partitions[input.index()] = None;
            match input {
                Input::Connections => {
                    host.sockets.clear();
                    host.predecessors.clear();
                }
                Input::Reports => host.forget_reports(),
            }
            host.reported() || host.has_sockets()
        });
        affected
    }

    /// Cuts the snapshot at `t_us` (the end of the window) and forgets what no later
    /// snapshot can contain: sockets closed before the window, open sockets unconfirmed for
    /// longer than [`Window::expire_after_us`], and hosts silent for as long with no sockets.
    ///
    /// Hosts belong to the snapshot when they reported within the window; their processes
    /// and local networks come with them. Sockets belong to it when they were open at some
    /// moment of the window, whether or not their host's reports are in it.
    pub fn cut(&mut self, t_us: i64, window: &Window) -> SnapshotTables {
        let mut out = SnapshotTables {
            snapshot_time_us: t_us,
            window_us: window.length_us,
            ..Default::default()
        };
        let start = window.start(t_us);
        let mut expired = 0u64;
        self.hosts.retain(|_, host| {
            host.sockets.retain(|_, s| match s.closed_at_us {
                Some(closed) => closed >= start,
                None if window.is_expired(t_us, s.last_seen_us) => {
                    expired += 1;
                    false
                }
                None => true,
            });
            host.predecessors
                .retain(|(_, s)| s.closed_at_us.is_some_and(|closed| closed >= start));
            host.has_sockets() || !window.is_expired(t_us, host.last_seen_us)
        });
        out.expired_sockets = expired;

        for (host_id, host) in &self.hosts {
            if host.reported() && window.contains_host(t_us, host.first_seen_us, host.last_seen_us)
            {
                host_rows(host_id, host, start, &mut out);
            }
            let predecessors = host.predecessors.iter().map(|(key, s)| (key, s));
            for (key, s) in host.sockets.iter().chain(predecessors) {
                if !window.contains_socket(t_us, s.first_seen_us, s.closed_at_us) {
                    continue;
                }
                out.sockets.push(SocketRow {
                    host_id: host_id.clone(),
                    key: key.clone(),
                    pid: s.pid,
                    process_name: s.process_name.clone(),
                    direction: s.direction,
                    first_seen_us: s.first_seen_us,
                    last_seen_us: s.last_seen_us,
                    closed_at_us: s.closed_at_us.filter(|closed| *closed <= t_us),
                    source: s.source,
                });
            }
        }
        out.hosts.sort_by(|a, b| a.host_id.cmp(&b.host_id));
        out.processes
            .sort_by(|a, b| (&a.host_id, a.pid).cmp(&(&b.host_id, b.pid)));
        out.sockets.sort_by(|a, b| {
            let ka = (
                &a.host_id,
                &a.key.local_addr,
                a.key.local_port,
                &a.key.remote_addr,
            );
            let kb = (
                &b.host_id,
                &b.key.local_addr,
                b.key.local_port,
                &b.key.remote_addr,
            );
            ka.cmp(&kb)
                .then(a.key.remote_port.cmp(&b.key.remote_port))
                .then(a.key.netns.cmp(&b.key.netns))
                .then(a.first_seen_us.cmp(&b.first_seen_us))
        });
        out.local_networks
            .sort_by(|a, b| (&a.host_id, &a.cidr).cmp(&(&b.host_id, &b.cidr)));
        out.local_networks.dedup();
        out
    }
}

/// The `hosts`, `processes` and `local_networks` rows of one host in the window.
fn host_rows(host_id: &str, host: &Host, window_start: i64, out: &mut SnapshotTables) {
    let mut host_node: Option<&Node> = None;
    for reporter in host.reporters.values() {
        for node in reporter.nodes.values() {
            match node.topology.as_str() {
                keys::HOST => {
                    // One host node is expected; prefer the most recently confirmed if several.
                    host_node = Some(node);
                }
                keys::PROCESS if reporter.last_seen_us >= window_start => {
                    let Some(pid) = node_i64(node, keys::PID)
                        .and_then(|p| i32::try_from(p).ok())
                        .or_else(|| node.id.rsplit_once(';').and_then(|(_, p)| p.parse().ok()))
                    else {
                        tracing::debug!(
                            host_id,
                            node_id = node.id,
                            "process node without a pid, left out"
                        );
                        continue;
                    };
                    out.processes.push(ProcessRow {
                        host_id: host_id.to_owned(),
                        pid,
                        ppid: node_i32(node, keys::PPID),
                        name: node.latest(keys::NAME).map(str::to_owned),
                        cmdline: node.latest(keys::CMDLINE).map(str::to_owned),
                        threads: node_i32(node, keys::THREADS),
                        cpu_usage_percent: node_f64(node, keys::CPU_USAGE_PERCENT),
                        memory_usage_bytes: node_i64(node, keys::MEMORY_USAGE_BYTES),
                        open_files_count: node_i32(node, keys::OPEN_FILES_COUNT),
                        last_seen_us: reporter.last_seen_us,
                    });
                }
                _ => {}
            }
        }
    }
    let text = |key: &str| host_node.and_then(|n| n.latest(key)).map(str::to_owned);
    out.hosts.push(HostRow {
        host_id: host_id.to_owned(),
        host_name: text(keys::HOST_NAME),
        os: text(keys::OS),
        kernel_version: text(keys::KERNEL_VERSION),
        uptime_seconds: host_node.and_then(|n| node_i64(n, keys::UPTIME_SECONDS)),
        load1: host_node.and_then(|n| node_f64(n, keys::LOAD1)),
        cpu_usage_percent: host_node.and_then(|n| node_f64(n, keys::CPU_USAGE_PERCENT)),
        memory_usage_bytes: host_node.and_then(|n| node_i64(n, keys::MEMORY_USAGE_BYTES)),
        memory_total_bytes: host_node.and_then(|n| node_i64(n, keys::MEMORY_TOTAL_BYTES)),
        tracker_mode: text(keys::TRACKER_MODE),
        last_seen_us: host.last_seen_us,
    });
    if let Some(cidrs) = host_node.and_then(|n| n.sets.get(keys::LOCAL_NETWORKS)) {
        out.local_networks
            .extend(cidrs.iter().map(|cidr| LocalNetworkRow {
                host_id: host_id.to_owned(),
                cidr: cidr.clone(),
            }));
    }
}

/// Why a decoded connection event cannot be applied, if it cannot: the checks a message
/// from the wire must pass before [`State::apply_connection`].
pub fn check_connection(ev: &ConnectionEvent) -> Result<(), &'static str> {
    if ev.host_id.is_empty() {
        return Err("empty host_id");
    }
    if ev.local_addr.is_empty() || ev.remote_addr.is_empty() {
        return Err("empty address");
    }
    if !(0..=65535).contains(&ev.local_port) || !(0..=65535).contains(&ev.remote_port) {
        return Err("port out of range");
    }
    Ok(())
}

/// Why a decoded report delta cannot be applied, if it cannot.
pub fn check_report(delta: &ReportDelta) -> Result<(), &'static str> {
    if delta.host_id.is_empty() {
        return Err("empty host_id");
    }
    if delta.reporter.is_empty() {
        return Err("empty reporter");
    }
    Ok(())
}

/// A number the collector may publish either as a metric or as a latest value.
fn node_f64(node: &Node, key: &str) -> Option<f64> {
    node.metric(key)
        .or_else(|| node.latest(key).and_then(|v| v.trim().parse().ok()))
        .filter(|v: &f64| v.is_finite())
}

fn node_i64(node: &Node, key: &str) -> Option<i64> {
    if let Some(v) = node.latest(key).and_then(|v| v.trim().parse::<i64>().ok()) {
        return Some(v);
    }
    // `as` saturates; the range check keeps absurd values out instead of clamping them.
    node_f64(node, key)
        .filter(|v| v.abs() < 9.0e18)
        .map(|v| v.round() as i64)
}

fn node_i32(node: &Node, key: &str) -> Option<i32> {
    node_i64(node, key).and_then(|v| i32::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use scope_schemas::report::{host_node_id, process_node_id};
    use scope_schemas::{Metric, Node};

    use super::*;

    const S: i64 = 1_000_000;
    const T0: i64 = 1_700_000_000 * S;

    fn window() -> Window {
        Window::new(Duration::from_secs(15), Duration::from_secs(15))
    }

    fn event(kind: ConnectionEventKind, ts: i64, local_port: i32) -> ConnectionEvent {
        ConnectionEvent {
            host_id: "h1".into(),
            kind,
            timestamp_us: ts,
            refresh: false,
            netns: 1,
            pid: Some(42),
            process_name: Some("curl".into()),
            family: AddressFamily::Ipv4,
            local_addr: "10.0.0.1".into(),
            local_port,
            remote_addr: "10.0.0.2".into(),
            remote_port: 80,
            source: EventSource::Procfs,
        }
    }

    fn open(ts: i64) -> ConnectionEvent {
        event(ConnectionEventKind::Connect, ts, 40000)
    }

    fn close(ts: i64) -> ConnectionEvent {
        event(ConnectionEventKind::Close, ts, 40000)
    }

    fn refresh(first_seen: i64) -> ConnectionEvent {
        ConnectionEvent {
            refresh: true,
            ..open(first_seen)
        }
    }

    fn host_node(host: &str, ts: i64, load: f64) -> Node {
        let mut node = Node::new(keys::HOST, host_node_id(host))
            .with_latest(keys::HOST_NAME, host, ts)
            .with_latest(keys::OS, "Debian GNU/Linux 12", ts)
            .with_latest(keys::TRACKER_MODE, "procfs", ts);
        node.metrics
            .insert(keys::LOAD1.into(), Metric::single(ts, load));
        node.metrics
            .insert(keys::MEMORY_TOTAL_BYTES.into(), Metric::single(ts, 8e9));
        node.sets.insert(
            keys::LOCAL_NETWORKS.into(),
            vec!["10.0.0.1/24".into(), "fe80::1/64".into()],
        );
        node
    }

    fn process_node(host: &str, pid: i32, name: &str, ts: i64) -> Node {
        let mut node = Node::new(keys::PROCESS, process_node_id(host, pid))
            .with_latest(keys::PID, pid, ts)
            .with_latest(keys::PPID, 1, ts)
            .with_latest(keys::NAME, name, ts)
            .with_latest(keys::THREADS, 3, ts);
        node.metrics
            .insert(keys::MEMORY_USAGE_BYTES.into(), Metric::single(ts, 1024.0));
        node.metrics
            .insert(keys::OPEN_FILES_COUNT.into(), Metric::single(ts, 7.0));
        node
    }

    fn delta(
        host: &str,
        reporter: &str,
        seq: i64,
        full: bool,
        ts: i64,
        upserts: Vec<Node>,
    ) -> ReportDelta {
        ReportDelta {
            host_id: host.into(),
            reporter: reporter.into(),
            seq,
            full,
            timestamp_us: ts,
            upserts,
            removals: vec![],
        }
    }

    fn sockets_summary(tables: &SnapshotTables) -> Vec<(i32, &'static str, i64, Option<i64>)> {
        tables
            .sockets
            .iter()
            .map(|s| (s.key.local_port, s.state(), s.first_seen_us, s.closed_at_us))
            .collect()
    }

    #[test]
    fn replayed_connection_events_never_double_count() {
        let events = [
            open(T0),
            event(ConnectionEventKind::Accept, T0 + S, 8080),
            refresh(T0),
            close(T0 + 2 * S),
            open(T0 + 3 * S), // same addresses, a new connection
        ];
        let mut once = State::new();
        for (i, ev) in events.iter().enumerate() {
            once.apply_connection(ev.clone(), Some(T0 + i as i64 * S));
        }
        let expected = once.cut(T0 + 5 * S, &window());

        let mut twice = State::new();
        for (i, ev) in events.iter().enumerate() {
            twice.apply_connection(ev.clone(), Some(T0 + i as i64 * S));
        }
        // The whole stream again, as after a rewind, and every message once more on its own.
        for (i, ev) in events.iter().enumerate() {
            let outcome = twice.apply_connection(ev.clone(), Some(T0 + i as i64 * S));
            assert_ne!(
                outcome,
                Applied::Changed,
                "replay of message {i} changed the state"
            );
        }
        assert_eq!(twice.cut(T0 + 5 * S, &window()), expected);
        assert_eq!(
            sockets_summary(&expected),
            vec![
                (8080, "open", T0 + S, None),
                (40000, "closed", T0, Some(T0 + 2 * S)),
                (40000, "open", T0 + 3 * S, None)
            ]
        );
    }

    #[test]
    fn replayed_report_deltas_never_double_count() {
        let mut state = State::new();
        let d1 = delta(
            "h1",
            "process",
            10,
            true,
            T0,
            vec![process_node("h1", 1, "init", T0)],
        );
        let mut d2 = delta(
            "h1",
            "process",
            11,
            false,
            T0 + S,
            vec![process_node("h1", 2, "sshd", T0 + S)],
        );
        d2.removals.push(process_node_id("h1", 1));
        assert_eq!(state.apply_report(d1.clone(), None), Applied::Changed);
        assert_eq!(state.apply_report(d2.clone(), None), Applied::Changed);
        // Replaying the full delta must not bring pid 1 back.
        assert_eq!(state.apply_report(d1, None), Applied::Duplicate);
        assert_eq!(state.apply_report(d2, None), Applied::Duplicate);
        let tables = state.cut(T0 + 2 * S, &window());
        let pids: Vec<i32> = tables.processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![2]);
    }

    #[test]
    fn connection_opened_and_closed_inside_the_window_is_closed_then_gone() {
        let mut state = State::new();
        state.apply_connection(open(T0), Some(T0));
        state.apply_connection(close(T0 + 2 * S), Some(T0 + 2 * S));
        let w = window();

        let at = T0 + 5 * S;
        let tables = state.cut(at, &w);
        assert_eq!(
            sockets_summary(&tables),
            vec![(40000, "closed", T0, Some(T0 + 2 * S))]
        );
        let row = &tables.sockets[0];
        assert_eq!(
            (row.direction, row.pid, row.process_name.as_deref()),
            (Direction::Outbound, Some(42), Some("curl"))
        );

        // Still in the window that ends exactly W after the close.
        assert_eq!(state.cut(T0 + 2 * S + w.length_us, &w).sockets.len(), 1);
        // Gone after it, and dropped from the state.
        assert!(
            state
                .cut(T0 + 2 * S + w.length_us + 1, &w)
                .sockets
                .is_empty()
        );
        assert_eq!(state.socket_count(), 0);
    }

    #[test]
    fn a_close_after_the_snapshot_time_shows_the_socket_open() {
        let mut state = State::new();
        state.apply_connection(open(T0), None);
        state.apply_connection(close(T0 + 10 * S), None);
        let tables = state.cut(T0 + 5 * S, &window());
        assert_eq!(sockets_summary(&tables), vec![(40000, "open", T0, None)]);
    }

    #[test]
    fn a_socket_opened_after_the_snapshot_time_waits_for_the_next() {
        let mut state = State::new();
        state.apply_connection(open(T0 + 2 * S), None);
        assert!(state.cut(T0 + S, &window()).sockets.is_empty());
        assert_eq!(state.cut(T0 + 2 * S, &window()).sockets.len(), 1);
    }

    #[test]
    fn close_of_an_unknown_socket_is_ignored() {
        let mut state = State::new();
        assert_eq!(state.apply_connection(close(T0), None), Applied::Ignored);
        assert!(state.cut(T0, &window()).sockets.is_empty());
        assert_eq!(
            state.host_count(),
            0,
            "an empty host is forgotten at the next cut"
        );
    }

    #[test]
    fn unrefreshed_open_sockets_expire() {
        let w = window();
        let mut state = State::new();
        state.apply_connection(open(T0), Some(T0));
        // Another socket that keeps being refreshed with full reports.
        state.apply_connection(event(ConnectionEventKind::Accept, T0, 22), Some(T0));
        let mut t = T0;
        while t < T0 + w.expire_after_us + 30 * S {
            t += 15 * S;
            let mut again = event(ConnectionEventKind::Accept, T0, 22);
            again.refresh = true;
            assert_eq!(
                state.apply_connection(again, Some(t)),
                Applied::Changed,
                "a refresh confirms"
            );
        }
        // Just before expiry the silent socket is still reported open.
        let tables = state.cut(T0 + w.expire_after_us, &w);
        assert_eq!(tables.sockets.len(), 2);
        assert_eq!(tables.expired_sockets, 0);
        let tables = state.cut(T0 + w.expire_after_us + 1, &w);
        assert_eq!(sockets_summary(&tables), vec![(22, "open", T0, None)]);
        assert_eq!(tables.expired_sockets, 1);
        assert_eq!(state.socket_count(), 1);
    }

    #[test]
    fn a_refresh_keeps_the_first_seen_time_and_moves_last_seen() {
        let mut state = State::new();
        state.apply_connection(open(T0), Some(T0));
        state.apply_connection(refresh(T0), Some(T0 + 20 * S));
        let tables = state.cut(T0 + 20 * S, &window());
        assert_eq!(
            (
                tables.sockets[0].first_seen_us,
                tables.sockets[0].last_seen_us
            ),
            (T0, T0 + 20 * S)
        );
        // A late joiner learns a connection from its refresh alone.
        let mut late = State::new();
        assert_eq!(
            late.apply_connection(refresh(T0), Some(T0 + 20 * S)),
            Applied::Changed
        );
        assert_eq!(late.cut(T0 + 20 * S, &window()).sockets, tables.sockets);
    }

    #[test]
    fn a_replayed_open_does_not_reopen_a_closed_socket() {
        let mut state = State::new();
        state.apply_connection(open(T0), Some(T0));
        state.apply_connection(close(T0 + S), Some(T0 + S));
        assert_eq!(
            state.apply_connection(refresh(T0), Some(T0)),
            Applied::Duplicate
        );
        assert_eq!(
            state.apply_connection(close(T0 + S), Some(T0 + S)),
            Applied::Duplicate
        );
        assert_eq!(
            sockets_summary(&state.cut(T0 + 2 * S, &window())),
            vec![(40000, "closed", T0, Some(T0 + S))]
        );
    }

    #[test]
    fn a_reused_port_is_a_new_connection_and_the_earlier_one_stays_in_the_window() {
        let w = window();
        let mut state = State::new();
        state.apply_connection(open(T0), Some(T0));
        state.apply_connection(close(T0 + S), Some(T0 + S));
        // The same four-tuple again, after the close: a second connection.
        assert_eq!(
            state.apply_connection(open(T0 + 2 * S), Some(T0 + 2 * S)),
            Applied::Changed
        );
        state.apply_connection(close(T0 + 3 * S), Some(T0 + 3 * S));
        // Replays of the first one change neither.
        assert_eq!(
            state.apply_connection(open(T0), Some(T0)),
            Applied::Duplicate
        );
        assert_eq!(
            state.apply_connection(close(T0 + S), Some(T0 + S)),
            Applied::Duplicate
        );
        assert_eq!(state.socket_count(), 2);
        assert_eq!(
            sockets_summary(&state.cut(T0 + 4 * S, &w)),
            vec![
                (40000, "closed", T0, Some(T0 + S)),
                (40000, "closed", T0 + 2 * S, Some(T0 + 3 * S)),
            ]
        );
        // Each leaves once its own close is before the window.
        let after_first = T0 + S + w.length_us + 1;
        assert_eq!(
            sockets_summary(&state.cut(after_first, &w)),
            vec![(40000, "closed", T0 + 2 * S, Some(T0 + 3 * S))]
        );
        assert_eq!(state.socket_count(), 1);
        // The state still knows the first one closed: its replayed open is not a third.
        assert_eq!(
            state.apply_connection(open(T0), Some(after_first)),
            Applied::Duplicate
        );
    }

    #[test]
    fn full_report_replaces_the_reporters_nodes() {
        let mut state = State::new();
        let nodes = vec![
            process_node("h1", 1, "init", T0),
            process_node("h1", 2, "sshd", T0),
        ];
        state.apply_report(delta("h1", "process", 1, false, T0, nodes), None);
        state.apply_report(
            delta("h1", "host", 1, true, T0, vec![host_node("h1", T0, 0.5)]),
            None,
        );
        let full = vec![process_node("h1", 3, "nginx", T0 + S)];
        state.apply_report(delta("h1", "process", 2, true, T0 + S, full), None);
        let tables = state.cut(T0 + 2 * S, &window());
        let pids: Vec<(i32, Option<&str>)> = tables
            .processes
            .iter()
            .map(|p| (p.pid, p.name.as_deref()))
            .collect();
        assert_eq!(pids, vec![(3, Some("nginx"))]);
        // The host reporter's nodes are untouched by the process reporter's full report.
        assert_eq!(tables.hosts.len(), 1);
        assert_eq!(tables.hosts[0].load1, Some(0.5));
    }

    #[test]
    fn delta_upserts_replace_nodes_and_removals_remove_them() {
        let mut state = State::new();
        let nodes = vec![
            process_node("h1", 1, "init", T0),
            process_node("h1", 2, "sshd", T0),
        ];
        state.apply_report(delta("h1", "process", 1, true, T0, nodes), None);
        let mut d = delta(
            "h1",
            "process",
            2,
            false,
            T0 + S,
            vec![process_node("h1", 2, "sshd-new", T0 + S)],
        );
        d.removals.push(process_node_id("h1", 1));
        state.apply_report(d, None);
        let tables = state.cut(T0 + 2 * S, &window());
        let row = &tables.processes[..];
        assert_eq!(row.len(), 1);
        assert_eq!(row[0].name.as_deref(), Some("sshd-new"));
        assert_eq!(
            (
                row[0].ppid,
                row[0].threads,
                row[0].memory_usage_bytes,
                row[0].open_files_count
            ),
            (Some(1), Some(3), Some(1024), Some(7))
        );
        assert_eq!(row[0].last_seen_us, T0 + S);
    }

    #[test]
    fn host_rows_carry_the_host_node_and_its_local_networks() {
        let mut state = State::new();
        state.apply_report(
            delta("h1", "host", 1, true, T0, vec![host_node("h1", T0, 1.5)]),
            Some(T0 + 100),
        );
        let tables = state.cut(T0 + S, &window());
        let host = &tables.hosts[0];
        assert_eq!(host.host_id, "h1");
        assert_eq!(host.host_name.as_deref(), Some("h1"));
        assert_eq!(host.os.as_deref(), Some("Debian GNU/Linux 12"));
        assert_eq!(host.tracker_mode.as_deref(), Some("procfs"));
        assert_eq!(host.memory_total_bytes, Some(8_000_000_000));
        assert_eq!(host.uptime_seconds, None);
        assert_eq!(
            host.last_seen_us,
            T0 + 100,
            "the later of report and message time"
        );
        let cidrs: Vec<&str> = tables
            .local_networks
            .iter()
            .map(|n| n.cidr.as_str())
            .collect();
        assert_eq!(cidrs, vec!["10.0.0.1/24", "fe80::1/64"]);
    }

    #[test]
    fn hosts_outside_the_window_are_excluded() {
        let w = window();
        let mut state = State::new();
        state.apply_report(
            delta("old", "host", 1, true, T0, vec![host_node("old", T0, 0.0)]),
            None,
        );
        state.apply_report(
            delta(
                "old",
                "process",
                1,
                true,
                T0,
                vec![process_node("old", 9, "x", T0)],
            ),
            None,
        );
        state.apply_report(
            delta(
                "new",
                "host",
                1,
                true,
                T0 + 20 * S,
                vec![host_node("new", T0, 0.0)],
            ),
            None,
        );
        let tables = state.cut(T0 + 20 * S, &w);
        let hosts: Vec<&str> = tables.hosts.iter().map(|h| h.host_id.as_str()).collect();
        assert_eq!(hosts, vec!["new"]);
        assert!(
            tables.processes.is_empty(),
            "processes of hosts out of the window are out too"
        );
        assert!(tables.local_networks.iter().all(|n| n.host_id == "new"));
        // A host reporting only after T is not in T's snapshot.
        assert!(
            state
                .cut(T0 + 19 * S, &w)
                .hosts
                .iter()
                .all(|h| h.host_id == "old")
        );
        // Silent for longer than the expiry: forgotten altogether.
        state.cut(T0 + w.expire_after_us + 1, &w);
        assert_eq!(state.host_count(), 1);
    }

    #[test]
    fn revoking_a_partition_drops_what_came_from_it() {
        let mut state = State::new();
        state.apply_connection_from(0, open(T0), None);
        let mut other = open(T0);
        other.host_id = "h2".into();
        state.apply_connection_from(1, other, None);
        state.apply_report_from(
            0,
            delta("h1", "host", 1, true, T0, vec![host_node("h1", T0, 0.0)]),
            None,
        );
        assert_eq!(state.revoke(Input::Connections, 0), 1);
        let tables = state.cut(T0 + S, &window());
        let sockets: Vec<&str> = tables.sockets.iter().map(|s| s.host_id.as_str()).collect();
        assert_eq!(sockets, vec!["h2"]);
        assert_eq!(
            tables.hosts.len(),
            1,
            "h1's reports came from another input"
        );
        assert_eq!(state.revoke(Input::Reports, 0), 1);
        assert_eq!(state.host_count(), 1);
        // After a revoke, a replay of the same messages is applied again.
        let again = delta("h1", "host", 1, true, T0, vec![host_node("h1", T0, 0.0)]);
        assert_eq!(state.apply_report_from(0, again, None), Applied::Changed);
    }

    #[test]
    fn invalid_messages_are_recognised() {
        assert!(check_connection(&open(T0)).is_ok());
        assert!(
            check_connection(&ConnectionEvent {
                host_id: String::new(),
                ..open(T0)
            })
            .is_err()
        );
        assert!(
            check_connection(&ConnectionEvent {
                local_port: 70000,
                ..open(T0)
            })
            .is_err()
        );
        assert!(
            check_connection(&ConnectionEvent {
                remote_addr: String::new(),
                ..open(T0)
            })
            .is_err()
        );
        assert!(check_report(&delta("h1", "host", 1, true, T0, vec![])).is_ok());
        assert!(check_report(&delta("", "host", 1, true, T0, vec![])).is_err());
        assert!(check_report(&delta("h1", "", 1, true, T0, vec![])).is_err());
    }

    #[test]
    fn process_without_a_pid_is_left_out() {
        let mut state = State::new();
        let node = Node::new(keys::PROCESS, "h1;not-a-pid");
        state.apply_report(delta("h1", "process", 1, true, T0, vec![node]), None);
        let tables = state.cut(T0, &window());
        assert!(tables.processes.is_empty());
        assert_eq!(tables.hosts.len(), 1);
    }
}
