//! The merged state of every host, and how each input message changes it.
//!
//! Pure: no Kafka, no clock, no files. The consumer loop feeds decoded messages in with the
//! Kafka timestamp they carried, and cuts a snapshot every tick; a benchmark or a test can do
//! the same without a broker. Application is idempotent, because a merger re-reads the recent
//! past of its partitions whenever it is assigned them:
//!
//! - a [`ReportDelta`](scope_schemas::ReportDelta) whose `seq` is not above the last applied
//!   one of its (host, reporter) changes nothing;
//! - a [`ConnectionEvent`](scope_schemas::ConnectionEvent) only moves a socket's times
//!   outwards (`first_seen` down, `last_seen` up), or closes or reopens it, so applying it
//!   twice is the same as once;
//! - the end of a host's full report closes the open sockets it did not list that no message
//!   confirmed since it was taken, which leaves, when it is applied again, only sockets it
//!   closed already.
//!
//! # Layout
//! - `input`: [`Input`], the two input topics.
//! - `validate`: [`check_connection`] and [`check_report`], what a message from the wire must
//!   pass before it is applied.
//! - `apply`: [`State::apply_connection`], [`State::apply_report`] and [`State::revoke`], and
//!   what each did ([`Applied`]).
//! - `cut`: [`State::cut`] into [`SnapshotTables`].
//! - `rows`: the rows of those tables ([`HostRow`], [`ProcessRow`], [`ContainerRow`],
//!   [`KubernetesObjectRow`], [`SocketRow`], [`LocalNetworkRow`]) and the socket identity they carry ([`SocketKey`], [`Direction`]).
//! - `shape`: [`SnapshotTables::shape`], what the views draw of a cut, to tell a cut that
//!   only moved metrics from one that changed the graph.
//! - `host`: what is held per host between messages: its reporters' nodes and its sockets.
//! - `node`: the numbers of a report node, whichever way the collector published them.
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

mod apply;
mod cut;
#[cfg(test)]
mod fixtures;
mod host;
mod input;
mod node;
mod rows;
mod shape;
mod validate;

use std::collections::HashMap;

pub use apply::Applied;
pub use cut::SnapshotTables;
pub use input::Input;
pub use rows::{
    ContainerRow, Direction, HostRow, KubernetesObjectRow, LocalNetworkRow, ProcessRow, SocketKey,
    SocketRow, family_str,
};
pub use validate::{check_connection, check_report};

use host::Host;

/// The merged state of every host this merger consumes.
#[derive(Debug, Default)]
pub struct State {
    hosts: HashMap<String, Host>,
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
}
