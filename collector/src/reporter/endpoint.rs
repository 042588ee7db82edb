//! The endpoint reporter: turns successive TCP tables into connection events.
//!
//! procfs only shows the connections that exist at the moment of a spy, so changes are found
//! by diffing consecutive spies: a new ESTABLISHED socket becomes a `connect` or `accept`
//! event stamped with the time it was first seen, one that disappeared becomes `close`.
//! Whether this host accepted or opened a connection is read off the listening sockets of
//! its network namespace: a connection whose local port has a listener (on that address or
//! on a wildcard address) was accepted.
//!
//! A connection waiting in a listener's accept queue is ESTABLISHED but held by no process
//! yet. Such a connection is held back for one spy so the event can name the process that
//! accepts it; if still nobody holds it then, it is announced without a pid.
//!
//! With the eBPF tracker, [`EndpointReporter::on_kernel_event`] applies each kernel event to the
//! same table, and a scan of /proc (at start-up and after lost events) is diffed against it
//! exactly like a procfs spy, which is what makes a resync correct. A scan that left connections
//! pending ([`EndpointReporter::has_pending`]) makes the next spy scan the tables again: no
//! kernel event may ever come for a connection the tracker did not see open (one held by no
//! process at start-up, in an accept queue or in flight between processes), so only a scan
//! can give it its owner or announce it without one.
//!
//! A connection this host opened to an address that conntrack translated (a DNAT'ed virtual
//! IP, like a Kubernetes service) is reported with the translated remote, the real backend, in
//! every event of its life, so the renderer can pair it with the backend's end.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
};

use scope_ebpf::{Event as KernelEvent, EventKind as KernelEventKind, Tracker};
use scope_schemas::{AddressFamily, ConnectionEvent, ConnectionEventKind, EventSource};

use crate::{
    conntrack::Conntrack,
    scan::Scan,
    tcp::{self, TcpSocket},
};

/// One side of a TCP connection as this host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnKey {
    pub netns: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// What is known about a connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Conn {
    pub kind: ConnectionEventKind,
    pub pid: Option<i32>,
    pub process_name: Option<String>,
    pub first_seen_us: i64,
    pub source: EventSource,
    /// The real remote when conntrack translated the connection's destination.
    pub nat_remote: Option<SocketAddr>,
}

/// The connection table one spy observed.
pub type Observed = BTreeMap<ConnKey, Conn>;

#[derive(Debug)]
pub struct EndpointReporter {
    host_id: String,
    /// Connections announced and not closed yet.
    open: BTreeMap<ConnKey, Conn>,
    /// Connections seen once without an owning process, not announced yet.
    pending: HashMap<ConnKey, Conn>,
    /// Whether a scan has filled the table. Before, it lacks connections that a previous run
    /// of the collector announced and that are still open, which a full report must not close.
    scanned: bool,
    nat: Option<Conntrack>,
    nat_translations: u64,
}

impl EndpointReporter {
    pub fn new(host_id: impl Into<String>) -> Self {
        EndpointReporter {
            host_id: host_id.into(),
            open: BTreeMap::new(),
            pending: HashMap::new(),
            scanned: false,
            nat: None,
            nat_translations: 0,
        }
    }

    /// Resolves the destinations of outgoing connections through `conntrack`.
    pub fn with_nat(mut self, conntrack: Conntrack) -> Self {
        self.nat = Some(conntrack);
        self
    }

    /// Whether a scan saw connections without an owner that are not announced yet: the next
    /// spy must read the connection tables again to resolve them.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Connections reported with a conntrack-translated remote so far.
    pub fn nat_translations(&self) -> u64 {
        self.nat_translations
    }

