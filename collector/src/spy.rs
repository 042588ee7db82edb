//! The spy: the process and host reporters' state, advanced once per `--spy-interval` and
//! summarised once per `--publish-interval`, plus the connection table when a spy reads it.
//!
//! Reading /proc is blocking file I/O, so [`Spy::spy`] runs on a blocking thread and owns
//! everything it touches; the async loop in [`crate::run`] only moves it there and back. The
//! endpoint reporter stays in that loop, because kernel events update it between spies.

use std::{path::PathBuf, sync::Arc};

use scope_schemas::{ReportDelta, report::keys};

use crate::{
    delta::{DeltaTracker, FullSchedule, Sequence},
    reporter::{ContainerReporter, HostReporter, ProcessReporter, endpoint},
    scan::{self, Depth},
    stats::Stats,
    tracker::TrackerMode,
};

pub struct Spy {
    proc_root: PathBuf,
    stats: Arc<Stats>,
    processes: ProcessReporter,
    host: HostReporter,
    containers: ContainerReporter,
    host_deltas: DeltaTracker,
    process_deltas: DeltaTracker,
    container_deltas: DeltaTracker,
    schedule: FullSchedule,
    seq: Sequence,
}

/// What one publish sends.
pub struct Publish {
    pub deltas: Vec<ReportDelta>,
    /// A full report: open connections are re-announced with it.
    pub full: bool,
}

impl Spy {
    pub fn new(
        host_id: &str,
        hostname: &str,
        proc_root: PathBuf,
        containers: ContainerReporter,
        full_every: u32,
        tracker_mode: TrackerMode,
        stats: Arc<Stats>,
    ) -> Self {
        Spy {
            processes: ProcessReporter::new(host_id),
            host: HostReporter::new(host_id, hostname, &proc_root, tracker_mode),
            containers,
            host_deltas: DeltaTracker::new(host_id, keys::HOST),
            process_deltas: DeltaTracker::new(host_id, keys::PROCESS),
            container_deltas: DeltaTracker::new(host_id, keys::CONTAINER),
            schedule: FullSchedule::new(full_every),
            seq: Sequence::starting_at(scope_schemas::time::now_us()),
            proc_root,
            stats,
        }
    }

    /// Reads /proc once, to `depth`; with [`Depth::Connections`], returns the connection
    /// table it saw and when. A /proc that cannot be listed skips this spy (the previous state
    /// stands, `None`) instead of reporting everything gone.
    pub fn spy(&mut self, depth: Depth) -> Option<(endpoint::Observed, i64)> {
        let scan = match scan::scan(&self.proc_root, depth, &self.stats) {
            Ok(scan) => scan,
            Err(error) => {
                self.stats.proc_read_error();
                tracing::warn!(proc_root = %self.proc_root.display(), %error, "could not list /proc; skipped this spy");
                return None;
            }
        };
        self.processes.observe(&scan);
        self.containers.observe(&scan);
        self.host.observe(scan.timestamp_us, &self.stats);
        Stats::add(&self.stats.spies, 1);
        (depth == Depth::Connections).then(|| (endpoint::observe_scan(&scan), scan.timestamp_us))
    }

    /// Notes a process the tracker saw connect or accept, so it keeps a node for a while if
    /// it exits before the next spy.
    pub fn connected(&mut self, pid: i32, name: &str) {
        self.processes
            .connected(pid, name, std::time::Instant::now());
    }

    /// How connections are learnt from now on, for the host node.
    pub fn set_tracker_mode(&mut self, mode: TrackerMode) {
        self.host.set_tracker_mode(mode);
    }

    /// The deltas of the host and process reporters since the last publish (full every
    /// `full_every` publishes).
    pub fn publish(&mut self) -> Publish {
        let full = self.schedule.next_is_full();
        let now = scope_schemas::time::now_us();
        let deltas = vec![
            self.host_deltas
                .delta(self.host.nodes(), full, self.seq.next_seq(), now),
            self.process_deltas
                .delta(self.processes.nodes(), full, self.seq.next_seq(), now),
            self.container_deltas
                .delta(self.containers.nodes(), full, self.seq.next_seq(), now),
        ];
        Publish { deltas, full }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{TcpListener, TcpStream},
        time::{Duration, Instant},
    };

    use scope_schemas::{
        ConnectionEvent,
        ConnectionEventKind::{self, Accept, Close, Connect},
    };

    use super::*;
    use crate::reporter::EndpointReporter;

    /// Spies until `found` holds for the events seen so far, or fails after 10 s.
    fn spy_until(
        spy: &mut Spy,
        endpoints: &mut EndpointReporter,
        what: &str,
        found: impl Fn(&[ConnectionEvent]) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = Vec::new();
        while !found(&events) {
            assert!(Instant::now() < deadline, "no {what} in {events:#?}");
            let (observed, at) = spy.spy(Depth::Connections).unwrap();
            events.extend(endpoints.apply(observed, at));
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn has(
        events: &[ConnectionEvent],
        kind: ConnectionEventKind,
        local_port: u16,
        remote_port: u16,
    ) -> bool {
        let me = std::process::id() as i32;
        events.iter().any(|e| {
            e.kind == kind
                && e.pid == Some(me)
                && e.local_port == i32::from(local_port)
                && e.remote_port == i32::from(remote_port)
        })
    }

    #[test]
    fn sees_this_process_connect_accept_and_close() {
        let stats = Arc::new(Stats::default());
        let mut spy = Spy::new(
            "h1",
            "host",
            PathBuf::from("/proc"),
            ContainerReporter::new("h1", PathBuf::from("/sys/fs/cgroup"), Default::default()),
            2,
            TrackerMode::Procfs,
            stats.clone(),
        );
        let mut endpoints = EndpointReporter::new("h1");
        assert!(spy.spy(Depth::Processes).is_none());

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server_port = listener.local_addr().unwrap().port();
        let client = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
        let client_port = client.local_addr().unwrap().port();
        let (accepted, _) = listener.accept().unwrap();
        spy_until(&mut spy, &mut endpoints, "connect and accept", |events| {
            has(events, Connect, client_port, server_port)
                && has(events, Accept, server_port, client_port)
        });

        // A full publish; the next one is not full.
        let publish = spy.publish();
        assert!(publish.full && publish.deltas.iter().all(|d| d.full));
        assert_eq!(
            publish
                .deltas
                .iter()
                .map(|d| d.reporter.as_str())
                .collect::<Vec<_>>(),
            ["host", "process", "container"]
        );
        assert!(publish.deltas[0].seq < publish.deltas[1].seq);
        let refresh = endpoints.refresh(scope_schemas::time::now_us());
        assert!(has(&refresh, Connect, client_port, server_port));
        assert!(refresh.iter().all(|e| e.refresh));
        assert!(
            refresh
                .last()
                .is_some_and(ConnectionEvent::is_full_report_end)
        );
        let me = process_node_id_of_self();
        assert!(publish.deltas[1].upserts.iter().any(|n| n.id == me));
        let next = spy.publish();
        assert!(!next.full && next.deltas.iter().all(|d| !d.full));

        drop(client);
        drop(accepted);
        spy_until(&mut spy, &mut endpoints, "close", |events| {
            has(events, Close, client_port, server_port)
                && has(events, Close, server_port, client_port)
        });
        assert!(stats.spies.load(std::sync::atomic::Ordering::Relaxed) >= 3);
    }

    fn process_node_id_of_self() -> String {
        scope_schemas::report::process_node_id("h1", std::process::id() as i32)
    }
}
