//! How the collector learns connections: the eBPF tracker when the kernel lets it load, procfs
//! polling otherwise.
//!
//! In eBPF mode the TCP tables and every process's descriptors are read once at start-up (the
//! connections that already exist) and after lost events (a resync); in between, connections
//! come only from kernel events. The process and host reporters still read `/proc`, once per
//! publish instead of every spy: no event carries CPU, memory or thread counts.

use scope_ebpf::Tracker;

use crate::{CollectorArgs, Error};

/// What the operator asked for (`--tracker`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackerChoice {
    /// eBPF when it loads, else procfs.
    Auto,
    /// eBPF or nothing: a collector that cannot load it exits with the reason.
    Ebpf,
    /// Poll /proc only.
    Procfs,
}

/// What the collector is using: the host node's `tracker_mode` and the
/// `scope_collector_tracker_mode` metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TrackerMode {
    Ebpf,
    Procfs,
}

impl TrackerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerMode::Ebpf => "ebpf",
            TrackerMode::Procfs => "procfs",
        }
    }
}

/// Loads the eBPF tracker unless procfs was chosen. With `auto`, a tracker that cannot load
/// is logged once, with the reason, and `None` means procfs.
pub(crate) fn start(args: &CollectorArgs) -> Result<Option<Tracker>, Error> {
    if args.tracker == TrackerChoice::Procfs {
        tracing::info!("connection tracker: procfs (--tracker procfs)");
        return Ok(None);
    }
    match Tracker::load(args.ebpf_ring_buffer_bytes) {
        Ok(tracker) => {
            tracing::info!(
                ring_buffer_bytes = args.ebpf_ring_buffer_bytes,
                "connection tracker: ebpf"
            );
            Ok(Some(tracker))
        }
        Err(error) if args.tracker == TrackerChoice::Auto => {
            tracing::warn!(
                "connection tracker: procfs, because the eBPF tracker could not start: {error}"
            );
            Ok(None)
        }
        Err(error) => Err(Error::Tracker(error)),
    }
}