    /// Applies one event of the eBPF tracker; returns what it announces. Opens of a connection
    /// already known (from the start-up scan) and closes of unknown ones announce nothing.
    pub fn on_kernel_event(&mut self, event: &KernelEvent) -> Vec<ConnectionEvent> {
        let key = ConnKey {
            netns: event.netns,
            local: event.local,
            remote: event.remote,
        };
        let timestamp_us = Tracker::wall_clock_us(event.monotonic_ns);
        let kind = match event.kind {
            KernelEventKind::Connect => ConnectionEventKind::Connect,
            KernelEventKind::Accept => ConnectionEventKind::Accept,
            KernelEventKind::Close => {
                let mut events = Vec::new();
                let conn = match self.open.remove(&key) {
                    Some(conn) => conn,
                    // Seen by a scan without an owner and never announced: announce it now.
                    None => match self.pending.remove(&key) {
                        Some(conn) => {
                            let (open, conn) = self.announce(key, conn);
                            events.push(open);
                            conn
                        }
                        None => return events,
                    },
                };
                events.push(self.close_event(&key, &conn, timestamp_us));
                return events;
            }
        };
        if self.open.contains_key(&key) {
            return Vec::new();
        }
        let first_seen_us = self
            .pending
            .remove(&key)
            .map_or(timestamp_us, |seen| seen.first_seen_us);
        let conn = Conn {
            kind,
            pid: event.pid,
            process_name: event.comm.clone(),
            first_seen_us,
            source: EventSource::Ebpf,
            nat_remote: None,
        };
        let (open, conn) = self.announce(key, conn);
        let mut events = vec![open];
        if event.already_closed {
            events.push(self.close_event(&key, &conn, timestamp_us));
        } else {
            self.open.insert(key, conn);
        }
        events
    }

    /// The opening event of a connection about to be announced, NAT resolved.
    fn announce(&mut self, key: ConnKey, mut conn: Conn) -> (ConnectionEvent, Conn) {
        if conn.kind == ConnectionEventKind::Connect
            && let Some(nat) = self.nat.as_mut()
        {
            conn.nat_remote = nat.destination(key.netns, conn.pid, key.local, key.remote);
            self.nat_translations += u64::from(conn.nat_remote.is_some());
        }
        let event = self.event(&key, &conn, conn.kind, conn.first_seen_us, false);
        (event, conn)
    }

    /// Diffs `now` against the previous table. Closes come first, then new connections.
    pub fn apply(&mut self, now: Observed, timestamp_us: i64) -> Vec<ConnectionEvent> {
        self.scanned = true;
        let mut events = Vec::new();
        let closed: Vec<ConnKey> = self
            .open
            .keys()
            .filter(|k| !now.contains_key(k))
            .copied()
            .collect();
        for key in closed {
            if let Some(conn) = self.open.remove(&key) {
                events.push(self.close_event(&key, &conn, timestamp_us));
            }
        }
        // Opened and closed between two spies, never announced: announce both.
        let mut short_lived: Vec<(ConnKey, Conn)> = Vec::new();
        self.pending.retain(|key, conn| {
            let keep = now.contains_key(key);
            if !keep {
                short_lived.push((*key, conn.clone()));
            }
            keep
        });
        short_lived.sort_by_key(|(key, _)| *key);
        for (key, conn) in short_lived {
            let (open, conn) = self.announce(key, conn);
            events.push(open);
            events.push(self.close_event(&key, &conn, timestamp_us));
        }

        for (key, mut conn) in now {
            if self.open.contains_key(&key) {
                continue;
            }
            match self.pending.remove(&key) {
                Some(seen) => conn.first_seen_us = seen.first_seen_us,
                None if conn.pid.is_none() => {
                    conn.first_seen_us = timestamp_us;
                    self.pending.insert(key, conn);
                    continue;
                }
                None => conn.first_seen_us = timestamp_us,
            }
            let (open, conn) = self.announce(key, conn);
            events.push(open);
            self.open.insert(key, conn);
        }
        events
    }

    /// Every open connection again, flagged `refresh`, with its first-seen time: sent with
    /// each full report so a consumer that starts late learns the long-lived connections.
    /// Once a scan filled the table, the list ends with
    /// [`ConnectionEvent::full_report_end`] as of `taken_us`, so that mergers close the
    /// connections it leaves out, which closed while nobody watched (the collector was down).
    pub fn refresh(&self, taken_us: i64) -> Vec<ConnectionEvent> {
        let mut events: Vec<_> = self
            .open
            .iter()
            .map(|(key, conn)| self.event(key, conn, conn.kind, conn.first_seen_us, true))
            .collect();
        if self.scanned {
            events.push(ConnectionEvent::full_report_end(&self.host_id, taken_us));
        }
        events
    }

