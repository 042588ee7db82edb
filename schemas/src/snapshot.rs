//! [`Snapshot`] announcements (`avro/snapshot.avsc`) and the snapshot's table names.
//!
//! A snapshot is the merged state of the last window, cut by a merger, stored as one Parquet
//! file per table under `<data_dir>/<table>/` (named and written by `scope_store`), every row
//! stamped with `snapshot_time`.

use serde::{Deserialize, Serialize};

use crate::codec::avro_record;

/// See `avro/snapshot.avsc`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub snapshot_time_us: i64,
    pub window_us: i64,
    pub writer: String,
    pub data_dir: String,
    pub files: Vec<SnapshotFile>,
    pub inputs: Vec<SnapshotInput>,
}
avro_record!(Snapshot, "snapshot", released: [1, 2]);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub table: String,
    pub path: String,
    pub rows: i64,
}

/// The partitions of one input topic a writer owned, fully replayed, when it cut a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInput {
    pub topic: String,
    pub partition_count: i32,
    pub partitions: Vec<i32>,
}

/// SQL and storage names of the tables.
pub mod table {
    /// Written by the merger: one row per host.
    pub const HOSTS: &str = "hosts";
    /// Written by the merger: one row per process.
    pub const PROCESSES: &str = "processes";
    /// Written by the merger: one row per socket end seen by a host (a connection seen from
    /// both of its hosts has two rows here).
    pub const SOCKETS: &str = "sockets";
    /// Written by the merger: one row per container.
    pub const CONTAINERS: &str = "containers";
    /// Written by the merger: one row per Kubernetes object, from cluster collectors.
    pub const KUBERNETES_OBJECTS: &str = "kubernetes_objects";
    /// Written by the merger: one row per (host, CIDR).
    pub const LOCAL_NETWORKS: &str = "local_networks";
    /// Written by the renderer: one row per TCP connection, both ends joined.
    pub const CONNECTIONS: &str = "connections";
    /// Written by the renderer: nodes of every view.
    pub const GRAPH_NODES: &str = "graph_nodes";
    /// Written by the renderer: edges of every view.
    pub const GRAPH_EDGES: &str = "graph_edges";

    /// Tables a merger writes in each snapshot.
    pub const MERGED: [&str; 6] = [
        HOSTS,
        PROCESSES,
        CONTAINERS,
        KUBERNETES_OBJECTS,
        SOCKETS,
        LOCAL_NETWORKS,
    ];
    /// Tables the renderer writes for each snapshot.
    pub const RENDERED: [&str; 3] = [CONNECTIONS, GRAPH_NODES, GRAPH_EDGES];
    /// The column every table carries.
    pub const SNAPSHOT_TIME: &str = "snapshot_time";
}
