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
/// `$XDG_DATA_HOME/scope`, else `$HOME/.local/share/scope`, else `./scope-data`. Relative
/// values of those variables are ignored, as the XDG spec asks. Every component and
/// `scope sql` use this one default, so they find each other's files.
pub fn default_data_dir() -> PathBuf {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(xdg) = absolute("XDG_DATA_HOME") {
        xdg.join("scope")
    } else if let Some(home) = absolute("HOME") {
        home.join(".local/share/scope")
    } else {
        PathBuf::from("scope-data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_by_time_and_give_it_back() {
        let early = file_path("hosts", 999_000_000, "m-1");
        let late = file_path("hosts", 1_000_000_000, "m-1");
        assert!(early < late);
        let name = late.rsplit('/').next().unwrap();
        assert_eq!(snapshot_time_of(name), Some(1_000_000_000));
    }

    #[test]
    fn default_data_dir_is_absolute_when_home_is_known() {
        let dir = default_data_dir();
        if std::env::var_os("HOME").is_some_and(|h| PathBuf::from(h).is_absolute()) {
            assert!(dir.is_absolute());
        }
        assert!(dir.ends_with("scope") || dir.ends_with("scope-data"));
    }
}