    fn close_event(&self, key: &ConnKey, conn: &Conn, timestamp_us: i64) -> ConnectionEvent {
        self.event(key, conn, ConnectionEventKind::Close, timestamp_us, false)
    }

    fn event(
        &self,
        key: &ConnKey,
        conn: &Conn,
        kind: ConnectionEventKind,
        timestamp_us: i64,
        refresh: bool,
    ) -> ConnectionEvent {
        let remote = conn.nat_remote.unwrap_or(key.remote);
        ConnectionEvent {
            host_id: self.host_id.clone(),
            kind,
            timestamp_us,
            refresh,
            netns: i64::try_from(key.netns).unwrap_or(i64::MAX),
            pid: conn.pid,
            process_name: conn.process_name.clone(),
            family: if key.local.is_ipv4() {
                AddressFamily::Ipv4
            } else {
                AddressFamily::Ipv6
            },
            local_addr: key.local.ip().to_string(),
            local_port: i32::from(key.local.port()),
            remote_addr: remote.ip().to_string(),
            remote_port: i32::from(remote.port()),
            source: conn.source,
        }
    }
}

/// The ESTABLISHED connections of a scan, classified and attributed to processes.
pub fn observe_scan(scan: &Scan) -> Observed {
    let mut observed = Observed::new();
    for (&netns, sockets) in &scan.tcp {
        let listeners: Vec<SocketAddr> = sockets
            .iter()
            .filter(|s| s.state == tcp::LISTEN)
            .map(|s| s.local)
            .collect();
        for socket in sockets.iter().filter(|s| s.state == tcp::ESTABLISHED) {
            let pid = owner(scan, socket);
            observed.insert(
                ConnKey {
                    netns,
                    local: socket.local,
                    remote: socket.remote,
                },
                Conn {
                    kind: classify(socket.local, &listeners),
                    pid,
                    process_name: pid
                        .and_then(|pid| scan.process_name(pid))
                        .map(str::to_owned),
                    first_seen_us: scan.timestamp_us,
                    source: EventSource::Procfs,
                    nat_remote: None,
                },
            );
        }
    }
    observed
}

fn owner(scan: &Scan, socket: &TcpSocket) -> Option<i32> {
    if socket.inode == 0 {
        return None;
    }
    scan.socket_owner.get(&socket.inode).copied()
}

