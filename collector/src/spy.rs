//! The spy: the reporters' state, advanced once per `--spy-interval` and summarised once per
//! `--publish-interval`.
//!
//! Reading /proc is blocking file I/O, so [`Spy::spy`] runs on a blocking thread and owns
//! everything it touches; the async loop in [`crate::run`] only moves it there and back.

use std::{path::PathBuf, sync::Arc};

use scope_schemas::{ConnectionEvent, ReportDelta, report::keys};

use crate::{
    delta::{DeltaTracker, FullSchedule, Sequence},
    reporter::{EndpointReporter, HostReporter, ProcessReporter},
    scan,
    stats::Stats,
};

pub struct Spy {
    proc_root: PathBuf,
    stats: Arc<Stats>,
    endpoints: EndpointReporter,
    processes: ProcessReporter,
    host: HostReporter,
    host_deltas: DeltaTracker,
    process_deltas: DeltaTracker,
    schedule: FullSchedule,
    seq: Sequence,
}

/// What one publish sends.
pub struct Publish {
    pub deltas: Vec<ReportDelta>,
    /// Open connections re-announced with a full report; empty otherwise.
    pub refresh: Vec<ConnectionEvent>,
}

impl Spy {
    pub fn new(
        host_id: &str,
        hostname: &str,
        proc_root: PathBuf,
        full_every: u32,
        stats: Arc<Stats>,
    ) -> Self {
        Spy {
            endpoints: EndpointReporter::new(host_id),
            processes: ProcessReporter::new(host_id),
            host: HostReporter::new(host_id, hostname, &proc_root),
            host_deltas: DeltaTracker::new(host_id, keys::HOST),
            process_deltas: DeltaTracker::new(host_id, keys::PROCESS),
            schedule: FullSchedule::new(full_every),
            seq: Sequence::starting_at(crate::now_us()),
            proc_root,
            stats,
        }
    }

    /// Reads /proc once; returns the connection events it caused. A /proc that cannot be
    /// listed skips this spy (the previous state stands) instead of reporting everything gone.
    pub fn spy(&mut self) -> Vec<ConnectionEvent> {
        let scan = match scan::scan(&self.proc_root, &self.stats) {
            Ok(scan) => scan,
            Err(error) => {
                self.stats.proc_read_error();
                tracing::warn!(proc_root = %self.proc_root.display(), %error, "could not list /proc; skipped this spy");
                return Vec::new();
            }
        };
        let events = self.endpoints.observe(&scan);
        self.processes.observe(&scan);
        self.host.observe(scan.timestamp_us, &self.stats);
        Stats::add(&self.stats.spies, 1);
        events
    }

    /// The deltas of the host and process reporters since the last publish (full every
    /// `full_every` publishes, with a refresh of the open connections).
    pub fn publish(&mut self) -> Publish {
        let full = self.schedule.next_is_full();
        let now = crate::now_us();
        let deltas = vec![
            self.host_deltas.delta(self.host.nodes(), full, self.seq.next(), now),
            self.process_deltas.delta(self.processes.nodes(), full, self.seq.next(), now),
        ];
        let refresh = if full { self.endpoints.refresh() } else { Vec::new() };
        Publish { deltas, refresh }
    }
}
