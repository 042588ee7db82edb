//! Arrow schemas of the snapshot tables and the rendered tables: the SQL contract.
//!
//! Every table starts with `snapshot_time` (UTC microseconds): the end of the window the row
//! belongs to. Columns are nullable exactly where the pipeline may not know a value (the pid of
//! a socket owned by a process that exited, the remote host of a connection to the Internet).

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Float64Builder, ListBuilder, MapBuilder, MapFieldNames, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

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

/// A `key -> value` map of text, never null (empty instead): the field names are
/// [`MapBuilder`]'s, so [`labels_column`] builds it.
fn labels_map(name: &str) -> Field {
    map_field(name, DataType::Utf8)
}

/// A `key -> number` map, never null (empty instead); [`numbers_column`] builds it.
fn numbers_map(name: &str) -> Field {
    map_field(name, DataType::Float64)
}

fn map_field(name: &str, values: DataType) -> Field {
    let entries = Field::new(
        "entries",
        DataType::Struct(
            vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", values, true),
            ]
            .into(),
        ),
        false,
    );
    Field::new(name, DataType::Map(Arc::new(entries), false), false)
}

/// A list of text, never null (empty instead); [`text_list_column`] builds it.
fn utf8_list(name: &str) -> Field {
    Field::new(name, DataType::List(Arc::new(list_item())), false)
}

fn list_item() -> Field {
    Field::new("item", DataType::Utf8, true)
}

/// A labels column (see `containers.labels`): one map per row of `(key, value)` pairs.
pub fn labels_column<R, K, V>(rows: impl Iterator<Item = R>) -> Result<ArrayRef, ArrowError>
where
    R: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut builder = MapBuilder::new(
        Some(map_names()),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for labels in rows {
        for (key, value) in labels {
            builder.keys().append_value(key);
            builder.values().append_value(value);
        }
        builder.append(true)?;
    }
    Ok(Arc::new(builder.finish()))
}

/// A numbers column (see `graph_nodes.metrics`): one map per row of `(key, number)` pairs.
pub fn numbers_column<R, K>(rows: impl Iterator<Item = R>) -> Result<ArrayRef, ArrowError>
where
    R: IntoIterator<Item = (K, f64)>,
    K: AsRef<str>,
{
    let mut builder = MapBuilder::new(
        Some(map_names()),
        StringBuilder::new(),
        Float64Builder::new(),
    );
    for numbers in rows {
        for (key, value) in numbers {
            builder.keys().append_value(key);
            builder.values().append_value(value);
        }
        builder.append(true)?;
    }
    Ok(Arc::new(builder.finish()))
}

fn map_names() -> MapFieldNames {
    MapFieldNames {
        entry: "entries".into(),
        key: "keys".into(),
        value: "values".into(),
    }
}

/// A list-of-text column (see `containers.ips`), one list per row.
pub fn text_list_column<'a>(rows: impl Iterator<Item = &'a [String]>) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(list_item()));
    for values in rows {
        for value in values {
            builder.values().append_value(value);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
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
        utf8("container_id", true),
    ])
});

/// `containers`: one row per container of a host in `hosts`, running or (when a runtime
/// reports it) stopped. `labels` is a map (`labels['app']`); `ips` and `ports` are lists.
pub static CONTAINERS: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_snapshot_time(vec![
        utf8("host_id", false),
        utf8("container_id", false),
        utf8("runtime", false),
        utf8("name", true),
        utf8("image_name", true),
        utf8("image_id", true),
        utf8("state", false),
        utf8("hostname", true),
        utf8("pod_name", true),
        utf8("pod_namespace", true),
        utf8("pod_uid", true),
        labels_map("labels"),
        utf8_list("ips"),
        utf8_list("ports"),
        float64("cpu_usage_percent"),
        int64("memory_usage_bytes", true),
        ts("last_seen", false),
    ])
});

/// `kubernetes_objects`: one row per Kubernetes object a cluster collector reported within
/// the window. `kind` is the report topology (`pod`, `replica_set`, `deployment`,
/// `daemon_set`, `stateful_set`, `job`, `cron_job`, `service`, `namespace`, `kube_node`);
/// the owner is the controlling owner reference; `labels` and `selector` are maps.
pub static KUBERNETES_OBJECTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_snapshot_time(vec![
        utf8("cluster_id", false),
        utf8("kind", false),
        utf8("uid", false),
        utf8("namespace", true),
        utf8("name", true),
        utf8("owner_kind", true),
        utf8("owner_uid", true),
        utf8("owner_name", true),
        utf8("node_name", true),
        utf8("host_ip", true),
        utf8("pod_ip", true),
        utf8("cluster_ip", true),
        utf8("state", true),
        utf8("created_at", true),
        labels_map("labels"),
        labels_map("selector"),
        utf8_list("ports"),
        utf8_list("container_ids"),
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
/// `host_local` is true for a network no other host reaches (a container bridge): its
/// addresses name a machine only together with the host. Nullable because snapshots written
/// before the column existed read it as null, which means false.
pub static LOCAL_NETWORKS: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_snapshot_time(vec![
        utf8("host_id", false),
        utf8("cidr", false),
        Field::new("host_local", DataType::Boolean, true),
    ])
});

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

/// `graph_nodes`: the nodes of every rendered view, one row per node and view, with what the
/// HTTP API shows of them: `metadata` (the published node's), `metrics` (by Weave Scope's
/// metric id, in the view's order) and `parents` (by view, the parent node's id). Files
/// written before those three existed lack them.
pub static GRAPH_NODES: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_snapshot_time(vec![
        utf8("view", false),
        utf8("id", false),
        utf8("label", false),
        utf8("label_minor", false),
        utf8("rank", false),
        utf8("shape", false),
        Field::new("pseudo", DataType::Boolean, false),
        labels_map("metadata"),
        numbers_map("metrics"),
        labels_map("parents"),
    ])
});

/// `graph_edges`: the edges of every rendered view, `src` to `dst` by node id, with the number
/// of connections behind each and those by server port (`80:3,443:1`; null in files written
/// before it existed).
pub static GRAPH_EDGES: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_snapshot_time(vec![
        utf8("view", false),
        utf8("src", false),
        utf8("dst", false),
        int64("connections", false),
        utf8("ports", true),
    ])
});

/// The schema of a table by its name in [`table`].
pub fn schema(name: &str) -> Option<SchemaRef> {
    let s = match name {
        table::HOSTS => &HOSTS,
        table::PROCESSES => &PROCESSES,
        table::CONTAINERS => &CONTAINERS,
        table::KUBERNETES_OBJECTS => &KUBERNETES_OBJECTS,
        table::SOCKETS => &SOCKETS,
        table::LOCAL_NETWORKS => &LOCAL_NETWORKS,
        table::CONNECTIONS => &CONNECTIONS,
        table::GRAPH_NODES => &GRAPH_NODES,
        table::GRAPH_EDGES => &GRAPH_EDGES,
        _ => return None,
    };
    Some(Arc::clone(s))
}