/// `accept` when a socket of the same namespace listens on the connection's local port, on
/// its local address or on a wildcard address (`0.0.0.0`, `::`); otherwise `connect`.
pub fn classify(local: SocketAddr, listeners: &[SocketAddr]) -> ConnectionEventKind {
    let accepted = listeners.iter().any(|listener| {
        listener.port() == local.port()
            && (listener.ip().is_unspecified() || listener.ip() == local.ip())
    });
    if accepted {
        ConnectionEventKind::Accept
    } else {
        ConnectionEventKind::Connect
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectionEventKind::{Accept, Close, Connect};

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_accept_and_connect() {
        let listeners = [sa("127.0.0.1:8080"), sa("0.0.0.0:22"), sa("[::]:443")];
        // Accepted on the listener's exact address.
        assert_eq!(classify(sa("127.0.0.1:8080"), &listeners), Accept);
        // Same port, but the listener is bound to another address: this host connected.
        assert_eq!(classify(sa("10.0.0.5:8080"), &listeners), Connect);
        // Wildcard listeners match any local address, of either family.
        assert_eq!(classify(sa("10.0.0.5:22"), &listeners), Accept);
        assert_eq!(classify(sa("[fe80::1]:22"), &listeners), Accept);
        assert_eq!(classify(sa("192.168.1.2:443"), &listeners), Accept);
        // An ephemeral local port with no listener: an outgoing connection.
        assert_eq!(classify(sa("127.0.0.1:54690"), &listeners), Connect);
        assert_eq!(classify(sa("127.0.0.1:54690"), &[]), Connect);
    }

    fn conn(kind: ConnectionEventKind, pid: Option<i32>) -> Conn {
        Conn {
            kind,
            pid,
            process_name: pid.map(|p| format!("p{p}")),
            first_seen_us: 0,
            source: EventSource::Procfs,
            nat_remote: None,
        }
    }

    fn key(local: &str, remote: &str) -> ConnKey {
        ConnKey {
            netns: 7,
            local: sa(local),
            remote: sa(remote),
        }
    }

    fn kinds(events: &[ConnectionEvent]) -> Vec<(ConnectionEventKind, i32, i64)> {
        events
            .iter()
            .map(|e| (e.kind, e.local_port, e.timestamp_us))
            .collect()
    }

    #[test]
    fn diffs_spies_into_open_and_close_events() {
        let mut reporter = EndpointReporter::new("h1");
        let client = key("127.0.0.1:50000", "127.0.0.1:8080");
        let server = key("127.0.0.1:8080", "127.0.0.1:50000");
        let t1 = Observed::from([
            (client, conn(Connect, Some(10))),
            (server, conn(Accept, Some(20))),
        ]);

        let events = reporter.apply(t1.clone(), 1_000);
        assert_eq!(
            kinds(&events),
            [(Accept, 8080, 1_000), (Connect, 50000, 1_000)]
        );
        let e = &events[1];
        assert_eq!((e.pid, e.process_name.as_deref()), (Some(10), Some("p10")));
        assert_eq!(
            (e.host_id.as_str(), e.netns, e.family),
            ("h1", 7, AddressFamily::Ipv4)
        );
        assert_eq!(
            (e.local_addr.as_str(), e.remote_addr.as_str(), e.remote_port),
            ("127.0.0.1", "127.0.0.1", 8080)
        );
        assert!(!e.refresh);

        // Nothing changed: no events.
        assert!(reporter.apply(t1, 2_000).is_empty());

        // The client side vanished: one close, with the original owner.
        let t3 = Observed::from([(server, conn(Accept, Some(20)))]);
        let events = reporter.apply(t3, 3_000);
        assert_eq!(kinds(&events), [(Close, 50000, 3_000)]);
        assert_eq!(events[0].pid, Some(10));

        // Refresh re-announces what is open with its first-seen time, then ends the report.
        let refresh = reporter.refresh(3_500);
        assert_eq!(kinds(&refresh), [(Accept, 8080, 1_000), (Close, 0, 3_500)]);
        assert!(refresh.iter().all(|e| e.refresh));
        assert!(refresh[1].is_full_report_end());

        assert_eq!(
            kinds(&reporter.apply(Observed::new(), 4_000)),
            [(Close, 8080, 4_000)]
        );
        // Nothing open is news too: whatever a merger holds open of this host is closed.
        assert_eq!(kinds(&reporter.refresh(4_500)), [(Close, 0, 4_500)]);
    }

    #[test]
    fn waits_one_spy_for_the_accepting_process() {
        let mut reporter = EndpointReporter::new("h1");
        let server = key("[::1]:8080", "[::1]:50000");
        // In the accept queue: nobody holds it yet, so nothing is announced.
        assert!(
            reporter
                .apply(Observed::from([(server, conn(Accept, None))]), 1_000)
                .is_empty()
        );
        assert!(reporter.has_pending());
        // Accepted: announced with the pid, stamped with when it was first seen.
        let events = reporter.apply(Observed::from([(server, conn(Accept, Some(20)))]), 2_000);
        assert!(!reporter.has_pending());
        assert_eq!(kinds(&events), [(Accept, 8080, 1_000)]);
        assert_eq!(
            (events[0].pid, events[0].family),
            (Some(20), AddressFamily::Ipv6)
        );

        // Never accepted: announced without a pid on the second sighting.
        let other = key("[::1]:8080", "[::1]:50001");
        let both = Observed::from([
            (server, conn(Accept, Some(20))),
            (other, conn(Accept, None)),
        ]);
        assert!(reporter.apply(both.clone(), 3_000).is_empty());
        let events = reporter.apply(both, 4_000);
        assert_eq!(kinds(&events), [(Accept, 8080, 3_000)]);
        assert_eq!(events[0].pid, None);
    }

    fn kernel(kind: KernelEventKind, local: &str, remote: &str, pid: Option<i32>) -> KernelEvent {
        KernelEvent {
            kind,
            monotonic_ns: 0,
            netns: 7,
            pid,
            comm: pid.map(|p| format!("p{p}")),
            local: sa(local),
            remote: sa(remote),
            already_closed: false,
        }
    }

    #[test]
    fn kernel_events_open_and_close_connections() {
        let mut reporter = EndpointReporter::new("h1");
        let client = ("10.0.0.1:40000", "10.0.0.2:80");
        let events = reporter.on_kernel_event(&kernel(
            KernelEventKind::Connect,
            client.0,
            client.1,
            Some(10),
        ));
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.kind, e.pid, e.source),
            (Connect, Some(10), EventSource::Ebpf)
        );
        assert_eq!(e.process_name.as_deref(), Some("p10"));
        // A second open of the same connection (the start-up scan saw it too) is not news.
        assert!(
            reporter
                .on_kernel_event(&kernel(
                    KernelEventKind::Connect,
                    client.0,
                    client.1,
                    Some(10)
                ))
                .is_empty()
        );
        // The close names the process that opened it, though the kernel event has none.
        let events =
            reporter.on_kernel_event(&kernel(KernelEventKind::Close, client.0, client.1, None));
        assert_eq!(
            events.iter().map(|e| (e.kind, e.pid)).collect::<Vec<_>>(),
            [(Close, Some(10))]
        );
        // A close of a connection never seen open announces nothing.
        assert!(
            reporter
                .on_kernel_event(&kernel(KernelEventKind::Close, client.0, client.1, None))
                .is_empty()
        );

        // Reset while queued: the accept both opens and closes it.
        let mut reset = kernel(
            KernelEventKind::Accept,
            "10.0.0.2:80",
            "10.0.0.3:5000",
            Some(20),
        );
        reset.already_closed = true;
        let events = reporter.on_kernel_event(&reset);
        assert_eq!(
            events.iter().map(|e| (e.kind, e.pid)).collect::<Vec<_>>(),
            [(Accept, Some(20)), (Close, Some(20))]
        );
        // Until a scan filled the table, a full report does not claim to list everything open.
        assert!(reporter.refresh(1_000).is_empty());
    }

    #[test]
    fn a_resync_scan_closes_what_the_kernel_events_missed() {
        let mut reporter = EndpointReporter::new("h1");
        let lost_close = ("10.0.0.1:40000", "10.0.0.2:80");
        reporter.on_kernel_event(&kernel(
            KernelEventKind::Connect,
            lost_close.0,
            lost_close.1,
            Some(10),
        ));
        // The scan no longer sees it (its close event was lost) and sees one whose accept was
        // lost: the diff closes the first and announces the second.
        let missed = key("10.0.0.2:80", "10.0.0.9:6000");
        let events = reporter.apply(Observed::from([(missed, conn(Accept, Some(20)))]), 5_000);
        assert_eq!(kinds(&events), [(Close, 40000, 5_000), (Accept, 80, 5_000)]);
        assert_eq!(events[1].source, EventSource::Procfs);
    }

    #[test]
    fn announces_connections_that_closed_before_being_announced() {
        let mut reporter = EndpointReporter::new("h1");
        let c = key("10.0.0.1:40000", "10.0.0.2:80");
        assert!(
            reporter
                .apply(Observed::from([(c, conn(Connect, None))]), 1_000)
                .is_empty()
        );
        let events = reporter.apply(Observed::new(), 2_000);
        assert_eq!(
            kinds(&events),
            [(Connect, 40000, 1_000), (Close, 40000, 2_000)]
        );
        assert!(reporter.apply(Observed::new(), 3_000).is_empty());
    }
}
