//! [`Snapshot`] announcements (`avro/snapshot.avsc`) and the snapshot's table names.
//!
//! A snapshot is the merged state of the last window, cut by a merger, stored as one Parquet
//! file per table under `<data_dir>/<table>/`, every row stamped with `snapshot_time`.

use std::path::PathBuf;

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
}
avro_record!(Snapshot, "snapshot.avsc");

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub table: String,
    pub path: String,
    pub rows: i64,
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
    /// Written by the merger: one row per (host, CIDR).
    pub const LOCAL_NETWORKS: &str = "local_networks";
    /// Written by the renderer: one row per TCP connection, both ends joined.
    pub const CONNECTIONS: &str = "connections";
    /// Written by the renderer: nodes of every view.
    pub const GRAPH_NODES: &str = "graph_nodes";
    /// Written by the renderer: edges of every view.
    pub const GRAPH_EDGES: &str = "graph_edges";

    /// Tables a merger writes in each snapshot.
    pub const MERGED: [&str; 4] = [HOSTS, PROCESSES, SOCKETS, LOCAL_NETWORKS];
    /// Tables the renderer writes for each snapshot.
    pub const RENDERED: [&str; 3] = [CONNECTIONS, GRAPH_NODES, GRAPH_EDGES];
    /// The column every table carries.
    pub const SNAPSHOT_TIME: &str = "snapshot_time";
}

/// Path of one table's file of one snapshot, relative to the data dir:
/// `<table>/<snapshot_time_us>-<writer>.parquet`. Sorting file names sorts by time.
pub fn file_path(table: &str, snapshot_time_us: i64, writer: &str) -> String {
    format!("{table}/{snapshot_time_us:020}-{writer}.parquet")
}

/// The snapshot time encoded in a file name made by [`file_path`].
pub fn snapshot_time_of(file_name: &str) -> Option<i64> {
    file_name.split('-').next()?.parse().ok()
}

/// Where snapshots live when neither `--data-dir` nor `SCOPE_DATA_DIR` says:
/// `$XDG_DATA_HOME/scope`, else `$HOME/.local/share/scope`, else `./scope-data`.
/// Every component and `scope sql` use this one default, so they find each other's files.
pub fn default_data_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        PathBuf::from(xdg).join("scope")
    } else if let Some(home) = non_empty("HOME") {
        PathBuf::from(home).join(".local/share/scope")
    } else {
        PathBuf::from("scope-data")
    }
}
