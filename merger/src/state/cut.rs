//! Cutting the state into the tables of one snapshot, and forgetting what no later snapshot
//! can contain.

use scope_schemas::Node;
use scope_schemas::report::keys;

use super::host::Host;
use super::node::{node_f64, node_i32, node_i64};
use super::{
    ContainerRow, HostRow, KubernetesObjectRow, LocalNetworkRow, ProcessRow, SocketRow, State,
};
use crate::window::Window;

/// The rows of one snapshot, sorted, ready to become Arrow batches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotTables {
    pub snapshot_time_us: i64,
    pub window_us: i64,
    pub hosts: Vec<HostRow>,
    pub processes: Vec<ProcessRow>,
    pub containers: Vec<ContainerRow>,
    pub kubernetes_objects: Vec<KubernetesObjectRow>,
    pub sockets: Vec<SocketRow>,
    pub local_networks: Vec<LocalNetworkRow>,
    /// Open sockets dropped by this cut because no message confirmed them for too long.
    pub expired_sockets: u64,
}

impl State {
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
        out.kubernetes_objects.sort_by(|a, b| {
            (&a.cluster_id, &a.kind, &a.uid).cmp(&(&b.cluster_id, &b.kind, &b.uid))
        });
        out.containers
            .sort_by(|a, b| (&a.host_id, &a.container_id).cmp(&(&b.host_id, &b.container_id)));
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

/// The `containers` row of a container node; `None` (logged) without a container id.
fn container_row(host_id: &str, node: &Node, last_seen_us: i64) -> Option<ContainerRow> {
    let Some(container_id) = node.latest(keys::CONTAINER_ID) else {
        tracing::debug!(
            host_id,
            node_id = node.id,
            "container node without an id, left out"
        );
        return None;
    };
    let text = |key: &str| node.latest(key).map(str::to_owned);
    let set = |key: &str| node.sets.get(key).cloned().unwrap_or_default();
    Some(ContainerRow {
        host_id: host_id.to_owned(),
        container_id: container_id.to_owned(),
        runtime: text(keys::CONTAINER_RUNTIME).unwrap_or_default(),
        name: text(keys::CONTAINER_NAME),
        image_name: text(keys::IMAGE_NAME),
        image_id: text(keys::IMAGE_ID),
        state: text(keys::CONTAINER_STATE).unwrap_or_else(|| "running".to_owned()),
        hostname: text(keys::CONTAINER_HOSTNAME),
        pod_name: text(keys::POD_NAME),
        pod_namespace: text(keys::POD_NAMESPACE),
        pod_uid: text(keys::POD_UID),
        labels: key_values(&set(keys::LABELS)),
        ips: set(keys::CONTAINER_IPS),
        ports: set(keys::CONTAINER_PORTS),
        cpu_usage_percent: node_f64(node, keys::CPU_USAGE_PERCENT),
        memory_usage_bytes: node_i64(node, keys::MEMORY_USAGE_BYTES),
        last_seen_us,
    })
}

/// The `kubernetes_objects` row of a Kubernetes node; `None` (logged) without a uid.
fn kubernetes_row(host_id: &str, node: &Node, last_seen_us: i64) -> Option<KubernetesObjectRow> {
    let Some(uid) = node.latest(keys::UID) else {
        tracing::debug!(
            host_id,
            node_id = node.id,
            "Kubernetes node without a uid, left out"
        );
        return None;
    };
    let text = |key: &str| node.latest(key).map(str::to_owned);
    let set = |key: &str| node.sets.get(key).cloned().unwrap_or_default();
    let cluster_id = text(keys::CLUSTER_ID).unwrap_or_else(|| {
        host_id
            .strip_prefix("cluster:")
            .unwrap_or(host_id)
            .to_owned()
    });
    Some(KubernetesObjectRow {
        cluster_id,
        kind: node.topology.clone(),
        uid: uid.to_owned(),
        namespace: text(keys::KUBE_NAMESPACE),
        name: text(keys::KUBE_NAME),
        owner_kind: text(keys::OWNER_KIND),
        owner_uid: text(keys::OWNER_UID),
        owner_name: text(keys::OWNER_NAME),
        node_name: text(keys::NODE_NAME),
        host_ip: text(keys::HOST_IP),
        pod_ip: text(keys::POD_IP),
        cluster_ip: text(keys::CLUSTER_IP),
        state: text(keys::KUBE_STATE),
        created_at: text(keys::CREATED_AT),
        labels: key_values(&set(keys::LABELS)),
        selector: key_values(&set(keys::SELECTOR)),
        ports: set(keys::PORTS),
        container_ids: set(keys::CONTAINER_IDS),
        last_seen_us,
    })
}

/// `key=value` entries as sorted pairs, one per key (a map has no duplicates); entries without `=`
/// are left out.
fn key_values(entries: &[String]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = entries
        .iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    pairs.sort();
    pairs.dedup_by(|a, b| a.0 == b.0);
    pairs
}

/// The `hosts`, `processes`, `containers` and `local_networks` rows of one host in the window.
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
                        container_id: node.latest(keys::CONTAINER_ID).map(str::to_owned),
                    });
                }
                keys::CONTAINER if reporter.last_seen_us >= window_start => {
                    if let Some(row) = container_row(host_id, node, reporter.last_seen_us) {
                        out.containers.push(row);
                    }
                }
                topology
                    if reporter.last_seen_us >= window_start
                        && keys::KUBERNETES_TOPOLOGIES.contains(&topology) =>
                {
                    if let Some(row) = kubernetes_row(host_id, node, reporter.last_seen_us) {
                        out.kubernetes_objects.push(row);
                    }
                }
                _ => {}
            }
        }
    }
    // A cluster collector names no machine: its host id carries Kubernetes objects only.
    if host_node.is_none() && host.reporters.keys().all(|r| r == keys::KUBERNETES) {
        return;
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
    if let Some(node) = host_node
        && let Some(cidrs) = node.sets.get(keys::LOCAL_NETWORKS)
    {
        let host_local = node.sets.get(keys::HOST_LOCAL_NETWORKS);
        out.local_networks
            .extend(cidrs.iter().map(|cidr| LocalNetworkRow {
                host_id: host_id.to_owned(),
                cidr: cidr.clone(),
                host_local: host_local.is_some_and(|set| set.contains(cidr)),
            }));
    }
}

