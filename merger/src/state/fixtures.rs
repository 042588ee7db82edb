//! Messages, nodes and a window shared by the tests of every part of the state.

use std::time::Duration;

use scope_schemas::report::{host_node_id, keys, process_node_id};
use scope_schemas::{
    AddressFamily, ConnectionEvent, ConnectionEventKind, EventSource, Metric, Node, ReportDelta,
};

use super::SnapshotTables;
use crate::window::Window;

pub(super) const S: i64 = 1_000_000;
pub(super) const T0: i64 = 1_700_000_000 * S;

pub(super) fn window() -> Window {
    Window::new(Duration::from_secs(15), Duration::from_secs(15))
}

pub(super) fn event(kind: ConnectionEventKind, ts: i64, local_port: i32) -> ConnectionEvent {
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

pub(super) fn open(ts: i64) -> ConnectionEvent {
    event(ConnectionEventKind::Connect, ts, 40000)
}

pub(super) fn close(ts: i64) -> ConnectionEvent {
    event(ConnectionEventKind::Close, ts, 40000)
}

pub(super) fn refresh(first_seen: i64) -> ConnectionEvent {
    ConnectionEvent {
        refresh: true,
        ..open(first_seen)
    }
}

pub(super) fn host_node(host: &str, ts: i64, load: f64) -> Node {
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
        vec![
            "10.0.0.1/24".into(),
            "172.17.0.1/16".into(),
            "fe80::1/64".into(),
        ],
    );
    node.sets.insert(
        keys::HOST_LOCAL_NETWORKS.into(),
        vec!["172.17.0.1/16".into()],
    );
    node
}

pub(super) fn process_node(host: &str, pid: i32, name: &str, ts: i64) -> Node {
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

pub(super) fn delta(
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

pub(super) fn sockets_summary(
    tables: &SnapshotTables,
) -> Vec<(i32, &'static str, i64, Option<i64>)> {
    tables
        .sockets
        .iter()
        .map(|s| (s.key.local_port, s.state(), s.first_seen_us, s.closed_at_us))
        .collect()
}
