//! Arrow schemas of the snapshot tables and the rendered tables: the SQL contract.
//!
//! Every table starts with `snapshot_time` (UTC microseconds): the end of the window the row
//! belongs to. Columns are nullable exactly where the pipeline may not know a value (the pid of
//! a socket owned by a process that exited, the remote host of a connection to the Internet).

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::snapshot::table;

/// The time zone of every timestamp column (see [`timestamp_type`]).
pub const TIMEZONE: &str = "+00:00";

/// Arrow type of every timestamp column: microseconds, UTC. The zone is written as the
/// offset `+00:00` because Arrow formats named zones only with its `chrono-tz` feature.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(TIMEZONE.into()))
}

fn ts(name: &str, nullable: bool) -> Field {
    Field::new(name, timestamp_type(), nullable)
}
fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}
fn int32(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Int32, nullable)
}
fn int64(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Int64, nullable)
}
fn float64(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}

fn with_snapshot_time(fields: Vec<Field>) -> SchemaRef {
    let mut all = vec![ts(table::SNAPSHOT_TIME, false)];
    all.extend(fields);
    Arc::new(Schema::new(all))
}

/// `hosts`: one row per host that reported within the window.
pub static HOSTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_snapshot_time(vec![
        utf8("host_id", false),
        utf8("host_name", true),
        utf8("os", true),
        utf8("kernel_version", true),
        int64("uptime_seconds", true),
        float64("load1"),
        float64("cpu_usage_percent"),
        int64("memory_usage_bytes", true),
        int64("memory_total_bytes", true),
        utf8("tracker_mode", true),
        ts("last_seen", false),
    ])
});

/// `processes`: one row per process of a host in `hosts`.
pub static PROCESSES: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_snapshot_time(vec![
        utf8("host_id", false),
        int32("pid", false),
        int32("ppid", true),
        utf8("name", true),
        utf8("cmdline", true),
        int32("threads", true),
        float64("cpu_usage_percent"),
        int64("memory_usage_bytes", true),
        int32("open_files_count", true),
        ts("last_seen", false),
    ])
});

/// `sockets`: one row per connection end a host saw open at some moment of the window.
/// `direction` is `outbound` (this host connected) or `inbound` (it accepted);
/// `state` is `open` or `closed` (then `closed_at` is set).
pub static SOCKETS: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_snapshot_time(vec![
        utf8("host_id", false),
        int64("netns", false),
        int32("pid", true),
        utf8("process_name", true),
        utf8("direction", false),
        utf8("family", false),
        utf8("local_addr", false),
        int32("local_port", false),
        utf8("remote_addr", false),
        int32("remote_port", false),
        ts("first_seen", false),
        ts("last_seen", false),
        ts("closed_at", true),
        utf8("state", false),
        utf8("source", false),
    ])
});

/// `local_networks`: one row per (host, CIDR) of the host's interface addresses.
pub static LOCAL_NETWORKS: LazyLock<SchemaRef> =
    LazyLock::new(|| with_snapshot_time(vec![utf8("host_id", false), utf8("cidr", false)]));

/// `connections`: one row per TCP connection, its client and server ends joined from the
/// `sockets` of both hosts; an end no host reported has null host, pid and process.
pub static CONNECTIONS: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_snapshot_time(vec![
        utf8("family", false),
        utf8("client_host_id", true),
        int32("client_pid", true),
        utf8("client_process", true),
        utf8("client_addr", false),
        int32("client_port", false),
        utf8("server_host_id", true),
        int32("server_pid", true),
        utf8("server_process", true),
        utf8("server_addr", false),
        int32("server_port", false),
        ts("first_seen", false),
        ts("last_seen", false),
        utf8("state", false),
    ])
});

/// `graph_nodes`: the nodes of every rendered view.
pub static GRAPH_NODES: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_snapshot_time(vec![
        utf8("view", false),
        utf8("id", false),
        utf8("label", false),
        utf8("label_minor", false),
        utf8("rank", false),
        utf8("shape", false),
        Field::new("pseudo", DataType::Boolean, false),
    ])
});

/// `graph_edges`: the edges of every rendered view, `src` to `dst` by node id, with the number
/// of connections behind each.
pub static GRAPH_EDGES: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_snapshot_time(vec![
        utf8("view", false),
        utf8("src", false),
        utf8("dst", false),
        int64("connections", false),
    ])
});

/// The schema of a table by its name in [`table`].
pub fn schema(name: &str) -> Option<SchemaRef> {
    let s = match name {
        table::HOSTS => &HOSTS,
        table::PROCESSES => &PROCESSES,
        table::SOCKETS => &SOCKETS,
        table::LOCAL_NETWORKS => &LOCAL_NETWORKS,
        table::CONNECTIONS => &CONNECTIONS,
        table::GRAPH_NODES => &GRAPH_NODES,
        table::GRAPH_EDGES => &GRAPH_EDGES,
        _ => return None,
    };
    Some(Arc::clone(s))
}
