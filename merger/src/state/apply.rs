//! Applying input messages to the state, idempotently, and dropping what a revoked
//! partition brought.

use std::collections::hash_map::Entry;

use scope_schemas::{ConnectionEvent, ConnectionEventKind, ReportDelta};

use super::host::{Host, Socket};
use super::{Direction, Input, SocketKey, State};

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

impl State {
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
    ///   an unknown one is ignored (no direction or open time to report);
    /// - the end of a full report ([`ConnectionEvent::is_full_report_end`]) closes, as of when
    ///   the host took its table, every open socket of the host that the report did not
    ///   announce again and that no message confirmed since: it closed while nobody watched.
    ///   Confirmations after the report (sockets opened after it, when a replay brings the
    ///   report back) keep theirs open, so applying it again closes nothing new; and since
    ///   that close is an inference, a later announcement of the same connection (confirmed
    ///   after the close) reopens it.
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
        let full_report_end = ev.is_full_report_end();
        let host = self.hosts.entry(ev.host_id).or_default();
        if partition.is_some() {
            host.partitions[Input::Connections.index()] = partition;
        }
        if full_report_end {
            return end_full_report(host, ts);
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
                        s.close(ts);
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
            listed: ev.refresh,
            closed_unseen: false,
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
                    Some(closed) if s.closed_unseen && seen > closed => {
                        s.closed_at_us = None;
                        s.closed_unseen = false;
                        s.last_seen_us = seen;
                        s.listed = fresh.listed;
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
                        s.listed |= fresh.listed;
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
}

/// Ends a full report of `host` taken at `taken_us` (see [`State::apply_connection`]).
fn end_full_report(host: &mut Host, taken_us: i64) -> Applied {
    let mut applied = Applied::Duplicate;
    for s in host.sockets.values_mut() {
        let listed = std::mem::take(&mut s.listed);
        if !listed && s.closed_at_us.is_none() && s.last_seen_us < taken_us {
            s.close(taken_us);
            s.closed_unseen = true;
            applied = Applied::Changed;
        }
    }
    applied
}

impl Socket {
    /// Closes it at `at_us`, or when it opened if that is later; a close the host saw
    /// replaces one inferred.
    fn close(&mut self, at_us: i64) {
        let closed = at_us.max(self.first_seen_us);
        self.closed_at_us = Some(closed);
        self.last_seen_us = self.last_seen_us.max(closed);
        self.closed_unseen = false;
    }
}

#[cfg(test)]
mod tests {
    use scope_schemas::report::process_node_id;

    use super::*;
    use crate::state::fixtures::*;

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

    /// Connections on ports 40000 (stays open) and 40001 (closes while its collector is
    /// down), then the restarted collector's announcement of 40000 and full report at `t`.
    fn restart_with_one_closed_unseen(t: i64) -> Vec<(ConnectionEvent, i64)> {
        vec![
            (open(T0), T0),
            (event(ConnectionEventKind::Connect, T0, 40001), T0),
            (open(t - S), t - S),
            (refresh(T0), t),
            (ConnectionEvent::full_report_end("h1", t), t),
        ]
    }

    #[test]
    fn a_full_report_closes_the_connections_it_left_out_as_of_when_it_was_taken() {
        let t = T0 + 20 * S;
        let mut state = State::new();
        let stream = restart_with_one_closed_unseen(t);
        for (ev, msg_ts) in stream.clone() {
            state.apply_connection(ev, Some(msg_ts));
        }
        let expected = vec![(40000, "open", T0, None), (40001, "closed", T0, Some(t))];
        assert_eq!(sockets_summary(&state.cut(t + S, &window())), expected);

        // Opened after the report: a replay of the report leaves it open and closes nothing.
        state.apply_connection(
            event(ConnectionEventKind::Connect, t + S, 40002),
            Some(t + S),
        );
        for (i, (ev, msg_ts)) in stream.into_iter().enumerate() {
            let outcome = state.apply_connection(ev, Some(msg_ts));
            assert_ne!(
                outcome,
                Applied::Changed,
                "replay of message {i} changed the state"
            );
        }
        let mut with_later = expected;
        with_later.push((40002, "open", t + S, None));
        assert_eq!(
            sockets_summary(&state.cut(t + 2 * S, &window())),
            with_later
        );
    }

    #[test]
    fn a_full_report_keeps_what_was_confirmed_after_it_was_taken() {
        let t = T0 + 20 * S;
        let mut state = State::new();
        state.apply_connection(open(T0), Some(T0));
        // Announced after the table was taken (a kernel event queued meanwhile), but before
        // the report reached the broker.
        state.apply_connection(event(ConnectionEventKind::Accept, t - S, 8080), Some(t + 1));
        assert_eq!(
            state.apply_connection(ConnectionEvent::full_report_end("h1", t), Some(t + 2)),
            Applied::Changed
        );
        assert_eq!(
            sockets_summary(&state.cut(t + S, &window())),
            vec![(8080, "open", t - S, None), (40000, "closed", T0, Some(t))]
        );
        // A report that lists everything open closes nothing.
        state.apply_connection(refresh(t - S), Some(t + 15 * S));
        state.apply_connection(
            ConnectionEvent {
                refresh: true,
                ..event(ConnectionEventKind::Accept, t - S, 8080)
            },
            Some(t + 15 * S),
        );
        assert_eq!(
            state.apply_connection(
                ConnectionEvent::full_report_end("h1", t + 15 * S),
                Some(t + 15 * S)
            ),
            Applied::Duplicate
        );
    }

    #[test]
    fn a_connection_a_full_report_left_out_reopens_when_announced_again() {
        let t = T0 + 20 * S;
        let mut state = State::new();
        for (ev, msg_ts) in restart_with_one_closed_unseen(t) {
            state.apply_connection(ev, Some(msg_ts));
        }
        let late = event(ConnectionEventKind::Connect, T0, 40001);
        // Older than the report: a replay, which changes nothing.
        assert_eq!(
            state.apply_connection(late.clone(), Some(T0)),
            Applied::Duplicate
        );
        // Announced after it (it waited a scan for its owner): open after all, the same
        // connection as before.
        assert_eq!(
            state.apply_connection(late.clone(), Some(t + S)),
            Applied::Changed
        );
        assert_eq!(
            sockets_summary(&state.cut(t + 2 * S, &window())),
            vec![(40000, "open", T0, None), (40001, "open", T0, None)]
        );
        // A close the host saw is never undone that way.
        state.apply_connection(
            event(ConnectionEventKind::Close, t + 2 * S, 40001),
            Some(t + 2 * S),
        );
        assert_eq!(
            state.apply_connection(late, Some(t + 3 * S)),
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
}