#[cfg(test)]
mod tests {
    use scope_schemas::ConnectionEventKind;

    use super::*;
    use crate::state::fixtures::*;
    use crate::state::{Applied, Direction};

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
    fn containers_and_kubernetes_objects_become_rows_and_a_cluster_is_no_host() {
        let mut state = State::new();
        let mut container = Node::new(keys::CONTAINER, "c1;<container>")
            .with_latest(keys::CONTAINER_ID, "c1", T0)
            .with_latest(keys::CONTAINER_NAME, "web", T0)
            .with_latest(keys::CONTAINER_RUNTIME, "containerd", T0);
        container.sets.insert(
            keys::LABELS.into(),
            vec!["tier=front".into(), "app=web".into(), "no-equals".into()],
        );
        let mut process = Node::new(keys::PROCESS, "h1;7")
            .with_latest(keys::PID, 7, T0)
            .with_latest(keys::CONTAINER_ID, "c1", T0);
        process
            .parents
            .insert(keys::CONTAINER.into(), vec!["c1;<container>".into()]);
        state.apply_report(
            delta("h1", keys::CONTAINER, 1, true, T0, vec![container]),
            Some(T0),
        );
        state.apply_report(
            delta("h1", keys::PROCESS, 2, true, T0, vec![process]),
            Some(T0),
        );
        let mut service = Node::new(keys::SERVICE, "prod/u1;<service>")
            .with_latest(keys::UID, "u1", T0)
            .with_latest(keys::CLUSTER_ID, "prod", T0)
            .with_latest(keys::KUBE_NAME, "web", T0);
        service
            .sets
            .insert(keys::SELECTOR.into(), vec!["app=web".into()]);
        let nameless = Node::new(keys::POD, "prod/x;<pod>");
        state.apply_report(
            delta(
                "cluster:prod",
                keys::KUBERNETES,
                1,
                true,
                T0,
                vec![service, nameless],
            ),
            Some(T0),
        );

        let tables = state.cut(T0 + S, &window());
        let hosts: Vec<&str> = tables.hosts.iter().map(|h| h.host_id.as_str()).collect();
        assert_eq!(hosts, vec!["h1"], "a cluster collector reports no host");
        assert_eq!(tables.processes[0].container_id.as_deref(), Some("c1"));
        let c = &tables.containers[0];
        assert_eq!(
            (
                c.container_id.as_str(),
                c.runtime.as_str(),
                c.state.as_str()
            ),
            ("c1", "containerd", "running")
        );
        assert_eq!(
            c.labels,
            vec![
                ("app".to_owned(), "web".to_owned()),
                ("tier".to_owned(), "front".to_owned())
            ]
        );
        assert_eq!(
            tables.kubernetes_objects.len(),
            1,
            "a node without a uid is left out"
        );
        let k = &tables.kubernetes_objects[0];
        assert_eq!(
            (k.cluster_id.as_str(), k.kind.as_str(), k.name.as_deref()),
            ("prod", "service", Some("web"))
        );
        assert_eq!(k.selector, vec![("app".to_owned(), "web".to_owned())]);
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
        let cidrs: Vec<(&str, bool)> = tables
            .local_networks
            .iter()
            .map(|n| (n.cidr.as_str(), n.host_local))
            .collect();
        assert_eq!(
            cidrs,
            vec![
                ("10.0.0.1/24", false),
                ("172.17.0.1/16", true),
                ("fe80::1/64", false)
            ]
        );
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
    fn process_without_a_pid_is_left_out() {
        let mut state = State::new();
        let node = Node::new(keys::PROCESS, "h1;not-a-pid");
        state.apply_report(delta("h1", "process", 1, true, T0, vec![node]), None);
        let tables = state.cut(T0, &window());
        assert!(tables.processes.is_empty());
        assert_eq!(tables.hosts.len(), 1);
    }
}
