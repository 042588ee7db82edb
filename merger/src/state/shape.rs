//! The shape of a cut: what its views draw, apart from the numbers that move at every report.
//!
//! At rest every collector still reports each second (CPU, memory, load, the last time each
//! socket was confirmed), so two consecutive cuts are never equal; but the nodes, edges,
//! names and labels they render are. The merger writes a cut whose shape is the previous
//! one's only once its metrics are `--idle-interval` old, instead of every tick.

use std::hash::{DefaultHasher, Hash, Hasher};

use super::SnapshotTables;

/// The pid of the kernel's thread creator, the parent of every kernel thread.
const KTHREADD: i32 = 2;

impl SnapshotTables {
    /// A digest of every row's identity, names, labels, relations and states: what decides
    /// which nodes and edges each view draws and what they are called. Left out are the
    /// numbers a collector samples (CPU, memory, load, uptime, threads, open files) and when
    /// a row was last confirmed. Cuts of the same shape render the same graph with other
    /// metrics; a socket opening, closing or leaving the window, a process starting or
    /// exiting, a renamed container changes it.
    pub fn shape(&self) -> u64 {
        let mut h = DefaultHasher::new();
        // The lengths keep rows of one table from passing for rows of the next.
        self.hosts.len().hash(&mut h);
        for r in &self.hosts {
            (&r.host_id, &r.host_name, &r.os, &r.kernel_version).hash(&mut h);
            r.tracker_mode.hash(&mut h);
        }
        self.processes.len().hash(&mut h);
        for r in &self.processes {
            (&r.host_id, r.pid, r.ppid, &r.cmdline, &r.container_id).hash(&mut h);
            // Kernel threads (kthreadd's children) rename themselves after the work they pick
            // up, several times a second (`kworker/1:0-events`, `kworker/1:0-mm_percpu_wq`):
            // their names move like metrics, and follow at the idle interval.
            if r.ppid != Some(KTHREADD) {
                r.name.hash(&mut h);
            }
        }
        self.containers.len().hash(&mut h);
        for r in &self.containers {
            (&r.host_id, &r.container_id, &r.runtime, &r.name).hash(&mut h);
            (&r.image_name, &r.image_id, &r.state, &r.hostname).hash(&mut h);
            (&r.pod_name, &r.pod_namespace, &r.pod_uid).hash(&mut h);
            (&r.labels, &r.ips, &r.ports).hash(&mut h);
        }
        self.kubernetes_objects.len().hash(&mut h);
        for r in &self.kubernetes_objects {
            (&r.cluster_id, &r.kind, &r.uid, &r.namespace, &r.name).hash(&mut h);
            (&r.owner_kind, &r.owner_uid, &r.owner_name, &r.node_name).hash(&mut h);
            (
                &r.host_ip,
                &r.pod_ip,
                &r.cluster_ip,
                &r.state,
                &r.created_at,
            )
                .hash(&mut h);
            (&r.labels, &r.selector, &r.ports, &r.container_ids).hash(&mut h);
        }
        self.sockets.len().hash(&mut h);
        for r in &self.sockets {
            (&r.host_id, &r.key, r.pid, &r.process_name, r.direction).hash(&mut h);
            (r.first_seen_us, r.closed_at_us, r.source).hash(&mut h);
        }
        self.local_networks.hash(&mut h);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use scope_schemas::ConnectionEventKind;
    use scope_schemas::report::keys;

    use super::super::State;
    use super::super::fixtures::{S, T0, delta, event, host_node, process_node, refresh, window};

    fn report(state: &mut State, seq: i64, ts: i64, load: f64, pids: &[i32]) {
        let mut nodes = vec![host_node("h1", ts, load)];
        nodes.extend(pids.iter().map(|&pid| process_node("h1", pid, "curl", ts)));
        state.apply_report(delta("h1", "host", seq, true, ts, nodes), Some(ts));
    }

    #[test]
    fn metrics_and_confirmations_leave_the_shape_as_it_was() {
        let mut state = State::new();
        report(&mut state, 1, T0, 0.5, &[42]);
        state.apply_connection(event(ConnectionEventKind::Connect, T0, 40000), Some(T0));
        let first = state.cut(T0 + S, &window());

        // A second later: another load, the socket confirmed again.
        report(&mut state, 2, T0 + S, 0.75, &[42]);
        state.apply_connection(refresh(T0 + S), Some(T0 + S));
        let second = state.cut(T0 + 2 * S, &window());
        assert_ne!(first.hosts, second.hosts, "the load moved");
        assert_ne!(
            first.sockets[0].last_seen_us,
            second.sockets[0].last_seen_us
        );
        assert_eq!(first.shape(), second.shape());

        // A kernel thread's new name does not; a process's does.
        let renamed = |state: &mut State, seq: i64, ppid: i32, name: &str| {
            let ts = T0 + S;
            let node = process_node("h1", 7, name, ts).with_latest(keys::PPID, ppid, ts);
            state.apply_report(delta("h1", "kernel", seq, true, ts, vec![node]), Some(ts));
            state.cut(T0 + 2 * S, &window()).shape()
        };
        let kworker = renamed(&mut state, 1, 2, "kworker/1:0-events");
        assert_eq!(
            renamed(&mut state, 2, 2, "kworker/1:0-mm_percpu_wq"),
            kworker
        );
        let user = renamed(&mut state, 3, 1, "sleep");
        assert_ne!(renamed(&mut state, 4, 1, "sleepy"), user);

        // A process starting changes it.
        report(&mut state, 3, T0 + 2 * S, 0.75, &[42, 43]);
        let started = state.cut(T0 + 3 * S, &window());
        assert_ne!(started.shape(), second.shape());

        // So do a new connection, and its close.
        let at = T0 + 3 * S;
        state.apply_connection(event(ConnectionEventKind::Connect, at, 40001), Some(at));
        let opened = state.cut(at + S, &window());
        assert_ne!(opened.shape(), started.shape());
        state.apply_connection(
            event(ConnectionEventKind::Close, at + S, 40001),
            Some(at + S),
        );
        let closed = state.cut(at + 2 * S, &window());
        assert_ne!(closed.shape(), opened.shape());
        // And leaving the window, with no message about it.
        report(&mut state, 4, at + 16 * S, 0.75, &[42, 43]);
        state.apply_connection(refresh(at + 16 * S), Some(at + 16 * S));
        let gone = state.cut(at + 17 * S, &window());
        assert_eq!(gone.sockets.len(), closed.sockets.len() - 1);
        assert_ne!(gone.shape(), closed.shape());
    }
}
