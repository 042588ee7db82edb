//! What the state holds per host between messages: each reporter's nodes, and the sockets
//! the host's connection events opened.

use std::collections::HashMap;

use scope_schemas::{EventSource, Node};

use super::{Direction, SocketKey};

#[derive(Clone, Debug)]
pub(super) struct Socket {
    pub(super) direction: Direction,
    pub(super) pid: Option<i32>,
    pub(super) process_name: Option<String>,
    pub(super) first_seen_us: i64,
    pub(super) last_seen_us: i64,
    pub(super) closed_at_us: Option<i64>,
    /// When the previous connection on the same addresses closed, if this one reopened
    /// them: events up to then belong to that one, and are replays here.
    pub(super) prev_closed_at_us: Option<i64>,
    pub(super) source: EventSource,
    /// Announced again by the host's full report under way: its end leaves this one open.
    pub(super) listed: bool,
    /// Closed by a full report that left it out, not by a close the host saw: an inference,
    /// which a later announcement of the same connection overrides.
    pub(super) closed_unseen: bool,
}

#[derive(Debug, Default)]
pub(super) struct Reporter {
    pub(super) last_seq: Option<i64>,
    pub(super) last_seen_us: i64,
    pub(super) nodes: HashMap<String, Node>,
}

#[derive(Debug)]
pub(super) struct Host {
    /// First and last report (any reporter), by the later of the report's and the Kafka
    /// message's timestamp. `i64::MAX` / `i64::MIN` until the host reports.
    pub(super) first_seen_us: i64,
    pub(super) last_seen_us: i64,
    pub(super) reporters: HashMap<String, Reporter>,
    pub(super) sockets: HashMap<SocketKey, Socket>,
    /// Earlier connections on the addresses of a socket that reopened them: closed, and
    /// connections of their own until they leave the window. A client that reuses its port
    /// as soon as the server closed first makes one every few hundred connections.
    pub(super) predecessors: Vec<(SocketKey, Socket)>,
    /// Partition of each [`Input`](super::Input) this host's messages last came from.
    pub(super) partitions: [Option<i32>; 2],
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
    pub(super) fn reported(&self) -> bool {
        self.last_seen_us != i64::MIN
    }

    pub(super) fn has_sockets(&self) -> bool {
        !self.sockets.is_empty() || !self.predecessors.is_empty()
    }

    pub(super) fn forget_reports(&mut self) {
        self.reporters.clear();
        self.first_seen_us = i64::MAX;
        self.last_seen_us = i64::MIN;
    }
}
